"""ACL matchers, conditions, http_request / http_response actions and
use_backend routing: compiled once per config load into plain closures,
evaluated per request.

Parsing and validation live in farm/conditions.py (shared with the loader);
this module turns the parsed specs into callables. Everything that can be
decided at load time is: patterns are encoded (latin-1) and lowercased for
-i, exact matches become frozensets, prefixes/suffixes tuples (bytes
.startswith accepts a tuple), regexes are compiled, CIDRs become integer
(mask, {networks}) groups, named ACLs are resolved to their matcher, and a
rule list without rules is a constant function.

The transaction ("txn") the callables read, duck-typed:

- txn.req: method, target, path, query, version (bytes), headers
  (list of (name, value) bytes), get(name_lower) -> bytes | None,
  get_all(name_lower) -> list[bytes], set(name, value), add(name, value),
  remove(name_lower) -> int. query is the part after the first '?'
  (without it). Assigning req.target must keep path and query consistent.
  replace-header edits the headers list in place (same positions and
  spellings), so the message must not keep a separate copy of values.
- txn.src (client IP as text, "127.0.0.1", "::1", "::ffff:10.0.0.1"),
  txn.src_port, txn.dst_port (int); optionally txn.dst (the local IP the
  client connected to, as text; without it dst is absent).
- txn.resp (http_response rules; may be missing or None before): status
  (int), reason (bytes), headers and the same helpers.
- txn.conn.t (optional): the client connection's transport, which the
  ssl_fc* / ssl_c_* fetches read when its `secure` is true
  (workers/transport.py TlsTransport); without it they see a plain
  connection.
- Optionally txn._rules_src (initialise it to None): the src matchers
  cache the parsed client address there. Without it everything still
  works: a per-worker dict keyed by the address text serves instead.

Tracing (for `farm explain` only): compile_condition, compile_request_rules
and compile_use_backend take an optional tracer; with one, every condition
term, rule and use_backend entry is wrapped to report what it evaluated
(see Tracer). Without one (the workers) the compiled code is exactly the
untraced one: tracing costs nothing on the request path.

Phases: compile for "request" (http_request rules, use_backend) or
"response" (http_response rules). Like HAProxy, hdr()/fhdr()/hdr_cnt() read
the request in the first and the response in the second; req.hdr() always
reads the request (HAProxy refuses it in responses; the request is still at
hand here), res.hdr() and status always the response.
"""

from __future__ import annotations

import re
import socket
from http import HTTPStatus
from operator import attrgetter
from typing import Callable, Mapping, Sequence

from farm import model
from farm.conditions import (
    PP_TLV_NAMES, PREDEFINED_ACLS, AclSpec, CondSpec, ConditionError, Sample, is_stick_fetch,
    parse_acl, parse_condition, parse_format, parse_key_sample, parse_replacement,
)
from workers import tables as sticks
from workers.http1 import _check_field
from workers.lazyhead import has_field, is_lazy, last_value, path_ends, path_starts, value_ok

__all__ = [
    "RuleError", "Verdict", "AclTable", "Tracer", "acl_sample", "compile_acls",
    "compile_acl_spec", "compile_condition", "compile_format", "compile_request_rules",
    "compile_response_rules", "compile_use_backend", "no_rules",
]

Matcher = Callable[[object], bool]


class RuleError(ValueError):
    """A rule, ACL or condition that cannot be compiled (the loader should
    have caught it: seeing this means config validation let it through)."""


class Verdict:
    """What an http_request rule decided instead of forwarding.

    kind is "deny", "redirect", "return", "reject" (close without an
    answer) or "tarpit" (answer status after delay seconds); status the HTTP status; headers
    a list of (name, value) bytes to send (never Content-Length nor
    Connection: the session frames the response); body bytes, or None for
    a deny without a body, which the session renders as its error page
    (errorfile) for that status.
    """

    __slots__ = ("kind", "status", "headers", "body", "delay")

    def __init__(self, kind: str, status: int, headers: list | None = None,
                 body: bytes | None = b"") -> None:
        self.delay = 0.0            # tarpit: seconds to hold the request first
        self.kind = kind
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body

    def __repr__(self) -> str:
        return f"Verdict({self.kind!r}, {self.status}, {self.headers!r}, {self.body!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Verdict) and self.kind == other.kind and self.status == other.status
                and self.headers == other.headers and self.body == other.body)


def _true(txn) -> bool:
    return True


def _false(txn) -> bool:
    return False


def no_rules(txn) -> None:
    """The compiled form of an empty rule list: does nothing. A session may
    compare against it (`if rules is not no_rules`) to skip the call."""
    return None


# ------------------------------------------------------------ client address

_V4_MAPPED = 0xFFFF << 32


def _parse_client(text: str) -> tuple[int | None, int | None]:
    """Client address text -> (IPv4 as int or None, IPv6 as int or None).

    An IPv4 client also gets its IPv4-mapped IPv6 form and an IPv4-mapped
    IPv6 client (dual-stack listener) its IPv4 form, so that a pattern of
    either family matches either spelling, as in HAProxy. Unparsable text
    (a unix socket peer) matches nothing.
    """
    try:
        if ":" in text:
            pct = text.find("%")   # scope id: fe80::1%eth0
            v6 = int.from_bytes(socket.inet_pton(socket.AF_INET6, text[:pct] if pct >= 0 else text), "big")
            return (v6 & 0xFFFFFFFF if v6 >> 32 == 0xFFFF else None), v6
        v4 = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        return v4, _V4_MAPPED | v4
    except (OSError, TypeError, ValueError):
        return None, None


# Parsed client addresses by text, shared by the transactions of a worker:
# keep-alive clients send many requests, and parsing costs ~10x a lookup.
# Bounded by clearing it when full (cheap, and the hot entries come back).
_client_cache: dict[str, tuple[int | None, int | None]] = {}
_CLIENT_CACHE_MAX = 4096


def _client_key(txn) -> tuple[int | None, int | None]:
    key = getattr(txn, "_rules_src", None)
    if key is None:
        text = txn.src
        key = _client_cache.get(text)
        if key is None:
            if len(_client_cache) >= _CLIENT_CACHE_MAX:
                _client_cache.clear()
            key = _client_cache[text] = _parse_client(text)
        try:
            txn._rules_src = key
        except AttributeError:
            pass   # a txn with __slots__ and no cache slot: the dict still serves
    return key


def _dst_key(txn) -> tuple[int | None, int | None]:
    """The parsed local address (dst) of the transaction's connection;
    (None, None) for a txn without one (farm explain's)."""
    text = getattr(txn, "dst", None)
    if text is None:
        return None, None
    key = _client_cache.get(text)
    if key is None:
        if len(_client_cache) >= _CLIENT_CACHE_MAX:
            _client_cache.clear()
        key = _client_cache[text] = _parse_client(text)
    return key


def _ip_matcher(networks, base: str = "src") -> Matcher:
    # Group networks by mask: a match is then one AND and one set lookup
    # per distinct prefix length, however many networks there are.
    by_mask: dict[int, dict[int, set[int]]] = {4: {}, 6: {}}
    for net in networks:
        bits = 32 if net.version == 4 else 128
        mask = ((1 << bits) - 1) ^ ((1 << (bits - net.prefixlen)) - 1)
        by_mask[net.version].setdefault(mask, set()).add(int(net.network_address))
    g4 = tuple((m, frozenset(s)) for m, s in by_mask[4].items())
    g6 = tuple((m, frozenset(s)) for m, s in by_mask[6].items())
    if base == "dst":
        def match_dst(txn) -> bool:
            v4, v6 = _dst_key(txn)
            return ((v4 is not None and any(v4 & m in nets for m, nets in g4))
                    or (v6 is not None and any(v6 & m in nets for m, nets in g6)))
        return match_dst

    def match(txn) -> bool:
        key = getattr(txn, "_rules_src", None)   # inlined cache hit: saves a call
        v4, v6 = key if key is not None else _client_key(txn)
        if v4 is not None:
            for mask, nets in g4:
                if v4 & mask in nets:
                    return True
        if v6 is not None:
            for mask, nets in g6:
                if v6 & mask in nets:
                    return True
        return False
    return match


