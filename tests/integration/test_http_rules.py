"""HTTP rules through the real farm: http_request / http_response actions,
use_backend routing with ACLs, option_forwardfor, every balance algorithm
and cookie persistence. What the client gets is checked on the wire and
what the server got in the backend's records.

One farm (one worker, so balancing is deterministic) serves the module,
with a backend per feature; tests reset the records they read.
"""

from __future__ import annotations

import collections
import time

import pytest

from tests.integration.backends import free_port
from tests.integration.conftest import Farm
from tests.integration.http_backend import HttpBackend, RawClient, build_request
from tests.integration.test_http import config, parse_log, servers

RULES = r'''
[frontends.fe.acl]
is_api = "path_beg /api/"
host_b = "hdr(host) -i b.example"
is_post = "method POST"
from_lo = "src 127.0.0.0/8"
from_ten = "src 10.0.0.0/8"

[[frontends.fe.http_request]]
action = "deny"
if = "{ path_beg /admin }"

[[frontends.fe.http_request]]
action = "deny"
status = 429
content_type = "text/plain"
body = "slow down"
if = "{ path /limited }"

[[frontends.fe.http_request]]
action = "return"
status = 201
content_type = "application/json"
body = '{"ok": true}'
if = "{ path /ret }"

[[frontends.fe.http_request]]
action = "redirect"
location = "https://example.com/new"
code = 301
if = "{ path /old }"

[[frontends.fe.http_request]]
action = "redirect"
prefix = "https://pfx.example"
if = "{ path_beg /pfx/ }"

[[frontends.fe.http_request]]
action = "redirect"
prefix = "https://pfx.example"
drop_query = true
if = "{ path_beg /pfxdq/ }"

[[frontends.fe.http_request]]
action = "redirect"
prefix = "/"
code = 307
if = "{ path_beg /self/ }"

[[frontends.fe.http_request]]
action = "redirect"
scheme = "https"
if = "{ path_beg /secure/ }"

[[frontends.fe.http_request]]
action = "set-header"
name = "X-Set"
value = "v1"
if = "{ path_beg /hdr/ }"

[[frontends.fe.http_request]]
action = "add-header"
name = "X-Add"
value = "a2"
if = "{ path_beg /hdr/ }"

[[frontends.fe.http_request]]
action = "del-header"
name = "X-Del"
if = "{ path_beg /hdr/ }"

[[frontends.fe.http_request]]
action = "replace-header"
name = "X-Rep"
match = '^(\w+)-old$'
replace = '\1-new'
if = "{ path_beg /hdr/ }"

[[frontends.fe.http_request]]
action = "set-header"
name = "X-Src"
value = "%[src]:%[method]"
if = "{ path_beg /hdr/ }"

[[frontends.fe.http_request]]
action = "replace-path"
match = '^/rp/(.*)$'
replace = '/moved/\1'

[[frontends.fe.http_request]]
action = "set-path"
value = "/newpath"
if = "{ path_beg /sp/ }"

[[frontends.fe.http_request]]
action = "set-query"
value = "a=1&b=2"
if = "{ path_beg /sq/ }"

[[frontends.fe.http_response]]
action = "set-header"
name = "X-Resp"
value = "yes"

[[frontends.fe.http_response]]
action = "del-header"
name = "X-Server"
if = "{ path_beg /rs/ }"

[[frontends.fe.http_response]]
action = "set-status"
status = 203
reason = "Changed"
if = "{ path_beg /rs/ }"

[[frontends.fe.use_backend]]
backend = "api"
if = "is_api"

[[frontends.fe.use_backend]]
backend = "bhost"
if = "host_b"

[[frontends.fe.use_backend]]
backend = "posts"
if = "is_post { path_beg /m/ }"

[[frontends.fe.use_backend]]
backend = "tenb"
if = "from_ten"

[[frontends.fe.use_backend]]
backend = "lob"
if = "from_lo { path_beg /src/ }"

[[frontends.fe.use_backend]]
backend = "xff"
if = "{ path_beg /xff/ }"
'''

