"""farm.stats (rendering from a synthetic shm table) and the pure helpers of
workers/stats.py (routing, basic auth, admin form, admin socket client)."""

from __future__ import annotations

import base64
import csv as pycsv
import io
import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from farm import loader, shm, stats, stats_page
from workers import stats as wstats

# HAProxy 2.6 captures (show stat, show info, promex names), outside the repo
REF = Path(os.environ.get("FARM_HAPROXY_REFERENCE", "/work/shared/reference"))
needs_reference = pytest.mark.skipif(not (REF / "haproxy26_show_stat.csv").exists(),
                                     reason=f"HAProxy reference captures not found in {REF}")
NOW = 1_800_000_000


def ref_csv() -> list[list[str]]:
    return list(pycsv.reader((REF / "haproxy26_show_stat.csv").read_text().strip().splitlines()))


def parse_csv(text: str) -> list[list[str]]:
    assert text.endswith("\n\n")          # a CLI answer block ends with an empty line
    return list(pycsv.reader(io.StringIO(text.strip())))


# The config HAProxy's captures came from (haproxy_test.cfg), in farm's words.
REFERENCE_LIKE = """
[global]
workers = 2
maxconn = 9984
admin_socket = "/run/farm/admin.sock"
[stats]
bind = "127.0.0.1:27404"
uri = "/stats"
[frontends.fe_main]
bind = "127.0.0.1:27080"
default_backend = "be_app"
[backends.be_app]
balance = "roundrobin"
[backends.be_app.check]
type = "tcp"
interval = "2s"
[[backends.be_app.servers]]
name = "web1"
address = "127.0.0.1:18081"
[[backends.be_app.servers]]
name = "web2"
address = "127.0.0.1:18082"
weight = 50
"""

# Every kind of row farm produces: http and tcp, checked and unchecked,
# backup, cookie, maxconn, slowstart, a backend without servers.
MIXED = """
[global]
workers = 2
maxconn = 1000
[stats]
bind = "127.0.0.1:8404"
[frontends.www]
bind = "127.0.0.1:8080"
default_backend = "app"
maxconn = 300
[frontends.raw]
bind = "127.0.0.1:8081"
mode = "tcp"
default_backend = "db"
[backends.app]
[backends.app.check]
type = "http"
rise = 2
fall = 3
[backends.app.cookie]
name = "SRV"
[[backends.app.servers]]
name = "s1"
address = "127.0.0.1:9000"
maxconn = 10
[[backends.app.servers]]
name = "s2"
address = "127.0.0.1:9001"
weight = 50
slowstart = "10s"
[[backends.app.servers]]
name = "bk"
address = "127.0.0.1:9002"
backup = true
[backends.db]
mode = "tcp"
balance = "leastconn"
[[backends.db.servers]]
name = "d1"
address = "127.0.0.1:5432"
[backends.empty]
"""


def make(text: str):
    cfg = loader.load_text(text, "t.toml")
    return cfg, shm.Table.create(cfg, 1)


def settle(t: shm.Table, cfg) -> None:
    """Every checked server fully up after passing checks (as after a while)."""
    for be in cfg.backends:
        for s in be.servers:
            i = t.server_row(be.name, s.name)
            if t.srv_get(i, "has_check"):
                t.srv_set(i, "health", be.check.rise + be.check.fall - 1)
                t.srv_set(i, "check_status", shm.CS["L4OK" if be.check.type == "tcp" else "L7OK"])
                t.srv_set(i, "check_code", 200 if be.check.type == "http" else 0)
                t.srv_set(i, "check_duration", 3)


def write(t: shm.Table, key: tuple, column: int, **values) -> None:
    base = t.counter_base(key, column)
    for name, v in values.items():
        t.q[base + shm.C[name]] = v


def by_name(rows) -> dict:
    return {(r["pxname"], r["svname"]): r for r in rows}


PROC = {"pid": 4242, "start_time": NOW - 3725, "workers": 2, "maxconn": 1000, "node": "lb1",
        "version": "0.1.0", "release_date": "2026/11/20", "stopping": 0, "dropped_logs": 3,
        "listeners": 4, "now": NOW}


@pytest.fixture
def mixed():
    cfg, t = make(MIXED)
    settle(t, cfg)
    yield cfg, t
    t.close()


# -- CSV shape --------------------------------------------------------------------------


@needs_reference
def test_csv_header_is_haproxys():
    ref_header = (REF / "haproxy26_show_stat.csv").read_text().splitlines()[0]
    assert stats.CSV_HEADER == ref_header
    assert stats.CSV_HEADER.startswith("# pxname,svname,") and stats.CSV_HEADER.endswith(",")


