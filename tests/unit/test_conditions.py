"""farm/conditions.py: tokenizing, ACL lines, conditions, log-format and
replacement strings, and the loader-facing check_* functions."""

import ipaddress

import pytest

from farm.conditions import (
    PREDEFINED_ACLS, ConditionError, Sample, Term, check_acl, check_condition,
    check_format, check_replacement, parse_acl, parse_condition, parse_format,
    parse_replacement, referenced_acls, tokenize,
)


# ---------------------------------------------------------------- tokenize

@pytest.mark.parametrize("text, words", [
    ("path_beg /a /b", ["path_beg", "/a", "/b"]),
    ("  hdr(host)\t-i   x  ", ["hdr(host)", "-i", "x"]),
    ('hdr(x) "a b" c', ["hdr(x)", "a b", "c"]),
    ("hdr(x) 'a \"b' c", ["hdr(x)", 'a "b', "c"]),
    ('hdr(x) ""', ["hdr(x)", ""]),
    ('hdr(x) a"b c"d', ["hdr(x)", "ab cd"]),
    (r"hdr(x) a\ b", ["hdr(x)", "a b"]),
    (r'hdr(x) "a\"b"', ["hdr(x)", 'a"b']),
    (r"path_reg ^/img/.*\.png$", ["path_reg", r"^/img/.*\.png$"]),
    (r"path_reg \d+ \\", ["path_reg", r"\d+", "\\"]),
    (r"hdr(x) 'a\ b'", ["hdr(x)", r"a\ b"]),
    ("", []),
])
def test_tokenize(text, words):
    assert tokenize(text) == words


def test_tokenize_unclosed_quote():
    with pytest.raises(ConditionError, match='unclosed " quote'):
        tokenize('hdr(x) "abc')


# ---------------------------------------------------------------- ACL lines

@pytest.mark.parametrize("text, base, arg, kind, method", [
    ("path /a", "path", None, "str", "str"),
    ("path_beg /a", "path", None, "str", "beg"),
    ("path_end .png", "path", None, "str", "end"),
    ("path_reg ^/a", "path", None, "str", "reg"),
    ("path_sub x", "path", None, "str", "sub"),
    ("path_dir api", "path", None, "str", "dir"),
    ("path_dom x", "path", None, "str", "dom"),
    ("path_len gt 3", "path", None, "str", "len"),
    ("url /a?b", "url", None, "str", "str"),
    ("url_beg /a", "url", None, "str", "beg"),
    ("url_sub a", "url", None, "str", "sub"),
    ("url_reg a", "url", None, "str", "reg"),
    ("url_param(id) 1", "url_param", "id", "str", "str"),
    ("urlp(ID) 1", "url_param", "ID", "str", "str"),
    ("query a=1", "query", None, "str", "str"),
    ("method GET HEAD", "method", None, "str", "str"),
    ("req.ver 1.1", "req.ver", None, "str", "str"),
    ("hdr(Host) a", "hdr", "host", "str", "str"),
    ("hdr_beg(host) a", "hdr", "host", "str", "beg"),
    ("hdr_end(host) a", "hdr", "host", "str", "end"),
    ("hdr_dom(host) a", "hdr", "host", "str", "dom"),
    ("hdr_sub(host) a", "hdr", "host", "str", "sub"),
    ("hdr_reg(host) a", "hdr", "host", "str", "reg"),
    ("hdr_dir(x) a", "hdr", "x", "str", "dir"),
    ("hdr_len(x) 3", "hdr", "x", "str", "len"),
    ("hdr_cnt(X-Forwarded-For) gt 1", "hdr_cnt", "x-forwarded-for", "int", "int"),
    ("req.hdr(x) a", "req.hdr", "x", "str", "str"),
    ("res.hdr(x) a", "res.hdr", "x", "str", "str"),
    ("fhdr(x) a", "fhdr", "x", "str", "str"),
    ("req.cook(session) abc", "req.cook", "session", "str", "str"),
    ("cook(Session) abc", "req.cook", "Session", "str", "str"),
    ("cook_beg(s) abc", "req.cook", "s", "str", "beg"),
    ("cook_cnt(s) 1", "req.cook_cnt", "s", "int", "int"),
    ("src 10.0.0.0/8", "src", None, "ip", "ip"),
    ("src_port 1024:", "src_port", None, "int", "int"),
    ("dst_port 80 8080", "dst_port", None, "int", "int"),
    ("status 404", "status", None, "int", "int"),
    ("always_true", "always_true", None, "bool", "bool"),
])
def test_fetches(text, base, arg, kind, method):
    spec = parse_acl(text)
    assert (spec.base, spec.arg, spec.kind, spec.method) == (base, arg, kind, method)
    assert spec.text == text


