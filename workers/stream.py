"""A stream: one HTTP transaction, whatever the protocol on either side.

The client connection (workers/h1conn.py; HTTP/2 later) parses a request
head and creates a Stream for it. The stream then does the transaction's
work: X-Forwarded-*, the request rules, the choice of backend, the balance
pick (or a cookie's server), the queue when every server is full, the
connection to the server (a fresh one or one from the pool, through
workers/server.py), retries, the response rules, counting and the log
line. It never touches a client socket and never frames a message for the
client: it calls its connection for that, through these methods:

  conn.response_head(stream, resp)   a response head (interim or final)
  conn.response_data(stream, data)   response body bytes (as received)
  conn.local_reply(stream, data)     a whole response made by the proxy
  conn.stream_ended(stream)          the transaction is over (logged)
  conn.client_room(stream)           False while the client's queue is full
  conn.stream_io(stream)             end of an event of the stream's: flush, masks, timers
  conn.tunnel_data(stream, data)     tunnel bytes for the client (b"": EOF)

and it reads conn.fe, conn.ctx, conn.loop, conn.src, conn.src_port,
conn.src_bytes, conn.dst_port(), conn.last_c, conn.requests,
conn.accept_time, conn.t_accept. The request body reaches the stream
through request_data() and request_end().

Termination states follow HAProxy's codes (first letter: who/what ended the
transaction, second: in which phase):
  C/S client/server abort, c/s client/server timeout, P proxy (deny, bad
  request), R resource, I internal, D server down, K killed, - normal;
  R request, Q queue, C connect, H response headers, D data, L last data,
  T tunnel... and - normal.
"""

from __future__ import annotations

from farm import challenges
from farm.logs import httplog_text, json_http_values
from workers import counting, h2server, http1, ppsend, tables
from workers.http1 import Request, Response, forwarding_strip
from workers.lazyhead import has_field, is_lazy
from workers.rules import apply_rules, choose_with, no_rules
from workers.server import ServerConn, connect_error_is_fatal
from workers.serverside import ServerSide
from workers.states import (M_HTTP, REUSE_ALWAYS, REUSE_NEVER, REUSE_SAFE, ST_CONNECTING, ST_DONE,
                            ST_QUEUED, ST_RULES, ST_SERVER, ST_TARPIT, ST_TUNNEL, ST_TURNAROUND)
from workers.loop import EPOLLIN, EPOLLOUT

try:
    import cython               # the compiled build: cython.compiled is True
except ImportError:             # pure Python without Cython installed
    from farm import nocython as cython

if not cython.compiled:
    # compiled, these are C functions cimported in stream.pxd
    from workers.counting import connect_attempt, http_txn

INF = float("inf")
IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"))

# the phase letter of a termination state, by stream state (workers/states.py)
_PHASE = {ST_RULES: "R", ST_QUEUED: "Q", ST_CONNECTING: "C", ST_SERVER: "H", ST_TUNNEL: "D",
          ST_DONE: "L", ST_TURNAROUND: "C", ST_TARPIT: "T"}

XFP_HTTP = (b"X-Forwarded-Proto", b"http")
XFP_HTTPS = (b"X-Forwarded-Proto", b"https")


