"""workers/rules.py: ACL matchers per fetch and method, conditions,
http_request / http_response actions and use_backend routing.

Req/Resp/Txn below are stand-ins with the interface of workers/http1.py's
request and response (method/target/path/query/version, headers list, and
the get/get_all/set/add/remove helpers)."""

import pytest

from farm.conditions import ConditionError, parse_acl
from farm.model import Acl, Condition, Rule, UseBackend
from workers import rules
from workers.rules import (
    AclTable, RuleError, Verdict, compile_acl_spec, compile_acls, compile_condition,
    compile_format, compile_request_rules, compile_response_rules, compile_use_backend,
)


# ---------------------------------------------------------------- stand-ins

class _Headers:
    def get(self, name):
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None

    def get_all(self, name):
        return [v for n, v in self.headers if n.lower() == name]

    def set(self, name, value):
        self.remove(name.lower())
        self.add(name, value)

    def add(self, name, value):
        self.headers.append((name, value))

    def remove(self, name):
        before = len(self.headers)
        self.headers = [(n, v) for n, v in self.headers if n.lower() != name]
        return before - len(self.headers)


class Req(_Headers):
    def __init__(self, target=b"/", method=b"GET", headers=(), version=b"HTTP/1.1"):
        self.method = method
        self.version = version
        self.headers = list(headers)
        self.target = target

    @property
    def target(self):
        return self._target

    @target.setter
    def target(self, value):
        # keeps path/query consistent, as the real request class must
        self._target = value
        before, _, self.query = value.partition(b"?")
        if before.startswith(b"/") or b"://" not in before:
            self.path = before
        else:
            slash = before.find(b"/", before.find(b"://") + 3)
            self.path = before[slash:] if slash >= 0 else b""


class Resp(_Headers):
    def __init__(self, status=200, reason=b"OK", headers=()):
        self.status = status
        self.reason = reason
        self.headers = list(headers)


class Txn:
    def __init__(self, target=b"/", method=b"GET", headers=(), src="127.0.0.1",
                 src_port=40000, dst_port=80, resp=None, version=b"HTTP/1.1"):
        self.req = Req(target, method, headers, version)
        self.src = src
        self.src_port = src_port
        self.dst_port = dst_port
        self.resp = resp


class SlotTxn:
    """A txn with __slots__ and no cache slot: src matching must still work."""
    __slots__ = ("req", "src", "src_port", "dst_port", "resp")

    def __init__(self, src):
        self.req = Req()
        self.src = src
        self.src_port = 1
        self.dst_port = 80
        self.resp = None


def acl(text, phase="request"):
    return compile_acl_spec(parse_acl(text), phase)


def matches(text, txn, phase="request"):
    return acl(text, phase)(txn)


def H(*pairs):
    """H("Host", "a", ...) -> [(b"Host", b"a"), ...]"""
    return [(pairs[i].encode(), pairs[i + 1].encode()) for i in range(0, len(pairs), 2)]


# ---------------------------------------------------------------- path / url

def test_path_exact():
    t = Txn(b"/api?x=1")
    assert matches("path /api", t)
    assert matches("path /x /api", t)
    assert not matches("path /api?x=1", t)
    assert not matches("path /API", t)
    assert matches("path -i /API", t)


def test_path_beg_end_sub_reg():
    t = Txn(b"/api/v1/Users.PNG?q=/x.png")
    assert matches("path_beg /api/ /v2/", t)
    assert not matches("path_beg /v2/", t)
    assert not matches("path_beg /API/", t)
    assert matches("path_beg -i /API/", t)
    assert matches("path_end -i .png", t)
    assert not matches("path_end .png", t)
    assert matches("path_sub v1/", t)
    assert matches("path_sub nope v1/", t)
    assert not matches("path_sub x.png", t)          # query is not part of the path
    assert matches(r"path_reg ^/api/v[0-9]+/", t)
    assert not matches(r"path_reg ^/img/.*\.png$", t)
    assert matches(r"path_reg -i \.png$", t)
    assert matches(r"path_reg ^/nope ^/api", t)


def test_path_dir():
    assert matches("path_dir api", Txn(b"/api"))
    assert matches("path_dir api", Txn(b"/api/x"))
    assert matches("path_dir api", Txn(b"/x/api/y"))
    assert matches("path_dir /api/", Txn(b"/api/x"))    # delimiters around the pattern are ignored
    assert matches("path_dir api/v1", Txn(b"/api/v1/x"))
    assert not matches("path_dir api", Txn(b"/apix/y"))
    assert not matches("path_dir api", Txn(b"/x.api"))
    assert matches("path_dir -i API", Txn(b"/api/x"))


def test_path_len():
    t = Txn(b"/abcd?zz")
    assert matches("path_len 5", t)
    assert matches("path_len gt 4", t)
    assert not matches("path_len lt 5", t)
    assert matches("path -m len 1:10", t)


def test_url_fetches():
    t = Txn(b"/a/b?x=1&y=2")
    assert matches("url /a/b?x=1&y=2", t)
    assert not matches("url /a/b", t)
    assert matches("url_beg /a/b?x", t)
    assert matches("url_sub y=2", t)
    assert matches(r"url_reg \?x=\d", t)
    assert matches("url_end y=2", t)


def test_absolute_form_target():
    t = Txn(b"http://example.com/p?q=1")
    assert matches("path /p", t)
    assert matches("url_beg http://", t)


# ---------------------------------------------------------------- query / url_param / method

def test_query():
    assert matches("query x=1&y=2", Txn(b"/a?x=1&y=2"))
    assert matches("query -m sub y=2", Txn(b"/a?x=1&y=2"))
    assert matches("query -m found", Txn(b"/a?"))
    assert not matches("query -m found", Txn(b"/a"))
    assert matches('query ""', Txn(b"/a?"))
    assert not matches('query ""', Txn(b"/a"))           # no '?': no sample at all
    assert not matches("query -m len 0", Txn(b"/a"))


