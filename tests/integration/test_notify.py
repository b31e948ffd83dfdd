"""systemd's notify protocol: READY=1 after start, RELOADING=1 then READY=1
around a reload, STOPPING=1 on stop (a datagram socket plays systemd)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.integration.backends import EchoServer, free_port

ROOT = Path(__file__).resolve().parents[2]


def test_ready_reloading_stopping(tmp_path):
    echo = EchoServer()
    notify = tmp_path / "notify.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(notify))
    srv.settimeout(10)
    port = free_port()
    cfg = tmp_path / "farm.toml"
    cfg.write_text(f"""
[global]
workers = 2
[log]
events = "{tmp_path}/events.log"
[defaults]
mode = "tcp"
[frontends.fe]
bind = "127.0.0.1:{port}"
default_backend = "be"
[backends.be]
[[backends.be.servers]]
name = "e"
address = "{echo.address}"
""")
    p = subprocess.Popen([sys.executable, str(ROOT / "master.py"), "run", "-c", str(cfg)],
                         env=dict(os.environ, NOTIFY_SOCKET=str(notify)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def next_msg() -> str:
            return srv.recv(4096).decode()
        assert next_msg().startswith("READY=1")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:   # it serves
            c.sendall(b"hi")
            assert c.recv(2) == b"hi"
        p.send_signal(signal.SIGHUP)
        m = next_msg()
        assert m.startswith("RELOADING=1") and "MONOTONIC_USEC=" in m
        assert next_msg().startswith("READY=1")
        p.send_signal(signal.SIGTERM)
        assert next_msg().startswith("STOPPING=1")
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
        srv.close()
        echo.close()