def test_every_row_has_the_header_field_count(mixed):
    cfg, t = mixed
    text = stats.csv(stats.snapshot(cfg, t, PROC))
    lines = parse_csv(text)
    header = lines[0]
    assert len(header) == 129
    assert len(lines) > 5
    for row in lines[1:]:
        assert len(row) == len(header), row[:2]
        assert row[103] == "-"              # the static/module delimiter
        assert row[-1] == ""                # the trailing comma


def test_rows_in_haproxy_order(mixed):
    cfg, t = mixed
    keys = [(r["pxname"], r["svname"]) for r in stats.snapshot(cfg, t, PROC)]
    assert keys == [("www", "FRONTEND"), ("raw", "FRONTEND"), ("stats", "FRONTEND"),
                    ("app", "s1"), ("app", "s2"), ("app", "bk"), ("app", "BACKEND"),
                    ("db", "d1"), ("db", "BACKEND"), ("empty", "BACKEND")]


@needs_reference
def test_matches_the_haproxy_capture_field_by_field():
    """Same config as the capture (its stats socket included), settled
    state: every field equals HAProxy's but ages and the server's
    connection need estimate."""
    cfg, t = make(REFERENCE_LIKE)
    settle(t, cfg)
    for s in ("web1", "web2"):
        t.srv_set(t.server_row("be_app", s), "check_duration", 0)
    mine = parse_csv(stats.csv(stats.snapshot(cfg, t, {"now": time.time()})))
    ref = ref_csv()
    header = ref[0]
    assert len(mine) == len(ref)
    diffs = set()
    for a, b in zip(mine[1:], ref[1:]):
        assert a[:2] == b[:2]
        for name, x, y in zip(header, a, b):
            if x != y:
                diffs.add(name)
    assert diffs <= {"lastchg", "need_conn_est"}, diffs
    t.close()


def test_csv_quotes_ambiguous_strings(mixed):
    cfg, t = mixed
    rows = stats.snapshot(cfg, t, PROC)
    rows[0]["pxname"] = 'we,ird"name'
    line = stats.csv(rows).splitlines()[1]
    assert line.startswith('"we,ird""name",FRONTEND,')
    assert next(pycsv.reader([line]))[0] == 'we,ird"name'


# -- values -----------------------------------------------------------------------------


def test_counters_are_summed_over_workers_and_carried(mixed):
    cfg, t = mixed
    key = ("srv", "app", "s1")
    write(t, key, 0, stot=5, bin=100, bout=1000, hrsp_2xx=4, hrsp_5xx=1, smax=3, scur=1, lbtot=5,
          econ=1, req_tot=5, connect=5, reuse=2, qtime_sum=10, ctime_sum=20, rtime_sum=40,
          ttime_sum=100, timed=5, lastsess=NOW - 7, qtime_max=4, ctime_max=9, rtime_max=30,
          ttime_max=60)
    write(t, key, 1, stot=7, bin=50, bout=700, hrsp_2xx=7, smax=2, scur=2, lbtot=7, req_tot=7,
          timed=5, ttime_sum=200, lastsess=NOW - 30, ttime_max=80)
    # carried column: totals of earlier generations, and what the master's
    # sampler writes (farm/sampler.py: the recent averages)
    write(t, key, 2, stot=100, hrsp_2xx=90, smax=9, lbtot=100, req_tot=100,
          qtime_avg=1, ctime_avg=2, rtime_avg=4, ttime_avg=30)
    write(t, ("fe", "www"), 0, stot=3, conn_tot=3, req_tot=20, hrsp_2xx=19, hrsp_4xx=1, scur=2,
          smax=2, bin=999, bout=5000, ereq=1, dreq=2, intercepted=0, denied_conn=4)
    write(t, ("fe", "www"), 1, stot=4, conn_tot=4, req_tot=30, hrsp_2xx=30, scur=1, smax=1)
    # current connections are one shared number for all workers (gauges)
    t.cells.store(t.gauge_base(key) + shm.G_CUR, 3)
    t.cells.store(t.gauge_base(("fe", "www")) + shm.G_CUR, 3)
    rows = by_name(stats.snapshot(cfg, t, PROC))
    s1 = rows[("app", "s1")]
    assert s1["stot"] == 112 and s1["lbtot"] == 112
    assert s1["bin"] == 150 and s1["bout"] == 1700
    assert s1["hrsp_2xx"] == 101 and s1["hrsp_5xx"] == 1
    assert s1["scur"] == 3 and s1["smax"] == 9           # the gauge; maxima maxed
    assert s1["req_tot"] == 112 and s1["econ"] == 1
    assert s1["connect"] == 5 and s1["reuse"] == 2
    assert s1["qtime"] == 1 and s1["ctime"] == 2 and s1["rtime"] == 4 and s1["ttime"] == 30
    assert (s1["qtime_max"], s1["ctime_max"], s1["rtime_max"], s1["ttime_max"]) == (4, 9, 30, 80)
    assert s1["lastsess"] == 7
    assert s1["slim"] == 10                               # server maxconn
    assert s1["used_conn_cur"] == 3
    fe = rows[("www", "FRONTEND")]
    assert fe["stot"] == 7 and fe["conn_tot"] == 7 and fe["req_tot"] == 50
    assert fe["hrsp_2xx"] == 49 and fe["hrsp_4xx"] == 1
    assert fe["scur"] == 3 and fe["slim"] == 300 and fe["ereq"] == 1 and fe["dreq"] == 2
    assert fe["dcon"] == 4
    assert rows[("raw", "FRONTEND")]["slim"] == 1000     # global maxconn
    # untouched rows: zeros, and "never" for lastsess
    assert rows[("app", "s2")]["stot"] == 0 and rows[("app", "s2")]["lastsess"] == -1


