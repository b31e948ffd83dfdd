"""The server side of HTTP streams: connections to servers and their pool.

A ServerConn is one connection to a server over a transport, speaking
HTTP/1.1: it sends what its stream queues (the request head, then the body
as the client sends it), parses the response with the sans-IO parser
(workers/http1.py) and hands it to the stream through a small set of
callbacks. It knows nothing of rules, retries or clients: the stream
(workers/stream.py) decides; a server-side HTTP/2 connection will call the
same callbacks for each of its streams.

The callbacks a stream implements (all called from ServerConn.on_event):
  server_connected()            the connect completed; the request can go
  server_connect_failed()       refused or reset while connecting
  server_head(resp)             a response head (1xx interim ones too)
  server_data(data)             response body bytes, as received on the wire
  server_end()                  the response is complete
  server_whole(resp, body)      head, body and end of a small response in one
  server_closed_early()         EOF or reset before any response byte
  server_error(reason)          an invalid response (the parser refused it)
  server_tunnel()               101 / CONNECT 2xx: raw bytes from now on
  server_tunnel_data(data)      tunnel bytes from the server (b"" at its EOF)
  finish_io()                   end of the event: flush, masks, timers

Idle connections are kept per server in this worker's ConnPool and reused
the way HAProxy's `http-reuse safe` does (the stream decides when).
"""

from __future__ import annotations

import errno
import os
import socket

from workers import http1
from workers.http1 import CLOSED, END_OF_MESSAGE, NEED_DATA, TUNNEL, Data, HttpError, Response, head_bytes
from workers.loop import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, is_fd_exhaustion
from workers.states import M_CONNECTING, M_HANDSHAKE, M_HTTP, M_TUNNEL
from workers.transport import HandshakeError, PlainTransport

POOL_MAX_IDLE = 256          # idle connections kept per server (per worker)
POOL_IDLE_TIMEOUT = 5.0      # like HAProxy's pool-purge-delay


