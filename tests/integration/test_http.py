"""HTTP mode end to end: the real master and workers, real clients (curl,
wrk, ab, http.client, raw sockets) and real servers (tests/integration/
http_backend.py, nginx) on 127.0.0.1.

Rules, routing, balancing and cookies: test_http_rules.py; request
smuggling and protocol errors: test_http_smuggling.py.
"""

from __future__ import annotations

import collections
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.integration.backends import free_port, pattern
from tests.integration.http_backend import NGINX, NGINX_BODY, HttpBackend, Nginx, RawClient, build_request


def config(port: int, rest: str, workers: int = 1, timeouts: str = "", frontend: str = "",
           defaults: str = "") -> str:
    """A complete HTTP config: [global], [log] (httplog to @ACCESS@),
    [defaults], the frontend fe on port (default_backend be), then `rest`.
    timeouts: lines `name = "value"` that override the defaults below."""
    t = {"connect": '"1s"', "client": '"10s"', "server": '"10s"'}
    for line in timeouts.strip().splitlines():
        k, _, v = line.partition("=")
        t[k.strip()] = v.strip()
    timeouts = "\n".join(f"{k} = {v}" for k, v in t.items())
    return f"""
[global]
workers = {workers}
hard_stop_after = "3s"

[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "httplog"

[defaults]
mode = "http"
retries = 3
{defaults}

[defaults.timeout]
{timeouts}

[frontends.fe]
bind = "127.0.0.1:{port}"
default_backend = "be"
{frontend}

{rest}
"""


def servers(backend: str, *peers, extra: str = "") -> str:
    """[[backends.<backend>.servers]] entries; a peer is an HttpBackend (its
    name is the server name), or a (name, address) pair."""
    out = []
    for p in peers:
        name, address = (p.name, p.address) if hasattr(p, "address") else p
        out.append(f'[[backends.{backend}.servers]]\nname = "{name}"\naddress = "{address}"\n{extra}')
    return "\n".join(out)


