"""farm logs --summary (farm/logsummary.py): halog's numbers from parsed
access-log lines, whatever their format."""

from __future__ import annotations

from collections import Counter

from farm import logs
from farm.logsummary import Summary, percentile
from farm.logtail import parse_line


def record(server: str, status: int, tc: int, tr: int, ta: int, backend: str = "be") -> dict:
    return {"client_ip": "127.0.0.1", "client_port": 40000, "accept_time": 1_700_000_000.25,
            "frontend": "fe", "backend": backend, "server": server, "tr": 0, "tw": 0, "tc": tc,
            "tr_server": tr, "ta": ta, "status": status, "bytes_read": 10,
            "captured_request_cookie": "-", "captured_response_cookie": "-",
            "termination_state": "----", "actconn": 1, "feconn": 1, "beconn": 0, "srv_conn": 0,
            "retries": 0, "redispatched": False, "srv_queue": 0, "backend_queue": 0,
            "request": "GET / HTTP/1.1"}


RECORDS = [
    record("s1", 200, 1, 10, 12), record("s1", 200, 0, 30, 31), record("s2", 404, 2, 5, 8),
    record("s2", 200, 1, 50, 60), record("s2", 502, 1, -1, 7),           # no response: not ok
    record("<NOSRV>", 503, -1, -1, 3, backend="be"), record("s1", 301, 0, 2, 2),
]


def summarize(lines) -> dict:
    s = Summary()
    for line in lines:
        e = parse_line(line)
        if e is None:
            s.count_unparsed()
        else:
            s.add(e)
    return s.as_dict()


def test_json_and_httplog_lines_give_the_same_summary():
    a = summarize(logs.httplog_line(r) for r in RECORDS)
    b = summarize(logs.json_http_line(r) for r in RECORDS)
    assert a == b
    assert a["requests"] == 7 and a["tcp_sessions"] == 0
    assert a["status_codes"] == {"200": 3, "301": 1, "404": 1, "502": 1, "503": 1}
    assert a["status_classes"] == {"1xx": 0, "2xx": 3, "3xx": 1, "4xx": 1, "5xx": 2, "other": 0}


def test_per_server_rows_follow_halog():
    d = summarize(logs.httplog_line(r) for r in RECORDS)["servers"]
    assert list(d) == ["be/<NOSRV>", "be/s1", "be/s2"]             # sorted like halog
    assert d["be/s2"] == {"1xx": 0, "2xx": 1, "3xx": 0, "4xx": 1, "5xx": 1, "other": 0,
                          "tot_req": 3, "req_ok": 2, "pct_ok": 66.7,
                          "avg_ct": 1,            # (2 + 1 + 1) // 3
                          "avg_rt": 27}           # (5 + 50) // 2: the -1 is left out
    assert d["be/<NOSRV>"]["req_ok"] == 0 and d["be/<NOSRV>"]["avg_ct"] == 0


def test_percentiles_use_only_requests_without_a_failed_phase():
    p = summarize(logs.httplog_line(r) for r in RECORDS)["percentiles"]
    assert p["requests"] == 5
    # Tr of the clean requests: 2 5 10 30 50
    assert p["50.0"]["Tr"] == 5         # floor(5 * 0.5) = 2 requests <= 5
    assert p["90.0"]["Tr"] == 30        # floor(4.5) = 4 requests <= 30
    assert p["100.0"] == {"Tc": 2, "Tr": 50, "Ta": 60}


def test_percentile_rule():
    counts = Counter({1: 1, 2: 1, 3: 1, 4: 1, 100: 1})
    assert percentile(counts, 5, 500) == 2
    assert percentile(counts, 5, 999) == 4      # floor(4.995) = 4
    assert percentile(counts, 5, 1000) == 100
    assert percentile(Counter({7: 3}), 3, 100) == 7    # threshold 0: the smallest value
    assert percentile(Counter(), 0, 500) is None


def test_tcp_sessions_and_noise_are_counted_apart():
    tcp = logs.tcplog_line({"client_ip": "127.0.0.1", "client_port": 1, "accept_time": 1.0,
                            "frontend": "fe", "backend": "be", "server": "s1", "tw": 0, "tc": 1,
                            "tt": 100, "bytes_read": 5, "termination_state": "--", "actconn": 1,
                            "feconn": 1, "beconn": 1, "srv_conn": 1, "retries": 0, "srv_queue": 0,
                            "backend_queue": 0})
    s = Summary()
    for line in [tcp, logs.httplog_line(RECORDS[0]), "garbage"]:
        e = parse_line(line)
        s.add(e) if e is not None else s.count_unparsed()
    d = s.as_dict()
    assert (d["requests"], d["tcp_sessions"], d["unparsed_lines"]) == (1, 1, 1)
    text = s.render()
    assert "tcp sessions: 1" in text and "lines not understood: 1" in text
    assert "be/s1" in text


def test_an_empty_log_renders():
    assert Summary().render().startswith("requests: 0")
