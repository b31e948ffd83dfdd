"""HTTP/2 to servers (`proto = "h2"`): real clients (curl over HTTP/1.1 and
HTTP/2, nghttp) through the real master and workers to an HTTP/2 server
built on python-hyper's h2 (tests/integration/h2_backend.py): requests
and bodies both ways, trailers both ways, streams multiplexed on one
server connection up to the server's SETTINGS_MAX_CONCURRENT_STREAMS,
RST_STREAM as a 502, GOAWAY with retries of the refused streams, and
HTTP/1.1 servers of the same farm unchanged."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from tests.integration.backends import free_port, pattern
from tests.integration.h2_backend import H2Backend
from tests.integration.http_backend import HttpBackend
from tests.integration.tools import debian_tool
from tests.tlscerts import CA

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def h2s():
    b = H2Backend("h2s1")
    yield b
    b.close()


def config(address: str, port: int, workers: int = 1, server_extra: str = "",
           backend_extra: str = 'proto = "h2"', more: str = "") -> str:
    return f"""
[global]
workers = {workers}
hard_stop_after = "5s"
[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "httplog"
[defaults]
mode = "http"
[frontends.www]
bind = ["127.0.0.1:{port}"]
default_backend = "app"
[backends.app]
{backend_extra}
[[backends.app.servers]]
name = "s1"
address = "{address}"
{server_extra}
{more}
"""


def curl(url: str, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    cmd = ["curl", "-sS", "--max-time", "15", "-o", "-", "-w", "\n%{http_version} %{http_code}"]
    return subprocess.run(cmd + list(args) + [url], capture_output=True, timeout=30, input=data)


def test_http11_and_h2_clients_to_an_h2_server(farm_factory, h2s):
    port = free_port()
    farm = farm_factory(config(h2s.address, port))
    r = curl(f"http://127.0.0.1:{port}/name")
    assert r.stdout == b"h2s1\n1.1 200", r
    r = curl(f"http://127.0.0.1:{port}/name", "--http2-prior-knowledge")
    assert r.stdout == b"h2s1\n2 200", r
    req = h2s.requests[-1]
    assert req.method == "GET" and req.path == "/name"
    assert req.header(":authority") == f"127.0.0.1:{port}"
    assert req.header(":scheme") == "http"
    assert req.header("te") == "trailers"
    # a body both ways, larger than the windows (WINDOW_UPDATEs both ways)
    body = pattern(500_000)
    for extra in ([], ["--http2-prior-knowledge"]):
        r = curl(f"http://127.0.0.1:{port}/echo", *extra, "--data-binary", "@-", data=body)
        assert r.stdout.rsplit(b"\n", 1) == [body, b"2 200" if extra else b"1.1 200"], r.stderr
    r = curl(f"http://127.0.0.1:{port}/big?size=3000000", "--http2-prior-knowledge")
    assert r.stdout.rsplit(b"\n", 1) == [pattern(3_000_000), b"2 200"]
    lines = farm.wait_access_lines(5)
    assert len(lines) == 5, lines
    assert "app/s1" in lines[0] and " 200 " in lines[0] and '"GET /name HTTP/1.1"' in lines[0]
    assert f'"GET http://127.0.0.1:{port}/name HTTP/2.0"' in lines[1]
    # one server connection for all of them (pooled, one client after another)
    assert h2s.connections == 1


def test_trailers_both_ways(farm_factory, h2s):
    port = free_port()
    farm_factory(config(h2s.address, port))
    # response without content-length: chunked to an HTTP/1.1 client, with trailers
    r = subprocess.run(["curl", "-sS", "--raw", "--max-time", "10",
                        f"http://127.0.0.1:{port}/trailers?n=3"],
                       capture_output=True, timeout=20)
    raw = r.stdout
    assert raw.endswith(b"0\r\nx-checksum: 18\r\ngrpc-status: 0\r\n\r\n"), raw
    # ... and HEADERS trailers to an HTTP/2 client (nghttp shows them)
    nghttp = debian_tool("nghttp", "nghttp2-client")
    p = subprocess.run([nghttp, "-v", f"http://127.0.0.1:{port}/trailers?n=3"],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    assert "x-checksum: 18" in p.stdout and "grpc-status: 0" in p.stdout
    assert "part0;part1;part2;" in p.stdout
    # request trailers: HTTP/1.1 chunked trailers -> HTTP/2 trailers
    req = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Trailer: x-sum\r\nConnection: close\r\n\r\n"
           b"5\r\nhello\r\n0\r\nx-sum: 5\r\n\r\n")
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(req)
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    assert got.startswith(b"HTTP/1.1 200"), got
    assert h2s.requests[-1].body == b"hello"
    assert h2s.requests[-1].trailers == [("x-sum", "5")]


def test_streams_multiplexed_up_to_the_server_limit(farm_factory):
    h2s = H2Backend("h2s1", max_streams=4)
    try:
        port = free_port()
        farm = farm_factory(config(h2s.address, port))
        nghttp = debian_tool("nghttp", "nghttp2-client")
        # warm up: one connection, the server's SETTINGS known
        assert curl(f"http://127.0.0.1:{port}/name").stdout.endswith(b"200")
        urls = [f"http://127.0.0.1:{port}/slow?ms=400&i={i}" for i in range(10)]
        t0 = time.monotonic()
        p = subprocess.run([nghttp, "-n", "-s", "-m", "1"] + urls, capture_output=True,
                           text=True, timeout=30)
        elapsed = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        lines = farm.wait_access_lines(11)
        assert sum(" 200 " in line for line in lines) == 11, lines
        # 10 streams of 400 ms: several at once on a connection, never
        # more than 4 (the server's limit), so more than one connection
        assert h2s.max_open == 4
        assert 2 <= h2s.connections <= 4
        assert elapsed < 3.0
    finally:
        h2s.close()


def test_rst_stream_is_a_502_and_logged(farm_factory, h2s):
    port = free_port()
    farm = farm_factory(config(h2s.address, port))
    r = curl(f"http://127.0.0.1:{port}/reset")
    assert r.stdout.endswith(b"1.1 502"), r
    r = curl(f"http://127.0.0.1:{port}/reset", "--http2-prior-knowledge")
    assert r.stdout.endswith(b"2 502"), r
    lines = farm.wait_access_lines(2)
    assert all(" 502 " in line and " SH-- " in line for line in lines), lines
    # the connection still serves the next request
    assert curl(f"http://127.0.0.1:{port}/name").stdout == b"h2s1\n1.1 200"
    assert h2s.connections == 1


def test_goaway_refused_streams_are_retried(farm_factory):
    h2s = H2Backend("h2s1", goaway_after=2)
    try:
        port = free_port()
        farm = farm_factory(config(h2s.address, port))
        results = []

        def get(i):
            results.append(curl(f"http://127.0.0.1:{port}/slow?ms=300&i={i}").stdout)
        threads = [threading.Thread(target=get, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
            time.sleep(0.02)
        for t in threads:
            t.join()
        assert all(r.endswith(b"1.1 200") for r in results), results
        # the streams above the GOAWAY's last id went on new connections
        assert h2s.connections >= 2
        lines = farm.wait_access_lines(5)
        assert len(lines) == 5 and all(" 200 " in line for line in lines), lines
    finally:
        h2s.close()


def test_h2_server_down_is_503_and_h1_servers_unchanged(farm_factory):
    port = free_port()
    dead = f"127.0.0.1:{free_port()}"
    h1 = HttpBackend("h1s")
    try:
        text = config(dead, port)
        text = text.replace('default_backend = "app"',
                            'default_backend = "app"\n'
                            '[[frontends.www.use_backend]]\nbackend = "plain"\n'
                            'if = "{ path_beg /plain }"')
        text += f"""
[backends.plain]
[[backends.plain.servers]]
name = "p1"
address = "{h1.address}"
"""
        farm = farm_factory(text)
        r = curl(f"http://127.0.0.1:{port}/name")
        assert r.stdout.endswith(b"1.1 503"), r
        r = curl(f"http://127.0.0.1:{port}/plain/name")
        assert r.stdout.endswith(b"1.1 200") and r.stdout.startswith(b"h1s"), r
        assert h1.requests[-1].version == "HTTP/1.1"
        lines = farm.wait_access_lines(2)
        assert " 503 " in lines[0] and " SC-- " in lines[0], lines
    finally:
        h1.close()


def test_h2_over_tls_with_alpn(farm_factory, tmp_path):
    ca = CA(tmp_path / "pki")
    cert = ca.issue("app", "app.internal", ["app.internal"])
    h2s = H2Backend("tls1", tls=cert)
    try:
        port = free_port()
        # no alpn key: the backend's servers speak h2, so ALPN offers h2
        farm = farm_factory(config(h2s.address, port, server_extra="tls = true",
                                   more=f'[backends.app.tls]\nca = "{ca.cert}"\n'
                                        'sni = "app.internal"'))
        for extra in ([], ["--http2-prior-knowledge"]):
            r = curl(f"http://127.0.0.1:{port}/name", *extra)
            assert r.stdout.split(b"\n")[0] == b"tls1", r
        r = curl(f"http://127.0.0.1:{port}/trailers?n=2", "--raw")
        assert b"grpc-status: 0" in r.stdout
        assert h2s.alpn == ["h2"]
        assert h2s.requests[0].header(":scheme") == "https"
        lines = farm.wait_access_lines(3)
        assert all(" 200 " in line for line in lines), lines
    finally:
        h2s.close()


def test_maxconn_counts_streams(farm_factory, h2s):
    port = free_port()
    farm = farm_factory(config(h2s.address, port, server_extra="maxconn = 2"))
    nghttp = debian_tool("nghttp", "nghttp2-client")
    urls = [f"http://127.0.0.1:{port}/slow?ms=200&i={i}" for i in range(6)]
    p = subprocess.run([nghttp, "-n", "-s", "-m", "1"] + urls, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    lines = farm.wait_access_lines(6)
    assert sum(" 200 " in line for line in lines) == 6, lines
    # as HAProxy counts for HTTP/2 servers: maxconn limits the streams (the
    # others wait in the queue), over a single connection
    assert h2s.max_open == 2
    assert h2s.connections == 1


def test_server_timeout_and_client_abort_reset_the_stream_only(farm_factory, h2s):
    port = free_port()
    farm = farm_factory(config(h2s.address, port,
                               more='[backends.app.timeout]\nserver = "500ms"\n'))
    t0 = time.monotonic()
    r = curl(f"http://127.0.0.1:{port}/slow?ms=3000")
    assert r.stdout.endswith(b"1.1 504"), r
    assert time.monotonic() - t0 < 2.5
    # a client that gives up: its stream is cancelled, the connection goes on
    r = curl(f"http://127.0.0.1:{port}/slow?ms=3000", "--max-time", "0.3")
    assert r.returncode == 28
    assert curl(f"http://127.0.0.1:{port}/name").stdout == b"h2s1\n1.1 200"
    lines = farm.wait_access_lines(3)
    assert " 504 " in lines[0] and " sH-- " in lines[0], lines
    # (the abandoned request ends at its own server timeout: no abortonclose)
    assert sum(" 200 " in line for line in lines) == 1, lines
    assert h2s.connections == 1


def test_h2_client_trailers_reach_the_h2_server(farm_factory, h2s):
    """HTTP/2 client -> farm -> HTTP/2 server: request trailers as a
    trailing HEADERS frame both ways (python-hyper's h2 as the client)."""
    import socket

    import h2.config
    import h2.connection
    import h2.events
    port = free_port()
    farm_factory(config(h2s.address, port))
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                             header_encoding="utf-8"))
    c.initiate_connection()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":path", "/echo"),
                       (":authority", "x"), ("te", "trailers"), ("content-type", "x/y")])
    c.send_data(1, b"hello ")
    c.send_data(1, b"world")
    c.send_headers(1, [("x-sum", "11")], end_stream=True)
    s.sendall(c.data_to_send())
    body, heads, done = b"", [], False
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        data = s.recv(65536)
        if not data:
            break
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                heads.append(dict(ev.headers))
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, 1)
            elif isinstance(ev, h2.events.TrailersReceived):
                heads.append(dict(ev.headers))
            elif isinstance(ev, h2.events.StreamEnded):
                done = True
        s.sendall(c.data_to_send())
    s.close()
    assert done and body == b"hello world"
    assert heads[0][":status"] == "200"
    assert heads[-1] == {"x-echo-x-sum": "11"}
    assert h2s.requests[-1].trailers == [("x-sum", "11")]


