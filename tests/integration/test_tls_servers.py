"""TLS to servers, with real peers: nginx serving HTTPS (its access log
says, per request, which TLS connection served it, whether the session
was resumed, the SNI it got and the client certificate), and Python ssl
servers for TCP mode. Certificates are made at test time (tests/tlscerts.py).
The farm under test is the real master with its workers (farm_factory)."""

from __future__ import annotations

import os
import pwd
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.backends import free_port
from tests.integration.http_backend import NGINX
from tests.tlscerts import CA

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = CA(d)
    rogue = CA(d / "rogue", "Rogue CA")
    return {
        "ca": ca,
        "app": ca.issue("app", "app.internal", ["a.internal", "b.internal"]),
        "rsa": ca.issue("rsa", "app.internal", kind="rsa"),
        "rogue": rogue.issue("rogue", "app.internal"),
        "farm": ca.issue("farm", "farm", client=True, subject="/O=Farm Tests/CN=farm-client"),
        "front": ca.issue("front", "www.example.com"),
    }


class TlsNginx:
    """nginx serving HTTPS on 127.0.0.1 with `cert` (a tests/tlscerts
    Issued). Each response says which TLS connection served the request
    (nginx's connection serial), whether its session was resumed ("r" or
    "."), the SNI it got, and the client certificate's subject."""

    def __init__(self, tmp: Path, cert, client_ca=None, keepalive: bool = True,
                 protocols: str = "TLSv1.2 TLSv1.3"):
        self.tmp = tmp
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.getuid() == 0 else ""
        verify = f"ssl_client_certificate {client_ca}; ssl_verify_client on;" if client_ca else ""
        conf = tmp / "nginx-tls.conf"
        conf.write_text(f"""
daemon off;
{user}
worker_processes 1;
pid {tmp}/nginx-tls.pid;
error_log {tmp}/nginx-tls-error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_timeout {"60s" if keepalive else "0"};
    server {{
        listen 127.0.0.1:{self.port} ssl;
        ssl_certificate {cert.crt};
        ssl_certificate_key {cert.key};
        ssl_session_cache shared:S:1m;
        ssl_protocols {protocols};
        {verify}
        location / {{
            default_type text/plain;
            return 200 "conn=$connection|reused=$ssl_session_reused|sni=$ssl_server_name|dn=$ssl_client_s_dn|proto=$ssl_protocol\\n";
        }}
    }}
}}
""")
        self.proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf), "-e",
                                      f"{tmp}/nginx-tls-error.log"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        self.close()
        raise RuntimeError("nginx did not start: " + (tmp / "nginx-tls-error.log").read_text())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def nginx_factory(tmp_path):
    made = []

    def make(cert, **kw) -> TlsNginx:
        d = tmp_path / f"nginx{len(made)}"
        d.mkdir()
        n = TlsNginx(d, cert, **kw)
        made.append(n)
        return n
    yield make
    for n in made:
        n.close()


def config(port: int, server: str, tls: str = "", extra: str = "", check: str = "",
           workers: int = 1, reuse: str = "safe") -> str:
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
[defaults.timeout]
connect = "3s"
[frontends.www]
bind = "127.0.0.1:{port}"
default_backend = "app"
[backends.app]
http_reuse = "{reuse}"
{check}
[backends.app.tls]
{tls}
[[backends.app.servers]]
name = "s1"
address = "{server}"
tls = true
{extra}
"""


def get(port: int, host: str = "www.example.com", path: str = "/", close: bool = False,
        sock: socket.socket | None = None) -> tuple[int, str]:
    """One HTTP/1.1 request (on sock when given, a keep-alive connection):
    (status, body)."""
    own = sock is None
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                  f"{'Connection: close' if close else ''}\r\n\r\n".encode())
        f = s.makefile("rb")
        status = int(f.readline().split()[1])
        length = 0
        while True:
            line = f.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            if k.lower() == "content-length":
                length = int(v)
        body = f.read(length).decode()
        f.close()
        return status, body
    finally:
        if own:
            s.close()


def fields(body: str) -> dict:
    return dict(p.split("=", 1) for p in body.strip().split("|"))


def log_lines(farm, count: int = 1, having: str | None = None, times: int = 1,
              timeout: float = 5.0) -> list[str]:
    """The access log once it has `count` lines, and `times` lines
    containing `having` if given (lines are written after the responses,
    at the end of a loop turn), or what it has after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = farm.access_lines()
        if len(lines) >= count and (having is None or
                                    sum(having in line for line in lines) >= times):
            break
        time.sleep(0.05)
    return farm.access_lines()


