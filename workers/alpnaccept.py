"""TLS-ALPN-01 validations (RFC 8737): the phase between accept and the
TLS session on the tls binds of a frontend that proves its domains with
tls-alpn-01.

An ACME server validating DOMAIN connects to port 443, sends a ClientHello
with SNI DOMAIN and ALPN "acme-tls/1" only, and expects a self-signed
certificate for DOMAIN carrying the acmeIdentifier extension (made by the
ACME child and published on the board, farm/challenges.py), ALPN
acme-tls/1 negotiated, then nothing: the connection ends after the
handshake. Python's SNI callback cannot see ALPN, so the choice of context
is made before OpenSSL sees the connection:

- session_class() wraps the bind's session class. While no validation is
  pending anywhere (one word of the board: Board.alpn_pending()), an
  accepted connection goes straight to it: the only cost on ordinary
  connections, and only on these frontends.
- While one is pending, HelloPeek reads the ClientHello with MSG_PEEK
  (workers/clienthello.py parses it; nothing is taken from the socket, so
  OpenSSL reads it as if the connection had just been accepted). A
  ClientHello split over several reads is waited for: the bytes left
  unread would wake a level-triggered epoll at once again, so the socket
  then waits for EPOLLRDHUP only (a client that closes is seen at once)
  and is peeked at again every REPEEK seconds, bounded by timeout client
  (a hello that does not fit one segment is rare).
- A ClientHello offering acme-tls/1 for a domain on the board gets
  AlpnChallenge: a TLS transport over the challenge context, the handshake,
  then close_notify and close. Anything else (other protocols, another
  name, not a ClientHello at all, EOF) goes to the bind's session as
  usual, which says what went wrong if anything did.
"""

from __future__ import annotations

import select
import socket
import time
import traceback

from farm import acme, challenges, tlsconf
from farm.logs import connection_error_line, get_logger
from workers import clienthello
from workers.loop import EPOLLIN, EPOLLOUT
from workers.transport import SSL_TIMEOUT, HandshakeError, TlsTransport

INF = float("inf")
PEEK_SIZE = clienthello.MAX_HELLO + 1024      # the largest hello accepted, and its record headers
REPEEK = 0.02                                 # seconds between two looks at an incomplete hello
_CLOSED = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
ALPN = acme.ACME_TLS_ALPN.encode("ascii")


def session_class(inner, bind_name: str):
    """The session class of a tls bind proving domains by tls-alpn-01:
    inner(ctx, fe, csock, caddr) unless a validation is pending."""

    def accepted(ctx, fe, csock, caddr):
        board = challenges.BOARD
        if board is None or not board.alpn_pending():
            return inner(ctx, fe, csock, caddr)
        return HelloPeek(ctx, fe, csock, caddr, inner, bind_name)
    return accepted


class _Contexts:
    """This worker's challenge contexts, made from the board when first
    asked for, forgotten when the board changes."""

    def __init__(self) -> None:
        self.seq = -1
        self.pems: dict[str, bytes] = {}
        self.made: dict[str, object] = {}

    def get(self, board: challenges.Board, domain: str):
        """The context answering a validation of domain, or None."""
        seq = board.sequence()
        if seq != self.seq:
            self.seq = seq
            self.pems = board.snapshot()[1]
            self.made = {}
        ctx = self.made.get(domain)
        if ctx is None:
            pem = self.pems.get(domain)
            if pem is None:
                return None
            try:
                ctx = tlsconf.challenge_context(pem, acme.ACME_TLS_ALPN)
            except tlsconf.TlsError as e:
                get_logger(proc="worker").error("acme_challenge_failed", challenge="tls-alpn-01",
                                                domain=domain, error=str(e))
                return None
            self.made[domain] = ctx
        return ctx


CONTEXTS = _Contexts()


