"""workers/rules.py: the fc_pp_* fetches, which read the PROXY header the
client connection started with (txn.conn.t.proxy), in ACLs and log-format
values. The header is a real one, built and parsed by workers/proxyproto.py."""

from __future__ import annotations

import pytest

from farm.conditions import ConditionError, parse_acl
from tests.unit.test_rules import Txn
from workers import proxyproto as pp
from workers.rules import compile_acl_spec, compile_format


class Transport:
    secure = False

    def __init__(self, proxy=None):
        self.proxy = proxy


class Conn:
    def __init__(self, t):
        self.t = t


def txn(header: bytes | None = None) -> Txn:
    x = Txn()
    x.conn = Conn(Transport(pp.parse(header) if header is not None else None))
    return x


HEADER = pp.build_v2("192.0.2.1", 1000, "198.51.100.1", 443, [
    (pp.PP2_TYPE_AUTHORITY, b"www.example.com"),
    (pp.PP2_TYPE_UNIQUE_ID, b"id-42"),
    (0xE1, b"custom"),
    (pp.PP2_TYPE_SSL, pp.ssl_tlv(pp.SslInfo(pp.PP2_CLIENT_SSL, 0, "TLSv1.3", "alice",
                                            "TLS_AES_128_GCM_SHA256"))[3:]),
])


def matches(text: str, x) -> bool:
    return compile_acl_spec(parse_acl(text))(x)


def test_acls():
    x = txn(HEADER)
    assert matches("fc_pp_authority www.example.com", x)
    assert matches("fc_pp_unique_id -m beg id-", x)
    assert matches("fc_pp_tlv(0xE1) custom", x)
    assert matches("fc_pp_tlv(225) custom", x)
    assert matches("fc_pp_tlv(ssl_cn) alice", x)
    assert matches("fc_pp_tlv(SSL_VERSION) TLSv1.3", x)
    assert not matches("fc_pp_tlv(SSL_SIG_ALG) -m found", x)
    assert not matches("fc_pp_tlv(ALPN) -m found", x)


def test_absent_without_a_header_or_a_tlv():
    for x in (txn(), txn(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")):
        assert not matches("fc_pp_authority -m found", x)
        assert not matches("fc_pp_unique_id -m found", x)
        assert not matches("fc_pp_tlv(SSL_CN) -m found", x)


def test_log_format_values():
    fmt = compile_format("%[fc_pp_authority] %[fc_pp_unique_id] %[fc_pp_tlv(SSL_CIPHER)]")
    assert fmt(txn(HEADER)) == b"www.example.com id-42 TLS_AES_128_GCM_SHA256"
    assert fmt(txn()) == b"  "


@pytest.mark.parametrize("text", ["fc_pp_tlv foo", "fc_pp_tlv(256) x", "fc_pp_tlv(BOGUS) x",
                                  "fc_pp_authority(1) x"])
def test_bad_arguments(text):
    with pytest.raises(ConditionError):
        parse_acl(text)


def test_dst_fetch():
    x = Txn()
    assert not matches("dst -m found", x)            # a txn without dst (farm explain's)
    assert not matches("dst 0.0.0.0/0", x)
    x.dst = "192.0.2.10"
    assert matches("dst 192.0.2.0/24", x) and not matches("dst 10.0.0.0/8", x)
    assert matches("dst ::ffff:192.0.2.10", x)       # either spelling of an IPv4 address
    assert matches("dst -m found", x)
    x.dst = "2001:db8::1"
    assert matches("dst 2001:db8::/32", x)
    assert compile_format("%[dst]:%[dst_port]")(x) == b"2001:db8::1:80"