def test_url_param():
    t = Txn(b"/s?id=42&name=bob&id=7&flag")
    assert matches("url_param(id) 42", t)
    assert matches("url_param(id) 7", t)                # every occurrence is tested
    assert not matches("url_param(id) 4", t)
    assert matches("urlp(name) -m beg b", t)
    assert matches("url_param(id) -m found", t)
    assert matches("url_param(flag) -m found", t)       # present without '='
    assert matches('url_param(flag) ""', t)
    assert not matches("url_param(missing) -m found", t)
    assert not matches("url_param(ID) -m found", t)     # names are case-sensitive
    assert not matches("url_param(d) -m found", t)      # no partial names
    assert not matches("url_param(id) -m found", Txn(b"/s"))


def test_method():
    assert matches("method GET HEAD", Txn(method=b"HEAD"))
    assert not matches("method GET HEAD", Txn(method=b"POST"))
    assert not matches("method get", Txn(method=b"GET"))
    assert matches("method -i get", Txn(method=b"GET"))


def test_req_ver():
    assert matches("req.ver 1.1", Txn())
    assert matches("req.ver 1.0", Txn(version=b"HTTP/1.0"))
    assert not matches("req.ver 1.0", Txn())


# ---------------------------------------------------------------- headers

def test_hdr_exact_and_icase():
    t = Txn(headers=H("Host", "Example.com"))
    assert matches("hdr(host) Example.com", t)
    assert matches("hdr(HOST) Example.com", t)
    assert not matches("hdr(host) example.com", t)
    assert matches("hdr(host) -i example.com www.example.com", t)
    assert not matches("hdr(host) -i www.example.com", t)
    assert not matches("hdr(x-missing) a", t)


def test_hdr_splits_commas_and_checks_every_value():
    t = Txn(headers=H("X-Forwarded-For", "1.1.1.1, 2.2.2.2", "Accept", "a", "X-Forwarded-For", "3.3.3.3"))
    assert matches("hdr(x-forwarded-for) 2.2.2.2", t)
    assert matches("hdr(x-forwarded-for) 3.3.3.3", t)
    assert not matches("hdr(x-forwarded-for) 1.1.1.1,", t)
    assert matches("hdr_beg(x-forwarded-for) 2.2", t)
    assert not matches("fhdr(x-forwarded-for) 2.2.2.2", t)      # fhdr: whole lines
    assert not matches("fhdr(x-forwarded-for) 1.1.1.1, 2.2.2.2", t)  # two values, neither whole
    assert matches('fhdr(x-forwarded-for) "1.1.1.1, 2.2.2.2"', t)


def test_hdr_methods():
    t = Txn(headers=H("Host", "www.Example.com:8080", "User-Agent", "curl/8.0"))
    assert matches("hdr_beg(host) www.", t)
    assert matches("hdr_end(host) :8080", t)
    assert matches("hdr_sub(user-agent) curl", t)
    assert matches(r"hdr_reg(user-agent) ^curl/[0-9]", t)
    assert not matches(r"hdr_reg(user-agent) ^wget", t)
    assert matches("hdr_len(user-agent) 8", t)
    assert matches("hdr(host) -m found", t)
    assert not matches("hdr(cookie) -m found", t)
    assert matches("hdr(host) -m sub -i example", t)
    assert matches("hdr(user-agent) -m reg curl", t)
    assert matches("hdr(user-agent) -m end /8.0", t)
    assert matches("hdr(user-agent) -m beg curl", t)
    assert matches("hdr(user-agent) -m str curl/8.0", t)
    assert matches("hdr(user-agent) -m dir 8.0", t)
    assert matches("hdr(user-agent) -m len ge 8", t)


def test_hdr_dom():
    def dom(host, pattern="example.com", flags="-i"):
        return matches(f"hdr_dom(host) {flags} {pattern}", Txn(headers=H("Host", host)))
    assert dom("example.com")
    assert dom("www.example.com")
    assert dom("Example.COM")
    assert dom("example.com:8080")
    assert dom("a.example.com.evil")          # word-delimited, as in HAProxy
    assert not dom("notexample.com")
    assert not dom("example.community")
    assert not dom("Example.com", flags="")   # case-sensitive without -i
    assert dom("www.example.com", pattern=".example.com.")
    assert dom("api.internal", pattern="api")


def test_hdr_cnt():
    t = Txn(headers=H("X-Forwarded-For", "1.1.1.1, 2.2.2.2", "X-Forwarded-For", "3.3.3.3"))
    assert matches("hdr_cnt(x-forwarded-for) gt 1", t)
    assert matches("hdr_cnt(x-forwarded-for) eq 3", t)
    assert matches("hdr_cnt(x-forwarded-for) 3", t)
    assert not matches("hdr_cnt(x-forwarded-for) lt 3", t)
    assert matches("hdr_cnt(x-forwarded-for) le 3", t)
    assert matches("hdr_cnt(x-forwarded-for) ge 3", t)
    assert matches("hdr_cnt(via) eq 0", t)
    assert not matches("hdr_cnt(via) gt 0", t)
    assert matches("hdr_cnt(via) 0:2", t)


# ---------------------------------------------------------------- cookies

def test_cookies():
    t = Txn(headers=H("Cookie", "a=1; session=abc; b=2", "Cookie", "session=xyz;c=3"))
    assert matches("req.cook(session) -m str abc", t)
    assert matches("req.cook(session) xyz", t)
    assert matches("cook(c) 3", t)
    assert matches("cook_beg(session) xy", t)
    assert not matches("req.cook(session) ab", t)
    assert not matches("req.cook(Session) abc", t)      # cookie names are case-sensitive
    assert not matches("req.cook(ession) abc", t)
    assert matches("req.cook(session) -m found", t)
    assert not matches("req.cook(nope) -m found", t)
    assert matches("cook_cnt(session) 2", t)
    assert matches("req.cook_cnt(nope) 0", t)
    assert not matches("req.cook(a) -m found", Txn())