# ------------------------------------------------------------ sample getters

# `int in bytes` is a memchr; `bytes in bytes` costs several times more in
# CPython 3.11 (buffer protocol), so single bytes are tested by their code
# and substrings with .find().
_COMMA = ord(",")
_QMARK = ord("?")


def _req_ver(txn) -> bytes:
    v = txn.req.version
    return v[5:] if v.startswith(b"HTTP/") else v


def _query_found(txn) -> bool:
    # HAProxy's query fetch exists as soon as there is a '?', even empty.
    return _QMARK in txn.req.target


# Single-valued string fetches, always present on an HTTP request.
_SINGLE: dict[str, Callable[[object], bytes]] = {
    "path": attrgetter("req.path"),
    "url": attrgetter("req.target"),
    "query": attrgetter("req.query"),
    "method": attrgetter("req.method"),
    "req.ver": _req_ver,
}


def _split_commas(raw: list[bytes]) -> list[bytes]:
    """hdr() semantics: every comma-separated value of every line, trimmed."""
    for v in raw:
        if _COMMA in v:
            break
    else:
        return raw   # the common case: nothing to split, no new list
    out = []
    for v in raw:
        if _COMMA in v:
            out.extend(p.strip(b" \t") for p in v.split(b","))
        else:
            out.append(v)
    return out


def _header_source(base: str, phase: str) -> str:
    """'req' or 'resp': which message a header fetch reads in this phase."""
    if base.startswith("req."):
        return "req"
    if base.startswith("res."):
        return "resp"
    return "req" if phase == "request" else "resp"


def _header_values(source: str, name: bytes, split: bool) -> Callable[[object], list[bytes]]:
    if source == "req":
        if split:
            def values(txn) -> list[bytes]:
                return _split_commas(txn.req.get_all(name))
        else:
            def values(txn) -> list[bytes]:
                return txn.req.get_all(name)
        return values

    def resp_values(txn) -> list[bytes]:
        resp = getattr(txn, "resp", None)
        if resp is None:
            return []
        raw = resp.get_all(name)
        return _split_commas(raw) if split else raw
    return resp_values


def _cookie_values(name: bytes) -> Callable[[object], list[bytes]]:
    def values(txn) -> list[bytes]:
        out = []
        for line in txn.req.get_all(b"cookie"):
            if line.find(name) < 0:
                continue   # cheap reject before splitting
            for part in line.split(b";"):
                k, eq, v = part.partition(b"=")
                if eq and k.strip(b" \t") == name:
                    out.append(v.strip(b" \t"))
        return out
    return values


def _set_cookie_values(name: bytes) -> Callable[[object], list[bytes]]:
    """res.cook(NAME): the values the response's Set-Cookie headers give
    NAME (each header sets one cookie: NAME=VALUE before the attributes)."""
    def values(txn) -> list[bytes]:
        resp = getattr(txn, "resp", None)
        if resp is None:
            return []
        out = []
        for line in resp.get_all(b"set-cookie"):
            k, eq, v = line.partition(b";")[0].partition(b"=")
            if eq and k.strip(b" \t") == name:
                out.append(v.strip(b" \t"))
        return out
    return values


def _param_values(name: bytes) -> Callable[[object], list[bytes]]:
    def values(txn) -> list[bytes]:
        q = txn.req.query
        if q.find(name) < 0:
            return []
        out = []
        for part in q.split(b"&"):
            k, _, v = part.partition(b"=")
            if k == name:
                out.append(v)   # "?id" without '=' counts, with an empty value
        return out
    return values


def _values_getter(base: str, arg: str | None, phase: str) -> Callable[[object], list[bytes]]:
    """Multi-valued string fetches -> txn -> list of values (maybe empty)."""
    name = (arg or "").encode("latin-1")
    if base in ("hdr", "req.hdr", "res.hdr"):
        return _header_values(_header_source(base, phase), name, True)
    if base in ("fhdr", "req.fhdr", "res.fhdr"):
        return _header_values(_header_source(base, phase), name, False)
    if base == "req.cook":
        return _cookie_values(name)
    if base == "res.cook":
        return _set_cookie_values(name)
    if base == "url_param":
        return _param_values(name)
    raise RuleError(f"no string fetch {base!r}")


def _resp_status(txn) -> int | None:
    resp = getattr(txn, "resp", None)
    return None if resp is None else resp.status


# ------------------------------------------------------------ TLS fetches

def _tls(txn):
    """The TLS transport of the transaction's client connection, or None
    (a plain connection, or a txn without one, as farm explain's)."""
    t = getattr(getattr(txn, "conn", None), "t", None)
    return t if t is not None and t.secure else None


def _tls_text(read: Callable) -> Callable[[object], bytes | None]:
    """A TLS string fact (read(transport) -> str | None) as bytes, None
    when absent (a plain connection, no SNI, no client certificate...)."""
    def get(txn) -> bytes | None:
        t = _tls(txn)
        if t is None:
            return None
        v = read(t)
        return None if v is None else v.encode("utf-8", "replace")
    return get


def _tls_string_getter(base: str, arg: str | None) -> Callable[[object], bytes | None]:
    if base.startswith("fc_pp_"):
        return _pp_getter(base, arg)
    if base == "ssl_c_s_dn":
        return _tls_text(lambda t: t.subject_dn(arg))
    if base == "ssl_c_i_dn":
        return _tls_text(lambda t: t.issuer_dn(arg))
    return _tls_text(_TLS_STRINGS[base])


_TLS_STRINGS = {
    "ssl_fc_sni": attrgetter("sni"),
    "ssl_fc_protocol": attrgetter("protocol"),
    "ssl_fc_cipher": attrgetter("cipher"),
    "ssl_fc_alpn": attrgetter("alpn"),
    "ssl_c_s_dn": None,      # with an optional entry argument: _tls_string_getter
    "ssl_c_i_dn": None,
    # not TLS but the same kind of connection fact, absent when not there:
    # the PROXY header's TLVs (_pp_getter)
    "fc_pp_authority": None,
    "fc_pp_unique_id": None,
    "fc_pp_tlv": None,
}


def _pp_getter(base: str, arg: str | None) -> Callable[[object], bytes | None]:
    """fc_pp_* -> txn -> the TLV's value from the client connection's PROXY
    header (txn.conn.t.proxy, workers/proxyproto.py), None when absent.
    fc_pp_tlv(N) gives the last TLV of type N; an SSL sub-TLV name gives
    that text from the SSL TLV."""
    if base == "fc_pp_authority":
        wanted = 0x02
    elif base == "fc_pp_unique_id":
        wanted = 0x05
    else:
        wanted = PP_TLV_NAMES.get(arg) if arg in PP_TLV_NAMES else int(arg)

    def get(txn) -> bytes | None:
        t = getattr(getattr(txn, "conn", None), "t", None)
        pp = getattr(t, "proxy", None)
        if pp is None:
            return None
        if 0x21 <= wanted <= 0x25:
            ssl = pp.ssl
            if ssl is None:
                return None
            v = getattr(ssl, _SSL_SUB[wanted])
            return None if v is None else v.encode("utf-8", "replace")
        found = None
        for typ, value in pp.tlvs:
            if typ == wanted:
                found = value
        return found
    return get


_SSL_SUB = {0x21: "version", 0x22: "cn", 0x23: "cipher", 0x24: "sig_alg", 0x25: "key_alg"}


