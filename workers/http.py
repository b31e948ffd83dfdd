"""HTTP mode (layer 7): one HttpSession per client connection.

A session reads requests with the sans-IO parser (workers/http1.py), one at
a time (pipelined requests wait in the parser's buffer, answered in order),
runs the rules (workers/rules.py), picks a backend and a server, and relays
the request and then the response. Bodies are relayed as the raw wire bytes
the parser validated; heads are re-serialized (rules may have edited them).

Server connections are kept alive and pooled per server when idle (this
worker only), reused the way HAProxy's `http-reuse safe` does: the first
request of a client connection goes over a fresh connection (so a failure
there is the client's own to retry), later ones may take an idle one. A
reused connection that the server had closed before answering is retried on
a fresh connection for idempotent requests without a body.

The common case goes straight through (on_client / on_server, first
branch): a recv that holds exactly one whole request without a body
(RequestParser.whole_request), or exactly one whole response framed by
Content-Length (ResponseParser.whole_response), is taken in one step
instead of event by event, and its head is forwarded as the bytes received
(plus the fields appended by X-Forwarded-For or a set-header; see
http1.head_bytes) instead of being serialized again. Anything else (a
partial head, a body to stream, pipelining, chunked, errors) goes through
the parser's events; both ways run the same rules, counting and logging.

Writes to each side are queued during an event and sent with one send() at
its end, so a response head and its first body bytes leave in one syscall.
Reading a side stops while the other side's queue is above HIGH_WATER
(backpressure).

Termination states follow HAProxy's codes (first letter: who/what ended the
transaction, second: in which phase):
  C/S client/server abort, c/s client/server timeout, P proxy (deny, bad
  request), R resource, I internal, D server down, K killed, - normal;
  R request, Q queue, C connect, H response headers, D data, L last data,
  T tunnel... and - normal.
"""

from __future__ import annotations

import errno
import socket
import time

from farm.logs import HTTP_FIELDS, httplog_line, httplog_values, json_http_line, json_http_values
from workers import counting, http1, linger
from workers.http1 import (CLOSED, END_OF_MESSAGE, NEED_DATA, PAUSED, TUNNEL,
                           Data, HttpError, Request, Response)
from workers.loop import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, is_fd_exhaustion
from workers.rules import no_rules

INF = float("inf")
HIGH_WATER = 262144          # queued bytes for a peer before its source pauses
RECV_SIZE = 65536
POOL_MAX_IDLE = 256          # idle connections kept per server (per worker)
POOL_IDLE_TIMEOUT = 5.0      # like HAProxy's pool-purge-delay
DRAIN_IDLE_GRACE = 0.5       # idle keep-alive seconds before a draining worker closes it
IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"))

# session states (S_TURNAROUND: waiting to connect again to the server that
# just refused, BackendRuntime.retry_wait)
S_REQ, S_QUEUED, S_CONNECTING, S_SERVER, S_TUNNEL, S_CLOSING, S_LINGER, S_CLOSED, S_TURNAROUND = range(9)
_PHASE = {S_REQ: "R", S_QUEUED: "Q", S_CONNECTING: "C", S_SERVER: "H", S_TUNNEL: "D",
          S_CLOSING: "L", S_LINGER: "L", S_CLOSED: "-", S_TURNAROUND: "C"}


class ServerConn:
    """A connection to a server: attached to a session, or idle in the pool."""

    __slots__ = ("sock", "fd", "srv", "rp", "reused", "idle_since", "on_idle")

    def __init__(self, sock: socket.socket, srv, max_head: int):
        self.sock = sock
        self.fd = sock.fileno()
        self.srv = srv
        self.rp = http1.ResponseParser(max_head)
        self.reused = False
        self.idle_since = 0.0
        self.on_idle = None

    def close(self, loop) -> None:
        loop.remove(self.fd)
        self.sock.close()
        self.on_idle = None    # breaks the conn <-> callback cycle: freed at once


class ConnPool:
    """Idle server connections of one worker, per server (LIFO: the most
    recently used connection is the least likely to have been closed)."""

    def __init__(self, loop):
        self.loop = loop
        self.idle: dict = {}            # ServerRuntime -> list[ServerConn]
        self.sweeping = False

    def take(self, srv) -> ServerConn | None:
        conns = self.idle.get(srv)
        if conns:
            conn = conns.pop()
            conn.reused = True
            return conn
        return None

    def give(self, conn: ServerConn) -> None:
        """Park a connection whose response ended cleanly and is keep-alive."""
        conns = self.idle.setdefault(conn.srv, [])
        if len(conns) >= POOL_MAX_IDLE:
            conn.close(self.loop)
            return
        conn.idle_since = self.loop.now
        if conn.on_idle is None:
            conn.on_idle = lambda ev, c=conn: self.on_idle_event(c)
        loop = self.loop
        loop.handlers[conn.fd] = conn.on_idle
        loop.modify(conn.fd, EPOLLIN)
        conns.append(conn)
        if not self.sweeping:
            self.sweeping = True
            loop.call_later(POOL_IDLE_TIMEOUT, self.sweep)

    def on_idle_event(self, conn: ServerConn) -> None:
        """An idle connection is readable: the server closed it (or sent
        something unsolicited, which makes it unusable too)."""
        self.discard(conn)

    def discard(self, conn: ServerConn) -> None:
        conns = self.idle.get(conn.srv)
        if conns and conn in conns:
            conns.remove(conn)
        conn.close(self.loop)

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
        for conns in self.idle.values():
            for c in conns:
                c.close(self.loop)
            conns.clear()


