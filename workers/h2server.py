"""The server side of HTTP/2: streams multiplexed over shared connections to
servers whose ``proto`` is "h2" (cleartext with prior knowledge, or TLS
with ALPN h2), for gRPC and other HTTP/2-only services.

Two classes:

* ``H2ServerConn``: one connection to a server, the sans-IO codec in its
  client role (workers/h2/conn.py) on a transport. It carries up to the
  server's SETTINGS_MAX_CONCURRENT_STREAMS streams (at most
  MAX_STREAMS_PER_CONN) at once; the worker keeps its connections per
  server (ConnPool.h2, under the same pool key as HTTP/1.1 connections)
  and opens a new one when all are full. Idle, it stays open
  POOL_IDLE_TIMEOUT seconds and answers the server's PINGs.
* ``H2StreamConn``: the ServerConn a Stream (workers/stream.py) holds for
  one HTTP/2 stream of such a connection. The stream uses it as it uses
  an HTTP/1.1 server connection (begin, wq + flush, mask, close) and gets
  the same callbacks (server_connected, server_head, server_data,
  server_end, server_error, ...), so rules, retries, queues, counters and
  logs are the same. The request body comes as the client connection
  relays it (HTTP/1.1 bytes: chunked or of a known length), is unframed
  here and sent in DATA frames as the server's windows allow (what waits
  is ``out``: the stream's backpressure); chunked trailers go out as a
  trailing HEADERS frame. The response goes back as an HTTP/1.1 head:
  without content-length, its body is chunked so that the trailers (gRPC's
  grpc-status) reach the client connection as chunked trailers (an
  HTTP/2 client connection turns them back into a HEADERS frame).

Flow control: our receive windows reopen (WINDOW_UPDATE) only once the
client connection took the bytes and has room (mask() is asked by the
client connection at the end of each event: the unacknowledged bytes of
a stream are given back when the stream is readable again).

Failures: a connect or TLS failure fails every stream waiting for the
connection (each retries as HTTP/1.1 streams do); a stream the server
refused (REFUSED_STREAM, or above the last stream id of its GOAWAY) was
not processed, so it is sent again on another connection when its request
body, if any, is still held (REPLAY_MAX bytes are kept); another
RST_STREAM is a 502 (termination state SH, or SD once the response
started); the connection's EOF or error fails its streams as an HTTP/1.1
connection's EOF does.

Counting: as HAProxy does for HTTP/2 servers, a server's maxconn and its
current sessions count streams (requests), not connections; each new
connection counts one connect, each stream on an existing one a reuse.
"""

from __future__ import annotations

import socket

from workers import counting
from workers.h2.conn import H2Config
from workers.h2.conn import H2Connection as H2Codec
from workers.h2.errors import CANCEL, NO_ERROR, REFUSED_STREAM, error_name
from workers.h2.events import (ConnectionTerminated, DataReceived, RemoteSettingsChanged,
                               ResponseReceived, StreamReset, TrailersReceived, WindowUpdated)
from workers.h2.messages import h1_chunk, h1_last_chunk, request_fields, trailer_fields
from workers.h2.relay import Dechunker
from workers.http1 import BODY_CHUNKED, BODY_CLOSE, BODY_LENGTH, REASONS, Response
from workers.loop import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, is_fd_exhaustion
from workers.server import POOL_IDLE_TIMEOUT, ServerConn, connect_error_is_fatal
from workers.states import M_CONNECTING, M_HTTP
from workers.transport import HandshakeError, PlainTransport

MAX_STREAMS_PER_CONN = 100   # our own cap, whatever the server allows (HAProxy: 100 too)
REPLAY_MAX = 65536           # request body bytes kept for a retry of a refused stream

# H2ServerConn.state
S_CONNECTING, S_HANDSHAKE, S_OPEN, S_CLOSED = range(4)

# our windows toward the server: 256 kB per stream, 1 MB per connection
_CONFIG = H2Config(max_concurrent_streams=MAX_STREAMS_PER_CONN, initial_window_size=1 << 18,
                   connection_window=1 << 20)