# path prefix -> (backend, balance, extra backend keys, extra server keys)
BALANCED = {
    "rr": ("roundrobin", "", ""),
    "srr": ("static-rr", "", ""),
    "lc": ("leastconn", "", ""),
    "first": ("first", "", "maxconn = 1\n"),
    "rand": ("random", "", ""),
    "source": ("source", "", ""),
    "uri": ("uri", "", ""),
    "urlp": ("url_param(id)", "", ""),
    "hdrb": ("hdr(X-User)", "", ""),
    "ci": ("roundrobin", '[backends.ci.cookie]\nname = "SRVID"\nmode = "insert"\nindirect = true\n', ""),
    "cn": ("roundrobin", '[backends.cn.cookie]\nname = "SRVID"\nmode = "insert"\nnocache = true\n', ""),
    "cr": ("roundrobin", '[backends.cr.cookie]\nname = "SRVID"\nmode = "rewrite"\n', ""),
    "cp": ("roundrobin", '[backends.cp.cookie]\nname = "JSESSIONID"\nmode = "prefix"\n', ""),
}
WEIGHTS = {"rr": (1, 2, 3), "srr": (1, 2, 3)}


def site_config(port: int, named: dict, pool: list) -> str:
    rest = [RULES]
    for prefix in BALANCED:
        rest.append(f'[[frontends.fe.use_backend]]\nbackend = "{prefix}"\nif = "{{ path_beg /{prefix}/ }}"\n')
    rest.append("[backends.be]\n" + servers("be", named["default"]))
    for name in ("api", "bhost", "posts", "tenb", "lob"):
        rest.append(f"[backends.{name}]\n" + servers(name, named[name]))
    rest.append("[backends.xff]\noption_forwardfor = true\nforwarded = true\n" + servers("xff", named["xff"]))
    for prefix, (balance, extra, srv_extra) in BALANCED.items():
        entries = []
        for i, b in enumerate(pool):
            w = WEIGHTS.get(prefix, (1, 1, 1))[i]
            entries.append(f'[[backends.{prefix}.servers]]\nname = "{b.name}"\naddress = "{b.address}"\n'
                           f"weight = {w}\n{srv_extra}")
        rest.append(f'[backends.{prefix}]\nbalance = "{balance}"\n{extra}\n' + "\n".join(entries))
    return config(port, "\n".join(rest), timeouts='queue = "2s"')


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    named = {n: HttpBackend(n) for n in ("default", "api", "bhost", "posts", "tenb", "lob", "xff")}
    pool = [HttpBackend(f"s{i}") for i in (1, 2, 3)]
    port = free_port()
    farm = Farm(tmp_path_factory.mktemp("rules"), site_config(port, named, pool)).start()
    site = type("Site", (), {})()
    site.farm, site.port, site.named, site.pool = farm, port, named, pool
    yield site
    farm.stop()
    for b in list(named.values()) + pool:
        b.close()


def get(port: int, target: str, headers=(), method: str = "GET", body=None, host: str = "test.local"):
    with RawClient(port) as c:
        return c.request(method, target, headers, body, host=host)


def count_log(farm, contains: str) -> int:
    return sum(contains in line for line in farm.access_lines())