def wait_lines(farm, n: int, timeout: float = 3.0) -> list[str]:
    """The access log once it has at least n lines (lines are written at
    the end of a loop turn, so they may lag the response a little)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = farm.access_lines()
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


# %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq "%r"
HTTPLOG = re.compile(
    r'(?P<ci>[\d.]+):(?P<cp>\d+) \[(?P<date>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3})\] '
    r'(?P<ft>\S+) (?P<b>\S+)/(?P<s>\S+) (?P<TR>-?\d+)/(?P<Tw>-?\d+)/(?P<Tc>-?\d+)/(?P<Tr>-?\d+)/(?P<Ta>-?\d+) '
    r'(?P<status>\d+) (?P<bytes>\d+) (?P<cc>\S+) (?P<cs>\S+) (?P<tsc>\S{4}) '
    r'(?P<ac>\d+)/(?P<fc>\d+)/(?P<bc>\d+)/(?P<sc>\d+)/(?P<rc>\+?\d+) (?P<sq>\d+)/(?P<bq>\d+) "(?P<r>[^"]*)"$')


def parse_log(line: str) -> dict:
    m = HTTPLOG.match(line)
    assert m, f"not an httplog line: {line!r}"
    return m.groupdict()


@pytest.fixture
def backend():
    b = HttpBackend("s1")
    yield b
    b.close()


@pytest.fixture
def two_backends():
    bs = [HttpBackend("s1"), HttpBackend("s2")]
    yield bs
    for b in bs:
        b.close()


def start(farm_factory, rest: str, **kw):
    port = free_port()
    farm = farm_factory(config(port, rest, **kw))
    return farm, port


# ------------------------------------------------------------ real clients

def test_curl_and_http_client_get_byte_exact_bodies(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    direct = subprocess.run(["curl", "-sS", "--fail", f"http://{backend.address}/big?size=1000000"],
                            capture_output=True, timeout=20).stdout
    assert direct == pattern(1_000_000)
    via = subprocess.run(["curl", "-sS", "--fail", f"http://127.0.0.1:{port}/big?size=1000000"],
                         capture_output=True, timeout=20)
    assert via.returncode == 0, via.stderr
    assert hashlib.sha256(via.stdout).hexdigest() == hashlib.sha256(direct).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for size in (0, 1, 65535, 65536, 65537, 1_000_000):
        conn.request("GET", f"/big?size={size}")
        r = conn.getresponse()
        assert r.status == 200
        assert r.getheader("Content-Length") == str(size)
        assert r.read() == pattern(size)
    conn.close()
    lines = wait_lines(farm, 7)
    assert len(lines) == 7
    assert all(parse_log(l)["status"] == "200" for l in lines)


def test_large_upload_and_slow_reader_are_byte_exact(farm_factory, backend):
    """Backpressure both ways: a 4 MB upload echoed back to a client that
    reads slowly; nothing lost, nothing reordered."""
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    payload = pattern(4 * 1024 * 1024)
    with RawClient(port, timeout=20) as c:
        sender = threading.Thread(target=c.send, args=(build_request("POST", "/echo", body=payload),))
        sender.start()
        time.sleep(0.5)        # let the buffers fill while nobody reads
        r = c.read_response("POST")
        sender.join(10)
        assert r.status == 200
        assert len(r.body) == len(payload) and r.body == payload
        r = c.request("GET", "/big?size=3000000")
        assert r.body == pattern(3_000_000)
    assert backend.requests[0].body == payload


@pytest.fixture
def nginx(tmp_path):
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed")
    d = tmp_path / "nginx"
    d.mkdir()
    n = Nginx(d)
    yield n
    n.close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_through_farm_has_no_errors(farm_factory, nginx):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", ("nginx", nginx.address)), workers=2)
    out = subprocess.run(["wrk", "-t1", "-c10", "-d2s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=30).stdout
    assert "Requests/sec" in out, out
    assert "Socket errors" not in out, out
    assert "Non-2xx" not in out, out
    done = int(re.search(r"(\d+) requests in", out).group(1))
    assert done > 100, out
    # and the last of them went through intact
    assert subprocess.run(["curl", "-sS", f"http://127.0.0.1:{port}/"], capture_output=True,
                          text=True).stdout == NGINX_BODY


@pytest.mark.skipif(shutil.which("ab") is None, reason="ab is not installed")
def test_ab_keepalive_500_requests_no_failures(farm_factory, nginx):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", ("nginx", nginx.address)))
    out = subprocess.run(["ab", "-n", "500", "-c", "10", "-k", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=30).stdout
    assert re.search(r"Complete requests:\s+500\b", out), out
    assert re.search(r"Failed requests:\s+0\b", out), out
    assert re.search(r"Keep-Alive requests:\s+500\b", out), out   # HTTP/1.0 keep-alive honoured
    assert re.search(r"Document Length:\s+%d bytes" % len(NGINX_BODY), out), out
    assert len(wait_lines(farm, 500)) == 500


def test_big_body_from_nginx_byte_exact(farm_factory, nginx):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", ("nginx", nginx.address)))
    via = subprocess.run(["curl", "-sS", "--fail", f"http://127.0.0.1:{port}/big"],
                         capture_output=True, timeout=20)
    assert via.returncode == 0, via.stderr
    via = via.stdout
    assert hashlib.sha256(via).digest() == hashlib.sha256(pattern(1_000_000)).digest()


# ------------------------------------------------------ keep-alive and reuse

def test_keepalive_50_requests_reuse_server_connections(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for i in range(50):
        conn.request("GET", f"/name?i={i}")
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"s1")
        assert r.getheader("Connection") is None       # keep-alive, nothing to say
    conn.close()
    assert len(backend.requests) == 50
    assert backend.connections <= 2, backend.connections
    # every request went out on the very first server connection
    assert {r.conn for r in backend.requests} == {1}
    lines = wait_lines(farm, 50)
    assert len(lines) == 50


def test_first_request_of_a_client_uses_its_own_server_connection(farm_factory, backend):
    """http-reuse safe: a new client's first request never rides on a
    connection another client left idle."""
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    for _ in range(3):
        with RawClient(port) as c:
            assert c.request("GET", "/name").status == 200
    assert backend.connections == 3
    # later requests of one client may reuse any idle connection
    with RawClient(port) as c:
        for _ in range(5):
            assert c.request("GET", "/name").body == b"s1"
    assert backend.connections == 4


def test_http_reuse_never_keeps_a_private_connection_per_client(farm_factory, backend):
    """HAProxy's "never": server connections are never shared between
    clients, but each client keeps its own for its later requests."""
    farm, port = start(farm_factory, '[backends.be]\nhttp_reuse = "never"\n' + servers("be", backend))
    a, b = RawClient(port), RawClient(port)
    for _ in range(5):
        assert a.request("GET", "/name").body == b"s1"
        assert b.request("GET", "/name").body == b"s1"
    a.close()
    with RawClient(port) as c:          # a's connection is gone, not handed over
        assert c.request("GET", "/name").body == b"s1"
    b.close()
    assert backend.connections == 3
    assert sorted(collections.Counter(r.conn for r in backend.requests).values()) == [1, 5, 5]


def test_http_reuse_always_shares_from_the_first_request(farm_factory, backend):
    farm, port = start(farm_factory, '[backends.be]\nhttp_reuse = "always"\n' + servers("be", backend))
    for _ in range(5):
        with RawClient(port) as c:
            assert c.request("GET", "/name").body == b"s1"
    assert backend.connections == 1


def test_http10_client_without_keepalive_is_closed(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        r = c.request("GET", "/name", version="HTTP/1.0", host=None)
        assert (r.status, r.body) == (200, b"s1")
        assert r.header("Connection") == "close"
        assert c.is_closed()
    with RawClient(port) as c:          # HTTP/1.0 keep-alive, as ab -k does
        for _ in range(3):
            r = c.request("GET", "/name", headers=[("Connection", "keep-alive")], version="HTTP/1.0",
                          host=None)
            assert (r.status, r.body, r.header("Connection")) == (200, b"s1", "keep-alive")


def test_head_and_204_have_no_body_and_connection_goes_on(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        r = c.request("HEAD", "/big?size=5000")
        assert r.status == 200 and r.header("Content-Length") == "5000" and r.body == b""
        r = c.request("GET", "/status/204")
        assert r.status == 204
        r = c.request("GET", "/status/304")
        assert r.status == 304
        r = c.request("GET", "/name")
        assert (r.status, r.body) == (200, b"s1")
        assert c.buf == b""


# -------------------------------------------------------------- framing

def test_chunked_request_relayed_exactly_with_trailers(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    wire = (b"5;ext=1\r\nhello\r\n"
            b"1\r\n \r\n"
            b"1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
            b"0\r\nX-Sum: 32\r\nX-Other: yes\r\n\r\n")
    with RawClient(port) as c:
        c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")]) + wire)
        r = c.read_response("POST")
        assert (r.status, r.body) == (200, b"hello abcdefghijklmnopqrstuvwxyz")
        got = backend.requests[-1]
        assert got.chunked and got.raw_body == wire
        assert got.trailers == b"X-Sum: 32\r\nX-Other: yes\r\n"
        assert got.header("Transfer-Encoding") == "chunked"
        assert got.header("Content-Length") is None
        # the connection goes on after a chunked request
        assert c.request("GET", "/name").body == b"s1"


def test_chunked_request_sent_in_pieces(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    wire = b"4\r\nwiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n"
    with RawClient(port) as c:
        c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")]))
        for i in range(0, len(wire), 3):
            c.send(wire[i:i + 3])
            time.sleep(0.01)
        r = c.read_response("POST")
        assert r.body == b"wikipedia in \r\n\r\nchunks."
    assert backend.requests[-1].raw_body == wire


def test_chunked_response_relayed_exactly_with_trailer(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        r = c.request("GET", "/chunked?n=5")
        assert r.status == 200
        assert r.header("Transfer-Encoding") == "chunked"
        chunks = [f"chunk {i} of s1;".encode() for i in range(5)]
        expected = b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in chunks)
        expected += b"0\r\nX-Checksum: %d\r\n\r\n" % sum(map(len, chunks))
        assert r.raw_body == expected
        assert r.trailers == b"X-Checksum: %d\r\n" % sum(map(len, chunks))
        assert c.request("GET", "/name").body == b"s1"
    out = subprocess.run(["curl", "-sS", "--raw", f"http://127.0.0.1:{port}/chunked?n=2"],
                         capture_output=True, timeout=10).stdout
    assert out.endswith(b"0\r\nX-Checksum: 28\r\n\r\n")


def test_trailer_announcement_is_relayed(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        r = c.request("GET", "/chunked?n=1")
        assert r.trailers.startswith(b"X-Checksum: ")
        assert r.header("Trailer") == "X-Checksum"


def test_expect_100_continue_with_curl(farm_factory, backend, tmp_path):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    f = tmp_path / "upload.bin"
    f.write_bytes(pattern(300_000))
    t0 = time.monotonic()
    r = subprocess.run(["curl", "-sS", "-v", "--fail", "-H", "Expect: 100-continue",
                        "--data-binary", f"@{f}", f"http://127.0.0.1:{port}/echo"],
                       capture_output=True, timeout=20)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert r.stdout == pattern(300_000)
    assert b"< HTTP/1.1 100 Continue" in r.stderr
    # curl waits 1 s for a 100 before sending anyway: the 100 came through
    assert elapsed < 0.9, elapsed
    got = backend.requests[-1]
    assert got.header("Expect") == "100-continue" and len(got.body) == 300_000


def test_expect_100_continue_raw_client_waits_for_it(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    body = b"x" * 1000
    with RawClient(port) as c:
        c.send(build_request("POST", "/echo", [("Expect", "100-continue"),
                                               ("Content-Length", str(len(body)))]))
        interim = c.read_response("POST", interim=True)
        assert interim.status == 100
        c.send(body)
        r = c.read_response("POST")
        assert (r.status, r.body) == (200, body)


def test_pipelining_three_requests_in_one_send(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        c.send(build_request("GET", "/name?n=1")
               + build_request("POST", "/echo", body=b"second")
               + build_request("GET", "/status/201"))
        r1, r2, r3 = c.read_response(), c.read_response("POST"), c.read_response()
        assert (r1.status, r1.body) == (200, b"s1")
        assert (r2.status, r2.body) == (200, b"second")
        assert (r3.status, r3.body) == (201, b"status 201")
    assert [r.target for r in backend.requests] == ["/name?n=1", "/echo", "/status/201"]
    lines = wait_lines(farm, 3)
    assert [parse_log(l)["r"] for l in lines] == [
        "GET /name?n=1 HTTP/1.1", "POST /echo HTTP/1.1", "GET /status/201 HTTP/1.1"]


def test_pipelined_requests_after_a_connection_close_are_ignored(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        c.send(build_request("GET", "/name", [("Connection", "close")]) + build_request("GET", "/echo"))
        r = c.read_response()
        assert (r.status, r.header("Connection")) == (200, "close")
        assert c.read_all() == b""
    assert backend.paths() == ["/name"]


# ----------------------------------------------------------- upgrades

def ws_handshake(c: RawClient, target: str = "/ws") -> None:
    c.send(build_request("GET", target, [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                         ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                         ("Sec-WebSocket-Version", "13")]))


def test_websocket_upgrade_then_raw_bytes_both_ways(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        ws_handshake(c)
        r = c.read_response()
        assert r.status == 101
        assert r.header("Upgrade") == "websocket"
        assert r.header("Connection").lower() == "upgrade"
        got = backend.requests[-1]
        assert got.header("Upgrade") == "websocket" and got.header("Connection").lower() == "upgrade"
        for msg in (b"\x81\x05hello", bytes(range(256)), b"GET / HTTP/1.1\r\n\r\n", pattern(200_000)):
            c.send(msg)
            echoed = c._exact(len(msg))
            assert echoed == msg
        c.sock.shutdown(socket.SHUT_WR)     # the half-close travels too
        assert c.read_all() == b""
    lines = wait_lines(farm, 1)
    assert len(lines) == 1
    rec = parse_log(lines[0])
    assert rec["status"] == "101" and rec["s"] == "s1"


def test_tunnel_end_frees_the_server_slot(farm_factory, backend):
    """A finished tunnel must give its server slot back: with maxconn = 1 a
    later request would otherwise wait in the queue forever."""
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend, extra="maxconn = 1\n"),
                       timeouts='queue = "1s"')
    for _ in range(2):
        with RawClient(port) as c:
            ws_handshake(c)
            assert c.read_response().status == 101
            c.send(b"ping")
            assert c._exact(4) == b"ping"
    time.sleep(0.2)
    with RawClient(port) as c:
        assert c.request("GET", "/name").status == 200
    lines = wait_lines(farm, 3)
    assert [parse_log(l)["status"] for l in lines] == ["101", "101", "200"]


def test_upgrade_refused_by_server_connection_stays_http(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        ws_handshake(c, "/name")           # /name ignores the upgrade: a plain 200
        r = c.read_response()
        assert (r.status, r.body) == (200, b"s1")
        r = c.request("GET", "/echo", body=b"still http")
        assert (r.status, r.body) == (200, b"still http")
    with RawClient(port) as c:             # a 426 refusal likewise
        c.send(build_request("GET", "/ws", [("Connection", "Upgrade"), ("Upgrade", "h2c")]))
        assert c.read_response().status == 426
        assert c.request("GET", "/name").body == b"s1"


# ----------------------------------------------------------- timeouts, queue

def test_slowloris_gets_408_and_is_closed(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend),
                       timeouts='http_request = "1s"')
    head = build_request("GET", "/name")
    with RawClient(port) as c:
        t0 = time.monotonic()
        got = b""
        for byte in head:
            try:
                c.send(bytes([byte]))
            except OSError:
                break
            c.sock.settimeout(0.3)
            try:
                data = c.sock.recv(65536)
            except socket.timeout:
                continue
            got += data
            break
        c.sock.settimeout(3)
        got += c.read_all()
        elapsed = time.monotonic() - t0
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert 0.9 <= elapsed < 2.5, elapsed
    assert backend.bytes_received == 0
    lines = wait_lines(farm, 1)
    rec = parse_log(lines[-1])
    assert rec["status"] == "408" and rec["tsc"].startswith("cR"), lines


def test_idle_keepalive_connection_closed_silently(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend),
                       timeouts='http_keep_alive = "300ms"\nhttp_request = "5s"')
    with RawClient(port) as c:
        assert c.request("GET", "/name").status == 200
        t0 = time.monotonic()
        assert c.read_all() == b""          # closed without a 408
        assert 0.2 < time.monotonic() - t0 < 2
    assert len(wait_lines(farm, 1)) == 1


def test_server_timeout_gives_504(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend),
                       timeouts='server = "300ms"')
    with RawClient(port) as c:
        r = c.request("GET", "/slow?ms=1500")
        assert r.status == 504
    rec = parse_log(wait_lines(farm, 1)[-1])
    assert rec["status"] == "504" and rec["tsc"].startswith("sH")
    assert int(rec["Tw"]) >= 0 and int(rec["Tc"]) >= 0 and rec["Tr"] == "-1", rec
    assert 250 <= int(rec["Ta"]) < 1500, rec


def test_server_maxconn_queue_timeout_gives_503_sQ(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend, extra="maxconn = 1\n"),
                       timeouts='queue = "300ms"')
    slow = RawClient(port)
    slow.send(build_request("GET", "/slow?ms=1500"))
    time.sleep(0.2)                                  # the slow one holds the only slot
    with RawClient(port) as c:
        t0 = time.monotonic()
        r = c.request("GET", "/name")
        assert r.status == 503
        assert 0.25 < time.monotonic() - t0 < 1.2
    assert slow.read_response().status == 200
    slow.close()
    with RawClient(port) as c:                       # the slot is free again
        assert c.request("GET", "/name").status == 200
    assert backend.max_active == 1
    lines = wait_lines(farm, 3)
    by_status = {parse_log(l)["status"]: parse_log(l) for l in lines}
    assert by_status["503"]["tsc"].startswith("sQ"), lines
    assert by_status["503"]["s"] == "<NOSRV>"
    # HAProxy's timers for it: the time spent queued, no connect, no response
    assert 250 <= int(by_status["503"]["Tw"]) < 1200, lines
    assert (by_status["503"]["Tc"], by_status["503"]["Tr"]) == ("-1", "-1"), lines
    assert "503" in by_status and "200" in by_status


def test_queued_request_is_served_when_the_slot_frees(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend, extra="maxconn = 1\n"),
                       timeouts='queue = "3s"')
    clients = [RawClient(port) for _ in range(4)]
    for c in clients:
        c.send(build_request("GET", "/slow?ms=150"))
    results = [c.read_response().status for c in clients]
    for c in clients:
        c.close()
    assert results == [200] * 4
    assert backend.max_active == 1
    lines = wait_lines(farm, 4)
    assert sum(int(parse_log(l)["Tw"]) > 0 for l in lines) >= 2     # they waited in the queue


# ------------------------------------------------------------- failures

def test_dead_server_is_retried_on_the_good_one(farm_factory, backend):
    dead = ("dead", f"127.0.0.1:{free_port()}")
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", dead, backend))
    for i in range(20):
        with RawClient(port) as c:
            r = c.request("GET", f"/name?i={i}")
            assert (r.status, r.body) == (200, b"s1")
    lines = wait_lines(farm, 20)
    assert all(parse_log(l)["s"] == "s1" for l in lines)
    assert any(parse_log(l)["rc"] in ("+1", "1") for l in lines)


def test_all_servers_dead_gives_503(farm_factory):
    dead = ("dead", f"127.0.0.1:{free_port()}")
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", dead))
    with RawClient(port) as c:
        r = c.request("GET", "/")
        assert r.status == 503
    rec = parse_log(wait_lines(farm, 1)[-1])
    assert rec["status"] == "503" and rec["tsc"].startswith("SC")


def test_reused_connection_closed_by_server_while_idle(farm_factory):
    """The server closes idle keep-alive connections after 200 ms; the next
    request of the client, 500 ms later, is served all the same."""
    b = HttpBackend("s1", idle_close=0.2)
    try:
        farm, port = start(farm_factory, "[backends.be]\n" + servers("be", b))
        with RawClient(port) as c:
            assert c.request("GET", "/name").body == b"s1"
            time.sleep(0.5)
            assert c.request("GET", "/name").body == b"s1"
            assert c.request("GET", "/name").body == b"s1"
        assert b.connections == 2
    finally:
        b.close()


def test_reused_connection_closed_as_request_arrives_is_retried_for_get(farm_factory):
    """The race the idle check cannot see: the server closes the reused
    connection when the request arrives. An idempotent request without a
    body is retried on a fresh connection; a POST is not (502)."""
    b = HttpBackend("s1", drop_after=1)
    try:
        farm, port = start(farm_factory, "[backends.be]\n" + servers("be", b))
        with RawClient(port) as c:
            assert c.request("GET", "/name?1").body == b"s1"
            r = c.request("GET", "/name?2")
            assert (r.status, r.body) == (200, b"s1")
            assert b.dropped == 1
            r = c.request("POST", "/echo", body=b"not idempotent")
            assert r.status == 502
        assert b.dropped == 2
        lines = wait_lines(farm, 3)
        recs = [parse_log(l) for l in lines]
        assert recs[1]["status"] == "200" and recs[1]["rc"] in ("1", "+1")
        assert recs[2]["status"] == "502" and recs[2]["tsc"].startswith("SH")
    finally:
        b.close()


def test_invalid_response_becomes_502(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        r = c.request("GET", "/badresponse")
        assert r.status == 502
    rec = parse_log(wait_lines(farm, 1)[-1])
    assert rec["status"] == "502" and rec["tsc"].startswith("SH")


def test_server_closing_after_response_is_not_an_error(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        for _ in range(3):
            r = c.request("GET", "/close")
            assert (r.status, r.body) == (200, b"s1")
            assert r.header("Connection") is None     # the client connection stays
    assert backend.connections == 3
    assert all(parse_log(l)["tsc"] == "----" for l in wait_lines(farm, 3))


def test_client_abort_mid_response_is_logged(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    c = RawClient(port)
    c.send(build_request("GET", "/big?size=20000000"))
    c.sock.recv(1000)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()                                     # reset
    rec = parse_log(wait_lines(farm, 1)[-1])
    assert rec["tsc"].startswith("CD"), rec
    with RawClient(port) as c:                    # the worker is fine
        assert c.request("GET", "/name").body == b"s1"


# ---------------------------------------------------------------- access log

def test_httplog_line_fields(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        r = c.request("GET", "/big?size=1234")
        assert r.status == 200
    rec = parse_log(wait_lines(farm, 1)[-1])
    assert rec["ci"] == "127.0.0.1" and rec["ft"] == "fe" and rec["b"] == "be" and rec["s"] == "s1"
    assert rec["status"] == "200"
    assert int(rec["bytes"]) == len(r.head) + 1234
    assert rec["tsc"] == "----" and rec["cc"] == "-" and rec["cs"] == "-"
    assert rec["r"] == "GET /big?size=1234 HTTP/1.1"
    # a lone request counts itself, as in HAProxy's "1/1/1/1/0"
    assert [rec[k] for k in ("ac", "fc", "bc", "sc", "rc", "sq", "bq")] == ["1", "1", "1", "1", "0", "0", "0"]
    assert all(int(rec[k]) >= 0 for k in ("TR", "Tw", "Tc", "Tr", "Ta"))
    assert int(rec["Ta"]) >= int(rec["Tr"])


@pytest.mark.skipif(shutil.which("halog") is None, reason="halog (haproxy package) is not installed")
def test_halog_reads_the_access_log(farm_factory, two_backends):
    s1, s2 = two_backends
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", s1, s2), workers=2)
    statuses = {}
    for i in range(30):
        with RawClient(port) as c:
            path = "/status/404" if i % 10 == 0 else "/name"
            r = c.request("GET", path)
            statuses[r.status] = statuses.get(r.status, 0) + 1
    lines = wait_lines(farm, 30)
    assert len(lines) == 30
    log = farm.access_path.read_bytes()
    # no syslog header before the client address: skip 4 fields less than
    # halog's default of 5
    out = subprocess.run(["halog", "-s", "-4", "-srv"], input=log, capture_output=True,
                         timeout=10).stdout.decode()
    # #srv_name 1xx 2xx 3xx 4xx 5xx other tot_req req_ok pct_ok avg_ct avg_rt
    counts = {}
    for line in out.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        f = line.split()
        counts[f[0]] = (int(f[2]), int(f[4]), int(f[7]))
    assert counts == {
        "be/s1": (sum(1 for r in s1.requests if r.path == "/name"),
                  sum(1 for r in s1.requests if r.path != "/name"), len(s1.requests)),
        "be/s2": (sum(1 for r in s2.requests if r.path == "/name"),
                  sum(1 for r in s2.requests if r.path != "/name"), len(s2.requests)),
    }, out
    st = subprocess.run(["halog", "-s", "-4", "-st"], input=log, capture_output=True,
                        timeout=10).stdout.decode()
    got = {int(a): int(b) for a, b in (l.split() for l in st.splitlines() if l and not l.startswith("#"))}
    assert got == statuses, st


# ------------------------------------------------------------ odd peers

def test_client_half_close_after_request_still_gets_the_response(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        c.send(build_request("GET", "/big?size=300000"))
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
        assert r.body == pattern(300_000)
        assert c.read_all() == b""
    assert parse_log(wait_lines(farm, 1)[-1])["tsc"] == "----"


def test_close_delimited_response_closes_the_client_connection(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        c.send(build_request("GET", "/noframing"))
        data = c.read_all()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"\r\nConnection: close" in head
    assert body == b"s1s1s1"


def test_interim_103_is_forwarded(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        c.send(build_request("GET", "/early"))
        hints = c.read_response(interim=True)
        assert hints.status == 103 and hints.header("Link") == "</style.css>; rel=preload"
        r = c.read_response()
        assert (r.status, r.body) == (200, b"s1")
        assert c.request("GET", "/name").body == b"s1"


def test_unchanged_heads_are_forwarded_as_received(farm_factory, backend):
    """The fast lane forwards a head nobody changed byte for byte, minus a
    plain Connection field, and farm's own fields go at the end."""
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        c.send(b"GET /headers HTTP/1.1\r\nHost: a\r\nX-Odd:value\r\n"
               b"Connection: keep-alive\r\nAccept: */*\r\n\r\n")
        r = c.read_response()
        assert r.body == b"GET /headers HTTP/1.1\r\nHost: a\r\nX-Odd:value\r\nAccept: */*\r\n\r\n"
        c.send(build_request("GET", "/rawhead"))
        head = c._until(b"\r\n\r\n")
        assert head == b"HTTP/1.1 200 OK\r\nX-Odd:value\r\nContent-Length: 2\r\n\r\n"
        assert c._exact(2) == b"ok"
        # one more on the same connections: nothing left over on either side
        assert c.request("GET", "/name").body == b"s1"


