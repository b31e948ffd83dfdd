"""Peer sessions (farm/peers/session.py) back to back, and the table side
(farm/peers/sync.py) on real shared tables: handshake and its refusals,
updates from one table into another, change detection without echo,
rates carried as HAProxy sends them, garbage closing a session cleanly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farm import model
from farm.peers import codec as C
from farm.peers.session import Session
from farm.peers.sync import TableSync, _rate_in, _rate_out
from farm.tables import StickTable, encode_key, now_ms


def table(name="per_ip", type_="ip", store=(("http_req_rate", 10000), ("gpc0", 0), ("server_id", 0),
                                              ("conn_cur", 0)), **kw):
    d = model.StickTable(name, type_, kw.pop("key_len", 32), kw.pop("size", 100),
                         kw.pop("expire_ms", 600000), store)
    return StickTable(d, 1)


def pump(a: Session, b: Session, now: float = 0.0) -> list:
    """Move bytes both ways until both are quiet: the events of each side."""
    ev_a, ev_b = [], []
    for _ in range(20):
        if not a.out and not b.out:
            break
        if a.out:
            data, a.out = bytes(a.out), bytearray()
            ev_b += b.feed(data, now)
        if b.out:
            data, b.out = bytes(b.out), bytearray()
            ev_a += a.feed(data, now)
    return [ev_a, ev_b]


def pair(caller="lb1", callee="lb2", **kw):
    a = Session(caller, 0.0, remote=kw.pop("called", callee), pid=42)
    b = Session(callee, 0.0, check_caller=kw.pop("check", lambda n: C.ST_OK))
    return a, b


def test_handshake_opens_both_sides():
    a, b = pair()
    ev_a, ev_b = pump(a, b)
    assert ev_a == [("open", "lb2")] and ev_b == [("open", "lb1")]
    assert a.is_open and b.is_open and b.remote == "lb1"


def test_handshake_refusals():
    a, b = pair(called="other")
    ev_a, ev_b = pump(a, b)
    assert b.state == "closed" and "503" in b.reason
    assert a.state == "closed" and "503" in a.reason
    a, b = pair(check=lambda n: C.ST_ERR_PEER)
    ev_a, ev_b = pump(a, b)
    assert "504" in a.reason and ev_b[-1][0] == "closed"


def test_update_from_one_table_to_another():
    ta, tb = table(), table()
    sa, sb = TableSync(ta, 1), TableSync(tb, 1)
    now = now_ms()
    key = encode_key("ip", 32, "10.0.0.7")
    e = ta.track(key, 0, now, True)
    ta.untrack(e, 0, now)
    ta.set(e, "gpc0", 5, now)
    ta.set(e, "server_id", 2, now)
    ta.add(e, "conn_cur", 3, now)
    assert sa.changed() == [e]
    assert sa.changed() == []                  # reported once
    a, b = pair()
    pump(a, b)
    a.send_update(sa.definition(), sa.update(e, now))
    ev_a, ev_b = pump(a, b)
    kinds = [x[0] for x in ev_b]
    assert kinds == ["table", "update"]
    _, d, u = ev_b[1]
    assert sb.matches(d) == ""
    e2 = sb.apply(d, u, now)
    assert tb.get(e2, "gpc0") == 5 and tb.get(e2, "server_id") == 2
    assert tb.get(e2, "http_req_rate", now) == 1
    assert tb.get(e2, "conn_cur") == 0         # the peer's own connections are not ours
    assert 590000 < tb.expires_in(e2, now) <= 600000
    assert sb.changed() == []                  # applied: not sent back


def test_a_second_table_is_switched_to():
    ta, tb = table("a"), table("b")
    sa, sb = TableSync(ta, 1), TableSync(tb, 2)
    now = now_ms()
    ea = ta.get_or_create(encode_key("ip", 32, "1.1.1.1"), -1, now)
    eb = tb.get_or_create(encode_key("ip", 32, "2.2.2.2"), -1, now)
    a, b = pair()
    pump(a, b)
    for s, e in ((sa, ea), (sb, eb), (sa, ea)):
        a.send_update(s.definition(), s.update(e, now))
    ev = [x for x in pump(a, b)[1] if x[0] == "update"]
    assert [x[1].name for x in ev] == ["a", "b", "a"]


@pytest.mark.parametrize("type_,key_len,value", [
    ("integer", 32, 123456), ("integer", 32, -5), ("string", 12, b"api-key-1"),
    ("ipv6", 32, "2001:db8::1"), ("binary", 6, b"\x00\x01\x02\x03\x04\x05"),
])
def test_key_types_round_trip(type_, key_len, value):
    ta, tb = table(type_=type_, key_len=key_len), table(type_=type_, key_len=key_len)
    sa, sb = TableSync(ta, 1), TableSync(tb, 1)
    now = now_ms()
    key = encode_key(type_, key_len, value)
    e = ta.get_or_create(key, -1, now)
    ta.set(e, "gpc0", 9, now)
    d = sa.definition()
    u = sa.update(e, now)
    _, typ, p = C.split_messages(bytearray(C.update_msg(d, u)))[0]
    e2 = sb.apply(d, C.parse_update(p, typ, d, {}), now)
    assert tb.key_of(e2) == key and tb.get(e2, "gpc0") == 9


def test_definition_mismatch_is_reported():
    sa = TableSync(table(type_="string", key_len=16), 1)
    sb = TableSync(table(type_="string", key_len=32), 1)
    assert "key type" in sb.matches(sa.definition())
    assert sa.definition().key_size == 17       # HAProxy counts the terminating NUL


def test_rates_as_haproxy_sends_them():
    period = 10000
    now = 1_000_000 + 2500                      # 2.5 s into a period
    c0, c1 = _rate_in((2500, 7, 4), now, period)
    assert _rate_out(c0, c1, now, period) == (2500, 7, 4)
    # the sender's period is over: its current count is our previous one
    c0, c1 = _rate_in((period + 100, 7, 4), now, period)
    assert _rate_out(c0, c1, now, period)[1:] == (0, 7)
    c0, c1 = _rate_in((3 * period, 7, 4), now, period)
    assert _rate_out(c0, c1, now, period)[1:] == (0, 0)


def test_garbage_after_the_handshake_closes_with_an_error_message():
    a, b = pair()
    pump(a, b)
    events = b.feed(b"\xff\xff garbage", 1.0)
    assert events == [("closed", "protocol error: message of the reserved class 255")]
    assert bytes(b.out) == C.error(C.ERR_PROTOCOL)
    assert b.feed(b"more", 2.0) == []


def test_a_peer_error_message_closes():
    a, b = pair()
    pump(a, b)
    assert b.feed(C.error(C.ERR_PROTOCOL), 1.0)[0][0] == "closed"


def test_resync_request_and_finished_confirmed():
    a, b = pair()
    pump(a, b)
    a.send_control(C.CTRL_RESYNC_REQ)
    ev_a, ev_b = pump(a, b)
    assert ev_b == [("resync_request",)]
    b.send_control(C.CTRL_RESYNC_FINISHED)
    ev_a, ev_b = pump(a, b)
    assert ev_a == [("resync_done", False)]     # and a confirm went back
    assert ev_b == []


@settings(max_examples=300)
@given(st.binary(max_size=200), st.booleans())
def test_any_bytes_never_raise(data, open_first):
    a, b = pair()
    if open_first:
        pump(a, b)
    for target in (a, b):
        for i in range(0, len(data), 7):
            target.feed(data[i:i + 7], 1.0)
        assert target.state in ("hello", "accept", "open", "closed")


def test_changed_finds_exactly_the_changed_entries():
    t = table(size=3000)
    s = TableSync(t, 1)
    now = now_ms()
    es = [t.get_or_create(i.to_bytes(4, "big"), -1, now) for i in range(2500)]
    assert sorted(s.changed()) == es                  # new entries are changes
    assert s.changed() == []
    picked = [0, 1, 255, 256, 1000, 2499]
    for e in picked:
        t.add(e, "gpc0", 1, now)
    t.remove(700)                                      # gone: not reported
    assert sorted(s.changed()) == picked
    # written from a peer: not a change; a worker's count after it is
    d = s.definition()
    u = s.update(3, now)
    u.values[C.TYPE_ID["gpc0"]] = 42
    assert s.apply(d, u, now) == 3
    assert s.changed() == []
    t.add(3, "gpc0", 1, now)
    assert s.changed() == [3]


def test_status_board_and_show_peers():
    from farm.peers.status import StatusBoard, render
    board = StatusBoard()
    assert board.read() is None
    assert "no peers process" in render(None, 0.0)
    doc = {"local": "lb1", "listen": "10.0.0.2:10000", "listening": True, "synced": False, "at": 100.0,
           "peers": [{"name": "lb2", "addr": "10.0.0.3:10000", "status": "ESTA", "dir": "out",
                      "since": 90.0, "last_rx": 99.5, "sent": 12, "received": 3, "last_error": ""},
                     {"name": "lb3", "addr": "10.0.0.4:10000", "status": "NONE", "dir": None,
                      "since": None, "last_rx": None, "sent": 0, "received": 0,
                      "last_error": "closed by the peer"}]}
    board.write(doc)
    board.write(doc)
    assert board.read() == doc
    assert render(board.read(), 101.0) == (
        "# local=lb1 listen=10.0.0.2:10000 listening=1 synced=0 updated=1.0s\n"
        "lb2 addr=10.0.0.3:10000 status=ESTA dir=out since=11.0s last_rx=1.5s sent=12 received=3 "
        "last_error=-\n"
        "lb3 addr=10.0.0.4:10000 status=NONE dir=- since=- last_rx=- sent=0 received=0 "
        'last_error="closed by the peer"\n')


def test_server_key_names_the_server_when_orders_differ():
    """Two nodes number the same servers differently: the name (HAProxy's
    server_key) picks the server, not the id."""
    store = (("server_id", 0),)
    ta, tb = table("persist", store=store), table("persist", store=store)
    sa = TableSync(ta, 1, ((1, "s1"), (2, "s2")))
    sb = TableSync(tb, 1, ((1, "s2"), (2, "s1")))
    now = now_ms()
    e = ta.get_or_create(encode_key("ip", 32, "10.0.0.9"), -1, now)
    ta.set(e, "server_id", 2, now)                      # s2 on node A
    d = sa.definition()
    assert C.TYPE_ID["server_key"] in d.data_types
    _, typ, p = C.split_messages(bytearray(C.update_msg(d, sa.update(e, now))))[0]
    u = C.parse_update(p, typ, d, {})
    assert u.values[C.TYPE_ID["server_key"]] == "s2"
    e2 = sb.apply(d, u, now)
    assert tb.get(e2, "server_id") == 1                 # s2 is B's first server
    # without names (a table no single backend sticks on): the id as sent
    sc = TableSync(table("persist", store=store), 1)
    assert C.TYPE_ID["server_key"] not in sc.definition().data_types
    assert sc.t.get(sc.apply(d, u, now), "server_id") == 2