class Txn:
    """One request/response exchange: what rules read and what gets logged."""

    __slots__ = ("session", "req", "resp", "src", "src_port", "_rules_src", "be", "srv",
                 "t_start", "t_head", "t_queue", "t_connect", "t_connected", "t_resp",
                 "status", "bytes_out", "retries", "redispatched", "term", "cc", "cs",
                 "request_line", "close", "tried", "key", "forced_server", "resp_started",
                 "req_done", "local", "released", "bytes_in",
                 "t_retry")      # set when a retry waits (S_TURNAROUND), read only then

    def __init__(self, session, req: Request, t_start: float):
        self.session = session
        self.req = req
        self.resp = None
        self.src = session.caddr[0]
        self.src_port = session.caddr[1]
        self.be = None
        self.srv = None
        self.t_start = t_start
        self.t_head = session.loop.now
        self.t_queue = -1.0
        self.t_connect = -1.0
        self.t_connected = -1.0
        self.t_resp = -1.0
        self.status = 0
        self.bytes_out = 0
        self.retries = 0
        self.redispatched = False
        self.term = "--"
        self.cc = "-"
        self.cs = "-"
        # as received (rules may rewrite it); joined only when logged
        self.request_line = (req.method, req._target, req.version)
        self.close = not req.keep_alive
        self.tried: tuple[int, ...] = ()   # servers that failed (rare: no set per request)
        self.key = None
        self.forced_server = None
        self.resp_started = False
        self.req_done = False
        self.local = False
        self.released = True        # no server slot held yet
        self.bytes_in = 0           # request bytes sent to the server

    @property
    def dst_port(self) -> int:
        return self.session.dst_port()