def test_values_kept_as_written():
    spec = parse_acl('path_beg /api/ "/v 2/"')
    assert spec.values == ("/api/", "/v 2/")
    assert not spec.icase


def test_flag_i():
    spec = parse_acl("hdr(host) -i Example.com www.example.com")
    assert spec.icase and spec.values == ("Example.com", "www.example.com")


def test_flag_m_overrides_implied_method():
    assert parse_acl("path_beg -m end .png").method == "end"
    assert parse_acl("req.cook(session) -m str abc").method == "str"
    assert parse_acl("hdr(x) -m sub abc").method == "sub"
    for m in ("str", "beg", "end", "sub", "reg", "dom", "dir"):
        assert parse_acl(f"path -m {m} x").method == m
    assert parse_acl("path -m len 3").ranges == ((3, 3),)


def test_flag_m_found():
    spec = parse_acl("url_param(id) -m found")
    assert spec.method == "found" and spec.values == ()
    assert parse_acl("src -m found").method == "found"
    assert parse_acl("hdr_cnt(x) -m found").method == "found"


def test_flags_combined_and_double_dash():
    spec = parse_acl("hdr(x) -i -m beg -- -abc -i")
    assert spec.icase and spec.method == "beg" and spec.values == ("-abc", "-i")
    assert parse_acl("path -n /a").values == ("/a",)


def test_negative_number_is_a_value():
    assert parse_acl("hdr_cnt(x) lt -1").ranges == ((None, -2),)
    assert parse_acl("dst_port -5").ranges == ((-5, -5),)


def test_integer_patterns():
    assert parse_acl("dst_port 80 8080").ranges == ((80, 80), (8080, 8080))
    assert parse_acl("dst_port 1:1024 :10 60000:").ranges == ((1, 1024), (None, 10), (60000, None))
    assert parse_acl("hdr_cnt(x) gt 1").ranges == ((2, None),)
    assert parse_acl("hdr_cnt(x) ge 1").ranges == ((1, None),)
    assert parse_acl("hdr_cnt(x) lt 3").ranges == ((None, 2),)
    assert parse_acl("hdr_cnt(x) le 3").ranges == ((None, 3),)
    assert parse_acl("hdr_cnt(x) eq 3").ranges == ((3, 3),)
    # an operator applies to every following value, until the next one
    assert parse_acl("dst_port lt 10 20 eq 50").ranges == ((None, 9), (None, 19), (50, 50))


@pytest.mark.parametrize("text, message", [
    ("dst_port http", "dst_port: 'http' is not an integer"),
    ("dst_port gt", "operator 'gt' needs a number after it"),
    ("dst_port 10:5", "empty range '10:5'"),
    ("dst_port :", "range ':' needs at least one bound"),
    ("dst_port gt 1:5", "a range ('1:5') cannot follow operator 'gt'"),
    ("path_len x", "path_len: 'x' is not an integer"),
])
def test_integer_pattern_errors(text, message):
    with pytest.raises(ConditionError) as e:
        parse_acl(text)
    assert message in str(e.value)