# ---------------------------------------------------------------- src / ports

@pytest.mark.parametrize("src, expected", [
    ("10.1.2.3", True),
    ("127.0.0.1", True),
    ("127.0.0.2", False),
    ("11.0.0.1", False),
    ("192.168.7.9", True),
    ("::1", True),
    ("::2", False),
    ("2001:db8::1", True),
    ("2001:db9::1", False),
    ("::ffff:10.9.9.9", True),          # IPv4-mapped client vs IPv4 network
    ("fe80::1%eth0", False),
    ("", False),
    ("not-an-ip", False),
])
def test_src(src, expected):
    m = acl("src 10.0.0.0/8 127.0.0.1 192.168.0.0/16 ::1/128 2001:db8::/32")
    assert m(Txn(src=src)) is expected


def test_src_v4_client_matches_mapped_v6_pattern():
    assert matches("src ::ffff:10.0.0.0/104", Txn(src="10.2.3.4"))
    assert matches("src ::/0", Txn(src="10.2.3.4"))
    assert not matches("src 0.0.0.0/0", Txn(src="2001:db8::1"))
    assert matches("src 0.0.0.0/0", Txn(src="1.2.3.4"))


def test_src_cache_on_txn_and_slots():
    t = Txn(src="10.0.0.1")
    m = acl("src 10.0.0.0/8")
    assert m(t)
    assert t._rules_src == (0x0A000001, (0xFFFF << 32) | 0x0A000001)
    t.src = "1.1.1.1"            # the cache wins: the address of a txn never changes
    assert m(t)
    assert m(SlotTxn("10.0.0.1")) and not m(SlotTxn("1.1.1.1"))


def test_src_found_and_ports():
    assert matches("src -m found", Txn())
    t = Txn(src_port=40000, dst_port=8080)
    assert matches("dst_port 80 8080", t)
    assert not matches("dst_port 80 443", t)
    assert matches("dst_port 8000:8999", t)
    assert matches("dst_port ge 1024", t)
    assert matches("src_port gt 32767", t)
    assert matches("dst_port -m found", t)


# ---------------------------------------------------------------- response phase

def test_response_phase_hdr_reads_response():
    t = Txn(headers=H("Content-Type", "text/plain"),
            resp=Resp(404, headers=H("Content-Type", "text/html; charset=utf-8")))
    assert matches("hdr_beg(content-type) text/plain", t)                       # request phase
    assert matches("hdr_beg(content-type) text/html", t, phase="response")
    assert matches("req.hdr(content-type) text/plain", t, phase="response")
    assert matches("res.hdr(content-type) -m beg text/html", t)
    assert matches("hdr_cnt(content-type) 1", t, phase="response")
    assert matches("status 404", t, phase="response")
    assert matches("status 400:499", t)
    assert not matches("status 200", t)


def test_res_cook_reads_the_cookies_the_response_sets():
    t = Txn(headers=H("Cookie", "SID=from-client"),
            resp=Resp(200, headers=H("Set-Cookie", "lang=en; path=/")
                      + H("Set-Cookie", "SID=abc; Path=/; HttpOnly")))
    assert matches("res.cook(SID) abc", t, phase="response")
    assert matches("scook(SID) abc", t)
    assert matches("req.cook(SID) from-client", t, phase="response")
    assert not matches("res.cook(Path) -m found", t)       # an attribute is not a cookie
    assert not matches("res.cook(SID) -m found", Txn())


def test_response_fetches_without_response():
    t = Txn()
    assert not matches("status 200", t)
    assert not matches("status -m found", t)
    assert not matches("res.hdr(x) -m found", t)


# ---------------------------------------------------------------- named ACLs, conditions

ACLS = [
    Acl("api", ("path_beg /api/", "hdr(host) -i api.example.com")),
    Acl("internal", ("src 10.0.0.0/8 127.0.0.0/8",)),
    Acl("post", ("method POST",)),
    Acl("ctype_html", ("hdr_sub(content-type) html",)),
]


def cond(text, negate=False, phase="request", acls=ACLS):
    return compile_condition(Condition(text, negate), compile_acls(acls), phase)


def test_named_acl_lines_are_ored():
    table = compile_acls(ACLS)
    assert isinstance(table, AclTable)
    assert table["api"](Txn(b"/api/x"))
    assert table["api"](Txn(b"/", headers=H("Host", "API.example.com")))
    assert not table["api"](Txn(b"/", headers=H("Host", "www.example.com")))


def test_same_acl_name_twice_is_ored():
    table = compile_acls([Acl("x", ("path /a",)), Acl("x", ("path /b",))])
    assert table["x"](Txn(b"/a")) and table["x"](Txn(b"/b")) and not table["x"](Txn(b"/c"))


def test_compile_acls_error_names_the_acl():
    with pytest.raises(RuleError, match="acl 'bad': unknown fetch 'pth'"):
        compile_acls([Acl("bad", ("pth /a",))])


def test_condition_single_and_negation():
    assert cond("api")(Txn(b"/api/"))
    assert not cond("!api")(Txn(b"/api/"))
    assert cond("! api")(Txn(b"/x"))


def test_condition_implicit_and():
    c = cond("api internal post")
    assert c(Txn(b"/api/", b"POST", src="10.0.0.1"))
    assert not c(Txn(b"/api/", b"GET", src="10.0.0.1"))
    assert not c(Txn(b"/api/", b"POST", src="1.1.1.1"))
    assert not c(Txn(b"/x", b"POST", src="10.0.0.1"))


