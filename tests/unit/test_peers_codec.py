"""HAProxy's peers protocol codec (farm/peers/codec.py): encoded integers,
handshake lines, framing, table definitions, updates; garbage raises
PeerProtocolError, never anything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farm.peers import codec as C


# -- encoded integers: the sizes of doc/peers-v2.0.txt ------------------------------

@pytest.mark.parametrize("n,size", [
    (0, 1), (239, 1), (240, 2), (2287, 2), (2288, 3), (264431, 3), (264432, 4),
    (33818863, 4), (33818864, 5), (4328786159, 5), (4328786160, 6), ((1 << 64) - 1, 10),
])
def test_encoded_integer_sizes(n, size):
    raw = C.enc_int(n)
    assert len(raw) == size
    assert C.dec_int(raw, 0, len(raw)) == (n, size)


def test_encoded_integer_known_bytes():
    assert C.enc_int(240) == b"\xf0\x00"
    assert C.enc_int(255) == b"\xff\x00"
    assert C.enc_int(256) == b"\xf0\x01"
    assert C.enc_int(-1) == C.enc_int((1 << 64) - 1)      # C's conversion of a negative int


@given(st.integers(0, (1 << 64) - 1))
def test_encoded_integer_round_trip(n):
    raw = C.enc_int(n) + b"tail"
    assert C.dec_int(raw, 0, len(raw)) == (n, len(raw) - 4)


def test_encoded_integer_cut_or_too_long():
    with pytest.raises(C.PeerProtocolError, match="cut"):
        C.dec_int(b"\xf5\x80", 0, 2)
    with pytest.raises(C.PeerProtocolError):
        C.dec_int(b"", 0, 0)
    with pytest.raises(C.PeerProtocolError, match="64 bits"):
        C.dec_int(b"\xff" + b"\xff" * 12, 0, 13)


# -- handshake ---------------------------------------------------------------------

def test_hello_and_its_parse():
    raw = C.hello("lb2", "lb1", 1234)
    assert raw == b"HAProxyS 2.1\nlb2\nlb1 1234 1\n"
    h = C.parse_hello(raw.split(b"\n")[:3])
    assert (h.minor, h.called, h.caller) == (1, "lb2", "lb1")


@pytest.mark.parametrize("lines,code", [
    ([b"HTTP/1.1 200", b"x", b"y 1 1"], C.ST_ERR_PROTO),
    ([b"HAProxyS 3.0", b"x", b"y 1 1"], C.ST_ERR_VERSION),
    ([b"HAProxyS 2.9", b"x", b"y 1 1"], C.ST_ERR_VERSION),
    ([b"HAProxyS 2.x", b"x", b"y 1 1"], C.ST_ERR_VERSION),
    ([b"HAProxyS 2.1", b"x", b"y"], C.ST_ERR_PROTO),
    ([b"HAProxyS 2.1", b"x", b"\xff\xfe 1 1"], C.ST_ERR_PROTO),
])
def test_bad_hello_gets_its_status(lines, code):
    with pytest.raises(C.HandshakeError) as e:
        C.parse_hello(lines)
    assert e.value.code == code


def test_status_line():
    assert C.parse_status(b"200") == 200
    assert C.parse_status(b"504\r") == 504
    for bad in (b"", b"20", b"OK!", b"2000"):
        with pytest.raises(C.PeerProtocolError):
            C.parse_status(bad)


# -- framing -----------------------------------------------------------------------

def test_split_messages_byte_by_byte():
    stream = (C.control(C.CTRL_HEARTBEAT) + C.switch_msg(3) + C.ack_msg(2, 77)
              + C.message(C.CLASS_TABLE, C.T_DEFINE, b"x" * 300))
    buf = bytearray()
    got = []
    for b in stream:
        buf.append(b)
        got += C.split_messages(buf)
    assert not buf
    assert [(c, t) for c, t, _ in got] == [(0, 4), (10, 0x83), (10, 0x84), (10, 0x82)]
    assert C.parse_switch(got[1][2]) == 3
    assert C.parse_ack(got[2][2]) == (2, 77)
    assert got[3][2] == b"x" * 300


def test_split_messages_errors():
    with pytest.raises(C.PeerProtocolError, match="reserved"):
        C.split_messages(bytearray(b"\xff\x00"))
    with pytest.raises(C.SizeLimitError):
        C.split_messages(bytearray(b"\x0a\x80" + C.enc_int(C.MAX_MESSAGE + 1)))


# -- stick-table messages -------------------------------------------------------------

def _def(**kw):
    base = dict(table_id=1, name="per_ip", key_type=C.KT_IPV4, key_size=4,
                data_types=(0, 2, 10), periods={10: 10000}, expire=600000)
    base.update(kw)
    return C.TableDef(**base)


def test_define_round_trip_with_rates_and_arrays():
    d = _def(data_types=(0, 3, 10, 19, 22, 24), periods={3: 1000, 10: 10000, 24: 60000},
             nbelem={22: 2, 24: 3})
    cls, typ, p = C.split_messages(bytearray(C.define_msg(d)))[0]
    assert (cls, typ) == (C.CLASS_TABLE, C.T_DEFINE)
    back = C.parse_define(p)
    assert back == d


def test_define_without_parameters_is_read_like_an_old_haproxy():
    p = C.enc_int(4) + C.enc_int(3) + b"abc" + C.enc_int(C.KT_STR) + C.enc_int(33) + C.enc_int(1 << 2)
    d = C.parse_define(p)
    assert (d.table_id, d.name, d.key_size, d.data_types, d.expire) == (4, "abc", 33, (2,), 0)


def test_define_mismatched_parameters_are_an_error():
    p = (C.enc_int(1) + C.enc_int(1) + b"t" + C.enc_int(4) + C.enc_int(4) + C.enc_int(1 << 10)
         + C.enc_int(1000) + C.enc_int(9) + C.enc_int(5))
    with pytest.raises(C.PeerProtocolError, match="data type 9"):
        C.parse_define(p)


values = st.fixed_dictionaries({
    0: st.integers(-(1 << 31), (1 << 31) - 1),
    2: st.integers(0, (1 << 32) - 1),
    10: st.tuples(st.integers(0, (1 << 32) - 1), st.integers(0, (1 << 32) - 1),
                  st.integers(0, (1 << 32) - 1)),
    13: st.integers(0, (1 << 64) - 1),
    19: st.one_of(st.none(), st.text("abcs12", min_size=1, max_size=20)),
})


@settings(max_examples=200)
@given(values, st.one_of(st.none(), st.integers(0, (1 << 32) - 1)),
       st.one_of(st.none(), st.integers(0, (1 << 31))),
       st.sampled_from([(C.KT_IPV4, 4, b"\x0a\x00\x00\x01"), (C.KT_IPV6, 16, bytes(range(16))),
                        (C.KT_SINT, 4, b"\xff\xff\xff\xfe"), (C.KT_STR, 33, b"some-key"),
                        (C.KT_BIN, 8, b"\x00\x01binary")]))
def test_update_round_trip(vals, uid, expire, key):
    kt, ks, k = key
    d = _def(key_type=kt, key_size=ks, data_types=(0, 2, 10, 13, 19), periods={10: 1000})
    u = C.Update(k, vals, uid, expire)
    cls, typ, p = C.split_messages(bytearray(C.update_msg(d, u)))[0]
    back = C.parse_update(p, typ, d, {})
    assert back.key == k and back.values == vals
    assert back.update_id == uid and back.expire == expire


def test_dictionary_entry_by_id_after_its_value():
    d = _def(data_types=(19,), periods={})
    cache: dict = {}
    u = C.Update(b"\x01\x02\x03\x04", {19: "s2"}, 5)
    C.parse_update(C.split_messages(bytearray(C.update_msg(d, u)))[0][2], C.T_UPDATE, d, cache)
    assert cache == {1: "s2"}
    # HAProxy's short form: length 1, the id alone
    p = b"\x00\x00\x00\x06" + b"\x01\x02\x03\x04" + C.enc_int(1) + C.enc_int(1)
    assert C.parse_update(p, C.T_UPDATE, d, cache).values == {19: "s2"}


@settings(max_examples=300)
@given(st.binary(max_size=80), st.sampled_from([C.T_UPDATE, C.T_INCUPDATE, C.T_UPDATE_TIMED,
                                                 C.T_INCUPDATE_TIMED]))
def test_garbage_update_raises_only_protocol_errors(p, typ):
    d = _def(key_type=C.KT_STR, key_size=33, data_types=(0, 10, 19, 23), nbelem={23: 2})
    try:
        C.parse_update(p, typ, d, {})
    except C.PeerProtocolError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_garbage_define_and_framing_raise_only_protocol_errors(p):
    for fn in (C.parse_define, C.parse_ack, C.parse_switch,
               lambda b: C.split_messages(bytearray(b))):
        try:
            fn(p)
        except C.PeerProtocolError:
            pass