def test_forwardfor_fields_are_appended_to_the_received_head(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend),
                       frontend="option_forwardfor = true")
    with RawClient(port) as c:
        c.send(b"GET /headers HTTP/1.1\r\nHost: a\r\nX-Odd:value\r\n\r\n")
        r = c.read_response()
        assert r.body == (b"GET /headers HTTP/1.1\r\nHost: a\r\nX-Odd:value\r\n"
                          b"X-Forwarded-Proto: http\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n")


def test_unsolicited_bytes_after_a_response_do_not_poison_the_pool(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:
        r = c.request("GET", "/extra")
        assert (r.status, r.body) == (200, b"ok")
        for _ in range(3):
            r = c.request("GET", "/name")
            assert (r.status, r.body) == (200, b"s1")


def test_sigterm_finishes_inflight_request_and_closes_idle_ones(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    idle = RawClient(port)
    assert idle.request("GET", "/name").status == 200
    busy = RawClient(port)
    busy.send(build_request("GET", "/slow?ms=800"))
    time.sleep(0.2)
    farm.signal(signal.SIGTERM)
    r = busy.read_response()
    assert (r.status, r.body) == (200, b"s1")
    assert r.header("Connection") == "close"
    assert busy.is_closed()
    assert idle.is_closed(timeout=3)
    assert farm.proc.wait(5) == 0
    idle.close()
    busy.close()


# ------------------------------------------------------------ mixed load

def test_mixed_concurrent_traffic_with_aborts_keeps_the_worker_healthy(farm_factory, two_backends):
    """16 clients for 2 s, each mixing keep-alive GETs, uploads, chunked
    bodies, pipelining, upgrades, bad requests and aborts (mid-request,
    mid-response, by reset). Every answer must be right, the worker must
    survive, and once the clients are gone no client connection is left."""
    import random
    s1, s2 = two_backends
    # leastconn doubles as a leak detector: a server slot never given back
    # would make it avoid that server for good
    farm, port = start(farm_factory, '[backends.be]\nbalance = "leastconn"\n' + servers("be", s1, s2))
    worker = farm.workers()[0]
    stop = time.monotonic() + 2
    errors: list[str] = []
    done = [0]

    def client(seed: int) -> None:
        rnd = random.Random(seed)
        while time.monotonic() < stop:
            try:
                with RawClient(port, timeout=5) as c:
                    for _ in range(rnd.randint(1, 4)):
                        k = rnd.randrange(8)
                        if k == 0:
                            assert c.request("GET", "/name").body in (b"s1", b"s2")
                        elif k == 1:
                            body = pattern(rnd.randint(0, 200_000))
                            assert c.request("POST", "/echo", body=body).body == body
                        elif k == 2:
                            c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")])
                                   + b"3\r\nabc\r\n0\r\n\r\n")
                            assert c.read_response("POST").body == b"abc"
                        elif k == 3:
                            c.send(build_request("GET", "/name") * 3)
                            assert [c.read_response().status for _ in range(3)] == [200] * 3
                        elif k == 4:
                            ws_handshake(c)
                            assert c.read_response().status == 101
                            c.send(b"hello")
                            assert c._exact(5) == b"hello"
                            break
                        elif k == 5:
                            c.send(b"GET /name HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n")
                            assert c.read_response().status == 400
                            break
                        elif k == 6:
                            c.send(build_request("GET", "/big?size=500000"))
                            c.sock.recv(100)
                            if rnd.random() < 0.5:
                                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                  b"\x01\x00\x00\x00\x00\x00\x00\x00")
                            break
                        else:
                            c.send(build_request("POST", "/echo", [("Content-Length", "1000")]) + b"x" * 10)
                            break
                        done[0] += 1
            except Exception as e:      # noqa: BLE001 - reported below
                errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert errors == [] and done[0] > 200, (errors[:5], done[0])
    assert farm.workers()[0].pid == worker.pid            # it never crashed
    assert "Traceback" not in farm.output()
    # every client connection ends (lingering closes included); what stays
    # is the idle pool of server connections
    server_ports = {s1.port, s2.port}
    deadline = time.monotonic() + 5
    while True:
        left = [c for c in worker.net_connections() if c.raddr and c.raddr.port not in server_ports]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert left == []
    got = {get_name(port) for _ in range(6)}
    assert got == {b"s1", b"s2"}, got