class HttpSession:
    """An HTTP/1.1 client connection and the transactions it carries."""

    # Slots: an idle keep-alive connection costs its session object, so no
    # per-instance dict (about 1 KiB less per connection).
    __slots__ = ("_dst_port", "accept_time", "c_eof", "c_unwanted", "caddr", "cfd", "csock",
                 "ctx", "discarding", "fe", "last_c", "last_s", "loop", "need_pump", "out_c",
                 "out_s", "own", "req_bytes", "req_start", "requests", "rp", "s_eof", "sc",
                 "shut_c_after_flush", "shut_s_after_flush", "state", "t_accept", "timer",
                 "to_client", "to_floor", "to_keepalive", "to_request", "to_tunnel", "txn", "wq_c", "wq_s",
                 "src_bytes", "__weakref__")

    def __init__(self, ctx, fe, csock: socket.socket, caddr: tuple):
        self.ctx = ctx
        self.loop = loop = ctx.loop
        self.fe = fe
        self.csock = csock
        self.cfd = csock.fileno()
        self.caddr = caddr
        self.src_bytes = caddr[0].encode()   # X-Forwarded-For, once per connection
        self._dst_port = None
        self.rp = http1.RequestParser(fe.cfg.max_header_size)
        self.state = S_REQ
        self.txn: Txn | None = None
        self.sc: ServerConn | None = None
        self.own: ServerConn | None = None   # private idle server connection (http-reuse never)
        self.wq_c: list[bytes] = []      # queued for the client this event
        self.out_c = b""                 # not yet accepted by the client socket
        self.wq_s: list[bytes] = []
        self.out_s = b""
        self.c_eof = False
        self.s_eof = False
        self.need_pump = False           # request parser events to take at end of event
        self.c_unwanted = False          # client readable while paused (update_masks)
        self.discarding = False          # skipping the rest of a request answered locally
        self.shut_s_after_flush = False  # tunnel half-close waiting for out_s to drain
        self.shut_c_after_flush = False
        self.to_tunnel = 0.0
        self.requests = 0
        self.accept_time = time.time()
        self.t_accept = loop.now
        self.req_start = loop.now        # first byte (or start of wait) of the next request
        self.req_bytes = False           # some bytes of the next request arrived
        self.last_c = self.last_s = loop.now
        t = fe.cfg.timeouts
        self.to_client = t.client or INF
        self.to_request = t.http_request or INF
        self.to_keepalive = t.http_keep_alive or self.to_request
        self.to_floor = min(self.to_client, self.to_request, self.to_keepalive)
        self.timer = loop.timer(self.on_timeout)
        ctx.sessions.add(self)
        ctx.actconn += 1
        counting.opened(fe)
        loop.add(self.cfd, EPOLLIN, self.on_client)
        loop.set_timer(self.timer, loop.now + self.to_request)

    def dst_port(self) -> int:
        if self._dst_port is None:
            self._dst_port = self.csock.getsockname()[1]
        return self._dst_port

    # ------------------------------------------------------------------ client

    def on_client(self, events: int) -> None:
        if events & EPOLLOUT and self.out_c:
            if not self.write_client():
                return
        if events & (EPOLLIN | EPOLLHUP | EPOLLERR) and not self.client_readable():
            self.c_unwanted = True   # paused (see update_masks): leave epoll now
        elif events & (EPOLLIN | EPOLLHUP | EPOLLERR):
            try:
                data = self.csock.recv(RECV_SIZE)
            except BlockingIOError:
                data = None
            except OSError:
                self.abort("C")
                return
            if data is not None:
                now = self.last_c = self.loop.now
                counting.request_bytes(self.fe, len(data))
                if self.state == S_TUNNEL:
                    self.tunnel_in(data, from_client=True)
                elif self.state == S_REQ and data and self.take_whole_request(data, now):
                    pass
                else:
                    if not data:
                        self.c_eof = True
                    elif self.state == S_REQ and not self.req_bytes:
                        self.req_bytes = True
                        self.req_start = now
                    self.rp.feed(data)
                    self.pump_request()
        self.finish_io()

    def take_whole_request(self, data: bytes, now: float) -> bool:
        """The common case straight through: when data (just received, the
        session waiting for a request) is one whole request without a body
        (RequestParser.whole_request), start its transaction. False, and
        nothing done, otherwise: the bytes go through the parser's events."""
        req = self.rp.whole_request(data)
        if req is None:
            return False
        t_start = self.req_start if self.req_bytes else now
        self.req_bytes = True
        self.start_txn(req, t_start, whole=True)
        return True

    def client_readable(self) -> bool:
        """Whether to read the client now (backpressure and phase)."""
        if self.c_eof or self.state == S_CLOSED:
            return False
        if self.state == S_TUNNEL:
            return len(self.out_s) < HIGH_WATER
        if self.state == S_REQ:
            return True
        txn = self.txn
        if self.state == S_SERVER and txn is not None and not txn.req_done:
            return len(self.out_s) < HIGH_WATER
        return False

    def pump_request(self) -> None:
        """Take events from the request parser as far as the phase allows."""
        rp = self.rp
        while self.state == S_REQ or (self.state == S_SERVER and not self.txn.req_done):
            try:
                ev = rp.next_event()
            except HttpError as e:
                self.client_error(e.status, e.reason)
                return
            if ev is NEED_DATA:
                if self.c_eof:
                    if self.state == S_REQ:
                        self.close_quietly("CR" if self.req_bytes else "--")
                    else:
                        self.abort("C")
                return
            if self.state == S_REQ:
                if ev is CLOSED:
                    self.close_quietly("--")
                    return
                if ev is PAUSED:
                    # The upgrade (or CONNECT) request before this point got
                    # an answer that did not switch protocols: the server
                    # refused it (any non-101), or it was answered locally.
                    # The connection stays HTTP; PAUSED always follows that
                    # request's END_OF_MESSAGE, so it never reaches start_txn.
                    rp.resume()
                    continue
                if self.discarding:
                    # the body / end of a request that was answered locally
                    if ev is END_OF_MESSAGE:
                        self.discarding = False
                    continue
                self.start_txn(ev, self.req_start if self.req_bytes else self.loop.now)
                continue
            # forwarding the request body
            if type(ev) is Data:
                self.wq_s.append(ev.raw)
            elif ev is END_OF_MESSAGE or ev is PAUSED:
                self.txn.req_done = True
            elif ev is CLOSED:
                self.txn.req_done = True

    # ------------------------------------------------------------- transactions

    def start_txn(self, req: Request, t_start: float, whole: bool = False) -> None:
        """A request head arrived (at t_start): rules, backend, server.
        ``whole``: the request is complete already (no body follows)."""
        fe = self.fe
        txn = self.txn = Txn(self, req, t_start)
        txn.req_done = whole
        self.requests += 1
        if self.ctx.draining:
            txn.close = True
        if fe.cfg.option_forwardfor:
            # Replace what the client claims (it could lie), before the rules,
            # so that a set-header X-Forwarded-Proto of the user's wins.
            set_forwarded_proto(req)
        # (`is not no_rules`: an empty rule list is not even called)
        if fe.req_rules is not no_rules:
            verdict = fe.req_rules(txn)
            if verdict is not None:
                self.local_response(verdict)
                return
        name = fe.fixed_backend
        if name is None:
            name = fe.choose_backend(txn)
        be = self.ctx.backends.get(name) if name else None
        if be is None:
            txn.be = None
            self.send_error(503, "SC")   # no backend for this request
            return
        txn.be = be
        counting.opened(be)
        if be.cfg.option_forwardfor and not fe.cfg.option_forwardfor:
            set_forwarded_proto(req)   # as above, before the backend's rules
        if be.req_rules is not no_rules:
            verdict = be.req_rules(txn)
            if verdict is not None:
                self.local_response(verdict)
                return
        self.prepare_request(txn, be)
        if be.cookie is not None:
            be.cookie.on_request(txn)
        txn.key = be.key_of(txn) if be.key_of is not None else None
        self.connect_server()

    def prepare_request(self, txn: Txn, be) -> None:
        """Headers as the server must see them: hop-by-hop fields removed,
        X-Forwarded-For (appended, as HAProxy's option forwardfor does) and
        Forwarded added when configured. (X-Forwarded-Proto is set before
        the rules run: see start_txn.)"""
        req = txn.req
        http1.forwarding_strip(req, keep_upgrade=req.upgrade is not None)
        if req.upgrade is not None:
            req.headers.append((b"Connection", b"upgrade"))
        elif req.version == b"HTTP/1.0":
            req.headers.append((b"Connection", b"keep-alive"))
        fe = self.fe.cfg
        if fe.option_forwardfor or be.cfg.option_forwardfor:
            req.headers.append((self.fe.xff_name, self.src_bytes))
        if fe.forwarded or be.cfg.forwarded:
            src = txn.src
            node = f'"[{src}]"' if ":" in src else src
            host = req.host.decode("latin-1") if req.host else None
            value = f"for={node};proto=http" + (f";host={host}" if host else "")
            req.headers.append((b"Forwarded", value.encode("latin-1")))

    def connect_server(self, from_queue: bool = False) -> None:
        """Pick a server (cookie, balance) and get a connection to it."""
        txn = self.txn
        be = txn.be
        pool = be.pool
        idx = txn.forced_server
        txn.forced_server = None
        balanced = idx is None and not from_queue
        if idx is None:
            avoid = txn.tried if be.cfg.redispatch else ()
            idx = pool.pick(txn.key, avoid)
            if idx is None and avoid:
                idx = pool.pick(txn.key, ())
        if idx is None:
            if pool.any_up():
                self.state = S_QUEUED
                txn.t_queue = self.loop.now
                be.enqueue(self)
                self.rearm()
                return
            self.send_error(503, "SC")
            return
        if txn.tried and idx not in txn.tried:
            txn.redispatched = True
        previous = txn.srv if txn.retries else None     # a retry: the server that failed
        srv = be.acquire(idx, balanced, previous)
        txn.srv = srv
        txn.released = False
        txn.t_connect = self.loop.now
        conn = None
        # http-reuse (HAProxy's): "safe" lets requests after the first take
        # an idle connection of the worker's pool, "always" every request;
        # "never" shares nothing between clients, but a client keeps its
        # own server connection for its next request (self.own).
        reuse = be.cfg.http_reuse
        if reuse == "always" or (reuse == "safe" and self.requests > 1):
            conn = self.ctx.conn_pool.take(srv)
        elif self.own is not None:
            conn = self.take_own(srv)
        if conn is not None:
            self.sc = conn
            self.loop.handlers[conn.fd] = self.on_server
            self.s_eof = False
            self.server_ready()
            return
        self.open_connection(srv)

    def take_own(self, srv) -> ServerConn | None:
        """This client's private idle connection (http-reuse never), if it
        goes to srv; one to another server is closed."""
        own = self.own
        self.own = None
        if own.srv is srv:
            own.reused = True
            return own
        own.close(self.loop)
        return None

    def keep_own(self, sc: ServerConn) -> None:
        """Park sc as this client's private idle connection: watched for the
        server closing it, like the pool's, but never given to another."""
        if self.own is not None:
            self.own.close(self.loop)
        self.own = sc
        self.loop.handlers[sc.fd] = self.on_own_idle
        self.loop.modify(sc.fd, EPOLLIN)

    def on_own_idle(self, events: int) -> None:
        """The private idle connection is readable: closed by the server (or
        it sent something unsolicited): unusable either way."""
        if self.own is not None:
            self.own.close(self.loop)
            self.own = None

    def server_ready(self) -> None:
        """A server connection is usable: queue the head; the body follows
        from the request parser at the end of this event."""
        txn = self.txn
        sc = self.sc
        counting.connect_attempt(txn.be, txn.srv, reused=sc.reused)
        self.state = S_SERVER
        txn.t_connected = self.last_s = self.loop.now
        req = txn.req
        sc.rp.expect(req.method, req.upgrade is not None)
        try:
            head = http1.head_bytes(req)
        except ValueError:          # a rule put a CR or LF in a field
            self.send_error(500, "IR")
            return
        self.wq_s.append(head)
        self.need_pump = not txn.req_done   # a body to forward from the parser

    def open_connection(self, srv) -> None:
        txn = self.txn
        try:
            sock = socket.socket(srv.family, socket.SOCK_STREAM)
        except OSError as e:
            if is_fd_exhaustion(e):
                self.ctx.out_of_fds()
            self.release_server()
            self.send_error(503, "RC")
            return
        sock.setblocking(False)
        err = sock.connect_ex(srv.sockaddr)
        conn = ServerConn(sock, srv, self.fe.cfg.max_header_size)
        self.sc = conn
        # A retry comes here after a connection that ended with an EOF: the
        # flag belongs to that connection, and left set it would keep the
        # new one from ever being read (the response would wait for the
        # server timeout).
        self.s_eof = False
        self.loop.add(conn.fd, EPOLLOUT, self.on_server)
        self.state = S_CONNECTING
        txn.t_connect = self.loop.now
        if err not in (0, errno.EINPROGRESS):
            self.connect_failed()
            return
        self.rearm()

    def dequeued(self) -> bool:
        """The backend freed a server slot; False if this session moved on."""
        if self.state != S_QUEUED:
            return False
        self.connect_server(from_queue=True)
        self.finish_io()
        return True


    def connect_failed(self, timeout: bool = False) -> None:
        """A connection attempt failed (refused, reset, or timed out): retry
        on another server or the same one (BackendRuntime.retry_wait), or 503."""
        txn = self.txn
        srv = txn.srv
        counting.connect_attempt(txn.be, srv)
        self.drop_server_conn()
        txn.tried += (srv.index,)
        self.release_server()
        be = txn.be
        if txn.retries >= be.cfg.retries:
            self.send_error(503, "sC" if timeout else "SC")
            return
        txn.retries += 1
        wait = be.retry_wait(srv.index, txn.retries, txn.cc == "V", timeout)
        if wait is not None:
            txn.forced_server = srv.index      # the same server again
        if not wait:
            self.connect_server()
            return
        # waited time, as HAProxy logs it: in Tw
        if txn.t_queue < 0:
            txn.t_queue = self.loop.now
        txn.t_retry = self.loop.now + wait
        self.state = S_TURNAROUND
        self.rearm()

    # ------------------------------------------------------------------ server

    def on_server(self, events: int) -> None:
        if self.state == S_CONNECTING:
            if not events & (EPOLLOUT | EPOLLERR | EPOLLHUP):
                # A stale event: the fd number belonged to a socket closed
                # earlier in this loop turn. SO_ERROR reads 0 while a connect
                # is still in progress, so taking it as "connected" would
                # send into a socket that is not.
                return
            err = self.sc.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.connect_failed()
                self.finish_io()
                return
            self.sc.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.loop.modify(self.sc.fd, EPOLLIN)
            self.server_ready()
            self.finish_io()
            return
        if events & EPOLLOUT and self.out_s:
            if not self.write_server():
                return
        if events & (EPOLLIN | EPOLLHUP | EPOLLERR) and self.server_readable():
            try:
                data = self.sc.sock.recv(RECV_SIZE)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""          # a reset: handled like an EOF, by phase
            if data is not None:
                self.last_s = self.loop.now
                if self.state == S_TUNNEL:
                    self.tunnel_in(data, from_client=False)
                elif data and self.take_whole_response(data):
                    pass
                else:
                    if not data:
                        self.s_eof = True
                    self.sc.rp.feed(data)
                    self.pump_response()
        self.finish_io()

    def take_whole_response(self, data: bytes) -> bool:
        """The common case straight through: when data (just received in
        S_SERVER) is the whole response (ResponseParser.whole_response),
        relay it and end the transaction. False, and nothing done,
        otherwise: the bytes go through the parser's events."""
        whole = self.sc.rp.whole_response(data)
        if whole is None:
            return False
        resp, body = whole
        self.response_head(resp)
        if body:
            self.wq_c.append(body)
            self.txn.bytes_out += len(body)
        self.end_txn()
        return True

    def server_readable(self) -> bool:
        if self.s_eof or self.sc is None:
            return False
        if self.state == S_TUNNEL or self.state == S_SERVER:
            return len(self.out_c) < HIGH_WATER
        return False

    def pump_response(self) -> None:
        txn = self.txn
        rp = self.sc.rp
        while self.state == S_SERVER:
            try:
                ev = rp.next_event()
            except HttpError as e:
                self.server_failed(e.reason, "SH" if not txn.resp_started else "SD", 502)
                return
            if ev is NEED_DATA:
                return
            t = type(ev)
            if t is Data:
                self.wq_c.append(ev.raw)
                txn.bytes_out += len(ev.raw)
            elif t is Response:
                self.response_head(ev)
            elif ev is END_OF_MESSAGE:
                self.end_txn()
                return
            elif ev is TUNNEL:
                self.start_tunnel()
                return
            elif ev is CLOSED:
                # EOF before any response: maybe an idle connection the server
                # had already closed; retry what is safe to retry.
                self.server_closed_early()
                return

    def response_head(self, resp: Response) -> None:
        txn = self.txn
        if resp.interim:
            head = http1.serialize_response_head(resp)
            self.wq_c.append(head)
            txn.bytes_out += len(head)
            return
        txn.resp = resp
        txn.t_resp = self.loop.now
        txn.status = resp.status
        be = txn.be
        http1.forwarding_strip(resp, keep_upgrade=resp.status == 101)
        if be.resp_rules is not no_rules:
            be.resp_rules(txn)
        if self.fe.resp_rules is not no_rules:
            self.fe.resp_rules(txn)
        if be.cookie is not None:
            be.cookie.on_response(txn)
        if resp.status == 101:
            resp.headers.append((b"Connection", b"upgrade"))
        elif txn.close or self.ctx.draining or not txn.req.keep_alive:
            txn.close = True
            resp.headers.append((b"Connection", b"close"))
        elif txn.req.version == b"HTTP/1.0":
            resp.headers.append((b"Connection", b"keep-alive"))
        if resp.body_mode == http1.BODY_CLOSE and not txn.close:
            # no framing: the body ends when the server closes, and so must
            # the client connection (the client cannot see the end otherwise)
            txn.close = True
            resp.headers.append((b"Connection", b"close"))
        head = http1.head_bytes(resp)
        self.wq_c.append(head)
        txn.bytes_out += len(head)
        txn.resp_started = True

    def end_txn(self) -> None:
        """The response is complete: log, park or close the server connection,
        then wait for the next request (or close)."""
        txn = self.txn
        sc = self.sc
        self.sc = None
        if sc is not None:
            # Bytes the server sent after the end of the response sit in the
            # parser, where the idle pool's EPOLLIN watch cannot see them:
            # such a connection would answer the next request with them.
            keep = (txn.resp is not None and txn.resp.keep_alive and not self.s_eof
                    and txn.req_done and not self.out_s and sc.rp.drained())
            if keep:
                if txn.be.cfg.http_reuse == "never":
                    self.keep_own(sc)
                else:
                    self.ctx.conn_pool.give(sc)
            else:
                sc.close(self.loop)
        if not txn.req_done:
            txn.close = True      # the request body was not read to its end
        self.finish_txn()

    def close_txn(self, txn: Txn) -> None:
        """The transaction is over: log it, then give back what it held (its
        server slot, which may wake a queued session, and its backend
        count). Logged first so that %bc and %sc count it, as HAProxy's do
        ("1/1/1/1/0" for a lone request)."""
        self.log_txn(txn)
        self.release_server()
        if txn.be is not None:
            counting.closed(txn.be)
        self.txn = None

    def finish_txn(self) -> None:
        txn = self.txn
        self.close_txn(txn)
        if txn.close or self.c_eof:
            self.state = S_CLOSING
            return
        self.state = S_REQ
        self.req_bytes = False
        self.req_start = self.loop.now
        if self.ctx.draining:
            self.to_keepalive = min(self.to_keepalive, DRAIN_IDLE_GRACE)
        # a pipelined request (or the client's EOF) may already be buffered
        self.need_pump = not self.rp.idle()

    def release_server(self) -> None:
        """Give the transaction's server slot back (once); wakes the queue."""
        txn = self.txn
        if txn is not None and txn.srv is not None and not txn.released:
            txn.released = True
            txn.be.release(txn.srv)

    # ------------------------------------------------------------ local replies

    def local_response(self, verdict) -> None:
        txn = self.txn
        if verdict.body is None:
            self.send_error(verdict.status, "PR")
            return
        has_body = txn.req.content_length or txn.req.chunked
        if has_body:
            txn.close = True   # the body is not read: the connection cannot go on
        headers = list(verdict.headers)
        if txn.close:
            headers.append((b"Connection", b"close"))
        elif txn.req.version == b"HTTP/1.0":
            # as for relayed responses: an HTTP/1.0 client closes unless told
            headers.append((b"Connection", b"keep-alive"))
        data = http1.make_response(verdict.status, headers=headers, body=verdict.body)
        self.reply_locally(verdict.status, data, "PR" if verdict.kind == "deny" else "--")

    def send_error(self, status: int, term: str) -> None:
        """Answer status with the proxy's (or the configured) error page."""
        txn = self.txn
        be = txn.be if txn is not None else None
        page = None
        if be is not None:
            page = be.errorfiles.get(status)
        if page is None:
            page = self.fe.errorfiles.get(status)
        if page is None:
            page = http1.error_response(status, close=True)
        if txn is not None:
            txn.close = True
            self.release_server()
            self.drop_server_conn()
        self.reply_locally(status, page, term)

    def reply_locally(self, status: int, data: bytes, term: str) -> None:
        txn = self.txn
        self.wq_c.append(data)
        if txn is None:
            return
        txn.status = status
        txn.term = term
        txn.local = True
        txn.bytes_out += len(data)
        txn.t_resp = self.loop.now
        if not txn.req_done:
            self.discarding = True
        self.finish_txn()

    def client_error(self, status: int, reason: str) -> None:
        """The request could not be parsed: answer, log, close. Nothing of
        it has reached a server."""
        if self.txn is None:
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
        self.txn.close = True
        if not self.txn.resp_started:
            self.send_error(status, who + "D")
        else:
            self.abort(who)

    def refuse_request(self, status: int, reason: str, term: str) -> None:
        """Answer a request that never became a transaction (unparsable, or
        not complete in time) with the error page, log it, then close."""
        page = self.fe.errorfiles.get(status) or http1.error_response(status)
        self.wq_c.append(page)
        self.state = S_CLOSING
        self.log_bad_request(status, reason, term, len(page))

    def log_bad_request(self, status: int, reason: str, term: str = "PR--", sent: int = 0) -> None:
        ctx = self.ctx
        counting.bad_request(self.fe, status, sent)
        if not ctx.access.enabled:
            return
        now = self.loop.now
        rec = dict(zip(HTTP_FIELDS, self.log_record(None, now)))
        rec.update(status=status, termination_state=term, bytes_read=sent,
                   request="<BADREQ>", tr=int((now - self.req_start) * 1000), ta=int((now - self.req_start) * 1000))
        ctx.access.write(json_http_line(rec) if ctx.log_format == "json" else httplog_line(rec))

    # -------------------------------------------------------------- failures

    def server_closed_early(self) -> None:
        txn = self.txn
        sc = self.sc
        retry = (sc is not None and sc.reused and not txn.resp_started
                 and txn.req.method in IDEMPOTENT and not (txn.req.content_length or txn.req.chunked))
        if retry:
            self.drop_server_conn()
            txn.retries += 1
            counting.retried(txn.be, txn.srv, txn.srv)
            # same server, but a fresh connection this time
            self.open_connection(txn.srv)
            return
        self.server_failed("server closed the connection", "SH", 502)

    def server_failed(self, reason: str, term: str, status: int) -> None:
        txn = self.txn
        if not txn.resp_started:
            self.send_error(status, term)
        else:
            txn.term = term
            txn.close = True
            self.drop_server_conn()
            self.release_server()
            self.finish_txn()

    def drop_server_conn(self) -> None:
        if self.sc is not None:
            self.sc.close(self.loop)
            self.sc = None
            # Bytes queued for that connection mean nothing to another one:
            # a retry re-sends the request head from the start, and stale
            # bytes in front of it would corrupt it.
            self.out_s = b""
            self.wq_s.clear()

    # ------------------------------------------------------------------ tunnel

    def start_tunnel(self) -> None:
        """101 Switching Protocols (or CONNECT 2xx): relay raw bytes both ways."""
        self.state = S_TUNNEL
        self.txn.req_done = True
        rest_c = self.rp.switch_to_tunnel() if not self.c_eof else b""
        rest_s = self.sc.rp.switch_to_tunnel()
        if rest_c:
            self.wq_s.append(rest_c)
        if rest_s:
            self.wq_c.append(rest_s)
            self.txn.bytes_out += len(rest_s)
        be_t = self.txn.be.cfg.timeouts
        self.to_tunnel = be_t.tunnel or self.fe.cfg.timeouts.tunnel

    def end_tunnel(self) -> None:
        """Both sides closed and everything was delivered: the transaction
        of the upgrade request ends only now. It still holds its server
        slot (released here, or maxconn and leastconn would count the
        tunnel forever) and is logged now, with the bytes of the tunnel."""
        if self.txn is not None:
            self.close_txn(self.txn)
        self.close_session()

    def tunnel_in(self, data: bytes, from_client: bool) -> None:
        if from_client:
            if data:
                self.wq_s.append(data)
            else:
                self.c_eof = True
                self.shut_s_after_flush = True
        else:
            if data:
                self.wq_c.append(data)
                self.txn.bytes_out += len(data)
            else:
                self.s_eof = True
                self.shut_c_after_flush = True

    # ---------------------------------------------------------------- writing

    def write_client(self) -> bool:
        """Send what is pending for the client; False if the session ended."""
        try:
            n = self.csock.send(self.out_c)
        except BlockingIOError:
            return True
        except OSError:
            self.abort("C")
            return False
        self.out_c = self.out_c[n:]
        self.last_c = self.loop.now
        return True

    def write_server(self) -> bool:
        """Send what is pending for the server; False if the session ended.
        A failed send does not end the session by itself: the request may
        be retried, or the client is owed an error page (which the caller
        must still flush, so it must not stop at a True-on-success test)."""
        try:
            n = self.sc.sock.send(self.out_s)
        except BlockingIOError:
            return True
        except OSError:
            # EPIPE/ECONNRESET on a reused connection before any answer is
            # the same race as an EOF there (the server closed it while it
            # sat idle): retried when that is safe, else a 502.
            self.server_closed_early()
            return self.state != S_CLOSED
        self.out_s = self.out_s[n:]
        self.last_s = self.loop.now
        return True

    def finish_io(self) -> None:
        """End of an event: send queued bytes (one send per side), update
        what each socket waits for, the timer, and close when done."""
        if self.state == S_CLOSED:
            return
        while self.need_pump:
            self.need_pump = False
            self.pump_request()
            if self.state == S_CLOSED:
                return
        if self.wq_s:
            data = b"".join(self.wq_s)
            self.wq_s.clear()
            if self.txn is not None:
                self.txn.bytes_in += len(data)
            if self.sc is None:
                pass  # the server side went away; nothing to send it
            elif self.out_s:
                self.out_s += data
            else:
                self.out_s = data
                if not self.write_server():
                    return
        if self.wq_c:
            data = b"".join(self.wq_c)
            self.wq_c.clear()
            if self.out_c:
                self.out_c += data
            else:
                self.out_c = data
                if not self.write_client():
                    return
        if self.state == S_TUNNEL:
            if self.shut_s_after_flush and not self.out_s and self.sc is not None:
                self.shut_s_after_flush = False
                try:
                    self.sc.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            if self.shut_c_after_flush and not self.out_c:
                self.shut_c_after_flush = False
                try:
                    self.csock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            if self.c_eof and self.s_eof and not self.out_c and not self.out_s:
                self.end_tunnel()
                return
        if self.state == S_CLOSING and not self.out_c:
            self.linger()
            return
        if self.state == S_LINGER:
            return
        self.update_masks()
        self.rearm()

    def update_masks(self) -> None:
        loop = self.loop
        cmask = (EPOLLIN if self.client_readable() else 0) | (EPOLLOUT if self.out_c else 0)
        cur = loop.masks.get(self.cfd)
        if cmask == 0 and not self.c_unwanted and cur == EPOLLIN:
            # Lazy pause: while its request is served, a client almost never
            # sends anything, so the fd stays in epoll (two epoll_ctl calls
            # saved per request). If it does send (pipelining, a close), the
            # event marks it unwanted and it leaves epoll until readable.
            pass
        elif cmask == cur:
            self.c_unwanted = False     # unchanged; the handler is on_client already
        else:
            self.c_unwanted = False
            loop.watch(self.cfd, cmask, self.on_client)
        sc = self.sc
        if sc is not None and self.state in (S_SERVER, S_TUNNEL):
            smask = (EPOLLIN if self.server_readable() else 0) | (EPOLLOUT if self.out_s else 0)
            # attached, sc.fd's handler is on_server already: an unchanged
            # mask (the usual case) needs nothing
            if loop.masks.get(sc.fd) != smask:
                loop.watch(sc.fd, smask, self.on_server)

    # ----------------------------------------------------------------- timers

    def rearm(self) -> None:
        st = self.state
        if st == S_REQ:
            if self.req_bytes or self.requests == 0:
                when = self.req_start + self.to_request
            else:
                when = self.req_start + self.to_keepalive
        elif st == S_QUEUED:
            when = self.txn.t_queue + (self.txn.be.cfg.timeouts.queue or INF)
        elif st == S_CONNECTING:
            when = self.txn.t_connect + (self.txn.be.cfg.timeouts.connect or INF)
        elif st == S_SERVER:
            when = self.last_s + (self.txn.be.cfg.timeouts.server or INF)
            if self.out_c or not self.txn.req_done:
                when = min(when, self.last_c + self.to_client)
        elif st == S_TURNAROUND:
            when = self.txn.t_retry
        elif st == S_TUNNEL:
            if self.to_tunnel:
                when = max(self.last_c, self.last_s) + self.to_tunnel
            else:
                when = min(self.last_c + self.to_client,
                           self.last_s + (self.txn.be.cfg.timeouts.server or INF))
        else:
            when = self.last_c + self.to_client
        if when != INF:
            # queued no later than the session's shortest timeout from now, so
            # that the request/response/keep-alive cycle does not push a heap
            # entry per request (see Loop.set_timer)
            self.loop.set_timer(self.timer, when, self.loop.now + self.to_floor)
        else:
            self.timer.cancel()

    def on_timeout(self) -> None:
        now = self.loop.now
        st = self.state
        txn = self.txn
        if st == S_REQ:
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
        elif st == S_QUEUED:
            if now < txn.t_queue + txn.be.cfg.timeouts.queue:
                return self.rearm()
            try:
                txn.be.queue.remove(self)
            except ValueError:
                pass
            self.send_error(503, "sQ")
        elif st == S_CONNECTING:
            if now < txn.t_connect + txn.be.cfg.timeouts.connect:
                return self.rearm()
            self.connect_failed(timeout=True)
        elif st == S_TURNAROUND:
            if now < txn.t_retry:
                return self.rearm()
            self.connect_server()
        elif st == S_SERVER:
            srv_to = txn.be.cfg.timeouts.server or INF
            if now >= self.last_s + srv_to:
                self.server_failed("timeout", "sH" if not txn.resp_started else "sD", 504)
            elif (self.out_c or not txn.req_done) and now >= self.last_c + self.to_client:
                self.abort("c")
                return
            else:
                return self.rearm()
        elif st == S_TUNNEL:
            # say which side was idle (cD / sD); with timeout tunnel both
            # were, and HAProxy blames the client
            if not self.to_tunnel and now < self.last_c + self.to_client:
                self.abort("s")
            else:
                self.abort("c")
            return
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
        if self.txn is not None:
            if not self.txn.resp_started:
                self.txn.close = True   # its response will say Connection: close
            # else: the head already promised keep-alive; honour it and let
            # the idle grace (finish_txn) close the connection afterwards
        elif self.state == S_REQ and not self.req_bytes:
            self.to_keepalive = min(self.to_keepalive, DRAIN_IDLE_GRACE)
            self.to_request = min(self.to_request, self.loop.now - self.req_start + DRAIN_IDLE_GRACE)
            self.rearm()

    def kill(self) -> None:
        """Hard stop / admin shutdown: end now, logged as K."""
        self.abort("K")

    def abort(self, who: str) -> None:
        """A side failed or timed out mid-transaction: log and close all."""
        txn = self.txn
        if txn is not None:
            phase = "D" if txn.resp_started else _PHASE.get(self.state, "D")
            txn.term = who + phase
            txn.close = True
            if self.state == S_QUEUED:
                try:
                    txn.be.queue.remove(self)
                except ValueError:
                    pass
            self.close_txn(txn)
        self.close_session()

    def close_quietly(self, term: str) -> None:
        if self.txn is None:
            if term == "CR":
                # The client closed in the middle of a request head: nothing
                # to answer, but it is a failed request and HAProxy logs it
                # (<BADREQ>, 400, CR--). A close between requests stays silent.
                self.log_bad_request(400, "client closed inside a request", "CR--")
            self.state = S_CLOSING
            if not self.out_c and not self.wq_c:
                self.close_session()

    def linger(self) -> None:
        """Close after the last response without a reset (workers/linger.py)."""
        self.state = S_LINGER
        self.drop_server_conn()
        if not linger.start(self.loop, self.csock, self.timer, self.c_eof, self.on_linger):
            self.close_session()

    def on_linger(self, events: int) -> None:
        if linger.drained(self.csock):
            self.close_session()

    def close_session(self) -> None:
        if self.state == S_CLOSED:
            return
        self.state = S_CLOSED
        self.timer.release()
        loop = self.loop
        loop.remove(self.cfd)
        self.csock.close()
        self.drop_server_conn()
        if self.own is not None:
            self.own.close(loop)
            self.own = None
        counting.closed(self.fe)
        self.ctx.session_ended(self)

    # -------------------------------------------------------------------- log

    def log_record(self, txn: Txn | None, now: float) -> tuple:
        """The access-log record of txn (or of a refused request when None),
        as a tuple in farm.logs.HTTP_FIELDS order: built once per request,
        formatted as httplog straight from the tuple, or named for JSON."""
        ctx = self.ctx
        fe = self.fe
        caddr = self.caddr
        if txn is None:
            return (caddr[0], caddr[1], self.accept_time + (self.req_start - self.t_accept),
                    fe.name, fe.name, "<NOSRV>", -1, -1, -1, -1, -1, 0, 0, "-", "-", "----",
                    ctx.actconn, fe.conns, 0, 0, 0, False, 0, 0, "")
        be = txn.be
        srv = txn.srv
        t_start = txn.t_start
        t_queue = txn.t_queue
        t_connect = txn.t_connect
        t_connected = txn.t_connected
        t_resp = txn.t_resp
        tw = int(((t_connect if t_connect >= 0 else now) - t_queue) * 1000) if t_queue >= 0 else 0
        tc = int((t_connected - t_connect) * 1000) if t_connected >= 0 else -1
        tr_srv = int((t_resp - t_connected) * 1000) if (t_resp >= 0 and t_connected >= 0) else -1
        if txn.local:
            # Answered by farm: no server response (Tr -1). A phase the
            # request did reach keeps its time, as in HAProxy: the queue
            # time of a 503 sQ, the connect time of a 504 (Tc is already -1
            # when no connection was established); a rule's answer or a
            # 503 without any server has no Tw either.
            tr_srv = -1
            if t_queue < 0 and t_connect < 0:
                tw = -1
        return (caddr[0], caddr[1], self.accept_time + (t_start - self.t_accept),
                fe.name, be.name if be is not None else fe.name,
                srv.name if srv is not None else "<NOSRV>",
                int((txn.t_head - t_start) * 1000), tw, tc, tr_srv, int((now - t_start) * 1000),
                txn.status, txn.bytes_out, "-", "-", txn.term + txn.cc + txn.cs,
                ctx.actconn, fe.conns, be.conns if be is not None else 0,
                srv.conns if srv is not None else 0, txn.retries, txn.redispatched,
                0, len(be.queue) if be is not None else 0, b" ".join(txn.request_line).decode("latin-1"))

    def log_txn(self, txn: Txn) -> None:
        """The transaction is over: count it, and log it."""
        ctx = self.ctx
        counting.http_txn(txn, self.fe, self.loop.now)
        if not ctx.access.enabled:
            return
        rec = self.log_record(txn, self.loop.now)
        ctx.access.write(json_http_values(rec) if ctx.log_format == "json" else httplog_values(rec))


XFP_HTTP = (b"X-Forwarded-Proto", b"http")


def set_forwarded_proto(req: Request) -> None:
    """X-Forwarded-Proto: http, replacing whatever the client sent (a
    constant field: no validation, and no list rebuild in the usual case)."""
    if req.get(b"x-forwarded-proto") is not None:
        req.remove(b"x-forwarded-proto")
    req.headers.append(XFP_HTTP)
