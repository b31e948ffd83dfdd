"""Debian's prometheus-haproxy-exporter scraping farm through the admin
UNIX SOCKET (--haproxy.scrape-uri=unix:PATH: `show stat` and `show info`
in HAProxy's one-shot framing), as it scrapes HAProxy's stats socket.
(tests/integration/test_stats.py covers the HTTP ";csv" URI.)"""

from __future__ import annotations

import http.client
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.backends import free_port
from tests.integration.simple_http import NamedServer
from tests.integration.test_top import cli, farm_config, get, statuses, wait_for
from tests.integration.tools import debian_tool


@pytest.fixture
def three():
    servers = [NamedServer(n) for n in ("a", "b", "c")]
    yield servers
    for s in servers:
        s.close()


@pytest.fixture
def exporter(tmp_path):
    binary = debian_tool("prometheus-haproxy-exporter")
    if binary is None:
        pytest.skip("prometheus-haproxy-exporter is not installable here")
    procs = []

    def start(sock: Path) -> int:
        port = free_port()
        log = open(tmp_path / "exporter.log", "ab")
        procs.append((subprocess.Popen(
            [binary, f"--web.listen-address=127.0.0.1:{port}", f"--haproxy.scrape-uri=unix:{sock}",
             "--haproxy.timeout=3s"],
            stdout=log, stderr=subprocess.STDOUT), log))
        return port
    yield start
    for p, log in procs:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


def scrape(port: int) -> dict | None:
    """GET /metrics -> {'name{labels}': value}, None while not listening."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            c.request("GET", "/metrics")
            r = c.getresponse()
            body = r.read().decode()
        finally:
            c.close()
    except OSError:
        return None
    if r.status != 200:
        return None
    metrics = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            metrics[name] = float(value)
    return metrics


def test_exporter_scrapes_farm_through_the_admin_socket(farm_factory, three, tmp_path, exporter):
    a, b, c = three
    sock = tmp_path / "admin.sock"
    port = free_port()
    farm = farm_factory(farm_config(port, sock, three))
    b.health_status = 500                                # b: DOWN by its check
    cli(sock, "disable server be/c")                     # c: MAINT
    wait_for(lambda: statuses(sock) == {"a": "UP", "b": "DOWN", "c": "MAINT"}, what="a UP, b DOWN, c MAINT")
    for _ in range(10):
        assert get(port) == "a"
    time.sleep(0.6)                                      # the workers publish counters every 0.25 s
    eport = exporter(sock)
    m = wait_for(lambda: scrape(eport), timeout=10, what="the exporter's /metrics")
    log = (tmp_path / "exporter.log").read_text
    assert m["haproxy_up"] == 1, log()
    # haproxy_exporter_csv_parse_failures (older exporters) or ..._total (0.14)
    failures = [v for k, v in m.items() if k.startswith("haproxy_exporter_csv_parse_failures")]
    assert failures == [0], log()
    assert "level=error" not in log(), log()
    # show info through the socket too
    version = [k for k in m if k.startswith("haproxy_version_info{")]
    assert version and 'version="0.1.0"' in version[0], version
    # one series per farm server, with farm's states
    assert m['haproxy_server_up{backend="be",server="a"}'] == 1
    assert m['haproxy_server_up{backend="be",server="b"}'] == 0
    assert m['haproxy_server_up{backend="be",server="c"}'] == 0
    assert m['haproxy_backend_up{backend="be"}'] == 1
    assert m['haproxy_server_weight{backend="be",server="a"}'] == 1
    # the counters of the traffic above
    assert m['haproxy_server_sessions_total{backend="be",server="a"}'] == 10
    assert m['haproxy_server_sessions_total{backend="be",server="b"}'] == 0
    assert m['haproxy_server_http_responses_total{backend="be",code="2xx",server="a"}'] == 10
    assert m['haproxy_frontend_http_requests_total{frontend="fe"}'] == 10
    assert m['haproxy_frontend_current_sessions{frontend="fe"}'] == 0
    assert m['haproxy_backend_sessions_total{backend="be"}'] == 10
    # lbtot: the balance algorithm chose a for each, on the backend's row too
    assert m['haproxy_server_server_selected_total{backend="be",server="a"}'] == 10
    assert m['haproxy_backend_server_selected_total{backend="be"}'] == 10
    assert m['haproxy_backend_max_sessions{backend="be"}'] == 1
    assert m['haproxy_server_check_duration_seconds{backend="be",server="a"}'] >= 0

    # state changes through the socket show in the next scrape
    cli(sock, "enable server be/c")
    b.health_status = 200
    wait_for(lambda: statuses(sock) == {"a": "UP", "b": "UP", "c": "UP"}, what="all UP")
    m = scrape(eport)
    assert [m[f'haproxy_server_up{{backend="be",server="{n}"}}'] for n in "abc"] == [1, 1, 1]
    assert m["haproxy_up"] == 1

    # farm gone: the exporter reports haproxy_up 0 (and keeps running)
    farm.stop()
    m = wait_for(lambda: (lambda x: x if x and x["haproxy_up"] == 0 else None)(scrape(eport)),
                 timeout=10, what="haproxy_up 0")
    assert not any(k.startswith("haproxy_server_up{") for k in m)