class ServerConn:
    """A connection to a server: attached to a stream, or idle in the pool."""

    __slots__ = ("t", "fd", "srv", "rp", "reused", "idle_since", "on_idle", "pool", "stream",
                 "wq", "out", "eof", "mode", "shut_after_flush", "proxy_header", "pool_key", "sni",
                 "want_session")

    def __init__(self, t: PlainTransport, srv, max_head: int, pool_key=None, sni=None):
        self.t = t
        self.fd = t.fd
        self.srv = srv
        self.rp = http1.ResponseParser(max_head)
        self.reused = False
        self.idle_since = 0.0
        self.on_idle = None
        self.pool = None                # the ConnPool it idles in
        self.stream = None
        self.wq: list[bytes] = []       # queued for the server this event
        self.out = b""                  # not yet taken by the socket
        self.eof = False                # the server's EOF was read
        self.mode = M_CONNECTING
        self.shut_after_flush = False   # tunnel: the client's EOF, to pass on
        # the PROXY header sent first (workers/ppsend.py); a connection that
        # has one is private to its client connection, never pooled
        self.proxy_header = b""
        # TLS to the server (srv.tls): the name sent as SNI; idle, the
        # connection pools under pool_key (the server, or (server, name)
        # when the name comes from each request); want_session until the
        # server's TLS session is kept for the next connection
        self.pool_key = srv if pool_key is None else pool_key
        self.sni = sni
        self.want_session = False

    @classmethod
    def connect(cls, srv, max_head: int, ctx, pool_key=None,
                sni=None) -> tuple["ServerConn | None", int]:
        """Start a non-blocking connect to srv (TLS follows for a tls
        server, sending sni). Returns (conn, errno): errno 0 or
        EINPROGRESS when under way; (None, 0) when no socket could be
        made (out of descriptors: the worker is told)."""
        try:
            sock = socket.socket(srv.family, socket.SOCK_STREAM)
        except OSError as e:
            if is_fd_exhaustion(e):
                ctx.out_of_fds()
            return None, 0
        sock.setblocking(False)
        err = sock.connect_ex(srv.sockaddr)
        return cls(PlainTransport(sock), srv, max_head, pool_key, sni), err

    def send_proxy_header(self) -> bool:
        """Just connected: write the PROXY header, if any, on the socket
        itself (before any TLS). It is a few hundred bytes into an empty
        send buffer, so it goes at once (the specification counts on it);
        False if it could not, which fails the connection."""
        header = self.proxy_header
        if not header:
            return True
        try:
            # no Nagle before the header: the request that follows it must
            # not wait for the header's ACK
            self.t.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return os.write(self.fd, header) == len(header)
        except OSError:
            return False

    def attach(self, stream, loop, mask: int) -> None:
        """Serve stream from now on; the fd waits for mask."""
        self.stream = stream
        self.eof = False
        if self.fd in loop.masks:
            loop.handlers[self.fd] = self.on_event
            loop.modify(self.fd, mask)
        else:
            loop.add(self.fd, mask, self.on_event)

    def begin(self, req) -> None:
        """Queue the head of req (a request of the attached stream); its body
        follows through queue(). Raises ValueError if a rule put CR or LF
        in a field."""
        self.mode = M_HTTP
        self.rp.expect(req.method, req.upgrade is not None)
        self.wq.append(head_bytes(req))

    def close(self, loop) -> None:
        loop.remove(self.fd)
        self.t.close()
        self.stream = None
        self.on_idle = None    # breaks the conn <-> callback cycle: freed at once
        self.pool = None

    def idle_event(self, events: int) -> None:
        """Idle in the pool and readable: the server closed it (or sent
        something unsolicited, which makes it unusable too)."""
        self.pool.discard(self)

    # ------------------------------------------------------------------ writing

    def flush(self) -> int:
        """Send what was queued this event (one send). Returns the bytes
        queued (for the stream's bytes_in count). A broken connection is
        reported to the stream (server_closed_early)."""
        wq = self.wq
        if not wq:
            return 0
        data = b"".join(wq) if len(wq) > 1 else wq[0]
        wq.clear()
        if self.out:
            self.out += data
        else:
            self.out = data
            self.write()
        return len(data)

    def write(self) -> bool:
        """Send what is pending; False if that failed (the stream was told)."""
        try:
            n = self.t.send(self.out)
        except OSError:
            # EPIPE/ECONNRESET on a reused connection before any answer is
            # the same race as an EOF there (the server closed it while it
            # sat idle): retried when that is safe, else a 502.
            self.out = b""
            self.stream.server_closed_early()
            return False
        if n:
            out = self.out
            self.out = b"" if n == len(out) else out[n:]
            self.stream.last_s = self.stream.loop.now
        return True

    def discard_output(self) -> None:
        """Forget what was queued (the connection is being dropped)."""
        self.out = b""
        self.wq.clear()

    def mask(self, readable: bool) -> int:
        return (EPOLLIN if readable and not self.eof else 0) | (
            EPOLLOUT if self.out or self.t.wants_write else 0)

    # ------------------------------------------------------------------ reading

    def on_event(self, events: int) -> None:
        # the loop's handler (a Python callable); the work is a C method
        # once compiled, where the stream is typed (ServerSide)
        self._on_event(events)

    def _on_event(self, events: int) -> None:
        stream = self.stream
        if self.mode == M_CONNECTING:
            if not events & (EPOLLOUT | EPOLLERR | EPOLLHUP):
                # A stale event: the fd number belonged to a socket closed
                # earlier in this loop turn. SO_ERROR reads 0 while a connect
                # is still in progress, so taking it as "connected" would
                # send into a socket that is not.
                return
            sock = self.t.sock
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or not self.send_proxy_header():
                stream.server_connect_failed()
            else:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.srv.tls is not None:
                    self.start_tls(stream)
                    stream.finish_io()
                    return
                stream.loop.modify(self.fd, EPOLLIN)
                stream.server_connected()
            stream.finish_io()
            return
        if self.mode == M_HANDSHAKE:
            self.tls_step(stream)
            stream.finish_io()
            return
        if events & EPOLLOUT and self.t.wants_write:
            events |= EPOLLIN       # TLS: a read that had to write first, retried
        if events & EPOLLOUT and self.out:
            if not self.write():
                stream.finish_io()
                return
        if events & (EPOLLIN | EPOLLHUP | EPOLLERR) and stream.server_readable():
            try:
                data = self.t.recv()
            except OSError:
                data = b""          # a reset: handled like an EOF, by phase
            if data is not None:
                stream.last_s = stream.loop.now
                if self.want_session and data:
                    # TLS 1.3: the server's ticket came before these bytes
                    self.srv.tls.keep_session(self.t, True)
                    self.want_session = False
                if self.mode == M_TUNNEL:
                    if not data:
                        self.eof = True
                    stream.server_tunnel_data(data)
                elif data and self.take_whole(data):
                    pass
                else:
                    if not data:
                        self.eof = True
                    self.rp.feed(data)
                    self.pump()
        stream.finish_io()

    # ------------------------------------------------------------- TLS

    def start_tls(self, stream) -> None:
        """The TCP connect to a tls server completed: start the handshake
        (sending self.sni, resuming this worker's session of the server)."""
        tls = self.srv.tls
        try:
            self.t = tls.wrap(self.t.sock, self.sni)
        except (OSError, ValueError) as e:
            self.tls_failed(stream, str(e))
            return
        self.mode = M_HANDSHAKE
        self.tls_step(stream)

    def tls_step(self, stream) -> None:
        """Advance the handshake; once done, the request can go (the
        connection is "connected" for the stream from then on)."""
        t = self.t
        try:
            done = t.handshake()
        except HandshakeError as e:
            self.tls_failed(stream, str(e))
            return
        if not done:
            stream.loop.modify(self.fd, EPOLLOUT if t.wants_write else EPOLLIN)
            return
        self.mode = M_HTTP
        self.want_session = not self.srv.tls.keep_session(t)
        stream.loop.modify(self.fd, EPOLLIN)
        stream.server_connected()

    def tls_failed(self, stream, why: str) -> None:
        """The handshake failed: a failed connection attempt (the stream
        retries, or answers 503 SC), logged with why."""
        self.srv.tls.failed(stream.conn.ctx, stream.src, stream.src_port,
                            stream.conn.accept_time, self.srv, why)
        stream.server_connect_failed()

    def take_whole(self, data: bytes) -> bool:
        """The common case straight through: data is the whole response
        (ResponseParser.whole_response). False, and nothing done, otherwise:
        the bytes go through the parser's events."""
        whole = self.rp.whole_response(data)
        if whole is None:
            return False
        self.stream.server_whole(whole[0], whole[1])
        return True

    def pump(self) -> None:
        """Hand the parser's events to the stream while it takes them."""
        stream = self.stream
        rp = self.rp
        while self.stream is stream and stream.awaiting_response():
            try:
                ev = rp.next_event()
            except HttpError as e:
                stream.server_error(e.reason)
                return
            if ev is NEED_DATA:
                return
            t = type(ev)
            if t is Data:
                stream.server_data(ev.raw)
            elif t is Response:
                stream.server_head(ev)
            elif ev is END_OF_MESSAGE:
                stream.server_end()
                return
            elif ev is TUNNEL:
                self.mode = M_TUNNEL
                stream.server_tunnel()
                return
            elif ev is CLOSED:
                # EOF before any response: maybe an idle connection the server
                # had already closed; the stream retries what is safe to retry.
                stream.server_closed_early()
                return

    def reusable(self) -> bool:
        """After a complete response: nothing more is buffered or pending, so
        the connection can serve another request. Bytes the server sent
        after the end of the response sit in the parser, where the idle
        pool's EPOLLIN watch cannot see them: such a connection would
        answer the next request with them."""
        return not self.eof and not self.out and not self.wq and self.rp.drained()

    def switch_to_tunnel(self) -> bytes:
        """Bytes the server sent after its 101 / 2xx head."""
        return self.rp.switch_to_tunnel()

    def tunnel_send(self, data: bytes) -> None:
        """Tunnel bytes from the client (b"" at its EOF: pass the FIN on once
        everything before it is delivered)."""
        if data:
            self.wq.append(data)
        else:
            self.shut_after_flush = True

    def tunnel_shutdown(self) -> None:
        if self.shut_after_flush and not self.out:
            self.shut_after_flush = False
            self.t.shutdown_write()


