"""workers/rules.py: the ssl_fc* / ssl_c_* fetches in ACLs, conditions and
log-format values, read through txn.conn.t (the client's transport).

Tls below has the attributes of workers/transport.py's TlsTransport that
the fetches read (tests/unit/test_transport_tls.py tests the real one
against a real TLS client)."""

from __future__ import annotations

import pytest

from farm.conditions import ConditionError, check_acl, check_format, parse_acl
from farm.model import Rule
from tests.unit.test_rules import Txn
from workers.rules import acl_sample, compile_acl_spec, compile_format, compile_request_rules


class Tls:
    secure = True

    def __init__(self, sni="www.example.com", cert=True, reused=False):
        self.sni = sni
        self.protocol = "TLSv1.3"
        self.cipher = "TLS_AES_256_GCM_SHA384"
        self.alpn = "http/1.1"
        self.session_reused = reused
        self.client_cert = cert
        self.verify_result = 0
        self.serial = bytes.fromhex("0A1B") if cert else None
        self.sha1 = bytes.fromhex("00ff" * 10) if cert else None
        self._cert = cert

    def subject_dn(self, entry=None):
        if not self._cert:
            return None
        return "alice" if entry and entry.lower() == "cn" else "/O=Example/CN=alice"

    def issuer_dn(self, entry=None):
        return ("Example CA" if entry else "/O=Example/CN=Example CA") if self._cert else None


class Plain:
    secure = False


class Conn:
    def __init__(self, t):
        self.t = t


def txn(t=None) -> Txn:
    x = Txn()
    x.conn = Conn(t if t is not None else Plain())
    return x


def matches(text: str, x) -> bool:
    return compile_acl_spec(parse_acl(text))(x)


def test_booleans():
    assert matches("ssl_fc", txn(Tls())) and not matches("ssl_fc", txn())
    assert not matches("ssl_fc", Txn())                      # no connection at all (farm explain)
    assert matches("ssl_c_used", txn(Tls())) and not matches("ssl_c_used", txn(Tls(cert=False)))
    assert matches("ssl_fc_session_reused", txn(Tls(reused=True)))
    assert not matches("ssl_fc_session_reused", txn(Tls()))


def test_strings_and_derived_keywords():
    t = txn(Tls())
    assert matches("ssl_fc_sni -i WWW.example.com", t)
    assert matches("ssl_fc_sni_end .example.com", t)
    assert matches("ssl_fc_sni -m found", t)
    assert not matches("ssl_fc_sni -m found", txn(Tls(sni=None)))
    assert not matches("ssl_fc_sni -m found", txn())
    assert matches("ssl_fc_protocol TLSv1.3", t) and not matches("ssl_fc_protocol TLSv1.2", t)
    assert matches("ssl_fc_cipher -m beg TLS_AES", t)
    assert matches("ssl_fc_alpn http/1.1", t)
    assert matches("ssl_c_s_dn(CN) alice", t) and matches("ssl_c_s_dn -m sub CN=alice", t)
    assert matches("ssl_c_i_dn(cn) -m beg Example", t)
    assert not matches("ssl_c_s_dn -m found", txn(Tls(cert=False)))


def test_integers_and_binaries():
    assert matches("ssl_c_verify 0", txn(Tls()))
    assert not matches("ssl_c_verify -m found", txn())
    assert matches("ssl_c_serial 0a1b", txn(Tls())) and not matches("ssl_c_serial 0A1C", txn(Tls()))
    assert matches("ssl_c_sha1 " + "00FF" * 10, txn(Tls()))
    assert matches("ssl_c_sha1 -m found", txn(Tls())) and not matches("ssl_c_sha1 -m found", txn())


def test_samples_for_tracing():
    assert acl_sample(parse_acl("ssl_c_serial 0A1B"))(txn(Tls())) == [b"0A1B"]
    assert acl_sample(parse_acl("ssl_fc"))(txn()) == [False]
    assert acl_sample(parse_acl("ssl_fc_sni x"))(txn()) == []


def test_log_format_values():
    t = txn(Tls())
    render = compile_format("%[ssl_fc] %[ssl_fc_sni] %[ssl_fc_protocol] %[ssl_c_serial,hex] "
                            "%[ssl_c_sha1,hex,lower] %[ssl_c_s_dn(CN)] %[ssl_c_verify] "
                            "%[ssl_fc_session_reused]")
    assert render(t) == (b"1 www.example.com TLSv1.3 0A1B " + b"00ff" * 10 + b" alice 0 0")
    assert render(txn()) == b"0       0"    # plain: booleans 0, the rest absent (ssl_c_verify too)
    assert compile_format("%[ssl_c_serial]")(t) == b"\x0a\x1b"      # raw, as HAProxy's binary


def test_redirect_to_https_unless_ssl_fc():
    rules = compile_request_rules([Rule("redirect", (("code", 301), ("scheme", "https")),
                                        cond=_unless("{ ssl_fc }"))])
    plain = txn()
    plain.req.headers = [(b"Host", b"www.example.com")]
    verdict = rules(plain)
    assert verdict.status == 301
    assert (b"Location", b"https://www.example.com/") in verdict.headers
    secure = txn(Tls())
    secure.req.headers = [(b"Host", b"www.example.com")]
    assert rules(secure) is None


def _unless(text):
    from farm.model import Condition
    return Condition(text, negate=True)


@pytest.mark.parametrize("text, message", [
    ("ssl_c_serial zz", "is not hexadecimal"),
    ("ssl_c_s_dn(CN,1) x", "only the entry name"),
    ("ssl_c_s_dn(C-N) x", "invalid DN entry"),
    ("ssl_fc x", "boolean fetch"),
    ("ssl_fc_sni(x) y", "takes no argument"),
])
def test_acl_errors(text, message):
    (err,) = check_acl(text)
    assert message in err


def test_format_errors():
    assert check_format("%[ssl_fc_sni,nope]") and not check_format("%[ssl_c_sha1,hex]")
    with pytest.raises(ConditionError):
        parse_acl("ssl_c_verify abc")
