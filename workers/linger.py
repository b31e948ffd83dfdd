"""Lingering close of a client connection, shared by the HTTP client
connections (workers/h1conn.py) and the stats listener (workers/stats.py).

Closing a socket that still has unread input makes the kernel send a RST,
which can destroy the response still in the client's receive buffer; RFC
9112 section 9.6 asks for a staged close instead: shut our side, then read
and drop what the client still sends until it closes (or LINGER_TIMEOUT).
"""

from __future__ import annotations

from collections.abc import Callable

from workers.loop import EPOLLIN, Loop, Timer
from workers.transport import PlainTransport

LINGER_TIMEOUT = 2.0         # seconds to wait for the client's close after ours


def start(loop: Loop, t: PlainTransport, timer: Timer, eof_seen: bool,
          on_readable: Callable[[int], None]) -> bool:
    """Shut our side of transport t and wait for the client's close: its fd
    is watched for on_readable (which should call drained()) and timer is
    armed for LINGER_TIMEOUT. False when there is nothing to wait for (the
    client's EOF was read already, or the connection is reset): close now."""
    if t.shutdown_write() or eof_seen:
        return False
    loop.watch(t.fd, EPOLLIN, on_readable)
    loop.set_timer(timer, loop.now + LINGER_TIMEOUT)
    return True


def drained(t: PlainTransport) -> bool:
    """Read and drop what the client sent; True once it has closed (EOF, or
    an error: nothing more will come either way)."""
    try:
        data = t.recv()
    except OSError:
        return True
    return data is not None and not data