def connect_error_is_fatal(err: int) -> bool:
    """connect_ex results other than success or in-progress."""
    return err not in (0, errno.EINPROGRESS)


class ConnPool:
    """Idle server connections of one worker, per server (LIFO: the most
    recently used connection is the least likely to have been closed)."""

    def __init__(self, loop):
        self.loop = loop
        self.idle: dict = {}            # ServerConn.pool_key -> list[ServerConn]
        self.h2: dict = {}              # pool key -> [H2ServerConn] (workers/h2server.py)
        self.sweeping = False

    def take(self, key) -> ServerConn | None:
        """An idle connection pooled under key (ServerConn.pool_key: the
        server, or (server, TLS server name)), or None."""
        conns = self.idle.get(key)
        if conns:
            conn = conns.pop()
            conn.reused = True
            return conn
        return None

    def give(self, conn: ServerConn) -> None:
        """Park a connection whose response ended cleanly and is keep-alive."""
        conn.stream = None
        conns = self.idle.get(conn.pool_key)
        if conns is None:       # (not setdefault: a new list per call)
            conns = self.idle[conn.pool_key] = []
        if len(conns) >= POOL_MAX_IDLE:
            conn.close(self.loop)
            return
        conn.idle_since = self.loop.now
        if conn.on_idle is None:
            conn.pool = self
            conn.on_idle = conn.idle_event     # bound once, not per give
        loop = self.loop
        loop.handlers[conn.fd] = conn.on_idle
        loop.modify(conn.fd, EPOLLIN)
        conns.append(conn)
        if not self.sweeping:
            self.sweeping = True
            loop.call_later(POOL_IDLE_TIMEOUT, self.sweep)

    def discard(self, conn: ServerConn) -> None:
        """An idle connection is readable: the server closed it (or sent
        something unsolicited, which makes it unusable too)."""
        conns = self.idle.get(conn.pool_key)
        if conns and conn in conns:
            conns.remove(conn)
        conn.close(self.loop)

    def discard_server(self, srv) -> None:
        """Close every idle connection to srv (its address changed), under
        whichever key it is pooled (the server, or (server, TLS name))."""
        if self.h2:
            from workers import h2server
            h2server.discard_server(self, srv)
        for key in list(self.idle):
            if key is srv or (key.__class__ is tuple and key[0] is srv):
                for conn in list(self.idle[key]):
                    self.discard(conn)

    def sweep(self) -> None:
        limit = self.loop.now - POOL_IDLE_TIMEOUT
        left = 0
        for conns in self.idle.values():
            old = [c for c in conns if c.idle_since <= limit]
            for c in old:
                conns.remove(c)
                c.close(self.loop)
            left += len(conns)
        self.sweeping = left > 0
        if self.sweeping:
            self.loop.call_later(POOL_IDLE_TIMEOUT, self.sweep)

    def close_all(self) -> None:
        if self.h2:
            from workers import h2server
            h2server.close_all(self)
        for conns in self.idle.values():
            for c in conns:
                c.close(self.loop)
            conns.clear()
