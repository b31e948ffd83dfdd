"""The shared-memory table: server state and per-worker counters.

One anonymous MAP_SHARED mapping per config generation, created by the
master before it forks, so every worker of the generation inherits it. It
is a table of int64 cells viewed through memoryview.cast("q"):

  header      HEADER_SLOTS cells: magic, generation, state version, ...
  server      one row of SRV_FIELDS per (backend, server): written by the
  state       master only (health, admin state, effective weight, checks)
  counters    one row per frontend, backend and server, each with a column
              of CNT_FIELDS cells per worker slot plus one "carried" column:
              worker w writes only its column, the master only the carried
              one (totals carried over from earlier generations).
  history     per frontend and backend, the last HIST_SLOTS one-second
              samples (rates, responses by class, times): master-written.

  gauges      one block per counter row of what must be one number for
              all workers, changed with atomic operations (farm/atomics.py):
              current connections and their maximum, queued requests and
              their maximum, the queue's ticket counter; then, per worker,
              that worker's part of the current numbers (so the master can
              take a dead worker's share back) and the ticket of its oldest
              queued request (so a freed slot goes to the oldest request of
              all workers).

Counters: one writer per cell, no locks: readers sum the columns of a row.
An int64 store is a single aligned 8-byte write on x86-64 and arm64, so a
reader sees the old or the new value, never a torn one. Workers detect
server-state changes by comparing the header's state version (bumped by the
master after it wrote the rows) with the one they last applied. Gauges:
many writers, atomic read-modify-write (Table.cells).

The history is a ring written by the master's sampler (farm/sampler.py)
and drawn as graphs by the stats page. It lives here rather than in the
master's memory because the page is served by the workers: reading shm
costs a worker no round trip to the master (an admin socket call would
block its event loop, and needs global.admin_socket), and the master stays
the only writer. It is carried over a reload like the counters. See
"history" below for how a reader gets a consistent window without a lock.
"""

from __future__ import annotations

import array
import mmap
import os
import socket
import time
from dataclasses import dataclass

from farm import model
from farm.atomics import Cells

MAGIC = 0x6661726D5348_01   # "farmSH" v1

# header cells
(H_MAGIC, H_GENERATION, H_STATE_VERSION, H_WORKERS, H_ROWS, H_SERVERS, H_START,
 H_HIST_SEQ, H_SUPERSEDED) = range(9)
HEADER_SLOTS = 16

# server state (master-written)
SRV_FIELDS_NAMES = (
    "op_up",          # 1 up / 0 down (health)
    "health",         # HAProxy's integer health counter
    "admin",          # ADMIN_READY / ADMIN_DRAIN / ADMIN_MAINT
    "eff_weight",     # weight in effect now x WEIGHT_SCALE (slowstart ramps it)
    "weight",         # configured or admin-set weight (what slowstart ramps to)
    "check_status",   # index into CHECK_STATUSES
    "check_code",     # HTTP status of the last L7 check, 0 if none
    "check_duration", # ms of the last check, -1 if none
    "last_change",    # epoch seconds of the last up/down/admin change
    "downtime",       # accumulated seconds spent down
    "down_since",     # epoch seconds when it went down, 0 when up
    "chkfail",        # failed checks
    "chkdown",        # up->down transitions
    "checks",         # checks run
    "up_since",       # epoch seconds of the last transition to up (slowstart)
    "has_check",      # 1 if the server is health-checked
    "shutdown_seq",   # bumped by `shutdown sessions server`: workers kill its sessions
    # -- the address servers are connected to (farm/resolve.py, `set server
    #    ... addr`); written by the master with set_address, read with address --
    "rmaint",         # 1: no address (init_addr none): HAProxy's resolution maintenance
    "addr_seq",       # odd while the master writes the cells below; bumped on each change
    "addr_family",    # 0: not in the table (a worker resolves the name), AF_INET, AF_INET6
    "addr_hi",        # the IP's bytes 0-7 (IPv6), big-endian, as a signed int64
    "addr_lo",        # bytes 8-15 (IPv6) or the 4 bytes of an IPv4 address
    "addr_port",
)
SRV_FIELDS = len(SRV_FIELDS_NAMES)
S = {name: i for i, name in enumerate(SRV_FIELDS_NAMES)}