def _tls_binary(name: str) -> Callable[[object], bytes | None]:
    read = attrgetter(name)

    def get(txn) -> bytes | None:
        t = _tls(txn)
        return None if t is None else read(t)
    return get


_TLS_BINARY = {"ssl_c_serial": _tls_binary("serial"), "ssl_c_sha1": _tls_binary("sha1")}


def _tls_flag(read: Callable) -> Matcher:
    def flag(txn) -> bool:
        t = _tls(txn)
        return t is not None and bool(read(t))
    return flag


_TLS_BOOLS: dict[str, Matcher] = {
    "ssl_fc": lambda txn: _tls(txn) is not None,
    "ssl_fc_session_reused": _tls_flag(attrgetter("session_reused")),
    "ssl_c_used": _tls_flag(attrgetter("client_cert")),
}


def _ssl_c_verify(txn) -> int | None:
    t = _tls(txn)
    return None if t is None else t.verify_result


def _int_getter(base: str, arg: str | None, phase: str) -> Callable[[object], int | None]:
    """Integer fetches -> txn -> int, or None when the sample is absent."""
    if base in ("src_port", "dst_port"):
        return attrgetter(base)
    if base == "status":
        return _resp_status
    if base == "ssl_c_verify":
        return _ssl_c_verify
    if base == "nbsrv":
        return _nbsrv_getter(arg or "")
    name = (arg or "").encode("latin-1")
    if base in ("hdr_cnt", "req.hdr_cnt", "res.hdr_cnt"):
        values = _header_values(_header_source(base, phase), name, True)
    elif base == "req.cook_cnt":
        values = _cookie_values(name)
    else:
        raise RuleError(f"no integer fetch {base!r}")

    def count(txn) -> int:
        return len(values(txn))
    return count


def _nbsrv_getter(backend: str) -> Callable[[object], int | None]:
    """nbsrv(BACKEND): the backend's usable servers as this worker sees
    the shared state now (up, weight above 0, not in maintenance), the
    backup ones when no active one is (HAProxy's count). Absent (None)
    outside a worker (farm explain has no server state)."""
    def nbsrv(txn) -> int | None:
        conn = getattr(txn, "conn", None)
        be = conn.ctx.backends.get(backend) if conn is not None else None
        if be is None:
            return None
        pool = be.pool
        pool.any_up()                 # brings the worker's view up to date
        active, backup = pool.up_count()
        return active or backup
    return nbsrv


# ------------------------------------------------------------ pattern tests

def _int_test(ranges) -> Callable[[int], bool]:
    """Integer patterns (inclusive (lo, hi), None = open) -> int -> bool."""
    exact = frozenset(lo for lo, hi in ranges if lo is not None and lo == hi)
    spans = tuple((float("-inf") if lo is None else lo, float("inf") if hi is None else hi)
                  for lo, hi in ranges if lo is None or lo != hi)
    if not spans:
        return exact.__contains__

    def test(n: int) -> bool:
        if n in exact:
            return True
        for lo, hi in spans:
            if lo <= n <= hi:
                return True
        return False
    return test


_WORD_DELIMS = {"dom": b"/?.:", "dir": b"/?"}


def _word_regex(method: str, pats: list[bytes], icase: bool) -> re.Pattern:
    """HAProxy's dom/dir match as one regex: a pattern matches when it is
    found between delimiters (or the ends) of the sample; the pattern's own
    leading/trailing delimiters are ignored, as HAProxy does."""
    delims = _WORD_DELIMS[method]
    words = [p.strip(delims) for p in pats]
    words = [w for w in words if w] or [b"(?!)"]   # only delimiters: never matches
    cls = b"[" + re.escape(delims) + b"]"
    alts = b"|".join(re.escape(w) if w != b"(?!)" else w for w in words)
    return re.compile(rb"(?:\A|" + cls + rb")(?:" + alts + rb")(?=" + cls + rb"|\Z)",
                      re.IGNORECASE if icase else 0)


def _str_test(spec: AclSpec) -> Callable[[bytes], bool]:
    """A string match method + patterns -> bytes -> bool."""
    method, icase = spec.method, spec.icase
    if method == "len":
        itest = _int_test(spec.ranges)
        return lambda v: itest(len(v))
    pats = [v.encode("latin-1") for v in spec.values]
    if method == "reg":
        rxs = tuple(re.compile(p, re.IGNORECASE if icase else 0) for p in pats)
        if len(rxs) == 1:
            search = rxs[0].search
            return lambda v: search(v) is not None

        def any_regex(v: bytes) -> bool:
            for rx in rxs:
                if rx.search(v) is not None:
                    return True
            return False
        return any_regex
    if method in _WORD_DELIMS:
        search = _word_regex(method, pats, icase).search
        return lambda v: search(v) is not None
    if icase:
        pats = [p.lower() for p in pats]
    if method == "str":
        exact = frozenset(pats)
        return (lambda v: v.lower() in exact) if icase else exact.__contains__
    if method == "beg":
        t = tuple(pats)
        return (lambda v: v.lower().startswith(t)) if icase else (lambda v: v.startswith(t))
    if method == "end":
        t = tuple(pats)
        return (lambda v: v.lower().endswith(t)) if icase else (lambda v: v.endswith(t))
    if method == "sub":
        if len(pats) == 1:
            p = pats[0]
            return (lambda v: v.lower().find(p) >= 0) if icase else (lambda v: v.find(p) >= 0)
        subs = tuple(pats)

        def any_sub(v: bytes) -> bool:
            if icase:
                v = v.lower()
            for s in subs:
                if v.find(s) >= 0:
                    return True
            return False
        return any_sub
    raise RuleError(f"unsupported match method {method!r}")


# ------------------------------------------------------------ ACL matchers

def _single_matcher(get: Callable, spec: AclSpec) -> Matcher:
    # The frequent shapes (path_beg, path, path_end, with or without -i)
    # get a closure of their own: the getter (C attrgetter) and one C
    # method, no per-value test function.
    method, icase = spec.method, spec.icase
    pats = [v.encode("latin-1") for v in spec.values]
    if icase:
        pats = [p.lower() for p in pats]
    if method == "str":
        exact = frozenset(pats)
        if icase:
            return lambda txn: get(txn).lower() in exact
        return lambda txn: get(txn) in exact
    if method == "beg":
        t = tuple(pats)
        if icase:
            return lambda txn: get(txn).lower().startswith(t)
        return lambda txn: get(txn).startswith(t)
    if method == "end":
        t = tuple(pats)
        if icase:
            return lambda txn: get(txn).lower().endswith(t)
        return lambda txn: get(txn).endswith(t)
    test = _str_test(spec)
    return lambda txn: test(get(txn))


def _multi_matcher(values: Callable, spec: AclSpec) -> Matcher:
    if spec.method == "str" and not spec.icase:
        exact = frozenset(v.encode("latin-1") for v in spec.values)
        return lambda txn: not exact.isdisjoint(values(txn))
    test = _str_test(spec)

    def match(txn) -> bool:
        for v in values(txn):
            if test(v):
                return True
        return False
    return match


def _req_header_matcher(name: bytes, split: bool, spec: AclSpec) -> Matcher:
    """Request-header ACLs, the most common after path ones (host-based
    routing): extraction and matching fused in one loop, with no
    intermediate list and, for exact matches, no call per value."""
    if spec.method == "str":
        exact = frozenset(v.encode("latin-1").lower() if spec.icase else v.encode("latin-1")
                          for v in spec.values)
        if spec.icase:
            def match_icase(txn) -> bool:
                for v in txn.req.get_all(name):
                    if split and _COMMA in v:
                        for part in v.split(b","):
                            if part.strip(b" \t").lower() in exact:
                                return True
                    elif v.lower() in exact:
                        return True
                return False
            return match_icase

        def match_exact(txn) -> bool:
            for v in txn.req.get_all(name):
                if split and _COMMA in v:
                    for part in v.split(b","):
                        if part.strip(b" \t") in exact:
                            return True
                elif v in exact:
                    return True
            return False
        return match_exact
    test = _str_test(spec)

    def match(txn) -> bool:
        for v in txn.req.get_all(name):
            if split and _COMMA in v:
                for part in v.split(b","):
                    if test(part.strip(b" \t")):
                        return True
            elif test(v):
                return True
        return False
    return match


