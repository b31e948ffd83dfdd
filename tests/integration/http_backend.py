"""A real HTTP/1.1 backend for the integration tests, on 127.0.0.1:0.

Threaded, blocking sockets, in the test process: a reference peer has to be
simple enough to be obviously right. It RECORDS what it receives, so a test
can assert what reached the server (and that nothing did):

- ``connections``: connections accepted so far;
- ``raw``: per connection, every byte received (a bytearray each, appended
  as bytes arrive, whether or not they parse);
- ``requests``: every request parsed, as a ``Received`` (connection number,
  method, target, version, headers, the head verbatim, the decoded body, the
  raw bytes of head and body).

Behaviour is driven by the path:

    (the verb is the last path segment, so /api/echo echoes as /echo does)
    /name              answers the server's name (Content-Length)
    /echo              echoes the request body (request chunked or CL)
    /headers           answers the request head it received, verbatim
    /chunked?n=K       a chunked body of K chunks, then a trailer X-Checksum
    /status/NNN        answers status NNN
    /slow?ms=N         answers its name after N ms
    /big?size=N        N deterministic bytes (backends.pattern)
    /close             answers with Connection: close, then closes
    /setcookie?name=N&value=V   answers with Set-Cookie: N=V; path=/
    /session           answers its name with a new session id (random hex)
                       in Set-Cookie: SID=... and X-Session
    /ws                101 to an Upgrade request, then echoes raw bytes
    /badresponse       an invalid response (a space in a header name)
    /rawhead           "X-Odd:value" (no space) and "Connection: keep-alive"
    /noframing         a body delimited by the close (no length, not chunked)
    /early             a 103 Early Hints, then the name
    /extra             a response followed by unsolicited bytes
    anything else      like /name

A request with ``Expect: 100-continue`` gets ``HTTP/1.1 100 Continue``
before its body is read. Connections are keep-alive unless the request says
otherwise (HTTP/1.0 without keep-alive, Connection: close). With
``idle_close`` set, a connection idle that long between requests is closed
by the server; with ``drop_after=N``, the request after the N-th one on a
connection is read and then the connection is closed without an answer (a
server that closed an idle connection just as a request arrived): both test
the retries on reused connections.
"""

from __future__ import annotations

import os
import pwd
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from tests.integration.backends import pattern


class BadRequest(Exception):
    pass


@dataclass
class Received:
    conn: int                      # connection number (1-based, accept order)
    method: str
    target: str
    version: str
    headers: list                  # [(name, value)] as str, in order
    head: bytes                    # the head verbatim, final CRLFCRLF included
    body: bytes = b""              # decoded body
    raw_body: bytes = b""          # body as it was on the wire
    chunked: bool = False
    trailers: bytes = b""          # raw trailer section of a chunked body

    def header(self, name: str) -> str | None:
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


