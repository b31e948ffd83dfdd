"""Retries after a failed connection, as HAProxy 2.6 makes them
(workers/lb/retry.py): another server at once when the balance algorithm
chose, the same server after a turn-around when a cookie (or a hash) chose
or when redispatch is off, the last retry redispatched. Real farm, a real
backend, and a port where nothing listens (connection refused)."""

from __future__ import annotations

import http.client
import socket
import time

import pytest

from tests.integration.backends import free_port
from tests.integration.http_backend import HttpBackend
from tests.integration.test_http import config, parse_log, servers, wait_lines
from tests.integration.test_tcp import tcp_config

CONNECT = 0.2      # timeout connect: the turn-around is min(it, 1 s)
CONNECT_TOML = f"{int(CONNECT * 1000)}ms"


@pytest.fixture
def live():
    """The server that answers (its name is s2); the other one refuses."""
    b = HttpBackend("s2")
    yield b
    b.close()


def dead() -> tuple[str, str]:
    return ("dead", f"127.0.0.1:{free_port()}")


def get(port: int, path: str = "/name", headers: dict | None = None) -> tuple[int, bytes, dict, float]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    t0 = time.monotonic()
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read(), dict(r.getheaders()), time.monotonic() - t0
    finally:
        c.close()


def http_farm(farm_factory, live: HttpBackend, backend: str = ""):
    port = free_port()
    rest = f"[backends.be]\n{backend}\n" + servers("be", dead(), live)
    return port, farm_factory(config(port, rest, timeouts=f'connect = "{CONNECT_TOML}"'))


def test_balanced_choice_is_redispatched_at_once(farm_factory, live):
    port, farm = http_farm(farm_factory, live)
    results = [get(port) for _ in range(4)]
    assert [(st, body) for st, body, _, _ in results] == [(200, b"s2")] * 4
    assert max(t for *_, t in results) < CONNECT     # no turn-around
    logs = [parse_log(l) for l in wait_lines(farm, 4)]
    assert {l["rc"] for l in logs} == {"0", "+1"}


def test_cookie_keeps_its_server_until_the_last_retry(farm_factory, live):
    cookie = '[backends.be.cookie]\nname = "SRV"\nmode = "insert"\nindirect = true\n'
    port, farm = http_farm(farm_factory, live, backend=cookie)
    status, body, headers, took = get(port, headers={"Cookie": "SRV=dead"})
    assert (status, body) == (200, b"s2")
    # two retries on the dead server, a turn-around before each, then
    # the last one elsewhere; the client is pointed at the new server
    assert 2 * CONNECT <= took < 2 * CONNECT + 1.0, took
    assert headers.get("Set-Cookie", "").startswith("SRV=s2")
    log = parse_log(wait_lines(farm, 1)[-1])
    assert log["rc"] == "+3" and log["s"] == "s2"
    assert int(log["Tw"]) >= 2 * CONNECT * 1000 - 20     # waited, as HAProxy logs it
    assert len(live.requests) == 1


def test_hashed_choice_keeps_its_server_until_the_last_retry(farm_factory, live):
    port, farm = http_farm(farm_factory, live, backend='balance = "hdr(X-Key)"')
    results = {k: get(port, headers={"X-Key": k}) for k in "abcdefgh"}
    assert {(st, body) for st, body, _, _ in results.values()} == {(200, b"s2")}
    slow = [k for k, (*_, t) in results.items() if t >= 2 * CONNECT]
    fast = [k for k, (*_, t) in results.items() if t < CONNECT]
    assert slow and fast and len(slow) + len(fast) == 8, results   # the hash spreads them
    logs = [parse_log(l) for l in wait_lines(farm, 8)]
    assert sorted(l["rc"] for l in logs) == ["+3"] * len(slow) + ["0"] * len(fast)


def test_without_redispatch_the_server_is_retried_then_503(farm_factory, live):
    port, farm = http_farm(farm_factory, live, backend="redispatch = false")
    results = [get(port) for _ in range(2)]          # roundrobin: one lands on dead
    statuses = sorted(st for st, *_ in results)
    assert statuses == [200, 503], results
    took = [t for st, _, _, t in results if st == 503][0]
    assert 3 * CONNECT <= took < 3 * CONNECT + 1.0, took     # three turn-arounds
    assert len(live.requests) == 1                   # never sent elsewhere
    logs = [parse_log(l) for l in wait_lines(farm, 2)]
    failed = [l for l in logs if l["status"] == "503"][0]
    assert failed["s"] == "dead" and failed["rc"] == "3" and failed["tsc"].startswith("SC")


def test_tcp_without_redispatch_retries_the_same_server(farm_factory):
    live = socket.socket()
    live.bind(("127.0.0.1", 0))
    live.listen(16)
    port = free_port()
    cfg = tcp_config(port, servers("be", dead(), ("live", "127.0.0.1:%d" % live.getsockname()[1])),
                     workers=1, extra_backend="redispatch = false", connect=CONNECT_TOML)
    try:
        farm = farm_factory(cfg)
        took = []
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                t0 = time.monotonic()
                s.settimeout(3 * CONNECT + 2)
                try:
                    s.recv(1)                # the dead one closes; the live one says nothing
                except socket.timeout:
                    pass
                took.append(time.monotonic() - t0)
        lines = wait_lines(farm, 1)
        dead_line = [l for l in lines if " be/dead " in l]
        assert len(dead_line) == 1 and " SC " in dead_line[0], lines
        # tcplog: ... %ac/%fc/%bc/%sc/%rc: three retries, not redispatched
        assert "/3 " in dead_line[0], dead_line
        assert min(took) >= 3 * CONNECT - 0.05, took
    finally:
        live.close()