def test_row_kinds_and_ids(mixed):
    cfg, t = mixed
    rows = by_name(stats.snapshot(cfg, t, PROC))
    assert [rows[k]["iid"] for k in (("www", "FRONTEND"), ("raw", "FRONTEND"),
                                     ("stats", "FRONTEND"), ("app", "BACKEND"),
                                     ("db", "BACKEND"), ("empty", "BACKEND"))] == [1, 2, 3, 4, 5, 6]
    assert rows[("app", "s2")]["iid"] == 4 and rows[("app", "s2")]["sid"] == 2
    assert {r["type"] for k, r in rows.items() if k[1] == "FRONTEND"} == {0}
    assert {r["type"] for k, r in rows.items() if k[1] == "BACKEND"} == {1}
    assert rows[("app", "s1")]["type"] == 2
    assert rows[("app", "s1")]["pid"] == 1
    assert stats.proxy_ids(cfg)[("be", "db")] == 5
    # with an admin socket, HAProxy's stats socket proxy has id 1
    with_socket = loader.load_text(MIXED.replace("[global]\n", '[global]\nadmin_socket = "/tmp/x.sock"\n'))
    assert stats.proxy_ids(with_socket)[("fe", "www")] == 2
    assert stats.proxy_ids(with_socket)[("be", "db")] == 6


def test_the_compared_columns_cover_every_column_once():
    """farm/stats.py's list of how each column compares with HAProxy's
    (docs/operations.md prints it): every column in exactly one group."""
    groups = [set(stats.SAME_AS_HAPROXY), set(stats.SAME_IN_TCP_ONLY), set(stats.CLOSE_TO_HAPROXY),
              set(stats.NOT_COMPARED)]
    assert sum(len(g) for g in groups) == len(stats.FIELD_NAMES)
    assert set().union(*groups) == set(stats.FIELD_NAMES)


def test_http_only_fields_are_empty_in_tcp(mixed):
    cfg, t = mixed
    rows = by_name(stats.snapshot(cfg, t, PROC))
    for key in (("raw", "FRONTEND"), ("db", "d1"), ("db", "BACKEND")):
        r = rows[key]
        assert r["mode"] == "tcp"
        assert r["hrsp_2xx"] is None and r["hrsp_other"] is None
    assert rows[("db", "BACKEND")]["req_tot"] is None
    assert rows[("raw", "FRONTEND")]["intercepted"] is None
    assert rows[("raw", "FRONTEND")]["req_tot"] == 0      # HAProxy prints it for any frontend
    assert rows[("www", "FRONTEND")]["hrsp_2xx"] == 0


