"""farm.top's pure parts: CSV/info parsing, client-side rates, formatting,
column choice, the screen built from parsed rows, selection and the commands
the keys send. No curses and no sockets here (tests/integration/test_top.py
drives the real UI in tmux against a real farm)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from farm import stats, top

REF = Path(os.environ.get("FARM_HAPROXY_REFERENCE", "/work/shared/reference"))


def row(**kw) -> dict:
    r = dict.fromkeys(stats.FIELD_NAMES)
    r.update(kw)
    return r


def farm_csv() -> str:
    """A `show stat` answer rendered by farm's own CSV writer."""
    rows = [
        row(pxname="fe", svname="FRONTEND", scur=3, smax=9, slim=1000, stot=120, bin=2048,
            bout=5 * 1024 * 1024, status="OPEN", iid=1, sid=0, type=0, req_tot=150,
            hrsp_2xx=140, hrsp_4xx=7, hrsp_5xx=3, mode="http"),
        row(pxname="be", svname="a", scur=1, smax=4, stot=60, bin=1024, bout=3000, econ=2, eresp=1,
            status="UP", weight=3, uweight=3, iid=2, sid=1, type=2, req_tot=70, hrsp_2xx=69,
            hrsp_4xx=0, hrsp_5xx=1, check_status="L7OK", check_code=200, lastchg=75, mode="http"),
        row(pxname="be", svname="b-with-a-long-name", scur=0, smax=2, stot=60, status="MAINT",
            weight=1, uweight=1, iid=2, sid=2, type=2, req_tot=80, lastchg=4000, mode="http",
            check_desc="Layer7 check passed, with a comma"),
        row(pxname="be", svname="BACKEND", scur=1, smax=5, slim=100, stot=120, status="UP",
            weight=3, iid=2, sid=0, type=1, req_tot=150, mode="http", algo="roundrobin"),
    ]
    return stats.csv(rows)


def view(**kw) -> top.View:
    rows = top.parse_stat(farm_csv())
    info = top.parse_info("Name: farm\nVersion: 9.9\nPid: 42\nUptime: 0d 1h00m00s\n"
                          "CurrConns: 3\nMaxconn: 1000\nCumReq: 1500\nnode: lb1\n")
    v = top.View(info=info, rows=rows, connected=True, socket="/run/farm/admin.sock",
                 selected=("be", "a"))
    for k, val in kw.items():
        setattr(v, k, val)
    return v


def texts(lines) -> list[str]:
    return [line.text for line in lines]


def line_of(lines, needle: str):
    found = [line for line in lines if needle in line.text]
    assert found, f"{needle!r} not on screen:\n" + "\n".join(texts(lines))
    return found[0]


# -- framing and parsing -------------------------------------------------------------


def test_answer_complete_is_the_prompt_at_a_line_start():
    assert top.answer_complete(b"> ")                      # answer to `prompt`, empty answers
    assert top.answer_complete(b"\n> ")
    assert top.answer_complete(b"1 (initial 1)\n\n> ")
    assert not top.answer_complete(b"")
    assert not top.answer_complete(b"# pxname,svname\nfe,FRONTEND\n")
    assert not top.answer_complete(b"a value ending in> ")   # not at a line start


def test_parse_stat_reads_farms_csv_by_column_name():
    rows = top.parse_stat(farm_csv())
    assert [(r["pxname"], r["svname"]) for r in rows] == [
        ("fe", "FRONTEND"), ("be", "a"), ("be", "b-with-a-long-name"), ("be", "BACKEND")]
    a = rows[1]
    assert a["status"] == "UP" and a["check_status"] == "L7OK" and a["hrsp_5xx"] == "1"
    assert top.num(a, "req_tot") == 70 and top.num(a, "slim") is None
    assert top.row_type(rows[0]) == 0 and top.row_type(rows[3]) == 1 and top.row_type(a) == 2
    # after the "-" column the module fields still line up
    assert rows[3]["algo"] == "roundrobin" and rows[2]["uweight"] == "1"
    assert rows[2]["check_desc"] == "Layer7 check passed, with a comma"   # quoted field


@pytest.mark.skipif(not (REF / "haproxy26_show_stat.csv").exists(), reason="no HAProxy capture")
def test_parse_stat_reads_haproxys_own_csv():
    rows = top.parse_stat((REF / "haproxy26_show_stat.csv").read_text())
    assert rows and all(r["pxname"] and r["svname"] for r in rows)
    assert {top.row_type(r) for r in rows} <= {0, 1, 2}
    lines = top.render(top.View(rows=rows, connected=True), 200, 200)
    for r in rows:
        if top.row_type(r) == 2:
            assert any(r["svname"] in t for t in texts(lines))


def test_parse_stat_without_a_header_is_empty():
    assert top.parse_stat("Unknown command.\n") == []
    assert top.parse_stat("") == []


def test_parse_info():
    info = top.parse_info("Name: farm\nUptime: 0d 0h00m03s\nnode: vm\nBuild info: 0.1.0\n\n")
    assert info == {"Name": "farm", "Uptime": "0d 0h00m03s", "node": "vm", "Build info": "0.1.0"}


