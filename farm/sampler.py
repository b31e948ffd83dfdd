"""The stats figures that need history, computed by the master from the
counters in shared memory: HAProxy's per-second rates (rate, req_rate,
conn_rate and their maxima) and its average times over the last sessions
(qtime, ctime, rtime, ttime).

Workers only count totals (stot, req_tot, conn_tot, and per timed session
the sums of its queue, connect, response and total times) and publish them
every COUNTER_FLUSH_INTERVAL, with the CLOCK_MONOTONIC time of the flush in
their column of the process row (shm "flushed_ms"). The master calls
StatsSampler.sample() about once a second:

- rates: for each worker, the counts added since the previous sample are
  divided by that worker's own time between the two flushes, so a rate is
  exact for the window it covers whatever the phase between the master's
  sampling and the workers' flushes; the workers' rates are summed. A
  worker that started after the previous sample (or before the first one)
  counted from zero since its start (shm "started_ms"): its first window
  begins there, so the traffic of its first second is not lost.
- times: the sums and session counts added since the previous sample are
  kept per row, for the last AVG_HISTORY samples that saw sessions; the
  average is taken over the most recent of them that hold AVG_SESSIONS
  sessions (HAProxy averages its last 1024), or over all of them when
  there are fewer. A row without new sessions keeps its averages, as
  HAProxy's do.

Results go, rounded, into the carried column of each row: rates and
averages are gauges (not carried over a reload: the new generation's
sampler starts again), the maxima are carried like smax. Frontends report
rate (sessions), req_rate and conn_rate; backends and servers rate and the
times. The process row gets the sums of the frontends' rates (show info's
SessRate and ConnRate).

Each sample also goes into the history ring of the table (shm.py,
Table.hist_write) for every frontend and backend: session and request
rates, the rates of responses by class, and the sessions timed in the
sample with their response and total time sums. The stats page draws its
graphs from it. The first sample of a sampler has no window yet and
writes no history (a reload leaves no false dip at zero).
"""

from __future__ import annotations

import time
from collections import deque

from farm import shm

AVG_SESSIONS = 1024      # HAProxy's window for qtime/ctime/rtime/ttime
AVG_HISTORY = 300        # samples (with sessions) kept per row
MIN_FIRST_WINDOW_MS = 500  # a worker's first window, from its start, is at least this long

# (total counted by workers, rate it gives, maximum of that rate)
_RATES = ((shm.C_STOT, shm.C_RATE, shm.C_RATE_MAX),
          (shm.C_REQ_TOT, shm.C_REQ_RATE, shm.C_REQ_RATE_MAX),
          (shm.C_CONN_TOT, shm.C_CONN_RATE, shm.C_CONN_RATE_MAX))
# totals whose rates only go to the history (responses by class, in the
# order of shm.HIST_FIELDS)
_HIST_RATES = (shm.C_HRSP_1XX, shm.C_HRSP_2XX, shm.C_HRSP_3XX, shm.C_HRSP_4XX,
               shm.C_HRSP_5XX, shm.C_HRSP_OTHER)
# timed sessions, then (sum of a time, its average)
_TIMES = ((shm.C_QTIME_SUM, shm.C_QTIME_AVG), (shm.C_CTIME_SUM, shm.C_CTIME_AVG),
          (shm.C_RTIME_SUM, shm.C_RTIME_AVG), (shm.C_TTIME_SUM, shm.C_TTIME_AVG))
_READ = (tuple(src for src, _, _ in _RATES) + _HIST_RATES + (shm.C_TIMED,)
         + tuple(src for src, _ in _TIMES))
_N_RATES = len(_RATES) + len(_HIST_RATES)      # rates computed per row
_N_GAUGES = len(_RATES)                         # of which written as shm gauges
_ZEROS: dict = {}                    # baseline of a worker that just started: all 0
_ZERO_TOTALS = (0,) * len(_READ)


