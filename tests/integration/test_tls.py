"""TLS termination with real peers: curl (--resolve for SNI names),
openssl s_client, Python's ssl; certificates made at test time by the
openssl tool (tests/tlscerts.py). The farm under test is the real master
with its workers (conftest's farm_factory)."""

from __future__ import annotations

import hashlib
import http.client
import json
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.backends import free_port
from tests.integration.http_backend import HttpBackend
from tests.integration.load import Load
from tests.tlscerts import CA

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = CA(d)
    return {
        "dir": d,
        "ca": ca,
        "www": ca.issue("www", "www.example.com", ["example.com"]),            # ECDSA P-256
        "api": ca.issue("api", "api.example.com", kind="rsa"),                 # RSA 2048
        "wild": ca.issue("wild", "*.example.org"),
        "www2": ca.issue("www2", "www.example.com", ["example.com"]),           # a renewal
        "expired": ca.issue("expired", "old.example.com", days=-1),
        "alice": ca.issue("alice", "alice", client=True, subject="/O=Farm Tests/CN=alice"),
        "mallory": CA(d / "rogue", "Rogue CA").issue("mallory", "mallory", client=True),
    }


@pytest.fixture
def backend():
    b = HttpBackend("s1")
    yield b
    b.close()


def config(backend, https: int, certs: list, http: int | None = None, workers: int = 2,
           tls: str = "", rules: str = "", extra: str = "", admin: str = "", timeout: str = "") -> str:
    binds = ([f'"127.0.0.1:{http}"'] if http else []) + [f'{{ address = "127.0.0.1:{https}", tls = true }}']
    cert_list = ", ".join(f'"{c}"' for c in certs)
    return f"""
[global]
workers = {workers}
hard_stop_after = "3s"
{f'admin_socket = "{admin}"' if admin else ""}
[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "httplog"
[defaults]
mode = "http"
{timeout}
[frontends.www]
bind = [{", ".join(binds)}]
default_backend = "app"
option_forwardfor = true
[frontends.www.tls]
certificates = [{cert_list}]
{tls}
{rules}
[backends.app]
[[backends.app.servers]]
name = "s1"
address = "{backend.address}"
{extra}
"""


def set_header(name: str, value: str) -> str:
    return f'[[frontends.www.http_request]]\naction = "set-header"\nname = "{name}"\nvalue = "{value}"\n'


def curl(port: int, host: str, path: str = "/", pki=None, args=(), scheme="https") -> subprocess.CompletedProcess:
    cmd = ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}",
           "--resolve", f"{host}:{port}:127.0.0.1"]
    if pki is not None:
        cmd += ["--cacert", str(pki["ca"].cert)]
    return subprocess.run(cmd + list(args) + [f"{scheme}://{host}:{port}{path}"],
                          capture_output=True, text=True, timeout=20)


def s_client(port: int, *args: str, data: bytes = b"") -> str:
    """openssl s_client's whole output (stdout and stderr) for one
    connection; `data` is sent after the handshake (-ign_eof: it waits
    for the server to close)."""
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof", *args],
                       input=data, capture_output=True, timeout=20)
    return (p.stdout + p.stderr).decode("latin-1")


REQUEST = b"GET /name HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n"


def wait_for(predicate, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout}s")


def log_lines(farm, fragment: str) -> list[str]:
    return [l for l in farm.access_lines() if fragment in l]


# ---------------------------------------------------------------- handshake

def test_sni_picks_the_certificate_and_the_first_is_the_default(farm_factory, backend, pki):
    port = free_port()
    farm_factory(config(backend, port, [pki["www"].pem, pki["api"].pem, pki["wild"].pem]))
    for name, subject, bits in [("www.example.com", "CN = www.example.com", "256"),
                                ("example.com", "CN = www.example.com", "256"),
                                ("api.example.com", "CN = api.example.com", "2048"),
                                ("x.example.org", "CN = *.example.org", "256"),
                                ("unknown.test", "CN = www.example.com", "256")]:
        out = s_client(port, "-servername", name, data=REQUEST)
        assert f"subject=O = Farm Tests, {subject}" in out, (name, out)
        assert f"Server public key is {bits} bit" in out
        assert "\r\n\r\ns1" in out                                 # and the request went through
    # without SNI: the default
    assert "subject=O = Farm Tests, CN = www.example.com" in s_client(port, "-noservername",
                                                                      data=REQUEST)
    # curl verifies each name against the certificate it gets
    for host in ("www.example.com", "api.example.com", "a.example.org"):
        r = curl(port, host, "/name", pki)
        assert r.stdout.splitlines() == ["s1", "200"], (host, r.stderr)
    r = curl(port, "b.a.example.org", "/name", pki)                # a wildcard covers one label
    assert r.returncode != 0 and "no alternative certificate subject name" in r.stderr