def test_server_config_fields(mixed):
    cfg, t = mixed
    rows = by_name(stats.snapshot(cfg, t, PROC))
    s1, bk, d1 = rows[("app", "s1")], rows[("app", "bk")], rows[("db", "d1")]
    assert s1["addr"] == "127.0.0.1:9000" and s1["cookie"] == "s1"
    assert rows[("app", "BACKEND")]["cookie"] == "SRV"
    assert (s1["act"], s1["bck"]) == (1, 0) and (bk["act"], bk["bck"]) == (0, 1)
    assert s1["check_rise"] == 2 and s1["check_fall"] == 3 and s1["check_health"] == 4
    assert s1["check_status"] == "L7OK" and s1["check_code"] == 200 and s1["check_duration"] == 3
    assert s1["check_desc"] == "Layer7 check passed"
    assert d1["status"] == "no check"
    assert d1["check_status"] is None and d1["chkfail"] is None and d1["check_rise"] is None
    assert rows[("db", "BACKEND")]["algo"] == "leastconn"
    assert rows[("app", "BACKEND")]["algo"] == "roundrobin"
    assert rows[("empty", "BACKEND")]["status"] == "UP"         # no server: HAProxy says UP
    assert rows[("empty", "BACKEND")]["downtime"] is None
    # fullconn: 10% of the maxconn of the frontends using the backend, rounded up
    assert rows[("app", "BACKEND")]["slim"] == 30
    assert rows[("db", "BACKEND")]["slim"] == 100
    assert rows[("empty", "BACKEND")]["slim"] == 1


@pytest.mark.parametrize("setup, status", [
    (dict(health=4), "UP"),
    (dict(health=3), "UP 2/3"),                      # going down: health - rise + 1 / fall
    (dict(health=2), "UP 1/3"),
    (dict(op_up=0, health=0), "DOWN"),
    (dict(op_up=0, health=1), "DOWN 1/2"),           # going up: health / rise
    (dict(admin=shm.ADMIN_MAINT), "MAINT"),
    (dict(admin=shm.ADMIN_MAINT, op_up=0, health=0), "MAINT"),
    (dict(admin=shm.ADMIN_DRAIN), "DRAIN"),
    (dict(admin=shm.ADMIN_DRAIN, health=3), "DRAIN 2/3"),
    (dict(admin=shm.ADMIN_DRAIN, op_up=0, health=0), "DOWN"),
])
def test_server_status_words(mixed, setup, status):
    cfg, t = mixed
    i = t.server_row("app", "s1")
    for k, v in setup.items():
        t.srv_set(i, k, v)
    r = by_name(stats.snapshot(cfg, t, PROC))[("app", "s1")]
    assert r["status"] == status
    if status == "MAINT":
        assert r["check_status"] is None and r["chkfail"] == 0   # check paused, counters kept


def test_weights_states_and_backend_totals(mixed):
    cfg, t = mixed
    rows = by_name(stats.snapshot(cfg, t, PROC))
    assert [rows[("app", s)]["weight"] for s in ("s1", "s2", "bk")] == [1, 50, 1]
    be = rows[("app", "BACKEND")]
    assert (be["weight"], be["act"], be["bck"], be["uweight"], be["status"]) == (51, 2, 1, 51, "UP")
    # slowstart ramp: effective weight 20 of 50, throttle 40%
    s2 = t.server_row("app", "s2")
    t.srv_set(s2, "eff_weight", 20 * shm.WEIGHT_SCALE)
    # drain: weight 0 and out of the backend's total
    s1 = t.server_row("app", "s1")
    t.srv_set(s1, "admin", shm.ADMIN_DRAIN)
    rows = by_name(stats.snapshot(cfg, t, PROC))
    assert rows[("app", "s2")]["weight"] == 20 and rows[("app", "s2")]["throttle"] == 40
    assert rows[("app", "s2")]["uweight"] == 50
    assert rows[("app", "s1")]["weight"] == 1             # as HAProxy shows a draining server
    assert rows[("app", "s1")]["throttle"] is None
    be = rows[("app", "BACKEND")]
    assert (be["weight"], be["act"], be["uweight"]) == (20, 1, 50)
    # actives gone: the backups carry the backend
    t.srv_set(s2, "op_up", 0)
    t.srv_set(s2, "health", 0)
    be = by_name(stats.snapshot(cfg, t, PROC))[("app", "BACKEND")]
    assert (be["status"], be["weight"], be["act"], be["bck"]) == ("UP", 1, 0, 1)
    # everything down: backend DOWN, weight 0
    bk = t.server_row("app", "bk")
    t.srv_set(bk, "admin", shm.ADMIN_MAINT)
    t.srv_set(bk, "last_change", NOW - 90)
    be = by_name(stats.snapshot(cfg, t, PROC))[("app", "BACKEND")]
    assert (be["status"], be["weight"], be["act"], be["bck"]) == ("DOWN", 0, 0, 0)
    assert be["lastchg"] == 90 and be["downtime"] == 90


