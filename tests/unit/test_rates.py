"""farm/rates.py: per-second rates from the workers' published totals, on a
real shm table written the way workers write it."""

import array

from farm import shm
from farm.loader import load_text
from farm.rates import RateSampler

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


def publish(t, worker, flushed_ms, counts):
    """What a worker's flush does: its column of every row, and its flush
    time in the process row. counts: {row key: (stot, req_tot, conn_tot)}."""
    for key in t.layout.rows:
        vals = [0] * shm.CNT_FIELDS
        if key == shm.PROCESS_ROW:
            vals[shm.C_FLUSHED_MS] = flushed_ms
        else:
            vals[shm.C_STOT], vals[shm.C_REQ_TOT], vals[shm.C_CONN_TOT] = counts.get(key, (0, 0, 0))
        t.write_column(t.counter_base(key, worker), array.array("q", vals))


def test_each_worker_is_divided_by_its_own_flush_interval_and_summed():
    t = shm.Table.create(load_text(CFG), 1)
    r = RateSampler(t)
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
    t = shm.Table.create(load_text(CFG), 1)
    r = RateSampler(t)
    publish(t, 0, 1_000, {FE: (0, 0, 0)})
    r.sample()
    publish(t, 0, 2_000, {FE: (500, 500, 500)})
    r.sample()
    publish(t, 0, 3_000, {FE: (510, 510, 510)})
    r.sample()
    fe = t.read_row(FE)
    assert (fe["rate"], fe["rate_max"]) == (10, 500)


def test_process_row_sums_the_frontends():
    t = shm.Table.create(load_text(CFG), 1)
    r = RateSampler(t)
    publish(t, 0, 1_000, {FE: (0, 0, 0), FE2: (0, 0, 0)})
    r.sample()
    publish(t, 0, 2_000, {FE: (30, 30, 40), FE2: (12, 12, 12)})
    r.sample()
    p = t.read_row(shm.PROCESS_ROW)
    assert (p["rate"], p["conn_rate"]) == (42, 52)
    assert (p["rate_max"], p["conn_rate_max"]) == (42, 52)


def test_a_worker_that_did_not_flush_again_keeps_its_last_rate():
    t = shm.Table.create(load_text(CFG), 1)
    r = RateSampler(t)
    publish(t, 0, 1_000, {FE: (0, 0, 0)})
    r.sample()
    publish(t, 0, 2_000, {FE: (40, 0, 0)})
    r.sample()
    r.sample()                                  # no new flush in between
    assert t.read_row(FE)["rate"] == 40


def test_a_respawned_worker_counting_from_zero_gives_no_negative_rate():
    t = shm.Table.create(load_text(CFG), 1)
    r = RateSampler(t)
    publish(t, 0, 1_000, {FE: (1000, 1000, 1000)})
    r.sample()
    publish(t, 0, 2_000, {FE: (5, 5, 5)})        # a new worker in the slot
    r.sample()
    assert t.read_row(FE)["rate"] == 0
    publish(t, 0, 3_000, {FE: (25, 25, 25)})
    r.sample()
    assert t.read_row(FE)["rate"] == 20


def test_a_worker_that_never_flushed_counts_for_nothing():
    t = shm.Table.create(load_text(CFG), 1)
    r = RateSampler(t)
    r.sample()
    r.sample()
    assert t.read_row(FE)["rate"] == 0


def test_maxima_survive_a_reload_and_rates_do_not():
    old = shm.Table.create(load_text(CFG), 1)
    r = RateSampler(old)
    publish(old, 0, 1_000, {FE: (0, 0, 0)})
    r.sample()
    publish(old, 0, 2_000, {FE: (77, 77, 77)})
    r.sample()
    new = shm.Table.create(load_text(CFG), 2)
    new.carry_from(old)
    fe = new.read_row(FE)
    assert (fe["rate"], fe["rate_max"], fe["req_rate_max"]) == (0, 77, 77)