def test_alpn_versions_and_renegotiation(farm_factory, backend, pki):
    port = free_port()
    farm = farm_factory(config(backend, port, [pki["www"].pem]))
    out = s_client(port, "-servername", "www.example.com", "-alpn", "h2,http/1.1", data=REQUEST)
    assert "ALPN protocol: h2" in out           # the default alpn: h2 first
    out = s_client(port, "-servername", "www.example.com", "-alpn", "http/1.1", data=REQUEST)
    assert "ALPN protocol: http/1.1" in out
    assert "No ALPN negotiated" in s_client(port, "-alpn", "spdy/3", data=REQUEST)
    assert "New, TLSv1.2, Cipher is ECDHE-ECDSA-" in s_client(port, "-tls1_2", data=REQUEST)
    for old in ("-tls1", "-tls1_1"):
        out = s_client(port, old, "-cipher", "DEFAULT:@SECLEVEL=0")
        assert "Cipher is (NONE)" in out or "alert protocol version" in out, out
    lines = wait_for(lambda: log_lines(farm, "www/1: SSL handshake failure"), what="log lines")
    assert len(log_lines(farm, "www/1: SSL handshake failure")) >= 2, lines
    # TLS 1.2 renegotiation is refused (TLS 1.3 has none)
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    p.stdin.write(b"R\n")
    p.stdin.flush()
    time.sleep(0.5)
    try:
        p.stdin.write(REQUEST)
        p.stdin.close()
    except BrokenPipeError:
        pass                                     # s_client gave up already
    out = p.stdout.read().decode("latin-1")
    p.wait(10)
    assert "RENEGOTIATING" in out and "no renegotiation" in out
    assert "s1" not in out.split("RENEGOTIATING")[1]


def test_handshake_timeout_and_closed_connections_are_logged(farm_factory, backend, pki):
    port = free_port()
    farm = farm_factory(config(backend, port, [pki["www"].pem],
                               timeout='[defaults.timeout]\nclient = "1s"'))
    idle = socket.create_connection(("127.0.0.1", port))           # says nothing
    socket.create_connection(("127.0.0.1", port)).close()          # connects and goes
    t0 = time.monotonic()
    assert idle.recv(10) == b""                                    # farm closes it at timeout client
    assert 0.8 < time.monotonic() - t0 < 3
    idle.close()
    wait_for(lambda: log_lines(farm, "www/1: Timeout during SSL handshake"), what="timeout line")
    wait_for(lambda: log_lines(farm, "www/1: Connection closed during SSL handshake"),
             what="closed line")
    line = log_lines(farm, "Timeout during SSL handshake")[0]
    assert line.startswith("127.0.0.1:") and "] www/1: " in line


# ------------------------------------------------------------ fetches and log