def test_ages_and_downtime(mixed):
    cfg, t = mixed
    i = t.server_row("app", "s1")
    t.srv_set(i, "last_change", NOW - 100)
    t.srv_set(i, "op_up", 0)
    t.srv_set(i, "health", 0)
    t.srv_set(i, "down_since", NOW - 100)
    t.srv_set(i, "downtime", 50)
    t.srv_set(i, "chkfail", 6)
    t.srv_set(i, "chkdown", 2)
    t.srv_set(i, "check_status", shm.CS["L7STS"])
    t.srv_set(i, "check_code", 503)
    r = by_name(stats.snapshot(cfg, t, PROC))[("app", "s1")]
    assert r["lastchg"] == 100 and r["downtime"] == 150
    assert (r["chkfail"], r["chkdown"]) == (6, 2)
    assert r["check_status"] == "L7STS" and r["check_code"] == 503
    assert r["check_desc"] == "Layer7 wrong status"
    t.srv_set(i, "check_status", shm.CS["L4CON"])
    r = by_name(stats.snapshot(cfg, t, PROC))[("app", "s1")]
    assert r["check_code"] is None                  # no layer 7 data for a connect failure


def test_filters(mixed):
    cfg, t = mixed
    t.srv_set(t.server_row("app", "s1"), "admin", shm.ADMIN_MAINT)
    i = t.server_row("app", "s2")
    t.srv_set(i, "op_up", 0)
    t.srv_set(i, "health", 0)
    rows = stats.snapshot(cfg, t, PROC)
    up = {(r["pxname"], r["svname"]) for r in stats.filter_rows(rows, up=True)}
    assert ("app", "s1") not in up and ("app", "s2") not in up and ("app", "bk") in up
    assert ("db", "d1") in up and ("app", "BACKEND") in up
    nm = {(r["pxname"], r["svname"]) for r in stats.filter_rows(rows, no_maint=True)}
    assert ("app", "s1") not in nm and ("app", "s2") in nm


# -- typed and JSON ----------------------------------------------------------------------

TYPED_RE = re.compile(r"^([FBS])\.(\d+)\.(\d+)\.(\d+)\.([a-z0-9_]+)\.(\d+):([MSKCP][GLmMRCDATNOa][PSsC]):"
                      r"(u32|u64|s32|s64|str):(.*)$")


def test_typed_output(mixed):
    cfg, t = mixed
    text = stats.csv(stats.snapshot(cfg, t, PROC), typed=True)
    lines = [ln for ln in text.splitlines() if ln]
    assert lines
    for ln in lines:
        m = TYPED_RE.match(ln)
        assert m, ln
        pos, name = int(m.group(4)), m.group(5)
        assert stats.FIELD_NAMES[pos] == name
        if m.group(8) != "str":
            int(m.group(9))
    assert "F.1.0.0.pxname.1:KNS:str:www" in lines
    assert "F.1.0.17.status.1:SGP:str:OPEN" in lines
    assert "S.4.1.17.status.1:SGP:str:UP" in lines
    assert "S.4.1.19.act.1:SGP:u32:1" in lines
    assert "B.4.0.19.act.1:MGP:u32:2" in lines
    assert "S.4.1.73.addr.1:CGS:str:127.0.0.1:9000" in lines
    assert "F.1.0.103.ssl_sess.1:MCP:u64:0" in lines       # module fields skip the "-" column
    assert not any(".2.qcur." in ln for ln in lines if ln.startswith("F."))   # empty: not printed
    assert text.count("\n\n") == 10                        # a blank line after each object


def test_json_stats(mixed):
    cfg, t = mixed
    data = json.loads(stats.json_stats(stats.snapshot(cfg, t, PROC)))
    assert len(data) == 10
    first = data[0][0]
    assert first == {"objType": "Frontend", "proxyId": 1, "id": 0, "field": {"pos": 0, "name": "pxname"},
                     "processNum": 1, "tags": {"origin": "Key", "nature": "Name", "scope": "Service"},
                     "value": {"type": "str", "value": "www"}}
    srv = {f["field"]["name"]: f["value"]["value"] for f in data[3]}
    assert srv["svname"] == "s1" and srv["status"] == "UP" and "qlimit" not in srv
    assert data[3][0]["objType"] == "Server"


# -- show info ---------------------------------------------------------------------------


@needs_reference
def test_info_keys_are_haproxys():
    ref_keys = [ln.split(":", 1)[0] for ln in (REF / "haproxy26_show_info.txt").read_text().splitlines()
                if ln.strip()]
    assert list(stats.INFO_KEYS) == ref_keys


