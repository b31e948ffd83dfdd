"""Limits that HAProxy applies per process hold across farm's workers: a
server's maxconn, its queue (served in order of arrival), leastconn, and a
frontend's maxconn are one number for all workers (shared memory, atomic
operations), never divided among them.

Every test runs 2 workers. The kernel spreads new connections over the
workers' SO_REUSEPORT sockets by a hash of the client's address and port,
so with a few dozen connections both workers take part.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time

from tests.integration.backends import free_port
from tests.integration.http_backend import HttpBackend
from tests.integration.test_http import config, servers


def get(port: int, path: str, headers: dict | None = None, timeout: float = 20) -> tuple[int, str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def in_threads(n: int, fn, spacing: float = 0.0) -> list:
    """fn(i) for i in range(n), each in a thread started `spacing` seconds
    after the previous one; the results in order of i."""
    out: list = [None] * n
    threads = []
    for i in range(n):
        t = threading.Thread(target=lambda i=i: out.__setitem__(i, fn(i)))
        t.start()
        threads.append(t)
        if spacing:
            time.sleep(spacing)
    for t in threads:
        t.join(60)
    return out


def test_server_maxconn_holds_across_workers(farm_factory):
    """64 clients at once, a server with maxconn 5 behind a slow backend,
    2 workers: the server sees exactly 5 requests at once at most (a
    per-worker split gives each worker 3, so 6), and every client is served
    through the queue."""
    backend = HttpBackend("s1")
    port = free_port()
    farm_factory(config(port, "[backends.be]\n" + servers("be", backend, extra="maxconn = 5\n"),
                        workers=2, timeouts='queue = "30s"\nserver = "30s"'))
    got = in_threads(64, lambda i: get(port, f"/slow?ms=100&i={i}"))
    assert [s for s, _ in got] == [200] * 64
    assert backend.max_active == 5
    backend.close()


def test_queue_serves_in_order_of_arrival_across_workers(farm_factory):
    """The server is held full; 24 requests then arrive 30 ms apart on new
    connections (spread over both workers): each freed slot goes to the
    oldest waiter of either worker, so the server sees them in the order
    they were sent."""
    backend = HttpBackend("s1")
    port = free_port()
    farm_factory(config(port, "[backends.be]\n" + servers("be", backend, extra="maxconn = 1\n"),
                        workers=2, timeouts='queue = "30s"\nserver = "30s"'))
    holder = threading.Thread(target=get, args=(port, "/slow?ms=800&i=hold"))
    holder.start()
    time.sleep(0.2)            # the slot is taken: everything below queues
    got = in_threads(24, lambda i: get(port, f"/slow?ms=20&i={i}"), spacing=0.03)
    holder.join()
    assert [s for s, _ in got] == [200] * 24
    order = [r.target.split("i=")[1] for r in backend.requests]
    assert order == ["hold"] + [str(i) for i in range(24)]
    assert backend.max_active == 1
    backend.close()


def test_leastconn_sees_every_workers_connections(farm_factory):
    """Four long requests pinned to s1 by its cookie, over both workers;
    then four more without a cookie: leastconn sees s1's four connections
    whichever worker they came through, and sends every new one to s2
    (per-worker counts would send some to an s1 that looks idle)."""
    s1, s2 = HttpBackend("s1"), HttpBackend("s2")
    port = free_port()
    cookie = '[backends.be.cookie]\nname = "SRV"\nmode = "insert"\n'
    farm_factory(config(port, "[backends.be]\nbalance = \"leastconn\"\n" + cookie + servers("be", s1, s2),
                        workers=2, timeouts='server = "30s"'))
    pinned = [threading.Thread(target=get, args=(port, "/slow?ms=1500", {"Cookie": "SRV=s1"}))
              for _ in range(4)]
    for t in pinned:
        t.start()
        time.sleep(0.05)
    time.sleep(0.3)
    assert s1.active == 4
    got = in_threads(4, lambda i: get(port, "/slow?ms=300"), spacing=0.05)
    assert [b for _, b in got] == ["s2"] * 4
    for t in pinned:
        t.join()
    s1.close()
    s2.close()


def test_frontend_maxconn_holds_across_workers(farm_factory):
    """A frontend with maxconn 3 and 2 workers: 10 clients connect, at most
    3 are being served at any moment (the others wait in the backlog, not
    refused), and all are served."""
    backend = HttpBackend("s1")
    port = free_port()
    farm_factory(config(port, "[backends.be]\n" + servers("be", backend),
                        workers=2, frontend="maxconn = 3\n", timeouts='server = "30s"'))
    got = in_threads(10, lambda i: get(port, "/slow?ms=200"))
    assert [s for s, _ in got] == [200] * 10
    assert backend.max_active <= 3
    backend.close()


def test_a_killed_worker_gives_its_share_back(farm_factory):
    """A worker dies holding connections to a server with maxconn 2: the
    master takes its part of the shared count back, so the server is not
    left full forever."""
    backend = HttpBackend("s1")
    port = free_port()
    farm = farm_factory(config(port, "[backends.be]\n" + servers("be", backend, extra="maxconn = 2\n"),
                               workers=2, timeouts='server = "30s"\nqueue = "3s"'))
    socks = []
    for _ in range(12):                       # both workers get some of these
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    time.sleep(0.5)
    for w in farm.workers():
        w.kill()
    for s in socks:
        s.close()
    farm.wait_event("worker_spawned", count=4, timeout=10)
    time.sleep(0.5)
    # both slots are free again: two requests at once are served at once
    t0 = time.monotonic()
    got = in_threads(2, lambda i: get(port, "/slow?ms=300", timeout=10))
    assert [s for s, _ in got] == [200, 200]
    assert time.monotonic() - t0 < 2.5
    backend.close()