def last_log(farm, contains: str, count: int = 1) -> dict:
    """The last access-log line containing `contains`, once at least
    `count` such lines were written (lines are flushed per loop turn)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        lines = [line for line in farm.access_lines() if contains in line]
        if len(lines) >= count:
            return parse_log(lines[-1])
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} log lines with {contains!r}")


# ------------------------------------------------------------ http_request

def test_deny_answers_403_and_nothing_reaches_a_server(site):
    for b in site.named.values():
        b.reset()
    r = get(site.port, "/admin/x")
    assert r.status == 403
    assert r.header("Connection") == "close"
    assert sum(len(b.requests) for b in site.named.values()) == 0
    rec = last_log(site.farm, "GET /admin/x ")
    assert rec["status"] == "403" and rec["tsc"].startswith("PR") and rec["s"] == "<NOSRV>"


def test_deny_with_status_and_body(site):
    r = get(site.port, "/limited")
    assert (r.status, r.body, r.header("Content-Type")) == (429, b"slow down", "text/plain")
    assert r.header("Content-Length") == "9"


def test_deny_of_a_post_with_a_body_is_received_by_the_client(site):
    """The unread request body must not turn farm's close into a reset
    that destroys the 403 before the client reads it."""
    with RawClient(site.port) as c:
        c.send(build_request("POST", "/admin/upload", body=b"x" * 300_000))
        data = c.read_all()
    assert data.startswith(b"HTTP/1.1 403 "), data[:100]


def test_return_keeps_the_connection(site):
    site.named["default"].reset()
    with RawClient(site.port) as c:
        r = c.request("GET", "/ret")
        assert (r.status, r.body) == (201, b'{"ok": true}')
        assert r.header("Content-Type") == "application/json"
        assert r.header("Connection") is None
        assert c.request("GET", "/name").body == b"default"
    assert site.named["default"].paths() == ["/name"]


def test_redirect_location(site):
    r = get(site.port, "/old?x=1")
    assert r.status == 301
    assert r.header("Location") == "https://example.com/new"
    assert r.body == b""


def test_redirect_prefix_keeps_path_and_query(site):
    r = get(site.port, "/pfx/a/b?x=1&y=2")
    assert r.status == 302
    assert r.header("Location") == "https://pfx.example/pfx/a/b?x=1&y=2"
    r = get(site.port, "/pfxdq/a?x=1")
    assert r.header("Location") == "https://pfx.example/pfxdq/a"


def test_redirect_prefix_slash_is_a_self_redirect(site):
    r = get(site.port, "/self/p?q=1")
    assert r.status == 307
    assert r.header("Location") == "/self/p?q=1"


def test_redirect_scheme_uses_the_host(site):
    r = get(site.port, "/secure/page?q=1", host="www.example.com:8080")
    assert r.status == 302
    assert r.header("Location") == "https://www.example.com:8080/secure/page?q=1"


def test_header_rules_seen_by_the_server(site):
    b = site.named["default"]
    b.reset()
    r = get(site.port, "/hdr/headers", [("X-Set", "from-client"), ("X-Set", "again"), ("X-Add", "a1"),
                                         ("X-Del", "bye"), ("X-Rep", "foo-old"), ("X-Keep", "k")])
    assert r.status == 200
    got = b.requests[-1]
    assert got.header_all("X-Set") == ["v1"]
    assert got.header_all("X-Add") == ["a1", "a2"]
    assert got.header("X-Del") is None
    assert got.header_all("X-Rep") == ["foo-new"]
    assert got.header("X-Keep") == "k"
    assert got.header("X-Src") == "127.0.0.1:GET"
    # the client sees the head the server saw (the /headers body)
    assert r.body == got.head


def test_replace_path_set_path_set_query(site):
    b = site.named["default"]
    b.reset()
    assert get(site.port, "/rp/x/y?q=1").status == 200
    assert get(site.port, "/sp/abc?z=9").status == 200
    assert get(site.port, "/sq/p?old=1").status == 200
    assert get(site.port, "/sq/p").status == 200
    assert [r.target for r in b.requests] == ["/moved/x/y?q=1", "/newpath?z=9", "/sq/p?a=1&b=2",
                                              "/sq/p?a=1&b=2"]


def test_response_rules_seen_by_the_client(site):
    r = get(site.port, "/rs/name")
    assert (r.status, r.reason, r.body) == (203, "Changed", b"default")
    assert r.header("X-Resp") == "yes"
    assert r.header("X-Server") is None
    r = get(site.port, "/name")
    assert (r.status, r.header("X-Resp"), r.header("X-Server")) == (200, "yes", "default")


# ------------------------------------------------------------ routing

def test_use_backend_routing_by_acls(site):
    assert get(site.port, "/api/name").body == b"api"
    assert get(site.port, "/name", host="B.Example").body == b"bhost"
    assert get(site.port, "/m/name", method="POST", body=b"").body == b"posts"
    assert get(site.port, "/m/name").body == b"default"          # GET: not the POST route
    assert get(site.port, "/src/name").body == b"lob"            # src 127.0.0.0/8 and path
    assert get(site.port, "/other").body == b"default"
    assert site.named["tenb"].requests == []                      # src 10/8 never matched
    rec = last_log(site.farm, "GET /src/name ")
    assert (rec["b"], rec["s"]) == ("lob", "lob")


def test_routing_per_request_on_one_connection(site):
    with RawClient(site.port) as c:
        got = [c.request("GET", p).body for p in ("/api/name", "/name", "/api/name", "/xff/name")]
    assert got == [b"api", b"default", b"api", b"xff"]


def test_option_forwardfor(site):
    b = site.named["xff"]
    b.reset()
    get(site.port, "/xff/headers")
    get(site.port, "/xff/headers", [("X-Forwarded-For", "203.0.113.7")])
    first, second = b.requests
    assert first.header_all("X-Forwarded-For") == ["127.0.0.1"]
    assert first.header("X-Forwarded-Proto") == "http"
    assert first.header("Forwarded") == "for=127.0.0.1;proto=http;host=test.local"   # RFC 7239
    # a client's own value is kept; ours comes last (HAProxy appends)
    assert second.header_all("X-Forwarded-For") == ["203.0.113.7", "127.0.0.1"]
    site.named["default"].reset()
    get(site.port, "/headers")
    assert site.named["default"].requests[-1].header("X-Forwarded-For") is None


# ------------------------------------------------------------ balancing

def reset_pool(site):
    for b in site.pool:
        b.reset()


def names(site, prefix: str, n: int, keepalive: bool = True, **kw) -> list[str]:
    out = []
    if keepalive:
        with RawClient(site.port) as c:
            for i in range(n):
                out.append(c.request("GET", f"/{prefix}/name?i={i}", **kw).body.decode())
    else:
        for i in range(n):
            out.append(get(site.port, f"/{prefix}/name?i={i}", **kw).body.decode())
    return out


@pytest.mark.parametrize("prefix", ["rr", "srr"])
def test_weighted_round_robin(site, prefix):
    got = collections.Counter(names(site, prefix, 60))
    assert got == {"s1": 10, "s2": 20, "s3": 30}, got
    got = collections.Counter(names(site, prefix, 30, keepalive=False))
    assert got == {"s1": 5, "s2": 10, "s3": 15}, got


def test_leastconn_avoids_the_busy_server(site):
    slow = RawClient(site.port)
    slow.send(build_request("GET", "/lc/slow?ms=800"))
    time.sleep(0.2)
    busy = [b.name for b in site.pool if b.active]
    assert len(busy) == 1
    got = names(site, "lc", 8)
    assert busy[0] not in got and len(set(got)) == 2, (busy, got)
    assert slow.read_response().body == busy[0].encode()
    slow.close()


def test_first_fills_servers_in_order(site):
    assert set(names(site, "first", 6)) == {"s1"}
    slow = RawClient(site.port)
    slow.send(build_request("GET", "/first/slow?ms=600"))
    time.sleep(0.2)
    assert names(site, "first", 3) == ["s2"] * 3      # s1 is full (maxconn 1)
    assert slow.read_response().body == b"s1"
    slow.close()
    assert set(names(site, "first", 3)) == {"s1"}


def test_random_uses_every_server(site):
    got = collections.Counter(names(site, "rand", 90))
    assert set(got) == {"s1", "s2", "s3"} and all(v >= 10 for v in got.values()), got


def test_source_sticks_to_one_server(site):
    assert len(set(names(site, "source", 20, keepalive=False))) == 1


def test_uri_same_uri_same_server(site):
    first = {i: get(site.port, f"/uri/a{i}/name").body for i in range(24)}
    assert len(set(first.values())) >= 2, first
    for i in range(24):
        assert get(site.port, f"/uri/a{i}/name?extra={i}").body == first[i]   # query ignored


def test_url_param_same_param_same_server(site):
    first = {i: get(site.port, f"/urlp/name?x=1&id=u{i}").body for i in range(24)}
    assert len(set(first.values())) >= 2, first
    with RawClient(site.port) as c:
        for i in range(24):
            assert c.request("GET", f"/urlp/name?id=u{i}").body == first[i]
    # without the parameter: round robin
    assert len(set(names(site, "urlp", 6))) == 3


def test_hdr_same_header_same_server(site):
    first = {i: get(site.port, "/hdrb/name", [("X-User", f"user{i}")]).body for i in range(24)}
    assert len(set(first.values())) >= 2, first
    for i in range(24):
        assert get(site.port, "/hdrb/name", [("X-User", f"user{i}")]).body == first[i]


# ------------------------------------------------------------ cookies

def set_cookies(r) -> list[str]:
    return r.header_all("Set-Cookie")


def test_cookie_insert_indirect(site):
    reset_pool(site)
    n_name, n_headers = count_log(site.farm, "GET /ci/name "), count_log(site.farm, "GET /ci/headers ")
    r = get(site.port, "/ci/name")
    srv = r.body.decode()
    assert set_cookies(r) == [f"SRVID={srv}; path=/"]
    rec = last_log(site.farm, "GET /ci/name ", count=n_name + 1)
    assert rec["tsc"][2:] == "NI", rec                     # no cookie; inserted
    for _ in range(10):                                    # sticks, on new connections
        r = get(site.port, "/ci/headers", [("Cookie", f"other=1; SRVID={srv}; more=2")])
        assert r.header("X-Server") == srv
        assert set_cookies(r) == []                        # valid already: nothing to insert
    rec = last_log(site.farm, "GET /ci/headers ", count=n_headers + 10)
    assert rec["tsc"][2:] == "V-", rec
    seen = [q for b in site.pool for q in b.requests if q.path == "/ci/headers"]
    assert len(seen) == 10
    # indirect: the server never sees the persistence cookie
    assert {q.header("Cookie") for q in seen} == {"other=1; more=2"}
    r = get(site.port, "/ci/headers", [("Cookie", f"SRVID={srv}")])
    assert b"SRVID" not in r.body and b"Cookie" not in r.body


def test_cookie_insert_invalid_value_is_rebalanced(site):
    n = count_log(site.farm, "GET /ci/name ")
    r = get(site.port, "/ci/name", [("Cookie", "SRVID=nosuch")])
    srv = r.body.decode()
    assert set_cookies(r) == [f"SRVID={srv}; path=/"]
    assert last_log(site.farm, "GET /ci/name ", count=n + 1)["tsc"][2:] == "II"


def test_cookie_insert_without_indirect_passes_cookie_and_nocache(site):
    reset_pool(site)
    r = get(site.port, "/cn/name")
    srv = r.body.decode()
    assert set_cookies(r) == [f"SRVID={srv}; path=/"]
    assert r.header("Cache-Control") == "private"          # nocache
    r = get(site.port, "/cn/headers", [("Cookie", f"SRVID={srv}")])
    assert r.header("X-Server") == srv
    assert f"Cookie: SRVID={srv}".encode() in r.body


def test_cookie_rewrite(site):
    reset_pool(site)
    n = count_log(site.farm, "GET /cr/setcookie")
    r = get(site.port, "/cr/setcookie?name=SRVID&value=app123")
    srv = r.header("X-Server")
    assert set_cookies(r) == [f"SRVID={srv}; path=/"]
    assert last_log(site.farm, "GET /cr/setcookie", count=n + 1)["tsc"][2:] == "NR"
    for _ in range(6):
        r = get(site.port, "/cr/headers", [("Cookie", f"SRVID={srv}")])
        assert r.header("X-Server") == srv
    # a response without the cookie is left alone
    assert set_cookies(get(site.port, "/cr/name")) == []


def test_cookie_prefix(site):
    reset_pool(site)
    r = get(site.port, "/cp/setcookie?name=JSESSIONID&value=abc")
    srv = r.header("X-Server")
    assert set_cookies(r) == [f"JSESSIONID={srv}~abc; path=/"]
    for _ in range(6):
        r = get(site.port, "/cp/headers", [("Cookie", f"a=1; JSESSIONID={srv}~abc")])
        assert r.header("X-Server") == srv
    seen = [q for b in site.pool for q in b.requests if q.path == "/cp/headers"]
    # the server sees its own value, without the prefix
    assert {q.header("Cookie") for q in seen} == {"a=1; JSESSIONID=abc"}


def test_cookie_insert_removes_the_servers_own_cookie_of_that_name(site):
    n = count_log(site.farm, "GET /ci/setcookie")
    r = get(site.port, "/ci/setcookie?name=SRVID&value=from-app")
    srv = r.header("X-Server")
    assert set_cookies(r) == [f"SRVID={srv}; path=/"]
    r = get(site.port, "/ci/setcookie?name=SRVID&value=from-app", [("Cookie", f"SRVID={srv}")])
    assert r.header("X-Server") == srv and set_cookies(r) == []
    assert last_log(site.farm, "GET /ci/setcookie", count=n + 2)["tsc"][2:] == "VD"
    r = get(site.port, "/ci/setcookie?name=OTHER&value=1", [("Cookie", f"SRVID={srv}")])
    assert set_cookies(r) == ["OTHER=1; path=/"]          # other cookies are the app's


def test_cookie_persistence_holds_on_a_server_at_weight_0():
    """Drain (weight 0) keeps persistent clients, as HAProxy's DRAIN state
    does; a server that is down does not."""
    from farm import model
    from workers.cookie import CookiePersistence
    from workers.http1 import Request

    class Pool:
        up = {0: True, 1: True}

        def is_up(self, i):
            return self.up[i]

        def weight(self, i):
            return 0

    cfg = model.Backend("b", servers=(model.Server("a", model.Address("127.0.0.1", 1), cookie="a"),
                                      model.Server("b", model.Address("127.0.0.1", 2), cookie="b")))
    be = type("Be", (), {"cfg": cfg, "pool": Pool()})()
    cp = CookiePersistence(model.Cookie("SRVID", "insert", indirect=True), be)
    txn = type("Txn", (), {})()
    txn.req = Request(headers=[(b"Cookie", b"SRVID=b")])
    txn.forced_server = None
    cp.on_request(txn)
    assert (txn.cc, txn.forced_server) == ("V", 1)
    Pool.up[1] = False
    txn.req = Request(headers=[(b"Cookie", b"SRVID=b")])
    txn.forced_server = None
    cp.on_request(txn)
    assert (txn.cc, txn.forced_server) == ("D", None)


def test_local_answers_keep_an_http10_keepalive_client(site):
    with RawClient(site.port) as c:
        for _ in range(2):
            r = c.request("GET", "/ret", [("Connection", "keep-alive")], version="HTTP/1.0", host=None)
            assert (r.status, r.header("Connection")) == (201, "keep-alive")
        r = c.request("GET", "/name", [("Connection", "keep-alive")], version="HTTP/1.0", host=None)
        assert (r.body, r.header("Connection")) == (b"default", "keep-alive")
