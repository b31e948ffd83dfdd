"""Receiving the PROXY protocol: the phase between accept and the session.

On a bind with accept_proxy = true, an accepted connection first belongs
to a ProxyHeaderWait. It reads the PROXY header (v1 or v2, parsed by
workers/proxyproto.py) and only then makes the connection's real session
(HTTP, TLS, TCP: whatever the bind would have made) with the addresses
from the header. A connection that sends anything else, closes, times out
(timeout client, as a TLS handshake) or comes from a source outside the
frontend's proxy_trusted networks is closed and logged as HAProxy logs a
connection that failed before any request ("<frontend>/<bind>: <message>").

Reading exactly the header: the socket is read with MSG_PEEK, and only the
header's bytes are taken from it. What follows it (the HTTP request, a TLS
ClientHello) stays in the kernel for the session to read as if the
connection had just been accepted, so neither TLS nor HTTP needs to know
there was a header. While the header is incomplete every byte seen belongs
to it and is taken (so level-triggered epoll does not report the same
bytes again).

The session gets the client address as a ProxiedAddress: the (ip, port)
tuple every session reads, carrying the parsed header in .proxy (for the
destination port, the fc_pp_* fetches and what is sent on to servers). A
v1 UNKNOWN or v2 LOCAL header keeps the socket's own addresses.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import traceback

from farm.logs import connection_error_line, get_logger
from workers import proxyproto
from workers.loop import EPOLLIN
from workers.proxyproto import NEED_MORE, ProxyError, ProxyHeader

INF = float("inf")
PEEK_SIZE = proxyproto.V2_MAX_DEFAULT    # enough for any v1 line and the v2 headers accepted


class ProxiedAddress(tuple):
    """A client address (ip, port) that came from a PROXY header, which
    .proxy holds: everything that reads caddr[0] and caddr[1] works
    unchanged. (No __slots__: a tuple subclass cannot have any.)"""

    proxy: ProxyHeader


def proxied(caddr: tuple, header: ProxyHeader) -> ProxiedAddress:
    """The address a session sees for a connection that sent header: the
    header's source, or the socket's for a LOCAL / UNKNOWN header."""
    if header.local:
        out = ProxiedAddress((caddr[0], caddr[1]))
    else:
        out = ProxiedAddress((header.src, header.src_port))
    out.proxy = header
    return out


def trusted_matcher(networks: tuple):
    """networks (ipaddress networks; () trusts every source) -> a function
    ip_text -> bool. An IPv4-mapped IPv6 source is tested as IPv4."""
    if not networks:
        return None
    nets = tuple(networks)

    def trusted(ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in n for n in nets)
    return trusted


def session_class(inner, fe_cfg, bind):
    """The session class of an accept_proxy bind: waits for the header,
    then makes inner(ctx, fe, csock, caddr) with the header's addresses."""
    trusted = trusted_matcher(fe_cfg.proxy_trusted)
    name = bind.name

    def accepted(ctx, fe, csock, caddr):
        return ProxyHeaderWait(ctx, fe, csock, caddr, inner, name, trusted)
    return accepted


class ProxyHeaderWait:
    """An accepted connection waiting for its PROXY header (a session as
    the worker sees one: in ctx.sessions, with fe, drain() and kill())."""

    __slots__ = ("ctx", "loop", "fe", "sock", "fd", "caddr", "inner", "bind_name", "buf",
                 "timer", "accept_time", "done")

    def __init__(self, ctx, fe, csock: socket.socket, caddr: tuple, inner, bind_name: str,
                 trusted=None):
        self.ctx = ctx
        self.loop = loop = ctx.loop
        self.fe = fe
        self.sock = csock
        self.fd = csock.fileno()
        self.caddr = caddr
        self.inner = inner
        self.bind_name = bind_name
        self.buf = b""
        self.accept_time = time.time()
        self.done = False
        self.timer = None
        ctx.sessions.add(self)
        if trusted is not None and not trusted(caddr[0]):
            self.refuse(proxyproto.PRX_UNTRUSTED)
            return
        self.timer = loop.timer(self.on_timeout)
        loop.set_timer(self.timer, loop.now + (fe.cfg.timeouts.client or INF))
        loop.add(self.fd, EPOLLIN, self.on_event)
        self.on_event(EPOLLIN)      # the header usually came with the handshake's ACK

    def on_event(self, events: int) -> None:
        if self.done:
            return
        sock = self.sock
        try:
            data = sock.recv(PEEK_SIZE, socket.MSG_PEEK)
        except BlockingIOError:
            return
        except OSError:
            self.refuse(proxyproto.PRX_ABORT)
            return
        if not data:
            self.refuse(proxyproto.PRX_TRUNCATED if self.buf else proxyproto.PRX_EMPTY)
            return
        buf = self.buf + data
        try:
            header = proxyproto.parse(buf)
        except ProxyError as e:
            self.refuse(str(e))
            return
        try:
            if header is NEED_MORE:
                sock.recv(len(data))        # all of it is header: take it
                self.buf = buf
                return
            sock.recv(header.length - len(self.buf))
        except OSError:
            self.refuse(proxyproto.PRX_ABORT)
            return
        self.hand_over(header)

    def hand_over(self, header: ProxyHeader) -> None:
        """The header is read: the connection becomes the bind's session."""
        self.done = True
        self.timer.release()
        self.loop.remove(self.fd)
        self.ctx.sessions.discard(self)   # the session takes over the connection's count
        caddr = proxied(self.caddr, header)
        try:
            self.inner(self.ctx, self.fe, self.sock, caddr)
        except Exception:
            # as the acceptor does for a session that cannot start (not
            # raised: from __init__, the acceptor would release it twice)
            get_logger(proc="worker").error("session_failed", frontend=self.fe.name,
                                            error=traceback.format_exc())
            self.sock.close()
            self.ctx.session_ended(self)

    def on_timeout(self) -> None:
        if not self.done:
            self.refuse(proxyproto.PRX_TIMEOUT)

    def refuse(self, message: str) -> None:
        """Close the connection and log why (no session was made)."""
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.release()
            self.loop.remove(self.fd)
        ctx = self.ctx
        if ctx.access.enabled:
            ctx.access.write(connection_error_line(ctx.log_format, self.caddr[0], self.caddr[1],
                                                   self.accept_time, self.fe.name,
                                                   self.bind_name, message))
        # the slot goes back before the client can see the close: a client
        # that connects again at once must find it free
        ctx.session_ended(self)
        self.sock.close()

    def drain(self) -> None:
        """Graceful stop: the header is still awaited (timeout client bounds it)."""

    def kill(self) -> None:
        self.refuse("Killed while waiting for PROXY protocol header")