# ------------------------------------------------------------- HTTP mode

def test_verified_server_with_sni_pooled_connections(farm_factory, nginx_factory, pki):
    n = nginx_factory(pki["app"])
    port = free_port()
    farm = farm_factory(config(port, n.address, f'ca = "{pki["ca"].cert}"\nsni = "app.internal"',
                               reuse="always"))
    conns = set()
    for _ in range(3):                          # three clients, keep-alive
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for _ in range(5):
                status, body = get(port, sock=s)
                assert status == 200, body
                f = fields(body)
                assert f["sni"] == "app.internal"
                conns.add(f["conn"])
    # 15 requests, one worker, http_reuse always: the pooled TLS
    # connection serves them all
    assert len(conns) == 1, conns
    lines = log_lines(farm, 15)
    assert len(lines) == 15 and all(" 200 " in line for line in lines), lines


def test_wrong_certificate_is_refused_and_logged(farm_factory, nginx_factory, pki):
    n = nginx_factory(pki["rogue"])              # signed by a CA farm does not trust
    port = free_port()
    farm = farm_factory(config(port, n.address, f'ca = "{pki["ca"].cert}"\nsni = "app.internal"'))
    status, _ = get(port)
    assert status == 503
    lines = log_lines(farm, 2, having='"GET / HTTP/1.1"')
    why = [line for line in lines if "app/s1: SSL handshake failure" in line]
    assert why and "certificate verify failed" in why[0], lines
    req = [line for line in lines if '"GET / HTTP/1.1"' in line]
    assert len(req) == 1 and " 503 " in req[0] and " SC-- " in req[0], req


def test_refused_server_is_retried_on_another(farm_factory, nginx_factory, pki):
    good, bad = nginx_factory(pki["app"]), nginx_factory(pki["rogue"])
    port = free_port()
    cfg = config(port, bad.address, f'ca = "{pki["ca"].cert}"\nsni = "app.internal"') + f"""
[[backends.app.servers]]
name = "s2"
address = "{good.address}"
tls = true
"""
    farm = farm_factory(cfg.replace('http_reuse = "safe"', 'http_reuse = "safe"\nretries = 1'))
    for _ in range(4):                  # round robin: every other request meets s1 first
        assert get(port, close=True)[0] == 200
    lines = log_lines(farm, 6, having='"GET / HTTP/1.1"', times=4)
    assert sum("app/s1: SSL handshake failure" in line for line in lines) >= 2, lines
    served = [line for line in lines if '"GET / HTTP/1.1"' in line]
    assert len(served) == 4 and all(" app/s2 " in line and " 200 " in line for line in served), served


def test_name_mismatch_is_refused(farm_factory, nginx_factory, pki):
    n = nginx_factory(pki["app"])
    port = free_port()
    farm = farm_factory(config(port, n.address, f'ca = "{pki["ca"].cert}"\nsni = "other.internal"'))
    assert get(port)[0] == 503
    lines = log_lines(farm, 2)
    assert any("hostname mismatch" in line.lower() for line in lines), lines