def test_condition_or():
    c = cond("api post || internal")
    assert c(Txn(b"/api/", b"POST", src="1.1.1.1"))
    assert c(Txn(b"/x", b"GET", src="10.0.0.1"))
    assert not c(Txn(b"/api/", b"GET", src="1.1.1.1"))
    assert cond("post or internal")(Txn(method=b"POST", src="1.1.1.1"))


def test_condition_anonymous():
    c = cond("{ path_beg /admin } !internal")
    assert c(Txn(b"/admin/x", src="1.2.3.4"))
    assert not c(Txn(b"/admin/x", src="10.0.0.1"))
    assert not c(Txn(b"/x", src="1.2.3.4"))
    assert cond("!{ method GET HEAD }")(Txn(method=b"PUT"))
    assert cond('{ hdr(x-tag) "a b" }')(Txn(headers=H("X-Tag", "a b")))


def test_condition_unless():
    c = cond("internal", negate=True)
    assert c(Txn(src="1.1.1.1"))
    assert not c(Txn(src="10.0.0.1"))
    assert cond("api || post", negate=True)(Txn(b"/x"))
    assert not cond("api || post", negate=True)(Txn(b"/x", b"POST"))


def test_condition_none_is_true():
    assert compile_condition(None, {}) is rules._true


def test_condition_predefined_acls():
    assert cond("METH_GET")(Txn(method=b"HEAD"))
    assert not cond("METH_GET")(Txn(method=b"POST"))
    assert cond("LOCALHOST")(Txn(src="127.0.0.1")) and cond("LOCALHOST")(Txn(src="::1"))
    assert cond("TRUE")(Txn()) and not cond("FALSE")(Txn())
    assert cond("HTTP_1.1 HTTP_URL_SLASH")(Txn())
    assert cond("HTTP_URL_ABS")(Txn(b"http://x/"))
    assert cond("HTTP_URL_STAR")(Txn(b"*", b"OPTIONS"))


def test_user_acl_shadows_predefined():
    c = cond("LOCALHOST", acls=[Acl("LOCALHOST", ("src 10.0.0.1",))])
    assert c(Txn(src="10.0.0.1")) and not c(Txn(src="127.0.0.1"))


def test_condition_unknown_acl():
    with pytest.raises(RuleError, match="unknown ACL 'nope'"):
        cond("api nope")


def test_condition_forms_accepted():
    table = compile_acls(ACLS)
    assert compile_condition("api", table)(Txn(b"/api/"))
    assert compile_condition("api", ACLS)(Txn(b"/api/"))                 # sequence of model.Acl
    assert compile_condition("x", {"x": lambda txn: True})(Txn())       # plain mapping
    with pytest.raises(ConditionError):
        compile_condition("{ path", table)


def test_condition_response_phase_uses_response_headers():
    t = Txn(headers=H("Content-Type", "text/plain"),
            resp=Resp(headers=H("Content-Type", "text/html")))
    assert cond("ctype_html", phase="response")(t)
    assert not cond("ctype_html", phase="request")(t)
    assert cond("{ hdr(content-type) text/html }", phase="response")(t)
    table = compile_acls(ACLS)
    # ACLs that do not read headers are shared between phases
    assert table.for_phase("response")["internal"] is table["internal"]
    assert table.for_phase("response")["ctype_html"] is not table["ctype_html"]


# ---------------------------------------------------------------- use_backend

def test_use_backend_first_match_wins():
    choose = compile_use_backend([
        UseBackend("api", Condition("api")),
        UseBackend("internal", Condition("internal")),
        UseBackend("posts", Condition("post")),
    ], "app", compile_acls(ACLS))
    assert choose(Txn(b"/api/", src="10.0.0.1")) == "api"
    assert choose(Txn(b"/x", src="10.0.0.1")) == "internal"
    assert choose(Txn(b"/x", b"POST", src="1.1.1.1")) == "posts"
    assert choose(Txn(b"/x", src="1.1.1.1")) == "app"


def test_use_backend_unless_and_none_default():
    choose = compile_use_backend([UseBackend("public", Condition("internal", True))], None,
                                 compile_acls(ACLS))
    assert choose(Txn(src="1.1.1.1")) == "public"
    assert choose(Txn(src="10.0.0.1")) is None


def test_use_backend_degenerate_cases():
    assert compile_use_backend([], "app", {})(Txn()) == "app"
    assert compile_use_backend([], None, {})(Txn()) is None
    choose = compile_use_backend([UseBackend("a", Condition("post")), UseBackend("b"),
                                  UseBackend("c", Condition("api"))], "app", compile_acls(ACLS))
    assert choose(Txn(b"/api/")) == "b"                 # unconditional entry wins over later ones
    assert choose(Txn(method=b"POST")) == "a"
    with pytest.raises(RuleError, match="use_backend 'x' \\(line 7\\): .*unknown ACL 'zz'"):
        compile_use_backend([UseBackend("x", Condition("zz"), 7)], None, {})


# ---------------------------------------------------------------- request actions

def R(action, cond=None, negate=False, line=0, **params):
    return Rule(action, tuple(sorted(params.items())), Condition(cond, negate) if cond else None, line)


def run(rule_list, txn, acls=ACLS):
    return compile_request_rules(rule_list, compile_acls(acls))(txn)


def test_no_rules_is_a_constant():
    assert compile_request_rules([], {}) is rules.no_rules
    assert compile_response_rules([], {}) is rules.no_rules
    assert rules.no_rules(Txn()) is None


def test_deny_default():
    assert run([R("deny", status=403)], Txn()) == Verdict("deny", 403, [], None)
    assert run([R("deny")], Txn()) == Verdict("deny", 403, [], None)


def test_deny_with_body_and_content_type():
    v = run([R("deny", status=429, body="slow down", content_type="text/plain")], Txn())
    assert v == Verdict("deny", 429, [(b"Content-Type", b"text/plain")], b"slow down")
    v = run([R("deny", status=403, body="\u00e9")], Txn())
    assert v == Verdict("deny", 403, [(b"Content-Type", b"text/plain; charset=utf-8")], b"\xc3\xa9")