class _Conn:
    """A blocking connection with a read buffer; records every byte read."""

    def __init__(self, sock: socket.socket, record: bytearray):
        self.sock = sock
        self.buf = b""
        self.record = record
        self.served = 0
        self.busy = False

    def fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.record += data
        self.buf += data
        return True

    def read_until(self, sep: bytes, limit: int = 1 << 20) -> bytes | None:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out, self.buf = self.buf[:i + len(sep)], self.buf[i + len(sep):]
                return out
            if len(self.buf) > limit or not self.fill():
                return None

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise BadRequest("EOF inside a body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class HttpBackend:
    """See the module docstring. ``close()`` stops it."""

    def __init__(self, name: str = "s1", idle_close: float | None = None,
                 conn_timeout: float = 10.0, drop_after: int = 0):
        self.name = name
        self.idle_close = idle_close
        self.drop_after = drop_after
        self.conn_timeout = conn_timeout
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.connections = 0
        self.raw: list[bytearray] = []
        self.requests: list[Received] = []
        self.active = 0                    # requests being handled now
        self.max_active = 0
        self.dropped = 0                   # requests closed without an answer (drop_after)
        self.closed = False
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept_loop, daemon=True).start()

    # -- what the tests read ---------------------------------------------------

    @property
    def bytes_received(self) -> int:
        with self.lock:
            return sum(len(r) for r in self.raw)

    def paths(self) -> list[str]:
        with self.lock:
            return [r.path for r in self.requests]

    def reset(self) -> None:
        with self.lock:
            self.connections = 0
            self.raw.clear()
            self.requests.clear()

    # -- serving ---------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self.closed:
            try:
                sock, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
                record = bytearray()
                self.raw.append(record)
                self._socks.append(sock)
            threading.Thread(target=self._run, args=(sock, number, record), daemon=True).start()

    def _run(self, sock: socket.socket, number: int, record: bytearray) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(sock, record)
        try:
            while self._one(conn, number):
                pass
        except (OSError, BadRequest):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _one(self, conn: _Conn, number: int) -> bool:
        """Serve one request; False when the connection must end."""
        conn.sock.settimeout(self.idle_close if self.idle_close else self.conn_timeout)
        try:
            if not conn.buf and not conn.fill():
                return False
        except socket.timeout:
            return False            # idle keep-alive connection: close it
        conn.sock.settimeout(self.conn_timeout)
        head = conn.read_until(b"\r\n\r\n")
        if head is None:
            return False
        lines = head[:-4].decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise BadRequest(lines[0]) from None
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k, v.strip()))
        req = Received(number, method, target, version, headers, head)
        if (req.header("expect") or "").lower() == "100-continue":
            conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        te = req.header("transfer-encoding")
        if te is not None and te.lower().endswith("chunked"):
            self._read_chunked(conn, req)
        elif req.header("content-length") is not None:
            req.raw_body = req.body = conn.read_exact(int(req.header("content-length")))
        with self.lock:
            self.requests.append(req)
            if self.drop_after and conn.served >= self.drop_after:
                # as if this keep-alive connection had timed out on the
                # server just as the request arrived: close, no answer
                self.dropped += 1
                return False
            conn.served += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            conn.busy = True
        try:
            return self._answer(conn, req)
        finally:
            self._not_busy(conn)

    def _not_busy(self, conn: _Conn) -> None:
        """The request stops counting as active. Done *before* the answer
        is sent: once the proxy has it, it may send the next request at
        once, which must not see this one still active (max_active)."""
        with self.lock:
            if conn.busy:
                conn.busy = False
                self.active -= 1

    def _read_chunked(self, conn: _Conn, req: Received) -> None:
        req.chunked = True
        raw = bytearray()
        body = bytearray()
        while True:
            line = conn.read_until(b"\r\n")
            if line is None:
                raise BadRequest("EOF in a chunk size")
            raw += line
            size = int(line[:-2].split(b";")[0].strip(), 16)
            if size == 0:
                break
            data = conn.read_exact(size + 2)
            raw += data
            body += data[:-2]
        trailers = bytearray()
        while True:
            line = conn.read_until(b"\r\n")
            if line is None:
                raise BadRequest("EOF in trailers")
            raw += line
            if line == b"\r\n":
                break
            trailers += line
        req.raw_body = bytes(raw)
        req.body = bytes(body)
        req.trailers = bytes(trailers)

    def _keep_alive(self, req: Received) -> bool:
        tokens = {t.strip().lower() for v in req.header_all("connection") for t in v.split(",")}
        if req.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    def _answer(self, conn: _Conn, req: Received) -> bool:
        url = urlsplit(req.target)
        path = url.path
        q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        keep = self._keep_alive(req)

        def send(data: bytes) -> None:
            self._not_busy(conn)
            conn.sock.sendall(data)
        extra: list[tuple[str, str]] = []
        status = 200
        body = self.name.encode()
        # the verb is the last path segment ("/api/echo" echoes too), or
        # "status" followed by the code: routed tests keep their prefixes
        parts = path.rstrip("/").split("/")
        verb = parts[-1]
        if len(parts) >= 2 and parts[-2] == "status":
            verb = "status"
        if verb == "echo":
            body = req.body
        elif verb == "headers":
            body = req.head
        elif verb == "big":
            body = pattern(int(q.get("size", "1000")))
        elif verb == "status":
            status = int(parts[-1])
            body = b"" if status in (204, 304) or status < 200 else f"status {status}".encode()
        elif verb == "slow":
            time.sleep(int(q.get("ms", "100")) / 1000)
        elif verb == "close":
            keep = False
        elif verb == "setcookie":
            extra.append(("Set-Cookie", f"{q.get('name', 'SRV')}={q.get('value', self.name)}; path=/"))
        elif verb == "session":
            # a new session id of this server's making, as an application
            # server hands out at login
            sid = os.urandom(8).hex()
            extra.append(("Set-Cookie", f"SID={sid}; path=/; HttpOnly"))
            extra.append(("X-Session", sid))
        elif verb == "noframing":
            # HTTP/1.1 without Content-Length or chunked: the body ends
            # when the server closes
            send(b"HTTP/1.1 200 OK\r\nX-Server: " + self.name.encode() + b"\r\n\r\n" + body * 3)
            return False
        elif verb == "early":
            send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        elif verb == "extra":
            # a complete response followed by bytes nobody asked for
            send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"
                 b"Content-Length: 5\r\n\r\nbogus")
            return keep
        elif verb == "rawhead":
            # a head a proxy may forward as received: odd spacing, a plain
            # Connection: keep-alive (hop-by-hop, to be removed)
            send(b"HTTP/1.1 200 OK\r\nX-Odd:value\r\nConnection: keep-alive\r\n"
                 b"Content-Length: 2\r\n\r\nok")
            return keep
        elif verb == "badresponse":
            send(b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 2\r\n\r\nok")
            return False
        elif verb == "chunked":
            n = int(q.get("n", "3"))
            chunks = [f"chunk {i} of {self.name};".encode() for i in range(n)]
            out = ["HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                   "Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n"
                   + ("" if keep else "Connection: close\r\n") + "\r\n"]
            wire = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
            wire += b"0\r\nX-Checksum: %d\r\n\r\n" % sum(map(len, chunks))
            send(out[0].encode() + wire)
            return keep
        elif verb == "ws":
            if (req.header("upgrade") or "").lower() != "websocket":
                status, body = 426, b"upgrade required"
            else:
                send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\n")
                conn.sock.settimeout(self.conn_timeout)
                if conn.buf:
                    send(conn.buf)
                    conn.buf = b""
                while True:
                    data = conn.sock.recv(65536)
                    if not data:
                        conn.sock.shutdown(socket.SHUT_WR)
                        return False
                    conn.record += data
                    send(data)
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Other')}\r\nX-Server: {self.name}\r\n"
        for k, v in extra:
            head += f"{k}: {v}\r\n"
        if not (status < 200 or status in (204, 304)):
            head += f"Content-Length: {len(body)}\r\n"
        if not keep:
            head += "Connection: close\r\n"
        send(head.encode() + b"\r\n" + (b"" if req.method == "HEAD" else body))
        return keep

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
            302: "Found", 304: "Not Modified", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 418: "I'm a teapot", 426: "Upgrade Required",
            500: "Internal Server Error", 503: "Service Unavailable"}


