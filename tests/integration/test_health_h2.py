"""Health checks in HTTP/2 (check.proto, HAProxy's `check-proto h2`) run by
the real master against real servers: the HTTP/2 test server on h2
(tests/integration/h2_backend.py), cleartext and over TLS with ALPN; a
grpcio server; an HTTP/1.1-only server checked in HTTP/2. The results as
the runtime API (`show stat`, `show servers state`) and the log show them."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.integration.backends import free_port
from tests.integration.h2_backend import H2Backend
from tests.integration.http_backend import HttpBackend
from tests.integration.simple_http import NamedServer
from tests.tlscerts import CA

pytestmark = pytest.mark.timeout(120)

CHECK = 'interval = "200ms"\nrise = 2\nfall = 2\n'


def config(sock: Path, port: int, backends: str) -> str:
    """One frontend on the first backend (named "be"), the admin socket at
    sock, then the backends' text."""
    return f"""
[global]
workers = 1
hard_stop_after = "3s"
admin_socket = "{sock}"
[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "httplog"
[defaults]
mode = "http"
[frontends.fe]
bind = "127.0.0.1:{port}"
default_backend = "be"
{backends}
"""


def backend(name: str, address: str, check: str, backend_extra: str = "",
            server_extra: str = "") -> str:
    return (f"[backends.{name}]\n{backend_extra}\n[backends.{name}.check]\ntype = \"http\"\n"
            f"{CHECK}{check}\n[[backends.{name}.servers]]\nname = \"s1\"\n"
            f"address = \"{address}\"\n{server_extra}\n")


def cli(sock: Path, line: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(line.encode() + b"\n")
        out = b""
        while d := s.recv(65536):
            out += d
    return out.decode()


def stat(sock: Path, backend_name: str) -> dict:
    """The `show stat` row of server s1 of a backend."""
    lines = cli(sock, "show stat").splitlines()
    head = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(head, line.split(",")))
        if row.get("pxname") == backend_name and row.get("svname") == "s1":
            return row
    raise AssertionError(f"no row {backend_name}/s1")


def op_state(sock: Path, backend_name: str) -> str:
    """srv_op_state of s1 in `show servers state` (0 stopped, 2 running)."""
    for line in cli(sock, f"show servers state {backend_name}").splitlines()[2:]:
        words = line.split()
        if words and words[3] == "s1":
            return words[5]
    raise AssertionError(f"no state for {backend_name}/s1")