def get_name(port: int) -> bytes:
    with RawClient(port) as c:
        r = c.request("GET", "/name")
        assert r.status == 200
        return r.body


def test_client_closing_inside_a_request_head_is_logged_CR(farm_factory, backend):
    farm, port = start(farm_factory, "[backends.be]\n" + servers("be", backend))
    with RawClient(port) as c:                       # connects, says nothing: no line
        pass
    with RawClient(port) as c:
        assert c.request("GET", "/name").status == 200
    with RawClient(port) as c:                       # half a head, then gone
        c.send(b"GET /name HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.1)
    lines = wait_lines(farm, 2)
    time.sleep(0.2)
    lines = farm.access_lines()
    assert len(lines) == 2, lines
    rec = parse_log(lines[1])
    assert (rec["status"], rec["tsc"], rec["r"]) == ("400", "CR--", "<BADREQ>")
    assert backend.bytes_received == len(backend.requests[0].head)


def test_json_access_log(farm_factory, backend):
    import json
    port = free_port()
    farm = farm_factory(config(port, "[backends.be]\n" + servers("be", backend)).replace(
        'format = "httplog"', 'format = "json"'))
    with RawClient(port) as c:
        c.request("GET", "/name?x=1")
        c.request("GET", "/status/404")
    lines = wait_lines(farm, 2)
    recs = [json.loads(l) for l in lines]
    assert [(r["status"], r["server"], r["termination_state"], r["request"]) for r in recs] == [
        (200, "s1", "----", "GET /name?x=1 HTTP/1.1"), (404, "s1", "----", "GET /status/404 HTTP/1.1")]
    assert recs[0]["frontend"] == "fe" and recs[0]["backend"] == "be" and recs[0]["client_ip"] == "127.0.0.1"