# -- client side ------------------------------------------------------------

@dataclass
class Resp:
    status: int
    reason: str
    version: str
    headers: list                  # [(name, value)] as str
    body: bytes                    # decoded body
    head: bytes                    # the head verbatim
    raw_body: bytes = b""          # the body as on the wire (chunk framing kept)
    trailers: bytes = b""

    def header(self, name: str) -> str | None:
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]


class RawClient:
    """A blocking client socket that sends bytes as given and parses the
    responses strictly enough for tests (Content-Length, chunked, or up to
    the close)."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, target: str, headers=(), body: bytes | None = None,
                host: str | None = "test.local", version: str = "HTTP/1.1") -> Resp:
        self.send(build_request(method, target, headers, body, host, version))
        return self.read_response(method)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _until(self, sep: bytes) -> bytes:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out, self.buf = self.buf[:i + len(sep)], self.buf[i + len(sep):]
                return out
            if not self._fill():
                raise EOFError(f"connection closed; buffered {self.buf[:200]!r}")

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed inside a body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, method: str = "GET", interim: bool = False) -> Resp:
        """The next response (1xx interim ones are skipped unless interim)."""
        while True:
            head = self._until(b"\r\n\r\n")
            lines = head[:-4].decode("latin-1").split("\r\n")
            version, code, *rest = lines[0].split(" ", 2)
            status = int(code)
            headers = []
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers.append((k, v.strip()))
            r = Resp(status, rest[0] if rest else "", version, headers, b"", head)
            if 100 <= status < 200 and status != 101 and not interim:
                continue
            break
        if method == "HEAD" or status < 200 or status in (204, 304):
            return r
        te = r.header("transfer-encoding")
        cl = r.header("content-length")
        if te is not None and te.lower().endswith("chunked"):
            raw = bytearray()
            body = bytearray()
            while True:
                line = self._until(b"\r\n")
                raw += line
                size = int(line[:-2].split(b";")[0].strip(), 16)
                if size == 0:
                    break
                data = self._exact(size + 2)
                raw += data
                body += data[:-2]
            trailers = bytearray()
            while True:
                line = self._until(b"\r\n")
                raw += line
                if line == b"\r\n":
                    break
                trailers += line
            r.raw_body, r.body, r.trailers = bytes(raw), bytes(body), bytes(trailers)
        elif cl is not None:
            r.raw_body = r.body = self._exact(int(cl))
        else:
            while self._fill():
                pass
            r.raw_body = r.body = self.buf
            self.buf = b""
        return r

    def read_all(self) -> bytes:
        """Everything until the peer closes (what is buffered included)."""
        while True:
            try:
                if not self._fill():
                    break
            except ConnectionResetError:
                break
        out, self.buf = self.buf, b""
        return out

    def is_closed(self, timeout: float = 2.0) -> bool:
        """True if the peer closes (EOF or reset) within timeout with
        nothing more to read."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def build_request(method: str, target: str, headers=(), body: bytes | None = None,
                  host: str | None = "test.local", version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    names = {k.lower() for k, _ in headers}
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


