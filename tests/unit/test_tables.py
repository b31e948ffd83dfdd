"""farm/tables.py: the pure parts (data types, keys, rates) and the shared
structure, the latter with real forked processes."""

import os

import pytest

from farm import model, tables
from farm.tables import StickTable, encode_key, format_key, rate_bump, rate_pack, rate_read


def defn(**kw):
    base = dict(name="t", type="ip", size=16, expire_ms=0,
                store=(("conn_cur", 0), ("conn_cnt", 0), ("http_req_rate", 1000), ("gpc0", 0),
                       ("gpt0", 0), ("http_req_cnt", 0)))
    base.update(kw)
    return model.StickTable(**base)


# -- pure ---------------------------------------------------------------------

def test_parse_store():
    assert tables.parse_store("http_req_rate(10s)") == ("http_req_rate", 10000)
    assert tables.parse_store("conn_cur") == ("conn_cur", 0)
    with pytest.raises(tables.TableError, match="needs a period"):
        tables.parse_store("conn_rate")
    with pytest.raises(tables.TableError, match="unknown data type"):
        tables.parse_store("gpc7")
    with pytest.raises(tables.TableError, match="no period"):
        tables.parse_store("gpc0(1s)")


def test_keys():
    assert encode_key("ip", 0, "10.0.0.1") == bytes([10, 0, 0, 1])
    assert encode_key("ip", 0, "::ffff:10.0.0.1") == bytes([10, 0, 0, 1])
    assert encode_key("ip", 0, "2001:db8::1") is None
    assert format_key("ipv6", encode_key("ipv6", 0, "10.0.0.1")) == "::ffff:10.0.0.1"
    assert format_key("integer", encode_key("integer", 0, b"-42")) == "-42"
    assert encode_key("integer", 0, b"x") is None
    k = encode_key("string", 8, b"abcdefghijk")
    assert k == b"abcdefgh" and format_key("string", k) == "abcdefgh"
    assert encode_key("string", 8, b"ab") == b"ab" + b"\0" * 6
    assert encode_key("string", 8, b"") is None
    assert format_key("binary", encode_key("binary", 4, b"\x01\x02")) == "0102"
    assert tables.parse_key("binary", 4, "0A0B") == b"\x0a\x0b\0\0"


def test_rate_sliding_window():
    P = 1000
    c0 = c1 = 0
    # 10 events in period 5 (t = 5000..5999)
    c1 = rate_bump(c1, 5, 10)
    assert rate_read(c0, c1, 5500, P) == 10
    # next period, 3 events: the previous is weighted by what remains of it
    c0 = rate_bump(c0, 6, 3)
    assert rate_read(c0, c1, 6000, P) == 3 + 10
    assert rate_read(c0, c1, 6250, P) == 3 + 7     # 10 * 750 / 1000 = 7.5 -> 7
    assert rate_read(c0, c1, 6900, P) == 3 + 1
    # two periods later both are gone
    assert rate_read(c0, c1, 8100, P) == 0
    # a cell holding an old period restarts its count
    assert rate_bump(rate_pack(4, 99), 6, 1) == rate_pack(6, 1)
    assert rate_bump(rate_pack(6, 99), 6, 1) == rate_pack(6, 100)


# -- the mapped table (one process) ---------------------------------------------

def key(i):
    return encode_key("ip", 0, f"10.0.0.{i}")


def test_track_count_release():
    t = StickTable(defn(), workers=2)
    try:
        e = t.get_or_create(key(1), slot=0, now=10_000)
        t.on_track(e, 10_000)
        t.on_request(e, 10_000)
        assert t.get_or_create(key(1), slot=1, now=10_000) == e
        t.on_track(e, 10_000)
        assert t.used == 1 and t.held(e) == 2
        assert t.get(e, "conn_cur") == 2 and t.get(e, "conn_cnt") == 2
        assert t.get(e, "http_req_rate", 10_500) == 1
        assert t.get(e, "bytes_in_cnt") is None
        t.release(e, 0, 10_000)
        t.on_untrack(e)
        assert t.held(e) == 1 and t.get(e, "conn_cur") == 1
        assert t.lookup(key(1)) == e and t.lookup(key(2)) == -1
        assert not t.remove(e)             # still in use
        t.release(e, 1)
        assert t.remove(e) and t.used == 0 and t.lookup(key(1)) == -1
    finally:
        t.close()