def _stick_getter(spec: AclSpec, phase: str) -> Callable:
    """A stick-counter fetch or table_* lookup -> txn -> int (bool for
    sc_tracked) or None (workers/tables.py)."""
    key_get = None
    if spec.key is not None:
        key_get = _sample_getter(spec.key, phase)
    return sticks.stick_getter(spec.base, spec.arg, key_get)


def _depends_on_phase(spec: AclSpec) -> bool:
    return spec.base in ("hdr", "fhdr", "hdr_cnt")


def compile_acl_spec(spec: AclSpec, phase: str = "request") -> Matcher:
    """One parsed ACL line -> matcher(txn) -> bool.

    phase is "request" or "response" (decides what hdr() reads). Assumes
    spec came from farm.conditions.parse_acl (so it is valid).
    """
    kind, method, base = spec.kind, spec.method, spec.base
    if is_stick_fetch(base):
        sget = _stick_getter(spec, phase)
        if kind == "bool":
            return sget
        if method == "found":
            return lambda txn: sget(txn) is not None
        itest = _int_test(spec.ranges)

        def stick_match(txn) -> bool:
            v = sget(txn)
            return v is not None and itest(v)
        return stick_match
    if kind == "bool":
        if base in _TLS_BOOLS:
            return _TLS_BOOLS[base]
        return _true if base == "always_true" else _false
    if kind == "bin":
        bget = _TLS_BINARY[base]
        if method == "found":
            return lambda txn: bget(txn) is not None
        wanted = frozenset(bytes.fromhex(v) for v in spec.values)
        return lambda txn: bget(txn) in wanted
    if base in _TLS_STRINGS:
        sget = _tls_string_getter(base, spec.arg)
        if method == "found":
            return lambda txn: sget(txn) is not None
        stest = _str_test(spec)

        def tls_match(txn) -> bool:
            v = sget(txn)
            return v is not None and stest(v)
        return tls_match
    if kind == "ip":
        if base == "dst":
            if method == "found":
                return lambda txn: getattr(txn, "dst", None) is not None
            return _ip_matcher(spec.networks, "dst")
        return _true if method == "found" else _ip_matcher(spec.networks)
    if kind == "int":
        get = _int_getter(base, spec.arg, phase)
        if method == "found":
            return lambda txn: get(txn) is not None
        test = _int_test(spec.ranges)

        def int_match(txn) -> bool:
            v = get(txn)
            return v is not None and test(v)
        return int_match
    if base in _SINGLE:
        if method == "found":
            return _query_found if base == "query" else _true
        if base == "path" and not spec.icase and method in ("beg", "end"):
            # the commonest ACLs: compared in the target, in place
            # (workers/lazyhead.py), without making the path's bytes
            return _PathTest(tuple(v.encode("latin-1") for v in spec.values), method == "end")
        m = _single_matcher(_SINGLE[base], spec)
        if base == "query":
            # Without a '?' there is no query sample at all (HAProxy): an
            # empty value must not match `query ""` or `-m len 0`.
            return lambda txn: _QMARK in txn.req.target and m(txn)
        return m
    values = _values_getter(base, spec.arg, phase)
    if method == "found":
        return lambda txn: len(values(txn)) > 0
    if base in ("hdr", "req.hdr", "fhdr", "req.fhdr") and _header_source(base, phase) == "req":
        return _req_header_matcher(spec.arg.encode("latin-1"), not base.endswith("fhdr"), spec)
    return _multi_matcher(values, spec)


def acl_sample(spec: AclSpec, phase: str = "request") -> Callable[[object], list]:
    """For tracing: txn -> the values an ACL line's fetch gives, the ones
    its matcher tests (bytes or int; [] when the sample is absent). Uses
    the same getters as compile_acl_spec."""
    kind, base = spec.kind, spec.base
    if is_stick_fetch(base):
        sget = _stick_getter(spec, phase)

        def stick_values(txn) -> list:
            v = sget(txn)
            return [] if v is None else [v]
        return stick_values
    if kind == "bool":
        if base in _TLS_BOOLS:
            flag = _TLS_BOOLS[base]
            return lambda txn: [flag(txn)]
        return lambda txn: []
    if kind == "bin" or base in _TLS_STRINGS:
        get = _TLS_BINARY[base] if kind == "bin" else _tls_string_getter(base, spec.arg)

        def present(txn) -> list:
            v = get(txn)
            return [] if v is None else [v.hex().upper().encode() if kind == "bin" else v]
        return present
    if kind == "ip":
        if base == "dst":
            return lambda txn: [] if getattr(txn, "dst", None) is None else [txn.dst]
        return lambda txn: [txn.src]
    if kind == "int":
        iget = _int_getter(base, spec.arg, phase)

        def int_values(txn) -> list:
            v = iget(txn)
            return [] if v is None else [v]
        return int_values
    if base in _SINGLE:
        get = _SINGLE[base]
        if base == "query":
            return lambda txn: [get(txn)] if _query_found(txn) else []
        return lambda txn: [get(txn)]
    return _values_getter(base, spec.arg, phase)


def _any_of(matchers: Sequence[Matcher]) -> Matcher:
    matchers = tuple(matchers)
    if len(matchers) == 1:
        return matchers[0]
    if _true in matchers:
        return _true
    if len(matchers) == 2:
        return _Either(*matchers)

    def any_match(txn) -> bool:
        for m in matchers:
            if m(txn):
                return True
        return False
    return any_match


def _all_of(matchers: Sequence[Matcher]) -> Matcher:
    matchers = tuple(m for m in matchers if m is not _true)
    if not matchers:
        return _true
    if len(matchers) == 1:
        return matchers[0]
    if len(matchers) == 2:
        return _Both(*matchers)

    def all_match(txn) -> bool:
        for m in matchers:
            if not m(txn):
                return False
        return True
    return all_match


def _negate(m: Matcher) -> Matcher:
    if m is _true:
        return _false
    if m is _false:
        return _true
    return _Not(m)


# The commonest condition shapes as objects rather than closures: the
# compiled build types them (rules.pxd), so that a condition made of them
# is tested with C calls (test()), not Python calls. Called as matcher(txn)
# they answer what the closures answered.

class _Test:
    """A matcher object: test(txn) -> bool; matcher(txn) as well."""

    __slots__ = ()

    def __call__(self, txn):
        return self.test(txn)

    def test(self, txn) -> bool:
        raise NotImplementedError


def _holds(m, txn) -> bool:
    """The truth of matcher m (a _Test or any callable) for txn."""
    if isinstance(m, _Test):
        t = m
        return t.test(txn)
    return bool(m(txn))


class _PathTest(_Test):
    """path_beg / path_end without -i (workers/lazyhead.py compares in the
    target, without making the path's bytes)."""

    __slots__ = ("pats", "ends")

    def __init__(self, pats: tuple, ends: bool) -> None:
        self.pats = pats
        self.ends = ends

    def test(self, txn) -> bool:
        if self.ends:
            return path_ends(txn.req, self.pats)
        return path_starts(txn.req, self.pats)