def test_ssl_fetches_reach_headers_and_the_log(farm_factory, backend, pki):
    port, plain = free_port(), free_port()
    rules = "".join(set_header(n, v) for n, v in [
        ("X-TLS", "%[ssl_fc]"), ("X-SNI", "%[ssl_fc_sni]"), ("X-Proto", "%[ssl_fc_protocol]"),
        ("X-Cipher", "%[ssl_fc_cipher]"), ("X-ALPN", "%[ssl_fc_alpn]"),
        ("X-Reused", "%[ssl_fc_session_reused]")])
    rules += ('[[frontends.www.http_request]]\naction = "deny"\nstatus = 403\n'
              'if = "{ ssl_fc_sni -i blocked.example.com }"\n')
    farm = farm_factory(config(backend, port, [pki["www"].pem, pki["api"].pem], http=plain,
                               rules=rules))
    r = curl(port, "api.example.com", "/headers", pki, args=["--tlsv1.2", "--tls-max", "1.2"])
    assert r.stdout.endswith("200"), r.stderr
    got = backend.requests[-1]
    assert got.header("X-TLS") == "1" and got.header("X-SNI") == "api.example.com"
    assert got.header("X-Proto") == "TLSv1.2" and got.header("X-Cipher").startswith("ECDHE-RSA-")
    # curl picks h2 (offered first): the fetches work on HTTP/2 streams too
    assert got.header("X-ALPN") == "h2" and got.header("X-Reused") == "0"
    assert got.header("X-Forwarded-Proto") == "https"
    r = curl(plain, "www.example.com", "/headers", scheme="http")
    got = backend.requests[-1]
    assert got.header("X-TLS") == "0" and got.header("X-SNI") == ""
    assert got.header("X-Forwarded-Proto") == "http"
    r = curl(port, "blocked.example.com", "/headers", args=["-k"])
    assert r.stdout.endswith("403")
    lines = wait_for(lambda: [l for l in farm.access_lines() if "/headers" in l and " 403 " not in l]
                     and len(farm.access_lines()) >= 3, what="log lines") and farm.access_lines()
    # the HTTP/2 request logs its absolute URI, as HAProxy does
    tls_line = [l for l in lines if "/headers HTTP/" in l][0]
    plain_line = [l for l in lines if "/headers HTTP/" in l][1]
    assert f'"GET https://api.example.com:{port}/headers HTTP/2.0"' in tls_line
    assert "] www~ app/s1 " in tls_line                             # HAProxy's %ft on TLS
    assert "] www app/s1 " in plain_line
    assert any("] www~ www/<NOSRV> " in l and " 403 " in l for l in lines)


def test_client_certificates_required_optional_refused(farm_factory, backend, pki, tmp_path):
    required, optional = free_port(), free_port()
    headers = "".join(set_header(n, v) for n, v in [
        ("X-Used", "%[ssl_c_used]"), ("X-Verify", "%[ssl_c_verify]"), ("X-DN", "%[ssl_c_s_dn]"),
        ("X-CN", "%[ssl_c_s_dn(CN)]"), ("X-Issuer", "%[ssl_c_i_dn]"),
        ("X-Serial", "%[ssl_c_serial,hex]"), ("X-SHA1", "%[ssl_c_sha1,hex]")])
    cfg = config(backend, required, [pki["www"].pem],
                 tls=f'client_ca = "{pki["ca"].cert}"\nverify = "required"', rules=headers)
    cfg += f"""
[frontends.opt]
bind = {{ address = "127.0.0.1:{optional}", tls = true }}
default_backend = "app"
[frontends.opt.tls]
certificates = ["{pki['www'].pem}"]
client_ca = "{pki['ca'].cert}"
verify = "optional"
""" + headers.replace("frontends.www", "frontends.opt")
    farm = farm_factory(cfg)
    alice = ["--cert", str(pki["alice"].pem)]
    r = curl(required, "www.example.com", "/headers", pki, args=alice)
    assert r.stdout.endswith("200"), r.stderr
    got = backend.requests[-1]
    assert got.header("X-Used") == "1" and got.header("X-Verify") == "0"
    assert got.header("X-DN") == "/O=Farm Tests/CN=alice" and got.header("X-CN") == "alice"
    assert got.header("X-Issuer") == "/O=Farm Tests/CN=Farm Test CA"
    assert got.header("X-Serial") == pki["alice"].serial()
    assert got.header("X-SHA1") == pki["alice"].fingerprint()
    # required, without one: refused
    r = curl(required, "www.example.com", "/headers", pki)
    assert not r.stdout.endswith("200")
    # from a CA that is not client_ca: refused, and the log says why
    r = curl(required, "www.example.com", "/headers", pki, args=["--cert", str(pki["mallory"].pem)])
    assert not r.stdout.endswith("200")
    wait_for(lambda: log_lines(farm, "www/1: SSL client certificate not trusted"), what="untrusted")
    wait_for(lambda: log_lines(farm, "www/1: SSL handshake failure"), what="missing certificate")
    # optional: with or without
    n = len(backend.requests)
    assert curl(optional, "www.example.com", "/headers", pki).stdout.endswith("200")
    assert backend.requests[n].header("X-Used") == "0" and backend.requests[n].header("X-DN") == ""
    assert curl(optional, "www.example.com", "/headers", pki, args=alice).stdout.endswith("200")
    assert backend.requests[n + 1].header("X-CN") == "alice"
    r = curl(optional, "www.example.com", "/headers", pki, args=["--cert", str(pki["mallory"].pem)])
    assert not r.stdout.endswith("200")
    wait_for(lambda: log_lines(farm, "opt/1: SSL client certificate not trusted"), what="opt untrusted")


