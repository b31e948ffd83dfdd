"""Automatic certificates proved by TLS-ALPN-01 (RFC 8737) against pebble,
for the host names of the frontend's routing rules:
its validations reach farm's tls bind (two workers) through a relay in the
test, which splits each ClientHello into two writes (a hello that needs a
second read) and, while a validation is pending, looks at what farm
answers: the challenge certificate to ALPN acme-tls/1 for that name, the
usual certificate to everyone else. curl then verifies the issued
certificate against pebble's root."""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509

from tests.integration.backends import free_port
from tests.integration.test_acme import DOMAIN, Pebble, backend, cli, curl, farm_config, served_issuer  # noqa: F401
from workers import clienthello

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not shutil.which("pebble") or not shutil.which("pebble-challtestsrv"),
                       reason="needs Debian's pebble package (scripts/setup-system --test)"),
]

ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")


def handshake(port: int, host: str, alpn: list[str]) -> tuple[str | None, x509.Certificate]:
    """A TLS handshake with farm: the ALPN protocol chosen and the certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), 5) as s, \
            ctx.wrap_socket(s, server_hostname=host) as t:
        return t.selected_alpn_protocol(), x509.load_der_x509_certificate(t.getpeercert(binary_form=True))


def hello_bytes(host: str) -> bytes:
    """A ClientHello offering acme-tls/1 for host (made by OpenSSL)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["acme-tls/1"])
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_side=False, server_hostname=host)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class SplittingRelay:
    """Listens where pebble sends its TLS-ALPN-01 validations and relays
    each to farm's tls bind, the ClientHello in two writes 0.3 s apart.
    Before relaying a validation it calls probe(domain) (the domain from
    the hello's SNI) and keeps what it returns."""

    def __init__(self, target: int, probe):
        self.target = target
        self.probe = probe
        self.results: list = []
        self.errors: list[str] = []
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self.relay, args=(conn,), daemon=True).start()

    def relay(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            data = b""
            hello = None
            while hello is None:         # bounded: the parser refuses more than 64 KiB
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
                hello = clienthello.parse(data)
            try:
                self.results.append((hello.sni, hello.alpn, self.probe(hello.sni)))
            except Exception as e:       # reported by the test, never lost in a thread
                self.errors.append(f"probe: {e!r}")
            up = socket.create_connection(("127.0.0.1", self.target), 5)
            up.settimeout(10)
            up.sendall(data[:7])
            time.sleep(0.3)
            up.sendall(data[7:])
            threading.Thread(target=self.pipe, args=(up, conn), daemon=True).start()
            self.pipe(conn, up)
        except OSError as e:
            self.errors.append(f"relay: {e!r}")

    @staticmethod
    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.stopped = True
        self.lsock.close()
        self.thread.join(2)


def test_issuance_with_tls_alpn01_on_two_workers(tmp_path, farm_factory, backend):
    https = free_port()

    stalled: list[socket.socket] = []
    cut_short: list[float] = []          # seconds until farm closed a hello cut short

    def probe(domain: str):
        """What farm answers while the validation of domain is pending."""
        if not stalled:
            # half a ClientHello, and nothing more: waited for, then closed
            # at timeout client like a stalled handshake
            s = socket.create_connection(("127.0.0.1", https), 5)
            s.sendall(hello_bytes(domain)[:40])
            stalled.append(s)
            # half a ClientHello, then the end of the stream: seen at once,
            # not at timeout client
            with socket.create_connection(("127.0.0.1", https), 5) as s:
                s.sendall(hello_bytes(domain)[:40])
                s.shutdown(socket.SHUT_WR)
                s.settimeout(5)
                start = time.monotonic()
                try:
                    s.recv(100)
                except ConnectionResetError:
                    pass
                cut_short.append(time.monotonic() - start)
        for _ in range(8):            # enough that both workers answer some (SO_REUSEPORT hashing)
            chosen, cert = handshake(https, domain, ["acme-tls/1"])
        ordinary = handshake(https, domain, ["h2", "http/1.1"])
        other = handshake(https, "other.test", ["acme-tls/1"])
        return chosen, cert, ordinary, other

    relay = SplittingRelay(https, probe)
    pebble = Pebble(tmp_path, free_port(), tls_port=relay.port).start()
    try:
        storage = tmp_path / "acme"
        # the domains come from the routing rules (no domains key)
        rules = f"""
[frontends.www.timeout]
client = "2s"
[[frontends.www.use_backend]]
backend = "app"
if = "{{ ssl_fc_sni -i {DOMAIN} }} || {{ hdr(host) -i www.{DOMAIN} }}"
"""
        farm = farm_factory(farm_config(backend, None, https, pebble.directory, pebble.ca.cert, storage,
                                        challenge="tls-alpn-01", domains=None, rules=rules))
        assert "waiting for ACME" in served_issuer(https, DOMAIN)
        farm.wait_event("acme_certificate_installed", timeout=60, frontend="www")
        farm.wait_event("reload_done", timeout=30)
        assert not relay.errors, relay.errors
        # pebble validated both names (each more than once, as a multi-perspective
        # CA does), through the relay, offering acme-tls/1 only
        assert {r[0] for r in relay.results} == {DOMAIN, f"www.{DOMAIN}"}
        for domain, offered, (chosen, cert, ordinary, other) in relay.results:
            assert offered == (b"acme-tls/1",)
            # the challenge certificate: acme-tls/1 chosen, the name alone,
            # the critical acmeIdentifier with a SHA-256 in an OCTET STRING
            assert chosen == "acme-tls/1"
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert san.get_values_for_type(x509.DNSName) == [domain]
            ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER)
            assert ext.critical and ext.value.value[:2] == b"\x04\x20" and len(ext.value.value) == 34
            # an ordinary client of the same name, and acme-tls/1 for a name
            # not being validated: the frontend's certificate, as always
            for alpn, served in (ordinary, other):
                assert alpn in ("h2", "http/1.1", None) and alpn != "acme-tls/1"
                assert "waiting for ACME" in served.issuer.rfc4514_string()
        answered = [e for e in farm.events() if e.get("event") == "acme_challenge_answered"]
        assert {e["domain"] for e in answered} == {DOMAIN, f"www.{DOMAIN}"}
        assert all(e["challenge"] == "tls-alpn-01" for e in answered)
        assert {e["slot"] for e in answered} == {0, 1}        # both workers answered
        assert not [e for e in farm.events() if e.get("event") == "acme_order_failed"]
        # validations never reach the HTTP layer: no request was logged for them
        assert not [ln for ln in farm.access_lines() if "acme" in ln.lower()]
        root = pebble.root()
        for host in (DOMAIN, f"www.{DOMAIN}"):
            r = curl(https, host, root)
            assert r.returncode == 0, r.stderr
            assert r.stdout.endswith("\n200") and "s1" in r.stdout
        # after the order, acme-tls/1 is nobody's business: the issued certificate
        chosen, cert = handshake(https, DOMAIN, ["acme-tls/1"])
        assert chosen is None and "Pebble" in cert.issuer.rfc4514_string()
        # the hello cut short by the client: handed to TLS, which logs it at once
        assert cut_short and cut_short[0] < 1.0, cut_short
        assert [ln for ln in farm.access_lines() if ln.endswith(": Connection closed during SSL handshake")]
        # the stalled hello: closed after timeout client, logged as HAProxy logs it
        stalled[0].settimeout(5)
        try:
            assert stalled[0].recv(10) == b""
        except ConnectionResetError:
            pass                         # closed with the half hello unread: a reset
        assert [ln for ln in farm.access_lines() if ln.endswith(": Timeout during SSL handshake")]
        row = cli(farm, "acme status").strip().split("\n")[1].split("\t")
        assert row[:3] == ["www", "pebble", "scheduled"] and row[5] == "-"
    finally:
        for sock in stalled:
            sock.close()
        pebble.stop()
        relay.close()

