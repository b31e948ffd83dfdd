"""workers/transport.py TlsTransport against Python's own TLS client, over
real TCP sockets on 127.0.0.1: the server side is driven by select() the
way the epoll loop drives it (level-triggered), the client runs in a
thread with blocking sockets."""

from __future__ import annotations

import select
import socket
import ssl
import struct
import threading
import weakref

import pytest

from farm import model, tlsconf
from tests.tlscerts import CA
from workers import transport
from workers.transport import HandshakeError, TlsTransport


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = CA(d)
    return {"ca": ca, "www": ca.issue("www", "www.example.com"),
            "api": ca.issue("api", "api.example.com", kind="rsa"),
            "client": ca.issue("client", "alice", client=True, subject="/O=Farm Tests/CN=alice"),
            "rogue": CA(d / "rogue", "Rogue CA").issue("mallory", "mallory", client=True)}


def contexts(pki, **tls) -> tlsconf.FrontendContexts:
    settings = model.FrontendTls(certificates=(str(pki["www"].pem), str(pki["api"].pem)), **tls)
    files = [tlsconf.read_certificate(c) for c in settings.certificates]
    ca = pki["ca"].cert.read_bytes()
    return tlsconf.FrontendContexts("fe", [tlsconf.server_context(settings, f, ca) for f in files],
                                    [f.info for f in files])


def client_context(pki, cert=None, **kw) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"].cert))
    for k, v in kw.items():
        setattr(ctx, k, v)
    if cert is not None:
        ctx.load_cert_chain(str(cert.pem))
    return ctx


class Pair:
    """An accepted server socket wrapped in a TlsTransport, and a client
    thread running `client(sock)` on the other end."""

    def __init__(self, fc, client, name="www.example.com", cctx=None, tls_socket=False):
        lsock = socket.create_server(("127.0.0.1", 0))
        self.result = {}

        def run():
            raw = socket.create_connection(lsock.getsockname())
            try:
                if cctx is None:
                    self.result["value"] = client(raw)
                else:
                    with cctx.wrap_socket(raw, server_hostname=name) as s:
                        self.result["value"] = client(s)
            except Exception as e:     # noqa: BLE001 - reported to the test
                self.result["error"] = e
            finally:
                raw.close()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        sock, _ = lsock.accept()
        lsock.close()
        if tls_socket:      # what a tls bind's acceptor makes (workers/accept.py)
            sock = transport.TlsSocket(sock.family, sock.type, sock.proto, sock.detach())
        sock.setblocking(False)
        self.t = TlsTransport(sock, fc.default, "2")

    def wait(self, write=False, timeout=5.0) -> bool:
        r, w, _ = select.select([] if write else [self.t.fd], [self.t.fd] if write else [], [], timeout)
        return bool(r or w)

    def handshake(self) -> None:
        while not self.t.handshake():
            assert self.wait(self.t.wants_write), "handshake stalled"

    def read_all(self, until_eof=True, timeout=5.0) -> bytes:
        """recv() on every readiness, as the loop does, until EOF."""
        out = []
        while self.wait(timeout=timeout):
            data = self.t.recv()
            if data == b"":
                return b"".join(out)
            if data:
                out.append(data)
        assert not until_eof, "no EOF"
        return b"".join(out)

    def join(self):
        self.thread.join(5)
        if "error" in self.result:
            raise self.result["error"]
        return self.result.get("value")


def test_handshake_sni_alpn_and_facts(pki):
    fc = contexts(pki, alpn=("http/1.1",))

    def client(s):
        s.sendall(b"hello")
        return s.getpeercert()["subject"], s.version()
    cctx = client_context(pki)
    cctx.set_alpn_protocols(["h2", "http/1.1"])
    p = Pair(fc, client, "api.example.com", cctx)
    p.handshake()
    assert p.t.established and p.t.secure
    assert p.t.sni == "api.example.com"
    assert p.t.alpn == "http/1.1"
    assert p.t.protocol == "TLSv1.3" and p.t.cipher.startswith("TLS_")
    assert not p.t.session_reused and not p.t.client_cert
    assert p.t.subject_dn() is None and p.t.serial is None and p.t.sha1 is None
    assert p.read_all() == b"hello"
    subject, version = p.join()
    assert dict(x[0] for x in subject)["commonName"] == "api.example.com"   # SNI picked api's
    p.t.close()


def test_many_records_at_once_are_all_read_without_stalling(pki):
    fc = contexts(pki)
    chunks = [bytes([65 + i % 26]) * (100 + i) for i in range(200)]
    sent = threading.Event()

    def client(s):
        for c in chunks:                 # one record each, sent back to back
            s.sendall(c)
        sent.set()
        s.unwrap()                       # close_notify: EOF for the server; waits for ours
    p = Pair(fc, client, cctx=client_context(pki))
    p.handshake()
    assert sent.wait(5)                  # every record waits in the kernel before the first read
    assert p.read_all() == b"".join(chunks)
    p.t.shutdown_write()
    p.join()
    p.t.close()


