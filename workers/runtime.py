"""Per-worker runtime state built from the config: frontends, backends,
servers, the shared I/O buffer and the splice pipe pool.

Everything here belongs to one worker process and is touched only by its
loop. Limits that HAProxy applies per process (maxconn of a frontend or a
server) are divided among the workers, since each worker is a process that
cannot see the others' connections without locks: a server with maxconn 100
and 4 workers gets at most 25 connections from each.
"""

from __future__ import annotations

import array
import dataclasses
import fcntl
import math
import os
import socket
import time
from collections import deque
from urllib.parse import unquote_to_bytes

from farm import model, shm
from farm.logs import AccessLog
from farm.shm import C_QMAX
from workers import counting, rules
from workers.cookie import CookiePersistence
from workers.lb import retry
from workers.lb.pool import ServerPool
from workers.loop import Loop

BUFFER_SIZE = 65536
PIPE_SIZE = 262144          # bytes a splice pipe holds (fcntl F_SETPIPE_SZ)
MAX_IDLE_PIPES = 64         # pipes kept for reuse; more are closed


def per_worker(limit: int, workers: int) -> int:
    """A per-process limit split across workers (0 = unlimited stays 0)."""
    if limit <= 0:
        return 0
    return max(1, -(-limit // workers))


class PipePool:
    """Reusable pipe pairs for os.splice. Only empty pipes come back."""

    def __init__(self) -> None:
        self.idle: list[tuple[int, int]] = []
        self.used = 0

    def get(self) -> tuple[int, int]:
        self.used += 1
        if self.idle:
            return self.idle.pop()
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # above pipe-max-size for this user: keep the default size
        return r, w

    def put(self, pair: tuple[int, int], empty: bool) -> None:
        """Give a pair back; a pipe still holding bytes is closed instead."""
        self.used -= 1
        if empty and len(self.idle) < MAX_IDLE_PIPES:
            self.idle.append(pair)
        else:
            os.close(pair[0])
            os.close(pair[1])


def new_counters() -> list[int]:
    """This worker's counters of one stats row (see farm.shm.CNT_NAMES)."""
    return [0] * shm.CNT_FIELDS


class SharedStatePool(ServerPool):
    """A ServerPool that first applies server state changes the master wrote
    to shared memory (health, admin state, weights): one integer compare per
    pick, and a refresh only when the master's state version moved."""

    def __init__(self, backend: model.Backend, shared: "SharedState"):
        super().__init__(backend)
        self.shared = shared

    def pick(self, key, avoid=()):
        sh = self.shared
        if sh.table is not None and sh.table.q[shm.H_STATE_VERSION] != sh.version:
            sh.apply()
        return ServerPool.pick(self, key, avoid)

    def any_up(self) -> bool:
        sh = self.shared
        if sh.table is not None and sh.table.q[shm.H_STATE_VERSION] != sh.version:
            sh.apply()
        return ServerPool.any_up(self)


class SharedState:
    """This worker's view of the generation's shared-memory table."""

    def __init__(self, table: "shm.Table | None", worker: int):
        self.table = table
        self.worker = worker
        self.version = -1
        self.backends: list["BackendRuntime"] = []
        self.rows: list[tuple[int, object]] = []   # (column offset, runtime object)
        self.sessions: set | None = None           # the worker's sessions (for shutdown)
        self.ctx_row = None                        # the WorkerContext (process row)
        self.started_ms = int(time.monotonic() * 1000)   # every counter is 0 now

    def register(self, key: tuple, obj) -> None:
        if self.table is not None:
            self.rows.append((self.table.counter_base(key, self.worker), obj))

    def apply(self) -> None:
        """Copy server state from shm into the balancers, and end the
        sessions of servers the admin asked to shut down."""
        t = self.table
        self.version = t.q[shm.H_STATE_VERSION]
        doomed = []
        for be in self.backends:
            for srv in be.servers:
                seq = t.srv_get(srv.sidx, "shutdown_seq")
                if srv.shutdown_seq < 0:
                    srv.shutdown_seq = seq         # first look: nothing to do
                elif seq != srv.shutdown_seq:
                    srv.shutdown_seq = seq
                    doomed.append(srv)
        if doomed and self.sessions is not None:
            for sess in list(self.sessions):
                if session_server(sess) in doomed:
                    sess.kill()
        for be in self.backends:
            states = [t.usable(srv.sidx) for srv in be.servers]
            # weights are x WEIGHT_SCALE in shm: reduce by their gcd so the
            # balancers' tables keep their configured size outside a ramp
            g = math.gcd(*(w for _, w in states)) or 1
            for srv, (up, weight) in zip(be.servers, states):
                be.pool.set_up(srv.index, up)
                be.pool.set_weight(srv.index, weight // g)

    def flush(self) -> None:
        """Write this worker's counters into its column (gauges refreshed).
        The process row goes last: its flushed_ms tells the master's sampler
        that the other rows of this flush are written."""
        t = self.table
        if t is None:
            return
        process_base = None
        for base, obj in self.rows:
            if obj is self.ctx_row:
                process_base = base
                continue
            c = obj.c
            c[shm.C_SCUR] = obj.conns
            q = getattr(obj, "queue", None)
            if q is not None:
                c[shm.C_QCUR] = len(q)
            t.write_column(base, array.array("q", c))
        if process_base is not None:
            ctx = self.ctx_row
            c = ctx.c
            c[shm.C_SCUR] = ctx.conns
            if ctx.conns > c[shm.C_SMAX]:
                c[shm.C_SMAX] = ctx.conns
            c[shm.C_DROPPED_LOGS] = ctx.access.dropped
            c[shm.C_FLUSHED_MS] = int(time.monotonic() * 1000)
            c[shm.C_STARTED_MS] = self.started_ms
            t.write_column(process_base, array.array("q", c))


class ServerRuntime:
    """A server as one worker sees it: this worker's connection count."""

    __slots__ = ("cfg", "index", "backend", "conns", "name", "family", "sockaddr",
                 "c", "sidx", "shutdown_seq")

    def __init__(self, cfg: model.Server, index: int, backend: "BackendRuntime"):
        self.cfg = cfg
        self.index = index
        self.backend = backend
        self.name = cfg.name
        self.conns = 0
        self.c = new_counters()
        self.sidx = -1                # server state row in shm
        self.shutdown_seq = -1        # last `shutdown sessions server` seen
        self.family, self.sockaddr = resolve(cfg.address)


def resolve(addr: model.Address) -> tuple[int, tuple]:
    """Resolve a server address once, at worker start (like HAProxy does at
    startup): connect() on the hot path must never wait for DNS."""
    infos = socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM)
    preferred = [i for i in infos if i[0] == addr.family] or infos
    family, _, _, _, sockaddr = preferred[0]
    return family, sockaddr


class BackendRuntime:
    """A backend: its servers, the balance pool, and the queue of sessions
    waiting for a server slot (server maxconn reached)."""

    def __init__(self, cfg: model.Backend, workers: int, shared: SharedState):
        self.cfg = cfg
        self.name = cfg.name
        # The pool enforces server maxconn: give it this worker's share.
        per_worker_servers = tuple(dataclasses.replace(s, maxconn=per_worker(s.maxconn, workers))
                                   for s in cfg.servers)
        self.pool = SharedStatePool(dataclasses.replace(cfg, servers=per_worker_servers), shared)
        self.servers = [ServerRuntime(s, i, self) for i, s in enumerate(cfg.servers)]
        self.conns = 0
        self.c = new_counters()
        shared.backends.append(self)
        shared.register(("be", cfg.name), self)
        for srv in self.servers:
            shared.register(("srv", cfg.name, srv.name), srv)
            if shared.table is not None:
                srv.sidx = shared.table.server_row(cfg.name, srv.name)
        self.queue: deque = deque()
        self.needs_source_key = cfg.balance.algorithm == "source"
        # HTTP: rules compiled once, balance key, persistence, error pages
        acls = rules.compile_acls(cfg.acl)
        self.req_rules = rules.compile_request_rules(cfg.http_request, acls)
        self.resp_rules = rules.compile_response_rules(cfg.http_response, acls)
        self.key_of = balance_key(cfg.balance)
        self.cookie = CookiePersistence(cfg.cookie, self) if cfg.cookie else None
        self.errorfiles = read_errorfiles(cfg.errorfiles)

    def enqueue(self, session) -> None:
        """session waits for a server slot (every usable server is at its
        maxconn); its dequeued() is called when one frees. Keeps the
        queue's maximum (qmax) now: a queue shorter than a flush shows."""
        q = self.queue
        q.append(session)
        if len(q) > self.c[C_QMAX]:
            self.c[C_QMAX] = len(q)

    def retry_wait(self, index: int, retry_no: int, persistent: bool, timed_out: bool) -> float | None:
        """Retry number retry_no (1..retries) of a failed connection to server
        index: None to go to another server now, else the seconds to wait
        before connecting to the same one again (0: at once). The rules are
        HAProxy's (workers/lb/retry.py); persistent: a cookie chose it."""
        cfg = self.cfg
        pool = self.pool
        hashed = cfg.balance.algorithm in model.HASHING_ALGORITHMS   # would pick it again
        if retry.retry_elsewhere(cfg.redispatch, retry_no, cfg.retries, persistent, hashed,
                                 pool.is_up(index), pool.up_count()[0]):
            return None
        return retry.turnaround(cfg.timeouts.connect, timed_out)

    def acquire(self, index: int, balanced: bool, previous: ServerRuntime | None) -> ServerRuntime:
        """Take a slot on server index for one connection attempt, and count
        it (workers/counting.py server_taken: balanced when the balance
        algorithm chose it; previous, the server whose connection just
        failed when this is a retry)."""
        srv = self.servers[index]
        counting.opened(srv)
        counting.server_taken(self, srv, balanced, previous)
        self.pool.acquired(index)
        return srv

    def release(self, srv: ServerRuntime) -> None:
        """A connection to srv ended: free the slot and wake a queued session."""
        counting.closed(srv)
        self.pool.released(srv.index)
        while self.queue:
            waiter = self.queue.popleft()
            if waiter.dequeued():
                break


class FrontendRuntime:
    """A frontend: this worker's listening sockets and connection count."""

    def __init__(self, cfg: model.Frontend, listeners: list[socket.socket], workers: int,
                 global_maxconn: int, shared: SharedState):
        self.cfg = cfg
        self.name = cfg.name
        self.listeners = listeners
        self.conns = 0
        self.c = new_counters()
        shared.register(("fe", cfg.name), self)
        limit = cfg.maxconn or global_maxconn
        self.maxconn = per_worker(limit, workers)
        self.accepting = False
        self.default_backend: BackendRuntime | None = None
        self.session_class = None
        # HTTP: rules compiled once per worker
        acls = rules.compile_acls(cfg.acl)
        self.req_rules = rules.compile_request_rules(cfg.http_request, acls)
        self.resp_rules = rules.compile_response_rules(cfg.http_response, acls)
        self.choose_backend = rules.compile_use_backend(cfg.use_backend, cfg.default_backend, acls)
        # no use_backend entry: the backend is known without asking the rules
        self.fixed_backend = cfg.default_backend if not cfg.use_backend else None
        self.errorfiles = read_errorfiles(cfg.errorfiles)
        self.xff_name = cfg.xff_header.encode("latin-1")
        self.routes_by_l4 = None     # TCP: use_backend on layer-4 fetches (set by the worker)


class WorkerContext:
    """Everything one worker's sessions share."""

    def __init__(self, loop: Loop, config: model.Config, slot: int, generation: int,
                 table: "shm.Table | None" = None):
        self.loop = loop
        self.shared = SharedState(table, slot)
        self.config = config
        self.slot = slot
        self.generation = generation
        self.buf = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.buf)
        self.pipes = PipePool()
        self.sessions: set = set()
        self.shared.sessions = self.sessions
        self.actconn = 0
        self.draining = False
        self.access = AccessLog(config.log)
        self.shared.register(shm.PROCESS_ROW, self)
        self.shared.ctx_row = self
        self.c = new_counters()     # the process row: actconn as scur, dropped logs
        self.log_format = config.log.format
        workers = config.global_.workers
        self.maxconn = per_worker(config.global_.maxconn, workers)
        self.backends = {b.name: BackendRuntime(b, workers, self.shared) for b in config.backends}
        self.frontends: list[FrontendRuntime] = []
        self.conn_pool = None      # HTTP idle server connections (workers/http.py)
        loop.at_end_of_turn(self.access.flush)

    @property
    def conns(self) -> int:
        """Current connections of this worker (the process row's scur)."""
        return self.actconn

    def session_ended(self, session) -> None:
        """Bookkeeping when any session ends; lets the worker resume accepting
        on a frontend that maxconn had paused, or exit when draining."""
        self.sessions.discard(session)
        self.actconn -= 1
        self.on_session_end(session.fe)

    def on_session_end(self, fe) -> None:
        """Replaced by the worker; a no-op for contexts built in tests."""

    def out_of_fds(self) -> None:
        """Replaced by the worker: pause accepting for a moment."""



def read_errorfiles(entries: tuple[tuple[int, str], ...]) -> dict[int, bytes]:
    """status -> the raw HTTP response in that file (HAProxy's errorfile:
    the file holds the whole response, head included, sent as is)."""
    out = {}
    for status, path in entries:
        with open(path, "rb") as f:
            out[status] = f.read()
    return out


def balance_key(balance: model.Balance):
    """The function extracting the hashing key from an HTTP transaction,
    or None for algorithms that need no key. A None key makes the hashing
    balancer fall back to round robin (as HAProxy does)."""
    alg = balance.algorithm
    if alg == "source":
        return lambda txn: txn.src.encode()
    if alg == "uri":
        if "whole" in balance.options:
            return lambda txn: txn.req.target
        if "path-only" in balance.options:
            return lambda txn: txn.req.path
        return lambda txn: txn.req.target.split(b"?", 1)[0]
    if alg == "url_param":
        name = balance.arg.encode("latin-1")

        def url_param(txn):
            for pair in txn.req.query.split(b"&"):
                k, eq, v = pair.partition(b"=")
                if eq and unquote_to_bytes(k) == name:
                    return v or None
            return None
        return url_param
    if alg == "hdr":
        name = balance.arg.lower().encode("latin-1")
        return lambda txn: txn.req.get(name)
    return None


def session_server(sess) -> "ServerRuntime | None":
    """The server a TCP or HTTP session is talking to now, if any."""
    srv = getattr(sess, "srv", None)
    if srv is not None:
        return srv
    txn = getattr(sess, "txn", None)
    return txn.srv if txn is not None else None


class Layer4Txn:
    """What a TCP session's use_backend conditions can read (the loader
    allows only src, src_port and dst_port in tcp frontends)."""

    __slots__ = ("src", "src_port", "dst_port", "req", "resp", "_rules_src")

    def __init__(self, caddr: tuple, dst_port: int):
        self.src = caddr[0]
        self.src_port = caddr[1]
        self.dst_port = dst_port
        self.req = self.resp = self._rules_src = None


def layer4_router(fe: "FrontendRuntime", backends: dict):
    """csock, caddr -> the BackendRuntime a TCP connection goes to."""
    choose = fe.choose_backend
    default = fe.default_backend

    def route(csock: socket.socket, caddr: tuple) -> "BackendRuntime":
        name = choose(Layer4Txn(caddr, csock.getsockname()[1]))
        return backends.get(name, default) if name else default
    return route
