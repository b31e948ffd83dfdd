"""The stats page's data and markup: the history ring in shm (written by the
sampler, read by the page's JSON endpoint, carried over a reload) and the
HTML that the page's script works on (farm/stats_page.py)."""

from __future__ import annotations

import array
import json
import re

import pytest

from farm import loader, shm, stats, stats_page
from farm.sampler import StatsSampler
from workers import stats as wstats

CFG = """
[global]
workers = 2
[stats]
bind = "127.0.0.1:8404"
[defaults]
mode = "http"
[frontends.web]
bind = "127.0.0.1:1"
default_backend = "app"
[backends.app]
[backends.app.check]
type = "http"
rise = 2
fall = 3
[[backends.app.servers]]
name = "s1"
address = "127.0.0.1:3"
[[backends.app.servers]]
name = "s2"
address = "127.0.0.1:4"
backup = true
[backends.db]
mode = "tcp"
[[backends.db.servers]]
name = "d1"
address = "127.0.0.1:5"
"""
FE, BE = ("fe", "web"), ("be", "app")
PROC = {"pid": 1, "start_time": 1_800_000_000, "workers": 2, "maxconn": 100, "node": "lb1",
        "version": "0.1.0", "release_date": "", "stopping": 0, "dropped_logs": 0,
        "listeners": 2, "now": 1_800_000_100}


@pytest.fixture
def table():
    t = shm.Table.create(loader.load_text(CFG, "t.toml"), 1)
    yield t
    t.close()


def sample_values(n: int) -> tuple:
    """A recognisable sample: every field of sample n is n*10 + field."""
    return tuple(n * 10 + i for i in range(shm.HIST_NFIELDS))


def write_samples(t: shm.Table, first: int, last: int) -> None:
    for n in range(first, last + 1):
        t.hist_write(n * 1000, {FE: sample_values(n), BE: sample_values(-n)})


# -- the ring ------------------------------------------------------------------------------


def test_history_rows_are_the_frontends_and_backends(table):
    assert set(table.layout.hist_rows) == {("fe", "web"), ("fe", "stats"), ("be", "app"), ("be", "db")}


def test_history_ring_keeps_the_last_samples_in_order(table):
    assert table.hist_read() == (0, [], {k: {f: [] for f in shm.HIST_FIELDS}
                                         for k in table.layout.hist_rows})
    write_samples(table, 1, 5)
    seq, times, series = table.hist_read()
    assert seq == 5 and times == [1000, 2000, 3000, 4000, 5000]
    assert series[FE]["req"] == [sample_values(n)[1] for n in range(1, 6)]
    assert series[BE]["ttime"] == [sample_values(-n)[-1] for n in range(1, 6)]
    assert series[("be", "db")]["sess"] == [0] * 5             # a row left out: zeros
    # past the ring's size (wrapping around): the newest HIST_SLOTS - 1, the
    # slot of the oldest being the next one written
    write_samples(table, 6, shm.HIST_SLOTS + 42)
    seq, times, series = table.hist_read()
    assert seq == shm.HIST_SLOTS + 42
    assert times == [n * 1000 for n in range(44, seq + 1)]
    assert series[FE]["sess"] == [sample_values(n)[0] for n in range(44, seq + 1)]
    # since: only what came after
    seq, times, series = table.hist_read(since=seq - 3)
    assert times == [n * 1000 for n in range(seq - 2, seq + 1)]
    assert series[FE]["timed"] == [sample_values(n)[8] for n in range(seq - 2, seq + 1)]
    assert table.hist_read(since=seq)[1] == []


