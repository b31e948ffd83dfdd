"""Per-worker runtime state built from the config: frontends, backends,
servers, the shared I/O buffer and the splice pipe pool.

Everything here belongs to one worker process and is touched only by its
loop, except the gauges: what HAProxy applies per process (a server's or a
frontend's maxconn, the global maxconn, a server's current connections for
leastconn, a backend's queue) is one number for all workers, kept in the
shared-memory table and moved with atomic operations (Gauge). A server with
maxconn 10 gets at most 10 connections from all workers together, and a
freed slot goes to the oldest queued request of any worker (BackendRuntime:
queue tickets, and an eventfd per worker to wake the one that holds the
oldest).
"""

from __future__ import annotations

import array
import fcntl
import math
import os
import socket
import time
from collections import deque
from urllib.parse import unquote_to_bytes

from farm import challenges, model, shm, tlsconf
from farm.logs import AccessLog
from farm.resolve import ResolveError, lookup
from farm.shm import H_STATE_VERSION
from workers import counting, rules
from workers import tables as sticks
from workers.cookie import CookiePersistence
from workers.lb import retry
from workers.lb.pool import ServerPool
from workers.loop import Loop
from workers.states import REUSE_ALWAYS, REUSE_NEVER, REUSE_SAFE

INF = float("inf")
# http-reuse (HAProxy's): what a request may take from the idle pool
REUSE = {"never": REUSE_NEVER, "safe": REUSE_SAFE, "always": REUSE_ALWAYS}
BUFFER_SIZE = 65536
PIPE_SIZE = 262144          # bytes a splice pipe holds (fcntl F_SETPIPE_SZ)
MAX_IDLE_PIPES = 64         # pipes kept for reuse; more are closed


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


def new_counters() -> array.array:
    """This worker's counters of one stats row (see farm.shm.CNT_NAMES), all
    0: a C array of int64 (array "q"), so that the compiled counting code
    adds to C integers, not to Python ints in a list."""
    return array.array("q", bytes(8 * shm.CNT_FIELDS))


class Gauge:
    """The live numbers of one stats row, one for all workers: current
    connections (and their maximum), in farm/shm.py's gauges. take() and
    give() move the shared count atomically and this worker's part of it
    (which the master takes back if the worker dies)."""

    __slots__ = ("cells", "q", "cur", "mine", "peak", "_inc", "_add", "_cell")

    def __init__(self, table: "shm.Table", key: tuple, worker: int):
        self.cells = cells = table.cells
        self.q = table.q
        self.cur = table.gauge_base(key)               # G_CUR; G_MAX follows it
        self.mine = table.gauge_worker(key, worker)     # W_CUR
        self.peak = 0                                   # the largest value this worker saw
        # take() and give() run for every request: with the cells' methods
        # bound once and the cell index kept as a Python int, each is one
        # call, not a method lookup plus an int allocation
        self._inc = cells.inc_below
        self._add = cells.add
        self._cell = table.gauge_base(key)

    def take(self, limit: int = 0) -> bool:
        """One more, if that stays within limit (0: no limit); False if not."""
        n = self._inc(self._cell, limit)
        if not n:
            return False
        self.q[self.mine] += 1
        if n > self.peak:
            self.peak = n
            self.cells.raise_to(self.cur + shm.G_MAX, n)
        return True

    def reserve(self, limit: int = 0) -> int:
        """take() without counting a maximum yet: the new value (for
        confirm()), or 0 when limit forbids it. For a slot taken before we
        know it is used (the acceptor, before accept())."""
        n = self.cells.inc_below(self.cur, limit)
        if n:
            self.q[self.mine] += 1
        return n

    def confirm(self, n: int) -> None:
        """The slot reserve() returned n for is used: count it in the maximum."""
        if n > self.peak:
            self.peak = n
            self.cells.raise_to(self.cur + shm.G_MAX, n)

    def give(self) -> None:
        self._add(self._cell, -1)
        self.q[self.mine] -= 1

    def value(self) -> int:
        # The shared cell read through q (the same memory as cells), as
        # SharedState.stale() reads its version: an aligned 8-byte load
        # does not tear, and no order against other accesses matters to
        # a count that is only read. No method call nor Python int: the
        # access log reads four gauges per request.
        return self.q[self.cur]


