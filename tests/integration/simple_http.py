"""A small HTTP/1.1 backend whose health can be switched, for health and
reload tests: GET /healthz answers `health_status` (200 by default), any
other path answers the server's name. Keep-alive, threaded, 127.0.0.1."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class NamedServer:
    def __init__(self, name: str):
        self.name = name
        self.health_status = 200
        self.requests = 0
        self.health_checks = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/healthz":
                    with owner.lock:
                        owner.health_checks += 1
                    status, body = owner.health_status, b"health\n"
                else:
                    with owner.lock:
                        owner.requests += 1
                    status, body = 200, owner.name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