def test_deny_conditional():
    rule_list = [R("deny", "{ path_beg /admin } !internal", status=403)]
    assert run(rule_list, Txn(b"/admin", src="1.1.1.1")).status == 403
    assert run(rule_list, Txn(b"/admin", src="10.0.0.1")) is None
    assert run(rule_list, Txn(b"/x", src="1.1.1.1")) is None
    assert run([R("deny", "internal", negate=True)], Txn(src="1.1.1.1")).kind == "deny"


def test_allow_stops_evaluation():
    rule_list = [R("allow", "internal"), R("set-header", name="X-A", value="1"), R("deny")]
    t = Txn(src="10.0.0.1")
    assert run(rule_list, t) is None
    assert t.req.get(b"x-a") is None
    t = Txn(src="1.1.1.1")
    assert run(rule_list, t).kind == "deny"
    assert t.req.get(b"x-a") == b"1"                     # non-final actions ran before


def test_unconditional_allow_cuts_the_list():
    rule_list = [R("allow"), R("deny")]
    assert run(rule_list, Txn()) is None


def test_return():
    assert run([R("return", status=200)], Txn()) == Verdict("return", 200, [], b"")
    v = run([R("return", status=200, content_type="application/json", body='{"ok":true}')], Txn())
    assert v == Verdict("return", 200, [(b"Content-Type", b"application/json")], b'{"ok":true}')


def test_redirect_location():
    v = run([R("redirect", location="https://example.com/new", code=301)], Txn(b"/old?a=1"))
    assert v == Verdict("redirect", 301, [(b"Location", b"https://example.com/new")], b"")
    v = run([R("redirect", location="/x")], Txn())
    assert v == Verdict("redirect", 302, [(b"Location", b"/x"), (b"Cache-Control", b"no-cache")], b"")


def test_redirect_location_format():
    v = run([R("redirect", location="https://%[hdr(host)]%[path]", code=308)],
            Txn(b"/p?q", headers=H("Host", "a.example")))
    assert v.headers == [(b"Location", b"https://a.example/p")]


@pytest.mark.parametrize("code, cache", [(301, False), (302, True), (303, True), (307, True), (308, False)])
def test_redirect_codes(code, cache):
    v = run([R("redirect", location="/x", code=code)], Txn())
    assert v.status == code
    assert ((b"Cache-Control", b"no-cache") in v.headers) is cache


def test_redirect_prefix_keeps_path_and_query():
    v = run([R("redirect", prefix="https://new.example.com", code=301)], Txn(b"/a/b?x=1&y=2"))
    assert v.headers == [(b"Location", b"https://new.example.com/a/b?x=1&y=2")]


def test_redirect_prefix_drop_query():
    v = run([R("redirect", prefix="https://new.example.com", code=301, drop_query=True)],
            Txn(b"/a/b?x=1"))
    assert v.headers == [(b"Location", b"https://new.example.com/a/b")]


def test_redirect_prefix_literal_concatenation():
    # HAProxy does not trim: a trailing slash in the prefix doubles
    v = run([R("redirect", prefix="http://x/", code=301)], Txn(b"/p"))
    assert v.headers == [(b"Location", b"http://x//p")]
    v = run([R("redirect", prefix="/v2", code=301)], Txn(b"/p?q"))
    assert v.headers == [(b"Location", b"/v2/p?q")]


def test_redirect_prefix_slash_is_self_redirect():
    v = run([R("redirect", prefix="/", code=301)], Txn(b"/p?q=1"))
    assert v.headers == [(b"Location", b"/p?q=1")]
    v = run([R("redirect", prefix="/", code=301, drop_query=True)], Txn(b"/p?q=1"))
    assert v.headers == [(b"Location", b"/p")]


def test_redirect_prefix_absolute_form_and_star():
    v = run([R("redirect", prefix="https://n", code=301)], Txn(b"http://old/p?q"))
    assert v.headers == [(b"Location", b"https://n/p?q")]
    v = run([R("redirect", prefix="https://n", code=301)], Txn(b"*", b"OPTIONS"))
    assert v.headers == [(b"Location", b"https://n/")]


def test_redirect_scheme():
    t = Txn(b"/a?b=1", headers=H("Host", "example.com:8080"))
    v = run([R("redirect", scheme="https", code=301)], t)
    assert v.headers == [(b"Location", b"https://example.com:8080/a?b=1")]
    v = run([R("redirect", scheme="https", code=301, drop_query=True)], t)
    assert v.headers == [(b"Location", b"https://example.com:8080/a")]
    v = run([R("redirect", scheme="https", code=301)], Txn(b"/a"))     # no Host: empty host
    assert v.headers == [(b"Location", b"https:///a")]


def test_redirect_conditional_https():
    rule_list = [R("redirect", "{ dst_port 80 }", scheme="https", code=301)]
    assert run(rule_list, Txn(headers=H("Host", "h"), dst_port=80)).status == 301
    assert run(rule_list, Txn(headers=H("Host", "h"), dst_port=443)) is None


def test_set_header_replaces_all():
    t = Txn(headers=H("X-Id", "1", "Host", "h", "x-id", "2"))
    run([R("set-header", name="X-Id", value="new")], t)
    assert t.req.get_all(b"x-id") == [b"new"]
    assert t.req.get(b"host") == b"h"