_NO_BODY_STATUS = (204, 304)
_LIMITS: dict = {}           # pool key -> the server's last SETTINGS_MAX_CONCURRENT_STREAMS


def attach(stream, srv, key) -> "H2StreamConn | None":
    """A stream of an HTTP/2 connection to srv for stream (a Stream that
    holds one of srv's slots): on a connection of the worker's pool under
    key with room, else on a new one. Its ``mode`` is M_HTTP when the
    request can go now (the caller calls server_ready()), M_CONNECTING
    while the connection is being made (server_connected() or
    server_connect_failed() follow). None when no socket could be made."""
    pool = stream.conn.ctx.conn_pool
    conns = pool.h2.get(key)
    hc = None
    if conns:
        for c in conns:
            if c.has_room():
                hc = c
                break
    if hc is None:
        hc = H2ServerConn.connect(pool, srv, key, stream)
        if hc is None:
            return None
        pool.h2.setdefault(key, []).append(hc)
    return hc.new_stream(stream)


def discard_server(pool, srv) -> None:
    """Close every HTTP/2 connection to srv that carries no stream (its
    address changed); those in use finish their streams, then close."""
    for key in list(pool.h2):
        if key is srv or (key.__class__ is tuple and key[0] is srv):
            for hc in list(pool.h2[key]):
                hc.goaway = True
                if not hc.users:
                    hc.close()


def close_all(pool) -> None:
    for conns in list(pool.h2.values()):
        for hc in list(conns):
            hc.close()
    pool.h2.clear()


