"""farm explain (farm/explain.py): the routing of one request through a
real config, by the workers' own parser, rules and balancers."""

from __future__ import annotations

import pytest

from farm import explain as ex
from farm.loader import load_text
from workers.lb.pool import ServerPool
from workers.runtime import balance_key

CONFIG = """
[global]
workers = 1
[defaults]
mode = "http"

[frontends.www]
bind = "127.0.0.1:8080"
default_backend = "app"
option_forwardfor = true
[frontends.www.acl]
api = "path_beg /api/"
internal = ["src 10.0.0.0/8", "src 127.0.0.0/8"]
static = "path_end .css .js"
[[frontends.www.http_request]]
action = "deny"
status = 403
if = "{ path_beg /admin } !internal"
[[frontends.www.http_request]]
action = "redirect"
location = "/new"
if = "{ path /old }"
[[frontends.www.http_request]]
action = "set-header"
name = "X-Route"
value = "%[path]"
[[frontends.www.use_backend]]
backend = "api"
if = "api"
[[frontends.www.use_backend]]
backend = "nowhere"
if = "{ hdr(host) -i lost.example }"

[backends.app]
balance = "roundrobin"
[[backends.app.servers]]
name = "s1"
address = "127.0.0.1:9001"
weight = 1
[[backends.app.servers]]
name = "s2"
address = "127.0.0.1:9002"
weight = 3

[backends.api]
balance = "hdr(x-user)"
[backends.api.cookie]
name = "SRV"
[[backends.api.http_request]]
action = "return"
status = 503
body = "closed"
if = "{ method DELETE }"
[[backends.api.servers]]
name = "a1"
address = "127.0.0.1:9101"
[[backends.api.servers]]
name = "a2"
address = "127.0.0.1:9102"
[[backends.api.servers]]
name = "a3"
address = "127.0.0.1:9103"
disabled = true

[backends.nowhere]
[[backends.nowhere.servers]]
name = "n1"
address = "127.0.0.1:9201"
disabled = true

[frontends.db]
bind = "127.0.0.1:5432"
mode = "tcp"
default_backend = "pg"
[frontends.db.acl]
office = "src 192.168.0.0/16"
[[frontends.db.use_backend]]
backend = "pg_replica"
if = "office"
[backends.pg]
mode = "tcp"
balance = "source"
[[backends.pg.servers]]
name = "p1"
address = "127.0.0.1:5501"
[[backends.pg.servers]]
name = "p2"
address = "127.0.0.1:5502"
[backends.pg_replica]
mode = "tcp"
[[backends.pg_replica.servers]]
name = "r1"
address = "127.0.0.1:5601"
"""


@pytest.fixture(scope="module")
def cfg():
    return load_text(CONFIG, "farm.toml")


def run(cfg, request="GET / HTTP/1.1", headers=("Host: example.com",), src="127.0.0.1",
        frontend="www", states=None):
    return ex.explain(cfg, frontend, request, list(headers), src, states, "/run/x.sock")


def text(e) -> str:
    return "\n".join(e.lines)


def test_default_backend_and_the_balanced_server(cfg):
    e = run(cfg)
    assert (e.backend, e.server, e.refused) == ("app", "s2", None)
    t = text(e)
    assert "backend app (chosen by default_backend)" in t
    assert "use_backend api if api   (line 27)" in t and "-> no match" in t
    assert 'api (path_beg /api/): path = "/" -> false' in t
    # the set-header rule fired, and the X-Forwarded-Proto of option forwardfor is there
    assert 'X-Route: /' in t and "X-Forwarded-Proto: http" in t
    # the pick is the workers' balancer's first pick with these weights
    pool = ServerPool(cfg.backend("app"))
    assert cfg.backend("app").servers[pool.pick(None)].name == "s2"


def test_deny_says_which_rule_and_why(cfg):
    e = run(cfg, "GET /admin/users HTTP/1.1", src="192.0.2.7")
    assert e.refused == "deny 403 by an http_request rule of frontend www"
    assert (e.backend, e.server) == (None, None)
    t = text(e)
    assert "http_request deny status=403 if { path_beg /admin } !internal   (line 15)" in t
    assert '{ path_beg /admin }: path = "/admin/users" -> true' in t
    assert "!internal -> false, negated: true" in t          # an ACL of two lines
    assert "src 10.0.0.0/8: src = 192.0.2.7" in t
    assert "-> fired: deny with status 403" in t
    # the same request from inside is not denied
    assert run(cfg, "GET /admin/users HTTP/1.1", src="10.1.2.3").refused is None


def test_a_redirect_is_answered_without_refusing(cfg):
    e = run(cfg, "GET /old HTTP/1.1")
    assert e.refused is None and e.backend is None
    assert "result: answered by frontend www without a server: redirect with status 302 to /new" in text(e)


