"""The client side of HTTP/2: one H2Connection per client connection that
speaks HTTP/2 (ALPN h2 on a TLS bind, or the connection preface on a
cleartext one: workers/h1conn.py hands the connection over).

It puts the sans-IO codec (workers/h2/conn.py) on the client's transport
and turns each HTTP/2 stream into one Stream (workers/stream.py): the
same rules, routing, balancing, queue, retries, counters and log line as
an HTTP/1.1 request (the log's request line says "HTTP/2.0" and, as
HAProxy's does, the absolute URI). Streams go to HTTP/1.1 servers over
the pool: a request body of unknown length is chunked for them, a chunked
response is de-chunked into DATA frames (its trailers become a HEADERS
frame), and the proxy's own answers (error pages, redirects, a rule's
response) are turned from HTTP/1.1 bytes into HEADERS and DATA.

Per stream it keeps what the codec could not send yet (the client's
flow-control windows are closed), what the client sent before the server
side could take it, and the deadline of the stream's own timeouts (queue,
connect, server): one timer of the connection (stimer) is armed for the
earliest of them, and when it fires the streams past their deadline time
out. The connection keeps the client's timeouts: client
(while the client owes us bytes or window), http_request before the
first stream, http_keep_alive between streams; an idle connection gets a
GOAWAY and is closed; a client that does not acknowledge our SETTINGS
within SETTINGS_WAIT (at most timeout client) gets GOAWAY
SETTINGS_TIMEOUT. Protocol errors and floods end in the codec
(GOAWAY or RST_STREAM, H2Config limits); a connection error aborts the
streams still open (logged, "CD" or "PD").

Streams call the ClientConn interface (workers/clientconn.py); a server
event of one stream ends with stream_io(stream), so that the end of the
event (flush, masks, timers) looks only at the streams it touched.
"""

from __future__ import annotations

import time

from workers import counting, linger
from workers.clientconn import ClientConn
from workers.h2.conn import H2Config
from workers.h2.conn import H2Connection as H2Codec
from workers.h2.errors import CANCEL, NO_ERROR, REFUSED_STREAM, SETTINGS_TIMEOUT
from workers.h2.events import (ConnectionTerminated, DataReceived, RemoteSettingsChanged,
                               RequestReceived, StreamReset, TrailersReceived, WindowUpdated)
from workers.h2.frames import PREFACE
from workers.h2.messages import h1_chunk, h1_last_chunk, head_fields, to_request
from workers.h2.relay import Dechunker, split_response
from workers.loop import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT
from workers.states import ST_DONE, ST_SERVER, ST_TUNNEL
from workers.stream import HIGH_WATER, INF, Stream

SETTINGS_WAIT = 10.0         # seconds (at most timeout client) for the client to ack our SETTINGS

# connection states
C_OPEN, C_CLOSING, C_LINGER, C_CLOSED = range(4)

_configs: dict = {}


def h2_config(fe) -> H2Config:
    """The codec limits of a frontend's connections (one shared object per
    distinct setting): [frontends.NAME.h2] (farm.model.FrontendH2), and
    the header list limit from the frontend's max header size."""
    size = fe.cfg.max_header_size
    h2 = fe.cfg.h2
    key = (size, h2)
    cfg = _configs.get(key)
    if cfg is None:
        cfg = _configs[key] = H2Config(
            max_header_list_size=max(size, 4096),
            max_concurrent_streams=h2.max_concurrent_streams,
            initial_window_size=h2.initial_window_size,
            max_frame_size=h2.max_frame_size,
            header_table_size=h2.header_table_size,
            max_header_fields=h2.max_header_fields)
    return cfg


def is_preface(data: bytes) -> bool:
    """Whether the first bytes of a cleartext connection start the HTTP/2
    connection preface (prior knowledge). A short read that is a prefix
    of it counts: the codec checks the rest."""
    return data[:len(PREFACE)] == PREFACE[:len(data)] and len(data) >= 3