class H2ServerConn:
    """One HTTP/2 connection to a server (see the module docstring)."""

    __slots__ = ("pool", "loop", "srv", "key", "sni", "t", "fd", "h2", "state", "users",
                 "by_sid", "out", "goaway", "used", "idle_since", "sweep_timer", "ctx",
                 "blocked", "first_stream", "settled", "soon")

    def __init__(self, pool, srv, key, t: PlainTransport, sni):
        self.pool = pool
        self.loop = pool.loop
        self.srv = srv
        self.key = key
        self.sni = sni
        self.t = t
        self.fd = t.fd
        self.h2 = H2Codec(client=True, config=_CONFIG, clock=self._clock)
        self.state = S_CONNECTING
        self.users: list = []           # H2StreamConn attached (open, waiting, blocked)
        self.by_sid: dict = {}          # stream id -> H2StreamConn
        self.blocked: list = []         # began while the server's limit was reached
        self.out = b""                  # not yet taken by the socket
        self.goaway = False             # no new stream here (GOAWAY, address change)
        self.used = 0                   # streams carried so far
        self.idle_since = self.loop.now
        self.sweep_timer = None
        self.ctx = None
        self.first_stream = None        # for the TLS failure log line
        self.settled = False            # the server's SETTINGS arrived
        self.soon = False               # flush_out() is scheduled for the end of the turn

    def _clock(self) -> float:
        return self.loop.now

    @classmethod
    def connect(cls, pool, srv, key, stream) -> "H2ServerConn | None":
        try:
            sock = socket.socket(srv.family, socket.SOCK_STREAM)
        except OSError as e:
            if is_fd_exhaustion(e):
                stream.conn.ctx.out_of_fds()
            return None
        sock.setblocking(False)
        err = sock.connect_ex(srv.sockaddr)
        tls = srv.tls
        sni = None
        if tls is not None:
            sni = key[1] if key.__class__ is tuple else tls.fixed_name
        hc = cls(pool, srv, key, PlainTransport(sock), sni)
        hc.ctx = stream.conn.ctx
        hc.first_stream = stream
        hc.loop.add(hc.fd, EPOLLOUT, hc.on_event)
        if connect_error_is_fatal(err):
            # reported once the stream holds its ServerConn
            hc.loop.call_soon(hc.connect_failed)
        return hc

    # ------------------------------------------------------------- streams

    def limit(self) -> int:
        """Streams this connection may carry at once: the server's
        SETTINGS_MAX_CONCURRENT_STREAMS (before its SETTINGS arrive, what
        its other connections were told: a server is not flooded with
        streams it would refuse), at most MAX_STREAMS_PER_CONN."""
        if self.settled:
            peer = self.h2.peer_max_concurrent
        else:
            peer = _LIMITS.get(self.key, MAX_STREAMS_PER_CONN)
        return peer if peer < MAX_STREAMS_PER_CONN else MAX_STREAMS_PER_CONN

    def has_room(self) -> bool:
        return (self.state != S_CLOSED and not self.goaway and not self.h2.closed
                and self.h2.can_open_stream() and len(self.users) < self.limit())

    def new_stream(self, stream) -> "H2StreamConn":
        sc = H2StreamConn(self, stream)
        self.users.append(sc)
        if self.sweep_timer is not None:
            self.sweep_timer.cancel()
        return sc

    def open(self, sc: "H2StreamConn") -> None:
        """Send sc's request head now, or once a stream slot frees."""
        h2 = self.h2
        if not h2.can_open_stream() or len(self.by_sid) >= self.limit():
            if sc not in self.blocked:
                self.blocked.append(sc)
            return
        sid = h2.send_request(sc.fields, sc.head_end)
        sc.sid = sid
        sc.fields = None
        self.by_sid[sid] = sc
        self.used += 1

    def detach(self, sc: "H2StreamConn") -> None:
        """sc's stream no longer uses the connection (ended, failed, aborted):
        an open HTTP/2 stream is reset (CANCEL), so the server stops."""
        if sc in self.users:
            self.users.remove(sc)
        if sc in self.blocked:
            self.blocked.remove(sc)
        sid = sc.sid
        if sid and self.by_sid.get(sid) is sc:
            del self.by_sid[sid]
            if sid in self.h2.streams and self.state == S_OPEN:
                self.h2.reset_stream(sid, CANCEL)
            if sc.unacked:
                self.h2.acknowledge_received_data(sid, sc.unacked)
                sc.unacked = 0
        sc.sid = 0
        if self.state == S_CLOSED:
            return
        if not self.users:
            if self.state != S_OPEN or self.goaway or self.h2.done:
                self.close()
                return
            self.idle_since = self.loop.now
            self.loop.handlers[self.fd] = self.on_event
            if self.sweep_timer is None:
                self.sweep_timer = self.loop.timer(self.sweep)
            self.loop.set_timer(self.sweep_timer, self.loop.now + POOL_IDLE_TIMEOUT)
        else:
            self.unblock()
        self.flush_soon()

    def unblock(self) -> None:
        while self.blocked and self.h2.can_open_stream() and len(self.by_sid) < self.limit():
            sc = self.blocked.pop(0)
            self.open(sc)
            sc.push()

    def sweep(self) -> None:
        if self.state == S_CLOSED or self.users:
            return
        if self.loop.now - self.idle_since >= POOL_IDLE_TIMEOUT - 0.01:
            self.h2.goaway()
            self.flush_out()
            self.close()
        else:
            self.loop.set_timer(self.sweep_timer, self.idle_since + POOL_IDLE_TIMEOUT)

    # ------------------------------------------------------------- I/O

    def mask(self) -> int:
        if self.state == S_CLOSED:
            return 0
        if self.state == S_CONNECTING:
            return EPOLLOUT
        t = self.t
        return EPOLLIN | (EPOLLOUT if self.out or t.wants_write else 0)

    def flush_soon(self) -> None:
        """flush_out() once at the end of the loop's turn: the frames of
        every stream that moved in this turn leave in one send."""
        if not self.soon:
            self.soon = True
            self.loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self.soon = False
        self.flush_out()

    def flush_out(self) -> None:
        """Send the codec's frames (one send); what the socket does not
        take waits for EPOLLOUT."""
        if self.state != S_OPEN:
            return
        data = self.h2.data_to_send()
        if data:
            self.out = self.out + data if self.out else data
        if self.out:
            try:
                n = self.t.send(self.out)
            except OSError:
                self.out = b""
                self.broken("server connection reset")
                return
            if n:
                self.out = self.out[n:]
        self.loop.modify(self.fd, self.mask())

    def on_event(self, events: int) -> None:
        state = self.state
        if state == S_CLOSED:
            return
        if state == S_CONNECTING:
            if not events & (EPOLLOUT | EPOLLERR | EPOLLHUP):
                return          # a stale event (see ServerConn.on_event)
            sock = self.t.sock
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.connect_failed()
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.srv.tls is not None:
                try:
                    self.t = self.srv.tls.wrap(sock, self.sni)
                except (OSError, ValueError) as e:
                    self.tls_failed(str(e))
                    return
                self.state = S_HANDSHAKE
                self.tls_step()
                return
            self.connected()
            return
        if state == S_HANDSHAKE:
            self.tls_step()
            return
        if events & EPOLLOUT and self.t.wants_write:
            events |= EPOLLIN
        if events & EPOLLOUT and self.out:
            self.flush_out()
            if self.state == S_CLOSED:
                return
        if events & (EPOLLIN | EPOLLHUP | EPOLLERR):
            try:
                data = self.t.recv()
            except OSError:
                data = b""
            if data is None:
                return
            if not data:
                self.broken("server closed the connection")
                return
            self.receive(data)

    def tls_step(self) -> None:
        t = self.t
        try:
            done = t.handshake()
        except HandshakeError as e:
            self.tls_failed(str(e))
            return
        if not done:
            self.loop.modify(self.fd, EPOLLOUT if t.wants_write else EPOLLIN)
            return
        self.srv.tls.keep_session(t)
        self.connected()

    def tls_failed(self, why: str) -> None:
        st = self.first_stream
        if st is not None and self.ctx is not None:
            self.srv.tls.failed(self.ctx, st.src, st.src_port, st.conn.accept_time,
                                self.srv, why)
        self.connect_failed()

    def connected(self) -> None:
        """TCP (and TLS) up: the preface and SETTINGS go, then every
        waiting stream's request."""
        self.state = S_OPEN
        self.first_stream = None
        self.loop.modify(self.fd, EPOLLIN)
        waiting = [sc for sc in self.users if sc.mode == M_CONNECTING]
        for sc in waiting:
            sc.mode = M_HTTP
        for sc in waiting:
            stream = sc.stream
            if stream is not None and stream.sc is sc:
                stream.server_connected()
        self.flush_out()
        for sc in waiting:
            stream = sc.stream
            if stream is not None:
                stream.finish_io()
        if not self.users and self.state == S_OPEN:
            self.detach_none()

    def detach_none(self) -> None:
        """No stream is left after the connect: idle in the pool."""
        self.idle_since = self.loop.now
        if self.sweep_timer is None:
            self.sweep_timer = self.loop.timer(self.sweep)
        self.loop.set_timer(self.sweep_timer, self.loop.now + POOL_IDLE_TIMEOUT)

    def connect_failed(self) -> None:
        """The connect (or TLS) failed: each waiting stream retries or
        answers 503, as for an HTTP/1.1 connection."""
        if self.state == S_CLOSED:
            return
        self.close()
        for sc in list(self.users):
            stream = sc.stream
            if stream is not None and stream.sc is sc:
                stream.server_connect_failed()
                stream.finish_io()

    def broken(self, reason: str) -> None:
        """EOF or error on the connection: its streams fail (a stream that
        has no response yet retries when that is safe: server_closed_early)."""
        if self.state == S_CLOSED:
            return
        users = list(self.users)
        reused = self.used > len(users)
        self.close()
        for sc in users:
            stream = sc.stream
            if stream is None or stream.sc is not sc:
                continue
            if not sc.sid and sc.begun and sc.refused_retry():
                continue                # never sent (waiting for a stream slot)
            if not stream.resp_started:
                sc.reused = sc.reused or reused
                stream.server_closed_early()
            else:
                stream.server_error(reason)
            stream.finish_io()

    def close(self) -> None:
        if self.state == S_CLOSED:
            return
        self.state = S_CLOSED
        loop = self.loop
        loop.remove(self.fd)
        self.t.close()
        if self.sweep_timer is not None:
            self.sweep_timer.release()
        conns = self.pool.h2.get(self.key)
        if conns and self in conns:
            conns.remove(self)
            if not conns:
                del self.pool.h2[self.key]
        self.by_sid.clear()
        self.blocked.clear()
        self.first_stream = None

    # ----------------------------------------------------------- receiving

    def receive(self, data: bytes) -> None:
        """Bytes from the server: through the codec, each event to its
        stream; then the frames the codec queued go out."""
        touched = {}
        now = self.loop.now
        for ev in self.h2.receive_data(data):
            t = type(ev)
            if t is DataReceived:
                sc = self.by_sid.get(ev.stream_id)
                if sc is None:
                    self.h2.acknowledge_received_data(ev.stream_id, ev.flow_controlled_length)
                    continue
                touched[sc] = sc.stream
                sc.on_data(ev, now)
            elif t is ResponseReceived:
                sc = self.by_sid.get(ev.stream_id)
                if sc is not None:
                    touched[sc] = sc.stream
                    sc.on_response(ev, now)
            elif t is TrailersReceived:
                sc = self.by_sid.get(ev.stream_id)
                if sc is not None:
                    touched[sc] = sc.stream
                    sc.on_trailers(ev.headers, now)
            elif t is WindowUpdated or t is RemoteSettingsChanged:
                if t is RemoteSettingsChanged and not self.settled:
                    self.settled = True
                    _LIMITS[self.key] = self.h2.peer_max_concurrent
                for sc in list(self.by_sid.values()):
                    if sc.out or sc.body_end_pending:
                        sc.push()
                        touched[sc] = sc.stream
                self.unblock()
            elif t is StreamReset:
                sc = self.by_sid.get(ev.stream_id)
                if sc is not None:
                    touched[sc] = sc.stream
                    sc.on_reset(ev)
            elif t is ConnectionTerminated:
                self.goaway = True
                if not ev.remote or ev.error_code != NO_ERROR:
                    why = ("GOAWAY %s from the server" % error_name(ev.error_code)
                           if ev.remote else "HTTP/2 error of the server: " + ev.reason)
                    self.flush_out()
                    self.broken(why)
                    return
        self.flush_out()
        for stream in touched.values():
            if stream is not None:
                stream.finish_io()
        if self.state == S_OPEN and not self.users and (self.goaway or self.h2.done):
            self.close()


