"""Automatic certificates against a real ACME server: Debian's pebble
(with pebble-challtestsrv as its DNS server, every name resolving to
127.0.0.1), its HTTP-01 validations sent to farm's HTTP bind. curl
verifies the served certificate against pebble's root, fetched from
pebble's management API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.backends import free_port
from tests.integration.http_backend import HttpBackend
from tests.integration.test_stats import wait_for
from tests.integration.test_stats_browser import browser  # noqa: F401 (a fixture)
from tests.tlscerts import CA

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not shutil.which("pebble") or not shutil.which("pebble-challtestsrv"),
                       reason="needs Debian's pebble package (scripts/setup-system --test)"),
]

DOMAIN = "farm-acme.test"


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited: {proc.stdout.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


class Pebble:
    """pebble and pebble-challtestsrv (DNS only) on free ports; HTTP-01
    validations go to http_port (farm's HTTP bind), TLS-ALPN-01 ones to
    tls_port."""

    def __init__(self, tmp: Path, http_port: int, tls_port: int | None = None):
        self.tmp = tmp
        self.ca = CA(tmp / "pebble-pki", "Pebble WFE CA")
        self.cert = self.ca.issue("pebble", "localhost")
        self.port, self.mgmt, self.dns = free_port(), free_port(), free_port()
        self.http_port = http_port
        self.procs: list[subprocess.Popen] = []
        self.pebble: subprocess.Popen | None = None
        self.config = tmp / "pebble.json"
        self.config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt}",
            "certificate": str(self.cert.crt), "privateKey": str(self.cert.key),
            "httpPort": http_port, "tlsPort": tls_port or free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}))

    @property
    def directory(self) -> str:
        return f"https://localhost:{self.port}/dir"

    def start(self) -> "Pebble":
        self.dns_mgmt = free_port()
        dns = subprocess.Popen(
            ["pebble-challtestsrv", "-dns01", f"127.0.0.1:{self.dns}", "-http01", "", "-https01", "",
             "-tlsalpn01", "", "-management", f"127.0.0.1:{self.dns_mgmt}", "-defaultIPv4", "127.0.0.1",
             "-defaultIPv6", ""], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(dns)
        self.start_pebble()
        return self

    def start_pebble(self) -> None:
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
               "PEBBLE_AUTHZREUSE": "0"}
        self.pebble = subprocess.Popen(["pebble", "-config", str(self.config), "-dnsserver",
                                        f"127.0.0.1:{self.dns}"], env=env, cwd=self.tmp,
                                       stdout=open(self.tmp / "pebble.log", "ab"), stderr=subprocess.STDOUT)
        self.procs.append(self.pebble)
        wait_port(self.port, self.pebble)
        wait_port(self.mgmt, self.pebble)

    def resolve(self, host: str, address: str) -> None:
        """From now on, pebble's DNS answers address for host (an A record
        through pebble-challtestsrv's management API, which adds to the
        records of a host: those set before are cleared first)."""
        wait_port(self.dns_mgmt, self.procs[0])
        for path, body in (("clear-a", {"host": host}), ("add-a", {"host": host, "addresses": [address]})):
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{self.dns_mgmt}/{path}",
                                                          json.dumps(body).encode()), timeout=10).read()

    def root(self) -> Path:
        """Pebble's issuing root (it changes at every pebble start)."""
        ctx = ssl.create_default_context(cafile=str(self.ca.cert))
        pem = urllib.request.urlopen(f"https://localhost:{self.mgmt}/roots/0", context=ctx,
                                     timeout=10).read()
        path = self.tmp / "pebble-root.pem"
        path.write_bytes(pem)
        return path

    def log(self) -> str:
        return (self.tmp / "pebble.log").read_text(errors="replace")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@pytest.fixture
def backend():
    b = HttpBackend("s1")
    yield b
    b.close()


