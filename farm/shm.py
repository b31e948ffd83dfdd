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

One writer per cell, no locks: readers sum the columns of a row. An int64
store is a single aligned 8-byte write on x86-64 and arm64, so a reader sees
the old or the new value, never a torn one. Workers detect server-state
changes by comparing the header's state version (bumped by the master after
it wrote the rows) with the one they last applied.
"""

from __future__ import annotations

import array
import mmap
import time
from dataclasses import dataclass

from farm import model

MAGIC = 0x6661726D5348_01   # "farmSH" v1

# header cells
H_MAGIC, H_GENERATION, H_STATE_VERSION, H_WORKERS, H_ROWS, H_SERVERS, H_START = range(7)
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
)
SRV_FIELDS = len(SRV_FIELDS_NAMES)
S = {name: i for i, name in enumerate(SRV_FIELDS_NAMES)}

# Effective weights are kept x16 (HAProxy's BE_WEIGHT_SCALE) so that a
# slowstart ramp has steps even for a weight of 1; workers divide a
# backend's weights by their gcd, so outside a ramp nothing grows.
WEIGHT_SCALE = 16

ADMIN_READY, ADMIN_DRAIN, ADMIN_MAINT = 0, 1, 2
ADMIN_NAMES = ("ready", "drain", "maint")

# HAProxy's check status codes (show stat check_status)
CHECK_STATUSES = ("", "INI", "L4OK", "L4TOUT", "L4CON", "L7OK", "L7STS", "L7RSP",
                  "L7TOUT", "SOCKERR", "L6OK")
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


@dataclass(frozen=True)
class Layout:
    """Where each row lives, computed from a config (pure, no mapping)."""

    workers: int
    rows: dict            # ("fe", name) | ("be", name) | ("srv", be, srv) -> counter row
    servers: dict         # (be, srv) -> server state row
    server_keys: tuple    # server state row -> (be, srv)

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
        return cls(workers, rows, servers, tuple(servers))

    @property
    def columns(self) -> int:
        return self.workers + 1           # + the carried column

    def size(self) -> int:
        cells = HEADER_SLOTS + len(self.servers) * SRV_FIELDS + len(self.rows) * self.columns * CNT_FIELDS
        return cells * 8

    def srv_base(self, sidx: int) -> int:
        return HEADER_SLOTS + sidx * SRV_FIELDS

    def cnt_base(self, row: int, column: int) -> int:
        return (HEADER_SLOTS + len(self.servers) * SRV_FIELDS
                + (row * self.columns + column) * CNT_FIELDS)


class Table:
    """A mapped table. The master creates it; workers use the inherited one."""

    def __init__(self, layout: Layout, generation: int):
        self.layout = layout
        self.mm = mmap.mmap(-1, layout.size(), flags=mmap.MAP_SHARED,
                            prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.q = memoryview(self.mm).cast("q")
        q = self.q
        q[H_MAGIC] = MAGIC
        q[H_GENERATION] = generation
        q[H_WORKERS] = layout.workers
        q[H_ROWS] = len(layout.rows)
        q[H_SERVERS] = len(layout.servers)
        q[H_START] = int(time.time())

    @classmethod
    def create(cls, config: model.Config, generation: int) -> "Table":
        """A new table for config with every server up at its weight, or in
        maintenance when the config says disabled."""
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
                t.note_downtime(sidx, now)          # disabled: down from the start
        return t

    # -- header ----------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self.q[H_GENERATION]

    @property
    def state_version(self) -> int:
        return self.q[H_STATE_VERSION]

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
        up = q[base] == 1 and admin != ADMIN_MAINT
        weight = 0 if admin == ADMIN_DRAIN else q[base + 3]
        return up, weight

    # -- counters --------------------------------------------------------------

    def counter_base(self, key: tuple, worker: int) -> int:
        """Offset of worker's column of the row for key (see Layout.of)."""
        return self.layout.cnt_base(self.layout.rows[key], worker)

    def write_column(self, base: int, values: array.array) -> None:
        """Worker: copy its counters (an array('q') of CNT_FIELDS) in one go."""
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
        return dict(zip(CNT_NAMES, out))

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

    def close(self) -> None:
        self.q.release()
        self.mm.close()