def test_redirect_to_https_unless_ssl_fc(farm_factory, backend, pki):
    port, plain = free_port(), free_port()
    rule = ('[[frontends.www.http_request]]\naction = "redirect"\nscheme = "https"\ncode = 301\n'
            'unless = "{ ssl_fc }"\n')
    farm_factory(config(backend, port, [pki["www"].pem], http=plain, rules=rule))
    r = curl(plain, "www.example.com", "/a/b?c=1", scheme="http", args=["-D", "-"])
    assert r.stdout.endswith("301")
    assert f"Location: https://www.example.com:{plain}/a/b?c=1" in r.stdout
    r = curl(port, "www.example.com", "/name", pki)
    assert r.stdout.splitlines() == ["s1", "200"]


def test_large_responses_and_pipelined_records(farm_factory, backend, pki):
    port = free_port()
    farm_factory(config(backend, port, [pki["www"].pem]))
    size = 3_000_000
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", str(pki["ca"].cert),
                        "--resolve", f"www.example.com:{port}:127.0.0.1",
                        f"https://www.example.com:{port}/big?size={size}"],
                       capture_output=True, timeout=30)
    from tests.integration.backends import pattern
    assert len(r.stdout) == size and r.stdout == pattern(size)
    # 40 pipelined requests, each in its own TLS record, sent back to back
    ctx = ssl.create_default_context(cafile=str(pki["ca"].cert))
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                         server_hostname="www.example.com") as s:
        for i in range(40):
            s.sendall(b"GET /name?%d HTTP/1.1\r\nHost: www.example.com\r\n\r\n" % i)
        s.settimeout(10)
        data = b""
        while data.count(b"HTTP/1.1 200") < 40:
            chunk = s.recv(65536)
            assert chunk, data[-200:]
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 40


def test_show_ssl_cert_and_expiry_in_prometheus(farm_factory, backend, pki, tmp_path):
    port, stats = free_port(), free_port()
    sock = str(tmp_path / "admin.sock")
    cfg = config(backend, port, [pki["www"].pem, pki["expired"].pem], admin=sock)
    farm = farm_factory(cfg + f'\n[stats]\nbind = "127.0.0.1:{stats}"\n')
    ev = farm.wait_event("config_warning")
    assert "expired on" in ev["warning"] and "frontends.www.tls.certificates[1]" in ev["warning"]

    def cli(line: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(sock)
            s.sendall(line.encode() + b"\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out.decode()
    assert cli("show ssl cert") == f"# filename\n{pki['www'].pem}\n{pki['expired'].pem}\n\n"
    detail = cli(f"show ssl cert {pki['www'].pem}")
    assert detail.startswith(f"Filename: {pki['www'].pem}\nStatus: Used\nSerial: {pki['www'].serial()}\n")
    assert "Subject Alternative Name: DNS:www.example.com, DNS:example.com\n" in detail
    assert "Algorithm: EC256\n" in detail and f"SHA1 FingerPrint: {pki['www'].fingerprint()}\n" in detail
    assert "Chain Subject: /O=Farm Tests/CN=Farm Test CA\n" in detail
    assert cli("show ssl cert /nope.pem").startswith("Can't display the certificate")
    c = http.client.HTTPConnection("127.0.0.1", stats, timeout=5)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    lines = {l.split(" ")[0]: float(l.split(" ")[1]) for l in text.splitlines()
             if l.startswith("farm_ssl_cert_expiry_days{")}
    assert 29 < lines[f'farm_ssl_cert_expiry_days{{proxy="www",file="{pki["www"].pem}"}}'] <= 30
    assert lines[f'farm_ssl_cert_expiry_days{{proxy="www",file="{pki["expired"].pem}"}}'] < 0
    c.request("GET", "/")
    page = c.getresponse().read().decode()
    assert 'id="certificates"' in page and str(pki["expired"].pem) in page


# ------------------------------------------------------------------ reloads

def serial_served(port: int, name: str = "www.example.com") -> str:
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name],
                         input=b"", capture_output=True, timeout=20).stdout
    cert = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=out, capture_output=True,
                          timeout=20).stdout.decode()
    return cert.strip().split("=", 1)[1]