# Effective weights are kept x16 (HAProxy's BE_WEIGHT_SCALE) so that a
# slowstart ramp has steps even for a weight of 1; workers divide a
# backend's weights by their gcd, so outside a ramp nothing grows.
WEIGHT_SCALE = 16
S_RMAINT, S_ADDR_SEQ = S["rmaint"], S["addr_seq"]

ADMIN_READY, ADMIN_DRAIN, ADMIN_MAINT = 0, 1, 2
ADMIN_NAMES = ("ready", "drain", "maint")

# HAProxy's check status codes (show stat check_status)
CHECK_STATUSES = ("", "INI", "L4OK", "L4TOUT", "L4CON", "L7OK", "L7STS", "L7RSP",
                  "L7TOUT", "SOCKERR", "L6OK", "L6TOUT", "L6RSP")
CS = {name: i for i, name in enumerate(CHECK_STATUSES)}

# per-worker counters (HAProxy's show stat names where there is one)
CNT_NAMES = (
    "scur", "smax", "stot", "bin", "bout", "dreq", "dresp", "ereq", "econ", "eresp",
    "wretr", "wredis", "req_tot", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx",
    "hrsp_5xx", "hrsp_other", "cli_abrt", "srv_abrt", "lbtot", "qcur", "qmax",
    "qtime_sum", "ctime_sum", "rtime_sum", "ttime_sum", "timed", "lastsess",
    "qtime_max", "ctime_max", "rtime_max", "ttime_max",
    "conn_tot", "reuse", "connect", "intercepted", "denied_conn", "dropped_logs",
    # per-second rates and their maxima, and the average times of the last
    # sessions (ms): written by the master's sampler (farm/sampler.py) into
    # the carried column; workers leave theirs at 0
    "rate", "rate_max", "req_rate", "req_rate_max", "conn_rate", "conn_rate_max",
    "qtime_avg", "ctime_avg", "rtime_avg", "ttime_avg",
    # process row, worker columns: CLOCK_MONOTONIC ms of the worker's last
    # flush, so that the sampler divides each worker's counts by its own
    # interval between flushes, and of the worker's start (when its counts
    # were all 0)
    "flushed_ms", "started_ms",
)
CNT_FIELDS = len(CNT_NAMES)
C = {name: i for i, name in enumerate(CNT_NAMES)}
# Named indices for the hot path (a list index, not a dict lookup, per count).
(C_SCUR, C_SMAX, C_STOT, C_BIN, C_BOUT, C_DREQ, C_DRESP, C_EREQ, C_ECON, C_ERESP,
 C_WRETR, C_WREDIS, C_REQ_TOT, C_HRSP_1XX, C_HRSP_2XX, C_HRSP_3XX, C_HRSP_4XX,
 C_HRSP_5XX, C_HRSP_OTHER, C_CLI_ABRT, C_SRV_ABRT, C_LBTOT, C_QCUR, C_QMAX,
 C_QTIME_SUM, C_CTIME_SUM, C_RTIME_SUM, C_TTIME_SUM, C_TIMED, C_LASTSESS,
 C_QTIME_MAX, C_CTIME_MAX, C_RTIME_MAX, C_TTIME_MAX,
 C_CONN_TOT, C_REUSE, C_CONNECT, C_INTERCEPTED, C_DENIED_CONN, C_DROPPED_LOGS,
 C_RATE, C_RATE_MAX, C_REQ_RATE, C_REQ_RATE_MAX, C_CONN_RATE, C_CONN_RATE_MAX,
 C_QTIME_AVG, C_CTIME_AVG, C_RTIME_AVG, C_TTIME_AVG,
 C_FLUSHED_MS, C_STARTED_MS) = range(CNT_FIELDS)
# The process row: one column per worker for process-wide figures
# (current connections of the worker, dropped access-log lines).
PROCESS_ROW = ("proc", "process")
# gauges are not summed into carried totals on reload, and maxima are maxed
# (flushed_ms and started_ms are both: a reader of a whole row gets the
# latest)
GAUGES = frozenset(("scur", "qcur", "rate", "req_rate", "conn_rate", "flushed_ms", "started_ms",
                    "qtime_avg", "ctime_avg", "rtime_avg", "ttime_avg"))
