"""workers/tables.py with the rules of workers/rules.py: track-sc actions,
the sc_*/src_*/table_* fetches, stream and connection counters, and
persistence, on a real table in this process (no workers)."""

import pytest

from farm import model
from farm.conditions import parse_acl
from farm.tables import StickTable, encode_key
from workers import rules
from workers import tables as wt


class Txn:
    """What the rules and the tracking read of a stream."""

    def __init__(self, src="10.0.0.1", headers=None, status=200):
        self.src, self.src_port, self.dst_port = src, 40000, 80
        self.stk = None
        self.status = status
        self.bytes_in, self.bytes_out = 10, 20
        self.srv = None
        self.forced_server = None
        self._rules_src = None
        self.resp = None
        self.req = Req(headers or {})


class Req:
    def __init__(self, headers):
        self.headers = [(k.encode(), v.encode()) for k, v in headers.items()]

    def get(self, name):
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def get_all(self, name):
        return [v for k, v in self.headers if k.lower() == name]


@pytest.fixture
def tables():
    made = {
        "per_ip": StickTable(model.StickTable(
            "per_ip", "ip", 32, 100, 60000,
            (("http_req_rate", 10000), ("http_req_cnt", 0), ("conn_cur", 0), ("gpc0", 0),
             ("gpt0", 0), ("http_err_cnt", 0), ("bytes_out_cnt", 0), ("server_id", 0))), 1),
        "api": StickTable(model.StickTable("api", "string", 16, 100, 0,
                                           (("http_req_rate", 10000),)), 1),
    }
    wt.install(made, 0)
    yield made
    wt.install({}, 0)
    for t in made.values():
        t.close()


def action(name, **params):
    return rules._request_action(model.Rule(name, tuple(sorted(params.items()))))


def fetch(text):
    return rules._stick_getter(parse_acl(text), "request")


def test_track_count_and_fetch(tables):
    track = action("track-sc0", key="src", table="per_ip")
    for i in range(3):
        txn = Txn()
        track(txn)
        assert fetch("sc_http_req_rate(0) gt 0")(txn) == i + 1
        assert fetch("sc0_conn_cur gt 0")(txn) == 1
        assert fetch("sc_tracked(0)")(txn) is True and fetch("sc1_tracked")(txn) is False
        assert fetch("sc1_http_req_rate gt 0")(txn) is None        # nothing tracked as sc1
        wt.stream_finished(txn)
    other = Txn(src="10.0.0.2")
    assert fetch("src_http_req_cnt(per_ip) gt 0")(other) is None   # no entry for it
    assert fetch("src_http_req_cnt(per_ip) gt 0")(Txn()) == 3
    assert fetch("src,table_conn_cur(per_ip) ge 0")(Txn()) == 0    # released
    assert fetch("src,table_trackers(per_ip) ge 0")(Txn()) == 0


def test_gpc_gpt_and_errors(tables):
    txn = Txn(status=404)
    action("track-sc1", key="src", table="per_ip")(txn)
    action("sc-inc-gpc0", sc=1)(txn)
    action("sc-set-gpt0", sc=1, value=7)(txn)
    assert fetch("sc_get_gpc0(1) gt 0")(txn) == 1
    assert fetch("sc1_get_gpt0 gt 0")(txn) == 7
    assert fetch("sc1_inc_gpc0 gt 0")(txn) == 2                   # a fetch that counts
    assert fetch("sc1_clr_gpc0 gt 0")(txn) == 2 and fetch("sc1_get_gpc0 gt 0")(txn) == 0
    wt.stream_finished(txn)
    e = tables["per_ip"].lookup(encode_key("ip", 0, "10.0.0.1"))
    assert tables["per_ip"].get(e, "http_err_cnt") == 1
    assert tables["per_ip"].get(e, "bytes_out_cnt") == 20


def test_string_keys_from_a_header(tables):
    track = action("track-sc2", key="req.hdr(x-api-key)", table="api")
    limit = rules.compile_acl_spec(parse_acl("req.hdr(x-api-key),table_http_req_rate(api) gt 2"))
    got = []
    for _ in range(4):
        txn = Txn(headers={"X-Api-Key": "k1"})
        track(txn)
        got.append(limit(txn))
        wt.stream_finished(txn)
    assert got == [False, False, True, True]
    no_key = Txn()
    track(no_key)
    assert no_key.stk is None and tables["api"].used == 1


