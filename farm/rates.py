"""Per-second rates for the stats (HAProxy's rate, req_rate, conn_rate and
their maxima), computed by the master from the counters in shared memory.

Workers only count totals (stot, req_tot, conn_tot) and publish them every
COUNTER_FLUSH_INTERVAL with the CLOCK_MONOTONIC time of the flush in their
column of the process row (shm "flushed_ms"). The master calls
RateSampler.sample() about once a second: for each worker, the counts
added since the previous sample are divided by that worker's own time
between the two flushes, so a rate is exact for the window it covers
whatever the phase between the master's sampling and the workers'
flushes. The per-worker rates are summed and written, rounded, into the
carried column of each row (rate gauges are not carried over a reload;
the maxima are, like smax).

Which rows use which rate follows HAProxy: frontends report rate (sessions),
req_rate and conn_rate; backends and servers report rate. The process row
gets the sums over the frontends: show info's SessRate and ConnRate.
"""

from __future__ import annotations

from farm import shm

# (total counted by workers, rate it gives, maximum of that rate)
_SOURCES = ((shm.C_STOT, shm.C_RATE, shm.C_RATE_MAX),
            (shm.C_REQ_TOT, shm.C_REQ_RATE, shm.C_REQ_RATE_MAX),
            (shm.C_CONN_TOT, shm.C_CONN_RATE, shm.C_CONN_RATE_MAX))


class RateSampler:
    """Rates of one shm table (one per config generation: a reload makes a
    new sampler for the new table). Holds, per worker column, the last
    flush seen and the totals read then; no I/O beyond the table."""

    def __init__(self, table: shm.Table):
        self.table = table
        self.keys = [k for k in table.layout.rows if k != shm.PROCESS_ROW]
        self.frontends = [k for k in self.keys if k[0] == "fe"]
        # column -> (flushed_ms, {row key: (stot, req_tot, conn_tot)})
        self.prev: dict[int, tuple[int, dict]] = {}
        # column -> {row key: (rate, req_rate, conn_rate)} of its last window
        self.last: dict[int, dict] = {}

    def _column_rates(self, col: int) -> dict:
        """Rates of worker column col over the window since its previous
        sampled flush. A column whose worker has not flushed again keeps
        its last rates; one that never flushed, or whose counts went back
        (a worker respawned into the slot), gives none this time."""
        t = self.table
        ms = t.read_cell(shm.PROCESS_ROW, col, shm.C_FLUSHED_MS)
        prev = self.prev.get(col)
        if ms == 0:
            return {}
        if prev is not None and ms <= prev[0]:
            return self.last.get(col, {})
        totals = {k: tuple(t.read_cell(k, col, src) for src, _, _ in _SOURCES) for k in self.keys}
        self.prev[col] = (ms, totals)
        if prev is None:
            return {}
        dt = (ms - prev[0]) / 1000.0
        rates = {}
        for k, now in totals.items():
            old = prev[1].get(k)
            if old is None:
                continue
            rates[k] = tuple((n - o) / dt if n >= o else 0.0 for n, o in zip(now, old))
        self.last[col] = rates
        return rates

    def sample(self) -> None:
        """Read every worker column, write each row's rates and maxima."""
        t = self.table
        sums = {k: [0.0, 0.0, 0.0] for k in self.keys}
        for col in range(t.layout.workers):
            for k, rs in self._column_rates(col).items():
                acc = sums[k]
                for i, r in enumerate(rs):
                    acc[i] += r
        process = [0.0, 0.0, 0.0]
        for k in self.frontends:
            for i, r in enumerate(sums[k]):
                process[i] += r
        sums[shm.PROCESS_ROW] = process
        for k, rs in sums.items():
            for (_, rate_i, max_i), r in zip(_SOURCES, rs):
                v = int(r + 0.5)
                t.set_carried(k, rate_i, v)
                if v > t.read_cell(k, t.layout.workers, max_i):
                    t.set_carried(k, max_i, v)
