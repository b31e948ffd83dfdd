"""TLS to servers, the pure and socket-level parts: tlsconf's client
contexts and failure reasons, ServerTlsTransport against a real Python ssl
server on 127.0.0.1 (driven with select(), as the epoll loop drives it),
session resumption through ServerTls, and the SNI a fetch gives."""

from __future__ import annotations

import select
import socket
import ssl
import threading
from types import SimpleNamespace

import pytest

from farm import model, tlsconf
from tests.tlscerts import CA
from workers.servertls import ServerTls
from workers.transport import HandshakeError


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = CA(d)
    return {"ca": ca, "app": ca.issue("app", "app.internal"),
            "farm": ca.issue("farm", "farm", client=True, subject="/O=Farm Tests/CN=farm"),
            "rogue": CA(d / "rogue", "Rogue CA").issue("rogue", "app.internal")}


class TlsServer:
    """A Python ssl server answering each connection's first bytes with
    "reused=<0|1> cn=<client CN>" and closing."""

    def __init__(self, cert, client_ca=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert.crt), str(cert.key))
        if client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(str(client_ca))
        self.ctx = ctx
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr = self.sock.getsockname()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(c, server_side=True) as s:
                    s.recv(100)
                    cert = s.getpeercert() or {}
                    cn = tlsconf.dn_oneline(cert.get("subject", ()), "CN")
                    s.sendall(f"reused={int(s.session_reused)} cn={cn}".encode())
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.sock.close()


def backend(pki, **tls) -> tlsconf.BackendContexts:
    settings = model.BackendTls(**tls)
    ca = pki["ca"].cert.read_bytes() if settings.verify != "none" else None
    cert = tlsconf.read_certificate(settings.cert, settings.key) if settings.cert else None
    return tlsconf.BackendContexts("app", settings, ca, cert)


def exchange(st: ServerTls, addr, name) -> str:
    """Connect, handshake through the transport (select-driven), send,
    read the answer; the session is kept as server.py keeps it."""
    sock = socket.create_connection(addr)
    sock.setblocking(False)
    t = st.wrap(sock, name)
    try:
        while not t.handshake():
            select.select([] if t.wants_write else [t.fd], [t.fd] if t.wants_write else [], [], 5)
        st.keep_session(t)
        while t.send(b"hello") == 0:
            select.select([], [t.fd], [], 5)
        out = b""
        while True:
            select.select([t.fd], [], [], 5)
            data = t.recv()
            if data is None:
                continue
            if not data:
                break
            out += data
            st.keep_session(t)
        return out.decode()
    finally:
        t.close()


def test_verified_handshake_and_resumption(pki):
    srv = TlsServer(pki["app"])
    try:
        st = ServerTls(backend(pki, sni="app.internal"))
        assert exchange(st, srv.addr, "app.internal").startswith("reused=0")
        assert "app.internal" in st.sessions
        assert exchange(st, srv.addr, "app.internal").startswith("reused=1")
        assert exchange(st, srv.addr, "app.internal").startswith("reused=1")
    finally:
        srv.close()


def test_refusals_say_why(pki):
    srv = TlsServer(pki["rogue"])
    try:
        st = ServerTls(backend(pki, sni="app.internal"))
        with pytest.raises(HandshakeError, match="certificate verify failed"):
            exchange(st, srv.addr, "app.internal")
        ok = ServerTls(backend(pki, verify="none"))
        assert exchange(ok, srv.addr, None).startswith("reused=0")
    finally:
        srv.close()
    srv = TlsServer(pki["app"])
    try:
        st = ServerTls(backend(pki, sni="other.internal"))
        with pytest.raises(HandshakeError, match="(?i)hostname mismatch"):
            exchange(st, srv.addr, "other.internal")
        # no SNI: the chain only is checked
        assert exchange(ServerTls(backend(pki)), srv.addr, None).startswith("reused=0")
    finally:
        srv.close()