class SharedCounts:
    """A backend's servers' current connections (backend server index ->
    the count of all workers): the counts view the balancers read."""

    __slots__ = ("cells", "cur")

    def __init__(self, gauges: list[Gauge]):
        self.cells = gauges[0].cells if gauges else None
        self.cur = [g.cur for g in gauges]

    def __getitem__(self, i: int) -> int:
        return self.cells.load(self.cur[i])

    def __len__(self) -> int:
        return len(self.cur)


class SharedStatePool(ServerPool):
    """A ServerPool that first applies server state changes the master wrote
    to shared memory (health, admin state, weights): one integer compare per
    pick, and a refresh only when the master's state version moved."""

    def __init__(self, backend: model.Backend, shared: "SharedState", counts: SharedCounts):
        super().__init__(backend, counts)
        self.shared = shared

    def pick(self, key, avoid=()):
        sh = self.shared
        if sh.stale():
            sh.apply()
        return ServerPool.pick(self, key, avoid)

    def any_up(self) -> bool:
        sh = self.shared
        if sh.stale():
            sh.apply()
        return ServerPool.any_up(self)


class SharedState:
    """This worker's view of the generation's shared-memory table."""

    def __init__(self, table: "shm.Table | None", worker: int):
        self.table = table
        self.q = table.q if table is not None else None   # the table's cells, for stale()
        self.worker = worker
        self.version = -1
        self.backends: list["BackendRuntime"] = []
        self.rows: list[tuple[int, object]] = []   # (column offset, runtime object)
        self.sessions: set | None = None           # the worker's sessions (for shutdown)
        self.ctx_row = None                        # the WorkerContext (process row)
        self.started_ms = int(time.monotonic() * 1000)   # every counter is 0 now

    def stale(self) -> bool:
        """True when the master changed server states (its state version
        moved) since the last apply(); False without a table (tests)."""
        return self.q is not None and self.q[H_STATE_VERSION] != self.version

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
                if t.srv_get(srv.sidx, "addr_seq") != srv.addr_seq:
                    self.apply_address(srv)
                seq = t.srv_get(srv.sidx, "shutdown_seq")
                if srv.shutdown_seq < 0:
                    srv.shutdown_seq = seq         # first look: nothing to do
                elif seq != srv.shutdown_seq:
                    srv.shutdown_seq = seq
                    doomed.append(srv)
        if doomed and self.sessions is not None:
            for sess in list(self.sessions):
                kill_streams = getattr(sess, "kill_streams_of", None)
                if kill_streams is not None:
                    kill_streams(doomed)        # HTTP/2: only the streams of those servers
                elif session_server(sess) in doomed:
                    sess.kill()
        for be in self.backends:
            states = [t.usable(srv.sidx) for srv in be.servers]
            # weights are x WEIGHT_SCALE in shm: reduce by their gcd so the
            # balancers' tables keep their configured size outside a ramp
            g = math.gcd(*(w for _, w in states)) or 1
            for srv, (up, weight) in zip(be.servers, states):
                be.pool.set_up(srv.index, up)
                be.pool.set_weight(srv.index, weight // g)

    def apply_address(self, srv: "ServerRuntime") -> None:
        """The master changed srv's address (`set server ... addr`): new
        connections go to the new one, idle pooled ones to the old one close."""
        seq, address = self.table.address(srv.sidx)
        if seq & 1:
            self.version = -1          # caught mid-write: read again at the next pick
            return
        srv.addr_seq = seq
        if address is None or address == (srv.family, srv.sockaddr):
            return
        srv.family, srv.sockaddr = address
        pool = getattr(self.ctx_row, "conn_pool", None)
        if pool is not None:
            pool.discard_server(srv)

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
            t.write_column(base, obj.c)
        if process_base is not None:
            ctx = self.ctx_row
            c = ctx.c
            c[shm.C_DROPPED_LOGS] = ctx.access.dropped
            c[shm.C_FLUSHED_MS] = int(time.monotonic() * 1000)
            c[shm.C_STARTED_MS] = self.started_ms
            t.write_column(process_base, c)


class ServerRuntime:
    """A server as one worker sees it: its counters, its shared gauge."""

    __slots__ = ("cfg", "index", "backend", "g", "maxconn", "name", "family", "sockaddr",
                 "c", "sidx", "shutdown_seq", "addr_seq", "tls", "h2")

    def __init__(self, cfg: model.Server, index: int, backend: "BackendRuntime", g: Gauge):
        self.cfg = cfg
        self.index = index
        self.backend = backend
        self.name = cfg.name
        self.g = g
        self.maxconn = cfg.maxconn
        self.c = new_counters()
        self.sidx = -1                # server state row in shm
        self.shutdown_seq = -1        # last `shutdown sessions server` seen
        self.addr_seq = -1            # version of the address cells last applied
        self.family, self.sockaddr = 0, None   # set by first_address()
        self.tls = None               # workers/servertls.py ServerTls of a tls server
        self.h2 = cfg.proto == "h2"   # HTTP/2 to it (workers/h2server.py)

    def first_address(self, table: "shm.Table | None") -> None:
        """Where to connect: the address the master put in shared memory
        (resolved when the config was loaded); none for a server in
        resolution maintenance; else (no table, or no address in it) the
        name resolved here, once, at worker start: connect() on the hot
        path never waits for DNS."""
        if table is not None and self.sidx is not None and self.sidx >= 0:
            seq, address = table.address(self.sidx)
            if address is not None:
                self.addr_seq = seq
                self.family, self.sockaddr = address
                return
            if table.srv_get(self.sidx, "rmaint"):
                self.addr_seq = seq
                return
        self.family, self.sockaddr = resolve(self.cfg.address, f"{self.backend.name}/{self.name}")

    @property
    def conns(self) -> int:
        """Current connections of all workers (%sc)."""
        return self.g.value()


class ServerAddressError(Exception):
    """A server's name did not resolve in a worker; says which server."""


def resolve(addr: model.Address, server: str = "") -> tuple[int, tuple]:
    """addr -> (family, sockaddr), or ServerAddressError naming `server`
    ("backend/server") and the name."""
    try:
        return lookup(addr.host, addr.port, addr.family)
    except ResolveError as e:
        raise ServerAddressError(f"server {server}: cannot resolve {addr.host!r} ({e})") from None


class BackendRuntime:
    """A backend: its servers, the balance pool, and the requests waiting
    for a server slot (every usable server at its maxconn).

    The queue is one for all workers. A request that must wait takes a
    ticket (the backend's ticket counter in shm) and waits in its worker's
    local deque; each worker publishes the ticket of its oldest waiter.
    A freed slot goes to the oldest ticket of all: the worker that freed it
    serves its own waiter if it holds the oldest, else wakes the worker that
    does (its eventfd). While anybody waits, new requests queue behind them
    instead of taking a slot that just freed, so requests are served in
    order of arrival, as HAProxy's queue does."""

    def __init__(self, cfg: model.Backend, shared: "SharedState"):
        self.cfg = cfg
        self.name = cfg.name
        table = shared.table
        worker = shared.worker
        key = ("be", cfg.name)
        self.g = Gauge(table, key, worker)
        gauges = [Gauge(table, ("srv", cfg.name, s.name), worker) for s in cfg.servers]
        # The pool reads the servers' counts from the shared gauges
        # (SharedCounts), which acquire() and release() move: its own
        # acquired()/released() count only for a pool without such a view
        # (the balancers' unit tests), so they are not called here.
        self.pool = SharedStatePool(cfg, shared, SharedCounts(gauges))
        self.redispatch = bool(cfg.redispatch)
        self.servers = [ServerRuntime(s, i, self, gauges[i]) for i, s in enumerate(cfg.servers)]
        self.c = new_counters()
        shared.backends.append(self)
        shared.register(key, self)
        for srv in self.servers:
            shared.register(("srv", cfg.name, srv.name), srv)
            srv.sidx = table.server_row(cfg.name, srv.name)
            srv.first_address(table)
        # the shared queue (see the class docstring)
        self.limited = any(s.maxconn for s in cfg.servers)   # else nothing ever waits
        self.cells = table.cells
        self.q = table.q
        base = self.g.cur
        self.q_count = base + shm.G_QUEUE
        self.q_max = base + shm.G_QMAX
        self.q_tail = base + shm.G_TAIL
        self.q_heads = [base + shm.G_FIELDS + w * shm.W_FIELDS + shm.W_HEAD
                        for w in range(table.layout.workers)]
        self.my_head = self.q_heads[worker]
        self.my_count = base + shm.G_FIELDS + worker * shm.W_FIELDS + shm.W_QUEUE
        self.worker = worker
        self.wakeups = table.wakeups
        self.waiting: deque = deque()        # (ticket, stream) of this worker, oldest first
        self.needs_source_key = cfg.balance.algorithm == "source"
        # what the per-request path reads, out of the config once
        t = cfg.timeouts
        self.to_server = t.server or INF
        self.to_queue = t.queue or INF
        self.to_connect = t.connect or INF
        self.to_tunnel = t.tunnel or 0.0
        self.retries = cfg.retries
        self.reuse = REUSE[cfg.http_reuse]
        self.forwardfor = cfg.option_forwardfor
        self.forwarded = cfg.forwarded
        # HTTP: rules compiled once, balance key, persistence, error pages
        acls = rules.compile_acls(cfg.acl)
        self.req_rules = rules.compile_request_rules(cfg.http_request, acls)
        self.resp_rules = rules.compile_response_rules(cfg.http_response, acls)
        self.key_of = balance_key(cfg.balance)
        self.cookie = CookiePersistence(cfg.cookie, self) if cfg.cookie else None
        self.stick = None      # its stick rules (workers/tables.py Persistence), set by the worker
        self.errorfiles = read_errorfiles(cfg.errorfiles)

    @property
    def conns(self) -> int:
        """Current requests/sessions of all workers in this backend (%bc)."""
        return self.g.value()

    def queued(self) -> int:
        """Requests waiting for a slot, in all workers (%bq, qcur)."""
        return self.q[self.q_count]      # read through q, as Gauge.value() reads

    def retry_wait(self, index: int, retry_no: int, persistent: bool, timed_out: bool) -> float | None:
        """Retry number retry_no (1..retries) of a failed connection to server
        index: None to go to another server now, else the seconds to wait
        before connecting to the same one again (0: at once). The rules are
        HAProxy's (workers/lb/retry.py); persistent: a cookie or a stick match chose it."""
        cfg = self.cfg
        pool = self.pool
        hashed = cfg.balance.algorithm in model.HASHING_ALGORITHMS   # would pick it again
        if retry.retry_elsewhere(cfg.redispatch, retry_no, cfg.retries, persistent, hashed,
                                 pool.is_up(index), pool.up_count()[0]):
            return None
        return retry.turnaround(cfg.timeouts.connect, timed_out)

    def acquire(self, index: int, balanced: bool = False,
                previous: ServerRuntime | None = None) -> ServerRuntime | None:
        """Take a slot of server index (its maxconn counted over all
        workers) for one connection attempt and count it
        (workers/counting.py server_taken: balanced when the balance
        algorithm chose it; previous, the server whose connection just
        failed when this is a retry); None if another worker took the last
        slot first."""
        srv = self.servers[index]
        if not srv.g.take(srv.maxconn):
            return None
        counting.server_taken(self, srv, balanced, previous)
        return srv

    def take_server(self, key, tried, forced: int | None, from_queue: bool,
                    previous: ServerRuntime | None) -> ServerRuntime | None:
        """A server with one of its slots taken: forced (an index: a cookie's
        or a same-server retry's choice), else the balance's pick for key,
        away from the tried servers when redispatch allows. None when it is
        (or every usable one is) at its maxconn: the request waits.
        from_queue: a queued request taking a freed slot (not a balance
        choice for lbtot); previous: the server that just failed (a retry)."""
        if forced is not None:
            return self.acquire(forced, False, previous)
        pool = self.pool
        avoid = tried if self.redispatch else ()
        for _ in range(4):   # another worker may take the picked slot first
            idx = pool.pick(key, avoid)
            if idx is None and avoid:
                idx = pool.pick(key, ())   # every server tried: start over
            if idx is None:
                return None
            srv = self.acquire(idx, not from_queue, previous)
            if srv is not None:
                return srv
        return None

    def release(self, srv: ServerRuntime) -> None:
        """A connection to srv ended: free the slot, and hand it to the
        oldest queued request of any worker."""
        srv.g.give()
        if self.limited and self.cells.load(self.q_count) > 0:
            self.kick()

    # -- the queue (see the class docstring) -----------------------------------

    def must_wait(self) -> bool:
        """Whether a new request must queue behind others already waiting."""
        return self.limited and self.cells.load(self.q_count) > 0

    def enqueue(self, stream) -> None:
        """stream waits for a slot; it is told through stream.dequeued()."""
        cells = self.cells
        ticket = cells.add(self.q_tail, 1)
        if not self.waiting:
            cells.store(self.my_head, ticket)
        self.waiting.append((ticket, stream))
        self.q[self.my_count] += 1
        n = cells.add(self.q_count, 1)
        cells.raise_to(self.q_max, n)
        # a slot freed between the failed pick and the count above saw
        # nobody waiting: look again now that everybody can see this one
        self.kick()

    def leave_queue(self, stream) -> None:
        """stream stops waiting (queue timeout, client gone)."""
        waiting = self.waiting
        for i, (_, s) in enumerate(waiting):
            if s is stream:
                del waiting[i]
                break
        else:
            return
        self._dequeued(i == 0)
        if waiting:
            self.kick()

    def _dequeued(self, was_head: bool) -> None:
        self.q[self.my_count] -= 1
        self.cells.add(self.q_count, -1)
        if was_head:
            waiting = self.waiting
            self.cells.store(self.my_head, waiting[0][0] if waiting else shm.NO_TICKET)

    def oldest_worker(self) -> int:
        """The worker holding the oldest queued request (-1: none)."""
        load = self.cells.load
        best, who = shm.NO_TICKET, -1
        for w, cell in enumerate(self.q_heads):
            t = load(cell)
            if t < best:
                best, who = t, w
        return who

    def kick(self) -> None:
        """A slot may be free: serve the oldest waiter if it is ours, else
        wake the worker that holds it."""
        who = self.oldest_worker()
        if who == self.worker:
            self.serve_queue()
        elif who >= 0:
            try:
                os.eventfd_write(self.wakeups[who], 1)
            except OSError:
                pass      # the counter is full: it is awake already

    def serve_queue(self) -> None:
        """Give free slots to this worker's waiters, oldest first, while
        they hold the oldest tickets of all workers."""
        waiting = self.waiting
        while waiting and self.oldest_worker() == self.worker:
            _, stream = waiting[0]
            if not stream.dequeued():
                return           # no slot free after all: it keeps its place
            waiting.popleft()
            self._dequeued(True)


class FrontendRuntime:
    """A frontend: this worker's listening sockets; its connections are
    counted over all workers (g), against its maxconn."""

    def __init__(self, cfg: model.Frontend, listeners: list[socket.socket],
                 global_maxconn: int, shared: SharedState):
        self.cfg = cfg
        self.name = cfg.name
        self.listeners = listeners
        self.c = new_counters()
        key = ("fe", cfg.name)
        shared.register(key, self)
        self.g = Gauge(shared.table, key, shared.worker)
        self.maxconn = cfg.maxconn or global_maxconn
        # what the per-request path reads, out of the config once
        self.forwardfor = cfg.option_forwardfor
        self.forwarded = cfg.forwarded
        self.max_head = cfg.max_header_size
        self.to_tunnel = cfg.timeouts.tunnel or 0.0
        self.accepting = False
        self.default_backend: BackendRuntime | None = None
        self.session_class = None
        # HTTP: rules compiled once per worker
        acls = rules.compile_acls(cfg.acl)
        self.req_rules = rules.compile_request_rules(cfg.http_request, acls)
        self.resp_rules = rules.compile_response_rules(cfg.http_response, acls)
        self.choose_backend = rules.compile_use_backend(cfg.use_backend, cfg.default_backend, acls)
        # monitor_uri: answered by the stream itself (Stream.monitor_reply)
        self.monitor_uri = cfg.monitor_uri.encode("latin-1") if cfg.monitor_uri else None
        self.monitor_fail = (rules.compile_condition(cfg.monitor_fail, acls)
                             if cfg.monitor_fail is not None else None)
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
        self.draining = False
        # an ACME client's HTTP-01 answers (the master's board, made before
        # the fork and kept for the worker's life): what every request asks
        self.acme_http = challenges.BOARD is not None
        self.access = AccessLog(config.log)
        self.shared.register(shm.PROCESS_ROW, self)
        self.shared.ctx_row = self
        self.c = new_counters()     # the process row: dropped logs
        self.g = Gauge(table, shm.PROCESS_ROW, slot)   # connections of all workers
        self.log_format = config.log.format
        self.maxconn = config.global_.maxconn
        self.backends = {b.name: BackendRuntime(b, self.shared) for b in config.backends}
        self.frontends: list[FrontendRuntime] = []
        self.conn_pool = None      # HTTP idle server connections (workers/server.py)
        # set by the worker: resume accepting (or exit when draining) when a
        # session ends; pause accepting when out of descriptors
        self.on_session_end = _no_session_hook
        self.out_of_fds = _no_fd_hook
        self.tls = tlsconf.EMPTY   # the SSL contexts the master made (farm/tlsconf.py TlsSet)
        # session -> the stick counters its tcp_request rules track
        # (workers/tables.py), released when it ends
        self.conn_stk: dict = {}
        loop.at_end_of_turn(self.access.flush)

    @property
    def actconn(self) -> int:
        """Current connections of all workers (%ac)."""
        return self.g.value()

    def superseded(self) -> bool:
        """True when a reload replaced this worker's generation (see
        farm/shm.py Table.superseded); False without a table (tests)."""
        table = self.shared.table
        return table is not None and table.superseded

    def session_ended(self, session) -> None:
        """Bookkeeping when any session ends: its connection is no longer
        counted (taken by the worker's acceptor); lets the worker resume
        accepting on a frontend that maxconn had paused, or exit when
        draining."""
        self.sessions.discard(session)
        if self.conn_stk:
            stk = self.conn_stk.pop(session, None)
            if stk is not None:
                sticks.connection_ended(session, stk)
        session.fe.g.give()
        self.g.give()
        self.on_session_end(session.fe)

    def on_wakeup(self, events: int) -> None:
        """Another worker freed a server slot that our oldest queued request
        is owed (BackendRuntime.kick)."""
        try:
            os.eventfd_read(self.shared.table.wakeups[self.slot])
        except OSError:
            pass
        for be in self.backends.values():
            if be.waiting:
                be.serve_queue()



def _no_session_hook(fe) -> None:
    """WorkerContext.on_session_end of a context without a worker (tests)."""


def _no_fd_hook() -> None:
    """WorkerContext.out_of_fds of a context without a worker (tests)."""


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
    stream = getattr(sess, "stream", None)
    return stream.srv if stream is not None else None


class Layer4Txn:
    """What a TCP session's use_backend conditions can read (the loader
    allows only src, src_port, dst and dst_port in tcp frontends)."""

    __slots__ = ("src", "src_port", "dst", "dst_port", "req", "resp", "_rules_src")

    def __init__(self, caddr: tuple, dst: tuple):
        self.src = caddr[0]
        self.src_port = caddr[1]
        self.dst = dst[0]
        self.dst_port = dst[1]
        self.req = self.resp = self._rules_src = None


def layer4_router(fe: "FrontendRuntime", backends: dict):
    """csock, caddr -> the BackendRuntime a TCP connection goes to."""
    choose = fe.choose_backend
    default = fe.default_backend

    def route(csock: socket.socket, caddr: tuple) -> "BackendRuntime":
        pp = getattr(caddr, "proxy", None)     # a PROXY header's destination wins
        if pp is not None and pp.dst is not None:
            dst = (pp.dst, pp.dst_port)
        else:
            dst = csock.getsockname()
        name = choose(Layer4Txn(caddr, dst))
        return backends.get(name, default) if name else default
    return route