class _Both(_Test):
    __slots__ = ("a", "b")

    def __init__(self, a, b) -> None:
        self.a = a
        self.b = b

    def __call__(self, txn):
        return self.a(txn) and self.b(txn)

    def test(self, txn) -> bool:
        return _holds(self.a, txn) and _holds(self.b, txn)


class _Either(_Test):
    __slots__ = ("a", "b")

    def __init__(self, a, b) -> None:
        self.a = a
        self.b = b

    def __call__(self, txn):
        return self.a(txn) or self.b(txn)

    def test(self, txn) -> bool:
        return _holds(self.a, txn) or _holds(self.b, txn)


class _Not(_Test):
    __slots__ = ("m",)

    def __init__(self, m) -> None:
        self.m = m

    def test(self, txn) -> bool:
        return not _holds(self.m, txn)


class AclTable(dict):
    """Compiled named ACLs: name -> request-phase matcher.

    Also keeps the parsed lines so that for_phase("response") can give the
    response-phase view (ACLs using hdr() recompiled to read the response,
    the others shared).
    """

    def __init__(self, specs: Mapping[str, tuple[AclSpec, ...]]) -> None:
        super().__init__((name, _any_of([compile_acl_spec(s) for s in lines]))
                         for name, lines in specs.items())
        self.specs = dict(specs)
        self._response: dict[str, Matcher] | None = None

    def for_phase(self, phase: str) -> Mapping[str, Matcher]:
        if phase == "request":
            return self
        if self._response is None:
            self._response = {
                name: _any_of([compile_acl_spec(s, "response") for s in lines])
                if any(_depends_on_phase(s) for s in lines) else self[name]
                for name, lines in self.specs.items()}
        return self._response


def compile_acls(acls: Sequence[model.Acl]) -> AclTable:
    """Named ACLs -> AclTable (name -> matcher). The lines of one ACL, and
    several Acl entries with the same name, are OR-ed (HAProxy's rule).
    Raises RuleError naming the ACL when a line does not parse."""
    specs: dict[str, list[AclSpec]] = {}
    for acl in acls:
        for line in acl.lines:
            try:
                specs.setdefault(acl.name, []).append(parse_acl(line))
            except ConditionError as e:
                raise RuleError(f"acl {acl.name!r}: {e}") from None
    return AclTable({name: tuple(lines) for name, lines in specs.items()})


_predefined: dict[str, Matcher] = {}


def _predefined_acl(name: str) -> Matcher | None:
    # Predefined ACLs do not use hdr(), so one compiled form serves both
    # phases; compiled on first use and shared by every config generation.
    m = _predefined.get(name)
    if m is None and name in PREDEFINED_ACLS:
        m = _predefined[name] = compile_acl_spec(parse_acl(PREDEFINED_ACLS[name]))
    return m


def _acl_view(acls, phase: str) -> Mapping[str, Matcher]:
    if acls is None:
        return {}
    if isinstance(acls, AclTable):
        return acls.for_phase(phase)
    if isinstance(acls, Mapping):
        return acls   # a plain name -> matcher mapping, used as is
    return compile_acls(acls).for_phase(phase)


class Tracer:
    """What a traced compilation reports, in evaluation order (farm explain
    subclasses it). The defaults do nothing."""

    def acl(self, label: str, negated: bool, samples: list, result: bool) -> None:
        """A condition term was evaluated. label: the ACL name, or the
        anonymous ACL's text in braces; negated: written with `!`;
        samples: (AclSpec, values) per line of the ACL (values from
        acl_sample; no lines when the ACLs were given as plain matchers);
        result: the ACL's own result, before the `!`."""

    def rule(self, rule: model.Rule, fired: bool, outcome) -> None:
        """An http_request rule was considered: fired says whether its
        condition held; outcome is what its action returned when it fired
        (a Verdict, None for allow, or "continue")."""

    def use_backend(self, entry: model.UseBackend, matched: bool) -> None:
        """A use_backend entry's condition was evaluated."""


def _traced_term(m: Matcher, label: str, negated: bool, specs, phase: str, tracer: Tracer) -> Matcher:
    fetches = tuple((spec, acl_sample(spec, phase)) for spec in specs)

    def traced(txn) -> bool:
        result = m(txn)
        tracer.acl(label, negated, [(spec, get(txn)) for spec, get in fetches], result)
        return result
    return traced


def _acl_specs(name: str, acls) -> tuple:
    """The parsed lines of a named ACL (user ones first, then predefined)."""
    if isinstance(acls, AclTable) and name in acls.specs:
        return acls.specs[name]
    if isinstance(acls, Mapping) and name in acls:
        return ()
    if name in PREDEFINED_ACLS:
        return (parse_acl(PREDEFINED_ACLS[name]),)
    return ()


def compile_condition(cond, acls=None, phase: str = "request",
                      tracer: Tracer | None = None) -> Matcher:
    """An if/unless guard -> matcher(txn) -> bool.

    cond is a model.Condition (negate=True for `unless`), a CondSpec, a
    condition string, or None (always true). acls is what compile_acls
    returned (or a plain name -> matcher mapping, or a sequence of
    model.Acl). Named ACLs resolve at compile time: user ACLs first, then
    HAProxy's predefined ones. Raises RuleError for an unknown ACL,
    ConditionError for a malformed condition. tracer: see Tracer (for
    farm explain; None on the request path).
    """
    if cond is None:
        return _true
    negate = False
    if isinstance(cond, CondSpec):
        spec = cond
    elif isinstance(cond, str):
        spec = parse_condition(cond)
    else:
        spec, negate = parse_condition(cond.text), cond.negate
    table = _acl_view(acls, phase)
    groups = []
    for group in spec.groups:
        terms = []
        for term in group:
            if term.acl is not None:
                m = compile_acl_spec(term.acl, phase)
                if tracer is not None:
                    m = _traced_term(m, "{ " + term.acl.text + " }", term.negate, (term.acl,),
                                     phase, tracer)
            else:
                m = table.get(term.name) or _predefined_acl(term.name)
                if m is None:
                    raise RuleError(f"condition {spec.text!r}: unknown ACL {term.name!r}")
                if tracer is not None:
                    m = _traced_term(m, term.name, term.negate, _acl_specs(term.name, acls),
                                     phase, tracer)
            terms.append(_negate(m) if term.negate else m)
        groups.append(_all_of(terms))
    matcher = _any_of(groups)
    return _negate(matcher) if negate else matcher


# ------------------------------------------------------------ log-format

def _last(values: Callable) -> Callable[[object], bytes]:
    def last(txn) -> bytes:
        v = values(txn)
        return v[-1] if v else b""
    return last


def _last_request_header(name: bytes, split: bool) -> Callable[[object], bytes]:
    """txn -> the last value of the request header ``name`` (b"" if none):
    with split (hdr()), the last comma-separated element of its last line,
    trimmed; without (fhdr()), the whole last line. One reverse scan: what
    _last(_header_values(...)) gives, without the lists (a set-header of a
    header's value runs on every request)."""
    return _LastHeader(name.lower(), split)


class _LastHeader:
    """_last_request_header's getter, as an object (rules.pxd types it: a
    set-header of %[req.hdr(NAME)] calls it as C)."""

    __slots__ = ("lname", "split")

    def __init__(self, lname: bytes, split: bool) -> None:
        self.lname = lname
        self.split = split

    def __call__(self, txn) -> bytes:
        return self.get(txn)

    def get(self, txn) -> bytes:
        lname = self.lname
        req = txn.req
        if is_lazy(req):                # an unsplit head stays so (workers/lazyhead.py)
            v = last_value(req, lname)
            if v is None:
                return b""
            if self.split and _COMMA in v:
                return v.rpartition(b",")[2].strip(b" \t")
            return v
        n = len(lname)
        for k, v in reversed(req.headers):
            if len(k) == n and k.lower() == lname:
                if self.split and _COMMA in v:
                    return v.rpartition(b",")[2].strip(b" \t")
                return v
        return b""