class HelloPeek:
    """An accepted connection whose ClientHello is read before it gets a
    session (a session as the worker sees one: in ctx.sessions, with fe,
    drain() and kill())."""

    __slots__ = ("ctx", "loop", "fe", "sock", "fd", "caddr", "inner", "bind_name", "timer",
                 "repeek", "accept_time", "done")

    def __init__(self, ctx, fe, csock: socket.socket, caddr: tuple, inner, bind_name: str):
        self.ctx = ctx
        self.loop = loop = ctx.loop
        self.fe = fe
        self.sock = csock
        self.fd = csock.fileno()
        self.caddr = caddr
        self.inner = inner
        self.bind_name = bind_name
        self.accept_time = time.time()
        self.done = False
        ctx.sessions.add(self)
        self.timer = loop.timer(self.on_timeout)
        loop.set_timer(self.timer, loop.now + (fe.cfg.timeouts.client or INF))
        self.repeek = None
        loop.add(self.fd, EPOLLIN, self.on_event)
        self.on_event(EPOLLIN)      # the ClientHello usually came right after the handshake's ACK

    def on_event(self, events: int) -> None:
        if self.done:
            return
        try:
            data = self.sock.recv(PEEK_SIZE, socket.MSG_PEEK)
        except BlockingIOError:
            return
        except OSError:
            self.hand_over(None)     # reset: the session sees it and says so
            return
        if not data:
            self.hand_over(None)
            return
        try:
            hello = clienthello.parse(data)
        except clienthello.NotClientHello:
            self.hand_over(None)
            return
        if hello is clienthello.NEED_MORE:
            if events & _CLOSED:
                self.hand_over(None)      # closed mid-hello: the session says so
            else:
                self.wait_more()
            return
        context = None
        if hello.sni and ALPN in hello.alpn:
            board = challenges.BOARD
            if board is not None:
                context = CONTEXTS.get(board, hello.sni)
        self.hand_over(context, hello.sni)

    def wait_more(self) -> None:
        """Part of the hello is there: look again in REPEEK seconds."""
        loop = self.loop
        if self.repeek is None:
            loop.modify(self.fd, select.EPOLLRDHUP)
            self.repeek = loop.timer(lambda: self.on_event(EPOLLIN))
        loop.set_timer(self.repeek, loop.now + REPEEK)

    def stop_watching(self) -> None:
        self.timer.release()
        if self.repeek is not None:
            self.repeek.release()
        self.loop.remove(self.fd)

    def hand_over(self, context, domain: str | None = None) -> None:
        """The ClientHello is known (or will never be): the connection
        becomes a validation (context) or the bind's session (None)."""
        self.done = True
        self.stop_watching()
        self.ctx.sessions.discard(self)   # the session takes over the connection's count
        try:
            if context is not None:
                AlpnChallenge(self.ctx, self.fe, self.sock, self.caddr, context, self.bind_name, domain)
            else:
                self.inner(self.ctx, self.fe, self.sock, self.caddr)
        except Exception:
            # as the acceptor does for a session that cannot start
            get_logger(proc="worker").error("session_failed", frontend=self.fe.name,
                                            error=traceback.format_exc())
            self.sock.close()
            self.ctx.session_ended(self)

    def on_timeout(self) -> None:
        if self.done:
            return
        self.done = True
        self.stop_watching()
        ctx = self.ctx
        if ctx.access.enabled:
            ctx.access.write(connection_error_line(ctx.log_format, self.caddr[0], self.caddr[1],
                                                   self.accept_time, self.fe.name, self.bind_name,
                                                   SSL_TIMEOUT))
        ctx.session_ended(self)
        self.sock.close()

    def drain(self) -> None:
        """Graceful stop: the ClientHello is still awaited (timeout client bounds it)."""

    def kill(self) -> None:
        self.on_timeout()


class AlpnChallenge:
    """One TLS-ALPN-01 validation: the handshake with the challenge
    certificate, then close (RFC 8737 section 3: no data follows)."""

    __slots__ = ("ctx", "loop", "fe", "t", "fd", "caddr", "domain", "timer", "accept_time", "done")

    def __init__(self, ctx, fe, csock: socket.socket, caddr: tuple, context, bind_name: str,
                 domain: str):
        self.ctx = ctx
        self.loop = loop = ctx.loop
        self.fe = fe
        self.caddr = caddr
        self.domain = domain
        self.accept_time = time.time()
        self.done = False
        self.t = TlsTransport(csock, context, bind_name)
        self.fd = self.t.fd
        ctx.sessions.add(self)
        self.timer = loop.timer(self.on_timeout)
        loop.set_timer(self.timer, loop.now + (fe.cfg.timeouts.client or INF))
        loop.add(self.fd, EPOLLIN, self.on_event)
        self.on_event(EPOLLIN)

    def on_event(self, events: int) -> None:
        if self.done:
            return
        t = self.t
        try:
            finished = t.handshake()
        except HandshakeError as e:
            self.finish(str(e))
            return
        if not finished:
            self.loop.modify(self.fd, EPOLLOUT if t.wants_write else EPOLLIN)
            return
        get_logger(proc="worker").info("acme_challenge_answered", challenge="tls-alpn-01",
                                       domain=self.domain, frontend=self.fe.name,
                                       slot=self.ctx.slot, client=self.caddr[0])
        self.finish(None)

    def on_timeout(self) -> None:
        self.finish(SSL_TIMEOUT)

    def finish(self, failure: str | None) -> None:
        """Close the connection; a failed handshake is logged as HAProxy
        logs one ("<frontend>/<bind>: <message>")."""
        if self.done:
            return
        self.done = True
        self.timer.release()
        self.loop.remove(self.fd)
        ctx = self.ctx
        if failure is not None and ctx.access.enabled:
            ctx.access.write(connection_error_line(ctx.log_format, self.caddr[0], self.caddr[1],
                                                   self.accept_time, self.fe.name, self.t.bind_name,
                                                   failure))
        ctx.session_ended(self)
        if failure is None:
            self.t.shutdown_write()
        self.t.close()

    def drain(self) -> None:
        """Graceful stop: the handshake ends soon (timeout client bounds it)."""

    def kill(self) -> None:
        self.finish("Killed during the TLS-ALPN-01 handshake")
