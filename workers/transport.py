"""Transports: the layer that owns a connection's socket.

Everything above a transport (the client connections, the server side)
deals in plaintext bytes and never touches the socket object itself: it
calls recv(), send(), shutdown_write() and close() here. A plain transport
is a thin wrapper over a non-blocking socket; the TLS transport (added with
TLS termination) keeps the same four calls and hides the handshake and the
record layer behind them, so HTTP/1.1, HTTP/2 and the TCP relay run over
either without knowing which.

Conventions of every transport:
- recv() returns the bytes available now (up to RECV_SIZE), b"" at the
  peer's end of stream, or None when nothing can be read yet; a reset or
  another socket error raises OSError.
- send(data) returns how many bytes of data were taken (0 when the socket
  cannot take any now); a broken connection raises OSError. A caller keeps
  what was not taken and offers it again later, the same bytes first.
- wants_write is True when the transport itself needs EPOLLOUT to make
  progress (TLS: a record half written); a plain socket never does.
"""

from __future__ import annotations

import os
import socket

RECV_SIZE = 65536


class Transport:
    """What every transport offers (see the module docstring); the base of
    the plain and the TLS transports, so that the layers above call either
    through one interface."""

    __slots__ = ("sock", "fd")

    wants_write = False
    secure = False          # what ssl_fc reads: not a TLS connection

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fd = sock.fileno()

    def recv(self) -> bytes | None:
        raise NotImplementedError

    def send(self, data: bytes) -> int:
        raise NotImplementedError

    def shutdown_write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()

    def local_port(self) -> int:
        return self.sock.getsockname()[1]


class PlainTransport(Transport):
    """A non-blocking TCP socket (client or server side)."""

    __slots__ = ()

    # os.read/os.write on the descriptor: the same system calls as the
    # socket's recv/send without their argument parsing, on every request
    def recv(self) -> bytes | None:
        try:
            return os.read(self.fd, RECV_SIZE)
        except BlockingIOError:
            return None

    def send(self, data: bytes) -> int:
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0

    def shutdown_write(self) -> None:
        """Send our FIN (half-close); errors mean the peer is gone already."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
