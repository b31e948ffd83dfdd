#!/usr/bin/env python3
"""What one Python process can do on this machine: scenario 1 (keep-alive,
small responses, one process, wrk -t1 -c64) through two stripped-down
Python proxies, measured side by side with farm and HAProxy. A tool for
farm's developers: it says how much of farm's cost is Python itself and
how much is farm.

- ``relay``: an epoll loop that copies bytes between each client and its
  own backend connection. No HTTP at all: the floor of a Python proxy
  (the same 2 recv + 2 send per request as farm and HAProxy).
- ``parse``: the same loop, but every request and response goes through
  farm's strict parser (whole_request / whole_response) and is forwarded
  with head_bytes(): the cost of HTTP parsing alone, with no routing,
  balancing, pooling, timers, counters or logs.
- ``llhttp`` (when httptools is installed): the same with httptools as
  the parser (callbacks for the target and each field, the bytes
  forwarded as received): the best any parser can do for ``parse``.

    bench/run must have run once (it installs wrk, nginx, haproxy); then:
    .venv/bin/python bench/ceiling.py [--rounds 3] [--seconds 5]

Only 127.0.0.1, every load bounded in time; every process started here is
stopped by its process group.
"""

from __future__ import annotations

import argparse
import importlib.util
import select
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def serve(kind: str, port: int, backend: tuple[str, int]) -> None:
    """The child: a one-process proxy of the given kind on 127.0.0.1:port
    (one backend connection per client connection, opened at accept)."""
    from workers import http1

    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(1024)
    lsock.setblocking(False)
    lfd = lsock.fileno()
    ep = select.epoll()
    ep.register(lfd, select.EPOLLIN)
    # fd -> (its socket, the other socket, from the client?, the pair's parsers)
    ends: dict[int, tuple] = {}
    if kind == "llhttp":
        import httptools

        class Head:
            """What a proxy keeps of a message: target, fields, complete."""

            def __init__(self):
                self.url, self.headers, self.done = b"", [], False

            def on_message_begin(self):
                self.url, self.headers, self.done = b"", [], False

            def on_url(self, url):
                self.url += url

            def on_header(self, name, value):
                self.headers.append((name, value))

            def on_message_complete(self):
                self.done = True

        def new_parsers():
            q, r = Head(), Head()
            return ((httptools.HttpRequestParser(q), q), (httptools.HttpResponseParser(r), r))
    else:
        def new_parsers():
            return (http1.RequestParser(), http1.ResponseParser())

    def open_pair(client: socket.socket) -> None:
        server = socket.create_connection(backend)
        for s in (client, server):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        parsers = new_parsers()
        ends[client.fileno()] = (client, server, True, parsers)
        ends[server.fileno()] = (server, client, False, parsers)
        ep.register(client.fileno(), select.EPOLLIN)
        ep.register(server.fileno(), select.EPOLLIN)

    def close_pair(fd: int) -> None:
        a, b, _, _ = ends.pop(fd)
        ends.pop(b.fileno(), None)
        for s in (a, b):
            ep.unregister(s.fileno())
            s.close()

    while True:
        for fd, _ in ep.poll():
            if fd == lfd:
                try:
                    open_pair(lsock.accept()[0])
                except OSError:
                    pass
                continue
            end = ends.get(fd)
            if end is None:
                continue
            src, dst, from_client, (rp, sp) = end
            try:
                data = src.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                close_pair(fd)
                continue
            if kind == "parse":
                if from_client:
                    req = rp.whole_request(data)
                    if req is None:
                        raise SystemExit("ceiling: a request did not arrive whole")
                    sp.expect(req.method)
                    data = http1.head_bytes(req)
                else:
                    got = sp.whole_response(data)
                    if got is None:
                        raise SystemExit("ceiling: a response did not arrive whole")
                    data = http1.head_bytes(got[0]) + got[1]
            elif kind == "llhttp":
                p, head = rp if from_client else sp
                p.feed_data(data)
                if not head.done:
                    raise SystemExit("ceiling: a message did not arrive whole")
            try:
                dst.send(data)
            except OSError:
                close_pair(fd)


def child_class():
    """proxies.Proc for serve() run as a process of its own (imported late:
    the child process itself needs none of the bench modules)."""
    import proxies

    class Child(proxies.Proc):
        def __init__(self, workdir: str, kind: str):
            super().__init__(workdir)
            self.name = kind

        def write_config(self, spec) -> None:
            self.backend_port = spec.servers[0][1]    # no file: all on the command line

        def command(self) -> list[str]:
            return [sys.executable, __file__, "--child", self.name, str(self.port),
                    str(self.backend_port)]
    return Child


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, port, bport = a.child
        serve(kind, int(port), ("127.0.0.1", int(bport)))
        return 0
    import compare
    import configs
    import load
    import proxies

    configs.set_fd_budget(compare.raise_nofile())
    workdir = tempfile.mkdtemp(prefix="farm-ceiling-", dir="/dev/shm")
    backend = proxies.Backend(workdir, processes=compare.NCPU)
    backend.start_backend()
    targets = []
    child = child_class()
    try:
        kinds = ["relay", "parse"]
        if importlib.util.find_spec("httptools") is not None:
            kinds.append("llhttp")
        else:
            print("ceiling: httptools not installed, no llhttp row", file=sys.stderr)
        for p in [*(child(workdir, k) for k in kinds),
                  proxies.make("farm", workdir), proxies.make("haproxy", workdir)]:
            p.start(configs.Spec(port=proxies.free_port(), servers=backend.servers(),
                                 workdir=workdir, processes=1, mode="http"))
            targets.append(p)
        script = load.write_script(f"{workdir}/c.lua")
        res = load.interleaved({t.name: t for t in targets}, "/", a.rounds, a.seconds, script)
        hap = statistics.median(res["haproxy"]["rps"])
        print(f"{'target':10} {'req/s':>10} {'CPU us/req':>11} {'/HAProxy':>9}")
        for name, m in res.items():
            rps = statistics.median(m["rps"])
            print(f"{name:10} {rps:10,.0f} {statistics.median(m['cpu']):11.1f} {rps / hap:9.2f}")
        print(f"medians of {a.rounds} rounds x {a.seconds} s; wrk -t1 -c64; one process each")
    finally:
        for t in targets:
            t.stop()
        backend.stop()
        subprocess.run(["rm", "-rf", workdir])
    return 0


if __name__ == "__main__":
    sys.exit(main())