def test_h2load_through_farm_to_an_h2_server(farm_factory, h2s):
    h2load = debian_tool("h2load", "nghttp2-client")
    port = free_port()
    farm_factory(config(h2s.address, port, workers=2))
    p = subprocess.run([h2load, "-n", "2000", "-c", "4", "-m", "20",
                        f"http://127.0.0.1:{port}/name"], capture_output=True,
                       text=True, timeout=90)
    assert "2000 succeeded, 0 failed, 0 errored" in p.stdout, p.stdout
    assert "status codes: 2000 2xx" in p.stdout
    assert len(h2s.requests) == 2000
    # multiplexed: far fewer server connections than requests (a few per worker)
    assert h2s.connections <= 8


def test_goaway_refused_posts_are_sent_again_with_their_body(farm_factory, tmp_path):
    """Streams sent before the server's GOAWAY arrived but above its last
    stream id were not processed: farm sends them again on a new
    connection, request body included (kept up to 64 KiB)."""
    h2s = H2Backend("h2s1", goaway_after=2)
    try:
        port = free_port()
        farm = farm_factory(config(h2s.address, port))
        nghttp = debian_tool("nghttp", "nghttp2-client")
        body = tmp_path / "body"
        body.write_bytes(pattern(20_000))
        # warm up: the connection is up and its SETTINGS known, so the
        # five streams below leave together, before the GOAWAY comes back
        assert curl(f"http://127.0.0.1:{port}/name").stdout.endswith(b" 200")
        urls = [f"http://127.0.0.1:{port}/echo?i={i}" for i in range(5)]
        p = subprocess.run([nghttp, "-n", "-s", "-d", str(body)] + urls, capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        lines = farm.wait_access_lines(6)
        assert sum(" 200 " in line for line in lines) == 6, lines
        posts = [r for r in h2s.requests if r.method == "POST"]
        assert len({r.path for r in posts}) == 5
        assert all(r.body == pattern(20_000) for r in posts)
        # some went again (the retries field of the log: .../<retries>)
        assert any(line.split(" 0/0 ")[0].endswith("/1") for line in lines), lines
        assert h2s.connections >= 2
    finally:
        h2s.close()


def test_http10_client_gets_a_close_delimited_body(farm_factory, h2s):
    import socket
    port = free_port()
    farm_factory(config(h2s.address, port))
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /trailers?n=2 HTTP/1.0\r\nHost: x\r\n\r\n")
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower(), got
    assert b"connection: close" in head.lower()
    assert body == b"part0;part1;"


def test_reload_old_worker_leaves_promptly_with_idle_h2_connections(farm_factory, h2s):
    import signal

    import psutil
    port = free_port()
    text = config(h2s.address, port).replace('hard_stop_after = "5s"', 'hard_stop_after = "30s"')
    farm = farm_factory(text)
    assert curl(f"http://127.0.0.1:{port}/name").stdout.endswith(b" 200")
    old = [psutil.Process(p.pid) for p in farm.workers()]
    t0 = time.monotonic()
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_done")
    # an idle HTTP/2 server connection does not hold the old worker (it has
    # no client session left): gone long before hard_stop_after
    gone, alive = psutil.wait_procs(old, timeout=10)
    assert not alive and time.monotonic() - t0 < 10
    assert curl(f"http://127.0.0.1:{port}/name").stdout.endswith(b" 200")