class Stream(ServerSide):
    """One request/response exchange: what rules read, what gets logged,
    and the work in between (see the module docstring)."""

    __slots__ = ("conn", "fe", "req", "resp", "src", "src_port", "_rules_src", "be",
                 "srv", "sc", "state", "t_start", "t_head", "t_queue", "t_connect",
                 "t_connected", "t_resp", "t_retry", "status", "bytes_out",
                 "bytes_in", "retries", "redispatched", "term", "cc", "cs", "request_line",
                 "close", "tried", "key", "forced_server", "resp_started", "req_done",
                 "local", "released", "to_tunnel", "stk",
                 "unlogged", "peer")

    def __init__(self, conn, req: Request, t_start: float, req_done: bool):
        # conn and req are read through the typed attributes (stream.pxd):
        # the arguments of a def method are untyped objects when compiled
        self.conn = conn
        self.req = req
        self.loop = self.conn.loop
        self.fe = self.conn.fe
        self.resp = None
        self.src = self.conn.src
        self.src_port = self.conn.src_port
        self.be = None
        self.srv = None
        self.sc: ServerConn | None = None
        self.state = ST_RULES
        self.t_start = t_start
        self.t_head = self.loop.now
        self.t_queue = -1.0
        self.t_connect = -1.0
        self.t_connected = -1.0
        self.t_resp = -1.0
        self.last_s = 0.0
        self.status = 0
        self.bytes_out = 0
        self.bytes_in = 0           # request bytes sent to the server
        self.retries = 0
        self.redispatched = False
        self.term = "--"
        self.cc = "-"
        self.cs = "-"
        # as received (rules may rewrite it); joined only when logged
        self.request_line = (self.req.method, self.req._target, self.req.version)
        self.close = not self.req.keep_alive
        self.tried: tuple[int, ...] = ()   # servers that failed (rare: no set per request)
        self.key = None
        self.forced_server = None
        self.resp_started = False
        self.req_done = req_done
        self.local = False
        self.released = True        # no server slot held yet
        self.to_tunnel = 0.0
        self.stk = None             # stick counters (workers/tables.py Trackers)
        self.unlogged = False       # counted but kept out of the access log (monitor_uri)
        self.peer = None            # the client connection's own state of the stream (HTTP/2's)

    @property
    def dst_port(self) -> int:
        return self.conn.dst_port()

    @property
    def dst(self) -> str | None:
        return self.conn.dst()

    # ------------------------------------------------------------- the request

    def start(self) -> None:
        """The request head arrived: rules, backend, server."""
        fe = self.fe
        req = self.req
        if fe.monitor_uri is not None and req._target == fe.monitor_uri:
            self.monitor_reply()
            return
        if self.conn.ctx.acme_http and self.acme_challenge():
            return
        if fe.forwardfor:
            # Replace what the client claims (it could lie), before the rules,
            # so that a set-header X-Forwarded-Proto of the user's wins.
            set_forwarded_proto(req, self.conn.t.secure)
        conn_stk = self.conn.ctx.conn_stk
        if conn_stk:
            held = conn_stk.get(self.conn)
            if held is not None:       # the connection tracks counters: count the request
                tables.stream_started(self, held)
        # (`is not no_rules`: an empty rule list is not even called)
        if fe.req_rules is not no_rules:
            verdict = apply_rules(fe.req_rules, self)
            if verdict is not None:
                self.local_response(verdict)
                return
        name = fe.fixed_backend
        if name is None:
            name = choose_with(fe.choose_backend, self)
        be = self.conn.ctx.backends.get(name) if name else None
        if be is None:
            self.send_error(503, "SC")   # no backend for this request
            return
        self.be = be
        be.g.take()
        if be.forwardfor and not fe.forwardfor:
            set_forwarded_proto(req, self.conn.t.secure)   # as above, before the backend's rules
        if be.req_rules is not no_rules:
            verdict = apply_rules(be.req_rules, self)
            if verdict is not None:
                self.local_response(verdict)
                return
        self.prepare_request(be)
        if be.cookie is not None:
            be.cookie.on_request(self)
        self.key = be.key_of(self) if be.key_of is not None else None
        if be.stick is not None:        # stick rules (workers/tables.py Persistence)
            be.stick.on_request(self)
        self.connect_server()

    def acme_challenge(self) -> bool:
        """Answer an ACME server's HTTP-01 request for a token the master's
        ACME client is proving (farm/challenges.py), before any rule and
        never from a server (a GET, as RFC 8555 section 8.3 validates).
        False (the request goes on) for other methods and paths and for
        tokens that are not ours."""
        if self.req.method != b"GET":
            return False
        body = challenges.answer(self.req.path)
        if body is None:
            return False
        self.close = self.close or bool(self.req.content_length or self.req.chunked)
        headers = [(b"Content-Type", b"application/octet-stream")]
        if self.close:
            headers.append((b"Connection", b"close"))
        self.reply_locally(200, http1.make_response(200, headers=headers, body=body), "--")
        return True

    def prepare_request(self, be) -> None:
        """Headers as the server must see them: hop-by-hop fields removed,
        X-Forwarded-For (appended, as HAProxy's option forwardfor does) and
        Forwarded added when configured. (X-Forwarded-Proto is set before
        the rules run: see start.)"""
        req = self.req
        forwarding_strip(req, keep_upgrade=req.upgrade is not None)
        if req.upgrade is not None:
            req.append_field(b"Connection", b"upgrade")
        elif req.version == b"HTTP/1.0":
            req.append_field(b"Connection", b"keep-alive")
        fe = self.fe
        if fe.forwardfor or be.forwardfor:
            req.append_field(fe.xff_name, self.conn.src_bytes)
        if fe.forwarded or be.forwarded:
            src = self.src
            node = f'"[{src}]"' if ":" in src else src
            host = req.host.decode("latin-1") if req.host else None
            proto = "https" if self.conn.t.secure else "http"
            value = f"for={node};proto={proto}" + (f";host={host}" if host else "")
            req.append_field(b"Forwarded", value.encode("latin-1"))

    def request_data(self, data: bytes) -> None:
        """Request body bytes from the client (as received on the wire)."""
        if self.sc is not None:
            self.sc.wq.append(data)

    def request_end(self) -> None:
        self.req_done = True

    def wants_request_body(self) -> bool:
        """Whether the connection should hand over request body bytes now
        (only once a server connection takes them)."""
        return self.state == ST_SERVER and not self.req_done

    def server_room(self) -> bool:
        """Backpressure: False while the server's queue is full."""
        sc = self.sc
        return sc is None or len(sc.out) < HIGH_WATER

    # ------------------------------------------------------------ the server

    def connect_server(self) -> None:
        """Pick a server (cookie, balance) and get a connection to it; or
        wait in the backend's queue while every usable server is full (and
        behind the requests already waiting); or 503 when none is usable."""
        be = self.be
        if be.must_wait():
            self.wait_in_queue()
            return
        srv = self.take_server()
        if srv is None:
            if be.pool.any_up():
                self.wait_in_queue()
            else:
                self.send_error(503, "SC")
            return
        self.use_server(srv)

    def take_server(self, from_queue: bool = False):
        """The server for this request with one of its slots taken, or None
        (BackendRuntime.take_server); a retry names the server that failed
        (counting.server_taken)."""
        previous = self.srv if self.retries else None
        srv = self.be.take_server(self.key, self.tried, self.forced_server, from_queue, previous)
        if srv is not None:
            self.forced_server = None
        return srv

    def wait_in_queue(self) -> None:
        self.state = ST_QUEUED
        self.t_queue = self.loop.now
        self.be.enqueue(self)   # may serve it at once (dequeued)

    def dequeued(self) -> bool:
        """The backend has a slot for the oldest waiter: take it. False if
        there was none after all (it keeps waiting); True once served."""
        if self.state != ST_QUEUED:
            return True
        srv = self.take_server(from_queue=True)
        if srv is None:
            return False
        self.use_server(srv)
        self.finish_io()
        return True

    def use_server(self, srv) -> None:
        """A slot of srv is ours: a pooled connection or a new one."""
        if self.tried and srv.index not in self.tried:
            self.redispatched = True
        self.srv = srv
        self.released = False
        self.t_connect = self.loop.now
        conn = self.conn
        sc = None
        # http-reuse (HAProxy's): "safe" lets requests after the first take
        # an idle connection of the worker's pool, "always" every request;
        # "never" shares nothing between clients, but a client keeps its
        # own server connection for its next request (conn.own).
        reuse = self.be.reuse
        key = srv
        tls = srv.tls
        if tls is not None and tls.fetch is not None:
            # SNI from the request: a connection serves its own name only
            key = (srv, tls.name_of(self))
        if srv.h2:
            self.use_h2_server(srv, key)
            return
        private = srv.cfg.send_proxy is not None   # PROXY header: the client's own (ppsend)
        if not private and (reuse == REUSE_ALWAYS or (reuse == REUSE_SAFE and conn.requests > 1)):
            sc = conn.ctx.conn_pool.take(key)
        elif conn.own is not None:
            sc = conn.take_own(key)
        if sc is not None:
            self.sc = sc
            sc.attach(self, self.loop, EPOLLIN)
            self.server_ready()
            return
        self.open_connection(srv, key)

    def open_connection(self, srv, key=None) -> None:
        """A new connection to srv (pooled under key later: see use_server)."""
        if srv.h2:
            self.use_h2_server(srv, srv if key is None else key)
            return
        sni = None
        tls = srv.tls
        if tls is not None:
            sni = key[1] if key.__class__ is tuple else tls.fixed_name
        sc, err = ServerConn.connect(srv, self.fe.max_head, self.conn.ctx, key, sni)
        if sc is None:
            self.release_server()
            self.send_error(503, "RC")
            return
        self.sc = sc
        if srv.cfg.send_proxy is not None:
            conn = self.conn
            t = conn.t
            sc.proxy_header = ppsend.client_header(srv.cfg, self.src, self.src_port, t.sock,
                                                   t.proxy, t if t.secure else None)
        sc.attach(self, self.loop, EPOLLOUT)
        self.state = ST_CONNECTING
        self.t_connect = self.loop.now
        if connect_error_is_fatal(err):
            self.server_connect_failed()

    def use_h2_server(self, srv, key) -> None:
        """srv speaks HTTP/2 (proto h2): this request becomes a stream of a
        shared connection (workers/h2server.py), sent now or once the
        connection is up."""
        sc = h2server.attach(self, srv, key)
        if sc is None:
            self.release_server()
            self.send_error(503, "RC")
            return
        self.sc = sc
        if sc.mode == M_HTTP:
            self.server_ready()
        else:
            self.state = ST_CONNECTING
            self.t_connect = self.loop.now

    def server_ready(self) -> None:
        """A server connection is usable: queue the head; the body follows
        from the client connection (wants_request_body)."""
        sc = self.sc
        connect_attempt(self.be, self.srv, sc.reused)
        self.state = ST_SERVER
        self.t_connected = self.last_s = self.loop.now
        try:
            sc.begin(self.req)
        except ValueError:          # a rule put a CR or LF in a field
            self.send_error(500, "IR")
            return
        if not self.req_done:
            self.conn.body_wanted(self)   # a body to forward from the client

    def server_connected(self) -> None:
        self.server_ready()

    def server_connect_failed(self, timeout: bool = False) -> None:
        """A connection attempt failed (refused, reset, or timed out): retry
        on another server or the same one (BackendRuntime.retry_wait), or 503."""
        srv = self.srv
        be = self.be
        connect_attempt(be, srv, False)
        self.drop_server_conn()
        self.tried += (srv.index,)
        self.release_server()
        if self.retries >= be.retries:
            self.send_error(503, "sC" if timeout else "SC")
            return
        self.retries += 1
        # persistent (a cookie's or a stick match's server): redispatched
        # only as HAProxy does for its SF_DIRECT streams
        stk = self.stk
        persistent = self.cc == "V" or (stk is not None and stk.stuck)
        wait = be.retry_wait(srv.index, self.retries, persistent, timeout)
        if wait is not None:
            self.forced_server = srv.index      # the same server again
        if not wait:
            self.connect_server()
            return
        # waited time, as HAProxy logs it: in Tw
        if self.t_queue < 0:
            self.t_queue = self.loop.now
        self.t_retry = self.loop.now + wait
        self.state = ST_TURNAROUND

    def awaiting_response(self) -> bool:
        return self.state == ST_SERVER

    def server_readable(self) -> bool:
        """Whether to read the server now (phase, and the client's room)."""
        sc = self.sc
        if sc is None or sc.eof:
            return False
        if self.state == ST_SERVER or self.state == ST_TUNNEL:
            return self.conn.client_room(self)
        return False

    # ----------------------------------------------------------- the response

    def server_whole(self, resp: Response, body: bytes) -> None:
        self.server_head(resp)
        if body:
            self.bytes_out += len(body)
            self.conn.response_data(self, body)
        self.server_end()

    def server_data(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self.conn.response_data(self, data)

    def server_head(self, resp: Response) -> None:
        if resp.interim:
            self.conn.response_head(self, resp)
            return
        self.resp = resp
        self.t_resp = self.loop.now
        self.status = resp.status
        be = self.be
        forwarding_strip(resp, keep_upgrade=resp.status == 101)
        stk = self.stk
        if stk is not None and stk.persist is not None:
            stk.persist.on_response(self)   # stick store-request/-response (workers/tables.py)
        if be.resp_rules is not no_rules:
            be.resp_rules(self)
        fe = self.fe
        if fe.resp_rules is not no_rules:
            fe.resp_rules(self)
        if be.cookie is not None:
            be.cookie.on_response(self)
        self.resp_started = True
        self.conn.response_head(self, resp)

    def server_end(self) -> None:
        """The response is complete: log, park or close the server connection,
        then the client connection goes on (or closes)."""
        sc = self.sc
        self.sc = None
        if sc is not None:
            if (self.resp is not None and self.resp.keep_alive and self.req_done
                    and sc.reusable()):
                if self.be.reuse == REUSE_NEVER or sc.proxy_header:
                    self.conn.keep_own(sc)
                else:
                    self.conn.ctx.conn_pool.give(sc)
            else:
                sc.close(self.loop)
        if not self.req_done:
            self.close = True      # the request body was not read to its end
        self.end()

    def server_error(self, reason: str) -> None:
        """The server's response could not be parsed."""
        self.server_failed(reason, "SH" if not self.resp_started else "SD", 502)

    def server_closed_early(self) -> None:
        """EOF or reset before any response: a reused connection the server
        had closed while idle is retried on a fresh one when that is safe."""
        sc = self.sc
        req = self.req
        retry = (sc is not None and sc.reused and not self.resp_started
                 and req.method in IDEMPOTENT and not (req.content_length or req.chunked))
        if retry:
            self.drop_server_conn()
            self.retries += 1
            counting.retried(self.be, self.srv, self.srv)
            # same server, but a fresh connection this time
            self.open_connection(self.srv, sc.pool_key)
            return
        self.server_failed("server closed the connection", "SH", 502)

    def server_failed(self, reason: str, term: str, status: int) -> None:
        if not self.resp_started:
            self.send_error(status, term)
        else:
            self.term = term
            self.close = True
            self.drop_server_conn()
            self.release_server()
            self.end()

    # ------------------------------------------------------------------ tunnel

    def server_tunnel(self) -> None:
        """101 Switching Protocols (or CONNECT 2xx): relay raw bytes both ways."""
        self.state = ST_TUNNEL
        self.req_done = True
        rest = self.sc.switch_to_tunnel()
        self.conn.start_tunnel(self)
        if rest:
            self.bytes_out += len(rest)
            self.conn.tunnel_data(self, rest)
        self.to_tunnel = self.be.to_tunnel or self.fe.to_tunnel

    def server_tunnel_data(self, data: bytes) -> None:
        if data:
            self.bytes_out += len(data)
        self.conn.tunnel_data(self, data)

    def client_tunnel_data(self, data: bytes) -> None:
        """Tunnel bytes from the client (b"" at its EOF)."""
        if self.sc is not None:
            self.sc.tunnel_send(data)

    def tunnel_over(self) -> bool:
        """Both sides closed and everything was delivered to the server."""
        sc = self.sc
        return sc is None or (sc.eof and not sc.out and not sc.wq)

    # ----------------------------------------------------------------- timers

    def deadline(self) -> float:
        """When this stream's own timeout (queue, connect, turn-around,
        server, tunnel) expires; INF if none. The client connection adds
        its own (client inactivity)."""
        st = self.state
        if st == ST_SERVER:
            return self.last_s + self.be.to_server
        if st == ST_QUEUED:
            return self.t_queue + self.be.to_queue
        if st == ST_CONNECTING:
            return self.t_connect + self.be.to_connect
        if st == ST_TURNAROUND:
            return self.t_retry
        if st == ST_TARPIT:
            return self.t_retry
        if st == ST_TUNNEL:
            if self.to_tunnel:
                return max(self.conn.last_c, self.last_s) + self.to_tunnel
            return self.last_s + self.be.to_server
        return INF

    def on_timeout(self, now: float) -> None:
        """The stream's deadline() has passed: act on the phase."""
        st = self.state
        if st == ST_QUEUED:
            self.be.leave_queue(self)
            self.send_error(503, "sQ")
        elif st == ST_CONNECTING:
            self.server_connect_failed(timeout=True)
        elif st == ST_TURNAROUND:
            self.connect_server()
        elif st == ST_SERVER:
            self.server_failed("timeout", "sH" if not self.resp_started else "sD", 504)
        elif st == ST_TARPIT:
            self.send_error(self.status, "PT")

    # ------------------------------------------------------------ local replies

    def local_response(self, verdict) -> None:
        """A rule answered the request itself (deny with a body, redirect,
        return; reject closes without an answer; tarpit answers later)."""
        kind = verdict.kind
        if kind == "reject":
            self.close = True
            self.reply_locally(0, b"", "PR")
            return
        if kind == "tarpit":
            self.close = True
            self.status = verdict.status
            self.state = ST_TARPIT
            self.t_retry = self.loop.now + verdict.delay
            return
        if verdict.body is None:
            self.send_error(verdict.status, "PR")
            return
        req = self.req
        if req.content_length or req.chunked:
            self.close = True   # the body is not read: the connection cannot go on
        headers = list(verdict.headers)
        if self.close:
            headers.append((b"Connection", b"close"))
        elif req.version == b"HTTP/1.0":
            # as for relayed responses: an HTTP/1.0 client closes unless told
            headers.append((b"Connection", b"keep-alive"))
        data = http1.make_response(verdict.status, headers=headers, body=verdict.body)
        self.reply_locally(verdict.status, data, "PR" if verdict.kind == "deny" else "--")

    def monitor_reply(self) -> None:
        """The frontend's monitor_uri (HAProxy's monitor-uri), for a load
        balancer or keepalived in front: 200 while farm serves, 503 while
        farm stops (this worker drains and no newer generation took over:
        a connection the old generation accepted just before a reload is
        still answered 200) or while the frontend's monitor_fail condition
        holds. No rule, no server, no access-log line."""
        fe = self.fe
        req = self.req
        ctx = self.conn.ctx
        failing = ((ctx.draining and not ctx.superseded())
                   or (fe.monitor_fail is not None and fe.monitor_fail(self)))
        status = 503 if failing else 200
        if failing or req.content_length or req.chunked or req.version == b"HTTP/1.0":
            self.close = True   # a body is not read; HTTP/1.0 gets no keep-alive here
        self.unlogged = True
        self.reply_locally(status, http1.error_response(status, self.close), "--")

    def send_error(self, status: int, term: str) -> None:
        """Answer status with the proxy's (or the configured) error page."""
        be = self.be
        page = None
        if be is not None:
            page = be.errorfiles.get(status)
        if page is None:
            page = self.fe.errorfiles.get(status)
        if page is None:
            page = http1.error_response(status, close=True)
        self.close = True
        self.release_server()
        self.drop_server_conn()
        self.reply_locally(status, page, term)

    def reply_locally(self, status: int, data: bytes, term: str) -> None:
        self.status = status
        self.term = term
        self.local = True
        self.bytes_out += len(data)
        self.t_resp = self.loop.now
        self.conn.local_reply(self, data)
        self.end()

    # ---------------------------------------------------------------- endings

    def abort(self, who: str) -> None:
        """The client side failed or timed out (or the stream is killed):
        log and give everything back. The connection closes itself."""
        if self.state == ST_DONE:
            return
        phase = "D" if self.resp_started else _PHASE.get(self.state, "D")
        self.term = who + phase
        self.close = True
        if self.state == ST_QUEUED:
            self.be.leave_queue(self)
        self.finish()
        self.drop_server_conn()

    def end(self) -> None:
        """The transaction is over (response relayed, or answered locally)."""
        self.finish()
        self.conn.stream_ended(self)

    def end_tunnel(self) -> None:
        """Both sides of a tunnel closed and everything was delivered: the
        transaction of the upgrade request ends only now. It still holds
        its server slot (released here, or maxconn and leastconn would
        count the tunnel forever) and is logged now, with the bytes of the
        tunnel."""
        self.finish()
        self.drop_server_conn()

    def finish(self) -> None:
        """Log the transaction, then give back what it held (its server
        slot, which may wake a queued stream, and its backend count); once.
        Logged first so that %bc and %sc count it, as HAProxy's do
        ("1/1/1/1/0" for a lone request)."""
        if self.state == ST_DONE:
            return
        self.state = ST_DONE
        self.log()
        if self.stk is not None:
            tables.stream_finished(self)
        self.release_server()
        if self.be is not None:
            self.be.g.give()

    def release_server(self) -> None:
        """Give the transaction's server slot back (once); wakes the queue."""
        if self.srv is not None and not self.released:
            self.released = True
            self.be.release(self.srv)

    def drop_server_conn(self) -> None:
        sc = self.sc
        if sc is not None:
            self.sc = None
            # Bytes queued for that connection mean nothing to another one:
            # a retry re-sends the request head from the start.
            sc.discard_output()
            sc.close(self.loop)

    def finish_io(self) -> None:
        self.conn.stream_io(self)

    # -------------------------------------------------------------------- log

    def log(self) -> None:
        """Count the transaction, and log it."""
        conn = self.conn
        ctx = conn.ctx
        now = self.loop.now
        http_txn(self.fe, self.be, self.srv, self.status, self.term, self.local, self.bytes_in,
                 self.bytes_out, self.t_start, self.t_queue, self.t_connect, self.t_connected,
                 self.t_resp, now)
        if self.unlogged:
            return
        access = ctx.access
        if not access.enabled:
            return
        if ctx.log_format == "json":
            access.write(json_http_values(self.log_record(now)))
        else:
            access.write(self.httplog_line(now))

    def httplog_line(self, now: float) -> str:
        """The httplog line of log_record's record, made from the values
        themselves (farm.logs.httplog_text: no record tuple, and C numbers
        in the compiled build)."""
        conn = self.conn
        be = self.be
        srv = self.srv
        fe = self.fe
        t_start = self.t_start
        return httplog_text(
            self.src, self.src_port, conn.accept_time + (t_start - conn.t_accept),
            fe.name + "~" if conn.t.secure else fe.name,   # HAProxy's %ft: "~" on TLS
            be.name if be is not None else fe.name,
            srv.name if srv is not None else "<NOSRV>",
            int((self.t_head - t_start) * 1000), self._log_tw(now), self._log_tc(),
            self._log_tr(), int((now - t_start) * 1000),
            self.status, self.bytes_out, "-", "-", self.term, self.cc, self.cs,
            conn.ctx.g.value(), fe.g.value(), be.g.value() if be is not None else 0,
            srv.g.value() if srv is not None else 0, self.retries, self.redispatched,
            0, be.queued() if be is not None else 0,
            self.request_line)

    def _log_tw(self, now: float) -> int:
        """%Tw: the time in the queue (ms); 0 without one, -1 when farm
        answered before any queue or connection (a rule's answer, a 503
        without a server), as in HAProxy."""
        t_queue = self.t_queue
        if t_queue < 0:
            return -1 if self.local and self.t_connect < 0 else 0
        t_connect = self.t_connect
        return int(((t_connect if t_connect >= 0 else now) - t_queue) * 1000)

    def _log_tc(self) -> int:
        """%Tc: the time to connect (ms), -1 without a connection made."""
        if self.t_connected < 0:
            return -1
        return int((self.t_connected - self.t_connect) * 1000)

    def _log_tr(self) -> int:
        """%Tr: the server's time to the response head (ms); -1 without a
        server response (farm answered: a phase the request did reach
        keeps its time in %Tw and %Tc, as in HAProxy)."""
        if self.local or self.t_resp < 0 or self.t_connected < 0:
            return -1
        return int((self.t_resp - self.t_connected) * 1000)

    def log_record(self, now: float) -> tuple:
        """The access-log record as a tuple in farm.logs.HTTP_FIELDS order
        (the JSON line names it; httplog_line formats the same values)."""
        conn = self.conn
        be = self.be
        srv = self.srv
        fe = self.fe
        t_start = self.t_start
        return (self.src, self.src_port, conn.accept_time + (t_start - conn.t_accept),
                fe.name + "~" if conn.t.secure else fe.name,   # HAProxy's %ft: "~" on TLS
                be.name if be is not None else fe.name,
                srv.name if srv is not None else "<NOSRV>",
                int((self.t_head - t_start) * 1000), self._log_tw(now), self._log_tc(),
                self._log_tr(), int((now - t_start) * 1000),
                self.status, self.bytes_out, "-", "-", self.term + self.cc + self.cs,
                conn.ctx.actconn, fe.g.value(), be.conns if be is not None else 0,
                srv.conns if srv is not None else 0, self.retries, self.redispatched,
                0, be.queued() if be is not None else 0,
                b" ".join(self.request_line).decode("latin-1"))


HIGH_WATER = 262144          # queued bytes for a peer before its source pauses


def set_forwarded_proto(req: Request, secure: bool = False) -> None:
    """X-Forwarded-Proto: http (https on a TLS connection), replacing
    whatever the client sent (a constant field: no validation, and no list
    rebuild in the usual case). A head still unsplit (workers/lazyhead.py)
    without the field gets it appended, and stays unsplit."""
    xfp = XFP_HTTPS if secure else XFP_HTTP
    if is_lazy(req) and not has_field(req, b"x-forwarded-proto"):
        req.append_field(xfp[0], xfp[1])
        return
    if req.get(b"x-forwarded-proto") is not None:
        req.remove(b"x-forwarded-proto")
    req.headers.append(xfp)
