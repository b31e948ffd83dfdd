"""workers/ppsend.py (the header sent to servers), workers/ppaccept.py's
pure parts (trusted sources, the address a session sees) and the health
check's header (farm/health.py), each checked by parsing what they produce
with workers/proxyproto.py. The sockets are real (a connected pair on
127.0.0.1): the destination comes from getsockname()."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from farm import health
from farm.model import Address, Server
from workers import ppaccept, ppsend
from workers import proxyproto as pp


@pytest.fixture
def accepted():
    """A real accepted socket: (server side, its local port)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    c = socket.create_connection(lsock.getsockname())
    s, _ = lsock.accept()
    yield s, lsock.getsockname()[1]
    for x in (s, c, lsock):
        x.close()


def server(version, tlvs=()) -> Server:
    return Server("s1", Address("127.0.0.1", 1), send_proxy=version, send_proxy_tlvs=tuple(tlvs))


class Tls:
    """What ppsend reads of a TLS transport (workers/transport.py TlsTransport)."""
    secure = True
    sni = "www.example.com"
    protocol = "TLSv1.3"
    cipher = "TLS_AES_128_GCM_SHA256"
    client_cert = True
    verify_result = 0

    def subject_dn(self, entry=None):
        return "alice"


def test_v1_from_the_socket(accepted):
    sock, port = accepted
    h = pp.parse(ppsend.client_header(server("v1"), "10.1.2.3", 4444, sock))
    assert (h.version, h.src, h.src_port, h.dst, h.dst_port) == (1, "10.1.2.3", 4444, "127.0.0.1", port)


def test_v2_from_a_received_header_keeps_its_destination_and_tlvs(accepted):
    sock, _ = accepted
    got = pp.parse(pp.build_v2("2001:db8::5", 1, "2001:db8::1", 8443, [
        (pp.PP2_TYPE_AUTHORITY, b"a.example"), (pp.PP2_TYPE_UNIQUE_ID, b"u1"),
        (pp.PP2_TYPE_SSL, pp.ssl_tlv(pp.SslInfo(1, 0, "TLSv1.2"))[3:])]))
    cfg = server("v2", ["authority", "unique_id", "ssl", "crc32c"])
    data = ppsend.client_header(cfg, got.src, got.src_port, sock, got)
    h = pp.parse(data)
    assert (h.src, h.dst, h.dst_port) == ("2001:db8::5", "2001:db8::1", 8443)
    assert h.authority == b"a.example" and h.unique_id == b"u1"
    assert h.ssl == pp.SslInfo(1, 0, "TLSv1.2")
    assert [t for t, _ in h.tlvs][-1] == pp.PP2_TYPE_CRC32C
    # without send_proxy_tlvs: addresses only
    assert pp.parse(ppsend.client_header(server("v2"), "1.2.3.4", 5, sock, got)).tlvs == []


def test_v2_from_a_tls_client(accepted):
    sock, port = accepted
    cfg = server("v2", ["authority", "ssl", "ssl_cn"])
    h = pp.parse(ppsend.client_header(cfg, "127.0.0.9", 9, sock, None, Tls()))
    assert h.dst_port == port and h.authority == b"www.example.com"
    assert h.ssl == pp.SslInfo(pp.PP2_CLIENT_SSL | pp.PP2_CLIENT_CERT_CONN | pp.PP2_CLIENT_CERT_SESS,
                               0, "TLSv1.3", "alice", "TLS_AES_128_GCM_SHA256")
    t = Tls()
    t.client_cert = False
    h = pp.parse(ppsend.client_header(server("v2", ["ssl", "ssl_cn"]), "127.0.0.9", 9, sock, None, t))
    assert h.ssl.client == pp.PP2_CLIENT_SSL and h.ssl.verify == 1 and h.ssl.cn is None


def test_a_local_header_uses_the_socket(accepted):
    sock, port = accepted
    local = pp.parse(b"PROXY UNKNOWN\r\n")
    h = pp.parse(ppsend.client_header(server("v1"), "127.0.0.1", 7, sock, local))
    assert (h.dst, h.dst_port) == ("127.0.0.1", port)


def test_trusted_matcher():
    assert ppaccept.trusted_matcher(()) is None
    trusted = ppaccept.trusted_matcher((ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")))
    assert trusted("10.9.8.7") and trusted("::1") and trusted("::ffff:10.0.0.1")
    assert not trusted("127.0.0.1") and not trusted("::2") and not trusted("nonsense")


def test_proxied_address():
    caddr = ("127.0.0.1", 5000)
    h = pp.parse(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n")
    a = ppaccept.proxied(caddr, h)
    assert a == ("192.0.2.1", 1) and a[0] == "192.0.2.1" and a.proxy is h
    local = pp.parse(b"PROXY UNKNOWN\r\n")
    assert ppaccept.proxied(caddr, local) == caddr


def test_health_check_headers_parse(accepted):
    assert pp.parse(health.PROXY_V2_LOCAL).local
    assert health.PROXY_V2_LOCAL == pp.build_v2(None, None, None, None, local=True)

    class Check:
        send_proxy = "v1"
        sock = accepted[0]
    h = pp.parse(health.ServerCheck.proxy_header(Check()))
    peer = accepted[0].getpeername()
    assert (h.src, h.src_port, h.dst, h.dst_port) == ("127.0.0.1", accepted[1], peer[0], peer[1])
