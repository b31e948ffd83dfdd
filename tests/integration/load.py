"""Bounded HTTP load for reload tests: keep-alive and new-connection clients
built on http.client, counting every failure (connection error or non-2xx).

Every loop stops by itself after `seconds` or `max_requests`, and only
targets 127.0.0.1."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections import Counter


class Load:
    """With tls (an ssl.SSLContext for the client side), the same load over
    HTTPS to `host` (a name the certificate has; the connection goes to
    127.0.0.1 whatever the name: see connect)."""

    def __init__(self, port: int, keepalive: int = 4, newconn: int = 2,
                 seconds: float = 5.0, max_requests: int = 200_000,
                 tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"):
        self.port = port
        self.tls = tls
        self.host = host
        self.seconds = seconds
        self.max_requests = max_requests
        self.ok = 0
        self.failures: list[str] = []
        self.statuses: Counter = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = ([threading.Thread(target=self.keepalive_loop) for _ in range(keepalive)]
                        + [threading.Thread(target=self.newconn_loop) for _ in range(newconn)])

    def start(self) -> "Load":
        self.deadline = time.monotonic() + self.seconds
        for t in self.threads:
            t.start()
        return self

    def join(self) -> "Load":
        for t in self.threads:
            t.join(self.seconds + 10)
        return self

    def done(self) -> bool:
        return (self.stop.is_set() or time.monotonic() >= self.deadline
                or self.ok + len(self.failures) >= self.max_requests)

    def record(self, status: int | None, error: str | None = None) -> None:
        with self.lock:
            if error is None and status is not None and 200 <= status < 300:
                self.ok += 1
            else:
                self.failures.append(error or f"status {status}")
            if status is not None:
                self.statuses[status] += 1

    def one(self, conn: http.client.HTTPConnection) -> bool:
        """One GET; True if the connection may be reused."""
        try:
            conn.request("GET", "/")
            r = conn.getresponse()
            r.read()
            self.record(r.status)
            return not r.will_close
        except Exception as e:      # noqa: BLE001 - every failure is counted
            self.record(None, f"{type(e).__name__}: {e}")
            return False

    def connect(self) -> http.client.HTTPConnection:
        if self.tls is None:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=10, context=self.tls)
        # the name is the certificate's (SNI, verification), the address 127.0.0.1
        conn._create_connection = lambda addr, timeout, source: socket.create_connection(
            ("127.0.0.1", addr[1]), timeout, source)
        return conn

    def keepalive_loop(self) -> None:
        conn = None
        while not self.done():
            if conn is None:
                conn = self.connect()
            if not self.one(conn):
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def newconn_loop(self) -> None:
        while not self.done():
            conn = self.connect()
            self.one(conn)
            conn.close()