def test_use_backend_with_hashing_and_cookie(cfg):
    e = run(cfg, "GET /api/v1 HTTP/1.1", ["Host: example.com", "X-User: alice"])
    assert e.backend == "api"
    key = balance_key(cfg.backend("api").balance)
    pool = ServerPool(cfg.backend("api"))

    class T:
        req = type("R", (), {"get": staticmethod(lambda n: b"alice")})()
    assert e.server == cfg.backend("api").servers[pool.pick(key(T))].name
    t = text(e)
    assert "backend api (chosen by use_backend if api (line 27))" in t
    assert 'balance hdr(x-user) of the key "alice"' in t
    assert "cookie SRV: not in the request" in t
    # a valid persistence cookie wins over the hash
    e = run(cfg, "GET /api/v1 HTTP/1.1", ["Host: example.com", "X-User: alice",
                                          f"Cookie: SRV={'a1' if e.server == 'a2' else 'a2'}"])
    assert "cookie SRV: names a usable server" in text(e) and "chosen by cookie SRV" in text(e)
    # ... but not when it names a server in maintenance
    e = run(cfg, "GET /api/v1 HTTP/1.1", ["Host: example.com", "Cookie: SRV=a3"])
    assert "names a server that is not up" in text(e) and e.server in ("a1", "a2")


def test_backend_rules_and_a_backend_without_server(cfg):
    e = run(cfg, "DELETE /api/v1 HTTP/1.1")
    assert e.refused == "return 503 by an http_request rule of backend api"
    e = run(cfg, "GET / HTTP/1.1", ["Host: LOST.example"])
    assert e.backend == "nowhere" and e.refused == "503: no server of backend nowhere is usable"


def test_live_states_change_the_pick(cfg):
    live = {("app", "s1"): ex.LiveServer(True, 1, 0, "up"),
            ("app", "s2"): ex.LiveServer(False, 3, 0, "maint")}
    e = run(cfg, states=live)
    assert e.server == "s1"
    t = text(e)
    assert "servers (live states from /run/x.sock):" in t
    assert "s2               maint" in t
    live[("app", "s1")] = ex.LiveServer(False, 1, 0, "down")
    assert run(cfg, states=live).refused == "503: no server of backend app is usable"


def test_parser_refusals_are_reported(cfg):
    e = run(cfg, "GET / HTTP/1.1", headers=())
    assert e.refused == "400 by the HTTP parser: HTTP/1.1 request without Host"
    e = run(cfg, "GET / HTTP/1.1", ["Host: a", "Content-Length: 1", "Transfer-Encoding: chunked"])
    assert e.refused.startswith("400 by the HTTP parser")
    assert run(cfg, "GET /x", ["Host: a"]).backend == "app"        # HTTP/1.1 is implied


def test_tcp_frontend_routes_by_address(cfg):
    e = run(cfg, None, (), src="192.168.4.4", frontend="db")
    assert (e.backend, e.server) == ("pg_replica", "r1")
    assert "office (src 192.168.0.0/16): src = 192.168.4.4 -> true" in text(e)
    e = run(cfg, None, (), src="10.9.9.9", frontend="db")
    assert e.backend == "pg" and "balance source of the key \"10.9.9.9\"" in text(e)


def test_usage_errors(cfg):
    with pytest.raises(ValueError, match="pass --frontend NAME"):
        ex.explain(cfg, None, "GET / HTTP/1.1", [])
    with pytest.raises(ValueError, match="no frontend 'nope'"):
        ex.explain(cfg, "nope", "GET / HTTP/1.1", [])
    with pytest.raises(ValueError, match="give the request line"):
        ex.explain(cfg, "www", None, [])


HAPROXY_STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 app 1 s1 127.0.0.1 2 0 1 1 0 1 0 2 0 0 0 0 - 18998 - 0 0 - - 0
3 app 2 s2 127.0.0.1 2 1 3 3 0 1 0 2 0 0 0 0 - 18997 - 0 0 - - 0
3 app 3 s3 127.0.0.1 2 8 2 2 0 1 0 2 0 0 0 0 - 18996 - 0 0 - - 0
3 app 4 s4 127.0.0.1 0 0 2 2 0 1 0 2 0 0 0 0 - 18995 - 0 0 - - 0
"""


def test_parse_servers_state_as_haproxy_writes_it():
    st = ex.parse_servers_state(HAPROXY_STATE)
    assert st[("app", "s1")] == ex.LiveServer(True, 1, 0, "up")
    assert st[("app", "s2")] == ex.LiveServer(False, 3, 0, "maint")
    assert st[("app", "s3")] == ex.LiveServer(True, 0, 0, "drain")
    assert st[("app", "s4")] == ex.LiveServer(False, 2, 0, "down")


def test_parse_scur_reads_server_rows():
    csv = ("# pxname,svname,qcur,qmax,scur,smax\n"
           "fe,FRONTEND,,,5,9\napp,s1,0,0,3,4\napp,BACKEND,0,0,3,4\n\n")
    assert ex.parse_scur(csv) == {("app", "s1"): 3}
    assert ex.parse_scur("Unknown command\n") == {}


def test_stick_rules_are_named_not_guessed(cfg):
    """The stick table lives in the running farm: explain names the rules
    and still shows the balance's choice."""
    text_ = CONFIG.replace("[backends.app]\n", '[backends.app]\nstick_on = "src"\n'
                           'stick_store_response = { key = "res.cook(SID)", if = "{ status 200 }" }\n') \
        + '\n[tables.persist]\nsize = 10\nstore = ["server_id"]\n'
    e = run(load_text(text_, "farm.toml"))
    t = text(e)
    assert "stick match src table persist: not evaluated here" in t
    assert "stick store-response res.cook(SID) table persist if { status 200 }" in t
    assert e.server == "s2"