def test_set_header_format():
    t = Txn(headers=H("Host", "Example.com", "X-Forwarded-For", "1.1.1.1, 2.2.2.2"),
            src="10.0.0.9", src_port=5555, dst_port=8080)
    run([R("set-header", name="X-Real-IP", value="%[src]"),
         R("set-header", name="X-Info", value="%ci:%cp>%fp %[hdr(host),lower] %[hdr(x-forwarded-for)] 100%%"),
         R("set-header", name="X-Missing", value="[%[req.hdr(nope)]]")], t)
    assert t.req.get(b"x-real-ip") == b"10.0.0.9"
    assert t.req.get(b"x-info") == b"10.0.0.9:5555>8080 example.com 2.2.2.2 100%"
    assert t.req.get(b"x-missing") == b"[]"


@pytest.mark.parametrize("fetch", ["hdr", "req.hdr", "fhdr", "req.fhdr"])
def test_last_header_value_is_the_last_element_of_the_list(fetch):
    """The single-pass getter of %[hdr(x)] / %[fhdr(x)] gives what the
    general one (every value, split on commas for hdr, then the last) does."""
    cases = [(), ("X", "a"), ("X", "a, b"), ("x", "a,b", "X", "c"), ("X", "a, "),
             ("X", "a,,\tb\t"), ("X", "a", "Other", "z"), ("Other", "z"), ("XX", "no")]
    for pairs in cases:
        t = Txn(headers=H(*pairs))
        f = compile_format("%%[%s(x)]" % fetch)
        general = rules._last(rules._values_getter(fetch, "x", "request"))(t)
        assert f(t) == general, pairs


def test_format_samples():
    t = Txn(b"/p?id=1&id=2", b"PUT", headers=H("Cookie", "s=1; s=2", "A", "x", "A", "y"))
    def fmt(text):
        f = compile_format(text)
        return f if isinstance(f, bytes) else f(t)
    assert fmt("literal") == b"literal"
    assert fmt("%[url_param(id)]") == b"1"        # first parameter
    assert fmt("%[cook(s)]") == b"2"              # last cookie
    assert fmt("%[fhdr(a)]") == b"y"              # last header line
    assert fmt("%[hdr_cnt(a)]") == b"2"
    assert fmt("%[method],%[url],%[query],%[req.ver]") == b"PUT,/p?id=1&id=2,id=1&id=2,1.1"
    assert fmt("%[path,upper]") == b"/P"
    assert fmt("%[status]") == b""


def test_header_values_are_trimmed():
    t = Txn(headers=H("X-A", "v"))
    run([R("set-header", name="X-B", value="  b "),
         R("add-header", name="X-C", value="%[hdr(x-a)] "),
         R("replace-header", name="X-A", match="(v)", replace=r" \1\x09")], t)
    assert t.req.headers == [(b"X-A", b"v"), (b"X-B", b"b"), (b"X-C", b"v")]


def test_add_and_del_header():
    t = Txn(headers=H("Via", "1.1 a"))
    run([R("add-header", name="Via", value="1.1 farm"), R("del-header", name="X-Gone")], t)
    assert t.req.get_all(b"via") == [b"1.1 a", b"1.1 farm"]
    t = Txn(headers=H("X-Gone", "1", "Keep", "k", "x-gone", "2"))
    run([R("del-header", name="X-Gone")], t)
    assert t.req.headers == [(b"Keep", b"k")]


def test_replace_header_replaces_whole_matching_value():
    t = Txn(headers=H("Cookie", "foo=bar; expires=x", "X-Other", "foo=bar"))
    run([R("replace-header", name="Cookie", match="foo=([^;]*);(.*)", replace=r"foo=\1;ip=%[src];\2")], t)
    assert t.req.get_all(b"cookie") == [b"foo=bar;ip=127.0.0.1; expires=x"]
    assert t.req.get(b"x-other") == b"foo=bar"
    t = Txn(headers=H("X-Path", "/old/a/b"))
    run([R("replace-header", name="x-path", match="old/(.*)", replace=r"/new/\1")], t)
    # the regex matched part of the value, yet the whole value is replaced
    assert t.req.headers == [(b"X-Path", b"/new/a/b")]


def test_replace_header_each_line_full_value_no_split():
    t = Txn(headers=H("X-L", "a1, b1", "X-L", "c2", "X-L", "zz"))
    run([R("replace-header", name="X-L", match=r"^([a-z])(\d)", replace=r"\2\1")], t)
    assert t.req.get_all(b"x-l") == [b"1a", b"2c", b"zz"]
    t = Txn(headers=H("x-l", "a1", "Other", "o", "X-L", "b2"))
    run([R("replace-header", name="X-L", match=r"(\d)", replace=r"n\1")], t)
    # in place: positions and name spellings are kept
    assert t.req.headers == [(b"x-l", b"n1"), (b"Other", b"o"), (b"X-L", b"n2")]
    t = Txn(headers=H("X-L", "nothing"))
    before = list(t.req.headers)
    run([R("replace-header", name="X-L", match=r"\d", replace="x")], t)
    assert t.req.headers == before


def test_replace_path():
    t = Txn(b"/foo/bar?x=1")
    run([R("replace-path", match="^/foo/(.*)", replace=r"/\1")], t)
    assert (t.req.target, t.req.path, t.req.query) == (b"/bar?x=1", b"/bar", b"x=1")
    t = Txn(b"/a")
    run([R("replace-path", match="(.*)", replace=r"/prefix\1")], t)
    assert t.req.target == b"/prefix/a"
    t = Txn(b"/x/foo/bar")
    run([R("replace-path", match="/foo/(.*)", replace=r"/\1")], t)
    assert t.req.target == b"/bar"      # whole path replaced, as in HAProxy
    t = Txn(b"/nomatch?q")
    run([R("replace-path", match="^/foo", replace="/x")], t)
    assert t.req.target == b"/nomatch?q"


def test_set_path():
    t = Txn(b"/old?x=1")
    run([R("set-path", value="/new")], t)
    assert (t.req.target, t.req.path, t.req.query) == (b"/new?x=1", b"/new", b"x=1")
    t = Txn(b"/a/b")
    run([R("set-path", value="/v2%[path]")], t)
    assert t.req.target == b"/v2/a/b"
    t = Txn(b"http://h/a?q")
    run([R("set-path", value="/z")], t)
    assert t.req.target == b"http://h/z?q"


