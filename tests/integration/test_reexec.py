"""A reload after the code on disk changed (a package upgrade) re-executes
the master in place: same pid, new code, same sockets, state kept, and no
request fails."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.integration.backends import free_port
from tests.integration.load import Load
from tests.integration.simple_http import NamedServer

ROOT = Path(__file__).resolve().parents[2]


def cli(sock: Path, line: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(line.encode() + b"\n")
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out.decode()
            out += d


def test_reload_with_new_code_reexecs_in_place(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    for name in ("farm", "workers"):
        shutil.copytree(ROOT / name, app / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "master.py", app / "master.py")
    a, b = NamedServer("a"), NamedServer("b")
    port = free_port()
    sock = tmp_path / "admin.sock"
    events = tmp_path / "events.log"
    cfg = tmp_path / "farm.toml"
    cfg.write_text(f"""
[global]
workers = 2
admin_socket = "{sock}"
hard_stop_after = "3s"
[log]
events = "{events}"
[defaults]
mode = "http"
[frontends.fe]
bind = "127.0.0.1:{port}"
default_backend = "be"
[backends.be]
[[backends.be.servers]]
name = "a"
address = "{a.address}"
[[backends.be.servers]]
name = "b"
address = "{b.address}"
""")
    p = subprocess.Popen([sys.executable, str(app / "master.py"), "run", "-c", str(cfg)],
                         cwd=app, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (events.exists() and "farm_ready" in events.read_text()):
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.05)
        old_workers = {c.pid for c in psutil.Process(p.pid).children()}
        assert cli(sock, "set weight be/b 7") == "\n"
        init = app / "farm" / "__init__.py"
        init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.9.9+'))
        load = Load(port, keepalive=3, newconn=1, seconds=4).start()
        time.sleep(1)
        p.send_signal(signal.SIGHUP)
        load.join()
        deadline = time.monotonic() + 10
        while "reload_done" not in events.read_text():
            assert time.monotonic() < deadline, events.read_text()[-2000:]
            time.sleep(0.05)
        assert p.poll() is None                                   # the same master process
        assert '"event": "reexec"' in events.read_text()
        assert load.failures == [], load.failures[:5]
        assert load.ok > 200
        info = cli(sock, "show info")
        assert f"Pid: {p.pid}\n" in info and "Version: 9.9.9+" in info
        assert cli(sock, "get weight be/b") == "7 (initial 1)\n\n"    # runtime state kept
        deadline = time.monotonic() + 5                            # the old workers drained
        while any(psutil.pid_exists(x) and psutil.Process(x).status() != psutil.STATUS_ZOMBIE
                  for x in old_workers):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        want = {"farm: worker 0 [gen 2]", "farm: worker 1 [gen 2]"}
        deadline = time.monotonic() + 5
        while True:
            titles = set()
            for c in psutil.Process(p.pid).children():
                try:
                    titles.add(c.cmdline()[0])
                except (psutil.NoSuchProcess, IndexError):
                    pass                                  # exiting just now
            if titles == want or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert titles == want
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        a.close()
        b.close()