def test_full_table_evicts_the_oldest_unused():
    t = StickTable(defn(size=3), workers=1)
    try:
        for i, now in ((1, 100), (2, 50), (3, 200)):
            t.get_or_create(key(i), -1, now)
        held = t.get_or_create(key(2), 0, 60)      # the oldest, but in use
        t.touch(held, 60)
        t.get_or_create(key(4), -1, 300)
        assert t.used == 3
        assert t.lookup(key(1), 300) == -1          # the oldest unused one went
        assert all(t.lookup(key(i), 300) >= 0 for i in (2, 3, 4))
        # every entry in use: nothing can be added
        for i in (3, 4):
            t.get_or_create(key(i), 0, 400)
        assert t.get_or_create(key(5), -1, 500) == -1
    finally:
        t.close()


def test_expiry_and_sweep():
    t = StickTable(defn(expire_ms=1000), workers=1)
    try:
        e = t.get_or_create(key(1), -1, 1000)
        t.get_or_create(key(2), 0, 1000)
        assert t.expires_in(e, 1500) == 500
        assert t.lookup(key(1), 2500) == -1          # expired: invisible
        assert t.sweep(2500) == 1                    # the held one stays
        assert t.used == 1 and t.lookup(key(2), 2500) >= 0
        # a gpc set on a fresh entry is gone once it expired and came back
        e = t.get_or_create(key(3), -1, 3000)
        t.inc_gpc(e, 0, 3000)
        assert t.get(e, "gpc0") == 1
        assert t.get_or_create(key(3), -1, 5000) == e and t.get(e, "gpc0") == 0
    finally:
        t.close()


def test_set_and_forget_worker():
    t = StickTable(defn(), workers=2)
    try:
        e = t.get_or_create(key(1), 1)
        t.on_track(e, tables.now_ms())
        assert t.set(e, "gpt0", 7) and t.get(e, "gpt0") == 7
        assert t.set(e, "http_req_rate", 5) and t.get(e, "http_req_rate") >= 5
        assert not t.set(e, "server_id", 1)
        t.forget_worker(1)
        assert t.held(e) == 0 and t.get(e, "conn_cur") == 0
    finally:
        t.close()


def test_carry_on_definition_change():
    old = StickTable(defn(), workers=1)
    new = StickTable(defn(type="ipv6", size=8, store=(("gpc0", 0), ("http_req_rate", 2000))), workers=1)
    try:
        e = old.get_or_create(key(1))
        old.inc_gpc(e, 0, tables.now_ms())
        old.inc_gpc(e, 0, tables.now_ms())
        new.carry_from(old)
        ne = new.lookup(encode_key("ipv6", 0, "10.0.0.1"))
        assert ne >= 0 and new.get(ne, "gpc0") == 2
    finally:
        old.close()
        new.close()


# -- the mapped table shared by forked processes ----------------------------------

def test_concurrent_workers_count_once():
    """4 processes track the same 8 keys 300 times each: every count lands,
    every insert is made once, nothing is held afterwards."""
    t = StickTable(defn(size=32, store=(("conn_cnt", 0), ("conn_cur", 0),
                                        ("http_req_rate", 60000))), workers=4)
    try:
        pids = []
        for slot in range(4):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    for i in range(300):
                        now = tables.now_ms()
                        e = t.get_or_create(key(i % 8), slot, now)
                        t.on_track(e, now)
                        t.on_request(e, now)
                        t.on_untrack(e)
                        t.release(e, slot, now)
                except BaseException:
                    code = 1
                os._exit(code)
            pids.append(pid)
        for pid in pids:
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert t.used == 8
        es = [t.lookup(key(i)) for i in range(8)]
        assert len(set(es)) == 8 and -1 not in es
        assert sum(t.get(e, "conn_cnt") for e in es) == 1200
        assert all(t.get(e, "conn_cur") == 0 and t.held(e) == 0 for e in es)
        assert sum(t.get(e, "http_req_rate") for e in es) >= 1100   # a period may have rolled
    finally:
        t.close()


def test_lock_of_a_dead_holder_is_taken_over(monkeypatch):
    monkeypatch.setattr(tables, "LOCK_STALE", 0.05)
    t = StickTable(defn(), workers=1)
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        bucket = t.bucket_of(key(1))
        t.cells.store(tables.HEADER_CELLS + 2 * bucket, pid)   # held by a dead process
        assert t.get_or_create(key(1)) >= 0
    finally:
        t.close()