def test_connection_counters_are_the_streams_parent(tables):
    conn = wt.ConnTxn(("10.0.0.3", 5000), 80)
    tcp = rules.compile_tcp_rules([model.Rule("track-sc0", (("key", "src"), ("on", "connection"),
                                                            ("table", "per_ip")))])
    assert tcp(conn) is None
    stream = Txn(src="10.0.0.3")
    wt.stream_started(stream, conn.stk)
    action("track-sc0", key="src", table="per_ip")(stream)        # already tracked: skipped
    assert stream.stk.sc[0] is None
    assert fetch("sc0_http_req_cnt gt 0")(stream) == 1             # counted by stream_started
    assert fetch("sc0_conn_cur gt 0")(stream) == 1
    wt.stream_finished(stream)
    assert fetch("sc0_conn_cur gt 0")(stream) is None              # the stream let go
    conn.stk.release()
    e = tables["per_ip"].lookup(encode_key("ip", 0, "10.0.0.3"))
    assert tables["per_ip"].get(e, "conn_cur") == 0 and tables["per_ip"].held(e) == 0


def test_tcp_reject_verdict(tables):
    run = rules.compile_tcp_rules([model.Rule("reject", (("on", "connection"),),
                                              model.Condition("{ src 10.0.0.0/8 }"))])
    assert run(wt.ConnTxn(("10.1.2.3", 1), 80)) == "reject"
    assert run(wt.ConnTxn(("192.0.2.1", 1), 80)) is None


class Pool:
    def is_up(self, i):
        return i != 2               # the third server is down


class Srv:
    def __init__(self, index, sid=None):
        self.index = index
        self.cfg = model.Server(f"s{index + 1}", model.Address("127.0.0.1", 1),
                                id=sid or index + 1)


class Backend:
    def __init__(self, ids=(1, 2, 3)):
        self.pool = Pool()
        self.servers = [Srv(i, sid) for i, sid in enumerate(ids)]


class Resp:
    def __init__(self, headers, status=200):
        self.status = status
        self.headers = [(k.encode(), v.encode()) for k, v in headers]

    def get_all(self, name):
        return [v for k, v in self.headers if k.lower() == name]


def persistence(*rules_, ids=(1, 2, 3)):
    from workers.worker import persistence as compile_persistence
    be = model.Backend("app", stick=tuple(rules_))
    backend = Backend(ids)
    return compile_persistence(be, backend), backend


def served(p, txn, srv, resp=None):
    """What a stream does with p: on_request, then the response head."""
    p.on_request(txn)
    txn.srv = srv
    txn.resp = resp
    if txn.stk is not None and txn.stk.persist is not None:
        txn.stk.persist.on_response(txn)


def test_stick_on_matches_and_stores(tables):
    p, be = persistence(model.StickRule("match", "src", "per_ip"),
                        model.StickRule("store-request", "src", "per_ip"))
    txn = Txn()
    served(p, txn, be.servers[1])
    assert txn.forced_server is None                # no entry yet
    assert not txn.stk.stuck
    again = Txn()
    p.on_request(again)
    assert again.forced_server == 1                 # stored when the server answered
    assert again.stk.stuck                          # persistent, for the retries
    table = tables["per_ip"]
    table.set(table.lookup(encode_key("ip", 0, "10.0.0.1")), "server_id", 3)
    down = Txn()
    p.on_request(down)
    assert down.forced_server is None               # its server is down: the balance picks
    served(p, Txn(), be.servers[0])                 # ...and the entry follows the new one
    assert table.get(table.lookup(encode_key("ip", 0, "10.0.0.1")), "server_id") == 1


def test_a_cookie_chosen_server_is_not_overridden(tables):
    p, be = persistence(model.StickRule("match", "src", "per_ip"))
    tables["per_ip"].set(tables["per_ip"].get_or_create(encode_key("ip", 0, "10.0.0.1")),
                         "server_id", 2)
    txn = Txn()
    txn.forced_server = 0
    p.on_request(txn)
    assert txn.forced_server == 0