def test_client_certificate(pki):
    srv = TlsServer(pki["app"], client_ca=pki["ca"].cert)
    try:
        st = ServerTls(backend(pki, sni="app.internal", cert=str(pki["farm"].crt),
                               key=str(pki["farm"].key)))
        assert exchange(st, srv.addr, "app.internal").endswith("cn=farm")
    finally:
        srv.close()


def test_sni_from_a_fetch():
    ctxs = SimpleNamespace(settings=model.BackendTls(verify="none", sni="req.hdr(host)", sni_fetch=True),
                           context=lambda name: None)
    st = ServerTls(ctxs)

    def name(host):
        return st.name_of(SimpleNamespace(req=SimpleNamespace(headers=[(b"Host", host)])))
    assert name(b"App.Example.com:8443") == "app.example.com"
    assert name(b"www.example.com.") == "www.example.com"
    assert name(b"10.0.0.1:443") is None
    assert name(b"[2001:db8::1]:443") is None
    assert name(b"") is None
    assert name(b"bad host") is None and name("héllo.example".encode("latin-1")) is None
    assert name(b"a_b.example-1.com") == "a_b.example-1.com"
    fixed = ServerTls(SimpleNamespace(settings=model.BackendTls(sni="api.internal")))
    assert fixed.fetch is None and fixed.name_of(None) == "api.internal"


def test_failure_reason():
    e = ssl.SSLCertVerificationError(1, "x")
    e.verify_message = "self-signed certificate"
    assert tlsconf.failure_reason(e) == "certificate verify failed: self-signed certificate"
    assert tlsconf.failure_reason(ConnectionResetError(104, "Connection reset by peer")) == \
        "Connection reset by peer"


def test_store_builds_backend_contexts_and_lists_client_certificates(pki):
    from farm import loader
    text = f"""
[frontends.www]
bind = "127.0.0.1:8080"
default_backend = "app"
[backends.app.tls]
ca = "{pki['ca'].cert}"
certificate = "{pki['farm'].crt}"
key = "{pki['farm'].key}"
[[backends.app.servers]]
name = "s1"
address = "127.0.0.1:8443"
tls = true
[backends.plain]
[[backends.plain.servers]]
name = "p1"
address = "127.0.0.1:8000"
"""
    tls_set = tlsconf.TlsStore().build(loader.load_text(text, tls_files=True))
    assert list(tls_set.backends) == ["app"]
    assert tls_set.backends["app"].named.check_hostname
    assert not tls_set.backends["app"].unnamed.check_hostname
    assert [(proxy, c.path) for proxy, c in tls_set.certificates()] == [("app", str(pki["farm"].crt))]


def test_pool_keeps_tls_names_apart_and_forgets_a_moved_server():
    from workers.loop import Loop
    from workers.server import ConnPool, ServerConn
    from workers.transport import PlainTransport

    class Srv:                     # a server as the pool sees it: a hashable identity
        pass
    srv, other = Srv(), Srv()
    loop = Loop()
    pool = ConnPool(loop)
    socks = []

    def conn(key):
        a, b = socket.socketpair()
        socks.append(b)
        c = ServerConn(PlainTransport(a), srv if key is None or key is srv else key[0], 1024,
                       key, None if key is None or key is srv else key[1])
        loop.add(c.fd, 0, lambda ev: None)
        return c
    a1, a2, b1, o1 = conn((srv, "a.internal")), conn((srv, "a.internal")), conn((srv, "b.internal")), \
        conn((other, "a.internal"))
    for c in (a1, a2, b1, o1):
        pool.give(c)
    assert pool.take((srv, "b.internal")) is b1
    assert pool.take((srv, "b.internal")) is None
    assert pool.take(srv) is None                      # a fetched name is never taken without it
    pool.give(b1)
    pool.discard_server(srv)                           # set server ... addr: all of srv's go
    assert pool.take((srv, "a.internal")) is None and pool.take((srv, "b.internal")) is None
    assert pool.take((other, "a.internal")) is o1
    for s in socks:
        s.close()
