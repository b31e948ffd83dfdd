#!/usr/bin/env python3
"""A slow HTTP/1.1 server for the maxconn scenario: every request is
answered after DELAY_MS, and the server counts how many requests it holds
at once (the number a server maxconn must bound).

    python3 bench/slow_backend.py PORT DELAY_MS

GET /_peak answers "PEAK NOW": the highest number of requests held at once
since the last /_peak (which starts counting again), and the number held
now; it is not delayed or counted.
One thread per connection, keep-alive: the server itself never queues, so
whatever bounds the peak is the proxy in front. Listens on 127.0.0.1 only;
runs until killed (bench/compare.py stops it).
"""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"slow farm bench backend\n"


class Counter:
    """Requests held now, and the most held at once since the last take()."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1

    def take(self) -> tuple[int, int]:
        with self.lock:
            peak, self.peak = self.peak, self.now
            return peak, self.now


def handler(delay: float, counter: Counter) -> type:
    class Slow(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/_peak":
                body = "{} {}\n".format(*counter.take()).encode()
            else:
                counter.enter()
                try:
                    time.sleep(delay)
                finally:
                    counter.leave()
                body = BODY
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    return Slow


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    port, delay_ms = int(argv[0]), float(argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), handler(delay_ms / 1000, Counter()))
    server.daemon_threads = True
    server.request_queue_size = 1024
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