class StatsSampler:
    """Rates and recent averages of one shm table (one per config
    generation: a reload makes a new sampler for the new table). Holds, per
    worker column, the last flush seen and the totals read then, and per
    row the recent time sums; no I/O beyond the table."""

    def __init__(self, table: shm.Table):
        self.table = table
        self.keys = [k for k in table.layout.rows if k != shm.PROCESS_ROW]
        self.frontends = [k for k in self.keys if k[0] == "fe"]
        # column -> (flushed_ms, {row key: totals in _READ order}); the
        # totals are _ZEROS at a worker's start
        self.prev: dict[int, tuple[int, dict]] = {}
        # column -> {row key: rates} of its last window
        self.last_rates: dict[int, dict] = {}
        # row key -> deque of [timed, qsum, csum, rsum, tsum] per sample
        self.history: dict[tuple, deque] = {k: deque(maxlen=AVG_HISTORY) for k in self.keys}

    def _column(self, col: int) -> tuple[dict, dict]:
        """(rates, time deltas) of worker column col since its previous
        sampled flush, or since the worker started when that was later. A
        worker that has not flushed again keeps its last rates and adds no
        time; one that never flushed, or whose counts went back without a
        newer start (a worker respawned into the slot), gives nothing this
        time."""
        t = self.table
        ms = t.read_cell(shm.PROCESS_ROW, col, shm.C_FLUSHED_MS)
        if ms == 0:
            return {}, {}
        prev = self.prev.get(col)
        started = t.read_cell(shm.PROCESS_ROW, col, shm.C_STARTED_MS)
        if started and (prev is None or started > prev[0]):
            prev = (started, _ZEROS)      # a worker new since the last look
            if ms - started < MIN_FIRST_WINDOW_MS:
                # too short a window would overstate a burst as a rate:
                # the next sample covers it from the start
                return {}, {}
        if prev is not None and ms <= prev[0]:
            return self.last_rates.get(col, {}), {}
        totals = {k: tuple(t.read_cell(k, col, i) for i in _READ) for k in self.keys}
        self.prev[col] = (ms, totals)
        if prev is None:
            return {}, {}
        dt = (ms - prev[0]) / 1000.0
        rates, deltas = {}, {}
        for k, now in totals.items():
            old = _ZERO_TOTALS if prev[1] is _ZEROS else prev[1].get(k)
            if old is None or any(n < o for n, o in zip(now, old)):
                continue            # a new row, or counts that started again
            d = [n - o for n, o in zip(now, old)]
            rates[k] = [x / dt for x in d[:_N_RATES]]
            if d[_N_RATES]:
                deltas[k] = d[_N_RATES:]
        self.last_rates[col] = rates
        return rates, deltas

    def sample(self, time_ms: int | None = None) -> None:
        """Read every worker column, write each row's rates, maxima and
        recent averages, and append a sample to the history (stamped
        time_ms, epoch milliseconds, now by default)."""
        t = self.table
        carried = t.layout.workers
        rates = {k: [0.0] * _N_RATES for k in self.keys}
        times = {k: [0] * (1 + len(_TIMES)) for k in self.keys}
        windows = 0              # worker columns that gave rates
        for col in range(t.layout.workers):
            col_rates, col_times = self._column(col)
            if col_rates:
                windows += 1
            for k, rs in col_rates.items():
                acc = rates[k]
                for i, r in enumerate(rs):
                    acc[i] += r
            for k, ds in col_times.items():
                acc = times[k]
                for i, d in enumerate(ds):
                    acc[i] += d
        process = [0.0] * _N_RATES
        for k in self.frontends:
            for i, r in enumerate(rates[k]):
                process[i] += r
        rates[shm.PROCESS_ROW] = process
        for k, rs in rates.items():
            for (_, rate_i, max_i), r in zip(_RATES, rs):
                v = int(r + 0.5)
                t.set_carried(k, rate_i, v)
                if v > t.read_cell(k, carried, max_i):
                    t.set_carried(k, max_i, v)
        for k, ds in times.items():
            if ds[0]:
                self._average(k, ds)
        if windows:
            self._history(rates, times, int(time.time() * 1000) if time_ms is None else time_ms)

    def _history(self, rates: dict, times: dict, time_ms: int) -> None:
        """Append this sample to the table's history (shm.HIST_FIELDS)."""
        scale = shm.HIST_RATE_SCALE
        values = {}
        for key in self.table.layout.hist_rows:
            r = rates[key]
            timed, _, _, rsum, tsum = times[key]
            values[key] = ([int(r[0] * scale + 0.5), int(r[1] * scale + 0.5)]
                           + [int(x * scale + 0.5) for x in r[_N_GAUGES:]]
                           + [timed, rsum, tsum])
        self.table.hist_write(time_ms, values)

    def _average(self, key: tuple, sample: list) -> None:
        """Add a sample with sessions to key's history; write the averages
        of the most recent samples holding AVG_SESSIONS sessions."""
        hist = self.history[key]
        hist.append(sample)
        acc = [0] * len(sample)
        for s in reversed(hist):
            for i, v in enumerate(s):
                acc[i] += v
            if acc[0] >= AVG_SESSIONS:
                break
        for (_, avg_i), total in zip(_TIMES, acc[1:]):
            self.table.set_carried(key, avg_i, total // acc[0])