def farm_config(backend, http: int | None, https: int, directory: str, ca: Path, storage: Path,
                workers: int = 2, domains: tuple[str, ...] | None = (DOMAIN, f"www.{DOMAIN}"),
                challenge: str = "http-01", rules: str = "", stats: int | None = None) -> str:
    """farm with a frontend www (an HTTP bind unless http is None, a tls
    bind), its certificate from [acme.pebble]; domains None: derived from
    the routing rules given in `rules`; a stats listener on port `stats`."""
    names = "" if domains is None else "domains = [" + ", ".join(f'"{d}"' for d in domains) + "]"
    binds = (f'"127.0.0.1:{http}", ' if http else "") + f'{{ address = "127.0.0.1:{https}", tls = true }}'
    return f"""
[global]
workers = {workers}
hard_stop_after = "3s"
admin_socket = "{storage.parent / 'admin.sock'}"
[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "httplog"
[frontends.www]
bind = [{binds}]
default_backend = "app"
{rules}
[frontends.www.tls]
acme = "pebble"
{names}
[backends.app]
[[backends.app.servers]]
name = "s1"
address = "{backend.address}"
[acme.pebble]
directory = "{directory}"
directory_ca = "{ca}"
contact = "mailto:ops@example.com"
storage = "{storage}"
challenge = "{challenge}"
""" + (f'[stats]\nbind = "127.0.0.1:{stats}"\n' if stats else "")


def cli(farm, line: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(farm.tmp / "admin.sock"))
        s.sendall(line.encode() + b"\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode()


def served_serial(port: int, host: str) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), 5) as s, \
            ctx.wrap_socket(s, server_hostname=host) as t:
        der = t.getpeercert(binary_form=True)
    return subprocess.run(["openssl", "x509", "-noout", "-serial"], input=ssl.DER_cert_to_PEM_cert(der),
                          capture_output=True, text=True, check=True).stdout


def curl(port: int, host: str, root: Path | None, path: str = "/", scheme: str = "https"):
    cmd = ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}",
           "--resolve", f"{host}:{port}:127.0.0.1"]
    cmd += ["--cacert", str(root)] if root else ["-k"]
    return subprocess.run(cmd + [f"{scheme}://{host}:{port}{path}"], capture_output=True, text=True,
                          timeout=20)


def stats_get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