class _H2Stream:
    """The connection's side of one HTTP/2 stream: what is waiting in
    either direction, and the Stream doing the transaction."""

    __slots__ = ("sid", "stream", "head", "head_key", "out", "out_len", "ended", "fin",
                 "dechunk", "req_in", "req_end", "req_sent", "chunked", "trailers",
                 "resp_trailers", "when", "head_only", "live", "queued")

    def __init__(self, sid: int, stream: Stream | None):
        self.sid = sid
        self.stream = stream
        self.head = None          # response fields not given to the codec yet
        self.head_key = None      # their encoder key (messages.head_fields)
        self.out: list = []       # response DATA not taken by the codec (flow control)
        self.out_len = 0
        self.ended = False        # the transaction is over: END_STREAM after out
        self.fin = False          # END_STREAM sent
        self.dechunk = None       # Dechunker of a chunked response
        self.req_in: list = []    # (bytes, flow-controlled length) for the server side
        self.req_end = False      # the client ended its side
        self.req_sent = False     # ... and the stream was told (request_end)
        self.chunked = False      # the request body goes chunked to the server
        self.trailers = None      # request trailers (chunked to the server)
        self.resp_trailers = None  # a chunked response's trailers (a last HEADERS frame)
        self.when = INF           # the stream's deadline as last looked at (finish_io)
        self.head_only = False    # HEAD: no DATA whatever the server says
        self.live = True          # in the connection's active streams (forget() ends it)
        self.queued = False       # in the connection's touched list (touch)


def _h2_stream(stream):
    """The connection's _H2Stream of stream (a Stream of this connection)
    while it is active: Stream.peer, set by new_stream(), cleared by
    forget(); else None."""
    s = stream
    return s.peer


