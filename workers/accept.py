"""Accepting the connections of a listening socket: the loop's handler of
a listener (workers/worker.py registers one per listening socket), run
for every new connection, hence compiled (farm/build.py).

The connection is counted before it is accepted: maxconn (the frontend's,
and global.maxconn) holds over all workers, atomically (workers/runtime.py
Gauge); a full one leaves clients in the kernel's backlog until a
connection ends somewhere, and the worker stops polling the listener
(Worker.pause_full). The accepted socket is made non-blocking with
TCP_NODELAY and handed to the frontend's session class (an HTTP or TCP
session, maybe behind TLS, PROXY protocol or tcp-request rules). A tls
bind's sockets are made of the class its TLS layer needs at once
(workers/transport.py TlsSocket)."""

from __future__ import annotations

import _socket
import socket
import traceback

from farm.shm import C_DENIED_CONN
from workers.counting import connection as count_connection
from workers.tables import REJECTED
from workers.loop import is_fd_exhaustion

ACCEPT_BATCH = 64           # accepts per readiness, for fairness between listeners
_IPPROTO_TCP, _TCP_NODELAY = int(socket.IPPROTO_TCP), int(socket.TCP_NODELAY)


class Acceptor:
    """The handler of one listening socket of frontend fe (called with the
    epoll events; it accepts until the backlog is empty or ACCEPT_BATCH
    connections were taken). worker is what it calls back: pause_full(fe)
    when a maxconn is reached, out_of_fds() when the process has no
    descriptor left, and its log when a session could not be made.
    sock_class makes the accepted socket objects (the C socket type, or
    TlsSocket for a tls bind)."""

    __slots__ = ("worker", "ctx", "fe", "accept_fd", "family", "sock_type", "proto",
                 "session_class", "sock_class")

    def __init__(self, worker, ctx, fe, lsock: socket.socket, session_class,
                 sock_class=_socket.socket):
        self.worker = worker
        self.ctx = ctx
        self.fe = fe
        # socket.accept() is Python code that reads the listener's family
        # and type through properties converting them to enums, twice per
        # connection; the C accept under it and the numbers read once here
        # make the same socket object
        self.accept_fd = lsock._accept
        self.family = int(lsock.family)
        self.sock_type = int(lsock.type)
        self.proto = lsock.proto
        self.session_class = session_class
        self.sock_class = sock_class

    def __call__(self, events: int) -> None:
        fe = self.fe
        ctx = self.ctx
        fe_g = fe.g
        ctx_g = ctx.g
        for _ in range(ACCEPT_BATCH):
            n_fe = fe_g.reserve(fe.maxconn)
            if not n_fe:
                self.worker.pause_full(fe)
                return
            n_all = ctx_g.reserve(ctx.maxconn)
            if not n_all:
                fe_g.give()
                self.worker.pause_full(fe)
                return
            try:
                fd, caddr = self.accept_fd()
            except BlockingIOError:
                fe_g.give()
                ctx_g.give()
                return
            except OSError as e:
                fe_g.give()
                ctx_g.give()
                if is_fd_exhaustion(e):
                    self.worker.out_of_fds()
                    return
                continue  # ECONNABORTED and friends: that client is gone
            # the C socket type: socket.socket adds Python frames to its
            # creation and to detach (PlainTransport.drop_socket), and the
            # sessions only call its C methods (ssl's wrap_socket too)
            csock = self.sock_class(self.family, self.sock_type, self.proto, fd)
            fe_g.confirm(n_fe)
            ctx_g.confirm(n_all)
            csock.setblocking(False)
            csock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
            count_connection(fe)
            try:
                if self.session_class(ctx, fe, csock, caddr) is REJECTED:
                    fe.c[C_DENIED_CONN] += 1    # tcp_request reject: closed
                    fe_g.give()
                    ctx_g.give()
            except Exception:
                self.worker.log.error("session_failed", frontend=fe.name,
                                      error=traceback.format_exc())
                csock.close()
                fe_g.give()
                ctx_g.give()