# -- rates -----------------------------------------------------------------------------


def test_rates_from_successive_samples():
    r = top.Rates()
    assert r.update(100.0, {"x": 10, "y": None}) == {"x": None, "y": None}   # first sample
    assert r.update(102.0, {"x": 30, "y": 5}) == {"x": 10.0, "y": None}
    assert r.update(103.0, {"x": 5, "y": 9}) == {"x": None, "y": 4.0}         # x was reset


def test_sample_counters_use_req_tot_or_sessions():
    rows = top.parse_stat(farm_csv())
    tcp = {"pxname": "t", "svname": "s", "type": "2", "stot": "17", "req_tot": ""}
    c = top.sample_counters({"CumReq": "1500"}, rows + [tcp])
    assert c["requests"] == 1500
    assert c[(2, "be", "a")] == 70
    assert c[(2, "t", "s")] == 17


# -- formatting ------------------------------------------------------------------------


def test_human_units():
    assert top.human_bytes(None) == "" and top.human_bytes(0) == "0" and top.human_bytes(1023) == "1023"
    assert top.human_bytes(2048) == "2.0K"
    assert top.human_bytes(5 * 1024 ** 2) == "5.0M"
    assert top.human_bytes(300 * 1024 ** 3) == "300G"
    assert top.human_count(1234567) == "1234567"
    assert top.human_count(123456789) == "123457k"
    assert top.human_count(123456789, 6) == "123M"
    assert top.human_count(12345678901) == "12346M"
    assert top.human_count(123456, 5) == "123k"
    assert top.human_rate(None) == "-" and top.human_rate(2.25) == "2.2" and top.human_rate(42.4) == "42"
    assert top.human_duration(5) == "5s" and top.human_duration(75) == "1m15s"
    assert top.human_duration(4000) == "1h06m" and top.human_duration(90000) == "1d01h"


def test_status_styles():
    assert top.status_style("UP") == "up" and top.status_style("OPEN") == "up"
    assert top.status_style("no check") == "up"
    assert top.status_style("DOWN") == "down"
    assert top.status_style("UP 1/3") == "trans" and top.status_style("DOWN 1/2") == "trans"
    assert top.status_style("MAINT") == "maint" and top.status_style("MAINT (via)") == "maint"
    assert top.status_style("DRAIN") == "drain" and top.status_style("DRAIN 1/3") == "drain"
    assert top.status_style("NOLB") == "nolb"


def test_choose_columns_drops_the_least_important_first():
    wide = top.choose_columns(500, 12)
    assert [c.key for c in wide] == [c.key for c in top.COLUMNS]
    narrow = [c.key for c in top.choose_columns(60, 12)]
    assert narrow[:2] == ["name", "status"]
    assert {"weight", "scur", "rate", "check"} <= set(narrow)
    assert "slim" not in narrow and "lastchg" not in narrow
    assert sum(c.width for c in top.choose_columns(60, 12)) + len(narrow) - 1 <= 60
    # never below NAME and STATUS
    assert [c.key for c in top.choose_columns(5, 12)] == ["name", "status"]


# -- the screen ------------------------------------------------------------------------


def test_render_shows_header_proxies_and_servers():
    v = view()
    v.rates = {(2, "be", "a"): 12.5, (0, "fe", "FRONTEND"): 3.0, "requests": 250.0}
    lines = top.render(v, 160, 30)
    assert len(lines) == 30 and all(len(t) <= 160 for t in texts(lines))
    head = lines[0].text
    for part in ("farm 9.9", "node lb1", "pid 42", "up 0d 1h00m00s", "conns 3/1000",
                 "requests 1500 (250/s)"):
        assert part in head
    assert "/run/farm/admin.sock" in lines[1].text
    assert line_of(lines, "NAME").text.split()[:3] == ["NAME", "STATUS", "W"]
    assert line_of(lines, "frontend fe").text.strip() == "frontend fe (http)"
    assert line_of(lines, "backend be").text.strip() == "backend be (http, roundrobin)"
    a = line_of(lines, " a ").text.split()
    # name, status, weight, cur/max/lim(empty), total, rate, in, out, 2xx 4xx 5xx, econ, eresp, check, lastchg
    assert a == [">", "a", "UP", "3", "1", "4", "60", "12", "1.0K", "2.9K", "69", "0", "1", "2", "1",
                 "L7OK/200", "1m15s"]
    fe = line_of(lines, "FRONTEND").text.split()
    assert fe[:8] == ["FRONTEND", "OPEN", "3", "9", "1000", "120", "3.0", "2.0K"]
    assert "5.0M" in fe
    b = line_of(lines, "b-with-a-long-name").text.split()
    assert b[1] == "MAINT" and "-" in b and b[-1] == "1h06m"
    assert lines[-1].text.startswith("j/k")


def test_render_selection_is_marked_and_reversed():
    lines = top.render(view(selected=("be", "b-with-a-long-name")), 120, 30)
    sel = [line for line in lines if line.reverse]
    assert len(sel) == 1 and sel[0].text.startswith("> b-with-a-long-name")
    assert len(sel[0].text) == 120                           # the bar spans the width
    assert line_of(lines, " a ").text.startswith("  a ")