def test_send_keeps_offering_the_same_bytes(pki):
    fc = contexts(pki)
    payload = bytes(range(256)) * 16384              # 4 MiB, more than the socket takes at once
    got = []

    def client(s):
        while True:
            data = s.recv(65536)
            if not data:
                return
            got.append(data)
    p = Pair(fc, client, cctx=client_context(pki))
    p.handshake()
    p.t.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    out = payload[:1 << 20]
    rest = payload[1 << 20:]
    zero_seen = False
    while out or rest:
        n = p.t.send(out)
        if n == 0:
            zero_seen = True
            out += rest[:65536]            # more queued meanwhile, appended as h1conn does
            rest = rest[65536:]
            assert p.wait(write=True)
        else:
            assert n == len(out)           # all or nothing: no partial writes
            out, rest = rest[:1 << 20], rest[1 << 20:]
    p.t.shutdown_write()
    p.join()
    assert zero_seen
    assert b"".join(got) == payload
    p.t.close()


def test_ragged_eof_reads_as_eof(pki):
    fc = contexts(pki)

    def client(s):
        s.sendall(b"abc")
        socket.socket.close(s)           # no close_notify
    p = Pair(fc, client, cctx=client_context(pki))
    p.handshake()
    assert p.read_all() == b"abc"
    p.join()
    p.t.close()


@pytest.mark.parametrize("case, message", [
    ("closes", transport.SSL_EMPTY),
    ("tls11", transport.SSL_HANDSHAKE),
    ("garbage", transport.SSL_HANDSHAKE),
])
def test_handshake_failures(pki, case, message):
    fc = contexts(pki)

    def client(raw):
        if case == "garbage":
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                raw.recv(100)          # an alert, then the close (or a reset)
            except ConnectionResetError:
                pass
        elif case == "tls11":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with pytest.warns(DeprecationWarning):
                ctx.maximum_version = ssl.TLSVersion.TLSv1_1
                ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.set_ciphers("ALL:@SECLEVEL=0")
            with pytest.raises(ssl.SSLError):
                ctx.wrap_socket(raw, server_hostname="www.example.com")
    p = Pair(fc, client)
    with pytest.raises(HandshakeError) as e:
        p.handshake()
    assert str(e.value) == message
    p.t.close()
    p.join()


def test_client_certificates(pki):
    fc = contexts(pki, verify="optional", client_ca=str(pki["ca"].cert))

    def client(s):
        s.sendall(b"x")
        s.unwrap()
    p = Pair(fc, client, cctx=client_context(pki, pki["client"]))
    p.handshake()
    assert p.read_all() == b"x"
    p.t.shutdown_write()
    assert p.t.client_cert and p.t.verify_result == 0
    assert p.t.subject_dn() == "/O=Farm Tests/CN=alice"
    assert p.t.subject_dn("CN") == "alice"
    assert p.t.issuer_dn() == "/O=Farm Tests/CN=Farm Test CA"
    assert p.t.serial.hex().upper() == pki["client"].serial()
    assert p.t.sha1.hex().upper() == pki["client"].fingerprint()
    p.join()
    p.t.close()
    # optional: no certificate is fine
    p = Pair(fc, client, cctx=client_context(pki))
    p.handshake()
    assert p.read_all() == b"x" and not p.t.client_cert
    p.t.shutdown_write()
    p.join()
    p.t.close()
    # a certificate from another CA is refused
    p = Pair(fc, lambda s: None, cctx=client_context(pki, pki["rogue"]))
    with pytest.raises(HandshakeError) as e:
        p.handshake()
    assert str(e.value) == transport.SSL_CRT_FAIL
    p.t.close()
    try:
        p.join()
    except (ssl.SSLError, OSError):
        pass


def test_required_client_certificate_missing(pki):
    fc = contexts(pki, verify="required", client_ca=str(pki["ca"].cert))

    def client(s):
        s.sendall(b"x")                    # TLS 1.3: the refusal comes after the client's Finished
        s.recv(1)
    p = Pair(fc, client, cctx=client_context(pki))
    with pytest.raises(HandshakeError) as e:
        p.handshake()
    assert str(e.value) == transport.SSL_HANDSHAKE
    p.t.close()
    try:
        p.join()
    except (ssl.SSLError, OSError):
        pass


@pytest.mark.parametrize("tls_socket", [False, True])
def test_the_transport_owns_the_connection_and_a_reset_ends_the_close(pki, tls_socket):
    """ssl's C object over the socket itself (no ssl.SSLSocket): the SNI
    callback gets the transport (sni, the certificate switched), and a
    client that resets instead of closing leaves nothing to linger for."""
    fc = contexts(pki)

    def client(s):
        s.sendall(b"hello")
        assert s.recv(10) == b"world"
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    p = Pair(fc, client, name="api.example.com", cctx=client_context(pki), tls_socket=tls_socket)
    assert type(p.t.sock) is transport.TlsSocket and p.t._ssl.owner is p.t
    assert weakref.ref(p.t)() is p.t
    p.handshake()
    assert p.t.sni == "api.example.com" and p.t.context is fc.contexts[1]
    assert p.read_all(until_eof=False, timeout=0.5) == b"hello"
    assert p.t.send(b"world") == 5
    p.join()                                          # closed with SO_LINGER 0: a reset
    assert p.t.shutdown_write() is True
    p.t.close()