def test_info_values(mixed):
    cfg, t = mixed
    write(t, ("fe", "www"), 0, conn_tot=10, req_tot=15, bout=1234)
    write(t, ("fe", "raw"), 1, conn_tot=5, bout=100)
    t.cells.store(t.gauge_base(("fe", "www")) + shm.G_CUR, 2)    # current: shared gauges
    t.cells.store(t.gauge_base(("fe", "raw")) + shm.G_CUR, 1)
    rows = stats.snapshot(cfg, t, PROC)
    pairs = stats.info(PROC, rows)
    assert [k for k, _ in pairs] == list(stats.INFO_KEYS)
    d = dict(pairs)
    assert d["Name"] == "farm" and d["Version"] == "0.1.0" and d["Release_date"] == "2026/11/20"
    assert d["Nbthread"] == "1" and d["Nbproc"] == "2" and d["Process_num"] == "1"
    assert d["Pid"] == "4242"
    assert d["Uptime"] == "0d 1h02m05s" and d["Uptime_sec"] == "3725"
    assert d["Maxconn"] == "1000" and d["Hard_maxconn"] == "1000"
    assert d["CurrConns"] == "3" and d["CumConns"] == "15" and d["CumReq"] == "15"
    assert d["TotalBytesOut"] == "1334"
    assert d["node"] == "lb1" and d["Stopping"] == "0" and d["Listeners"] == "4"
    assert d["Jobs"] == "7" and d["DroppedLogs"] == "3"
    assert d["Start_time_sec"] == str(NOW - 3725) and d["Build info"] == "0.1.0"
    assert d["PoolFailed"] == "0" and d["Tainted"] == "0"
    assert stats.format_uptime(90061) == "1d 1h01m01s"
    assert stats.format_uptime(1) == "0d 0h00m01s"


def test_info_typed_and_json(mixed):
    cfg, t = mixed
    pairs = stats.info(PROC, stats.snapshot(cfg, t, PROC))
    typed = stats.info_typed(pairs).splitlines()
    assert typed[0] == "0.Name.1:POS:str:farm"
    assert typed[6] == "6.Pid.1:SGP:u32:4242"
    data = json.loads(stats.info_json(pairs))
    assert data[6]["field"] == {"pos": 6, "name": "Pid"} and data[6]["value"] == {"type": "u32", "value": 4242}


# -- Prometheus --------------------------------------------------------------------------


def reference_metrics() -> dict:
    out = {}
    for ln in (REF / "promex_native_metric_names.txt").read_text().splitlines():
        if ln.strip():
            name, typ = ln.split()
            out[name] = typ
    return out


@needs_reference
def test_prometheus_parses_and_uses_haproxy_names(mixed):
    from prometheus_client.parser import text_string_to_metric_families
    cfg, t = mixed
    write(t, ("srv", "app", "s1"), 0, hrsp_2xx=7)
    write(t, ("srv", "app", "s1"), 2, ttime_avg=500)     # the sampler's (carried column)
    rows = stats.snapshot(cfg, t, PROC)
    text = stats.prometheus(rows, stats.info(PROC, rows))
    families = list(text_string_to_metric_families(text))
    assert len(families) > 150
    ref = reference_metrics()
    declared = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert declared, "no TYPE lines"
    for name, typ in declared.items():
        assert ref.get(name) == typ, (name, typ)
    # HELP before TYPE for every family, one family per name
    assert len(re.findall(r"^# HELP ", text, re.M)) == len(declared)
    samples = {}
    for fam in families:
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("haproxy_server_http_responses_total",
                    (("code", "2xx"), ("proxy", "app"), ("server", "s1")))] == 7
    assert samples[("haproxy_server_total_time_average_seconds",
                    (("proxy", "app"), ("server", "s1")))] == 0.5
    assert samples[("haproxy_server_status", (("proxy", "app"), ("server", "s1"), ("state", "UP")))] == 1
    assert samples[("haproxy_server_status", (("proxy", "app"), ("server", "s1"), ("state", "DOWN")))] == 0
    assert samples[("haproxy_backend_status", (("proxy", "app"), ("state", "UP")))] == 1
    assert samples[("haproxy_frontend_status", (("proxy", "www"), ("state", "UP")))] == 1
    assert samples[("haproxy_server_check_status",
                    (("proxy", "app"), ("server", "s1"), ("state", "L7OK")))] == 1
    assert samples[("haproxy_backend_agg_server_status", (("proxy", "app"), ("state", "UP")))] == 3
    assert samples[("haproxy_process_build_info", (("version", "0.1.0"),))] == 1
    assert samples[("haproxy_process_nbproc", ())] == 2
    # http-only families skip tcp proxies; unchecked servers have no check_status
    assert ("haproxy_frontend_http_requests_total", (("proxy", "raw"),)) not in samples
    assert not any(k[0] == "haproxy_server_check_status" and ("server", "d1") in k[1] for k in samples)