def test_src_networks():
    spec = parse_acl("src 10.0.0.0/8 127.0.0.1 ::1/128 10.1.2.3/16 192.168.0.0/255.255.0.0")
    assert spec.networks == (
        ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"), ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("192.168.0.0/16"))


def test_src_rejects_names():
    with pytest.raises(ConditionError, match="'localhost' is not an IPv4/IPv6 address or network"):
        parse_acl("src localhost")
    with pytest.raises(ConditionError, match="'10.0.0.0/33'"):
        parse_acl("src 10.0.0.0/33")


def test_bad_regex_is_reported():
    with pytest.raises(ConditionError, match=r"bad regex '\(\[a-z\]': "):
        parse_acl("path_reg ([a-z]")
    with pytest.raises(ConditionError, match="bad regex"):
        parse_acl("hdr(x) -m reg *a")


@pytest.mark.parametrize("text, message", [
    ("pth_beg /a", "unknown fetch 'pth_beg'; did you mean 'path_beg'?"),
    ("nosuch x", "unknown fetch 'nosuch'"),
    ("hdr a", "hdr needs a header name: hdr(NAME)"),
    ("hdr() a", "hdr needs a header name: hdr(NAME)"),
    ("hdr(host,1) a", "only one argument (a header name) is supported"),
    ("hdr(ho st) a", "missing ')'"),
    ("hdr(a:b) a", "hdr(a:b): invalid header name"),
    ("url_param x", "url_param needs a parameter name"),
    ("cook a", "cook needs a cookie name"),
    ("path(x) /a", "path takes no argument"),
    ("hdr(x a", "missing ')'"),
    ("path_beg", "path_beg: no values to match (add values, or use '-m found')"),
    ("path -i", "path: no values to match"),
    ("url_param(id) -m found 1", "'-m found' takes no values"),
    ("path -m", "'-m' needs a method"),
    ("path -m begin /a", "unknown match method '-m begin'"),
    ("path -m bin /a", "'-m bin' does not apply to this string fetch"),
    ("path -m nope /a", "unknown match method '-m nope'"),
    ("path -x /a", "unknown flag '-x'"),
    ("path -f /etc/list", "flag '-f' is not supported"),
    ("dst_port -m str 80", "'-m str' does not apply to this integer fetch"),
    ("src -m beg 10.", "'-m beg' does not apply to this address fetch"),
    ("path -m int 3", "'-m int' does not apply to this string fetch"),
    ("always_true 1", "always_true is a boolean fetch: it takes no flags or values"),
    ("", "empty ACL"),
    ("path_beg \u20ac", "outside Latin-1"),
])
def test_acl_errors(text, message):
    with pytest.raises(ConditionError) as e:
        parse_acl(text)
    assert message in str(e.value)
    assert check_acl(text) == [str(e.value)]


def test_check_acl_ok():
    assert check_acl("hdr_dom(host) -i example.com") == []
    assert check_acl(r"path_reg ^/img/.*\.png$") == []


def test_suggested_method():
    with pytest.raises(ConditionError, match="did you mean 'sub'"):
        parse_acl("path -m sbu x")


def test_predefined_acls_parse():
    for name, text in PREDEFINED_ACLS.items():
        assert check_acl(text) == [], name


# ---------------------------------------------------------------- conditions

def names(spec):
    """The condition as [[('!'?)name or {fetch}, ...], ...] for easy asserts."""
    return [[("!" if t.negate else "") + (t.name if t.name else "{" + t.acl.text + "}")
             for t in group] for group in spec.groups]


@pytest.mark.parametrize("text, expected", [
    ("api", [["api"]]),
    ("!internal", [["!internal"]]),
    ("! internal", [["!internal"]]),
    ("!!internal", [["internal"]]),
    ("a b c", [["a", "b", "c"]]),
    ("a || b", [["a"], ["b"]]),
    ("a or b OR c", [["a"], ["b"], ["c"]]),
    ("a !b || c d", [["a", "!b"], ["c", "d"]]),
    ("{ path_beg /admin } !internal", [["{path_beg /admin}", "!internal"]]),
    ("!{ src 10.0.0.0/8 } || { method POST }", [["!{src 10.0.0.0/8}"], ["{method POST}"]]),
    ("! { path / }", [["!{path /}"]]),
    ("METH_GET HTTP_1.1 a:b.c-d", [["METH_GET", "HTTP_1.1", "a:b.c-d"]]),
])
def test_condition_structure(text, expected):
    assert names(parse_condition(text)) == expected


def test_anonymous_acl_is_parsed():
    spec = parse_condition('{ hdr(host) -i "a b" c }')
    term = spec.groups[0][0]
    assert isinstance(term, Term) and term.name is None
    assert term.acl.base == "hdr" and term.acl.icase and term.acl.values == ("a b", "c")


@pytest.mark.parametrize("text, message", [
    ("", "empty condition"),
    ("   ", "empty condition"),
    ("a ||", "'||' at the end of the condition"),
    ("|| a", "'||' with no term before it"),
    ("a || || b", "'||' with no term before it"),
    ("a !", "'!' at the end of the condition"),
    ("a ! || b", "'!' before '||'"),
    ("{ path_beg /a", "'{' without a closing '}'"),
    ("{path_beg /a}", "put a space after '{'"),
    ("{ path_beg /a}", "'{' without a closing '}'"),
    ("a }", "'}' without a matching '{'"),
    ("{ }", "empty anonymous ACL"),
    ("a/b", "invalid ACL name 'a/b'"),
    ("{ pth /a }", "in '{ pth /a }': unknown fetch 'pth'; did you mean 'path'?"),
    ("{ path_reg ( }", "in '{ path_reg ( }': bad regex '('"),
    ("{ src 10.0.0.300 }", "'10.0.0.300' is not an IPv4/IPv6 address"),
    ('a "b', 'unclosed " quote'),
])
def test_condition_errors(text, message):
    with pytest.raises(ConditionError) as e:
        parse_condition(text)
    assert message in str(e.value)
    assert any(message in m for m in check_condition(text, {"a", "b"}))


def test_check_condition_unknown_acls():
    assert check_condition("api || !internal", {"api", "internal"}) == []
    assert check_condition("apii", {"api"}) == ["unknown ACL 'apii'; did you mean 'api'?"]
    assert check_condition("x y", set()) == ["unknown ACL 'x'", "unknown ACL 'y'"]


def test_check_condition_knows_predefined():
    assert check_condition("METH_GET LOCALHOST || TRUE || !FALSE", set()) == []
    assert check_condition("METH_GTE", set()) == ["unknown ACL 'METH_GTE'; did you mean 'METH_GET'?"]


def test_check_condition_reports_every_problem():
    errors = check_condition("{ pth /a } nope || { src x }", {"a"})
    assert errors == [
        "in '{ pth /a }': unknown fetch 'pth'; did you mean 'path'?",
        "in '{ src x }': src: 'x' is not an IPv4/IPv6 address or network (host names are not resolved)",
        "unknown ACL 'nope'",
    ]


def test_referenced_acls():
    assert referenced_acls("a !b || { path / } c METH_GET") == {"a", "b", "c", "METH_GET"}
    assert referenced_acls(parse_condition("x")) == {"x"}

    class Cond:
        text = "p || q"
    assert referenced_acls(Cond()) == {"p", "q"}


# ---------------------------------------------------------------- log-format

def test_format_literal_only():
    assert parse_format("plain text") == ("plain text",)
    assert parse_format("100%% sure") == ("100% sure",)
    assert parse_format("50% off") == ("50% off",)   # unknown % kept
    assert parse_format("") == ()


def test_format_samples():
    assert parse_format("%[src]") == (Sample("src", None),)
    assert parse_format("a%[hdr(Host),lower]b%[dst_port]") == (
        "a", Sample("hdr", "host", ("lower",)), "b", Sample("dst_port", None))
    assert parse_format("%[req.hdr(x), upper ]") == (Sample("req.hdr", "x", ("upper",)),)
    assert parse_format("%[url_param(id)]%[cook(s)]%[path]") == (
        Sample("url_param", "id"), Sample("req.cook", "s"), Sample("path", None))
    assert parse_format("%ci:%cp -> %fp") == (
        Sample("src", None), ":", Sample("src_port", None), " -> ", Sample("dst_port", None))


@pytest.mark.parametrize("text, message", [
    ("%[src", "unclosed '%['"),
    ("%[nosuch]", "unknown fetch 'nosuch'"),
    ("%[path_beg]", "'path_beg' is an ACL keyword, not a sample fetch (use 'path')"),
    ("%[hdr]", "hdr needs a header name"),
    ("%[src,ipmask(24)]", "unsupported converter 'ipmask(24)'"),
    ("%[always_true]", "has no value to insert"),
])
def test_format_errors(text, message):
    with pytest.raises(ConditionError) as e:
        parse_format(text)
    assert message in str(e.value)
    assert check_format(text) == [str(e.value)]
    assert check_format("ok %[src]") == []


# ---------------------------------------------------------------- replacement

def test_replacement_parts():
    assert parse_replacement(r"/foo\1") == ("/foo", 1)
    assert parse_replacement(r"\0-\2x") == (0, "-", 2, "x")
    assert parse_replacement(r"a\x41\\b\%[src]") == ("aA\\b%[src]",)
    assert parse_replacement(r"\1%[src]") == (1, Sample("src", None))


def test_replacement_errors():
    with pytest.raises(ConditionError, match="ends with a lone backslash"):
        parse_replacement("abc\\")
    with pytest.raises(ConditionError, match="needs two hex digits"):
        parse_replacement(r"\xZ1")
    with pytest.raises(ConditionError, match=r"'\\x0A' is a control character"):
        parse_replacement(r"a\x0Ab")
    assert parse_replacement(r"a\x09b") == ("a\tb",)
    with pytest.raises(ConditionError, match=r"refers to \\2 but the regex has 1 group"):
        parse_replacement(r"\2", groups=1)
    assert check_replacement(r"/\1", "^/foo/(.*)") == []
    assert check_replacement(r"/\2", "^/foo/(.*)") == [r"replacement refers to \2 but the regex has 1 group"]
    assert check_replacement("x", "(")[0].startswith("bad regex '('")


def test_backends_fetched_names_nbsrv_backends_and_skips_table_lookups():
    """The loader checks the backends that nbsrv() names; a stick-table
    lookup in the same condition is not a fetch of FETCHES and is skipped."""
    from farm.conditions import backends_fetched
    assert backends_fetched("{ nbsrv(app) lt 1 }") == {"app"}
    assert backends_fetched("{ req.hdr(x-api-key),table_http_req_rate(api) gt 10 }") == set()
    assert backends_fetched("nbsrv(web) lt 2", acl_line=True) == {"web"}