class H2Connection(ClientConn):
    """An HTTP/2 client connection and the streams it carries (the
    ClientConn interface of workers/clientconn.py)."""

    __slots__ = ("h2", "cfd", "state", "timer", "stimer", "s_when", "active",
                 "touched", "heads", "out_c", "c_eof", "to_client", "to_request", "to_keepalive",
                 "idle_since", "waiting_body", "soon", "last_uri", "__weakref__")

    def __init__(self, ctx, fe, t, caddr: tuple, first: bytes = b"", accept_time=None,
                 t_accept=None):
        self.ctx = ctx
        self.loop = loop = ctx.loop
        self.fe = fe
        self.t = t
        self.cfd = t.fd
        self.src = caddr[0]
        self.src_port = caddr[1]
        self._src_bytes = None      # src_bytes, made on first use
        self._dst_port = None
        self.own = None
        self.requests = 0
        self.accept_time = accept_time if accept_time is not None else time.time()
        self.t_accept = t_accept if t_accept is not None else loop.now
        self.last_c = loop.now
        self.idle_since = loop.now
        self.h2 = H2Codec(config=h2_config(fe))
        self.state = C_OPEN
        self.active: dict = {}          # stream id -> _H2Stream
        self.touched: list = []         # _H2Stream to look at at the end of the event (touch)
        self.heads: dict = {}           # response heads seen (messages.head_fields)
        self.last_uri = None            # (target, host, scheme, absolute URI) last logged
        self.out_c = b""
        self.c_eof = False
        self.waiting_body = 0           # streams whose request body is still coming
        self.soon = False               # end_of_turn() is scheduled
        tmo = fe.cfg.timeouts
        self.to_client = tmo.client or INF
        self.to_request = tmo.http_request or self.to_client
        self.to_keepalive = tmo.http_keep_alive or self.to_request
        self.timer = loop.timer(self.on_timeout)
        self.stimer = loop.timer(self.on_stream_timers)
        self.s_when = INF               # when stimer is armed for (INF: not armed)
        ctx.sessions.add(self)
        if ctx.draining:
            self.h2.goaway()
        loop.watch(self.cfd, EPOLLIN, self.on_event)
        if first:
            self.take(first)
        elif t.secure:
            # just after the TLS handshake: the preface may be there already
            self.on_event(EPOLLIN)
            return
        self.finish_io()

    @classmethod
    def from_h1(cls, h1, first: bytes) -> "H2Connection":
        """Take over an H1Connection that found the HTTP/2 preface (or ALPN
        h2) before any request: same transport, same counted session."""
        return cls(h1.ctx, h1.fe, h1.t, (h1.src, h1.src_port), first, h1.accept_time,
                   h1.t_accept)

    # ------------------------------------------------------------------ reading

    def on_event(self, events: int) -> None:
        if self.state == C_CLOSED:
            return
        if events & EPOLLOUT and self.out_c:
            if not self.write_client():
                return
        if events & EPOLLOUT and self.t.wants_write:
            events |= EPOLLIN
        if events & (EPOLLIN | EPOLLHUP | EPOLLERR) and not self.c_eof:
            try:
                data = self.t.recv()
            except OSError:
                self.abort("C")
                return
            if data is not None:
                self.last_c = self.loop.now
                if not data:
                    self.c_eof = True
                    self.client_gone()
                    return
                counting.request_bytes(self.fe, len(data))
                self.take(data)
        self.finish_io()

    def take(self, data: bytes) -> None:
        """Bytes from the client: through the codec, then its events."""
        for ev in self.h2.receive_data(data):
            t = type(ev)
            if t is DataReceived:
                self.data_received(ev)
            elif t is RequestReceived:
                self.new_stream(ev)
            elif t is WindowUpdated or t is RemoteSettingsChanged:
                for st in self.active.values():
                    if st.out or st.head is not None or (st.ended and not st.fin):
                        self.touch(st)
            elif t is StreamReset:
                st = self.active.get(ev.stream_id)
                if st is not None:
                    self.stream_reset(st, "C" if ev.remote else "P")
            elif t is TrailersReceived:
                st = self.active.get(ev.stream_id)
                if st is not None:
                    st.trailers = ev.headers
                    self.request_ended(st)
                    self.touch(st)
            elif t is ConnectionTerminated:
                if not ev.remote or ev.error_code != NO_ERROR:
                    # our verdict on the client (flood, protocol error), or
                    # the client gave up: nothing more will come
                    who = "C" if ev.remote else "P"
                    for st in list(self.active.values()):
                        self.stream_reset(st, who)
                    self.state = C_CLOSING

    def data_received(self, ev: DataReceived) -> None:
        """Request body bytes: kept for the server side (pump() moves them),
        or given back at once when no transaction reads them."""
        st = self.active.get(ev.stream_id)
        if st is None or st.ended:
            self.h2.acknowledge_received_data(ev.stream_id, ev.flow_controlled_length)
            if st is not None and ev.end_stream:
                st.req_end = True
            return
        if ev.data or ev.flow_controlled_length:
            st.req_in.append((ev.data, ev.flow_controlled_length))
        if ev.end_stream:
            self.request_ended(st)
        self.touch(st)

    def request_ended(self, st: _H2Stream) -> None:
        if not st.req_end:
            st.req_end = True
            if st.stream is not None:
                self.waiting_body -= 1

    def new_stream(self, ev: RequestReceived) -> None:
        """A request head opened stream ev.stream_id: one Stream for it."""
        sid = ev.stream_id
        if ev.method == b"CONNECT":
            # CONNECT tunnels over HTTP/2 are not relayed (yet)
            self.h2.send_headers(sid, [(b":status", b"501"), (b"content-length", b"0")], True)
            self.h2.reset_stream(sid, NO_ERROR)
            return
        req = to_request(ev)
        scheme = ev.scheme or b"http"
        st = _H2Stream(sid, None)
        st.chunked = req.chunked
        st.head_only = ev.method == b"HEAD"
        now = self.loop.now
        stream = Stream(self, req, now, bool(ev.end_stream))
        # what HAProxy logs for HTTP/2: the absolute URI, version 2.0 (the
        # last one made is kept: the requests of a known header block share
        # their scheme, host and target objects, see messages.to_request)
        host = req.host
        target = req._target
        if not host:
            uri = target
        else:
            last = self.last_uri
            if last is not None and last[0] is target and last[1] is host and last[2] is scheme:
                uri = last[3]
            else:
                uri = b"".join((scheme, b"://", host, target))
                self.last_uri = (target, host, scheme, uri)
        stream.request_line = (req.method, uri, b"HTTP/2.0")
        st.stream = stream
        st.req_end = bool(ev.end_stream)
        if not st.req_end:
            self.waiting_body += 1
        self.active[sid] = st
        stream.peer = st
        self.requests += 1
        self.touch(st)
        stream.start()

    def stream_reset(self, st: _H2Stream, who: str) -> None:
        """The client reset the stream (or we did, for its error): the
        transaction ends here, logged as an abort."""
        self.forget(st)
        stream = st.stream
        if stream is not None and stream.state != ST_DONE:
            stream.abort(who)

    def forget(self, st: _H2Stream) -> None:
        if self.active.pop(st.sid, None) is None:
            return
        st.live = False
        stream = st.stream
        if stream is not None:
            stream.peer = None          # (and the cycle with st is broken)
            if not st.req_end:
                self.waiting_body -= 1
        # (still in touched if it was: finish_io passes over it, not live)
        if not self.active:
            self.idle_since = self.loop.now

    # ------------------------------------------------ what the stream calls

    def client_room(self, stream) -> bool:
        if len(self.out_c) >= HIGH_WATER:
            return False
        st = _h2_stream(stream)
        return st is None or st.out_len < HIGH_WATER

    def body_wanted(self, stream) -> None:
        """The server side takes the request body now (pump() moves it)."""
        st = _h2_stream(stream)
        if st is not None:
            self.touch(st)

    def response_head(self, stream, resp) -> None:
        st = _h2_stream(stream)
        if st is None:
            return
        r = resp
        fields, size, key = head_fields(r, self.heads)
        st.stream.bytes_out += size
        if r.status < 200 and r.interim:        # (status first: interim is a property)
            if r.status != 100 or not st.req_end:
                self.h2.send_headers(st.sid, fields, False, key)
            return
        if r.chunked:
            st.dechunk = Dechunker()
        st.head = fields
        st.head_key = key
        self.touch(st)

    def response_data(self, stream, data: bytes) -> None:
        st = _h2_stream(stream)
        if st is None:
            return
        if st.dechunk is not None:
            data = st.dechunk.feed(data)
        if data and not st.head_only:
            st.out.append(data)
            st.out_len += len(data)
            self.touch(st)

    def local_reply(self, stream, data: bytes) -> None:
        """A whole HTTP/1.1 response made by the proxy: HEADERS and DATA."""
        st = _h2_stream(stream)
        if st is None:
            return
        _, fields, body = split_response(data)
        st.head = fields
        st.head_key = None
        st.dechunk = None
        st.out = [body] if body and not st.head_only else []
        st.out_len = len(body)
        self.touch(st)

    def stream_ended(self, stream) -> None:
        st = _h2_stream(stream)
        if st is None:
            return
        st.ended = True
        if st.dechunk is not None and st.dechunk.trailers:
            st.resp_trailers = st.dechunk.trailers
        # the request body (if any) will not be read now: give the window back
        if st.req_in:
            for _, n in st.req_in:
                self.h2.acknowledge_received_data(st.sid, n)
            st.req_in.clear()
        self.touch(st)

    def start_tunnel(self, stream) -> None:
        """No tunnel over HTTP/2 (no Upgrade, CONNECT answered 501)."""
        st = _h2_stream(stream)
        if st is not None:
            self.h2.reset_stream(st.sid, REFUSED_STREAM)
            self.stream_reset(st, "P")

    def tunnel_data(self, stream, data: bytes) -> None:
        pass

    def take_own(self, srv):
        own = self.own
        self.own = None
        if own.srv is srv:
            own.reused = True
            return own
        own.close(self.loop)
        return None

    def keep_own(self, sc) -> None:
        if self.own is not None:
            self.own.close(self.loop)
        sc.stream = None
        self.own = sc
        self.loop.handlers[sc.fd] = self.on_own_idle
        self.loop.modify(sc.fd, EPOLLIN)

    def on_own_idle(self, events: int) -> None:
        if self.own is not None:
            self.own.close(self.loop)
            self.own = None

    def stream_io(self, stream) -> None:
        """End of an event of one stream's server side: the stream is
        looked at once at the end of the loop's turn, with every other
        stream of the connection touched in the same turn, so that their
        frames leave in one send (one syscall, one TLS record) instead of
        one per response."""
        st = _h2_stream(stream)
        if st is not None:
            self.touch(st)
        if not self.soon:
            self.soon = True
            self.loop.call_soon(self.end_of_turn)

    def end_of_turn(self) -> None:
        self.soon = False
        self.finish_io()

    # ---------------------------------------------------------------- writing

    def write_client(self) -> bool:
        try:
            n = self.t.send(self.out_c)
        except OSError:
            self.abort("C")
            return False
        if n:
            was_full = len(self.out_c) >= HIGH_WATER
            self.out_c = self.out_c[n:]
            self.last_c = self.loop.now
            if was_full and len(self.out_c) < HIGH_WATER:
                for st in self.active.values():     # servers paused for the client
                    self.touch(st)
        return True

    def pump(self, st: _H2Stream) -> None:
        """Move what is waiting on stream st: the request body to the
        server side, the response to the codec."""
        stream = st.stream
        h2 = self.h2
        sid = st.sid
        if not st.ended and stream is not None and stream.state != ST_DONE:
            if (st.req_in or (st.req_end and not st.req_sent)) and stream.wants_request_body():
                if st.req_in and stream.server_room():
                    chunked = st.chunked
                    for data, n in st.req_in:
                        if data:
                            stream.request_data(h1_chunk(data) if chunked else data)
                        h2.acknowledge_received_data(sid, n)
                    st.req_in.clear()
                if st.req_end and not st.req_in and not st.req_sent:
                    st.req_sent = True
                    if st.chunked:
                        stream.request_data(h1_last_chunk(st.trailers))
                    stream.request_end()
            sc = stream.sc
            if sc is not None and sc.wq:
                stream.bytes_in += sc.flush()
        if st.head is not None:
            end = st.ended and not st.out and not st.resp_trailers
            if not h2.send_headers(sid, st.head, end, st.head_key):
                self.forget(st)
                return
            st.head = None
            if end:
                st.fin = True
        if st.out:
            data = b"".join(st.out) if len(st.out) > 1 else st.out[0]
            last = st.ended and not st.resp_trailers
            n = h2.send_data(sid, data, last)
            if n < len(data):
                if h2.max_send(sid) == 0 and sid not in h2.streams:
                    self.forget(st)
                    return
                rest = data[n:]
                st.out = [rest]
                st.out_len = len(rest)
            else:
                st.out = []
                st.out_len = 0
                if last:
                    st.fin = True
        if st.ended and not st.fin and not st.out:
            if st.resp_trailers:
                h2.send_headers(sid, st.resp_trailers, True)
            else:
                h2.end_stream(sid)
            st.fin = True
        if st.fin:
            # Answered before the request body was over: the rest of the
            # body is read and dropped (its window given back). RFC 9113
            # section 8.1 allows RST_STREAM(NO_ERROR) instead, but clients
            # (curl 7.88) then report an error instead of the response.
            self.forget(st)

    def touch(self, st: _H2Stream) -> None:
        """Have finish_io look at st at the end of the event: once, in the
        order the streams were first touched (a flag on the stream, not a
        dict: a stream is touched several times a request)."""
        if not st.queued:
            st.queued = True
            self.touched.append(st)

    def finish_io(self) -> None:
        """End of an event: move the touched streams along, send the
        frames (one send), update what each socket waits for, timers."""
        if self.state == C_CLOSED:
            return
        touched = self.touched
        loop = self.loop
        while touched:
            # in the order they were touched, a batch at a time (those
            # touched meanwhile come in the next batch; a stream forgotten
            # meanwhile is no longer live)
            batch = touched
            self.touched = touched = []
            for st in batch:
                st.queued = False
                if not st.live:
                    continue
                self.pump(st)
                if self.state == C_CLOSED:
                    return
                stream = st.stream
                if stream is None or not st.live:
                    continue
                sc = stream.sc
                if sc is not None and (stream.state == ST_SERVER or stream.state == ST_TUNNEL):
                    smask = sc.mask(stream.server_readable())
                    if loop.masks.get(sc.fd) != smask:
                        loop.watch(sc.fd, smask, sc.on_event)
                if stream.state != ST_DONE:
                    # a later deadline needs nothing: stimer fires early,
                    # finds no stream past its deadline, and is armed again
                    when = st.when = stream.deadline()
                    if when < self.s_when:
                        self.s_when = when
                        loop.set_timer(self.stimer, when)
                else:
                    st.when = INF
        data = self.h2.data_to_send()
        if data:
            if self.out_c:
                self.out_c += data
            else:
                self.out_c = data
                if not self.write_client():
                    return
        if self.state == C_CLOSING or (self.h2.done and not self.active):
            if not self.out_c:
                self.linger()
                return
        elif self.ctx.draining and not self.active and not self.h2.done:
            self.h2.goaway()
            return self.finish_io()
        self.update_mask()
        self.rearm()

    def update_mask(self) -> None:
        loop = self.loop
        readable = not self.c_eof and self.state == C_OPEN and len(self.out_c) < HIGH_WATER
        cmask = (EPOLLIN if readable else 0) | (
            EPOLLOUT if self.out_c or self.t.wants_write else 0)
        if loop.masks.get(self.cfd) != cmask:
            loop.watch(self.cfd, cmask, self.on_event)

    # ----------------------------------------------------------------- timers

    def rearm(self) -> None:
        if self.active:
            if self.out_c or self.waiting_body or self.h2.stalled_since is not None:
                when = self.last_c + self.to_client
            else:
                when = INF
        elif self.requests == 0:
            when = self.t_accept + self.to_request
        else:
            when = self.idle_since + self.to_keepalive
        if not self.h2.settings_acked:
            when = min(when, self.t_accept + min(SETTINGS_WAIT, self.to_client))
        if when != INF:
            self.loop.set_timer(self.timer, when)
        else:
            self.timer.cancel()

    def on_timeout(self) -> None:
        now = self.loop.now
        st = self.state
        if st == C_LINGER or st == C_CLOSED:
            self.close_session()
            return
        if (not self.h2.settings_acked
                and now >= self.t_accept + min(SETTINGS_WAIT, self.to_client)):
            # a peer that does not acknowledge our limits (RFC 9113 6.5.3)
            self.h2.goaway(SETTINGS_TIMEOUT, reason="SETTINGS not acknowledged")
            for st in list(self.active.values()):
                self.stream_reset(st, "c")
            self.state = C_CLOSING
            self.finish_io()
            return
        if self.active:
            if ((self.out_c or self.waiting_body or self.h2.stalled_since is not None)
                    and now >= self.last_c + self.to_client):
                self.abort("c")
                return
        else:
            # idle: say goodbye (GOAWAY) and close
            self.h2.goaway()
            self.state = C_CLOSING
        self.finish_io()

    def on_stream_timers(self) -> None:
        """stimer fired: the streams past their deadline time out, then
        stimer is armed for the earliest deadline left."""
        now = self.loop.now
        self.s_when = INF
        for st in [st for st in self.active.values() if st.when <= now]:
            self.on_stream_timeout(st)
            if self.state == C_CLOSED:
                return
            stream = st.stream
            if stream is None or stream.state == ST_DONE:
                st.when = INF           # nothing left to time out
        when = INF
        for st in self.active.values():
            if st.when < when:
                when = st.when
        if when < self.s_when:
            self.s_when = when
            self.loop.set_timer(self.stimer, when)

    def on_stream_timeout(self, st: _H2Stream) -> None:
        stream = st.stream
        if st.sid not in self.active or stream is None or stream.state == ST_DONE:
            return
        now = self.loop.now
        if now >= stream.deadline():
            stream.on_timeout(now)
        self.touch(st)
        self.finish_io()

    # ---------------------------------------------------------------- endings

    def drain(self) -> None:
        """Graceful stop (reload or stop): GOAWAY with the last stream id;
        the open streams finish, then the connection closes."""
        if self.state != C_OPEN:
            return
        self.h2.goaway()
        self.finish_io()

    def kill(self) -> None:
        self.abort("K")

    def kill_streams_of(self, servers) -> int:
        """`shutdown sessions server`: the streams talking to one of
        servers end now (RST_STREAM CANCEL to the client, logged with K,
        as HAProxy kills the streams of the server); the connection and
        its other streams go on. Returns how many were ended."""
        n = 0
        for st in list(self.active.values()):
            stream = st.stream
            if stream is not None and stream.srv in servers:
                self.h2.reset_stream(st.sid, CANCEL)
                self.stream_reset(st, "K")
                n += 1
        if n:
            self.finish_io()
        return n

    def client_gone(self) -> None:
        """The client closed its side: the streams still open are aborted."""
        for st in list(self.active.values()):
            self.stream_reset(st, "C")
        self.close_session()

    def abort(self, who: str) -> None:
        for st in list(self.active.values()):
            self.stream_reset(st, who)
        self.close_session()

    def linger(self) -> None:
        self.state = C_LINGER
        if not linger.start(self.loop, self.t, self.timer, self.c_eof, self.on_linger):
            self.close_session()

    def on_linger(self, events: int) -> None:
        if linger.drained(self.t):
            self.close_session()

    def close_session(self) -> None:
        if self.state == C_CLOSED:
            return
        for st in list(self.active.values()):
            self.stream_reset(st, "C")
        self.state = C_CLOSED
        self.timer.release()
        self.stimer.release()
        loop = self.loop
        loop.remove(self.cfd)
        self.t.close()
        if self.own is not None:
            self.own.close(loop)
            self.own = None
        self.touched.clear()
        self.ctx.session_ended(self)