def renewal_seen(port: int, failures: int, file: str = "www.pem", timeout: float = 10) -> tuple[dict, str]:
    """({sample: value} of the farm_acme_* lines of /metrics, the stats
    page's renewal cell of the certificate `file` in storage) once /metrics
    says `failures` (the master publishes the state just after it logs
    the event)."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = {line.split(" ")[0]: float(line.split(" ")[1])
                   for line in stats_get(port, "/metrics").splitlines()
                   if line.startswith("farm_acme_")}
        if metrics.get('farm_acme_renewal_failures{proxy="www"}') == failures:
            break
        assert time.monotonic() < deadline, metrics
        time.sleep(0.05)
    page = stats_get(port, "/;norefresh")
    table = page[page.index('id="certificates"'):]
    row = next(r for r in table.split("<tr ")[1:] if f"/{file}</td>" in r)
    return metrics, row[row.rindex("<td "):row.index("</tr>")]


def served_issuer(port: int, host: str) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), 5) as s, \
            ctx.wrap_socket(s, server_hostname=host) as t:
        der = t.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    return subprocess.run(["openssl", "x509", "-noout", "-issuer"], input=pem, capture_output=True,
                          text=True, check=True).stdout


def test_issuance_with_http01_on_two_workers(tmp_path, farm_factory, backend):
    http, https = free_port(), free_port()
    pebble = Pebble(tmp_path, http).start()
    try:
        storage = tmp_path / "acme"
        farm = farm_factory(farm_config(backend, http, https, pebble.directory, pebble.ca.cert, storage))
        # the bind is up from the start, with a self-signed certificate
        assert "waiting for ACME" in served_issuer(https, DOMAIN)
        farm.wait_event("acme_certificate_installed", timeout=60, frontend="www")
        farm.wait_event("reload_done", timeout=30)
        root = pebble.root()
        r = curl(https, DOMAIN, root)
        assert r.returncode == 0, r.stderr
        assert r.stdout.endswith("\n200") and "s1" in r.stdout
        r = curl(https, f"www.{DOMAIN}", root)
        assert r.returncode == 0 and r.stdout.endswith("\n200"), r.stderr
        # stored 0600, with the account key beside it
        cert = storage / "www.pem"
        assert cert.stat().st_mode & 0o777 == 0o600
        assert (storage / "pebble.account.key").stat().st_mode & 0o777 == 0o600
        # both domains were validated through farm's HTTP bind, by the
        # workers (pebble asks each name from its own connection)
        events = [e for e in farm.events() if e.get("event") == "acme_order_failed"]
        assert not events
        challenge_lines = [ln for ln in farm.access_lines() if "/.well-known/acme-challenge/" in ln]
        assert len(challenge_lines) >= 2
        assert all(" 200 " in ln and "<NOSRV>" in ln for ln in challenge_lines), challenge_lines
        assert not [p for p in backend.paths() if "acme-challenge" in p]
        # a token that is not ours goes on to the rules and the server
        r = curl(http, DOMAIN, None, "/.well-known/acme-challenge/nottours", scheme="http")
        assert r.stdout.endswith("\n200") and "s1" in r.stdout
        # acme status: scheduled for renewal, a third of 5 years before it expires
        (head, row) = cli(farm, "acme status").strip().split("\n")
        assert head.startswith("# frontend\tacme\tstate")
        fields = row.split("\t")
        assert fields[:3] == ["www", "pebble", "scheduled"] and fields[5] == "-"
        assert fields[3] > fields[4] > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # acme renew: a new certificate, served without a restart, with a
        # connection opened before it still working after
        before = served_serial(https, DOMAIN)
        with socket.create_connection(("127.0.0.1", http), 5) as kept:
            assert cli(farm, "acme renew www") == "Renewing the certificate of frontend 'www'.\n\n"
            farm.wait_event("acme_certificate_installed", timeout=60, count=2, frontend="www")
            farm.wait_event("reload_done", timeout=30, count=2)
            kept.sendall(f"GET / HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n".encode())
            assert kept.recv(100).startswith(b"HTTP/1.1 200")
        assert served_serial(https, DOMAIN) != before
        r = curl(https, DOMAIN, root)
        assert r.returncode == 0 and r.stdout.endswith("\n200"), r.stderr
        assert cli(farm, "acme renew nope").startswith("No ACME certificate for frontend 'nope'.")
    finally:
        pebble.stop()


def test_pebble_down_keeps_the_self_signed_certificate_and_backs_off(tmp_path, farm_factory, backend):
    http, https = free_port(), free_port()
    ca = CA(tmp_path / "pki")
    port = free_port()               # nothing listens there
    farm = farm_factory(farm_config(backend, http, https, f"https://localhost:{port}/dir", ca.cert,
                                    tmp_path / "acme", workers=1))
    failed = farm.wait_event("acme_order_failed", timeout=30, frontend="www")
    assert "Connection refused" in failed["error"]
    backoff = farm.wait_event("acme_backoff", timeout=10, frontend="www")
    assert backoff["failures"] == 1 and backoff["retry_in"] == 60
    assert "keeping the current certificate" in backoff["message"]
    # still serving, the self-signed certificate
    assert "waiting for ACME" in served_issuer(https, DOMAIN)
    r = curl(https, DOMAIN, None)
    assert r.stdout.endswith("\n200")
    assert not (tmp_path / "acme" / "www.pem").exists()
    row = cli(farm, "acme status").strip().split("\n")[1].split("\t")
    assert row[:4] == ["www", "pebble", "failed", "-"] and "Connection refused" in row[5]


def test_reload_in_the_middle_of_an_order(tmp_path, farm_factory, backend):
    http, https = free_port(), free_port()
    pebble = Pebble(tmp_path, http).start()
    try:
        farm = farm_factory(farm_config(backend, http, https, pebble.directory, pebble.ca.cert,
                                        tmp_path / "acme", domains=(DOMAIN,)))
        farm.wait_event("acme_order_started", timeout=10)
        farm.signal(signal.SIGHUP)       # the order goes on in its own process
        farm.wait_event("acme_certificate_installed", timeout=60, frontend="www")
        farm.wait_event("reload_done", timeout=30, count=2)
        r = curl(https, DOMAIN, pebble.root())
        assert r.returncode == 0 and r.stdout.endswith("\n200"), r.stderr
        assert len([e for e in farm.events() if e.get("event") == "acme_order_started"]) == 1
    finally:
        pebble.stop()


def test_failed_validation_says_why_and_keeps_the_certificate(tmp_path, farm_factory, backend):
    http, https, stats = free_port(), free_port(), free_port()
    pebble = Pebble(tmp_path, free_port()).start()     # validates on a port where nothing listens
    try:
        farm = farm_factory(farm_config(backend, http, https, pebble.directory, pebble.ca.cert,
                                        tmp_path / "acme", domains=(DOMAIN,), workers=1, stats=stats))
        failed = farm.wait_event("acme_order_failed", timeout=60, frontend="www")
        assert failed["error"].startswith(f"authorization of {DOMAIN} is invalid: "), failed
        assert "connection refused" in failed["error"].lower()
        farm.wait_event("acme_backoff", timeout=10, frontend="www")
        assert "waiting for ACME" in served_issuer(https, DOMAIN)
        assert not (tmp_path / "acme" / "www.pem").exists()
        # the self-signed certificate's row says why it is still there
        metrics, cell = renewal_seen(stats, 1, "www.self-signed.pem")
        assert 0 < metrics['farm_acme_next_attempt_seconds{proxy="www"}'] <= 60
        assert cell.startswith(f'<td class="l acme-failed">ACME: failed 1\u00d7 (authorization of {DOMAIN} '
                               "is invalid: ") and "connection refused" in cell, cell
    finally:
        pebble.stop()


def test_refused_renewal_keeps_the_certificate_and_says_why(tmp_path, farm_factory, backend):
    """The CA refuses the next order (its validation of the name reaches
    an address where farm does not listen): the certificate issued before
    is still served, the reason is in the events log, in acme status, on
    the stats page and (the count) in Prometheus; the next renewal that
    succeeds clears them."""
    http, https, stats = free_port(), free_port(), free_port()
    pebble = Pebble(tmp_path, http).start()
    try:
        farm = farm_factory(farm_config(backend, http, https, pebble.directory, pebble.ca.cert,
                                        tmp_path / "acme", domains=(DOMAIN,), workers=1, stats=stats))
        farm.wait_event("acme_certificate_installed", timeout=60, frontend="www")
        farm.wait_event("reload_done", timeout=30)
        metrics, cell = renewal_seen(stats, 0)
        # issued: renewed in a third of pebble's 5 years, months from now
        assert metrics['farm_acme_next_attempt_seconds{proxy="www"}'] > 86400 * 300
        assert cell.startswith('<td class="l">ACME: ok, next 20') and cell.endswith(" UTC</td>"), cell
        root = pebble.root()
        before = served_serial(https, DOMAIN)
        expires = cli(farm, "acme status").strip().split("\n")[1].split("\t")[3]
        pebble.resolve(DOMAIN, "127.0.0.2")          # nothing of farm listens there
        assert cli(farm, "acme renew www").startswith("Renewing the certificate of frontend 'www'.")
        failed = farm.wait_event("acme_order_failed", timeout=60, frontend="www")
        assert failed["error"].startswith(f"authorization of {DOMAIN} is invalid: "), failed
        assert "127.0.0.2" in failed["error"] and "connection refused" in failed["error"].lower()
        backoff = farm.wait_event("acme_backoff", timeout=10, frontend="www")
        assert backoff["failures"] == 1 and "keeping the current certificate" in backoff["message"]
        # the certificate issued before is served as it was, no reload happened
        assert served_serial(https, DOMAIN) == before
        r = curl(https, DOMAIN, root)
        assert r.returncode == 0 and r.stdout.endswith("\n200"), r.stderr
        assert len([e for e in farm.events() if e.get("event") == "reload_done"]) == 1
        row = cli(farm, "acme status").strip().split("\n")[1].split("\t")
        assert row[:4] == ["www", "pebble", "failed", expires]
        assert row[5] == failed["error"]
        # the stats page and Prometheus: one failure, the next try in a
        # minute (the back-off), the reason on the page in the warning colour
        metrics, cell = renewal_seen(stats, 1)
        assert 0 < metrics['farm_acme_next_attempt_seconds{proxy="www"}'] <= 60
        assert cell.startswith('<td class="l acme-failed">ACME: failed 1\u00d7 (authorization of '
                               f'{DOMAIN} is invalid: '), cell
        assert "127.0.0.2" in cell and "), next try 20" in cell
        # the name resolves to farm again: the next renewal succeeds, 0 failures
        pebble.resolve(DOMAIN, "127.0.0.1")
        assert cli(farm, "acme renew www").startswith("Renewing the certificate of frontend 'www'.")
        farm.wait_event("acme_certificate_installed", timeout=60, count=2, frontend="www")
        farm.wait_event("reload_done", timeout=30, count=2)
        metrics, cell = renewal_seen(stats, 0)
        assert metrics['farm_acme_next_attempt_seconds{proxy="www"}'] > 60
        assert cell.startswith('<td class="l">ACME: ok, next '), cell
        assert served_serial(https, DOMAIN) != before
    finally:
        pebble.stop()


def test_a_failing_renewal_shows_on_the_open_stats_page(tmp_path, farm_factory, backend, browser):  # noqa: F811
    """A person watching the stats page in a browser (headless chromium)
    sees the renewal fail without reloading it: the certificate table is
    refreshed in place, the cell in the warning colour."""
    http, https, stats = free_port(), free_port(), free_port()
    pebble = Pebble(tmp_path, http).start()
    try:
        cfg = farm_config(backend, http, https, pebble.directory, pebble.ca.cert, tmp_path / "acme",
                          domains=(DOMAIN,), workers=1, stats=stats)
        farm = farm_factory(cfg + 'refresh = "1s"\n')
        farm.wait_event("acme_certificate_installed", timeout=60, frontend="www")
        farm.wait_event("reload_done", timeout=30)
        renewal_seen(stats, 0)
        browser.get(f"http://127.0.0.1:{stats}/")
        cell = "#certificates tbody tr:first-child td:last-child"

        def shown():
            return browser.execute_script(
                f"var td = document.querySelector('{cell}');"
                " return [td.textContent, td.className, getComputedStyle(td).backgroundColor,"
                " getComputedStyle(td.previousElementSibling).backgroundColor];")
        text, cls, colour, beside = shown()
        assert text.startswith("ACME: ok, next ") and cls == "l" and colour == beside
        browser.execute_script("window.stayed = 42;")   # gone if the page were loaded again
        pebble.resolve(DOMAIN, "127.0.0.2")              # the next order fails
        assert cli(farm, "acme renew www").startswith("Renewing")
        farm.wait_event("acme_backoff", timeout=60, frontend="www")
        text, cls, colour, beside = wait_for(lambda: (lambda s: s if "failed" in s[0] else None)(shown()),
                                             10, 0.2)
        assert text.startswith(f"ACME: failed 1\u00d7 (authorization of {DOMAIN} is invalid: ")
        assert cls == "l acme-failed" and colour != beside         # the warning colour, not the row's
        assert browser.execute_script("return window.stayed") == 42   # refreshed in place
    finally:
        pebble.stop()
