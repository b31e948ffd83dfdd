"""Fixtures that run the real farm master (python master.py run -c FILE)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


class Farm:
    """A farm master started as a subprocess with a config written to tmp."""

    def __init__(self, tmp: Path, config: str, preexec=None):
        self.tmp = tmp
        self.config_path = tmp / "farm.toml"
        self.events_path = tmp / "events.log"
        self.access_path = tmp / "access.log"
        # Configs name the log files as @EVENTS@ and @ACCESS@.
        config = textwrap.dedent(config).replace("@EVENTS@", str(self.events_path))
        self.config_path.write_text(config.replace("@ACCESS@", str(self.access_path)))
        self.stdout_path = tmp / "stdout.log"
        self.preexec = preexec
        self.proc: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True, timeout: float = 10) -> "Farm":
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "master.py"), "run", "-c", str(self.config_path)],
            cwd=ROOT, stdout=open(self.stdout_path, "ab"), stderr=subprocess.STDOUT,
            preexec_fn=self.preexec, start_new_session=True)
        if wait_ready:
            self.wait_event("farm_ready", timeout)
        return self

    def events(self) -> list[dict]:
        out = []
        for path in (self.events_path, self.stdout_path):
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
        return out

    def wait_event(self, name: str, timeout: float = 10, count: int = 1, **match) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events() if e.get("event") == name
                     and all(e.get(k) == v for k, v in match.items())]
            if len(found) >= count:
                return found[count - 1]
            if self.proc.poll() is not None:
                raise AssertionError(f"farm exited ({self.proc.returncode}) before {name}:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"no {name} event within {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def workers(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def access_lines(self) -> list[str]:
        return self.access_path.read_text().splitlines() if self.access_path.exists() else []

    def wait_access_lines(self, n: int, timeout: float = 5.0) -> list[str]:
        """The access log's lines once it has n of them (or what it has at
        the timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.access_lines()
            if len(lines) >= n:
                return lines
            time.sleep(0.05)
        return self.access_lines()

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        kids = self.workers()
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for k in kids:
            try:
                k.kill()
            except psutil.NoSuchProcess:
                pass
        return self.proc.returncode


@pytest.fixture
def farm_factory(tmp_path):
    farms: list[Farm] = []

    def make(config: str, start: bool = True, **kw) -> Farm:
        f = Farm(tmp_path, config, **kw)
        farms.append(f)
        return f.start() if start else f
    yield make
    for f in farms:
        f.stop()
