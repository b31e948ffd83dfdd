"""workers/clienthello.py: SNI and ALPN from real ClientHellos (made by
Python's ssl over memory BIOs), fed whole, byte by byte, and re-framed
into several records; and what is not a ClientHello."""

from __future__ import annotations

import ssl

import pytest

from workers import clienthello
from workers.clienthello import NEED_MORE, NotClientHello, parse


def hello(server_name: str | None = "www.example.com", alpn: list[str] | None = None,
          tls13: bool = True) -> bytes:
    """The first flight of a client made by OpenSSL."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if not tls13:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        ctx.set_alpn_protocols(alpn)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=False, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def reframe(data: bytes, size: int) -> bytes:
    """The same handshake bytes in records of at most `size` bytes."""
    assert data[0] == 22
    body = data[5:5 + int.from_bytes(data[3:5], "big")]
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += data[:3] + len(part).to_bytes(2, "big") + part
    return out


@pytest.mark.parametrize("tls13", [True, False])
def test_sni_and_alpn_of_an_openssl_hello(tls13):
    ch = parse(hello("Acme.Example.COM", ["acme-tls/1"], tls13))
    assert ch.sni == "acme.example.com" and ch.alpn == (b"acme-tls/1",)
    ch = parse(hello("www.example.com", ["h2", "http/1.1"]))
    assert ch.sni == "www.example.com" and ch.alpn == (b"h2", b"http/1.1")


def test_without_sni_or_alpn():
    ch = parse(hello(None))
    assert ch.sni is None and ch.alpn == ()


def test_every_prefix_needs_more_and_bytes_after_are_ignored():
    data = hello("a.test", ["acme-tls/1"])
    for n in range(len(data)):
        assert parse(data[:n]) is NEED_MORE, n
    assert parse(data + b"\x17\x03\x03\x00\x05hello").sni == "a.test"


@pytest.mark.parametrize("size", [1, 7, 100, 500])
def test_a_hello_split_over_several_records(size):
    data = reframe(hello("split.test", ["http/1.1", "acme-tls/1"]), size)
    for n in range(0, len(data), max(1, len(data) // 50)):
        assert parse(data[:n]) is NEED_MORE
    ch = parse(data)
    assert ch.sni == "split.test" and ch.alpn == (b"http/1.1", b"acme-tls/1")


@pytest.mark.parametrize("data,message", [
    (b"GET / HTTP/1.1\r\n\r\n", "not a TLS handshake record"),
    (b"\x80\x2e\x01\x00\x02", "not a TLS handshake record"),            # SSLv2 hello
    (b"\x16\x02\x00\x00\x10", "version major"),
    (b"\x16\x03\x01\x00\x00", "TLS record of 0 bytes"),
    (b"\x16\x03\x01\x50\x00", "TLS record of 20480 bytes"),
    (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", "not a ClientHello"),     # a ServerHello
    (b"\x16\x03\x01\x00\x04\x01\x01\x00\x00", "more than 65536"),
])
def test_not_a_client_hello(data, message):
    with pytest.raises(NotClientHello, match=message):
        parse(data)


def test_another_record_type_in_the_middle():
    data = reframe(hello("a.test"), 100)
    with pytest.raises(NotClientHello, match="interleaved"):
        parse(data[:105] + b"\x15\x03\x03\x00\x02\x02\x28")


def test_a_vector_longer_than_its_message_is_refused():
    # a complete handshake message whose session id claims 200 bytes
    body = b"\x03\x03" + b"r" * 32 + b"\xc8" + b"x" * 10
    msg = b"\x01" + len(body).to_bytes(3, "big") + body
    with pytest.raises(NotClientHello, match="truncated"):
        parse(b"\x16\x03\x01" + len(msg).to_bytes(2, "big") + msg)


def test_a_hello_without_extensions():
    body = b"\x03\x03" + b"r" * 32 + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00"
    msg = b"\x01" + len(body).to_bytes(3, "big") + body
    ch = parse(b"\x16\x03\x01" + len(msg).to_bytes(2, "big") + msg)
    assert ch.sni is None and ch.alpn == ()


def test_the_bound_holds_whatever_the_records_say():
    assert clienthello.MAX_HELLO == 65536
    # a hello that claims 60000 bytes is waited for, one that claims more is refused
    head = b"\x01" + (60000).to_bytes(3, "big")
    assert parse(b"\x16\x03\x01\x00\x04" + head) is NEED_MORE