def wait_port(port: int, timeout: float = 10) -> None:
    """A second farm of a test writes to the same event log as the first:
    wait for its port rather than for its farm_ready event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def test_verify_none_and_the_system_store(farm_factory, nginx_factory, pki):
    n = nginx_factory(pki["rogue"])
    port = free_port()
    farm = farm_factory(config(port, n.address, 'verify = "none"'))
    status, body = get(port)
    assert status == 200 and fields(body)["sni"] == ""     # no sni set: none sent
    farm.stop()
    # verify required without ca: the system's store, which does not know the test CA
    port = free_port()
    farm_factory(config(port, n.address, 'sni = "app.internal"'), start=False).start(wait_ready=False)
    wait_port(port)
    assert get(port)[0] == 503


def test_reload_reads_the_backend_tls_files_again(farm_factory, nginx_factory, pki, tmp_path):
    import signal
    n = nginx_factory(pki["app"])
    ca = tmp_path / "trusted.pem"
    ca.write_bytes((pki["rogue"].crt.parent / "rogue-ca.pem").read_bytes())   # the wrong CA
    port = free_port()
    farm = farm_factory(config(port, n.address, f'ca = "{ca}"\nsni = "app.internal"'))
    assert get(port)[0] == 503
    ca.write_bytes(pki["ca"].cert.read_bytes())                                # fixed on disk
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_done")
    status, body = get(port)
    assert status == 200 and fields(body)["sni"] == "app.internal"
    ca.write_text("not a CA file\n")                                          # broken: refused
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_refused")
    errors = [e["error"] for e in farm.events() if e.get("event") == "reload_config_error"]
    assert any("backends.app.tls.ca" in e and str(ca) in e for e in errors), errors
    assert get(port)[0] == 200                                                  # unchanged


def test_mutual_tls(farm_factory, nginx_factory, pki):
    n = nginx_factory(pki["app"], client_ca=pki["ca"].cert)
    port = free_port()
    tls = f'ca = "{pki["ca"].cert}"\nsni = "app.internal"'
    farm = farm_factory(config(port, n.address, tls))
    status, body = get(port)
    assert status == 400 and "No required SSL certificate" in body   # nginx: no client certificate
    farm.stop()
    port = free_port()
    tls += f'\ncertificate = "{pki["farm"].crt}"\nkey = "{pki["farm"].key}"'
    farm_factory(config(port, n.address, tls), start=False).start(wait_ready=False)
    wait_port(port)
    status, body = get(port)
    assert status == 200 and "CN=farm-client" in fields(body)["dn"], body


def test_sni_from_the_host_header(farm_factory, nginx_factory, pki):
    n = nginx_factory(pki["app"])
    port = free_port()
    farm_factory(config(port, n.address, f'ca = "{pki["ca"].cert}"\nsni = "req.hdr(host)"'))
    seen = {}
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for host in ["a.internal", "b.internal:8443", "a.internal", "b.internal"]:
            status, body = get(port, host=host, sock=s)
            assert status == 200, body
            f = fields(body)
            assert f["sni"] == host.split(":")[0]
            seen.setdefault(f["sni"], set()).add(f["conn"])
    # one pooled connection per name, never one name's for the other
    assert len(seen["a.internal"]) == 1 and len(seen["b.internal"]) == 1
    assert seen["a.internal"] != seen["b.internal"]
    # a name the certificate does not have: verification refuses it
    assert get(port, host="c.internal")[0] == 503


@pytest.mark.parametrize("cert, protocol", [("app", "TLSv1.3"), ("rsa", "TLSv1.2")])
def test_sessions_to_servers_are_resumed(farm_factory, nginx_factory, pki, cert, protocol):
    n = nginx_factory(pki[cert], keepalive=False, protocols=protocol)   # a TLS connection per request
    port = free_port()
    farm_factory(config(port, n.address, f'ca = "{pki["ca"].cert}"\nsni = "app.internal"'))
    results = [fields(get(port, close=True)[1]) for _ in range(6)]
    assert len({r["conn"] for r in results}) == 6          # six TLS connections
    assert {r["proto"] for r in results} == {protocol}
    assert results[0]["reused"] == "."
    assert [r["reused"] for r in results[1:]] == ["r"] * 5, results


# ---------------------------------------------------------- health checks

def test_tls_health_checks(farm_factory, nginx_factory, pki):
    good = nginx_factory(pki["app"])
    bad = nginx_factory(pki["rogue"])
    port = free_port()
    check = '[backends.app.check]\ntype = "http"\ninterval = "200ms"\nrise = 1\nfall = 1\n'
    cfg = config(port, good.address, f'ca = "{pki["ca"].cert}"\nsni = "app.internal"',
                 check=check) + f"""
