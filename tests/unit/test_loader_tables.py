"""[tables.NAME], tcp_request rules, the stick actions and persistence keys:
what the loader accepts, and each mistake reported at its file, line and key."""

import pytest

from farm import model
from farm.loader import ConfigErrors, load_text

BASE = """\
[frontends.www]
bind = "127.0.0.1:8080"
default_backend = "app"

[backends.app]
[[backends.app.servers]]
name = "s1"
address = "127.0.0.1:9000"
"""

TABLE = """
[tables.per_ip]
type = "ip"
size = "1k"
expire = "10m"
store = ["http_req_rate(10s)", "conn_cur", "gpc0", "server_id"]
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_text(text, "t.toml")
    return [str(e) for e in info.value.errors]


def line_of(text: str, fragment: str) -> int:
    return next(i + 1 for i, l in enumerate(text.splitlines()) if fragment in l)


def test_a_table_and_its_rules_load():
    text = BASE + TABLE + """
[[frontends.www.tcp_request]]
on = "connection"
action = "track-sc0"
key = "src"

[[frontends.www.tcp_request]]
on = "connection"
action = "reject"
if = "{ sc0_conn_cur gt 10 }"

[[frontends.www.http_request]]
action = "deny"
status = 429
retry_after = "10s"
if = "{ sc_http_req_rate(0) gt 20 } || { src_get_gpc0 gt 0 }"
"""
    cfg = load_text(text.replace('[backends.app]\n', '[backends.app]\nstick_on = "src"\n'))
    t = cfg.table("per_ip")
    assert t == model.StickTable("per_ip", "ip", 32, 1024, 600000,
                                 (("http_req_rate", 10000), ("conn_cur", 0), ("gpc0", 0),
                                  ("server_id", 0)))
    fe = cfg.frontends[0]
    assert fe.tcp_request[0].param("table") == "per_ip"    # the only table is the default
    assert fe.http_request[0].param("retry_after") == 10.0
    line = line_of(text, "[backends.app]") + 1
    assert cfg.backends[0].stick == (model.StickRule("match", "src", "per_ip", None, line),
                                     model.StickRule("store-request", "src", "per_ip", None, line))


@pytest.mark.parametrize("snippet, fragment, message", [
    ('[tables.t]\nsize = 10\nstore = ["http_req_rate"]\n', "store", "needs a period"),
    ('[tables.t]\nsize = 10\nstore = ["gpc9"]\n', "store", "unknown data type 'gpc9'"),
    ('[tables.t]\nsize = 10\ntype = "ip"\nlen = 8\n', "len", "len applies to string and binary"),
    ('[tables.t]\ntype = "text"\nsize = 10\n', "type", "table type"),
    ('[tables.t]\nstore = ["gpc0"]\n', "[tables.t]", "missing required key 'size'"),
    ('[tables.t]\nsize = 10\npeers = true\n', "peers", "not implemented"),
])
def test_table_mistakes(snippet, fragment, message):
    text = BASE + snippet
    got = errors(text)
    assert len(got) == 1 and message in got[0], got
    assert got[0].startswith(f"t.toml:{line_of(text, fragment)}:")


@pytest.mark.parametrize("rule, fragment, message", [
    ('[[frontends.www.http_request]]\naction = "track-sc0"\nkey = "src"\ntable = "per_i"\n',
     'table = "per_i"', "unknown table 'per_i' (did you mean 'per_ip'?)"),
    ('[[frontends.www.tcp_request]]\non = "connection"\naction = "track-sc0"\nkey = "hdr(x)"\n',
     'key = "hdr(x)"', "is not known before a request arrives"),
    ('[[frontends.www.tcp_request]]\naction = "reject"\n', "tcp_request", "needs 'on'"),
    ('[[frontends.www.tcp_request]]\non = "accept"\naction = "reject"\n', 'on = "accept"',
     "rule phase"),
    ('[[frontends.www.tcp_request]]\non = "connection"\naction = "reject"\nif = "{ path /x }"\n',
     'if = "{ path', "'path' is not known before a request arrives"),
    ('[[frontends.www.http_request]]\naction = "deny"\nif = "{ src_conn_cur(nope) gt 1 }"\n',
     "[[frontends.www.http_request]]", "unknown table 'nope'"),
    ('[[frontends.www.http_request]]\naction = "sc-inc-gpc0"\nsc = 3\n', "sc = 3", "must be one of 0, 1, 2"),
    ('[[frontends.www.http_request]]\naction = "track-sc1"\nkey = "sc0_conn_cur"\n',
     'key = "sc0', "a stick counter cannot be a key"),
])
def test_rule_mistakes(rule, fragment, message):
    text = BASE + TABLE + rule
    got = errors(text)
    assert len(got) == 1 and message in got[0], got
    assert got[0].startswith(f"t.toml:{line_of(text, fragment)}:")


def test_several_tables_need_a_name_and_persistence_needs_server_id():
    text = BASE.replace('[backends.app]\n', '[backends.app]\nstick_on = "src"\nstick_table = "b"\n') \
        + TABLE + '[tables.b]\nsize = 10\nstore = ["gpc0"]\n' \
        + '[[frontends.www.http_request]]\naction = "track-sc0"\nkey = "src"\n'
    got = errors(text)
    assert any("needs 'table' (there are several tables)" in e for e in got), got
    assert any("table 'b' must store server_id" in e for e in got), got


def test_stick_rules_in_file_order_with_tables_and_conditions():
    """stick_match and stick_store_response as HAProxy's lines: an array
    keeps its order, a rule can name its own table and an if/unless, the
    others take stick_table."""
    text = BASE.replace('[backends.app]\n', """[backends.app]