def test_prometheus_label_escaping(mixed):
    from prometheus_client.parser import text_string_to_metric_families
    cfg, t = mixed
    rows = stats.snapshot(cfg, t, PROC)
    weird = 'a"b\\c\nd'
    rows[0]["pxname"] = weird
    text = stats.prometheus(rows, stats.info(PROC, rows))
    assert 'proxy="a\\"b\\\\c\\nd"' in text
    names = {s.labels.get("proxy") for f in text_string_to_metric_families(text) for s in f.samples}
    assert weird in names
    assert stats.escape_label('x"y') == 'x\\"y'


# -- HTML --------------------------------------------------------------------------------


def test_html_dashboard(mixed):
    cfg, t = mixed
    t.srv_set(t.server_row("app", "s2"), "admin", shm.ADMIN_DRAIN)
    t.srv_set(t.server_row("app", "bk"), "health", 3)
    rows = stats.snapshot(cfg, t, PROC)
    page = stats_page.html(rows, stats.info(PROC, rows), 5, False, "/")
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta http-equiv="refresh" content="5;url=/">' in page
    for name in ("www", "raw", "stats", "app", "db", "empty", "s1", "s2", "bk", "d1"):
        assert f">{name}" in page
    assert 'class="st up">UP<' in page
    assert 'class="st drain">DRAIN<' in page
    assert 'class="st going">UP 2/3<' in page
    assert 'class="st nocheck">no check<' in page
    assert "<form" not in page
    # self-contained: no external resource of any kind
    assert not re.search(r"(src=|<link|@import|https?://)", page)
    admin = stats_page.html(rows, stats.info(PROC, rows), 0, True, "/stats")
    assert "http-equiv" not in admin
    # a form per backend with servers (HAProxy's bulk form): app and db
    assert admin.count('<form method="post" action="/stats">') == 2
    assert '<input type="hidden" name="b" value="app">' in admin
    assert '<input type="checkbox" class="sel" name="s" value="s1">' in admin
    for action in ("ready", "drain", "maint", "shutdown"):
        assert f'<option value="{action}">' in admin
    done = stats_page.html(rows, stats.info(PROC, rows), 0, True, "/stats", message="DONE")
    assert "Action processed successfully." in done


def test_html_escapes_names(mixed):
    cfg, t = mixed
    rows = stats.snapshot(cfg, t, PROC)
    rows[3]["svname"] = "<script>x</script>"
    page = stats_page.html(rows, stats.info(PROC, rows), 0, True, "/")
    assert "<script>x" not in page and "&lt;script&gt;x" in page


def test_human_formats():
    assert stats_page.human_duration(42) == "42s"
    assert stats_page.human_duration(312) == "5m12s"
    assert stats_page.human_duration(2 * 3600 + 13 * 60 + 5) == "2h13m"
    assert stats_page.human_duration(3 * 86400 + 4 * 3600) == "3d4h"
    assert stats_page.human_duration(-1) == "-"
    assert stats_page.status_class("DOWN 1/2") == "going" and stats_page.status_class("MAINT") == "maint"
    assert stats_page.human_bytes(512) == "512 B" and stats_page.human_bytes(2048) == "2.0 KiB"


# -- workers/stats.py helpers ------------------------------------------------------------


@pytest.mark.parametrize("target, uri, expect", [
    (b"/", "/", ("stats", set(), None)),
    (b"/;csv", "/", ("stats", {"csv"}, None)),
    (b"/?;csv", "/", ("stats", {"csv"}, None)),
    (b"/;csv;norefresh", "/", ("stats", {"csv", "norefresh"}, None)),
    (b"/metrics", "/", ("metrics", set(), None)),
    (b"/metrics?scope=server", "/", ("metrics", set(), None)),
    (b"/stats", "/stats", ("stats", set(), None)),
    (b"/stats/", "/stats", ("stats", set(), None)),
    (b"/stats;json", "/stats", ("stats", {"json"}, None)),
    (b"/stats/;csv", "/stats", ("stats", {"csv"}, None)),
    (b"/stats;st=DONE", "/stats", ("stats", set(), "DONE")),
    (b"/haproxy?stats;csv", "/haproxy?stats", ("stats", {"csv"}, None)),
    (b"/nope", "/", None),
    (b"/statsx", "/stats", None),
    (b"/", "/stats", None),
    (b"/favicon.ico", "/", None),
])
def test_route(target, uri, expect):
    assert wstats.route(target, uri) == expect


