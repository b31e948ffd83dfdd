"""The PROXY protocol end to end, with real peers on 127.0.0.1.

Receiving (accept_proxy binds): raw v1/v2 headers, HAProxy 2.6 with
send-proxy-v2 in front of farm, curl --haproxy-protocol, a TLS bind (the
header comes before the handshake), TCP mode; refused connections (no
header, garbage, a source outside proxy_trusted) are closed and logged.

Sending (send_proxy): farm in front of HAProxy (bind ... accept-proxy) and
nginx (listen ... proxy_protocol), v1 and v2, each side logging the
original client's address; connections that carried a header stay private
to their client; health checks send it too.

"The original client" is told apart from farm and the peers by its source
address: clients bind to 127.0.0.5 / 127.0.0.6 (all of 127/8 is local),
while farm and the peers talk to each other from 127.0.0.1.
"""

from __future__ import annotations

import http.client
import os
import pwd
import re
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.backends import EchoServer, TagServer, free_port
from tests.integration.haproxy_peer import Haproxy, cli, haproxy_binary
from tests.integration.http_backend import NGINX, HttpBackend
from tests.tlscerts import CA
from workers import proxyproto as pp

CLIENT_A = "127.0.0.5"
CLIENT_B = "127.0.0.6"


def wait_for(predicate, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def http_config(port: int, backend: str, bind: str | None = None, frontend: str = "",
                server: str = "", backend_extra: str = "", mode: str = "http",
                fmt: str = "httplog", admin: str = "") -> str:
    bind = bind or f'{{ address = "127.0.0.1:{port}", accept_proxy = true }}'
    return f"""
[global]
workers = 1
hard_stop_after = "3s"
{admin}

[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "{fmt}"

[defaults]
mode = "{mode}"
retries = 1

[defaults.timeout]
connect = "1s"
client = "3s"
server = "5s"

[frontends.fe]
bind = {bind}
default_backend = "be"
{frontend}

[backends.be]
{backend_extra}
[[backends.be.servers]]
name = "s1"
address = "{backend}"
{server}
"""


def request(port: int, head_first: bytes = b"", path: str = "/", source: str | None = None,
            host: str = "farm.test") -> bytes:
    """One HTTP/1.1 request (Connection: close) after head_first; the whole answer."""
    with socket.socket() as s:
        s.settimeout(5)
        if source:
            s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(head_first + f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return read_all(s)


def read_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            return out
        if not d:
            return out
        out += d


def header_of(backend: HttpBackend, name: str) -> str | None:
    req = backend.requests[-1]
    for k, v in req.headers:
        if k.lower() == name.lower():
            return v
    return None


@pytest.fixture
def backend():
    b = HttpBackend("s1")
    yield b
    b.close()


@pytest.fixture
def haproxy_bin():
    path = haproxy_binary()
    if path is None:
        pytest.skip("haproxy is not installed")
    return path


# ------------------------------------------------------------------ receiving

def test_v1_and_v2_headers_give_the_addresses_and_tlvs(farm_factory, backend):
    port = free_port()
    farm = farm_factory(http_config(port, backend.address, frontend="""
option_forwardfor = true
[[frontends.fe.http_request]]
action = "set-header"
name = "X-PP"
value = "%[src]:%[src_port]|%[dst]:%[dst_port]|%[fc_pp_authority]|%[fc_pp_unique_id]|%[fc_pp_tlv(SSL_CN)]"
"""))
    v1 = b"PROXY TCP4 203.0.113.7 192.0.2.10 40001 8443\r\n"
    # the header and the request split over two segments: read incrementally
    with socket.socket() as s:
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(v1[:20])
        time.sleep(0.1)
        s.sendall(v1[20:] + b"GET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(s).startswith(b"HTTP/1.1 200")
    assert header_of(backend, "X-Forwarded-For") == "203.0.113.7"
    assert header_of(backend, "X-PP") == "203.0.113.7:40001|192.0.2.10:8443|||"

    ssl_info = pp.SslInfo(pp.PP2_CLIENT_SSL | pp.PP2_CLIENT_CERT_CONN, 0, "TLSv1.3", "alice")
    v2 = pp.build_v2("2001:db8::7", 50000, "2001:db8::1", 443, [
        (pp.PP2_TYPE_AUTHORITY, b"www.example.com"), (pp.PP2_TYPE_UNIQUE_ID, b"uid-1"),
        (pp.PP2_TYPE_SSL, pp.ssl_tlv(ssl_info)[3:])], with_crc=True)
    assert request(port, v2, "/two").startswith(b"HTTP/1.1 200")
    assert header_of(backend, "X-Forwarded-For") == "2001:db8::7"
    assert header_of(backend, "X-PP") == "2001:db8::7:50000|2001:db8::1:443|www.example.com|uid-1|alice"

    # LOCAL (v2) and UNKNOWN (v1): the socket's own addresses
    assert request(port, pp.build_v2(None, None, None, None, local=True), "/three",
                   source=CLIENT_A).startswith(b"HTTP/1.1 200")
    assert header_of(backend, "X-Forwarded-For") == CLIENT_A
    assert request(port, b"PROXY UNKNOWN\r\n", "/four", source=CLIENT_B).startswith(b"HTTP/1.1 200")
    assert header_of(backend, "X-Forwarded-For") == CLIENT_B

    lines = wait_for(lambda: len(farm.access_lines()) >= 4 and farm.access_lines(), what="4 log lines")
    assert lines[0].startswith("203.0.113.7:40001 [") and '"GET /one HTTP/1.1"' in lines[0]
    assert lines[1].startswith("2001:db8::7:50000 [")
    assert lines[2].startswith(f"{CLIENT_A}:") and lines[3].startswith(f"{CLIENT_B}:")


def test_connections_without_a_valid_header_are_refused_and_logged(farm_factory, backend):
    port = free_port()
    farm = farm_factory(http_config(port, backend.address))
    # a plain HTTP request: no header
    assert request(port, source=CLIENT_A) == b""
    # a malformed v1 line, a v2 header with a bad command
    assert request(port, b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", source=CLIENT_A) == b""
    assert request(port, pp.V2_SIGNATURE + b"\x2f\x11\x00\x00", source=CLIENT_A) == b""
    # closed before a complete header
    with socket.socket() as s:
        s.bind((CLIENT_B, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"PROXY TCP4 1.2.3.4")
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) == b""
    assert backend.requests == []
    lines = wait_for(lambda: len(farm.access_lines()) >= 4 and farm.access_lines(), what="4 log lines")
    assert re.match(rf"{CLIENT_A}:\d+ \[.*\] fe/1: Received something which does not look like a "
                    r"PROXY protocol header$", lines[0]), lines[0]
    assert lines[1].endswith("fe/1: Received an invalid PROXY protocol header")
    assert lines[2].endswith("fe/1: Received an invalid PROXY protocol header")
    assert lines[3].startswith(CLIENT_B) and lines[3].endswith("fe/1: Truncated PROXY protocol header received")


def test_proxy_trusted_refuses_other_sources(farm_factory, backend):
    port = free_port()
    farm = farm_factory(http_config(port, backend.address, fmt="json",
                                    frontend='proxy_trusted = ["127.0.0.5/32", "10.0.0.0/8"]'))
    header = b"PROXY TCP4 198.51.100.9 192.0.2.1 1234 80\r\n"
    assert request(port, header, source=CLIENT_A).startswith(b"HTTP/1.1 200")
    assert header_of(backend, "X-Forwarded-For") is None     # forwardfor is off: nothing added
    assert request(port, header, source=CLIENT_B) == b""
    assert len(backend.requests) == 1
    lines = wait_for(lambda: len(farm.access_lines()) >= 2 and farm.access_lines(), what="2 log lines")
    assert '"client_ip":"198.51.100.9"' in lines[0]
    assert f'"client_ip":"{CLIENT_B}"' in lines[1]
    assert '"message":"PROXY protocol header from a source outside proxy_trusted"' in lines[1]


def test_refused_connections_give_their_maxconn_slot_back(farm_factory, backend):
    port = free_port()
    farm_factory(http_config(port, backend.address, frontend="maxconn = 1"))
    for _ in range(5):
        assert request(port) == b""                               # no header: refused
    header = b"PROXY TCP4 192.0.2.3 192.0.2.1 3333 80\r\n"
    assert request(port, header).startswith(b"HTTP/1.1 200")     # the one slot is free


def test_a_header_pending_across_a_reload_is_served(farm_factory, backend):
    port = free_port()
    farm = farm_factory(http_config(port, backend.address, frontend="option_forwardfor = true"))
    with socket.socket() as s:
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(b"PROXY TCP4 198.51.100.1 ")
        time.sleep(0.2)
        farm.signal(signal.SIGHUP)
        farm.wait_event("reload_done")
        s.sendall(b"192.0.2.1 1000 80\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_all(s)
    # the old worker, draining, finishes it and closes (Connection: close)
    assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
    assert header_of(backend, "X-Forwarded-For") == "198.51.100.1"


def test_header_timeout_is_timeout_client(farm_factory, backend):
    port = free_port()
    farm = farm_factory(http_config(port, backend.address).replace('client = "3s"', 'client = "300ms"'))
    with socket.socket() as s:
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(b"PROXY ")
        t0 = time.monotonic()
        assert read_all(s) == b""
        assert time.monotonic() - t0 < 3
    line = wait_for(lambda: farm.access_lines(), what="a log line")[0]
    assert line.endswith("fe/1: Timeout while waiting for PROXY protocol header")


def test_tls_bind_reads_the_header_before_the_handshake(farm_factory, backend, tmp_path):
    ca = CA(tmp_path / "pki")
    site = ca.issue("www", "www.example.com")
    port = free_port()
    cfg = http_config(port, backend.address,
                      bind=f'{{ address = "127.0.0.1:{port}", tls = true, accept_proxy = true }}',
                      frontend=f"""
option_forwardfor = true
[frontends.fe.tls]
certificates = ["{site.pem}"]
""")
    farm_factory(cfg)
    ctx = ssl.create_default_context(cafile=str(ca.cert))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"PROXY TCP4 203.0.113.50 192.0.2.1 5555 443\r\n")
        with ctx.wrap_socket(raw, server_hostname="www.example.com") as s:
            s.sendall(b"GET /tls HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n")
            assert read_all(s).startswith(b"HTTP/1.1 200")
    assert header_of(backend, "X-Forwarded-For") == "203.0.113.50"
    assert header_of(backend, "X-Forwarded-Proto") == "https"


def test_tcp_mode_accepts_the_header(farm_factory):
    echo = EchoServer()
    port = free_port()
    farm = farm_factory(http_config(port, echo.address, mode="tcp", fmt="tcplog"))
    header = pp.build_v2("192.0.2.77", 4242, "192.0.2.1", 5432)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(header + b"hello")
        assert s.recv(100) == b"hello"           # the header itself is not relayed
    line = wait_for(lambda: farm.access_lines(), what="a log line")[0]
    assert line.startswith("192.0.2.77:4242 [")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"hello")
        assert read_all(s) == b""
    lines = wait_for(lambda: len(farm.access_lines()) >= 2 and farm.access_lines(), what="2 lines")
    assert lines[1].endswith("fe/1: Received something which does not look like a PROXY protocol header")


def test_tcp_use_backend_routes_on_the_headers_addresses(farm_factory):
    a, b = TagServer("a"), TagServer("b")
    port = free_port()
    farm_factory(f"""
[global]
workers = 1
[log]
events = "@EVENTS@"
[defaults]
mode = "tcp"
[frontends.fe]
bind = {{ address = "127.0.0.1:{port}", accept_proxy = true }}
default_backend = "a"
[[frontends.fe.use_backend]]
backend = "b"
if = "{{ dst 192.0.2.99 }} {{ dst_port 5432 }} {{ src 198.51.100.0/24 }}"
[backends.a]
[[backends.a.servers]]
name = "s1"
address = "{a.address}"
[backends.b]
[[backends.b.servers]]
name = "s2"
address = "{b.address}"
""")

    def tag(header: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(header)
            return read_all(s)
    assert tag(b"PROXY TCP4 198.51.100.4 192.0.2.99 1000 5432\r\n") == b"b"
    assert tag(pp.build_v2("198.51.100.4", 1000, "192.0.2.99", 5432)) == b"b"
    assert tag(b"PROXY TCP4 198.51.100.4 192.0.2.98 1000 5432\r\n") == b"a"    # another dst
    assert tag(b"PROXY TCP4 198.51.100.4 192.0.2.99 1000 5433\r\n") == b"a"    # another port
    assert tag(b"PROXY TCP4 203.0.113.4 192.0.2.99 1000 5432\r\n") == b"a"     # another src


def test_curl_haproxy_protocol(farm_factory, backend):
    port = free_port()
    farm = farm_factory(http_config(port, backend.address, frontend="option_forwardfor = true"))
    out = subprocess.run(["curl", "-sS", "--haproxy-protocol", "--interface", CLIENT_A,
                          f"http://127.0.0.1:{port}/curl"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert header_of(backend, "X-Forwarded-For") == CLIENT_A
    # without the header: refused
    out = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{port}/plain"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode != 0
    lines = wait_for(lambda: len(farm.access_lines()) >= 2 and farm.access_lines(), what="2 lines")
    assert lines[0].startswith(f"{CLIENT_A}:") and "GET /curl" in lines[0]
    assert "does not look like a PROXY protocol header" in lines[1]


def test_haproxy_send_proxy_v2_in_front_of_farm(farm_factory, backend, haproxy_bin, tmp_path):
    port = free_port()
    farm = farm_factory(http_config(port, backend.address, frontend="""
option_forwardfor = true
[[frontends.fe.http_request]]
action = "set-header"
name = "X-Unique"
value = "%[fc_pp_unique_id]"
"""))
    hport = free_port()
    hap = Haproxy(haproxy_bin, tmp_path, f"""
        global
            stats socket @SOCK@ level admin
        defaults
            mode tcp
            timeout connect 2s
            timeout client 5s
            timeout server 5s
        frontend in
            bind 127.0.0.1:{hport}
            unique-id-format pp-%ci-%cp
            default_backend farm
        backend farm
            server farm 127.0.0.1:{port} send-proxy-v2 proxy-v2-options unique-id
        """)
    try:
        with socket.socket() as s:
            s.settimeout(5)
            s.bind((CLIENT_A, 0))
            s.connect(("127.0.0.1", hport))
            cport = s.getsockname()[1]
            s.sendall(b"GET /via-haproxy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_all(s).startswith(b"HTTP/1.1 200")
    finally:
        hap.stop()
    assert header_of(backend, "X-Forwarded-For") == CLIENT_A
    assert header_of(backend, "X-Unique") == f"pp-{CLIENT_A}-{cport}"
    line = wait_for(lambda: farm.access_lines(), what="a log line")[0]
    assert line.startswith(f"{CLIENT_A}:{cport} [")


def test_haproxy_tls_terminator_sends_authority_and_ssl_tlvs(farm_factory, backend, haproxy_bin,
                                                             tmp_path):
    """HAProxy terminates TLS and sends v2 with the authority (SNI), SSL and
    CRC32C TLVs (proxy-v2-options): farm checks the checksum and its
    fetches read what a real sender wrote."""
    ca = CA(tmp_path / "pki")
    site = ca.issue("www", "www.example.com")
    port = free_port()
    farm_factory(http_config(port, backend.address, frontend="""
[[frontends.fe.http_request]]
action = "set-header"
name = "X-TLS"
value = "%[fc_pp_authority]|%[fc_pp_tlv(SSL_VERSION)]|%[fc_pp_tlv(SSL_CIPHER)]|%[src]"
"""))
    hport = free_port()
    hap = Haproxy(haproxy_bin, tmp_path, f"""
        global
            stats socket @SOCK@ level admin
        defaults
            mode tcp
            timeout connect 2s
            timeout client 5s
            timeout server 5s
        frontend tls
            bind 127.0.0.1:{hport} ssl crt {site.pem}
            default_backend farm
        backend farm
            server farm 127.0.0.1:{port} send-proxy-v2 proxy-v2-options authority,ssl,ssl-cipher,crc32c
        """)
    try:
        ctx = ssl.create_default_context(cafile=str(ca.cert))
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        with socket.socket() as raw:
            raw.settimeout(5)
            raw.bind((CLIENT_B, 0))
            raw.connect(("127.0.0.1", hport))
            with ctx.wrap_socket(raw, server_hostname="www.example.com") as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n")
                cipher = s.cipher()[0]
                assert read_all(s).startswith(b"HTTP/1.1 200")
    finally:
        hap.stop()
    assert header_of(backend, "X-TLS") == f"www.example.com|TLSv1.3|{cipher}|{CLIENT_B}"


# ------------------------------------------------------------------ sending

HAPROXY_ACCEPT = """
    global
        stats socket @SOCK@ level admin
        log stdout format raw local0
    defaults
        mode http
        log global
        option httplog
        timeout connect 2s
        timeout client 5s
        timeout server 5s
    frontend pp
        bind 127.0.0.1:{port} accept-proxy
        http-request return status 200 content-type text/plain lf-string "src=%[src] authority=%[fc_pp_authority]\\n"
"""


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_farm_sends_to_haproxy_accept_proxy(farm_factory, haproxy_bin, tmp_path, version):
    hport = free_port()
    hap = Haproxy(haproxy_bin, tmp_path, HAPROXY_ACCEPT.format(port=hport))
    try:
        port = free_port()
        tlvs = 'send_proxy_tlvs = ["authority", "crc32c"]' if version == "v2" else ""
        farm = farm_factory(http_config(port, f"127.0.0.1:{hport}", bind=f'"127.0.0.1:{port}"',
                                        server=f'send_proxy = "{version}"\n{tlvs}'))
        for client in (CLIENT_A, CLIENT_B):
            answer = request(port, source=client)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert f"src={client} authority=\n".encode() in answer
        lines = wait_for(lambda: len(farm.access_lines()) >= 2 and farm.access_lines(), what="farm log")
        assert lines[0].startswith(f"{CLIENT_A}:") and lines[1].startswith(f"{CLIENT_B}:")
        hlog = wait_for(lambda: len(re.findall(r"127\.0\.0\.[56]:\d+ \[", hap.log_path.read_text())) >= 2
                        and hap.log_path.read_text(), what="haproxy's log lines")
        assert re.search(rf"{re.escape(CLIENT_A)}:\d+ \[.*\] pp pp/<NOSRV>", hlog), hlog
        assert re.search(rf"{re.escape(CLIENT_B)}:\d+ \[.*\] pp pp/<NOSRV>", hlog), hlog
    finally:
        hap.stop()


def test_farm_sends_the_tls_client_facts_in_v2(farm_factory, haproxy_bin, tmp_path):
    hport = free_port()
    hap = Haproxy(haproxy_bin, tmp_path, HAPROXY_ACCEPT.format(port=hport))
    ca = CA(tmp_path / "pki")
    site = ca.issue("www", "www.example.com")
    port = free_port()
    try:
        farm_factory(http_config(port, f"127.0.0.1:{hport}",
                                 bind=f'{{ address = "127.0.0.1:{port}", tls = true }}',
                                 server='send_proxy = "v2"\nsend_proxy_tlvs = ["authority", "ssl"]',
                                 frontend=f'[frontends.fe.tls]\ncertificates = ["{site.pem}"]'))
        ctx = ssl.create_default_context(cafile=str(ca.cert))
        with socket.socket() as raw:
            raw.settimeout(5)
            raw.bind((CLIENT_A, 0))
            raw.connect(("127.0.0.1", port))
            with ctx.wrap_socket(raw, server_hostname="www.example.com") as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n")
                answer = read_all(s)
        # the authority TLV carries the client's SNI (HAProxy 2.6 has no
        # fetch for a received SSL TLV: its bytes are checked by the unit tests)
        assert f"src={CLIENT_A} authority=www.example.com\n".encode() in answer, answer
    finally:
        hap.stop()


def nginx_pp(tmp: Path) -> tuple[subprocess.Popen, int, Path]:
    """nginx with `listen ... proxy_protocol`, answering and logging the
    PROXY header's address and its own connection number."""
    port = free_port()
    log = tmp / "nginx-access.log"
    conf = tmp / "nginx.conf"
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.getuid() == 0 else ""
    conf.write_text(f"""
daemon off;
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format pp '$proxy_protocol_addr:$proxy_protocol_port via $remote_addr "$request"';
    access_log {log} pp;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} proxy_protocol;
        location / {{ default_type text/plain;
                     return 200 "pp=$proxy_protocol_addr conn=$connection\\n"; }}
    }}
}}
""")
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf), "-e", f"{tmp}/nginx-error.log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port, log
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nginx did not start: " + (tmp / "nginx-error.log").read_text(errors="replace"))


def keepalive_requests(port: int, source: str, n: int) -> list[bytes]:
    """n requests on one keep-alive connection from source; the bodies."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    bodies = []
    for _ in range(n):
        conn.request("GET", "/ka")
        r = conn.getresponse()
        assert r.status == 200
        bodies.append(r.read())
    conn.close()
    return bodies


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_farm_sends_to_nginx_and_keeps_such_connections_private(farm_factory, tmp_path, version):
    proc, nport, nlog = nginx_pp(tmp_path)
    try:
        port = free_port()
        farm = farm_factory(http_config(port, f"127.0.0.1:{nport}", bind=f'"127.0.0.1:{port}"',
                                        server=f'send_proxy = "{version}"',
                                        backend_extra='http_reuse = "always"'))
        a = keepalive_requests(port, CLIENT_A, 3)
        b = keepalive_requests(port, CLIENT_B, 3)
        a2 = keepalive_requests(port, CLIENT_A, 1)
        # every answer names its own client: a connection that carried A's
        # header never served B (http_reuse "always" notwithstanding) ...
        assert all(x.startswith(f"pp={CLIENT_A} ".encode()) for x in a + a2), a + a2
        assert all(x.startswith(f"pp={CLIENT_B} ".encode()) for x in b), b
        # ... and a client's requests share its own server connection
        conn_of = lambda body: body.split(b"conn=")[1]      # noqa: E731
        assert len({conn_of(x) for x in a}) == 1 and len({conn_of(x) for x in b}) == 1
        assert len({conn_of(a[0]), conn_of(b[0]), conn_of(a2[0])}) == 3
        text = wait_for(lambda: nlog.exists() and nlog.read_text().count("\n") >= 7 and nlog.read_text(),
                        what="nginx's log")
        assert text.count(f"{CLIENT_A}:") == 4 and text.count(f"{CLIENT_B}:") == 3, text
        assert "via 127.0.0.1 " in text
        lines = wait_for(lambda: len(farm.access_lines()) >= 7 and farm.access_lines(), what="farm log")
        assert [ln.split(":")[0] for ln in lines] == [CLIENT_A] * 3 + [CLIENT_B] * 3 + [CLIENT_A]
    finally:
        proc.terminate()
        proc.wait(5)


def test_tcp_mode_sends_the_header(farm_factory, tmp_path):
    proc, nport, nlog = nginx_pp(tmp_path)
    try:
        port = free_port()
        farm_factory(http_config(port, f"127.0.0.1:{nport}", bind=f'"127.0.0.1:{port}"', mode="tcp",
                                 fmt="tcplog", server='send_proxy = "v2"'))
        assert b"pp=" + CLIENT_B.encode() in request(port, source=CLIENT_B)
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.mark.parametrize("check_send_proxy, up", [("", True), ("send_proxy = false", False)])
def test_health_checks_send_the_header(farm_factory, haproxy_bin, tmp_path, check_send_proxy, up):
    hport = free_port()
    hap = Haproxy(haproxy_bin, tmp_path, HAPROXY_ACCEPT.format(port=hport))
    try:
        port = free_port()
        admin = tmp_path / "admin.sock"
        farm = farm_factory(http_config(
            port, f"127.0.0.1:{hport}", bind=f'"127.0.0.1:{port}"', server='send_proxy = "v2"',
            admin=f'admin_socket = "{admin}"',
            backend_extra=f'[backends.be.check]\ntype = "http"\ninterval = "100ms"\nrise = 1\n'
                          f'fall = 1\n{check_send_proxy}\n'))
        # HAProxy answers a check that sent a v2 LOCAL header (200); without
        # the header it closes the connection: the server goes down
        def status():
            stat = cli(admin, "show stat")
            row = [r for r in stat.splitlines() if r.startswith("be,s1,")]
            return row and row[0].split(",")[17]
        want = "UP" if up else "DOWN"
        wait_for(lambda: status() == want, timeout=5, what=f"s1 {want}")
        time.sleep(0.5)
        assert status() == want
        if up:
            assert request(port, source=CLIENT_A).startswith(b"HTTP/1.1 200")
        assert farm.proc.poll() is None
    finally:
        hap.stop()
