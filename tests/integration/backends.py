"""Real backend servers for the integration tests, on 127.0.0.1.

Each runs in a thread of the test process with blocking sockets: simple and
obviously correct, which is what a reference peer should be.
"""

from __future__ import annotations

import hashlib
import socket
import threading


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A threaded TCP server; subclasses implement handle(conn)."""

    def __init__(self, port: int | None = None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port or 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.connections = 0
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def handle(self, conn: socket.socket) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class TagServer(Server):
    """Sends its name and closes: tells which server a connection reached."""

    def __init__(self, name: str, port: int | None = None):
        self.name = name
        super().__init__(port)

    def handle(self, conn):
        conn.sendall(self.name.encode())


class EchoServer(Server):
    """Echoes everything; forwards a half-close (EOF in -> shutdown out)."""

    def handle(self, conn):
        while True:
            data = conn.recv(262144)
            if not data:
                conn.shutdown(socket.SHUT_WR)
                return
            conn.sendall(data)


class DigestServer(Server):
    """Reads until EOF, then answers the SHA-256 of what it read: the answer
    can only arrive if the client's half-close was forwarded."""

    def handle(self, conn):
        h = hashlib.sha256()
        n = 0
        while True:
            data = conn.recv(262144)
            if not data:
                break
            h.update(data)
            n += len(data)
        conn.sendall(f"{n} {h.hexdigest()}".encode())


class SourceServer(Server):
    """Sends `size` deterministic bytes and closes."""

    def __init__(self, size: int, port: int | None = None):
        self.payload = pattern(size)
        super().__init__(port)

    def handle(self, conn):
        conn.sendall(self.payload)


def pattern(size: int) -> bytes:
    """Deterministic, non-repeating-looking bytes (not all zeros)."""
    block = hashlib.sha256(b"farm").digest() * 2048     # 64 KiB
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(i.to_bytes(8, "big")).digest()[:1] + block[: min(len(block), size - len(out) - 1)]
        i += 1
    return bytes(out[:size])