def test_set_query():
    t = Txn(b"/p?old=1")
    run([R("set-query", value="new=2")], t)
    assert (t.req.target, t.req.query) == (b"/p?new=2", b"new=2")
    t = Txn(b"/p")
    run([R("set-query", value="a=1")], t)
    assert t.req.target == b"/p?a=1"
    t = Txn(b"/p")
    run([R("set-query", value="")], t)
    assert t.req.target == b"/p"             # no '?' added for an empty query
    t = Txn(b"/p?x")
    run([R("set-query", value="")], t)
    assert t.req.target == b"/p?"            # an existing '?' is kept
    t = Txn(b"/p?a=1")
    run([R("set-query", value="%[query]&b=2")], t)
    assert t.req.target == b"/p?a=1&b=2"


def test_target_edits_encode_unsafe_bytes():
    t = Txn(b"/a", headers=H("X-P", "b c#d"))
    run([R("set-path", value="/x/%[hdr(x-p)]")], t)
    assert t.req.target == b"/x/b%20c%23d"
    run([R("set-query", value="q=%[hdr(x-p)]")], t)
    assert t.req.target == b"/x/b%20c%23d?q=b%20c%23d"
    t = Txn(b"/a", headers=H("X-P", "\u00e9\t"))
    run([R("replace-path", match="^/(.*)", replace=r"/\1/%[req.hdr(x-p)]")], t)
    assert t.req.target == b"/a/%C3%A9%09"       # H() encodes UTF-8


def test_actions_run_in_order():
    t = Txn(b"/api/x")
    v = run([R("set-path", value="/internal"), R("deny", "{ path_beg /api }"),
             R("set-header", name="X-Seen", value="%[path]")], t)
    assert v is None
    assert t.req.get(b"x-seen") == b"/internal"


def test_rule_compile_errors_name_the_line():
    with pytest.raises(RuleError, match=r"deny rule \(line 12\): .*unknown ACL 'nope'"):
        compile_request_rules([R("deny", "nope", line=12)], {})
    with pytest.raises(RuleError, match=r"set-header rule \(line 3\): .*unknown fetch 'nosuch'"):
        compile_request_rules([R("set-header", name="X", value="%[nosuch]", line=3)], {})
    with pytest.raises(RuleError, match=r"replace-path rule \(line 4\): .*bad regex"):
        compile_request_rules([R("replace-path", match="(", replace="x", line=4)], {})
    with pytest.raises(RuleError, match=r"refers to \\2"):
        compile_request_rules([R("replace-path", match="(a)", replace=r"\2")], {})
    with pytest.raises(RuleError, match="unknown http_request action 'no-such-action'"):
        compile_request_rules([R("no-such-action")], {})
    with pytest.raises(RuleError, match="missing param 'name'"):
        compile_request_rules([R("set-header", value="x")], {})


def test_never_true_rules_are_dropped():
    assert compile_request_rules([R("deny", "FALSE")], {}) is rules.no_rules


# ---------------------------------------------------------------- response actions

def resp_run(rule_list, txn, acls=ACLS):
    return compile_response_rules(rule_list, compile_acls(acls))(txn)


def test_response_header_actions():
    t = Txn(resp=Resp(headers=H("Server", "apache", "X-Powered-By", "php", "Set-Cookie", "a=1")))
    assert resp_run([R("del-header", name="X-Powered-By"),
                     R("set-header", name="Server", value="farm"),
                     R("add-header", name="Set-Cookie", value="b=2"),
                     R("replace-header", name="Set-Cookie", match="^(a=1)$",
                       replace=r"\1; Secure")], t) is None
    assert t.resp.get_all(b"server") == [b"farm"]
    assert t.resp.get(b"x-powered-by") is None
    assert t.resp.get_all(b"set-cookie") == [b"a=1; Secure", b"b=2"]
    assert t.req.headers == []


def test_response_conditions_read_the_response():
    rule_list = [R("set-header", "{ hdr_sub(content-type) html } || { status 404 }",
                   name="X-Frame-Options", value="DENY")]
    t = Txn(headers=H("Content-Type", "text/html"), resp=Resp(headers=H("Content-Type", "image/png")))
    resp_run(rule_list, t)
    assert t.resp.get(b"x-frame-options") is None
    t = Txn(resp=Resp(headers=H("Content-Type", "text/html")))
    resp_run(rule_list, t)
    assert t.resp.get(b"x-frame-options") == b"DENY"
    t = Txn(resp=Resp(404))
    resp_run(rule_list, t)
    assert t.resp.get(b"x-frame-options") == b"DENY"


def test_response_named_acl_uses_response_headers():
    rule_list = [R("set-header", "ctype_html", name="X-Html", value="1")]
    t = Txn(headers=H("Content-Type", "text/html"), resp=Resp(headers=H("Content-Type", "text/plain")))
    resp_run(rule_list, t)
    assert t.resp.get(b"x-html") is None
    t = Txn(resp=Resp(headers=H("Content-Type", "text/html")))
    resp_run(rule_list, t)
    assert t.resp.get(b"x-html") == b"1"


def test_response_can_use_request_fetches():
    rule_list = [R("set-header", "api", name="Cache-Control", value="no-store")]
    t = Txn(b"/api/x", resp=Resp())
    resp_run(rule_list, t)
    assert t.resp.get(b"cache-control") == b"no-store"


def test_set_status():
    t = Txn(resp=Resp(200, b"OK"))
    resp_run([R("set-status", status=503)], t)
    assert (t.resp.status, t.resp.reason) == (503, b"Service Unavailable")
    resp_run([R("set-status", status=299, reason="Fine")], t)
    assert (t.resp.status, t.resp.reason) == (299, b"Fine")
    resp_run([R("set-status", status=299)], t)
    assert t.resp.reason == b""


