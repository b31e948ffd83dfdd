"""The client side of HTTP/1.1: one H1Connection per accepted connection.

It owns the client's transport and the request parser (workers/http1.py),
and turns the bytes into streams (workers/stream.py), one at a time:
pipelined requests wait in the parser's buffer and are answered in order.
It frames what the stream sends back (the Connection field, keep-alive or
close), and owns the client's timeouts (http_request, http_keep_alive,
client), the keep-alive cycle between requests, the lingering close, and
graceful draining. Protocol errors end here: a request that cannot be
parsed is answered (400, 408, 413, 414, 431, 501, 505) and logged, and no
stream is made for it.

The common case goes straight through (on_event, first branch): a recv
that holds exactly one whole request without a body
(RequestParser.whole_request) becomes a stream in one step instead of
event by event; anything else (a partial head, a body to stream,
pipelining, chunked, errors) goes through the parser's events.

Writes to the client are queued during an event and sent with one send()
at its end (finish_io), so a response head and its first body bytes leave
in one syscall; finish_io flushes the stream's server side the same way.
Reading a side stops while the other side's queue is above HIGH_WATER
(backpressure).
"""

from __future__ import annotations

import time

from farm.logs import HTTP_FIELDS, connection_error_line, httplog_line, json_http_line
from workers import counting, http1, linger
from workers.clientconn import ClientConn
from workers.counting import request_bytes
from workers.h2conn import H2Connection, is_preface
from workers.http1 import (BODY_CLOSE, CLOSED, END_OF_MESSAGE, NEED_DATA, PAUSED, Data, HttpError,
                           Request, head_bytes, parse_whole_request)
from workers.loop import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, Timer
from workers.server import ServerConn
from workers.states import ST_SERVER, ST_TUNNEL
from workers.stream import HIGH_WATER, INF, Stream
from workers.transport import SSL_TIMEOUT, HandshakeError, PlainTransport

DRAIN_IDLE_GRACE = 0.5       # idle keep-alive seconds before a draining worker closes it

# connection states (C_HANDSHAKE: a TLS transport's handshake, before any request)
C_REQ, C_STREAM, C_TUNNEL, C_CLOSING, C_LINGER, C_CLOSED, C_HANDSHAKE = range(7)