def test_certificate_replaced_on_disk_is_served_after_sighup(farm_factory, backend, pki, tmp_path):
    site = tmp_path / "site.pem"
    site.write_bytes(pki["www"].pem.read_bytes())
    port = free_port()
    farm = farm_factory(config(backend, port, [site]))
    assert serial_served(port) == pki["www"].serial()
    site.write_bytes(pki["www2"].pem.read_bytes())                 # renewed
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_done")
    assert serial_served(port) == pki["www2"].serial()
    assert curl(port, "www.example.com", "/name", pki).stdout.splitlines() == ["s1", "200"]


def test_broken_certificate_on_sighup_changes_nothing(farm_factory, backend, pki, tmp_path):
    site = tmp_path / "site.pem"
    site.write_bytes(pki["www"].pem.read_bytes())
    port = free_port()
    farm = farm_factory(config(backend, port, [site]))
    pids = {w.pid for w in farm.workers()}
    site.write_bytes(pki["www2"].crt.read_bytes() + pki["www"].key.read_bytes())   # key mismatch
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_refused")
    errors = [e["error"] for e in farm.events() if e.get("event") == "reload_config_error"]
    assert any("frontends.www.tls.certificates[0]" in e and "does not match" in e and str(site) in e
               for e in errors), errors
    site.write_text("garbage\n")
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_refused", count=2)
    assert {w.pid for w in farm.workers()} == pids
    assert serial_served(port) == pki["www"].serial()              # the old one, still
    assert curl(port, "www.example.com", "/name", pki).stdout.splitlines() == ["s1", "200"]


def tcp_connections(proc: psutil.Process) -> list:
    """proc's TCP sockets (psutil >= 6 calls it net_connections)."""
    get = getattr(proc, "net_connections", None) or proc.connections
    return get(kind="tcp")


class Handshake:
    """One openssl s_client connection held open after its handshake, so
    that the worker holding it can be found (psutil: the worker's socket
    whose peer port is the client's)."""

    def __init__(self, port: int, *args: str):
        self.port = port
        self.p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                                   "-servername", "www.example.com", "-ign_eof", *args],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        self.out = b""
        deadline = time.monotonic() + 10
        while b"\nNew, " not in self.out and b"\nReused, " not in self.out:
            assert time.monotonic() < deadline, self.out.decode("latin-1")
            ready, _, _ = select.select([self.p.stdout], [], [], 0.5)
            if ready:
                chunk = self.p.stdout.read1(65536)
                assert chunk, self.out.decode("latin-1")
                self.out += chunk
        self.reused = b"\nReused, " in self.out

    def worker(self, farm) -> int:
        mine = [c.laddr.port for c in tcp_connections(psutil.Process(self.p.pid))
                if c.raddr and c.raddr.port == self.port]
        assert len(mine) == 1
        for w in farm.workers():
            for c in tcp_connections(w):
                if c.laddr.port == self.port and c.raddr and c.raddr.port == mine[0]:
                    return w.pid
        raise AssertionError("no worker holds the connection")

    def finish(self) -> str:
        self.p.stdin.write(REQUEST)
        self.p.stdin.close()
        self.out += self.p.stdout.read()         # until farm closes (Connection: close)
        self.p.wait(10)
        return self.out.decode("latin-1")