def test_check_auth():
    good = b"Basic " + base64.b64encode(b"admin:s3:cr3t")
    assert wstats.check_auth(None, None)
    assert wstats.check_auth(good, ("admin", "s3:cr3t"))
    assert not wstats.check_auth(None, ("admin", "s3:cr3t"))
    assert not wstats.check_auth(b"Basic " + base64.b64encode(b"admin:nope"), ("admin", "s3:cr3t"))
    assert not wstats.check_auth(b"Bearer abc", ("admin", "x"))
    assert not wstats.check_auth(b"Basic !!notbase64", ("admin", "x"))
    assert not wstats.check_auth(b"Basic " + base64.b64encode(b"nocolon"), ("admin", "x"))


def test_admin_targets(mixed):
    cfg, _ = mixed
    f = lambda **kw: {k: v if isinstance(v, list) else [v] for k, v in kw.items()}  # noqa: E731
    assert wstats.admin_targets(cfg, f(b="app", s="s1", action="drain")) == ("drain", [("app", "s1")])
    assert wstats.admin_targets(cfg, f(b="app", s=["s1", "bk"], action="maint")) == (
        "maint", [("app", "s1"), ("app", "bk")])
    assert wstats.admin_targets(cfg, f(b="#4", s="#2", action="ready")) == ("ready", [("app", "s2")])
    assert wstats.admin_targets(cfg, f(b="app", s="s1", action="shutdown")) == (
        "shutdown", [("app", "s1")])
    assert wstats.admin_targets(cfg, f(b="app", s="s1", action="hdown")) is None
    assert wstats.admin_targets(cfg, f(b="app", s="zz", action="ready")) is None
    assert wstats.admin_targets(cfg, f(b="nope", s="s1", action="ready")) is None
    assert wstats.admin_targets(cfg, f(b="app\nshow info", s="s1", action="ready")) is None
    assert wstats.admin_targets(cfg, f(b="app", action="ready")) is None


def test_admin_command_talks_to_a_unix_socket(tmp_path):
    path = str(tmp_path / "admin.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    got = []
    answers = [b"\n", b"No such server.\n\n"]

    def serve():
        for answer in answers:
            c, _ = srv.accept()
            got.append(c.recv(1000))
            c.sendall(answer)
            c.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    ok, text = wstats.admin_command(path, "set server app/s1 state drain", time.monotonic() + 2)
    assert ok and text == ""
    ok, text = wstats.admin_command(path, "set server app/zz state drain", time.monotonic() + 2)
    assert not ok and text == "No such server."
    th.join(2)
    assert got == [b"set server app/s1 state drain\n", b"set server app/zz state drain\n"]
    srv.close()
    os.unlink(path)
    ok, text = wstats.admin_command(path, "x", time.monotonic() + 1)       # nobody listening
    assert not ok
    ok, text = wstats.admin_command(path, "x", time.monotonic() - 1)       # no time left
    assert (ok, text) == (False, "timeout")


def test_rates_come_from_the_samplers_cells(mixed):
    cfg, t = mixed
    write(t, ("fe", "www"), 2, rate=12, rate_max=40, req_rate=30, req_rate_max=90, conn_rate=12,
          conn_rate_max=41)
    write(t, ("be", "app"), 2, rate=7, rate_max=9)
    write(t, ("srv", "app", "s1"), 2, rate=5, rate_max=6)
    write(t, shm.PROCESS_ROW, 2, rate=12, rate_max=40, conn_rate=12, conn_rate_max=41)
    proc = dict(PROC, **stats.process_rates(t.read_row(shm.PROCESS_ROW)))
    rows = stats.snapshot(cfg, t, proc)
    r = by_name(rows)
    fe = r[("www", "FRONTEND")]
    assert (fe["rate"], fe["rate_max"], fe["req_rate"], fe["req_rate_max"]) == (12, 40, 30, 90)
    assert (fe["conn_rate"], fe["conn_rate_max"]) == (12, 41)
    assert (r[("app", "BACKEND")]["rate"], r[("app", "BACKEND")]["rate_max"]) == (7, 9)
    assert (r[("app", "s1")]["rate"], r[("app", "s1")]["rate_max"]) == (5, 6)
    info = dict(stats.info(proc, rows))
    assert (info["SessRate"], info["MaxSessRate"], info["ConnRate"], info["MaxConnRate"]) == (
        "12", "40", "12", "41")
    page = stats_page.html(rows, stats.info(proc, rows), 0, False, "/")
    assert '>Session rate</th>' in page and 'title="rate_max">max</th>' in page
