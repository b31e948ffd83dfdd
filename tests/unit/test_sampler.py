"""farm/sampler.py: per-second rates and recent time averages from the
workers' published totals, on a real shm table written the way workers
write it."""

import array

from farm import shm
from farm.loader import load_text
from farm.sampler import AVG_SESSIONS, StatsSampler

CFG = """
[global]
workers = 2
[defaults]
mode = "http"
[frontends.web]
bind = "127.0.0.1:1"
default_backend = "app"
[frontends.api]
bind = "127.0.0.1:2"
default_backend = "app"
[backends.app]
[[backends.app.servers]]
name = "s1"
address = "127.0.0.1:3"
"""

FE, FE2, BE, SRV = ("fe", "web"), ("fe", "api"), ("be", "app"), ("srv", "app", "s1")


def sampled_table():
    """A new shm table of CFG and a sampler on it."""
    t = shm.Table.create(load_text(CFG), 1)
    return t, StatsSampler(t)


def publish(t, worker, flushed_ms, counts, times=None, started_ms=0):
    """What a worker's flush does: its column of every row, and its flush
    time (and its start, unknown when 0) in the process row. counts: {row
    key: (stot, req_tot, conn_tot)}; times: {row key: (timed, qtime_sum,
    ctime_sum, rtime_sum, ttime_sum)}."""
    times = times or {}
    for key in t.layout.rows:
        vals = [0] * shm.CNT_FIELDS
        if key == shm.PROCESS_ROW:
            vals[shm.C_FLUSHED_MS] = flushed_ms
            vals[shm.C_STARTED_MS] = started_ms
        else:
            vals[shm.C_STOT], vals[shm.C_REQ_TOT], vals[shm.C_CONN_TOT] = counts.get(key, (0, 0, 0))
            (vals[shm.C_TIMED], vals[shm.C_QTIME_SUM], vals[shm.C_CTIME_SUM], vals[shm.C_RTIME_SUM],
             vals[shm.C_TTIME_SUM]) = times.get(key, (0, 0, 0, 0, 0))
        t.write_column(t.counter_base(key, worker), array.array("q", vals))


def averages(t, key):
    r = t.read_row(key)
    return r["qtime_avg"], r["ctime_avg"], r["rtime_avg"], r["ttime_avg"]


def test_each_worker_is_divided_by_its_own_flush_interval_and_summed():
    t, r = sampled_table()
    publish(t, 0, 10_000, {FE: (100, 300, 100), BE: (100, 0, 0), SRV: (100, 0, 0)})
    publish(t, 1, 10_100, {FE: (50, 50, 50)})
    r.sample()
    assert t.read_row(FE)["rate"] == 0          # one flush seen: no window yet
    # worker 0: +200 sessions in 0.8 s = 250/s; worker 1: +120 in 1.2 s = 100/s
    publish(t, 0, 10_800, {FE: (300, 900, 300), BE: (300, 0, 0), SRV: (300, 0, 0)})
    publish(t, 1, 11_300, {FE: (170, 170, 170)})
    r.sample()
    fe = t.read_row(FE)
    assert fe["rate"] == 350 and fe["conn_rate"] == 350
    assert fe["req_rate"] == 750 + 100            # 600 / 0.8 + 120 / 1.2
    assert t.read_row(BE)["rate"] == 250 and t.read_row(SRV)["rate"] == 250
    assert fe["rate_max"] == 350 and fe["req_rate_max"] == 850


def test_rates_fall_back_and_maxima_stay():
    t, r = sampled_table()
    publish(t, 0, 1_000, {FE: (0, 0, 0)})
    r.sample()
    publish(t, 0, 2_000, {FE: (500, 500, 500)})
    r.sample()
    publish(t, 0, 3_000, {FE: (510, 510, 510)})
    r.sample()
    fe = t.read_row(FE)
    assert (fe["rate"], fe["rate_max"]) == (10, 500)


def test_process_row_sums_the_frontends():
    t, r = sampled_table()
    publish(t, 0, 1_000, {FE: (0, 0, 0), FE2: (0, 0, 0)})
    r.sample()
    publish(t, 0, 2_000, {FE: (30, 30, 40), FE2: (12, 12, 12)})
    r.sample()
    p = t.read_row(shm.PROCESS_ROW)
    assert (p["rate"], p["conn_rate"]) == (42, 52)
    assert (p["rate_max"], p["conn_rate_max"]) == (42, 52)


def test_a_worker_that_did_not_flush_again_keeps_its_last_rate():
    t, r = sampled_table()
    publish(t, 0, 1_000, {FE: (0, 0, 0)})
    r.sample()
    publish(t, 0, 2_000, {FE: (40, 0, 0)})
    r.sample()
    r.sample()                                  # no new flush in between
    assert t.read_row(FE)["rate"] == 40


def test_a_respawned_worker_counting_from_zero_gives_no_negative_rate():
    t, r = sampled_table()
    publish(t, 0, 1_000, {FE: (1000, 1000, 1000)})
    r.sample()
    publish(t, 0, 2_000, {FE: (5, 5, 5)})        # a new worker in the slot
    r.sample()
    assert t.read_row(FE)["rate"] == 0
    publish(t, 0, 3_000, {FE: (25, 25, 25)})
    r.sample()
    assert t.read_row(FE)["rate"] == 20


