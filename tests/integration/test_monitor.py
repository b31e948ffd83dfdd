"""monitor_uri (HAProxy's monitor-uri) and monitor_fail: farm answers its
health URI itself, 200 while it serves, 503 while it drains or while the
monitor_fail condition holds (here: no usable server, nbsrv); the request
never reaches a server and is never written to the access log."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest

from tests.integration.backends import free_port
from tests.integration.http_backend import HttpBackend, RawClient
from tests.integration.simple_http import NamedServer


def config(port: int, server: str, extra: str = "", check: str = "") -> str:
    return f"""
[global]
workers = 2
hard_stop_after = "5s"
[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "httplog"
[frontends.www]
bind = "127.0.0.1:{port}"
default_backend = "app"
monitor_uri = "/healthz"
{extra}
[backends.app]
{check}
[[backends.app.servers]]
name = "s1"
address = "{server}"
"""


@pytest.fixture
def backend():
    b = HttpBackend("s1")
    yield b
    b.close()


def wait_for(pred, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_monitor_uri_answers_without_server_and_without_log(farm_factory, backend):
    port = free_port()
    farm = farm_factory(config(port, backend.address))
    with RawClient(port) as c:
        r = c.request("GET", "/healthz")
        assert r.status == 200 and b"200 OK" in r.body
        r = c.request("GET", "/name")          # the same connection goes on
        assert (r.status, r.body) == (200, b"s1")
        r = c.request("GET", "/healthz?full")  # another URI (exact match only): relayed
        assert b"<h1>200 OK</h1>" not in r.body
    with RawClient(port) as c:
        r = c.request("GET", "/healthz", version="HTTP/1.0")
        assert r.status == 200 and r.header("Connection") == "close"
    assert backend.paths() == ["/name", "/healthz"]     # (the backend records paths)
    wait_for(lambda: len(farm.access_lines()) == 2, 5)
    time.sleep(0.3)
    lines = farm.access_lines()
    assert len(lines) == 2 and not any("GET /healthz HTTP" in ln for ln in lines), lines


def test_monitor_fail_nbsrv(farm_factory):
    server = NamedServer("s1")
    try:
        port = free_port()
        check = '[backends.app.check]\ntype = "http"\npath = "/healthz"\ninterval = "100ms"\n' \
                'rise = 1\nfall = 1\n'
        farm_factory(config(port, server.address, 'monitor_fail = "{ nbsrv(app) lt 1 }"', check))

        def monitor() -> int:
            with RawClient(port) as c:
                return c.request("GET", "/healthz").status
        wait_for(lambda: monitor() == 200, 5)
        server.health_status = 500           # its checks fail: no usable server left
        wait_for(lambda: monitor() == 503, 5)
        with RawClient(port) as c:
            r = c.request("GET", "/healthz")
            assert r.status == 503 and r.header("Connection") == "close"
        server.health_status = 200
        wait_for(lambda: monitor() == 200, 5)
        assert server.requests == 0          # never relayed
    finally:
        server.close()


def test_monitor_uri_is_503_while_draining(farm_factory, backend):
    """An idle keep-alive connection when farm stops: the draining worker
    still answers a request that arrives within its idle grace, and a
    monitor request then gets 503 (a health checker in front learns to go
    elsewhere), with Connection: close. New connections are refused."""
    port = free_port()
    farm = farm_factory(config(port, backend.address))
    c = RawClient(port)
    try:
        assert c.request("GET", "/healthz").status == 200
        farm.signal(signal.SIGTERM)
        farm.wait_event("worker_draining", 5, count=2)
        r = c.request("GET", "/healthz")
        assert r.status == 503 and r.header("Connection") == "close"
        assert backend.paths() == []
    finally:
        c.close()
    farm.proc.wait(10)


def test_monitor_uri_stays_200_across_a_reload(farm_factory, backend):
    """A reload is not a failure: new connections are answered by the new
    generation, 200 throughout (keepalived must not move the address)."""
    port = free_port()
    farm = farm_factory(config(port, backend.address))
    statuses: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set() and len(statuses) < 2000:
            with RawClient(port) as c:
                statuses.append(c.request("GET", "/healthz").status)
            time.sleep(0.01)
    t = threading.Thread(target=poll)
    t.start()
    try:
        time.sleep(0.3)
        farm.signal(signal.SIGHUP)
        farm.wait_event("reload_done", 10)
        time.sleep(0.5)
    finally:
        stop.set()
        t.join()
    assert statuses and set(statuses) == {200}


def test_monitor_uri_over_http2(farm_factory, backend):
    """The same answer to an HTTP/2 client (cleartext prior knowledge)."""
    port = free_port()
    farm_factory(config(port, backend.address))
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null",
                        "-w", "%{http_version} %{http_code}", f"http://127.0.0.1:{port}/healthz"],
                       capture_output=True, text=True, timeout=10)
    assert r.stdout == "2 200", r.stderr
    assert backend.paths() == []