def _sample_getter(sample: Sample, phase: str) -> Callable[[object], bytes]:
    """A %[...] -> txn -> bytes (b"" when the sample is absent).

    Multi-valued fetches give what HAProxy's sample fetches give: the last
    header value (hdr, fhdr) or cookie, the first URL parameter.
    """
    base = sample.fetch
    if base in _SINGLE:
        get = _SINGLE[base]
    elif base in _TLS_BOOLS:
        flag = _TLS_BOOLS[base]
        get = lambda txn: b"1" if flag(txn) else b"0"   # noqa: E731
    elif base in _TLS_STRINGS or base in _TLS_BINARY:
        tget = _TLS_BINARY[base] if base in _TLS_BINARY else _tls_string_getter(base, sample.arg)

        def get(txn) -> bytes:
            v = tget(txn)
            return b"" if v is None else v
    elif base == "src":
        get = lambda txn: txn.src.encode("latin-1")   # noqa: E731
    elif base == "dst":
        get = lambda txn: (getattr(txn, "dst", None) or "").encode("latin-1")   # noqa: E731
    elif base in ("src_port", "dst_port", "status", "hdr_cnt", "req.hdr_cnt",
                  "res.hdr_cnt", "req.cook_cnt", "ssl_c_verify"):
        iget = _int_getter(base, sample.arg, phase)

        def get(txn) -> bytes:
            v = iget(txn)
            return b"" if v is None else str(v).encode("ascii")
    elif base == "url_param":
        values = _values_getter(base, sample.arg, phase)

        def get(txn) -> bytes:
            v = values(txn)
            return v[0] if v else b""
    elif base in ("hdr", "req.hdr", "fhdr", "req.fhdr") and _header_source(base, phase) == "req":
        get = _last_request_header((sample.arg or "").encode("latin-1"), "fhdr" not in base)
    else:
        get = _last(_values_getter(base, sample.arg, phase))
    for conv in sample.converters:
        get = _convert(get, conv)
    return get


def key_getter(expr: str, phase: str = "request") -> Callable[[object], bytes | str | None]:
    """A tracking or persistence key ("src", "req.hdr(x-api-key)") -> txn
    -> its bytes (src: the address as text), or None when the sample is
    absent or empty (farm.tables.encode_key takes either). phase
    "response": hdr() reads the response (a stick store-response key)."""
    if expr.strip() == "src":
        return attrgetter("src")       # the address as text: what the ip tables encode fastest
    get = _sample_getter(parse_key_sample(expr), phase)
    return lambda txn: get(txn) or None


def _convert(get: Callable, conv: str) -> Callable[[object], bytes]:
    if conv == "lower":
        return lambda txn: get(txn).lower()
    if conv == "hex":
        return lambda txn: get(txn).hex().upper().encode("ascii")
    return lambda txn: get(txn).upper()


def _compile_parts(parts, phase: str):
    """Literal str / Sample parts -> bytes when constant, else a function."""
    items = [p.encode("latin-1") if isinstance(p, str) else _sample_getter(p, phase) for p in parts]
    if all(isinstance(i, bytes) for i in items):
        return b"".join(items)
    if len(items) == 1:
        return items[0]
    items = tuple(items)

    def render(txn) -> bytes:
        return b"".join([i if i.__class__ is bytes else i(txn) for i in items])
    return render


def compile_format(text: str, phase: str = "request"):
    """A log-format string (see farm.conditions.parse_format) -> bytes if
    it has no variables, else a function txn -> bytes."""
    return _compile_parts(parse_format(text), phase)


def _compile_replacement(text: str, regex: re.Pattern, phase: str) -> Callable:
    """A replace-* replacement -> function(match, txn) -> bytes."""
    parts = parse_replacement(text, regex.groups)
    if not any(isinstance(p, Sample) for p in parts):
        # Only literals and \N: translate to a Python template once and
        # let Match.expand do the work in C.
        tmpl = b"".join(
            rb"\g<%d>" % p if isinstance(p, int) else p.encode("latin-1").replace(b"\\", b"\\\\")
            for p in parts)
        return lambda m, txn: m.expand(tmpl)
    items = tuple(p.encode("latin-1") if isinstance(p, str)
                  else p if isinstance(p, int) else _sample_getter(p, phase) for p in parts)

    def expand(m, txn) -> bytes:
        out = []
        for i in items:
            if i.__class__ is bytes:
                out.append(i)
            elif i.__class__ is int:
                out.append(m.group(i) or b"")
            else:
                out.append(i(txn))
        return b"".join(out)
    return expand


# ------------------------------------------------------------ URI helpers

def _split_target(target: bytes) -> tuple[bytes, bytes, bytes]:
    """request-target -> (scheme://authority or b"", path, '?query' or b"").

    Origin form "/a?b" -> (b"", b"/a", b"?b"); absolute form
    "http://h/a?b" -> (b"http://h", b"/a", b"?b"); "*" -> (b"", b"*", b"").
    """
    q = target.find(b"?")
    before, rest = (target, b"") if q < 0 else (target[:q], target[q:])
    if before[:1] == b"/" or b"://" not in before:
        return b"", before, rest
    slash = before.find(b"/", before.find(b"://") + 3)
    if slash < 0:
        return before, b"", rest
    return before[:slash], before[slash:], rest


_UNSAFE_IN_TARGET = re.compile(rb"[\x00-\x20\x7f-\xff#]")


def _safe_target(part: bytes) -> bytes:
    """Percent-encode what must not appear raw in a request-target.

    Values inserted by %[...] come from the request (a header may hold a
    space): written raw into the request line they would let a client
    change how the server parses it, so set-path / set-query /
    replace-path encode them. HAProxy copies them as they are.
    """
    if _UNSAFE_IN_TARGET.search(part) is None:
        return part
    return _UNSAFE_IN_TARGET.sub(lambda m: b"%%%02X" % m.group()[0], part)


# ------------------------------------------------------------ actions

_CONTINUE = object()   # an action that lets rule evaluation go on
_REDIRECT_NO_CACHE = (302, 303, 307)   # HAProxy adds Cache-Control: no-cache to these


def _const_or_call(value, txn) -> bytes:
    return value if value.__class__ is bytes else value(txn)


def _message_getter(phase: str) -> Callable:
    if phase == "request":
        return attrgetter("req")
    return lambda txn: getattr(txn, "resp", None)


def _header_action(action: str, p: dict, phase: str) -> Callable:
    msg_of = _message_getter(phase)
    name = str(p["name"]).encode("latin-1")
    lname = name.lower()
    if action == "del-header":
        def delete(txn):
            msg = msg_of(txn)
            if msg is not None:
                msg.remove(lname)
            return _CONTINUE
        return delete
    if action in ("set-header", "add-header"):
        return _SetField(name, compile_format(str(p["value"]), phase),
                         action == "set-header", phase == "request", msg_of)
    # replace-header: HAProxy matches the regex against each full value
    # (not split on commas) and replaces the *whole* value of those that
    # match with the expansion.
    regex = _compile_rule_regex(p["match"])
    search = regex.search
    expand = _compile_replacement(str(p["replace"]), regex, phase)

    def replace(txn):
        msg = msg_of(txn)
        if msg is None:
            return _CONTINUE
        # Edited in place in msg.headers (a plain list the message classes
        # let rules edit): the fields keep their position and spelling.
        n = len(lname)
        hs = msg.headers
        for i, (k, v) in enumerate(hs):
            if len(k) == n and k.lower() == lname:
                m = search(v)
                if m is not None:
                    hs[i] = (k, expand(m, txn).strip(b" \t"))
        return _CONTINUE
    return replace