MAXIMA = frozenset(("smax", "qmax", "lastsess", "rate_max", "req_rate_max", "conn_rate_max",
                    "qtime_max", "ctime_max", "rtime_max", "ttime_max", "flushed_ms",
                    "started_ms"))


# gauges of a row, one for all workers (atomic): G_* from the row's gauge
# base; then per worker w, W_* from gauge base + G_FIELDS + w * W_FIELDS
G_CUR, G_MAX, G_QUEUE, G_QMAX, G_TAIL = range(5)
G_FIELDS = 5
W_CUR, W_QUEUE, W_HEAD = range(3)
W_FIELDS = 3
NO_TICKET = 1 << 62          # W_HEAD of a worker with nothing queued

# history ring (master-written, see Table.hist_write/hist_read): per frontend
# and backend, HIST_SLOTS samples of these fields. Rates are per second x
# HIST_RATE_SCALE; "timed" counts the sessions that ended in the sample and
# rtime/ttime are the sums of their response and total times (ms), so a
# reader averages them over any span.
HIST_SLOTS = 600                  # 10 minutes at the master's 1 s sampling
HIST_RATE_SCALE = 100
HIST_FIELDS = ("sess", "req", "1xx", "2xx", "3xx", "4xx", "5xx", "other",
               "timed", "rtime", "ttime")
HIST_NFIELDS = len(HIST_FIELDS)


def pack_ip(family: int, host: str) -> tuple[int, int]:
    """An IP literal -> the two int64 cells (hi, lo) that hold it."""
    raw = socket.inet_pton(family, host.partition("%")[0])
    if family == socket.AF_INET:
        return 0, int.from_bytes(raw, "big")
    return int.from_bytes(raw[:8], "big", signed=True), int.from_bytes(raw[8:], "big", signed=True)


def unpack_ip(family: int, hi: int, lo: int) -> str:
    if family == socket.AF_INET:
        return socket.inet_ntop(family, lo.to_bytes(4, "big"))
    raw = hi.to_bytes(8, "big", signed=True) + lo.to_bytes(8, "big", signed=True)
    return socket.inet_ntop(family, raw)