class H1Connection(ClientConn):
    """An HTTP/1.1 client connection and the streams it carries
    (the ClientConn interface of workers/clientconn.py)."""

    # Slots: an idle keep-alive connection costs its object, so no
    # per-instance dict (about 1 KiB less per connection).
    __slots__ = ("c_eof", "c_unwanted", "cfd", "discarding", "need_pump", "out_c",
                 "req_bytes", "req_start", "rp", "shut_c_after_flush", "state",
                 "stream", "timer", "to_client", "to_floor", "to_keepalive",
                 "to_request", "wq_c", "__weakref__")

    def __init__(self, ctx, fe, t: PlainTransport, caddr: tuple):
        # ctx, fe and t are read through the typed attributes (h1conn.pxd,
        # clientconn.pxd): a def method's arguments are untyped objects
        self.ctx = ctx
        self.fe = fe
        self.t = t
        self.loop = self.ctx.loop
        self.cfd = self.t.fd
        self.src = caddr[0]
        self.src_port = caddr[1]
        self._src_bytes = None               # X-Forwarded-For (src_bytes), once per connection
        self._dst_port = None
        if type(caddr) is not tuple:
            pp = getattr(caddr, "proxy", None)    # a PROXY header came first (workers/ppaccept.py)
            if pp is not None:
                self.t.proxy = pp
                if pp.dst_port is not None:
                    self._dst_port = pp.dst_port
        self.rp = None      # the request parser, made when bytes need one (take_whole_request)
        self.state = C_REQ
        self.stream: Stream | None = None
        self.own: ServerConn | None = None   # private idle server connection (http-reuse never)
        self.wq_c: list[bytes] | None = None   # queued for the client this event (queue_c)
        self.out_c = b""                 # not yet accepted by the client socket
        self.c_eof = False
        self.need_pump = False           # request parser events to take at end of event
        self.c_unwanted = False          # client readable while paused (update_masks)
        self.discarding = False          # skipping the rest of a request answered locally
        self.shut_c_after_flush = False  # tunnel half-close waiting for out_c to drain
        self.requests = 0
        self.accept_time = time.time()
        now = self.loop.now
        self.t_accept = now
        self.req_start = now             # first byte (or start of wait) of the next request
        self.req_bytes = False           # some bytes of the next request arrived
        self.last_c = now
        timeouts = self.fe.cfg.timeouts
        self.to_client = timeouts.client or INF
        self.to_request = timeouts.http_request or INF
        self.to_keepalive = timeouts.http_keep_alive or self.to_request
        self.to_floor = min(self.to_client, self.to_request, self.to_keepalive)
        self.timer = Timer(self)         # calls on_timeout (__call__)
        self.ctx.sessions.add(self)
        if self.t.secure and not self.t.established:
            # TLS: the handshake first, bounded by timeout client (as
            # HAProxy bounds it); tried at once, the ClientHello is
            # usually there already
            self.state = C_HANDSHAKE
            self.loop.add(self.cfd, EPOLLIN, self.on_handshake)
            self.loop.set_timer(self.timer, now + self.to_client)
            self.on_handshake(EPOLLIN)
            return
        self.loop.add(self.cfd, EPOLLIN, self.on_event)
        self.loop.set_timer(self.timer, now + self.to_request)

    @classmethod
    def accepted(cls, ctx, fe, csock, caddr: tuple) -> "H1Connection":
        """The session class interface of workers/worker.py. The transport
        keeps the descriptor, not the socket object (drop_socket)."""
        t = PlainTransport(csock)
        conn = cls(ctx, fe, t, caddr)
        t.drop_socket()
        return conn

    # ---------------------------------------------------------- TLS handshake

    def on_handshake(self, events: int) -> None:
        """Advance the TLS handshake; once done, wait for the first request
        (and read at once what came with the handshake's last flight)."""
        t = self.t
        try:
            done = t.handshake()
        except HandshakeError as e:
            self.handshake_failed(str(e))
            return
        loop = self.loop
        if not done:
            mask = EPOLLOUT if t.wants_write else EPOLLIN
            if loop.masks.get(self.cfd) != mask:
                loop.modify(self.cfd, mask)
            return
        self.state = C_REQ
        self.last_c = self.req_start = loop.now
        if getattr(t, "alpn", None) == "h2":
            loop.watch(self.cfd, EPOLLIN, self.on_event)
            self.to_h2(b"")
            return
        loop.watch(self.cfd, EPOLLIN, self.on_event)
        loop.set_timer(self.timer, loop.now + self.to_request)
        self.on_event(EPOLLIN)

    def to_h2(self, first: bytes) -> None:
        """The client speaks HTTP/2 (ALPN h2, or the connection preface
        in first): workers/h2conn.py takes the connection over, this
        object steps aside (the session stays counted, under the new one)."""
        self.state = C_CLOSED
        self.timer.release()
        self.ctx.sessions.discard(self)
        H2Connection.from_h1(self, first)

    def handshake_failed(self, message: str) -> None:
        """Log the failure as HAProxy does ("<frontend>/<bind>: <message>")
        and close; no request was made, nothing else is logged."""
        ctx = self.ctx
        if ctx.access.enabled:
            ctx.access.write(connection_error_line(ctx.log_format, self.src, self.src_port,
                                                   self.accept_time, self.fe.name,
                                                   self.t.bind_name, message))
        self.close_session()

    # ------------------------------------------------------------------ reading

    def on_event(self, events: int) -> None:
        if events & EPOLLOUT and self.out_c:
            if not self.write_client():
                return
        if events & EPOLLOUT and self.t.wants_write:
            events |= EPOLLIN       # TLS: a read that had to write first, retried
        if events & (EPOLLIN | EPOLLHUP | EPOLLERR) and not self.client_readable():
            self.c_unwanted = True   # paused (see update_masks): leave epoll now
        elif events & (EPOLLIN | EPOLLHUP | EPOLLERR):
            try:
                data = self.t.recv()
            except OSError:
                self.abort("C")
                return
            if data is not None:
                now = self.last_c = self.loop.now
                request_bytes(self.fe, len(data))
                if self.state == C_TUNNEL:
                    if not data:
                        self.c_eof = True
                    self.stream.client_tunnel_data(data)
                elif self.state == C_REQ and data and self.take_whole_request(data, now):
                    pass
                elif (self.requests == 0 and not self.req_bytes and self.state == C_REQ
                      and data[:3] == b"PRI" and is_preface(data)):
                    self.to_h2(data)     # HTTP/2 with prior knowledge
                    return
                else:
                    if not data:
                        self.c_eof = True
                    elif self.state == C_REQ and not self.req_bytes:
                        self.req_bytes = True
                        self.req_start = now
                    rp = self.rp
                    if rp is None:
                        rp = self.rp = http1.RequestParser(self.fe.max_head)
                    rp.feed(data)
                    self.pump_request()
        self.finish_io()

    def take_whole_request(self, data: bytes, now: float) -> bool:
        """The common case straight through: when data (just received, the
        connection waiting for a request) is one whole request without a
        body (RequestParser.whole_request), start its stream. False, and
        nothing done, otherwise: the bytes go through the parser's events.

        Between requests a connection keeps no parser (stream_ended drops
        an idle one: about 170 bytes per idle keep-alive connection), and
        the common case needs none. Without one, a request that is not
        keep-alive leaves nothing to remember: its stream closes the
        connection after the response (Stream.close)."""
        rp = self.rp
        if rp is None:
            req = parse_whole_request(data, self.fe.max_head)
        else:
            req = rp.whole_request(data)
        if req is None:
            return False
        t_start = self.req_start if self.req_bytes else now
        self.req_bytes = True
        self.start_stream(req, t_start, True)
        return True

    def client_readable(self) -> bool:
        """Whether to read the client now (backpressure and phase)."""
        st = self.state
        if self.c_eof or st == C_CLOSED:
            return False
        if st == C_REQ:
            return True
        stream = self.stream
        if st == C_TUNNEL:
            return stream.server_room()
        if st == C_STREAM and stream.wants_request_body():
            return stream.server_room()
        return False

    def pump_request(self) -> None:
        """Take events from the request parser as far as the phase allows."""
        rp = self.rp
        if rp is None:
            return          # no bytes since the last request
        while self.state == C_REQ or (self.state == C_STREAM and self.stream.wants_request_body()):
            try:
                ev = rp.next_event()
            except HttpError as e:
                self.client_error(e.status, e.reason)
                return
            if ev is NEED_DATA:
                if self.c_eof:
                    if self.state == C_REQ:
                        self.close_quietly("CR" if self.req_bytes else "--")
                    else:
                        self.abort("C")
                return
            if self.state == C_REQ:
                if ev is CLOSED:
                    self.close_quietly("--")
                    return
                if ev is PAUSED:
                    # The upgrade (or CONNECT) request before this point got
                    # an answer that did not switch protocols: the server
                    # refused it (any non-101), or it was answered locally.
                    # The connection stays HTTP; PAUSED always follows that
                    # request's END_OF_MESSAGE, so it never reaches start_stream.
                    rp.resume()
                    continue
                if self.discarding:
                    # the body / end of a request that was answered locally
                    if ev is END_OF_MESSAGE:
                        self.discarding = False
                    continue
                self.start_stream(ev, self.req_start if self.req_bytes else self.loop.now, False)
                continue
            # forwarding the request body
            if type(ev) is Data:
                self.stream.request_data(ev.raw)
            elif ev is END_OF_MESSAGE or ev is PAUSED or ev is CLOSED:
                self.stream.request_end()

    def start_stream(self, req: Request, t_start: float, whole: bool) -> None:
        """A request head arrived (at t_start); whole: no body follows."""
        stream = self.stream = Stream(self, req, t_start, whole)
        self.requests += 1
        self.state = C_STREAM
        if self.ctx.draining:
            stream.close = True
        stream.start()

    # ------------------------------------------------ what the stream calls

    def client_room(self, stream) -> bool:
        return len(self.out_c) < HIGH_WATER

    def body_wanted(self, stream: Stream) -> None:
        """The stream's server connection is ready for the request body."""
        self.need_pump = True

    def response_head(self, stream: Stream, resp) -> None:
        """Frame and queue a response head: the Connection field says
        whether this connection goes on (HTTP/1.1 keep-alive rules)."""
        s = stream              # typed (h1conn.pxd): the interface's
        r = resp                # arguments are untyped objects
        if r.interim:
            head = http1.serialize_response_head(r)
            self.queue_c(head)
            s.bytes_out += len(head)
            return
        req = s.req
        if r.status == 101:
            r.append_field(b"Connection", b"upgrade")
        elif s.close or self.ctx.draining or not req.keep_alive:
            s.close = True
            r.append_field(b"Connection", b"close")
        elif req.version == b"HTTP/1.0":
            r.append_field(b"Connection", b"keep-alive")
        if r.body_mode == BODY_CLOSE and not s.close:
            # no framing: the body ends when the server closes, and so must
            # the client connection (the client cannot see the end otherwise)
            s.close = True
            r.append_field(b"Connection", b"close")
        head = head_bytes(r)
        self.queue_c(head)
        s.bytes_out += len(head)

    def response_data(self, stream: Stream, data: bytes) -> None:
        self.queue_c(data)

    def local_reply(self, stream: Stream, data: bytes) -> None:
        """A whole response made by the proxy (error page, rule's answer)."""
        self.queue_c(data)
        if not stream.req_done:
            self.discarding = True

    def stream_ended(self, stream: Stream) -> None:
        """The stream's transaction is over (logged): wait for the next
        request, or close."""
        self.stream = None
        if stream.close or self.c_eof:
            self.state = C_CLOSING
            return
        self.state = C_REQ
        self.req_bytes = False
        self.req_start = self.loop.now
        if self.ctx.draining:
            self.to_keepalive = min(self.to_keepalive, DRAIN_IDLE_GRACE)
        # a pipelined request (or the client's EOF) may already be buffered;
        # an idle parser is dropped (the next bytes make one if they need it)
        self.need_pump = False
        rp = self.rp
        if rp is not None:
            if rp.idle():
                self.rp = None
            else:
                self.need_pump = True

    def start_tunnel(self, stream: Stream) -> None:
        """101 Switching Protocols (or CONNECT 2xx): raw bytes both ways."""
        self.state = C_TUNNEL
        rest = self.rp.switch_to_tunnel() if not self.c_eof else b""
        if rest:
            stream.client_tunnel_data(rest)

    def tunnel_data(self, stream: Stream, data: bytes) -> None:
        """Tunnel bytes from the server; b"" at its EOF (passed on once
        everything before it is delivered)."""
        if data:
            self.queue_c(data)
        else:
            self.shut_c_after_flush = True

    def take_own(self, key) -> ServerConn | None:
        """This client's private idle connection (http-reuse never), if it
        goes where key says (ServerConn.pool_key: the server, or the server
        and a TLS server name); one to another server is closed."""
        own = self.own
        self.own = None
        if own.pool_key == key:
            own.reused = True
            return own
        own.close(self.loop)
        return None

    def keep_own(self, sc: ServerConn) -> None:
        """Park sc as this client's private idle connection: watched for the
        server closing it, like the pool's, but never given to another."""
        if self.own is not None:
            self.own.close(self.loop)
        sc.stream = None
        self.own = sc
        self.loop.handlers[sc.fd] = self.on_own_idle
        self.loop.modify(sc.fd, EPOLLIN)

    def on_own_idle(self, events: int) -> None:
        """The private idle connection is readable: closed by the server (or
        it sent something unsolicited): unusable either way."""
        if self.own is not None:
            self.own.close(self.loop)
            self.own = None

    # ---------------------------------------------------------------- writing

    def queue_c(self, data: bytes) -> None:
        """Queue data for the client, sent at the end of the event
        (finish_io). The list exists only while something is queued: an
        idle connection keeps none."""
        wq = self.wq_c
        if wq is None:
            self.wq_c = [data]
        else:
            wq.append(data)

    def write_client(self) -> bool:
        """Send what is pending for the client; False if the connection ended."""
        try:
            n = self.t.send(self.out_c)
        except OSError:
            self.abort("C")
            return False
        if n:
            out = self.out_c
            self.out_c = b"" if n == len(out) else out[n:]
            self.last_c = self.loop.now
        return True

    def finish_io(self) -> None:
        """End of an event: send queued bytes (one send per side), update
        what each socket waits for, the timer, and close when done."""
        if self.state == C_CLOSED:
            return
        while self.need_pump:
            self.need_pump = False
            self.pump_request()
            if self.state == C_CLOSED:
                return
        stream = self.stream
        if stream is not None:
            sc = stream.sc
            if sc is not None and sc.wq:
                stream.bytes_in += sc.flush()
                if self.state == C_CLOSED:
                    return
        wq = self.wq_c
        if wq is not None:
            self.wq_c = None
            data = b"".join(wq) if len(wq) > 1 else wq[0]
            if self.out_c:
                self.out_c += data
            else:
                self.out_c = data
                if not self.write_client():
                    return
        st = self.state
        if st == C_TUNNEL:
            stream = self.stream
            sc = stream.sc
            if sc is not None:
                sc.tunnel_shutdown()
            if self.shut_c_after_flush and not self.out_c:
                self.shut_c_after_flush = False
                self.t.shutdown_write()
            if self.c_eof and not self.out_c and stream.tunnel_over():
                stream.end_tunnel()
                self.close_session()
                return
        elif st == C_CLOSING:
            if not self.out_c:
                self.linger()
                return
        elif st == C_LINGER:
            return
        self.update_masks()
        self.rearm()

    def update_masks(self) -> None:
        loop = self.loop
        cmask = (EPOLLIN if self.client_readable() else 0) | (
            EPOLLOUT if self.out_c or self.t.wants_write else 0)
        cur = loop.masks.get(self.cfd)
        if cmask == 0 and not self.c_unwanted and cur == EPOLLIN:
            # Lazy pause: while its request is served, a client almost never
            # sends anything, so the fd stays in epoll (two epoll_ctl calls
            # saved per request). If it does send (pipelining, a close), the
            # event marks it unwanted and it leaves epoll until readable.
            pass
        elif cmask == cur:
            self.c_unwanted = False     # unchanged; the handler is on_event already
        else:
            self.c_unwanted = False
            loop.watch(self.cfd, cmask, self.on_event)
        stream = self.stream
        if stream is not None:
            sc = stream.sc
            if sc is not None and (stream.state == ST_SERVER or stream.state == ST_TUNNEL):
                smask = sc.mask(stream.server_readable())
                # attached, sc.fd's handler is sc.on_event already: an
                # unchanged mask (the usual case) needs nothing
                if loop.masks.get(sc.fd) != smask:
                    loop.watch(sc.fd, smask, sc.on_event)

    # ----------------------------------------------------------------- timers

    def rearm(self) -> None:
        st = self.state
        stream = self.stream
        if st == C_REQ:
            if self.req_bytes or self.requests == 0:
                when = self.req_start + self.to_request
            else:
                when = self.req_start + self.to_keepalive
        elif stream is not None:
            when = stream.deadline()
            sst = stream.state
            if sst == ST_SERVER:
                if self.out_c or not stream.req_done:
                    when = min(when, self.last_c + self.to_client)
            elif sst == ST_TUNNEL and not stream.to_tunnel:
                when = min(when, self.last_c + self.to_client)
        else:
            when = self.last_c + self.to_client
        if when != INF:
            # queued no later than the connection's shortest timeout from
            # now, so that the request/response/keep-alive cycle does not
            # push a heap entry per request (see Loop.set_timer)
            self.loop.set_timer(self.timer, when, self.loop.now + self.to_floor)
        else:
            self.timer.cancel()

    def __call__(self) -> None:
        """The connection's timer fired. The connection itself is the
        timer's callback, so that it holds no bound method for it (about
        64 bytes per idle keep-alive connection); timers fire seldom, so
        the call through __call__ costs nothing that counts."""
        self.on_timeout()

    def on_timeout(self) -> None:
        now = self.loop.now
        st = self.state
        stream = self.stream
        if st == C_HANDSHAKE:
            if now >= self.t_accept + self.to_client:
                self.handshake_failed(SSL_TIMEOUT)
            return
        if st == C_REQ:
            if self.ctx.draining and not self.req_bytes:
                self.close_session()     # drained: nothing started, close silently
                return
            if self.req_bytes or self.requests == 0:
                if now < self.req_start + self.to_request:
                    return self.rearm()
                # a client dribbling (or never sending) its request: 408,
                # logged cR (client timeout, request phase) like HAProxy
                self.refuse_request(408, "timeout", "cR--")
            else:
                if now < self.req_start + self.to_keepalive:
                    return self.rearm()
                self.close_session()     # idle keep-alive: close silently
                return
        elif stream is not None:
            sst = stream.state
            if sst == ST_TUNNEL:
                # say which side was idle (cD / sD); with timeout tunnel both
                # were, and HAProxy blames the client
                if not stream.to_tunnel and now < self.last_c + self.to_client:
                    self.abort("s")
                else:
                    self.abort("c")
                return
            if sst == ST_SERVER:
                if now >= stream.deadline():
                    stream.on_timeout(now)
                elif (self.out_c or not stream.req_done) and now >= self.last_c + self.to_client:
                    self.abort("c")
                    return
                else:
                    return self.rearm()
            else:
                if now < stream.deadline():
                    return self.rearm()
                stream.on_timeout(now)
        else:
            self.close_session()
            return
        self.finish_io()

    # ---------------------------------------------------------------- endings

    def drain(self) -> None:
        """Graceful stop (reload or stop): a busy connection closes after its
        current response, which says Connection: close. An idle keep-alive
        connection is closed too, but not at once: a client may be sending
        its next request right now, and closing under it is the one way a
        reload could fail a request. It gets DRAIN_IDLE_GRACE seconds of
        idleness; a request arriving meanwhile is answered with close."""
        stream = self.stream
        if stream is not None:
            if not stream.resp_started:
                stream.close = True   # its response will say Connection: close
            # else: the head already promised keep-alive; honour it and let
            # the idle grace (stream_ended) close the connection afterwards
        elif self.state == C_REQ and not self.req_bytes:
            self.to_keepalive = min(self.to_keepalive, DRAIN_IDLE_GRACE)
            self.to_request = min(self.to_request, self.loop.now - self.req_start + DRAIN_IDLE_GRACE)
            self.rearm()

    def kill(self) -> None:
        """Hard stop / admin shutdown: end now, logged as K."""
        self.abort("K")

    def abort(self, who: str) -> None:
        """A side failed or timed out mid-transaction: log and close all."""
        stream = self.stream
        if stream is not None:
            stream.abort(who)
            self.stream = None
        self.close_session()

    def close_quietly(self, term: str) -> None:
        if self.stream is None:
            if term == "CR":
                # The client closed in the middle of a request head: nothing
                # to answer, but it is a failed request and HAProxy logs it
                # (<BADREQ>, 400, CR--). A close between requests stays silent.
                self.log_bad_request(400, "client closed inside a request", "CR--")
            self.state = C_CLOSING
            if not self.out_c and self.wq_c is None:
                self.close_session()

    def linger(self) -> None:
        """Close after the last response without a reset (workers/linger.py)."""
        self.state = C_LINGER
        if not linger.start(self.loop, self.t, self.timer, self.c_eof, self.on_linger):
            self.close_session()

    def on_linger(self, events: int) -> None:
        if linger.drained(self.t):
            self.close_session()

    def close_session(self) -> None:
        if self.state == C_CLOSED:
            return
        self.state = C_CLOSED
        self.timer.release()
        loop = self.loop
        loop.forget(self.cfd)        # closed the next line: out of the epoll set
        self.t.close()
        stream = self.stream
        if stream is not None:
            stream.drop_server_conn()
            self.stream = None
        if self.own is not None:
            self.own.close(loop)
            self.own = None
        self.ctx.session_ended(self)

    # ------------------------------------------------------------ bad requests

    def client_error(self, status: int, reason: str) -> None:
        """The request could not be parsed: answer, log, close. Nothing of
        it has reached a server."""
        stream = self.stream
        if stream is None:
            # With the client's EOF already read, the error can only be the
            # parser's "connection closed inside a head" (a malformed head
            # raises as soon as its bytes arrive, before any later EOF): the
            # client aborted its request (CR), the proxy refused nothing.
            self.refuse_request(status, reason, "CR--" if self.c_eof else "PR--")
            return
        # An error in the body of a request already being forwarded. The
        # parser also raises when the client closes inside a body: that one
        # is a client abort (CD); malformed framing (a bad chunk size...)
        # is the proxy refusing the message (PD, as HAProxy logs it).
        who = "C" if self.c_eof else "P"
        stream.close = True
        if not stream.resp_started:
            stream.send_error(status, who + "D")
        else:
            self.abort(who)

    def refuse_request(self, status: int, reason: str, term: str) -> None:
        """Answer a request that never became a stream (unparsable, or not
        complete in time) with the error page, log it, then close."""
        page = self.fe.errorfiles.get(status) or http1.error_response(status)
        self.queue_c(page)
        self.state = C_CLOSING
        self.log_bad_request(status, reason, term, len(page))

    def log_bad_request(self, status: int, reason: str, term: str = "PR--", sent: int = 0) -> None:
        ctx = self.ctx
        fe = self.fe
        counting.bad_request(fe, status, sent)
        if not ctx.access.enabled:
            return
        now = self.loop.now
        waited = int((now - self.req_start) * 1000)
        rec = dict(zip(HTTP_FIELDS, (
            self.src, self.src_port, self.accept_time + (self.req_start - self.t_accept),
            fe.name + "~" if self.t.secure else fe.name,     # HAProxy's %ft: "~" on TLS
            fe.name, "<NOSRV>", waited, -1, -1, -1, waited, status, sent, "-", "-", term,
            ctx.actconn, fe.g.value(), 0, 0, 0, False, 0, 0, "<BADREQ>")))
        ctx.access.write(json_http_line(rec) if ctx.log_format == "json" else httplog_line(rec))
