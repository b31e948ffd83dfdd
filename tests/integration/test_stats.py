"""The stats listener of a real farm: HTML, CSV, JSON and Prometheus from the
shared-memory counters of every worker, basic auth, admin actions through
the master's admin socket, and Debian's prometheus-haproxy-exporter reading
farm's CSV as it reads HAProxy's."""

from __future__ import annotations

import base64
import csv as pycsv
import http.client
import io
import json
import signal
import socket
import subprocess
import time

import pytest

from tests.integration.backends import free_port
from tests.integration.simple_http import NamedServer
from tests.integration.tools import debian_tool

FLUSH_WAIT = 3.0        # the workers copy their counters to shm every 0.25 s


def stats_config(port: int, sport: int, servers: list, workers: int = 2, stats_extra: str = "",
                 check: str = "", global_extra: str = "") -> str:
    entries = "".join(f'[[backends.be.servers]]\nname = "{s.name}"\naddress = "{s.address}"\n'
                      for s in servers)
    return f"""
[global]
workers = {workers}
hard_stop_after = "2s"
{global_extra}
[log]
events = "@EVENTS@"
[stats]
bind = "127.0.0.1:{sport}"
refresh = "5s"
{stats_extra}
[defaults]
mode = "http"
[frontends.fe]
bind = "127.0.0.1:{port}"
default_backend = "be"
[backends.be]
{check}
{entries}
"""