def test_render_colours_only_the_status_cell():
    lines = top.render(view(), 160, 30)
    styles = dict((t.strip(), s) for t, s in line_of(lines, "b-with-a-long-name").segments)
    assert styles["MAINT"] == "maint" and styles["b-with-a-long-name"] == ""
    styles = dict((t.strip(), s) for t, s in line_of(lines, " a ").segments)
    assert styles["UP"] == "up"


def test_render_fits_a_small_terminal_and_scrolls_to_the_selection():
    rows = []
    for i in range(40):
        rows.append({"pxname": "be", "svname": f"s{i:02d}", "type": "2", "iid": "2", "sid": str(i + 1),
                     "status": "UP", "weight": "1"})
    rows.append({"pxname": "be", "svname": "BACKEND", "type": "1", "iid": "2", "sid": "0",
                 "status": "UP"})
    v = top.View(rows=rows, connected=True, selected=("be", "s35"))
    lines = top.render(v, 50, 15)
    assert len(lines) == 15 and all(len(t) <= 50 for t in texts(lines))
    assert [line for line in lines if line.reverse][0].text.startswith("> s35")
    assert lines[-1].text.startswith("j/k")
    v.selected = ("be", "s00")
    assert any(line.text.startswith("> s00") for line in top.render(v, 50, 15))


def test_render_too_small_and_no_data():
    assert texts(top.render(view(), 20, 3)) == ["terminal too small"]
    assert texts(top.render(view(), 100, 4)) == ["terminal too small"]
    lost = top.View(connected=False, message="/x.sock: Connection refused: reconnecting...",
                    error=True)
    lines = top.render(lost, 100, 12)
    assert "reconnecting" in lines[1].text and lines[1].segments[0][1] == "error"
    assert any(t.startswith("waiting for data") for t in texts(lines))


def test_render_keeps_the_last_data_while_reconnecting():
    v = view(connected=False, message="admin.sock: Connection refused: reconnecting...", error=True)
    lines = top.render(v, 160, 30)
    assert "reconnecting" in lines[1].text
    line_of(lines, "b-with-a-long-name")


def test_header_drops_details_on_a_narrow_terminal():
    lines = top.render(view(), 40, 20)
    assert lines[0].text.startswith("farm 9.9")
    assert "node" not in lines[0].text and len(lines[0].text) <= 40


def test_frontend_and_backend_of_the_same_name_are_separate_tables():
    rows = [{"pxname": "www", "svname": "FRONTEND", "type": "0", "iid": "1", "status": "OPEN"},
            {"pxname": "www", "svname": "s1", "type": "2", "iid": "2", "sid": "1", "status": "UP"},
            {"pxname": "www", "svname": "BACKEND", "type": "1", "iid": "2", "status": "UP"}]
    groups = top.group_rows(rows)
    assert [(k, n, [r["svname"] for r in m]) for k, n, m in groups] == [
        ("frontend", "www", ["FRONTEND"]), ("backend", "www", ["s1", "BACKEND"])]


def test_help_screen():
    lines = top.render_help(80, 40)
    text = "\n".join(texts(lines))
    for key in ("r ", "d ", "m ", "+ / -", "q "):
        assert key in text
    assert len(top.render_help(80, 5)) == 5


# -- keys ------------------------------------------------------------------------------


def test_move_selection():
    rows = top.parse_stat(farm_csv())
    assert top.servers(rows) == [("be", "a"), ("be", "b-with-a-long-name")]
    assert top.move_selection(rows, None, 0) == ("be", "a")
    assert top.move_selection(rows, ("be", "a"), 1) == ("be", "b-with-a-long-name")
    assert top.move_selection(rows, ("be", "b-with-a-long-name"), 5) == ("be", "b-with-a-long-name")
    assert top.move_selection(rows, ("be", "a"), -1) == ("be", "a")
    assert top.move_selection(rows, ("be", "gone"), 1) == ("be", "a")
    assert top.move_selection([], ("be", "a"), 1) is None


def test_key_commands():
    rows = top.parse_stat(farm_csv())
    a = ("be", "a")
    assert top.key_command("r", a, rows) == "set server be/a state ready"
    assert top.key_command("d", a, rows) == "set server be/a state drain"
    assert top.key_command("m", a, rows) == "set server be/a state maint"
    assert top.key_command("+", a, rows) == "set weight be/a 4"
    assert top.key_command("-", a, rows) == "set weight be/a 2"
    assert top.key_command("x", a, rows) is None
    assert top.key_command("r", None, rows) is None
    # the user weight is what changes (the weight column is 0 while draining)
    drained = [dict(r, weight="0") if r["svname"] == "a" else r for r in rows]
    assert top.key_command("+", a, drained) == "set weight be/a 4"
    # bounds
    low = [dict(r, uweight="0") for r in rows]
    high = [dict(r, uweight="256") for r in rows]
    assert top.key_command("-", a, low) == "set weight be/a 0"
    assert top.key_command("+", a, high) == "set weight be/a 256"