# -- nginx as a fast reference backend ----------------------------------------

NGINX = "/usr/sbin/nginx"
NGINX_BODY = "hello from nginx\n"


class Nginx:
    """nginx (Debian's nginx-light) serving a fixed body on 127.0.0.1:port,
    everything (pid, logs, temp paths) under `tmp`; `/big` serves a file of
    `big_size` deterministic bytes."""

    def __init__(self, tmp, big_size: int = 1_000_000):
        import subprocess

        from tests.integration.backends import free_port
        self.tmp = tmp
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        (tmp / "www").mkdir(exist_ok=True)
        (tmp / "www" / "big").write_bytes(pattern(big_size))
        conf = tmp / "nginx.conf"
        # as root nginx would run its worker as nobody, who cannot enter
        # pytest's private tmp directory: keep the worker as the current user
        user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.getuid() == 0 else ""
        conf.write_text(f"""
daemon off;
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{self.port} reuseport;
        location = /big {{ root {tmp}/www; }}
        location / {{ default_type text/plain; return 200 "{NGINX_BODY.strip()}\\n"; }}
    }}
}}
""")
        self.proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf), "-e", f"{tmp}/nginx-error.log"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        self.close()
        raise RuntimeError("nginx did not start: " + (tmp / "nginx-error.log").read_text(errors="replace"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait()