[[backends.app.servers]]
name = "s2"
address = "{bad.address}"
tls = true
"""
    farm = farm_factory(cfg)
    ev = farm.wait_event("server_down", server="s2")
    assert "Layer6 invalid response" in ev["message"] and "certificate verify failed" in ev["message"]
    time.sleep(0.6)
    assert not [e for e in farm.events() if e.get("event") == "server_down" and e.get("server") == "s1"]
    for _ in range(4):                               # s2 is down: every request goes to s1
        assert get(port)[0] == 200


def test_check_port_means_plain_check(farm_factory, nginx_factory, pki):
    n = nginx_factory(pki["app"])
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen(16)
    check_port = plain.getsockname()[1]
    port = free_port()
    check = (f'[backends.app.check]\ntype = "tcp"\ninterval = "200ms"\nrise = 1\nfall = 1\n'
             f'port = {check_port}\n')
    try:
        farm = farm_factory(config(port, n.address, f'ca = "{pki["ca"].cert}"\nsni = "app.internal"',
                                   check=check))
        time.sleep(1)
        assert not [e for e in farm.events() if e.get("event") == "server_down"]
        assert get(port)[0] == 200
    finally:
        plain.close()


# --------------------------------------------------------------- TCP mode

class TlsEcho:
    """A Python ssl echo server: each connection echoes what it reads,
    prefixed by the SNI it got and whether the session was resumed."""

    def __init__(self, cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert.crt), str(cert.key))
        self.names: list = []
        ctx.sni_callback = lambda s, name, c: self.names.append(name)
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.handshakes = 0
        self.resumed = 0
        threading.Thread(target=self.run, daemon=True).start()

    def run(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c) -> None:
        try:
            with self.ctx.wrap_socket(c, server_side=True) as s:
                self.handshakes += 1
                self.resumed += s.session_reused
                while True:
                    data = s.recv(65536)
                    if not data:
                        break
                    s.sendall(data)
        except (OSError, ssl.SSLError):
            pass

    def close(self) -> None:
        self.sock.close()


class PlainEcho:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self.run, daemon=True).start()

    def run(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c) -> None:
        with c:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                c.sendall(data)

    def close(self) -> None:
        self.sock.close()


def tcp_config(port: int, server: str, front_tls: str = "", back_tls: str = "",
               server_tls: bool = False) -> str:
    bind = f'{{ address = "127.0.0.1:{port}", tls = true }}' if front_tls else f'"127.0.0.1:{port}"'
    return f"""
[global]
workers = 1
hard_stop_after = "3s"
[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "tcplog"
[defaults]
mode = "tcp"
[frontends.t]
bind = [{bind}]
default_backend = "b"
{f"[frontends.t.tls]{chr(10)}{front_tls}" if front_tls else ""}
[backends.b]
{f"[backends.b.tls]{chr(10)}{back_tls}" if back_tls else ""}
[[backends.b.servers]]
name = "s1"
address = "{server}"
tls = {"true" if server_tls else "false"}
"""


def echo_roundtrip(sock, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_tcp_mode_tls_termination(farm_factory, pki):
    echo = PlainEcho()
    port = free_port()
    try:
        farm = farm_factory(tcp_config(port, echo.address, front_tls=f'certificates = ["{pki["front"].pem}"]'))
        ctx = ssl.create_default_context(cafile=str(pki["ca"].cert))
        payload = os.urandom(300_000)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="www.example.com") as s:
                assert echo_roundtrip(s, payload) == payload
        line = log_lines(farm, 1)[-1]
        assert "t~ b/s1" in line and " -- " in line, line
    finally:
        echo.close()


def test_tcp_mode_failed_client_handshake_is_one_line(farm_factory, pki):
    echo = PlainEcho()
    port = free_port()
    try:
        farm = farm_factory(tcp_config(port, echo.address, front_tls=f'certificates = ["{pki["front"].pem}"]'))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")      # not TLS
            s.settimeout(5)
            try:
                s.recv(100)
            except OSError:
                pass
        lines = log_lines(farm, 1)
        time.sleep(0.2)                  # nothing more comes
        lines = farm.access_lines()
        assert len(lines) == 1 and lines[0].endswith("t/1: SSL handshake failure"), lines
    finally:
        echo.close()


def test_tcp_mode_tls_to_server_with_resumption(farm_factory, pki):
    echo = TlsEcho(pki["app"])
    port = free_port()
    try:
        farm_factory(tcp_config(port, echo.address, back_tls=f'ca = "{pki["ca"].cert}"\nsni = "app.internal"',
                                server_tls=True))
        for i in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                payload = os.urandom(100_000 + i)
                assert echo_roundtrip(s, payload) == payload
        assert echo.handshakes == 3 and echo.resumed == 2
        assert echo.names == ["app.internal"] * 3
    finally:
        echo.close()


def test_tcp_mode_tls_both_ways_and_refused_server(farm_factory, pki):
    echo = TlsEcho(pki["rogue"])
    port = free_port()
    try:
        farm = farm_factory(tcp_config(port, echo.address,
                                       front_tls=f'certificates = ["{pki["front"].pem}"]',
                                       back_tls=f'ca = "{pki["ca"].cert}"\nsni = "app.internal"',
                                       server_tls=True))
        ctx = ssl.create_default_context(cafile=str(pki["ca"].cert))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="www.example.com") as s:
                s.sendall(b"hello")
                try:
                    assert s.recv(10) == b""
                except (ssl.SSLError, ConnectionResetError):
                    pass
        lines = log_lines(farm, 2, having=" SC ")
        assert any("b/s1: SSL handshake failure (certificate verify failed" in line for line in lines), lines
        assert any(" SC " in line for line in lines), lines
    finally:
        echo.close()