def test_sessions_resume_on_the_other_worker(farm_factory, backend, pki, tmp_path):
    port = free_port()
    farm = farm_factory(config(backend, port, [pki["www"].pem], workers=2))
    sess = tmp_path / "sess.pem"
    first = Handshake(port, "-sess_out", str(sess))
    issuer = first.worker(farm)
    assert "s1" in first.finish() and not first.reused
    seen = {}
    for _ in range(40):                  # the kernel spreads connections over both workers
        h = Handshake(port, "-sess_in", str(sess))
        pid = h.worker(farm)
        out = h.finish()
        assert h.reused and "\r\n\r\ns1" in out, out
        seen[pid] = seen.get(pid, 0) + 1
        if len(seen) == 2:
            break
    assert set(seen) == {w.pid for w in farm.workers()}
    assert any(pid != issuer for pid in seen)                      # resumed where it was not issued


def test_sessions_resume_across_a_reload_while_certificates_are_unchanged(farm_factory, backend, pki,
                                                                          tmp_path):
    site = tmp_path / "site.pem"
    site.write_bytes(pki["www"].pem.read_bytes())
    port = free_port()
    farm = farm_factory(config(backend, port, [site], workers=2))
    sess = tmp_path / "sess.pem"
    h = Handshake(port, "-sess_out", str(sess))
    h.finish()
    old = {w.pid for w in farm.workers()}
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_done")
    wait_for(lambda: not ({w.pid for w in farm.workers()} & old), what="old workers gone")
    for _ in range(4):
        h = Handshake(port, "-sess_in", str(sess))
        assert h.worker(farm) not in old
        assert h.reused and "\r\n\r\ns1" in h.finish()
    # the control: a new certificate means new contexts, and no resumption
    site.write_bytes(pki["www2"].pem.read_bytes())
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_done", count=2)
    h = Handshake(port, "-sess_in", str(sess))
    assert not h.reused
    h.finish()


@pytest.mark.slow
def test_30_reloads_under_https_load_fail_no_request(farm_factory, backend, pki):
    port = free_port()
    farm = farm_factory(config(backend, port, [pki["www"].pem, pki["api"].pem], workers=2))
    ctx = ssl.create_default_context(cafile=str(pki["ca"].cert))
    load = Load(port, keepalive=3, newconn=2, seconds=12, tls=ctx, host="www.example.com").start()
    time.sleep(0.5)
    for _ in range(30):
        farm.signal(signal.SIGHUP)
        time.sleep(0.3)
    load.join()
    time.sleep(1)
    done = sum(1 for e in farm.events() if e.get("event") == "reload_done")
    queued = sum(1 for e in farm.events() if e.get("event") == "reload_queued")
    assert done >= 10 and done + queued >= 30, (done, queued)
    total = load.ok + len(load.failures)
    print(f"\nreloads: {done} done ({queued} coalesced), https requests: {total}, "
          f"failures: {len(load.failures)}")
    assert load.failures == [], load.failures[:5]
    assert load.ok > 300
    assert not log_lines(farm, "SSL handshake failure")


def test_https_example_works_once_pointed_at_a_certificate(farm_factory, backend, pki, tmp_path):
    root = Path(__file__).resolve().parents[2]
    text = (root / "config/examples/https.toml").read_text()
    http, https = free_port(), free_port()
    text = (text.replace("/etc/farm/certs/site.pem", str(pki["www"].pem))
            .replace('"0.0.0.0:80"', f'"127.0.0.1:{http}"')
            .replace('"0.0.0.0:443"', f'"127.0.0.1:{https}"')
            .replace("127.0.0.1:8000", backend.address))
    cfg = tmp_path / "https.toml"
    cfg.write_text(text)
    check = subprocess.run([sys.executable, str(root / "master.py"), "check", "-c", str(cfg)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and check.stderr == "", check.stderr
    farm_factory(text)
    r = curl(https, "www.example.com", "/headers", pki, args=["-D", "-"])
    # (HTTP/2 with curl: field names arrive lowercase)
    assert r.stdout.endswith("200") and "strict-transport-security: max-age=63072000" in r.stdout.lower()
    assert backend.requests[-1].header("X-Forwarded-Proto") == "https"
    r = curl(http, "www.example.com", "/", scheme="http", args=["-D", "-"])
    assert r.stdout.endswith("301") and "Strict-Transport-Security" not in r.stdout