def request(port: int, method: str = "GET", path: str = "/", headers: dict | None = None,
            body: bytes | None = None) -> tuple[int, dict, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def csv_rows(sport: int, headers: dict | None = None, path: str = "/;csv") -> dict:
    status, hdrs, body = request(sport, path=path, headers=headers)
    assert status == 200, body
    assert hdrs["content-type"].startswith("text/plain")
    lines = list(pycsv.reader(io.StringIO(body.decode().strip())))
    header = lines[0]
    header[0] = header[0][2:]                    # "# pxname"
    for row in lines[1:]:
        assert len(row) == len(header)
    return {(r[0], r[1]): dict(zip(header, r)) for r in lines[1:]}


def wait_for(pred, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"condition not met in {timeout}s (last: {last!r})")


@pytest.fixture
def two():
    a, b = NamedServer("a"), NamedServer("b")
    yield a, b
    a.close()
    b.close()


def send(port: int, n: int) -> None:
    for _ in range(n):                  # a new connection each: both workers serve some
        status, _, _ = request(port)
        assert status == 200


def test_stats_formats_over_two_workers(farm_factory, two):
    from prometheus_client.parser import text_string_to_metric_families
    port, sport = free_port(), free_port()
    farm = farm_factory(stats_config(port, sport, list(two)))
    assert len(farm.workers()) == 2
    n = 40
    send(port, n)

    def settled():
        rows = csv_rows(sport)
        return rows if int(rows[("be", "a")]["stot"]) + int(rows[("be", "b")]["stot"]) >= n else None
    rows = wait_for(settled, FLUSH_WAIT)
    fe, be = rows[("fe", "FRONTEND")], rows[("be", "BACKEND")]
    a, b = rows[("be", "a")], rows[("be", "b")]
    assert list(rows) == [("fe", "FRONTEND"), ("stats", "FRONTEND"), ("be", "a"), ("be", "b"),
                          ("be", "BACKEND")]
    assert int(a["stot"]) + int(b["stot"]) == n
    assert int(a["lbtot"]) + int(b["lbtot"]) == n
    assert int(a["stot"]) > 0 and int(b["stot"]) > 0        # round robin
    assert a["status"] == "no check" and be["status"] == "UP" and fe["status"] == "OPEN"
    assert int(be["weight"]) == 2 and int(be["act"]) == 2
    assert a["addr"] == two[0].address and be["algo"] == "roundrobin"
    # the stats listener counts itself (its other worker's column within a flush)
    st = wait_for(lambda: (lambda r: r if int(r["hrsp_2xx"]) >= 1 else None)(
        csv_rows(sport)[("stats", "FRONTEND")]), FLUSH_WAIT)
    assert int(st["req_tot"]) >= 2 and int(st["stot"]) >= 2
    assert int(st["bin"]) > 0 and int(st["bout"]) > 0 and int(st["intercepted"]) >= 1

    status, hdrs, body = request(sport, path="/metrics")
    assert status == 200
    assert hdrs["content-type"].startswith("text/plain; version=0.0.4")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    assert (samples[("haproxy_server_sessions_total", (("proxy", "be"), ("server", "a")))]
            + samples[("haproxy_server_sessions_total", (("proxy", "be"), ("server", "b")))]) == n
    assert samples[("haproxy_process_nbproc", ())] == 2
    assert samples[("haproxy_process_relative_process_id", ())] == 1
    assert samples[("haproxy_server_status", (("proxy", "be"), ("server", "a"), ("state", "UP")))] == 1
    assert samples[("haproxy_backend_status", (("proxy", "be"), ("state", "UP")))] == 1
    assert samples[("haproxy_frontend_status", (("proxy", "fe"), ("state", "UP")))] == 1

    status, hdrs, body = request(sport, path="/")
    assert status == 200 and hdrs["content-type"].startswith("text/html")
    page = body.decode()
    assert '<meta http-equiv="refresh" content="5;url=/">' in page
    for name in (">fe<", ">be<", ">a<", ">b<", ">stats<"):
        assert name in page
    assert "<form" not in page                                  # admin is off

    status, hdrs, body = request(sport, path="/;json")
    assert status == 200 and hdrs["content-type"] == "application/json"
    objs = json.loads(body)
    assert [o[1]["value"]["value"] for o in objs] == ["FRONTEND", "FRONTEND", "a", "b", "BACKEND"]

    status, _, body = request(sport, path="/;typed")
    assert status == 200 and b"F.1.0.0.pxname.1:KNS:str:fe\n" in body


def test_http_counters_reflect_traffic_over_two_workers(farm_factory, two):
    port, sport = free_port(), free_port()
    farm_factory(stats_config(port, sport, list(two)))
    n = 40
    send(port, n)

    def settled():
        rows = csv_rows(sport)
        return rows if int(rows[("fe", "FRONTEND")]["req_tot"] or 0) >= n else None
    rows = wait_for(settled, FLUSH_WAIT)
    fe, be = rows[("fe", "FRONTEND")], rows[("be", "BACKEND")]
    a, b = rows[("be", "a")], rows[("be", "b")]
    assert int(fe["req_tot"]) == n and int(fe["hrsp_2xx"]) == n
    assert int(fe["stot"]) == n and int(fe["conn_tot"]) == n
    assert int(fe["bin"]) > 0 and int(fe["bout"]) > 0
    assert int(be["req_tot"]) == n and int(be["hrsp_2xx"]) == n and int(be["stot"]) == n
    assert int(a["hrsp_2xx"]) + int(b["hrsp_2xx"]) == n
    assert int(a["req_tot"]) + int(b["req_tot"]) == n
    body = request(sport, path="/metrics")[2].decode()
    assert f'haproxy_frontend_http_requests_total{{proxy="fe"}} {n}\n' in body
    assert f'haproxy_frontend_http_responses_total{{proxy="fe",code="2xx"}} {n}\n' in body


def test_basic_auth(farm_factory, two):
    port, sport = free_port(), free_port()
    farm_factory(stats_config(port, sport, list(two), stats_extra='auth = "admin:s3cret"\nuri = "/stats"'))
    for path in ("/stats", "/stats;csv", "/metrics"):
        status, hdrs, _ = request(sport, path=path)
        assert status == 401
        assert hdrs["www-authenticate"].startswith("Basic realm=")
        assert request(sport, path=path, headers=basic("admin", "nope"))[0] == 401
        assert request(sport, path=path, headers=basic("admin", "s3cret"))[0] == 200
    assert request(sport, path="/", headers=basic("admin", "s3cret"))[0] == 404
    assert csv_rows(sport, basic("admin", "s3cret"), "/stats;csv")[("be", "a")]["status"] == "no check"


def test_errors_keepalive_and_head(farm_factory, two):
    port, sport = free_port(), free_port()
    farm_factory(stats_config(port, sport, list(two)))
    assert request(sport, path="/nope")[0] == 404
    status, hdrs, _ = request(sport, method="DELETE", path="/")
    assert status == 405 and hdrs["allow"] == "GET, HEAD"
    assert request(sport, method="POST", path="/", body=b"b=be&s=a&action=drain")[0] == 405
    status, hdrs, body = request(sport, method="HEAD", path="/;csv")
    assert status == 200 and body == b"" and int(hdrs["content-length"]) > 1000
    # two pipelined requests on one keep-alive connection, answered in order
    with socket.create_connection(("127.0.0.1", sport), timeout=5) as s:
        s.sendall(b"GET /;csv HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 404 Not Found\r\n" in data
    # a malformed request: 400 and close
    with socket.create_connection(("127.0.0.1", sport), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 400 ")


def test_server_down_after_failed_checks_is_visible(farm_factory, two):
    a, b = two
    port, sport = free_port(), free_port()
    check = ('[backends.be.check]\ntype = "http"\npath = "/healthz"\ninterval = "200ms"\n'
             "rise = 2\nfall = 2\n")
    farm = farm_factory(stats_config(port, sport, [a, b], check=check))
    wait_for(lambda: csv_rows(sport)[("be", "b")]["status"] == "UP", 3)
    b.health_status = 503
    farm.wait_event("server_down", 5)
    rows = csv_rows(sport)
    sb, sa, be = rows[("be", "b")], rows[("be", "a")], rows[("be", "BACKEND")]
    assert sb["status"] == "DOWN"
    assert sb["check_status"] == "L7STS" and sb["check_code"] == "503"
    assert sb["check_desc"] == "Layer7 wrong status"
    assert int(sb["chkdown"]) == 1 and int(sb["chkfail"]) == 2     # not the failures after
    assert sa["status"] == "UP" and sa["check_status"] == "L7OK"
    assert be["status"] == "UP" and int(be["act"]) == 1 and int(be["weight"]) == 1
    body = request(sport, path="/metrics")[2].decode()
    assert 'haproxy_server_status{proxy="be",server="b",state="DOWN"} 1' in body
    assert 'haproxy_server_check_status{proxy="be",server="b",state="L7STS"} 1' in body
    page = request(sport, path="/")[2].decode()
    assert 'class="st down">DOWN<' in page


def test_admin_actions_from_the_page(farm_factory, two, tmp_path):
    port, sport = free_port(), free_port()
    sock = tmp_path / "admin.sock"
    farm_factory(stats_config(port, sport, list(two), stats_extra="admin = true",
                              global_extra=f'admin_socket = "{sock}"'))
    page = request(sport, path="/")[2].decode()
    assert '<option value="drain">' in page and 'class="sel" name="s" value="a"' in page
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, hdrs, _ = request(sport, "POST", "/", form, b"b=be&s=a&action=drain")
    assert status == 303 and hdrs["location"] == "/;st=DONE"
    rows = csv_rows(sport)
    assert rows[("be", "a")]["status"] == "DRAIN"
    assert rows[("be", "BACKEND")]["weight"] == "1" and rows[("be", "BACKEND")]["act"] == "1"
    status, hdrs, _ = request(sport, "POST", "/", form, b"b=be&s=a&s=b&action=maint")
    assert hdrs["location"] == "/;st=DONE"
    rows = csv_rows(sport)
    assert rows[("be", "a")]["status"] == "MAINT" and rows[("be", "b")]["status"] == "MAINT"
    assert rows[("be", "BACKEND")]["status"] == "DOWN"
    request(sport, "POST", "/", form, b"b=be&s=a&s=b&action=ready")
    assert csv_rows(sport)[("be", "a")]["status"] == "no check"
    status, hdrs, _ = request(sport, "POST", "/", form, b"b=be&s=a&s=b&action=shutdown")
    assert status == 303 and hdrs["location"] == "/;st=DONE"           # kill sessions
    status, hdrs, _ = request(sport, "POST", "/", form, b"b=be&s=zz&action=drain")
    assert status == 303 and hdrs["location"] == "/;st=ERRP"
    assert "Action not processed because of invalid parameters." in request(
        sport, path="/;st=ERRP")[2].decode()


def history(sport: int, since: int = 0) -> dict:
    status, hdrs, body = request(sport, path="/;history" + (f";since={since}" if since else ""))
    assert status == 200 and hdrs["content-type"] == "application/json"
    return json.loads(body)


def test_history_of_the_graphs_follows_traffic_and_survives_a_reload(farm_factory, two):
    port, sport = free_port(), free_port()
    farm = farm_factory(stats_config(port, sport, list(two)))
    wait_for(lambda: history(sport)["seq"] >= 1, 5, 0.1)     # the sampler's baseline is taken
    n = 40
    send(port, n)
    # every timed session lands in one sample (counts, not rates, are exact)
    d = wait_for(lambda: (lambda d: d if sum(d["be"]["be"]["timed"]) == n else None)(history(sport)),
                 5, 0.2)
    assert set(d["fe"]) == {"fe", "stats"} and set(d["be"]) == {"be"}
    assert len(d["t"]) == d["seq"] and d["t"] == sorted(d["t"])
    assert sum(d["fe"]["fe"]["timed"]) == n                  # the frontend's Ta, for its graph
    assert max(d["fe"]["fe"]["req"]) > 0 and max(d["be"]["be"]["2xx"]) > 0
    assert sum(d["be"]["be"]["rtime"]) <= sum(d["be"]["be"]["ttime"])
    later = wait_for(lambda: (lambda x: x if x["seq"] > d["seq"] else None)(history(sport, d["seq"])), 3)
    assert len(later["t"]) == later["seq"] - d["seq"] and later["t"][0] > d["t"][-1]
    # a reload keeps the history: same samples, numbers going on
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_done", 10)
    after = wait_for(lambda: (lambda x: x if x["seq"] > later["seq"] else None)(history(sport)), 5)
    assert after["t"][:len(d["t"])] == d["t"]
    assert sum(after["be"]["be"]["timed"]) == n


def test_prometheus_haproxy_exporter_reads_farm_csv(farm_factory, two, tmp_path):
    binary = debian_tool("prometheus-haproxy-exporter")
    if binary is None:
        pytest.skip("prometheus-haproxy-exporter is not installable here")
    a, b = two
    port, sport, eport = free_port(), free_port(), free_port()
    check = ('[backends.be.check]\ntype = "http"\npath = "/healthz"\ninterval = "200ms"\n'
             "rise = 2\nfall = 2\n")
    farm = farm_factory(stats_config(port, sport, [a, b], check=check))
    b.health_status = 500                          # a DOWN server in the CSV too
    farm.wait_event("server_down", 5)
    for _ in range(10):
        request(port)
    time.sleep(0.5)
    log = open(tmp_path / "exporter.log", "wb")
    exporter = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{eport}",
         f"--haproxy.scrape-uri=http://127.0.0.1:{sport}/;csv"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        def scrape():
            try:
                status, _, body = request(eport, path="/metrics")
            except OSError:
                return None
            return body.decode() if status == 200 else None
        text = wait_for(scrape, 10, 0.1)
        metrics = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                metrics[name] = float(value)
        assert metrics["haproxy_up"] == 1, (tmp_path / "exporter.log").read_text()
        # haproxy_exporter_csv_parse_failures (older exporters) or ..._total (0.14)
        failures = [v for k, v in metrics.items() if k.startswith("haproxy_exporter_csv_parse_failures")]
        assert failures == [0], (tmp_path / "exporter.log").read_text()
        assert metrics['haproxy_server_up{backend="be",server="a"}'] == 1
        assert metrics['haproxy_server_up{backend="be",server="b"}'] == 0
        assert metrics['haproxy_backend_up{backend="be"}'] == 1
        assert metrics['haproxy_server_current_sessions{backend="be",server="a"}'] == 0
        assert metrics['haproxy_frontend_current_sessions{frontend="stats"}'] >= 0
    finally:
        exporter.terminate()
        try:
            exporter.wait(5)
        except subprocess.TimeoutExpired:
            exporter.kill()
            exporter.wait()
        log.close()
