"""workers/proxyproto.py: PROXY protocol v1/v2 parsing and building."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers import proxyproto as pp
from workers.proxyproto import NEED_MORE, ProxyError, SslInfo

SIG = pp.V2_SIGNATURE


def fed(data: bytes, **kw):
    """Parse data as it would arrive one byte at a time: every proper
    prefix must ask for more (or be refused), the whole must parse."""
    for i in range(len(data)):
        assert pp.parse(data[:i], **kw) is NEED_MORE, f"prefix of {i} bytes"
    return pp.parse(data, **kw)


# ------------------------------------------------------------------- v1

def test_v1_spec_example_with_request_after_it():
    line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    data = line + b"GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"
    h = pp.parse(data)
    assert (h.version, h.length, h.local) == (1, len(line), False)
    assert (h.src, h.src_port, h.dst, h.dst_port) == ("192.168.0.1", 56324, "192.168.0.11", 443)
    assert fed(line).length == len(line)


def test_v1_longest_lines_from_the_spec():
    v4 = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"
    assert len(v4) == 56 and pp.parse(v4).dst_port == 65535
    f = "ffff:" * 7 + "ffff"
    v6 = f"PROXY TCP6 {f} {f} 65535 65535\r\n".encode()
    assert len(v6) == 104
    h = pp.parse(v6)
    assert h.src == "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    worst = f"PROXY UNKNOWN {f} {f} 65535 65535\r\n".encode()
    assert len(worst) == pp.V1_MAX
    h = fed(worst)
    assert h.local and h.src is None and h.length == 107


def test_v1_unknown_short_form():
    h = pp.parse(b"PROXY UNKNOWN\r\nrest")
    assert h.local and h.length == 15 and h.version == 1


def test_v1_tcp6_normalised():
    h = pp.parse(b"PROXY TCP6 2001:DB8:0:0::1 ::1 1 2\r\n")
    assert (h.src, h.dst) == ("2001:db8::1", "::1")


@pytest.mark.parametrize("line, message", [
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n", pp.PRX_BAD_HDR),     # bare LF
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rX\r\n", pp.PRX_BAD_HDR),
    (b"PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n", pp.PRX_BAD_HDR),  # two spaces
    (b"PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n", pp.PRX_BAD_HDR),  # leading zero
    (b"PROXY TCP4 192.168.0.256 192.168.0.11 56324 443\r\n", pp.PRX_BAD_HDR),
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n", pp.PRX_BAD_HDR),  # leading zero port
    (b"PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n", pp.PRX_BAD_HDR),
    (b"PROXY TCP4 ::1 ::1 1 2\r\n", pp.PRX_BAD_HDR),                          # family mismatch
    (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", pp.PRX_BAD_HDR),
    (b"PROXY TCP6 :::1 ::1 1 2\r\n", pp.PRX_BAD_HDR),
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", pp.PRX_BAD_HDR),                    # missing port
    (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n", pp.PRX_BAD_HDR),
    (b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", pp.PRX_BAD_PROTO),
    (b"PROXY\r\n", pp.PRX_NOT_HDR),
    (b"PROXY \r\n", pp.PRX_BAD_PROTO),
    (b"GET / HTTP/1.1\r\n\r\n", pp.PRX_NOT_HDR),
    (b"\x16\x03\x01\x02\x00\x01", pp.PRX_NOT_HDR),                            # a TLS ClientHello
    (b"PROXY UNKNOWN " + b"x" * 100, pp.PRX_BAD_HDR),                         # no CRLF in 107
])
def test_v1_malformed(line, message):
    with pytest.raises(ProxyError) as e:
        pp.parse(line)
    assert str(e.value) == message


def test_garbage_is_refused_at_its_first_byte():
    with pytest.raises(ProxyError):
        pp.parse(b"G")
    with pytest.raises(ProxyError):
        pp.parse(b"PRX")
    with pytest.raises(ProxyError):
        pp.parse(b"\r\n\r\n\x01")


# ------------------------------------------------------------------- v2

def v2(ver_cmd: int, fam: int, body: bytes) -> bytes:
    return SIG + bytes((ver_cmd, fam)) + struct.pack("!H", len(body)) + body


def test_v2_tcp4_by_hand():
    body = bytes([192, 0, 2, 1, 198, 51, 100, 7]) + struct.pack("!HH", 40000, 443)
    data = v2(0x21, 0x11, body)
    h = fed(data)
    assert (h.version, h.length, h.local) == (2, 28, False)
    assert (h.src, h.src_port, h.dst, h.dst_port) == ("192.0.2.1", 40000, "198.51.100.7", 443)
    assert pp.parse(data + b"payload").length == 28


def test_v2_tcp6_and_tlvs_by_hand():
    addr = (ipaddress.ip_address("2001:db8::1").packed + ipaddress.ip_address("2001:db8::2").packed
            + struct.pack("!HH", 1, 2))
    tl = (pp.tlv(pp.PP2_TYPE_AUTHORITY, b"example.com") + pp.tlv(pp.PP2_TYPE_NOOP, b"")
          + pp.tlv(pp.PP2_TYPE_UNIQUE_ID, b"abc") + pp.tlv(0xE0, b"custom"))
    h = fed(v2(0x21, 0x21, addr + tl))
    assert (h.src, h.dst, h.src_port, h.dst_port) == ("2001:db8::1", "2001:db8::2", 1, 2)
    assert h.authority == b"example.com" and h.unique_id == b"abc"
    assert h.tlvs == [(2, b"example.com"), (4, b""), (5, b"abc"), (0xE0, b"custom")]


def test_v2_local_ignores_the_block():
    h = pp.parse(v2(0x20, 0x11, b"\x01" * 12 + b"junk that is not TLVs"))
    assert h.local and h.src is None and h.length == 16 + 12 + 21


@pytest.mark.parametrize("fam", [0x00, 0x12, 0x22, 0x31, 0x32])
def test_v2_unforwarded_families_use_the_real_addresses(fam):
    body = b"\0" * pp._ADDR_LEN.get(fam >> 4, 0)
    h = pp.parse(v2(0x21, fam, body + pp.tlv(pp.PP2_TYPE_AUTHORITY, b"a")))
    assert h.local and h.authority == b"a"


def test_v2_ssl_tlv():
    info = SslInfo(pp.PP2_CLIENT_SSL | pp.PP2_CLIENT_CERT_CONN, 0, "TLSv1.3", "client1",
                   "TLS_AES_256_GCM_SHA384", "RSA-SHA256", "RSA2048")
    data = pp.build_v2("10.0.0.1", 1, "10.0.0.2", 2, [(pp.PP2_TYPE_SSL, pp.ssl_tlv(info)[3:])])
    h = fed(data)
    assert h.ssl == info
    assert pp.parse(pp.build_v2("10.0.0.1", 1, "10.0.0.2", 2,
                                [(pp.PP2_TYPE_SSL, pp.ssl_tlv(SslInfo(1, 1))[3:])])).ssl.verify == 1


def test_crc32c_known_vector_and_checked_headers():
    assert pp.crc32c(b"123456789") == 0xE3069283       # RFC 3720's check value
    data = pp.build_v2("10.0.0.1", 1, "10.0.0.2", 2, [(pp.PP2_TYPE_AUTHORITY, b"x")], with_crc=True)
    assert pp.parse(data).authority == b"x"
    bad = bytearray(data)
    bad[17] ^= 1                  # a flipped bit in the source address
    with pytest.raises(ProxyError, match="invalid"):
        pp.parse(bytes(bad))


@pytest.mark.parametrize("data, message", [
    (SIG + b"\x11\x11\x00\x0c" + b"\0" * 12, pp.PRX_NOT_HDR),           # version 1 in v2 form
    (SIG + b"\x22\x11\x00\x0c" + b"\0" * 12, pp.PRX_BAD_HDR),           # command 2
    (SIG + b"\x21\x41\x00\x0c" + b"\0" * 12, pp.PRX_BAD_PROTO),         # family 4
    (SIG + b"\x21\x13\x00\x0c" + b"\0" * 12, pp.PRX_BAD_PROTO),         # transport 3
    (SIG + b"\x21\x11\x00\x08" + b"\0" * 8, pp.PRX_BAD_HDR),            # address block too short
    (SIG + b"\x21\x11\x00\x0e" + b"\0" * 14, pp.PRX_BAD_HDR),           # 2 bytes: truncated TLV
    (SIG + b"\x21\x11\x00\x10" + b"\0" * 12 + b"\x02\x00\x09x", pp.PRX_BAD_HDR),   # TLV overflows
    (SIG + b"\x21\x11\x00\x13" + b"\0" * 12 + b"\x03\x00\x04\0\0\0\0", pp.PRX_BAD_HDR),  # CRC 0
    (SIG + b"\x21\x11\x00\x12" + b"\0" * 12 + b"\x20\x00\x03abc", pp.PRX_BAD_HDR),  # SSL < 5
    (SIG + b"\x21\x11\x00\x10" + b"\0" * 12 + b"\x03\x00\x01x", pp.PRX_BAD_HDR),   # CRC not 4
    (b"\r\n\r\n\x00\r\nQUIX\n", pp.PRX_NOT_HDR),
])
def test_v2_malformed(data, message):
    with pytest.raises(ProxyError) as e:
        pp.parse(data)
    assert str(e.value) == message


def test_v2_unique_id_bounded():
    ok = pp.build_v2("1.1.1.1", 1, "2.2.2.2", 2, [(pp.PP2_TYPE_UNIQUE_ID, b"u" * 128)])
    assert pp.parse(ok).unique_id == b"u" * 128
    with pytest.raises(ProxyError):
        pp.parse(pp.build_v2("1.1.1.1", 1, "2.2.2.2", 2, [(pp.PP2_TYPE_UNIQUE_ID, b"u" * 129)]))


def test_v2_absurd_length_refused_from_the_16_byte_header():
    head = SIG + b"\x21\x11\xff\xff"
    with pytest.raises(ProxyError, match="invalid"):
        pp.parse(head)
    assert pp.parse(head, max_v2=pp.V2_MAX_ABSOLUTE) is NEED_MORE
    # a large but accepted header
    big = pp.build_v2("1.1.1.1", 1, "2.2.2.2", 2, [(pp.PP2_TYPE_NOOP, b"\0" * 3000)])
    assert pp.parse(big).length == len(big)


def test_v2_prefix_errors_surface_early():
    with pytest.raises(ProxyError):
        pp.parse(SIG + b"\x31")          # version 3 before the length arrives
    assert pp.parse(SIG + b"\x21") is NEED_MORE


# -------------------------------------------------------------- building

def test_build_v1():
    assert pp.build_v1("192.168.0.1", 56324, "192.168.0.11", 443) == \
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    assert pp.build_v1("::1", 1, "::1", 2) == b"PROXY TCP6 ::1 ::1 1 2\r\n"
    assert pp.build_v1("10.0.0.1", 1, "::1", 2) == b"PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n"
    assert pp.build_v1(None, None, None, None) == b"PROXY UNKNOWN\r\n"


def test_build_v2_local():
    data = pp.build_v2(None, None, None, None, local=True)
    assert data == SIG + b"\x20\x00\x00\x00"
    assert pp.parse(data).local


def same(h, src, sport, dst, dport, length) -> bool:
    ip = ipaddress.ip_address
    return ((ip(h.src), h.src_port, ip(h.dst), h.dst_port, h.length)
            == (ip(src), sport, ip(dst), dport, length))


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(0, 65535)


@given(st.one_of(st.tuples(ipv4, ipv4), st.tuples(ipv6, ipv6)), ports, ports)
def test_v1_round_trip(addrs, sport, dport):
    src, dst = addrs
    data = pp.build_v1(src, sport, dst, dport)
    assert len(data) <= pp.V1_MAX
    h = pp.parse(data + b"\x16\x03\x01")
    assert same(h, src, sport, dst, dport, len(data))


_tlv_types = st.sampled_from([pp.PP2_TYPE_ALPN, pp.PP2_TYPE_AUTHORITY, pp.PP2_TYPE_NOOP,
                              pp.PP2_TYPE_UNIQUE_ID, pp.PP2_TYPE_NETNS, 0xE0, 0xEF, 0xF0])
_texts = st.none() | st.text(max_size=20)


@settings(max_examples=100)
@given(st.one_of(st.tuples(ipv4, ipv4), st.tuples(ipv6, ipv6)), ports, ports,
       st.lists(st.tuples(_tlv_types, st.binary(max_size=128)), max_size=5),
       st.none() | st.builds(SslInfo, st.integers(0, 7), st.integers(0, 2**32 - 1),
                             _texts, _texts, _texts, _texts, _texts),
       st.booleans())
def test_v2_round_trip(addrs, sport, dport, tlvs, ssl, with_crc):
    src, dst = addrs
    all_tlvs = list(tlvs)
    if ssl is not None:
        all_tlvs.append((pp.PP2_TYPE_SSL, pp.ssl_tlv(ssl)[3:]))
    data = pp.build_v2(src, sport, dst, dport, all_tlvs, with_crc=with_crc)
    h = pp.parse(data + b"GET /", max_v2=pp.V2_MAX_ABSOLUTE)
    assert same(h, src, sport, dst, dport, len(data))
    got = [t for t in h.tlvs if t[0] != pp.PP2_TYPE_CRC32C]
    assert got == all_tlvs
    assert h.ssl == ssl
    authorities = [v for t, v in tlvs if t == pp.PP2_TYPE_AUTHORITY]
    assert h.authority == (authorities[-1] if authorities else None)     # the last one counts


@settings(max_examples=150)
@given(st.binary(max_size=120))
def test_random_bytes_never_crash(data):
    try:
        pp.parse(data)
    except ProxyError:
        pass


@settings(max_examples=100)
@given(st.binary(min_size=1, max_size=60), st.integers(0, 2))
def test_random_v2_bodies_never_crash(body, fam_family):
    data = v2(0x21, (fam_family << 4) | 1, body)
    try:
        h = pp.parse(data)
    except ProxyError:
        return
    assert h.length == len(data)
