"""Lingering close of a client connection, shared by the HTTP sessions
(workers/http.py) and the stats listener (workers/stats.py).

Closing a socket that still has unread input makes the kernel send a RST,
which can destroy the response still in the client's receive buffer; RFC
9112 section 9.6 asks for a staged close instead: shut our side, then read
and drop what the client still sends until it closes (or LINGER_TIMEOUT).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from workers.loop import EPOLLIN, Loop, Timer

LINGER_TIMEOUT = 2.0         # seconds to wait for the client's close after ours
RECV_SIZE = 65536


def start(loop: Loop, sock: socket.socket, timer: Timer, eof_seen: bool,
          on_readable: Callable[[int], None]) -> bool:
    """Shut our side of sock and wait for the client's close: sock's fd is
    watched for on_readable (which should call drained()) and timer is
    armed for LINGER_TIMEOUT. False when there is nothing to wait for
    (the shutdown failed, or the client's EOF was read already): close now."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return False
    if eof_seen:
        return False
    loop.watch(sock.fileno(), EPOLLIN, on_readable)
    loop.set_timer(timer, loop.now + LINGER_TIMEOUT)
    return True


def drained(sock: socket.socket) -> bool:
    """Read and drop what the client sent; True once it has closed (EOF, or
    an error: nothing more will come either way)."""
    try:
        return not sock.recv(RECV_SIZE)
    except BlockingIOError:
        return False
    except OSError:
        return True