stick_table = "sessions"
stick_store_response = { key = "res.cook(SID)", if = "{ status 200 }" }
stick_match = ["req.cook(SID)", { key = "src", table = "per_ip", unless = "{ src 10.0.0.0/8 }" }]
""") + TABLE + '[tables.sessions]\ntype = "string"\nsize = 10\nstore = ["server_id"]\n' \
        + '[[frontends.www.http_request]]\naction = "track-sc0"\nkey = "src"\ntable = "per_ip"\n'
    be = load_text(text).backends[0]
    assert [(r.kind, r.key, r.table) for r in be.stick] == [
        ("store-response", "res.cook(SID)", "sessions"),
        ("match", "req.cook(SID)", "sessions"),
        ("match", "src", "per_ip")]
    assert be.stick[0].cond == model.Condition("{ status 200 }")
    assert be.stick[2].cond == model.Condition("{ src 10.0.0.0/8 }", negate=True)


STICK_BASE = BASE.replace("[backends.app]\n", "[backends.app]\n@STICK@\n") + TABLE


@pytest.mark.parametrize("stick, fragment, message", [
    ('stick_store_response = "res.cook("', "stick_store_response", "res.cook("),
    ('stick_match = { table = "per_ip" }', "stick_match", "missing required key 'key'"),
    ('stick_match = { key = "src", tabel = "x" }', "stick_match", "unknown key 'tabel'"),
    ('stick_match = { key = "src", table = "per_i" }', "stick_match",
     "unknown table 'per_i' (did you mean 'per_ip'?)"),
    ('stick_match = { key = "src", if = "nope" }', "stick_match", "unknown ACL 'nope'"),
    ('stick_match = 3', "stick_match", "expected a fetch"),
    ('stick_match = []', "stick_match", "expected at least one fetch"),
    ('stick_table = "per_ip"', "stick_table", "stick_table needs stick_on"),
    ('stick_on = "res.cook(SID)"', "stick_on", "'res.cook' reads the response"),
    ('stick_on = { key = "src", if = "{ src_conn_cur(nope) gt 1 }" }', "stick_on",
     "unknown table 'nope'"),
    ('stick_match = ["src", { key = "scook(SID)" }]', "stick_match",
     "'res.cook' reads the response"),
])
def test_stick_rule_mistakes(stick, fragment, message):
    text = STICK_BASE.replace("@STICK@", stick)
    got = errors(text)
    assert len(got) == 1 and message in got[0], got
    assert got[0].startswith(f"t.toml:{line_of(text, fragment)}:")


TCP_BASE = STICK_BASE.replace('[frontends.www]\n', '[frontends.www]\nmode = "tcp"\n') \
    .replace("[backends.app]\n", '[backends.app]\nmode = "tcp"\n')


def test_tcp_backends_stick_on_layer4_fetches():
    cfg = load_text(TCP_BASE.replace("@STICK@", 'stick_on = "src"\nstick_match = "dst_port"'))
    assert [r.kind for r in cfg.backends[0].stick] == ["match", "store-request", "match"]


@pytest.mark.parametrize("stick, fragment, message", [
    ('stick_on = "req.cook(SID)"', "stick_on", "'req.cook' is not known in a tcp backend"),
    ('stick_match = { key = "src", if = "{ path /x }" }', "stick_match",
     "'path' is not known before a request arrives"),
    ('stick_store_response = "res.hdr(x)"', "stick_store_response",
     "stick_store_response needs mode http"),
])
def test_tcp_backend_stick_mistakes(stick, fragment, message):
    text = TCP_BASE.replace("@STICK@", stick)
    got = errors(text)
    assert len(got) == 1 and message in got[0], got
    assert got[0].startswith(f"t.toml:{line_of(text, fragment)}:")


SERVERS = BASE + """
[[backends.app.servers]]
name = "s2"
address = "127.0.0.1:9001"
id = 1

[[backends.app.servers]]
name = "s3"
address = "127.0.0.1:9002"
"""


def test_server_ids_as_haproxy_assigns_them():
    """`id` fixes a server's id (what stick tables store as server_id);
    the others get the lowest ids left, in order."""
    be = load_text(SERVERS).backends[0]
    assert [(s.name, s.id) for s in be.servers] == [("s1", 2), ("s2", 1), ("s3", 3)]
    plain = load_text(BASE).backends[0]
    assert [s.id for s in plain.servers] == [1]


@pytest.mark.parametrize("value, message", [
    ("2\n", None),
    ("1\n", "id 1 is already the id of server 's2'"),
    ("0\n", "must be between 1 and"),
])
def test_server_id_mistakes(value, message):
    text = SERVERS.replace('address = "127.0.0.1:9002"\n', 'address = "127.0.0.1:9002"\nid = ' + value)
    if message is None:
        assert [s.id for s in load_text(text).backends[0].servers] == [3, 1, 2]
        return
    got = errors(text)
    assert len(got) == 1 and message in got[0], got
    assert got[0].startswith(f"t.toml:{len(text.splitlines())}:")