def literal_address(addr: model.Address) -> tuple[int, tuple] | None:
    """(family, sockaddr) of an address whose host is an IP literal, else
    None (a name, resolved elsewhere)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, addr.host)
        except OSError:
            continue
        return family, ((addr.host, addr.port, 0, 0) if family == socket.AF_INET6
                        else (addr.host, addr.port))
    return None


def state_address(st: dict) -> tuple[int, tuple] | None:
    """The (family, sockaddr) held by a srv_state() dict, or None."""
    family = st["addr_family"]
    if family == 0:
        return None
    host = unpack_ip(family, st["addr_hi"], st["addr_lo"])
    return family, ((host, st["addr_port"], 0, 0) if family == socket.AF_INET6
                    else (host, st["addr_port"]))


def format_sockaddr(sockaddr: tuple) -> str:
    """("10.0.0.1", 80) -> "10.0.0.1:80"; an IPv6 one -> "[::1]:80"."""
    if len(sockaddr) == 4:
        return f"[{sockaddr[0]}]:{sockaddr[1]}"
    return f"{sockaddr[0]}:{sockaddr[1]}"


@dataclass(frozen=True)
class Layout:
    """Where each row lives, computed from a config (pure, no mapping)."""

    workers: int
    rows: dict            # ("fe", name) | ("be", name) | ("srv", be, srv) -> counter row
    servers: dict         # (be, srv) -> server state row
    server_keys: tuple    # server state row -> (be, srv)
    hist_rows: dict       # ("fe", name) | ("be", name) -> history row

    @classmethod
    def of(cls, config: model.Config, workers: int) -> "Layout":
        rows: dict = {PROCESS_ROW: 0}
        servers: dict = {}
        for fe in config.frontends:
            rows[("fe", fe.name)] = len(rows)
        if config.stats.bind is not None:
            rows[("fe", "stats")] = len(rows)
        for be in config.backends:
            rows[("be", be.name)] = len(rows)
            for s in be.servers:
                rows[("srv", be.name, s.name)] = len(rows)
                servers[(be.name, s.name)] = len(servers)
        hist_rows = {k: i for i, k in enumerate(k for k in rows if k[0] in ("fe", "be"))}
        return cls(workers, rows, servers, tuple(servers), hist_rows)

    @property
    def columns(self) -> int:
        return self.workers + 1           # + the carried column

    def size(self) -> int:
        return self.gauges_start() * 8 + len(self.rows) * self.gauge_stride * 8

    @property
    def gauge_stride(self) -> int:
        return G_FIELDS + self.workers * W_FIELDS

    def gauges_start(self) -> int:
        """Offset of the gauges, after the history."""
        return self.hist_base() + HIST_SLOTS * (1 + len(self.hist_rows) * HIST_NFIELDS)

    def gauge_base(self, row: int) -> int:
        return self.gauges_start() + row * self.gauge_stride

    def srv_base(self, sidx: int) -> int:
        return HEADER_SLOTS + sidx * SRV_FIELDS

    def cnt_base(self, row: int, column: int) -> int:
        return (HEADER_SLOTS + len(self.servers) * SRV_FIELDS
                + (row * self.columns + column) * CNT_FIELDS)

    def hist_base(self) -> int:
        """Offset of the history: HIST_SLOTS sample times (epoch ms), then
        per history row and field a series of HIST_SLOTS cells."""
        return self.cnt_base(len(self.rows), 0)

    def hist_series(self, hrow: int, field: int) -> int:
        """Offset of the series of one field of one history row."""
        return self.hist_base() + HIST_SLOTS * (1 + hrow * HIST_NFIELDS + field)


class Table:
    """A mapped table. The master creates it; workers use the inherited one."""

    def __init__(self, layout: Layout, generation: int):
        self.layout = layout
        self.mm = mmap.mmap(-1, layout.size(), flags=mmap.MAP_SHARED,
                            prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.q = memoryview(self.mm).cast("q")
        self.cells = Cells(self.mm)       # atomic access to the same cells
        # the stick tables (farm/tables.py): their own mappings, kept by the
        # master over reloads; attached here so that workers get them
        self.sticks: dict = {}
        # one eventfd per worker slot: how a worker that freed a server
        # slot wakes the worker holding the oldest queued request
        self.wakeups = [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
                        for _ in range(layout.workers)]
        q = self.q
        q[H_MAGIC] = MAGIC
        q[H_GENERATION] = generation
        q[H_WORKERS] = layout.workers
        q[H_ROWS] = len(layout.rows)
        q[H_SERVERS] = len(layout.servers)
        q[H_START] = int(time.time())
        for row in range(len(layout.rows)):
            base = layout.gauge_base(row) + G_FIELDS
            for w in range(layout.workers):
                q[base + w * W_FIELDS + W_HEAD] = NO_TICKET

    @classmethod
    def create(cls, config: model.Config, generation: int, addresses: dict | None = None) -> "Table":
        """A new table for config with every server up at its weight, or in
        maintenance when the config says disabled.

        addresses maps (backend, server) to the (family, sockaddr) to
        connect to, or to None for a server without one (it starts in
        resolution maintenance). A server missing from it gets its address
        when the config has an IP literal, else none in the table (the
        workers then resolve the name themselves)."""
        t = cls(Layout.of(config, config.global_.workers), generation)
        now = int(time.time())
        for be in config.backends:
            checked = be.check.type is not None
            for s in be.servers:
                sidx = t.layout.servers[(be.name, s.name)]
                base = t.layout.srv_base(sidx)
                q = t.q
                q[base + S["op_up"]] = 1
                # HAProxy starts a checked server up "but will fall at the
                # first failure": health = rise.
                q[base + S["health"]] = be.check.rise if checked and s.check else 0
                q[base + S["admin"]] = ADMIN_MAINT if s.disabled else ADMIN_READY
                q[base + S["weight"]] = s.weight
                q[base + S["eff_weight"]] = s.weight * WEIGHT_SCALE
                q[base + S["check_status"]] = CS["INI"] if checked and s.check else 0
                q[base + S["check_duration"]] = -1
                q[base + S["last_change"]] = now
                q[base + S["has_check"]] = 1 if checked and s.check else 0
                key = (be.name, s.name)
                if addresses is not None and key in addresses:
                    t.set_address(t.layout.servers[key], addresses[key])
                    q[base + S_RMAINT] = 1 if addresses[key] is None else 0
                else:
                    t.set_address(t.layout.servers[key], literal_address(s.address))
                t.note_downtime(sidx, now)          # disabled: down from the start
        return t

    # -- header ----------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self.q[H_GENERATION]

    @property
    def state_version(self) -> int:
        return self.q[H_STATE_VERSION]

    @property
    def superseded(self) -> bool:
        """True once a reload has replaced this generation (its workers
        drain because a newer one serves, not because farm stops)."""
        return bool(self.q[H_SUPERSEDED])

    def mark_superseded(self) -> None:
        """Master, at a reload: before telling this generation's workers to
        drain."""
        self.q[H_SUPERSEDED] = 1

    def bump_state_version(self) -> None:
        """Master: call after writing server rows; workers re-read them."""
        self.q[H_STATE_VERSION] += 1

    # -- server state ----------------------------------------------------------

    def server_row(self, backend: str, server: str) -> int | None:
        return self.layout.servers.get((backend, server))

    def srv_get(self, sidx: int, field: str) -> int:
        return self.q[self.layout.srv_base(sidx) + S[field]]

    def srv_set(self, sidx: int, field: str, value: int) -> None:
        self.q[self.layout.srv_base(sidx) + S[field]] = value

    def note_downtime(self, sidx: int, now: int) -> None:
        """Master: after changing a server's health or admin state, start or
        stop its downtime clock. As in HAProxy, a server is down for its
        downtime column both when its checks say so and while it is in
        maintenance (down_since is the start of the current outage, 0 while
        it serves; downtime sums the outages that ended)."""
        base = self.layout.srv_base(sidx)
        q = self.q
        down = q[base + S["op_up"]] != 1 or q[base + S["admin"]] == ADMIN_MAINT
        since = q[base + S["down_since"]]
        if down and not since:
            q[base + S["down_since"]] = now
        elif not down and since:
            q[base + S["downtime"]] += max(0, now - since)
            q[base + S["down_since"]] = 0

    def srv_state(self, sidx: int) -> dict:
        base = self.layout.srv_base(sidx)
        return {name: self.q[base + i] for i, name in enumerate(SRV_FIELDS_NAMES)}

    def usable(self, sidx: int) -> tuple[bool, int]:
        """(may get new traffic, weight for the balancer) as workers apply it."""
        base = self.layout.srv_base(sidx)
        q = self.q
        admin = q[base + 2]
        up = q[base] == 1 and admin != ADMIN_MAINT and q[base + S_RMAINT] == 0
        weight = 0 if admin == ADMIN_DRAIN else q[base + 3]
        return up, weight

    # -- server addresses: a seqlock (one writer, the master) ---------------------

    def set_address(self, sidx: int, address: tuple[int, tuple] | None) -> None:
        """Master: write a server's (family, sockaddr), or None for "no
        address". The sequence cell is odd while the cells change, so a
        worker never applies half of an address."""
        base = self.layout.srv_base(sidx)
        q = self.q
        q[base + S_ADDR_SEQ] += 1
        if address is None:
            family, hi, lo, port = 0, 0, 0, 0
        else:
            family, sockaddr = address
            hi, lo = pack_ip(family, sockaddr[0])
            port = sockaddr[1]
        q[base + S["addr_family"]] = family
        q[base + S["addr_hi"]] = hi
        q[base + S["addr_lo"]] = lo
        q[base + S["addr_port"]] = port
        q[base + S_ADDR_SEQ] += 1

    def address(self, sidx: int) -> tuple[int, tuple[int, tuple] | None]:
        """(seq, address): address is (family, sockaddr), or None when the
        table has none. An odd seq means the master was writing: the caller
        keeps what it had and reads again later."""
        base = self.layout.srv_base(sidx)
        q = self.q
        seq = q[base + S_ADDR_SEQ]
        if seq & 1:
            return seq, None
        family = q[base + S["addr_family"]]
        hi, lo, port = q[base + S["addr_hi"]], q[base + S["addr_lo"]], q[base + S["addr_port"]]
        if q[base + S_ADDR_SEQ] != seq:
            return seq | 1, None
        if family == 0:
            return seq, None
        host = unpack_ip(family, hi, lo)
        return seq, (family, (host, port, 0, 0) if family == socket.AF_INET6 else (host, port))

    # -- counters --------------------------------------------------------------

    def counter_base(self, key: tuple, worker: int) -> int:
        """Offset of worker's column of the row for key (see Layout.of)."""
        return self.layout.cnt_base(self.layout.rows[key], worker)

    def write_column(self, base: int, values: array.array) -> None:
        """Worker: copy its counters (CNT_FIELDS int64: an array('q'), or
        the compiled build's typed view of one) in one go."""
        self.q[base:base + CNT_FIELDS] = values

    def read_cell(self, key: tuple, column: int, index: int) -> int:
        """One counter (index: a C_* constant) of one column of key's row."""
        return self.q[self.layout.cnt_base(self.layout.rows[key], column) + index]

    def set_carried(self, key: tuple, index: int, value: int) -> None:
        """Master: set one counter of key's carried column (the rates)."""
        self.q[self.layout.cnt_base(self.layout.rows[key], self.layout.workers) + index] = value

    def read_row(self, key: tuple) -> dict:
        """Counters of a row summed over every column (maxima maxed)."""
        row = self.layout.rows[key]
        q = self.q
        out = [0] * CNT_FIELDS
        for col in range(self.layout.columns):
            base = self.layout.cnt_base(row, col)
            for i in range(CNT_FIELDS):
                v = q[base + i]
                if CNT_NAMES[i] in MAXIMA:
                    if v > out[i]:
                        out[i] = v
                else:
                    out[i] += v
        # what all workers share is in the gauges, not in the columns
        base = self.layout.gauge_base(row)
        out[C_SCUR] = q[base + G_CUR]
        out[C_QCUR] = q[base + G_QUEUE]
        out[C_SMAX] = max(out[C_SMAX], q[base + G_MAX])
        out[C_QMAX] = max(out[C_QMAX], q[base + G_QMAX])
        return dict(zip(CNT_NAMES, out))

    # -- gauges ----------------------------------------------------------------

    def gauge_base(self, key: tuple) -> int:
        """Cell index of the G_* block of key's row."""
        return self.layout.gauge_base(self.layout.rows[key])

    def gauge_worker(self, key: tuple, worker: int) -> int:
        """Cell index of worker's W_* block of key's row."""
        return self.gauge_base(key) + G_FIELDS + worker * W_FIELDS

    def gauges(self, key: tuple) -> dict:
        """The live numbers of key's row: scur, smax, qcur, qmax."""
        base = self.gauge_base(key)
        q = self.q
        return {"scur": q[base + G_CUR], "smax": q[base + G_MAX],
                "qcur": q[base + G_QUEUE], "qmax": q[base + G_QMAX]}

    def forget_worker(self, worker: int) -> None:
        """Master, after worker died: take its part of every current number
        back (its connections and queued requests died with it), and its
        queue position. Its replacement starts from zero."""
        cells = self.cells
        q = self.q
        lay = self.layout
        for row in range(len(lay.rows)):
            base = lay.gauge_base(row)
            mine = base + G_FIELDS + worker * W_FIELDS
            for g, w in ((G_CUR, W_CUR), (G_QUEUE, W_QUEUE)):
                part = q[mine + w]
                if part:
                    cells.add(base + g, -part)
                    q[mine + w] = 0
            cells.store(mine + W_HEAD, NO_TICKET)

    # -- history -----------------------------------------------------------------
    #
    # Sample number n (from 1) lives in slot n % HIST_SLOTS; the header's
    # H_HIST_SEQ is the number of the latest complete sample. The master
    # writes a sample's cells, then its time, then bumps H_HIST_SEQ. The next
    # write goes to the slot of the oldest sample, so a reader leaves that
    # one out, and after reading checks H_HIST_SEQ again to drop what more
    # writes (a reader stalled for seconds) may have overwritten.

    def hist_write(self, time_ms: int, values: dict) -> None:
        """Master: append one sample. values: history row key -> HIST_NFIELDS
        ints (a row left out gets zeros)."""
        lay = self.layout
        q = self.q
        seq = q[H_HIST_SEQ] + 1
        slot = seq % HIST_SLOTS
        zeros = (0,) * HIST_NFIELDS
        for key, hrow in lay.hist_rows.items():
            base = lay.hist_series(hrow, 0) + slot
            for i, v in enumerate(values.get(key, zeros)):
                q[base + i * HIST_SLOTS] = v
        q[lay.hist_base() + slot] = time_ms
        q[H_HIST_SEQ] = seq

    def hist_read(self, since: int = 0) -> tuple[int, list, dict]:
        """(seq, times, series) of the samples after number `since` that the
        ring still holds: times in epoch ms, oldest first; series maps each
        history row key to {field name: list of ints} aligned with times."""
        lay = self.layout
        q = self.q
        seq = q[H_HIST_SEQ]
        first = max(since + 1, seq - HIST_SLOTS + 2, 1)

        def window(base: int) -> list:
            if first > seq:
                return []
            a, b = first % HIST_SLOTS, seq % HIST_SLOTS
            if a <= b:
                return q[base + a:base + b + 1].tolist()
            return q[base + a:base + HIST_SLOTS].tolist() + q[base:base + b + 1].tolist()

        times = window(lay.hist_base())
        series = {key: {name: window(lay.hist_series(hrow, i)) for i, name in enumerate(HIST_FIELDS)}
                  for key, hrow in lay.hist_rows.items()}
        lost = q[H_HIST_SEQ] - HIST_SLOTS + 2 - first     # samples overwritten meanwhile
        if lost > 0:
            times = times[lost:]
            series = {k: {f: v[lost:] for f, v in fs.items()} for k, fs in series.items()}
        return seq, times, series

    def hist_carry(self, old: "Table") -> None:
        """Master, on reload: take over old's history (the rows of the same
        name; a new row's past reads as zeros)."""
        lay, olay = self.layout, old.layout
        n = HIST_SLOTS * HIST_NFIELDS
        self.q[H_HIST_SEQ] = old.q[H_HIST_SEQ]
        nb, ob = lay.hist_base(), olay.hist_base()
        self.q[nb:nb + HIST_SLOTS] = old.q[ob:ob + HIST_SLOTS]
        for key, hrow in lay.hist_rows.items():
            orow = olay.hist_rows.get(key)
            if orow is not None:
                nb, ob = lay.hist_series(hrow, 0), olay.hist_series(orow, 0)
                self.q[nb:nb + n] = old.q[ob:ob + n]

    # -- reload ----------------------------------------------------------------

    def carry_from(self, old: "Table") -> None:
        """Master, on reload: copy server state and add counter totals of the
        rows that exist in both (matched by frontend/backend/server name)."""
        for key, sidx in self.layout.servers.items():
            osidx = old.layout.servers.get(key)
            if osidx is None:
                continue
            ob, nb = old.layout.srv_base(osidx), self.layout.srv_base(sidx)
            for name in ("op_up", "health", "admin", "check_status", "check_code",
                         "check_duration", "last_change", "downtime", "down_since",
                         "chkfail", "chkdown", "checks", "up_since"):
                self.q[nb + S[name]] = old.q[ob + S[name]]
        for key in self.layout.rows:
            if key in old.layout.rows:
                self.add_carried(key, old.read_row(key))
                g = old.gauges(key)
                base = self.gauge_base(key)
                self.cells.raise_to(base + G_MAX, g["smax"])
                self.cells.raise_to(base + G_QMAX, g["qmax"])
        self.hist_carry(old)
        self.bump_state_version()

    def add_carried(self, key: tuple, totals: dict) -> None:
        """Add totals into the carried column of key (gauges are live values
        of running workers and are not carried)."""
        base = self.layout.cnt_base(self.layout.rows[key], self.layout.workers)
        q = self.q
        for i, name in enumerate(CNT_NAMES):
            if name in GAUGES:
                continue
            v = totals.get(name, 0)
            if name in MAXIMA:
                q[base + i] = max(q[base + i], v)
            else:
                q[base + i] += v

    def inherited_fds(self) -> list[int]:
        """Descriptors the workers of this table must keep after fork."""
        return list(self.wakeups)

    def close(self) -> None:
        for fd in self.wakeups:
            os.close(fd)
        self.wakeups = []
        self.cells.release()
        self.q.release()
        self.mm.close()