class _SetField:
    """set-header (replace_all) or add-header: the action, called with the
    txn like the other actions' closures (returns _CONTINUE). An object
    rather than a closure so that the compiled build types it (rules.pxd).

    A field value has no leading/trailing whitespace (RFC 9110; the message
    helpers refuse it): the constant is trimmed once, a rendered value each
    time. An unsplit request head (workers/lazyhead.py) without the field
    gets it appended and stays unsplit: what set() and add() do to the
    split fields, their checks included (the name's once here)."""

    __slots__ = ("name", "lname", "value", "const", "replace_all", "request", "lazy_ok",
                 "msg_of")

    def __init__(self, name: bytes, value, replace_all: bool, request: bool, msg_of) -> None:
        self.name = name
        self.lname = name.lower()
        self.const = value.__class__ is bytes
        self.value = value.strip(b" \t") if self.const else value
        self.replace_all = replace_all
        self.request = request
        self.lazy_ok = request and _name_ok(name)
        self.msg_of = msg_of

    def __call__(self, txn):
        return self.run(txn)

    def run(self, txn):
        msg = txn.req if self.request else self.msg_of(txn)
        if msg is None:
            return _CONTINUE
        if self.const:
            v = self.value
        elif type(self.value) is _LastHeader:
            last = self.value
            v = _strip_ows(last.get(txn))
        else:
            v = _strip_ows(self.value(txn))
        if (self.lazy_ok and is_lazy(msg) and value_ok(v)
                and not (self.replace_all and has_field(msg, self.lname))):
            req = msg
            req.append_field(self.name, v)
        elif self.replace_all:
            msg.set(self.name, v)
        else:
            msg.add(self.name, v)
        return _CONTINUE


def _strip_ows(v: bytes) -> bytes:
    """v.strip(b" \t"), without the call when there is nothing to strip."""
    p = v
    n = len(v)
    if n and (p[0] == 32 or p[0] == 9 or p[n - 1] == 32 or p[n - 1] == 9):
        return v.strip(b" \t")
    return v


def _name_ok(name: bytes) -> bool:
    """name passes http1._check_field's test of a field name."""
    try:
        _check_field(name, b"")
    except ValueError:
        return False
    return True


def _compile_rule_regex(pattern: object) -> re.Pattern:
    try:
        return re.compile(str(pattern).encode("latin-1"))
    except (re.error, UnicodeEncodeError) as e:
        raise RuleError(f"bad regex {pattern!r}: {e}") from None


def _response_verdict(kind: str, p: dict, default_status: int, default_body: bytes | None) -> Callable:
    status = int(p.get("status", default_status))
    ctype, body = p.get("content_type"), p.get("body")
    headers = []
    if ctype is not None:
        headers.append((b"Content-Type", str(ctype).encode("latin-1")))
    elif body:
        headers.append((b"Content-Type", b"text/plain; charset=utf-8"))
    payload = default_body if body is None else str(body).encode("utf-8")
    headers = tuple(headers)

    def respond(txn):
        return Verdict(kind, status, list(headers), payload)
    return respond


def _redirect_action(p: dict) -> Callable:
    code = int(p.get("code", 302))
    drop_query = bool(p.get("drop_query", False))
    extra = [(b"Cache-Control", b"no-cache")] if code in _REDIRECT_NO_CACHE else []

    def verdict(location: bytes) -> Verdict:
        return Verdict("redirect", code, [(b"Location", location)] + extra, b"")

    if p.get("location") is not None:
        location = compile_format(str(p["location"]))
        if location.__class__ is bytes:
            return lambda txn: verdict(location)
        return lambda txn: verdict(location(txn))

    def uri(txn) -> bytes:
        # HAProxy: the path of the request (the query too unless
        # drop_query), "/" when the target has no path (e.g. "*").
        _, path, query = _split_target(txn.req.target)
        if not path or path == b"*":
            path = b"/"
        return path if drop_query else path + query

    if p.get("prefix") is not None:
        # prefix "/" means "nothing": a self-redirect (HAProxy's rule).
        prefix = b"" if p["prefix"] == "/" else compile_format(str(p["prefix"]))
        return lambda txn: verdict(_const_or_call(prefix, txn) + uri(txn))
    if p.get("scheme") is not None:
        scheme = compile_format(str(p["scheme"]))

        def by_scheme(txn):
            host = txn.req.get(b"host") or b""   # HAProxy: empty host if none
            return verdict(_const_or_call(scheme, txn) + b"://" + host + uri(txn))
        return by_scheme
    raise RuleError("redirect needs one of location, prefix or scheme")


def _set_path_action(p: dict) -> Callable:
    value = compile_format(str(p["value"]))

    def set_path(txn):
        req = txn.req
        prefix, _, query = _split_target(req.target)
        req.target = prefix + _safe_target(_const_or_call(value, txn)) + query
        return _CONTINUE
    return set_path


def _set_query_action(p: dict) -> Callable:
    value = compile_format(str(p["value"]))

    def set_query(txn):
        # HAProxy: add '?' only if the new query is not empty; never
        # remove an existing '?'.
        req = txn.req
        prefix, path, query = _split_target(req.target)
        q = _safe_target(_const_or_call(value, txn))
        req.target = prefix + path + (b"?" + q if q or query else b"")
        return _CONTINUE
    return set_query


def _replace_path_action(p: dict) -> Callable:
    regex = _compile_rule_regex(p["match"])
    search = regex.search
    expand = _compile_replacement(str(p["replace"]), regex, "request")

    def replace_path(txn):
        # The path only (the query string is kept); the whole path becomes
        # the expansion when the regex matches (HAProxy's rule).
        req = txn.req
        prefix, path, query = _split_target(req.target)
        m = search(path)
        if m is not None:
            req.target = prefix + _safe_target(expand(m, txn)) + query
        return _CONTINUE
    return replace_path


def _set_status_action(p: dict) -> Callable:
    status = int(p["status"])
    reason = p.get("reason")
    if reason is None:
        try:
            reason_b = HTTPStatus(status).phrase.encode("latin-1")
        except ValueError:
            reason_b = b""
    else:
        reason_b = str(reason).encode("latin-1")

    def set_status(txn):
        resp = txn.resp
        resp.status = status
        resp.reason = reason_b
        return _CONTINUE
    return set_status


def _allow(txn):
    return None   # stop evaluating the rules, go on with the request


def _stick_action(rule: model.Rule, http: bool) -> Callable | None:
    """track-scN, sc-inc-gpcN, sc-set-gpt0 -> an action that goes on with
    the rules; None for another action."""
    p = dict(rule.params)
    a = rule.action
    if a.startswith("track-sc"):
        key = sticks.key_encoder(str(p["table"]), key_getter(str(p["key"])))
        act = sticks.track_action(int(a[-1]), key, http)
    elif a in ("sc-inc-gpc0", "sc-inc-gpc1"):
        act = sticks.gpc_action(int(p.get("sc", 0)), int(a[-1]))
    elif a == "sc-set-gpt0":
        act = sticks.gpt_action(int(p.get("sc", 0)), int(p["value"]))
    else:
        return None

    def go_on(txn):
        act(txn)
        return _CONTINUE
    return go_on


def _reject(txn):
    return Verdict("reject", 0)


def _deny_action(p: dict) -> Callable:
    """deny: the status's error page, or the given body; retry_after adds
    Retry-After (seconds) and makes the page a body of the verdict."""
    if p.get("retry_after") is None:
        return _response_verdict("deny", p, 403, None)
    status = int(p.get("status", 403))
    seconds = str(max(0, int(round(float(p["retry_after"]))))).encode("ascii")
    if p.get("body") is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        p = dict(p, body=f"<html><body><h1>{status} {reason}</h1>\n</body></html>\n",
                 content_type=p.get("content_type", "text/html"))
    respond = _response_verdict("deny", p, status, None)

    def deny(txn):
        v = respond(txn)
        v.headers.append((b"Retry-After", seconds))
        return v
    return deny