def test_a_worker_that_never_flushed_counts_for_nothing():
    t, r = sampled_table()
    r.sample()
    r.sample()
    assert t.read_row(FE)["rate"] == 0


def test_maxima_survive_a_reload_and_rates_do_not():
    old, r = sampled_table()
    publish(old, 0, 1_000, {FE: (0, 0, 0)})
    r.sample()
    publish(old, 0, 2_000, {FE: (77, 77, 77)})
    r.sample()
    new = shm.Table.create(load_text(CFG), 2)
    new.carry_from(old)
    fe = new.read_row(FE)
    assert (fe["rate"], fe["rate_max"], fe["req_rate_max"]) == (0, 77, 77)


def test_times_average_the_new_sessions_of_all_workers():
    t, r = sampled_table()
    # lifetime totals before the sampler's first look do not count
    publish(t, 0, 1_000, {}, {BE: (100, 0, 100_000, 100_000, 100_000)})
    publish(t, 1, 1_000, {}, {BE: (0, 0, 0, 0, 0)})
    r.sample()
    assert averages(t, BE) == (0, 0, 0, 0)
    publish(t, 0, 2_000, {}, {BE: (110, 10, 100_010, 100_200, 100_400)})    # 10 sessions
    publish(t, 1, 2_000, {}, {BE: (30, 0, 90, 600, 1_200)})                 # 30 sessions
    r.sample()
    # (10 + 30) sessions: q 10/40, c 100/40, r 800/40, t 1600/40
    assert averages(t, BE) == (0, 2, 20, 40)


def test_times_cover_the_last_1024_sessions_and_stay_when_idle():
    t, r = sampled_table()
    publish(t, 0, 1_000, {}, {SRV: (0, 0, 0, 0, 0)})
    r.sample()
    # 1024 slow sessions (rtime 100 ms), then 1024 fast ones (rtime 2 ms)
    publish(t, 0, 2_000, {}, {SRV: (1024, 0, 0, 102_400, 102_400)})
    r.sample()
    assert averages(t, SRV)[2] == 100
    publish(t, 0, 3_000, {}, {SRV: (AVG_SESSIONS * 2, 0, 0, 102_400 + 2048, 102_400 + 2048)})
    r.sample()
    assert averages(t, SRV)[2] == 2            # the old ones are out of the window
    publish(t, 0, 4_000, {}, {SRV: (AVG_SESSIONS * 2, 0, 0, 102_400 + 2048, 102_400 + 2048)})
    r.sample()
    assert averages(t, SRV)[2] == 2            # no new session: unchanged


def test_times_of_a_few_sessions_average_all_of_them():
    t, r = sampled_table()
    publish(t, 0, 1_000, {}, {BE: (0, 0, 0, 0, 0)})
    r.sample()
    publish(t, 0, 2_000, {}, {BE: (1, 0, 0, 10, 10)})
    r.sample()
    publish(t, 0, 3_000, {}, {BE: (2, 0, 0, 40, 40)})
    r.sample()
    assert averages(t, BE)[2] == 20            # (10 + 30) / 2


def test_a_worker_without_a_new_flush_adds_no_time_twice():
    t, r = sampled_table()
    publish(t, 0, 1_000, {}, {BE: (0, 0, 0, 0, 0)})
    publish(t, 1, 1_000, {}, {BE: (0, 0, 0, 0, 0)})
    r.sample()
    publish(t, 0, 2_000, {}, {BE: (1, 0, 0, 100, 100)})
    publish(t, 1, 2_000, {}, {BE: (1, 0, 0, 10, 10)})
    r.sample()
    assert averages(t, BE)[2] == 55
    publish(t, 1, 3_000, {}, {BE: (2, 0, 0, 20, 20)})   # worker 0 did not flush
    r.sample()
    assert averages(t, BE)[2] == 40            # (100 + 10 + 10) / 3


def test_a_new_worker_counts_from_its_start():
    """The traffic of a worker's first second is not lost: its counts
    started at zero when it started."""
    t, r = sampled_table()
    publish(t, 0, 1_800, {FE: (80, 80, 80)}, {BE: (4, 0, 4, 40, 80)}, started_ms=1_000)
    r.sample()
    fe = t.read_row(FE)
    assert (fe["rate"], fe["rate_max"]) == (100, 100)       # 80 in 0.8 s
    assert averages(t, BE) == (0, 1, 10, 20)


def test_a_short_first_window_waits_for_the_next_sample():
    t, r = sampled_table()
    publish(t, 0, 1_200, {FE: (50, 50, 50)}, started_ms=1_000)
    r.sample()
    assert t.read_row(FE)["rate_max"] == 0        # 0.2 s would say 250/s
    publish(t, 0, 2_000, {FE: (100, 100, 100)}, started_ms=1_000)
    r.sample()
    assert t.read_row(FE)["rate_max"] == 100      # 100 in 1 s


def test_a_worker_started_since_the_last_sample_counts_from_its_start():
    t, r = sampled_table()
    publish(t, 0, 2_000, {FE: (1000, 1000, 1000)}, started_ms=1_000)
    r.sample()
    publish(t, 0, 4_000, {FE: (30, 30, 30)}, started_ms=3_000)    # respawned at 3 s
    r.sample()
    assert t.read_row(FE)["rate"] == 30
