"""`farm run` in a terminal: the keys a user presses reach the master and its
workers together (one foreground process group). Workers ignore Ctrl-C and
Ctrl-Z and stop when their master tells them; the master takes no exit
during a stop for a crash. (The demo's own Ctrl-C test is in test_demo.py.)"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.backends import EchoServer, free_port
from tests.integration.terminal import CTRL_BACKSLASH, CTRL_C, CTRL_Z, Terminal

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2


@pytest.fixture
def farm_in_terminal(tmp_path):
    """`farm run -c FILE` with 2 workers (a TCP echo service) in a terminal."""
    backend = EchoServer()
    port = free_port()
    config = tmp_path / "farm.toml"
    config.write_text(f"""
[global]
workers = {WORKERS}
hard_stop_after = "5s"

[log]
access = "off"

[defaults]
mode = "tcp"

[frontends.echo]
bind = "127.0.0.1:{port}"
default_backend = "echo"

[backends.echo]
[[backends.echo.servers]]
name = "e1"
address = "{backend.address}"
""")
    term = Terminal([sys.executable, str(ROOT / "master.py"), "run", "-c", str(config)],
                    tmp_path / "farm.out", cwd=ROOT)
    term.port = port
    try:
        term.wait_event("farm_ready")
        yield term
    finally:
        term.close()
        backend.close()


def echo(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"ping")
        return s.recv(16)


def assert_no_respawn(term: Terminal) -> None:
    """Every worker was started once and its exit was expected."""
    assert not term.named("worker_died"), term.output()
    assert len(term.named("worker_spawned")) == WORKERS, term.output()
    assert len(term.named("worker_exited")) == WORKERS, term.output()


def test_ctrl_c_stops_farm_run_within_a_second(farm_in_terminal):
    term = farm_in_terminal
    assert echo(term.port) == b"ping"
    elapsed = term.press_and_time_exit(CTRL_C)
    assert elapsed < 1.0, (elapsed, term.output())
    assert term.proc.returncode == 0
    assert_no_respawn(term)
    assert not term.named("killing_workers")      # they drained, not killed at hard_stop_after


def test_ctrl_backslash_stops_farm_run_at_once_without_respawn(farm_in_terminal):
    """SIGQUIT from the terminal is also the master's fast-stop order to its
    workers: they exit at once, and the master, which got it too, stops."""
    term = farm_in_terminal
    elapsed = term.press_and_time_exit(CTRL_BACKSLASH)
    assert elapsed < 1.0, (elapsed, term.output())
    assert term.proc.returncode == 0
    assert not term.named("worker_died"), term.output()
    assert len(term.named("worker_spawned")) == WORKERS, term.output()


def test_ctrl_z_suspends_the_master_while_workers_keep_serving(farm_in_terminal):
    term = farm_in_terminal
    master = psutil.Process(term.job)
    workers = master.children()
    assert len(workers) == WORKERS
    term.press(CTRL_Z)
    deadline = time.monotonic() + 5
    while master.status() != psutil.STATUS_STOPPED and time.monotonic() < deadline:
        time.sleep(0.02)
    assert master.status() == psutil.STATUS_STOPPED
    assert all(w.status() != psutil.STATUS_STOPPED for w in workers)
    for _ in range(2 * WORKERS):
        assert echo(term.port) == b"ping"       # the data plane does not stop with the master
    os.killpg(term.job, signal.SIGCONT)    # `fg`: the shell continues the whole group
    elapsed = term.press_and_time_exit(CTRL_C)
    assert elapsed < 1.0, (elapsed, term.output())
    assert_no_respawn(term)