def _tarpit_action(p: dict) -> Callable:
    status = int(p.get("status", 500))
    delay = float(p.get("timeout", 5.0))

    def tarpit(txn):
        v = Verdict("tarpit", status)
        v.delay = delay
        return v
    return tarpit


def _request_action(rule: model.Rule) -> Callable:
    p = dict(rule.params)
    a = rule.action
    if a == "allow":
        return _allow
    stick = _stick_action(rule, True)
    if stick is not None:
        return stick
    if a == "reject":
        return _reject
    if a == "tarpit":
        return _tarpit_action(p)
    if a == "deny":
        return _deny_action(p)
    if a == "return":
        return _response_verdict("return", p, 200, b"")
    if a == "redirect":
        return _redirect_action(p)
    if a in ("set-header", "add-header", "del-header", "replace-header"):
        return _header_action(a, p, "request")
    if a == "set-path":
        return _set_path_action(p)
    if a == "set-query":
        return _set_query_action(p)
    if a == "replace-path":
        return _replace_path_action(p)
    raise RuleError(f"unknown http_request action {a!r}")


def _response_action(rule: model.Rule) -> Callable:
    p = dict(rule.params)
    a = rule.action
    if a == "allow":
        return _allow
    if a in ("set-header", "add-header", "del-header", "replace-header"):
        return _header_action(a, p, "response")
    if a == "set-status":
        return _set_status_action(p)
    raise RuleError(f"unknown http_response action {a!r}")


def _traced_step(rule: model.Rule, cond, act, tracer: Tracer) -> Callable:
    """A rule as one step that reports whether it fired and what it did."""
    def traced(txn):
        fired = cond is None or cond(txn)
        outcome = act(txn) if fired else _CONTINUE
        tracer.rule(rule, fired, ("continue" if outcome is _CONTINUE else outcome) if fired else None)
        return outcome
    return traced


def _compile_steps(rules, acls, phase: str, make_action: Callable, tracer: Tracer | None = None) -> tuple:
    steps = []
    for rule in rules:
        try:
            cond = (compile_condition(rule.cond, acls, phase, tracer)
                    if rule.cond is not None else None)
            act = make_action(rule)
        except (ConditionError, KeyError, TypeError, ValueError) as e:
            what = f"missing param {e}" if isinstance(e, KeyError) else str(e)
            raise RuleError(f"{rule.action} rule (line {rule.line}): {what}") from None
        if tracer is not None:
            steps.append((None, _traced_step(rule, cond, act, tracer)))
            continue
        if cond is _false:
            continue   # can never fire
        steps.append((None if cond is _true else cond, act))
        if cond in (None, _true) and act is _allow:
            break      # unconditional allow: nothing after it can run
    return tuple(steps)


def compile_request_rules(rules: Sequence[model.Rule], acls=None,
                          tracer: Tracer | None = None) -> Callable[[object], Verdict | None]:
    """http_request rules -> run(txn) -> Verdict | None.

    Rules run in order; each fires if its condition holds. allow stops the
    evaluation (None: go on to routing); deny, redirect and return stop it
    with a Verdict; the others edit txn.req and go on. None at the end:
    forward the request. An empty list gives no_rules. acls, tracer: see
    compile_condition. Raises RuleError naming the rule's line.
    """
    return _first_answer(_compile_steps(rules, acls, "request", _request_action, tracer))


def _first_answer(steps: list) -> Callable[[object], object]:
    """steps ([(condition or None, action)]) -> run(txn): the actions whose
    condition holds, in order, until one answers something other than
    _CONTINUE (that answer; None at the end). No steps: no_rules."""
    if not steps:
        return no_rules
    return _Steps(tuple(steps))


class _Steps:
    """_first_answer's run(txn), as an object (typed by rules.pxd: the
    conditions and set-header actions among the steps are called as C)."""

    __slots__ = ("steps",)

    def __init__(self, steps: tuple) -> None:
        self.steps = steps

    def __call__(self, txn):
        return self.run(txn)

    def run(self, txn):
        for cond, act in self.steps:
            if cond is None or _holds(cond, txn):
                if type(act) is _SetField:
                    sf = act
                    r = sf.run(txn)
                else:
                    r = act(txn)
                if r is not _CONTINUE:
                    return r
        return None


def apply_rules(rules, txn):
    """rules(txn) for what compile_request_rules returned: a C call into
    the compiled rule list (the stream calls it per request)."""
    if type(rules) is _Steps:
        steps = rules
        return steps.run(txn)
    return rules(txn)


def _tcp_action(rule: model.Rule) -> Callable:
    if rule.action == "accept":
        return _allow
    if rule.action == "reject":
        return lambda txn: "reject"
    stick = _stick_action(rule, False)
    if stick is None:
        raise RuleError(f"unknown tcp_request action {rule.action!r}")
    return stick


def compile_tcp_rules(rules: Sequence[model.Rule], acls=None) -> Callable[[object], str | None]:
    """tcp_request rules (layer 4: the txn has src, src_port, dst_port and
    stk) -> run(txn) -> "reject" or None (accept). accept stops the
    evaluation; the tracking actions go on."""
    return _first_answer(_compile_steps(rules, acls, "request", _tcp_action))


def compile_response_rules(rules: Sequence[model.Rule], acls=None) -> Callable[[object], None]:
    """http_response rules -> run(txn) -> None, editing txn.resp.

    Conditions are compiled for the response phase (hdr() reads the
    response). allow stops the evaluation. An empty list gives no_rules.
    """
    steps = _compile_steps(rules, acls, "response", _response_action)
    if not steps:
        return no_rules
    _CONT = _CONTINUE

    def run(txn):
        for cond, act in steps:
            if cond is None or cond(txn):
                if act(txn) is not _CONT:
                    return None
        return None
    return run


def _traced_choice(entry: model.UseBackend, cond: Matcher, tracer: Tracer) -> Matcher:
    def traced(txn) -> bool:
        matched = cond(txn)
        tracer.use_backend(entry, matched)
        return matched
    return traced


def compile_use_backend(entries: Sequence[model.UseBackend], default: str | None,
                        acls=None, tracer: Tracer | None = None) -> Callable[[object], str | None]:
    """use_backend entries -> choose(txn) -> backend name.

    The first entry whose condition holds wins (an entry without a
    condition always holds); otherwise default (which may be None).
    tracer: see compile_condition.
    """
    choices = []
    for entry in entries:
        try:
            cond = compile_condition(entry.cond, acls, "request", tracer)
        except (ConditionError, RuleError) as e:
            raise RuleError(f"use_backend {entry.backend!r} (line {entry.line}): {e}") from None
        if tracer is not None:
            cond = _traced_choice(entry, cond, tracer)
        if cond is _false:
            continue
        if cond is _true:
            default = entry.backend   # unconditional: later entries are unreachable
            break
        choices.append((cond, entry.backend))
    if not choices:
        return lambda txn: default
    return _Choose(tuple(choices), default)


def choose_with(choose, txn):
    """choose(txn) for what compile_use_backend returned: a C call into
    the compiled choice (the stream calls it per request)."""
    if type(choose) is _Choose:
        c = choose
        return c.run(txn)
    return choose(txn)


class _Choose:
    """compile_use_backend's choose(txn), as an object (rules.pxd types it:
    the conditions are tested with C calls)."""

    __slots__ = ("choices", "default")

    def __init__(self, choices: tuple, default) -> None:
        self.choices = choices
        self.default = default

    def __call__(self, txn):
        return self.run(txn)

    def run(self, txn):
        for cond, backend in self.choices:
            if _holds(cond, txn):
                return backend
        return self.default
