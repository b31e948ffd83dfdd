"""HAProxy itself (Debian's haproxy package) as a reference peer: run with a
config written to a temporary directory, in the foreground, with a stats
socket whose `show stat` the tests compare with farm's."""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
import textwrap
import time
from pathlib import Path

from tests.integration.tools import debian_tool


def haproxy_binary() -> str | None:
    """The haproxy program (in /usr/sbin, which a user's PATH may lack;
    installed when possible), or None."""
    for path in (shutil.which("haproxy"), "/usr/sbin/haproxy"):
        if path and os.access(path, os.X_OK):
            return path
    return debian_tool("haproxy")


def cli(sock: Path, line: str, timeout: float = 5) -> str:
    """One command on a HAProxy-style CLI socket (farm's admin socket or
    HAProxy's stats socket): the whole answer, read until the peer closes."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(line.encode() + b"\n")
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out.decode()
            out += d


def parse_show_stat(text: str) -> dict:
    """`show stat` CSV -> {(pxname, svname): {column: value}}, in row order;
    every row must have as many fields as the header."""
    lines = [l for l in text.splitlines() if l.strip()]
    assert lines and lines[0].startswith("# "), text[:200]
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    header = rows[0]
    header[0] = header[0][2:]
    out = {}
    for r in rows[1:]:
        assert len(r) == len(header), r
        out[(r[0], r[1])] = dict(zip(header, r))
    return out


class Haproxy:
    """haproxy -db -f CFG; `config` names its stats socket @SOCK@."""

    def __init__(self, binary: str, tmp: Path, config: str):
        self.tmp = tmp
        self.sock = tmp / "haproxy.sock"
        self.config_path = tmp / "haproxy.cfg"
        self.config_path.write_text(textwrap.dedent(config).replace("@SOCK@", str(self.sock)))
        self.log_path = tmp / "haproxy.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary, "-db", "-f", str(self.config_path)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                cli(self.sock, "show info")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("haproxy did not start:\n" + self.log_path.read_text())
                time.sleep(0.05)

    def show_stat(self) -> dict:
        return parse_show_stat(cli(self.sock, "show stat"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