def wait_for(pred, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def checked(sock: Path, backend_name: str, status: str, code: str = "") -> dict:
    """Wait until s1's last check has this status (and code): its row."""
    rows = []

    def ok():
        rows.append(stat(sock, backend_name))
        return rows[-1]["check_status"] == status and (not code or rows[-1]["check_code"] == code)
    try:
        wait_for(ok)
    except AssertionError:
        raise AssertionError(f"{backend_name}/s1: {rows[-1] if rows else None}") from None
    return rows[-1]


def down_message(farm, backend_name: str) -> str:
    ev = farm.wait_event("server_down", 5, backend=backend_name)
    return ev["message"]


@pytest.fixture
def h2s():
    b = H2Backend("h2s1")
    yield b
    b.close()


def test_h2_server_checked_in_http2_goes_down_on_503_and_up_again(farm_factory, tmp_path, h2s):
    sock, port = tmp_path / "admin.sock", free_port()
    # proto = "h2" on the backend: its checks speak HTTP/2 without a word
    farm = farm_factory(config(sock, port, backend(
        "be", h2s.address, 'path = "/healthz"\nhost = "app.internal"\nexpect_body = "health 200"',
        backend_extra='proto = "h2"')))
    row = checked(sock, "be", "L7OK", "200")
    assert row["status"] == "UP" and row["check_desc"] == "Layer7 check passed"
    req = [r for r in h2s.requests if r.path == "/healthz"][0]
    assert (req.method, req.header(":scheme"), req.header(":authority"),
            req.header("user-agent")) == ("GET", "http", "app.internal", "farm-check")
    h2s.health_status = 503
    msg = down_message(farm, "be")
    assert msg.startswith("Server be/s1 is DOWN, reason: Layer7 wrong status, code: 503, "
                          "check duration: "), msg
    row = checked(sock, "be", "L7STS", "503")
    assert row["status"] == "DOWN" and row["check_desc"] == "Layer7 wrong status"
    assert op_state(sock, "be") == "0"
    h2s.health_status = 200
    farm.wait_event("server_up", 5, backend="be")
    assert stat(sock, "be")["status"] == "UP" and op_state(sock, "be") == "2"
    # the checks' connections end politely: the server saw whole exchanges,
    # one per connection
    assert h2s.connections >= len([r for r in h2s.requests if r.path == "/healthz"]) >= 4


def test_body_mismatch_is_l7rsp(farm_factory, tmp_path, h2s):
    sock, port = tmp_path / "admin.sock", free_port()
    farm = farm_factory(config(sock, port, backend(
        "be", h2s.address, 'path = "/healthz"\nexpect_body = "all good"',
        server_extra='proto = "h2"')))
    msg = down_message(farm, "be")
    assert 'reason: Layer7 invalid response, code: 200, info: "expected content not found"' \
        in msg, msg


def test_grpc_server(farm_factory, tmp_path):
    """grpcio answers a POST (with te: trailers, which checks send) with a
    200 and a grpc-status, and resets anything else: POST checks pass, GET
    checks fail with the reason."""
    pytest.importorskip("grpc")
    from tests.integration.test_grpc import grpc_server
    server, gport = grpc_server()
    try:
        sock, port = tmp_path / "admin.sock", free_port()
        address = f"127.0.0.1:{gport}"
        # (grpcio may take a while to answer a new connection: no 200ms timeout)
        farm = farm_factory(config(sock, port, backend(
            "be", address, 'method = "POST"\npath = "/grpc.health.v1.Health/Check"\n'
            'timeout = "3s"', backend_extra='proto = "h2"')
            + backend("get", address, 'timeout = "3s"', backend_extra='proto = "h2"')))
        assert checked(sock, "be", "L7OK", "200")["status"] == "UP"
        msg = down_message(farm, "get")
        assert msg.startswith('Server get/s1 is DOWN, reason: Layer7 invalid response, '
                              'info: "stream reset by the server (INTERNAL_ERROR)"'), msg
        assert stat(sock, "get")["check_status"] == "L7RSP"
        assert stat(sock, "be")["status"] == "UP"
    finally:
        server.stop(0)


def test_http1_server_checked_in_http2_fails(farm_factory, tmp_path):
    h1, legacy = HttpBackend("a"), NamedServer("b")
    try:
        sock, port = tmp_path / "admin.sock", free_port()
        farm = farm_factory(config(sock, port, backend("be", h1.address, 'proto = "h2"')
                                   + backend("old", legacy.address, 'proto = "h2"')))
        # a server that takes the preface's "PRI * HTTP/2.0" for a request
        msg = down_message(farm, "be")
        assert 'reason: Layer7 invalid response, info: "invalid HTTP/2 preface: the server ' \
               "answered in HTTP/1.x ('HTTP/1.1 200 OK')" in msg, msg
        row = checked(sock, "be", "L7RSP")
        assert row["status"] == "DOWN" and op_state(sock, "be") == "0"
        # one that answers an HTML error page without a status line
        msg = down_message(farm, "old")
        assert 'info: "invalid HTTP/2 preface from the server (first frame type 0x4f, ' \
               'not SETTINGS)"' in msg, msg
        assert checked(sock, "old", "L7RSP")["status"] == "DOWN"
    finally:
        h1.close()
        legacy.close()


def test_h2_check_over_tls_with_alpn(farm_factory, tmp_path):
    ca = CA(tmp_path / "pki")
    cert = ca.issue("app", "app.internal", ["app.internal"])
    h2s = H2Backend("tls1", tls=cert)
    try:
        sock, port = tmp_path / "admin.sock", free_port()
        tls = f'[backends.NAME.tls]\nca = "{ca.cert}"\nsni = "app.internal"\n'
        farm = farm_factory(config(sock, port, backend(
            "be", h2s.address, 'path = "/healthz"\nexpect_body = "health 200"',
            backend_extra='proto = "h2"', server_extra="tls = true\n" + tls.replace("NAME", "be"))
            # an HTTP/1.1 check of the same server: ALPN picks h2, the check says so
            + backend("h1", h2s.address, 'proto = "h1"', backend_extra='proto = "h2"',
                      server_extra="tls = true\n" + tls.replace("NAME", "h1"))))
        assert checked(sock, "be", "L7OK", "200")["status"] == "UP"
        req = [r for r in h2s.requests if r.path == "/healthz"][0]
        assert req.header(":scheme") == "https"
        assert set(h2s.alpn) == {"h2"}
        msg = down_message(farm, "h1")
        assert 'reason: Layer6 invalid response, info: "ALPN: the server chose \'h2\' for an ' \
               'HTTP/1.1 check (see check.proto)"' in msg, msg
        assert stat(sock, "h1")["check_status"] == "L6RSP"
    finally:
        h2s.close()
