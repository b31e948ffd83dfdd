"""`farm demo` as a new user meets it, run in a real terminal: it serves and
balances, prints what to try next, answers on its admin socket and stats
page, lets a server be broken on purpose, stops at once on Ctrl-C, and
leaves nothing behind."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.backends import free_port
from tests.integration.terminal import CTRL_C, Terminal

ROOT = Path(__file__).resolve().parents[2]
FARM = [sys.executable, str(ROOT / "master.py")]
WORKERS = 2


class Demo:
    """One `farm demo` in its own terminal, with free ports (parallel runs do
    not collide) and its own TMPDIR and XDG_RUNTIME_DIR, so that what it
    leaves behind and its well-known admin socket are this test's alone."""

    def __init__(self, tmp: Path, *extra: str, runtime: Path | None = None):
        self.port, self.stats_port = free_port(), free_port()
        self.tmpdir = tmp / "tmp"
        self.tmpdir.mkdir()
        self.runtime = runtime or tmp / "run"
        self.runtime.mkdir(mode=0o700, exist_ok=True)
        # No default config here: `farm ctl` without flags must find the demo.
        self.env = dict(os.environ, TMPDIR=str(self.tmpdir), XDG_RUNTIME_DIR=str(self.runtime),
                        FARM_CONFIG=str(tmp / "no-such-farm.toml"))
        self.socket = self.runtime / "farm-demo.sock"
        argv = FARM + ["demo", "--port", str(self.port), "--stats-port", str(self.stats_port),
                       "--workers", str(WORKERS), *extra]
        self.term = Terminal(argv, tmp / "demo.out", env=self.env, cwd=ROOT)

    def ready(self) -> "Demo":
        self.term.wait_event("farm_ready")
        return self

    def farm(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(FARM + list(args), capture_output=True, text=True, env=self.env,
                              cwd=ROOT, timeout=30)

    def get(self, path: str, port: int | None = None) -> tuple[int, str]:
        c = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=5)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def server_status(self) -> dict[str, str]:
        """svname -> status of the demo backend's servers, from `farm ctl show stat`."""
        r = self.farm("ctl", "show", "stat")
        assert r.returncode == 0, r.stderr
        header = r.stdout.splitlines()[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","))) for line in r.stdout.splitlines()[1:] if line]
        return {row["svname"]: row["status"] for row in rows
                if row["pxname"] == "demo" and row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_status(self, server: str, status: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server_status().get(server) == status:
                return
            time.sleep(0.2)
        raise AssertionError(f"{server} not {status} within {timeout}s: {self.server_status()}")

    def left_behind(self) -> list[str]:
        """What the demo left in its TMPDIR and runtime directory."""
        return sorted(os.listdir(self.tmpdir)) + sorted(os.listdir(self.runtime))


@pytest.fixture
def demo(tmp_path):
    runs: list[Demo] = []

    def start(*extra: str, tmp: Path = tmp_path, runtime: Path | None = None) -> Demo:
        d = Demo(tmp, *extra, runtime=runtime)
        runs.append(d)
        return d
    yield start
    for d in runs:
        d.term.close()


def test_demo_serves_and_balances(demo):
    d = demo().ready()
    seen = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(seen) < 3:
        status, body = d.get("/")
        if status == 200:
            seen.add(body.split()[4])      # "Hello from demo backend sN ..."
    assert seen == {"s1", "s2", "s3"}


def test_demo_prints_what_to_try_next(demo):
    d = demo().ready()
    out = d.term.output()
    assert out.startswith(f"farm demo: try http://127.0.0.1:{d.port}/")
    assert f"http://127.0.0.1:{d.stats_port}/" in out
    farm = " ".join(FARM)
    # The well-known socket: no -s needed where no /etc/farm/farm.toml exists.
    assert f"{farm} top\n" in out
    assert f"{farm} ctl show stat\n" in out
    assert f"{farm} ctl disable server demo/s2" in out
    assert f"curl http://127.0.0.1:{d.port}/demo/fail/s2" in out


def test_demo_answers_on_its_admin_socket_and_stats_page(demo):
    d = demo().ready()
    assert d.socket.exists()
    # `farm ctl` without -s ("UP 1/2" while the first checks pass: HAProxy's wording)
    assert {k: v.split()[0] for k, v in d.server_status().items()} == {"s1": "UP", "s2": "UP", "s3": "UP"}
    top = d.farm("top", "--once")
    assert top.returncode == 0, top.stderr
    assert all(name in top.stdout for name in ("s1", "s2", "s3"))
    status, page = d.get("/", port=d.stats_port)
    assert status == 200 and "<html" in page.lower()
    status, csv = d.get("/;csv", port=d.stats_port)
    assert status == 200
    assert any(line.startswith("demo,s2,") for line in csv.splitlines())


def test_demo_failure_switch_takes_a_server_down_and_back_up(demo):
    d = demo().ready()
    status, body = d.get("/demo/fail/s2")
    assert status == 200 and "s2 now answers 503" in body
    d.wait_status("s2", "DOWN", timeout=10)
    assert d.server_status()["s1"].startswith("UP")
    status, _ = d.get("/demo/recover/s2")
    assert status == 200
    d.wait_status("s2", "UP", timeout=10)


def test_demo_disable_server_recipe_puts_it_in_maintenance(demo):
    d = demo().ready()
    r = d.farm("ctl", "disable", "server", "demo/s2")
    assert r.returncode == 0, r.stderr
    d.wait_status("s2", "MAINT", timeout=5)


def test_ctrl_c_stops_the_demo_within_a_second_and_leaves_nothing(demo):
    d = demo().ready()
    assert d.get("/")[0] == 200
    assert [name[:10] for name in d.left_behind()] == ["farm-demo-", "farm-demo."]  # dir, socket
    elapsed = d.term.press_and_time_exit(CTRL_C)
    assert elapsed < 1.0, (elapsed, d.term.output())
    assert d.term.proc.returncode == 0, d.term.output()
    # The workers ignored the terminal's SIGINT and stopped when the master
    # told them: no exit taken for a crash, nothing respawned.
    assert not d.term.named("worker_died"), d.term.output()
    assert len(d.term.named("worker_spawned")) == WORKERS, d.term.output()
    assert len(d.term.named("worker_exited")) == WORKERS, d.term.output()
    assert d.left_behind() == []


def test_sigterm_stops_the_demo_and_leaves_nothing(demo):
    d = demo().ready()
    os.kill(d.term.job, signal.SIGTERM)                  # `kill PID` from another shell
    assert d.term.proc.wait(5) == 0
    assert not d.term.named("worker_died")
    assert d.left_behind() == []


def test_a_demo_that_cannot_start_leaves_nothing(demo, tmp_path):
    d = demo("--admin-socket", str(tmp_path / "no-such-dir" / "admin.sock"))
    assert d.term.proc.wait(15) == 1
    assert "cannot create admin socket" in d.term.output()
    assert d.left_behind() == []


def test_a_second_demo_takes_a_private_socket(demo, tmp_path):
    """The well-known socket belongs to the first demo: a second one in the
    same session must not take it over, and prints its own path with -s."""
    first = demo().ready()
    (tmp_path / "second").mkdir()
    second = demo(tmp=tmp_path / "second", runtime=first.runtime).ready()
    out = second.term.output()
    private = [line.split()[-1] for line in out.splitlines() if line.strip().startswith("admin socket")]
    assert private and private[0].startswith(str(second.tmpdir / "farm-demo-")), out
    assert f"ctl -s {private[0]} show stat" in out
    info = first.farm("ctl", "show", "info").stdout    # the well-known socket: still the first's
    assert f"Pid: {first.term.job}\n" in info, info
    r = second.farm("ctl", "-s", private[0], "show", "info")
    assert r.returncode == 0 and "Name: farm" in r.stdout, (r.stdout, r.stderr)