def test_history_read_drops_samples_overwritten_while_reading(table):
    """A reader stalled while the master writes more: what the writes
    reached is left out, what is returned is consistent."""
    write_samples(table, 1, shm.HIST_SLOTS + 10)
    real = table.q

    class WritesDuringRead:
        """table.q for the reader: three samples are written during its first slice read."""
        pending = 3

        def __getitem__(self, i):
            if isinstance(i, slice) and self.pending:
                n, self.pending = self.pending, 0
                table.q = real
                last = real[shm.H_HIST_SEQ]
                write_samples(table, last + 1, last + n)
                table.q = self
            return real[i]

    table.q = WritesDuringRead()
    try:
        seq, times, series = table.hist_read()
    finally:
        table.q = real
    numbers = [t // 1000 for t in times]
    assert numbers == list(range(numbers[0], seq + 1)) and len(numbers) == shm.HIST_SLOTS - 4
    for field, i in (("sess", 0), ("ttime", shm.HIST_NFIELDS - 1)):
        assert series[FE][field] == [sample_values(n)[i] for n in numbers]


def test_history_is_carried_over_a_reload(table):
    write_samples(table, 1, 30)
    changed = CFG.replace("[backends.db]", '[backends.new]\n[[backends.new.servers]]\nname = "n1"\n'
                          'address = "127.0.0.1:6"\n[backends.db]')
    new = shm.Table.create(loader.load_text(changed, "t.toml"), 2)
    new.carry_from(table)
    assert new.hist_read() == (30, table.hist_read()[1], {
        **table.hist_read()[2], ("be", "new"): {f: [0] * 30 for f in shm.HIST_FIELDS}})
    new.hist_write(31_000, {("be", "new"): sample_values(31)})
    seq, times, series = new.hist_read(since=29)
    assert seq == 31 and times == [30_000, 31_000]
    assert series[("be", "new")]["req"] == [0, sample_values(31)[1]]
    new.close()


# -- the sampler writes it -----------------------------------------------------------------


def publish(t: shm.Table, worker: int, flushed_ms: int, counts: dict) -> None:
    """A worker's flush: counts {row key: {counter name: total}}."""
    for key in t.layout.rows:
        vals = array.array("q", [0] * shm.CNT_FIELDS)
        if key == shm.PROCESS_ROW:
            vals[shm.C_FLUSHED_MS] = flushed_ms
        for name, v in counts.get(key, {}).items():
            vals[shm.C[name]] = v
        t.write_column(t.counter_base(key, worker), vals)


def test_the_sampler_appends_rates_and_times_to_the_history(table):
    sampler = StatsSampler(table)
    publish(table, 0, 10_000, {FE: {"req_tot": 100}})
    sampler.sample(time_ms=1_000)
    assert table.hist_read()[0] == 0            # no window yet: no sample (no false zero)
    # worker 0, in 0.5 s: 50 requests (40 2xx, 6 4xx, 4 5xx), 20 timed
    # sessions on the backend with 200 ms of response and 300 ms in all
    publish(table, 0, 10_500, {
        FE: {"req_tot": 150, "stot": 10, "hrsp_2xx": 40, "hrsp_4xx": 6, "hrsp_5xx": 4},
        BE: {"req_tot": 44, "stot": 44, "hrsp_2xx": 40, "hrsp_5xx": 4, "timed": 20,
             "rtime_sum": 200, "ttime_sum": 300}})
    sampler.sample(time_ms=2_000)
    seq, times, series = table.hist_read()
    assert seq == 1 and times == [2_000]
    scale = shm.HIST_RATE_SCALE
    fe, be = series[FE], series[BE]
    assert fe["req"] == [100 * scale] and fe["sess"] == [20 * scale]
    assert (fe["2xx"], fe["4xx"], fe["5xx"], fe["3xx"]) == ([80 * scale], [12 * scale], [8 * scale], [0])
    assert be["req"] == [88 * scale] and be["5xx"] == [8 * scale]
    assert (be["timed"], be["rtime"], be["ttime"]) == ([20], [200], [300])
    sampler.sample(time_ms=3_000)               # no new flush: the last rates again, no times
    seq, _, series = table.hist_read(since=1)
    assert seq == 2 and series[FE]["req"] == [100 * scale] and series[BE]["timed"] == [0]


# -- the JSON endpoint ---------------------------------------------------------------------


def test_history_json(table):
    write_samples(table, 1, 4)
    d = json.loads(stats_page.history_json(table))
    assert d["seq"] == 4 and d["t"] == [1000, 2000, 3000, 4000]
    assert d["slots"] == shm.HIST_SLOTS and d["rate_scale"] == shm.HIST_RATE_SCALE
    assert d["fields"] == list(shm.HIST_FIELDS)
    assert set(d["fe"]) == {"web", "stats"} and set(d["be"]) == {"app", "db"}
    assert d["fe"]["web"]["5xx"] == [sample_values(n)[6] for n in range(1, 5)]
    d = json.loads(stats_page.history_json(table, since=3))
    assert d["seq"] == 4 and d["t"] == [4000] and d["be"]["app"]["sess"] == [sample_values(-4)[0]]


@pytest.mark.parametrize("opts, since", [
    (set(), 0), ({"history"}, 0), ({"history", "since=42"}, 42), ({"since=x"}, 0), ({"since=-3"}, 0)])
def test_history_since(opts, since):
    assert stats_page.history_since(opts) == since


def test_history_route():
    assert wstats.route(b"/;history;since=7", "/") == ("stats", {"history", "since=7"}, None)
    assert wstats.route(b"/stats;history", "/stats") == ("stats", {"history"}, None)


# -- the page ------------------------------------------------------------------------------


@pytest.mark.parametrize("status, state", [
    ("UP", "up"), ("no check", "nocheck"), ("OPEN", "up"), ("DOWN", "down"), ("MAINT", "maint"),
    ("DRAIN", "drain"), ("UP 1/3", "going-down"), ("DRAIN 2/3", "going-down"),
    ("DOWN 1/2", "going-up")])
def test_row_state(status, state):
    assert stats_page.row_state(status) == state
    assert state in {cls for cls, _ in stats_page.ROW_STATES}


def page(table, admin: bool, refresh: float = 0, uri: str = "/") -> str:
    cfg = loader.load_text(CFG, "t.toml")
    rows = stats.snapshot(cfg, table, PROC)
    return stats_page.html(rows, stats.info(PROC, rows), refresh, admin, uri)


def test_rows_are_coloured_by_state_and_carry_what_the_script_needs(table):
    t = table
    t.srv_set(t.server_row("app", "s1"), "health", 2)          # rise 2 fall 3: going down
    t.srv_set(t.server_row("app", "s2"), "op_up", 0)
    t.srv_set(t.server_row("app", "s2"), "health", 0)
    t.srv_set(t.server_row("db", "d1"), "admin", shm.ADMIN_MAINT)
    text = page(t, admin=False, refresh=5, uri="/stats")
    assert '<body class="nojs" data-uri="/stats" data-refresh="5">' in text
    assert '<noscript><meta http-equiv="refresh" content="5;url=/stats"></noscript>' in text
    assert '<tr class="r-going-down srv" data-name="s1" data-state="going-down">' in text
    assert '<tr class="r-down srv" data-name="s2" data-state="down">' in text
    assert '<tr class="r-maint srv" data-name="d1" data-state="maint">' in text
    assert '<tr class="r-up total"><td class="l name">BACKEND</td>' in text        # app: s1 up
    assert '<tr class="r-down total"><td class="l name">BACKEND</td>' in text      # db: none
    assert '<span class="st going">UP 1/3</span>' in text                          # the badges stay
    for kind, name, mode in (("fe", "web", "http"), ("be", "app", "http"), ("be", "db", "tcp")):
        assert (f'<section class="px" id="{kind}-{name}" data-kind="{kind}" data-name="{name}" '
                f'data-mode="{mode}">') in text
        assert f'<div class="graphs" data-key="{kind}/{name}" data-mode="{mode}"></div>' in text
    for control in ('id="filter"', 'id="hidedown"', 'id="showgraphs"', 'id="span"'):
        assert control in text
    assert text.count("<script>") == 1 and "<form" not in text and 'class="sel"' not in text
    # nothing from elsewhere
    assert not re.search(r"(src=|<link|@import|https?://|//cdn)", text)


def test_bulk_forms_per_backend(table):
    text = page(table, admin=True, uri="/stats")
    assert text.count('<form method="post" action="/stats">') == 2                  # app and db
    app = text[text.index('id="be-app"'):text.index('id="be-db"')]
    assert '<input type="hidden" name="b" value="app">' in app
    assert app.count('<input type="checkbox" class="sel" name="s" value=') == 2
    assert '<input type="checkbox" class="all"' in app
    assert '<select name="action"' in app and '<button type="submit">Apply</button>' in app
    assert [m for m in re.findall(r'<option value="(\w+)">', app)] == [
        a for a, _ in stats_page.BULK_ACTIONS]
    assert '<span class="tag">backup</span>' in app


def test_admin_line():
    assert wstats.admin_line("drain", "app", "s1") == "set server app/s1 state drain"
    assert wstats.admin_line("shutdown", "app", "s1") == "shutdown sessions server app/s1"