class H2StreamConn(ServerConn):
    """One stream of an H2ServerConn, as a Stream's ServerConn (see the
    module docstring). ``out`` holds request body bytes the server's
    windows did not take yet."""

    __slots__ = ("hc", "sid", "fields", "head_end", "left", "dechunk", "body_end",
                 "body_end_pending", "trailers", "chunk_resp", "unacked", "replay",
                 "replay_ok", "resp_done", "begun")

    def __init__(self, hc: H2ServerConn, stream):
        # ServerConn's fields, without its HTTP/1.1 response parser
        self.t = hc.t
        self.fd = hc.fd
        self.srv = hc.srv
        self.rp = None
        self.idle_since = 0.0
        self.on_idle = None
        self.pool = None
        self.wq = []
        self.out = b""
        self.eof = False
        self.shut_after_flush = False
        self.proxy_header = b""
        self.pool_key = hc.key
        self.sni = hc.sni
        self.want_session = False
        self.hc = hc
        self.stream = stream
        self.mode = M_HTTP if hc.state == S_OPEN else M_CONNECTING
        self.reused = hc.used > 0 or len(hc.users) > 0     # the connect was another's
        self.sid = 0
        self.fields = None
        self.head_end = False
        self.left = -1                  # body bytes still to come (known length)
        self.dechunk = None             # Dechunker of a chunked request body
        self.body_end = False           # the request body is complete (END_STREAM due)
        self.body_end_pending = False   # ... and END_STREAM (or trailers) not sent yet
        self.trailers = None
        self.chunk_resp = False         # the response body goes out chunked
        self.unacked = 0                # response bytes handed over, window not reopened
        self.replay = []                # the request body as relayed (for a retry)
        self.replay_ok = True           # replay holds all of it
        self.resp_done = False
        self.begun = False              # the head was given to the codec (begin)

    # ----------------------------------------------- what the stream calls

    def attach(self, stream, loop, mask: int) -> None:
        self.stream = stream

    def begin(self, req) -> None:
        """Send the request head (a new HTTP/2 stream). The body follows
        through wq + flush()."""
        self.mode = M_HTTP
        self.begun = True
        hc = self.hc
        fields = request_fields(req, b"https" if hc.srv.tls is not None else b"http")
        for k, v in fields:
            if k == b"te":
                break
        else:
            # gRPC servers want it; farm relays trailers, so it may say so
            fields.append((b"te", b"trailers"))
        if req.method == b"CONNECT":
            raise ValueError("CONNECT to an HTTP/2 server")
        if req.chunked:
            self.dechunk = Dechunker()
        elif req.content_length:
            self.left = req.content_length
        else:
            self.body_end = True
        self.fields = fields
        self.head_end = self.body_end
        hc.open(self)
        self.push()
        if hc.state == S_OPEN:
            hc.flush_soon()

    def flush(self) -> int:
        """Take the request body bytes queued (wq, HTTP/1.1-framed as the
        client connection relays them), unframed into DATA frames."""
        wq = self.wq
        if not wq or not self.begun:
            return 0                    # (a retry's body waits for its head)
        raw = b"".join(wq) if len(wq) > 1 else wq[0]
        wq.clear()
        if self.replay_ok:
            if sum(map(len, self.replay)) + len(raw) <= REPLAY_MAX:
                self.replay.append(raw)
            else:
                self.replay_ok = False
                self.replay = []
        if self.body_end:
            return len(raw)             # past the body's end: nothing to send
        dc = self.dechunk
        if dc is not None:
            data = dc.feed(raw)
            if dc.done:
                self.body_end = True
                self.trailers = trailer_fields(dc.trailers) if dc.trailers else None
        else:
            data = raw[:self.left] if len(raw) > self.left else raw
            self.left -= len(data)
            if not self.left:
                self.body_end = True
        if data:
            self.out = self.out + data if self.out else data
        if self.body_end:
            self.body_end_pending = True
        self.push()
        self.hc.flush_soon()
        return len(raw)

    def push(self) -> None:
        """Give the codec what its windows take of the body; END_STREAM
        (or the trailers) once all of it went."""
        sid = self.sid
        if not sid:
            return
        h2 = self.hc.h2
        if sid not in h2.streams:
            return
        data = self.out
        if data:
            last = self.body_end and not self.trailers
            n = h2.send_data(sid, data, last)
            if n:
                self.stream.last_s = self.hc.loop.now    # the server takes the body
            self.out = data[n:] if n < len(data) else b""
            if not self.out and last:
                self.body_end_pending = False
        if self.body_end_pending and not self.out:
            self.body_end_pending = False
            if self.trailers:
                h2.send_trailers(sid, self.trailers)
            elif not self.head_end:
                h2.end_stream(sid)

    def mask(self, readable: bool) -> int:
        """The connection's mask (shared by its streams); a readable stream
        gives back the window of the bytes its client took."""
        hc = self.hc
        if readable and self.unacked and self.sid:
            hc.h2.acknowledge_received_data(self.sid, self.unacked)
            self.unacked = 0
            hc.flush_soon()
        m = hc.mask()
        return m if m else EPOLLIN

    def on_event(self, events: int) -> None:
        self.hc.on_event(events)

    def reusable(self) -> bool:
        return False                    # the connection is shared, never parked per stream

    def close(self, loop) -> None:
        self.hc.detach(self)
        self.stream = None

    def discard_output(self) -> None:
        self.out = b""
        self.wq.clear()

    # --------------------------------------------- what the connection calls

    def on_response(self, ev, now: float) -> None:
        stream = self.stream
        stream.last_s = now
        status = ev.status
        resp = Response(status, REASONS.get(status, b""), b"HTTP/1.1", ev.headers[ev.regular:])
        resp.keep_alive = True
        if status < 200:
            stream.server_head(resp)
            return
        cl = ev.content_length
        resp.content_length = cl
        no_body = (ev.end_stream or status in _NO_BODY_STATUS or stream.req.method == b"HEAD")
        if cl is not None:
            resp.body_mode = BODY_LENGTH
        elif not no_body and stream.req.version == b"HTTP/1.0":
            # no chunked coding for HTTP/1.0: the body ends when the client
            # connection closes (the client connection sees BODY_CLOSE)
            resp.body_mode = BODY_CLOSE
        elif not no_body:
            # no length: chunked, which also carries the trailers (gRPC's status)
            resp.chunked = True
            resp.body_mode = BODY_CHUNKED
            resp.headers.append((b"transfer-encoding", b"chunked"))
            self.chunk_resp = True
        elif ev.end_stream and status not in _NO_BODY_STATUS and stream.req.method != b"HEAD":
            resp.headers.append((b"content-length", b"0"))
            resp.content_length = 0
        stream.server_head(resp)
        if ev.end_stream and self.stream is stream:
            self.response_end(None)

    def on_data(self, ev, now: float) -> None:
        stream = self.stream
        stream.last_s = now
        data = ev.data
        n = ev.flow_controlled_length
        if data:
            stream.server_data(h1_chunk(data) if self.chunk_resp else data)
        if n:
            if self.stream is stream and stream.conn.client_room(stream):
                self.hc.h2.acknowledge_received_data(self.sid, n)
            else:
                self.unacked += n
        if ev.end_stream and self.stream is stream:
            self.response_end(None)

    def on_trailers(self, fields, now: float) -> None:
        self.stream.last_s = now
        self.response_end(fields)

    def response_end(self, trailers) -> None:
        stream = self.stream
        self.resp_done = True
        if self.chunk_resp:
            stream.server_data(h1_last_chunk(trailers))
        stream.server_end()

    def on_reset(self, ev) -> None:
        """The stream was reset: by the server (RST_STREAM, or refused by
        its GOAWAY), or by our codec for a malformed response."""
        stream = self.stream
        hc = self.hc
        hc.by_sid.pop(self.sid, None)
        self.sid = 0
        if ev.remote and ev.error_code == REFUSED_STREAM and self.refused_retry():
            return
        if ev.remote:
            if ev.error_code == NO_ERROR and self.resp_done:
                return
            reason = "server reset the stream (%s)" % error_name(ev.error_code)
        else:
            reason = "invalid HTTP/2 response: " + ev.reason
        stream.server_error(reason)

    def refused_retry(self) -> bool:
        """The server did not process the request (REFUSED_STREAM, above
        the last stream id of its GOAWAY): send it again on another
        connection, with its body when it is still held. False when that
        cannot be (a response started, the body was not kept, no retry
        left): the caller fails the stream."""
        stream = self.stream
        if (stream is None or stream.resp_started or not self.replay_ok
                or stream.retries >= stream.be.retries + 1):
            return False
        replay = self.replay
        key = self.pool_key
        stream.drop_server_conn()
        stream.retries += 1
        counting.retried(stream.be, stream.srv, stream.srv)
        stream.open_connection(stream.srv, key)
        sc = stream.sc
        if sc is not None and replay:
            sc.wq[:0] = replay
        stream.finish_io()
        return True