@pytest.fixture
def sessions(tables):
    t = StickTable(model.StickTable("sessions", "string", 32, 100, 60000, (("server_id", 0),)), 1)
    wt.install({**tables, "sessions": t}, 0)
    yield t
    t.close()


def test_store_response_names_the_server_that_answered(sessions):
    p, be = persistence(model.StickRule("store-response", "res.cook(SID)", "sessions"),
                        model.StickRule("match", "req.cook(SID)", "sessions"))
    served(p, Txn(), be.servers[1], Resp([("Set-Cookie", "Other=1"),
                                          ("Set-Cookie", "SID=abc123; path=/; HttpOnly")]))
    key = encode_key("string", 32, b"abc123")
    assert sessions.get(sessions.lookup(key), "server_id") == 2
    back = Txn(headers={"Cookie": "x=1; SID=abc123"})
    p.on_request(back)
    assert back.forced_server == 1
    stranger = Txn(headers={"Cookie": "SID=zzz"})
    p.on_request(stranger)
    assert stranger.forced_server is None


def test_conditions_order_and_first_store_per_table(sessions):
    """A response condition guards the store; of two store-response rules
    on one table only the first that yields a key stores; match rules are
    fallbacks in order."""
    p, be = persistence(
        model.StickRule("store-response", "res.hdr(x-session)", "sessions",
                        model.Condition("{ status 200 }")),
        model.StickRule("store-response", "res.hdr(x-other)", "sessions"),
        model.StickRule("match", "req.hdr(x-session)", "sessions"),
        model.StickRule("match", "src", "per_ip"),
        model.StickRule("store-request", "src", "per_ip", model.Condition("{ src 10.0.0.0/8 }",
                                                                          negate=True)))
    served(p, Txn(), be.servers[0], Resp([("X-Session", "one"), ("X-Other", "two")]))
    assert tables_key(sessions, b"two") < 0            # the first rule stored, not this one
    assert sessions.get(tables_key(sessions, b"one"), "server_id") == 1
    assert wt.TABLES["per_ip"].lookup(encode_key("ip", 0, "10.0.0.1")) < 0   # unless 10/8
    served(p, Txn(), be.servers[1], Resp([("X-Session", "three")], status=503))
    assert tables_key(sessions, b"three") < 0          # if { status 200 }: not stored
    outsider = Txn(src="192.0.2.7")
    served(p, outsider, be.servers[1])
    again = Txn(src="192.0.2.7", headers={"X-Session": "unknown"})
    p.on_request(again)
    assert again.forced_server == 1                    # the second match rule found it


def tables_key(table, value: bytes) -> int:
    return table.lookup(encode_key("string", 32, value))


def test_server_ids_are_the_servers_id(sessions):
    """server_id is the server's id (HAProxy's), which is not its position
    when set: entries stay right when servers are reordered."""
    p, be = persistence(model.StickRule("match", "src", "per_ip"),
                        model.StickRule("store-request", "src", "per_ip"), ids=(10, 20, 30))
    served(p, Txn(), be.servers[1])
    table = wt.TABLES["per_ip"]
    assert table.get(table.lookup(encode_key("ip", 0, "10.0.0.1")), "server_id") == 20
    again = Txn()
    p.on_request(again)
    assert again.forced_server == 1


def test_tcp_sessions_match_and_store_on_layer4_fetches(tables):
    from workers.runtime import Layer4Txn
    p, be = persistence(model.StickRule("match", "src", "per_ip"),
                        model.StickRule("store-request", "src", "per_ip"))
    idx, keys = p.on_connection(Layer4Txn(("10.0.0.9", 5000), ("127.0.0.1", 80)))
    assert idx is None and len(keys) == 1
    p.store(keys, be.servers[0])                     # the session's server connected
    idx, _ = p.on_connection(Layer4Txn(("10.0.0.9", 5001), ("127.0.0.1", 80)))
    assert idx == 0


def test_without_tables_nothing_happens():
    wt.install({}, 0)
    txn = Txn()
    action("track-sc0", key="src", table="per_ip")(txn)
    assert txn.stk is None
    assert rules.compile_acl_spec(parse_acl("sc_http_req_rate(0) gt 1"))(txn) is False