def test_response_allow_stops():
    t = Txn(resp=Resp())
    resp_run([R("allow", "TRUE"), R("set-header", name="X", value="1")], t)
    assert t.resp.get(b"x") is None


def test_response_rejects_request_only_actions():
    with pytest.raises(RuleError, match="unknown http_response action 'deny'"):
        compile_response_rules([R("deny")], {})


# ---------------------------------------------------------------- tracing (farm explain)

class Recorder(rules.Tracer):
    def __init__(self):
        self.events = []

    def acl(self, label, negated, samples, result):
        self.events.append(("acl", label, negated, [(s.text, v) for s, v in samples], result))

    def rule(self, rule, fired, outcome):
        self.events.append(("rule", rule.line, fired, outcome))

    def use_backend(self, entry, matched):
        self.events.append(("use_backend", entry.backend, matched))


TRACE_ACLS = [Acl("api", ("path_beg /api/",)), Acl("internal", ("src 10.0.0.0/8", "src ::1")),
              Acl("multi", ("hdr(x-a) -m found",))]
TRACE_RULES = [
    Rule("deny", (("status", 403),), Condition("{ path_beg /admin } !internal"), line=1),
    Rule("set-header", (("name", "X-Seen"), ("value", "1")), None, line=2),
    Rule("return", (("status", 200),), Condition("{ hdr(x-a) -i ping pong } || TRUE", negate=True),
         line=3),
]
TRACE_ROUTES = [UseBackend("api", Condition("api"), line=4), UseBackend("all", None, line=5)]


@pytest.mark.parametrize("target,src,headers", [
    (b"/admin", "192.0.2.1", []), (b"/admin", "10.1.1.1", []), (b"/api/x", "::1", []),
    (b"/x", "127.0.0.1", [(b"X-A", b"Ping"), (b"x-a", b"b,pong")]), (b"/x?q", "10.0.0.1", []),
])
def test_traced_compilation_decides_as_the_plain_one(target, src, headers):
    plain, traced = Recorder(), Recorder()
    results = []
    for tracer in (None, traced):
        acls = compile_acls(TRACE_ACLS)
        t = Txn(target, headers=headers, src=src)
        run = compile_request_rules(TRACE_RULES, acls, tracer=tracer)
        choose = compile_use_backend(TRACE_ROUTES, "dflt", acls, tracer=tracer)
        results.append((run(t), choose(t), t.req.headers))
    assert results[0] == results[1]
    assert plain.events == []


def test_trace_reports_acl_values_rules_and_routes():
    r = Recorder()
    acls = compile_acls(TRACE_ACLS)
    t = Txn(b"/admin", src="192.0.2.1", headers=[(b"X-A", b"1, 2")])
    verdict = compile_request_rules(TRACE_RULES, acls, tracer=r)(t)
    assert verdict == Verdict("deny", 403, [], None)
    assert r.events == [
        ("acl", "{ path_beg /admin }", False, [("path_beg /admin", [b"/admin"])], True),
        ("acl", "internal", True, [("src 10.0.0.0/8", ["192.0.2.1"]), ("src ::1", ["192.0.2.1"])],
         False),
        ("rule", 1, True, Verdict("deny", 403, [], None)),
    ]
    r.events.clear()
    t = Txn(b"/api/v1?x", headers=[(b"X-A", b"1, 2")])
    assert compile_request_rules(TRACE_RULES, acls, tracer=r)(t) is None
    assert [e[:3] for e in r.events if e[0] == "rule"] == [
        ("rule", 1, False), ("rule", 2, True), ("rule", 3, False)]
    assert ("rule", 2, True, "continue") in r.events
    # hdr() values as the matcher sees them: split on commas; a predefined ACL has its line
    assert ("acl", "{ hdr(x-a) -i ping pong }", False, [("hdr(x-a) -i ping pong", [b"1", b"2"])],
            False) in r.events
    assert ("acl", "TRUE", False, [("always_true", [])], True) in r.events
    r.events.clear()
    assert compile_use_backend(TRACE_ROUTES, "dflt", acls, tracer=r)(t) == "api"
    assert r.events == [("acl", "api", False, [("path_beg /api/", [b"/api/v1"])], True),
                        ("use_backend", "api", True)]
    r.events.clear()
    assert compile_use_backend(TRACE_ROUTES, "dflt", acls, tracer=r)(Txn(b"/")) == "all"
    assert r.events[-2:] == [("use_backend", "api", False), ("use_backend", "all", True)]


def test_acl_sample_gives_the_fetched_values():
    def values(line, txn):
        return rules.acl_sample(parse_acl(line))(txn)
    t = Txn(b"/p?a=1&a=2", headers=[(b"Cookie", b"s=x; t=y")], src="10.0.0.1", dst_port=8080)
    assert values("path_beg /", t) == [b"/p"]
    assert values("query -m found", t) == [b"a=1&a=2"]
    assert values("query -m found", Txn(b"/p")) == []       # no '?': no query sample
    assert values("url_param(a) 1", t) == [b"1", b"2"]
    assert values("cook(t) y", t) == [b"y"]
    assert values("dst_port 80", t) == [8080]
    assert values("src 10.0.0.0/8", t) == ["10.0.0.1"]
    assert values("hdr_cnt(cookie) gt 0", t) == [1]
    assert values("always_true", t) == []


def test_without_a_tracer_nothing_is_wrapped():
    acls = compile_acls(TRACE_ACLS)
    assert compile_condition("api", acls) is acls["api"]
    assert compile_request_rules([], acls) is rules.no_rules
    assert compile_request_rules([], acls, tracer=Recorder()) is rules.no_rules
