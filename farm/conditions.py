"""ACLs, if/unless conditions and log-format strings in HAProxy's syntax:
parsing and validation only (no I/O, nothing per request).

farm/loader.py calls check_acl() and check_condition() at load time so that
`farm check` reports every mistake with its line; workers/rules.py calls
parse_acl(), parse_condition() and parse_format() once per config load and
compiles the results into closures. farm/ never imports workers/.

ACL line (HAProxy section 7.1)::

    fetch[(arg)] [flags] [values...]
    path_beg /api/ /v2/
    hdr(host) -i example.com www.example.com
    src 10.0.0.0/8 ::1
    hdr_cnt(x-forwarded-for) gt 1
    url_param(id) -m found

Flags: -i (case-insensitive), -m METHOD (str beg end sub reg dom dir len
found int ip), -n (accepted, no effect: farm never resolves names), and --
(end of flags). A derived keyword (path_beg) implies its match method; an
explicit -m overrides it.

Condition (HAProxy section 7.2): terms are ACL names or anonymous ACLs
`{ fetch args }` (braces separated by spaces), each optionally prefixed by
`!`; juxtaposed terms are AND-ed, `||` (or `or`) separates OR-ed groups.
There are no parentheses.

Tokens follow HAProxy's config quoting: whitespace separates words; "..."
and '...' quote (a quoted "" is an empty value); outside single quotes a
backslash escapes a space, a quote or a backslash, and any other backslash
is kept as is, so regexes such as `^/img/.*\\.png$` need no doubling.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from typing import Union

__all__ = [
    "ConditionError", "AclSpec", "Term", "CondSpec", "Sample",
    "parse_acl", "parse_condition", "check_acl", "check_condition",
    "referenced_acls", "backends_fetched", "literal_hosts", "parse_format", "check_format", "parse_replacement",
    "check_replacement", "tokenize", "PREDEFINED_ACLS", "FETCHES",
    "MATCH_METHODS",
]


class ConditionError(ValueError):
    """A malformed ACL line, condition or format string; str() is the
    user-facing message (without file/line: the loader adds those)."""


# ------------------------------------------------------------- tokenizer

_SPACE = " \t\r\n"


def tokenize(text: str) -> list[str]:
    """Split one ACL line or condition into words, HAProxy style.

    Accepts any str. Whitespace separates words; double and single quotes
    group (and may appear inside a word: a"b c" -> `ab c`); an empty quoted
    string yields an empty word. Outside single quotes, a backslash before
    a space, tab, quote or backslash escapes it; any other backslash is
    kept, so regex escapes survive. Raises ConditionError on an unclosed
    quote.
    """
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    quote = ""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"' and i + 1 < n and text[i + 1] in '"\\':
                cur.append(text[i + 1])
                i += 1
            else:
                cur.append(c)
            i += 1
            continue
        if c in _SPACE:
            if in_word:
                words.append("".join(cur))
                cur = []
                in_word = False
            i += 1
            continue
        in_word = True
        if c in "\"'":
            quote = c
        elif c == "\\" and i + 1 < n and text[i + 1] in " \t\"'\\":
            cur.append(text[i + 1])
            i += 1
        else:
            cur.append(c)
        i += 1
    if quote:
        raise ConditionError(f"unclosed {quote} quote")
    if in_word:
        words.append("".join(cur))
    return words


# ------------------------------------------------------------ fetches

@dataclass(frozen=True)
class _Fetch:
    """What one ACL keyword means.

    base is the canonical sample fetch that workers/rules.py implements
    ("hdr", "req.cook", ...); kind is the type of sample it yields ("str",
    "int", "ip", "bool" or "bin"); arg says what goes between the
    parentheses ("" none, "header", "cookie", "param", or "dn": an optional
    DN entry name such as CN); method is the match method the keyword
    implies.
    """

    base: str
    kind: str
    arg: str
    method: str


# Match methods per sample kind. "found" works on all but bool.
MATCH_METHODS = ("str", "beg", "end", "sub", "reg", "dom", "dir", "len", "found", "int", "ip",
                 "bin")
_METHODS_FOR_KIND = {
    "str": ("str", "beg", "end", "sub", "reg", "dom", "dir", "len", "found"),
    "int": ("int", "found"),
    "ip": ("ip", "found"),
    "bool": (),
    "bin": ("bin", "found"),        # binary samples match hex patterns (HAProxy's -m bin)
}
_DEFAULT_METHOD = {"str": "str", "int": "int", "ip": "ip", "bool": "bool", "bin": "bin"}
_SUFFIXES = ("beg", "end", "sub", "reg", "dom", "dir", "len")


def _build_fetches() -> dict[str, _Fetch]:
    table: dict[str, _Fetch] = {}

    def add(name: str, base: str, kind: str, arg: str = "", derive: bool = False) -> None:
        table[name] = _Fetch(base, kind, arg, _DEFAULT_METHOD[kind])
        if derive:
            # HAProxy's derived ACL keywords: path_beg = path -m beg, ...
            for sfx in _SUFFIXES:
                table[f"{name}_{sfx}"] = _Fetch(base, kind, arg, sfx)

    add("path", "path", "str", derive=True)
    add("url", "url", "str", derive=True)
    add("query", "query", "str")
    add("method", "method", "str")
    add("req.ver", "req.ver", "str")
    add("req_ver", "req.ver", "str")
    # hdr() reads the request in http_request rules and use_backend, the
    # response in http_response rules (HAProxy's rule); req.* / res.* are
    # explicit.
    add("hdr", "hdr", "str", "header", derive=True)
    add("req.hdr", "req.hdr", "str", "header")
    add("res.hdr", "res.hdr", "str", "header")
    add("fhdr", "fhdr", "str", "header")
    add("req.fhdr", "req.fhdr", "str", "header")
    add("res.fhdr", "res.fhdr", "str", "header")
    add("hdr_cnt", "hdr_cnt", "int", "header")
    add("req.hdr_cnt", "req.hdr_cnt", "int", "header")
    add("res.hdr_cnt", "res.hdr_cnt", "int", "header")
    add("req.cook", "req.cook", "str", "cookie")
    add("cook", "req.cook", "str", "cookie", derive=True)
    add("req.cook_cnt", "req.cook_cnt", "int", "cookie")
    add("cook_cnt", "req.cook_cnt", "int", "cookie")
    # a cookie the server sets (Set-Cookie of the response), HAProxy's
    # res.cook and its ACL keyword scook
    add("res.cook", "res.cook", "str", "cookie")
    add("scook", "res.cook", "str", "cookie")
    add("url_param", "url_param", "str", "param")
    add("urlp", "url_param", "str", "param")
    add("src", "src", "ip")
    add("dst", "dst", "ip")
    add("src_port", "src_port", "int")
    add("dst_port", "dst_port", "int")
    add("status", "status", "int")
    add("always_true", "always_true", "bool")
    add("always_false", "always_false", "bool")
    # TLS of the client connection (HAProxy's ssl_fc* and ssl_c_*): absent
    # (no match) on a plain connection, except the booleans, false there.
    add("ssl_fc", "ssl_fc", "bool")
    add("ssl_fc_sni", "ssl_fc_sni", "str", derive=True)
    add("ssl_fc_protocol", "ssl_fc_protocol", "str")
    add("ssl_fc_cipher", "ssl_fc_cipher", "str")
    add("ssl_fc_alpn", "ssl_fc_alpn", "str")
    add("ssl_fc_session_reused", "ssl_fc_session_reused", "bool")
    add("ssl_c_used", "ssl_c_used", "bool")
    add("ssl_c_verify", "ssl_c_verify", "int")
    add("ssl_c_s_dn", "ssl_c_s_dn", "str", "dn")
    add("ssl_c_i_dn", "ssl_c_i_dn", "str", "dn")
    add("ssl_c_serial", "ssl_c_serial", "bin")
    add("ssl_c_sha1", "ssl_c_sha1", "bin")
    # The PROXY header the client connection started with (accept_proxy
    # binds): its TLVs, absent without a header or without that TLV.
    add("fc_pp_authority", "fc_pp_authority", "str")
    add("fc_pp_unique_id", "fc_pp_unique_id", "str")
    add("fc_pp_tlv", "fc_pp_tlv", "str", "tlv")
    # The usable servers of a backend (HAProxy's nbsrv: up, weight above 0,
    # not in maintenance; the backup ones when no active one is), e.g.
    # monitor_fail = "nbsrv(app) lt 1".
    add("nbsrv", "nbsrv", "int", "backend")
    # stick counters (HAProxy's sc_*(N[,table]), sc0_*..sc2_*([table]),
    # src_*([table])); the table_* converters are parsed in _parse_acl_words
    for sfx, (_, op) in STICK_SUFFIXES.items():
        kind = "bool" if op == "tracked" else "int"
        if sfx in _TABLE_ONLY:
            continue
        table[f"sc_{sfx}"] = _Fetch(f"sc_{sfx}", kind, "ctr", _DEFAULT_METHOD[kind])
        for n in range(STICK_COUNTERS):
            table[f"sc{n}_{sfx}"] = _Fetch(f"sc_{sfx}", kind, f"sc{n}", _DEFAULT_METHOD[kind])
        if op != "tracked":
            table[f"src_{sfx}"] = _Fetch(f"src_{sfx}", kind, "table?", _DEFAULT_METHOD[kind])
    return table


# fc_pp_tlv's names (HAProxy's) -> the TLV type, or the SSL sub-TLV (0x2N)
PP_TLV_NAMES = {"ALPN": 0x01, "AUTHORITY": 0x02, "CRC32C": 0x03, "NOOP": 0x04, "UNIQUE_ID": 0x05,
                "SSL": 0x20, "SSL_VERSION": 0x21, "SSL_CN": 0x22, "SSL_CIPHER": 0x23,
                "SSL_SIG_ALG": 0x24, "SSL_KEY_ALG": 0x25, "NETNS": 0x30}


# What a stick-counter fetch reads: suffix -> (data type, operation):
# "get" the value, "kb" the value / 1024, "inc"/"clr" change a gpc and give
# its value (HAProxy's sc_inc_gpc0 is a fetch with a side effect),
# "trackers" the sessions tracking the entry, "tracked" whether the
# counter tracks anything.
STICK_COUNTERS = 3
STICK_SUFFIXES = {
    "conn_cnt": ("conn_cnt", "get"), "conn_cur": ("conn_cur", "get"),
    "conn_rate": ("conn_rate", "get"), "sess_cnt": ("sess_cnt", "get"),
    "sess_rate": ("sess_rate", "get"), "http_req_cnt": ("http_req_cnt", "get"),
    "http_req_rate": ("http_req_rate", "get"), "http_err_cnt": ("http_err_cnt", "get"),
    "http_err_rate": ("http_err_rate", "get"), "bytes_in_rate": ("bytes_in_rate", "get"),
    "bytes_out_rate": ("bytes_out_rate", "get"), "kbytes_in": ("bytes_in_cnt", "kb"),
    "kbytes_out": ("bytes_out_cnt", "kb"), "gpc0_rate": ("gpc0_rate", "get"),
    "gpc1_rate": ("gpc1_rate", "get"), "get_gpc0": ("gpc0", "get"), "get_gpc1": ("gpc1", "get"),
    "get_gpt0": ("gpt0", "get"), "inc_gpc0": ("gpc0", "inc"), "inc_gpc1": ("gpc1", "inc"),
    "clr_gpc0": ("gpc0", "clr"), "clr_gpc1": ("gpc1", "clr"), "trackers": ("", "trackers"),
    "tracked": ("", "tracked"),
    # table_* converter names only
    "gpc0": ("gpc0", "get"), "gpc1": ("gpc1", "get"), "gpt0": ("gpt0", "get"),
    "server_id": ("server_id", "get"),
}
_TABLE_ONLY = frozenset(("gpc0", "gpc1", "gpt0", "server_id"))
# table_<suffix>(NAME) converters: every suffix that reads
TABLE_CONVERTERS = {f"table_{sfx}": v for sfx, v in STICK_SUFFIXES.items()
                    if v[1] in ("get", "kb", "trackers") and not sfx.startswith("get_")}
_STICK_ARGS = ("ctr", "table?", "sc0", "sc1", "sc2")


# ACL keyword -> meaning. Read-only by convention.
FETCHES: dict[str, _Fetch] = _build_fetches()
# the canonical names of the stick-counter fetches and table_* converters
STICK_BASES = frozenset({f.base for f in FETCHES.values() if f.arg in _STICK_ARGS}
                        | set(TABLE_CONVERTERS))

# HAProxy's predefined ACLs (section 7.4) that make sense here. A user ACL
# of the same name takes precedence, as in HAProxy.
PREDEFINED_ACLS: dict[str, str] = {
    "TRUE": "always_true",
    "FALSE": "always_false",
    "HTTP": "always_true",          # every farm request that reaches rules is HTTP
    "HTTP_1.0": "req.ver 1.0",
    "HTTP_1.1": "req.ver 1.1",
    "HTTP_2.0": "req.ver 2.0",
    "HTTP_URL_ABS": "url_reg ^[^/:]*://",
    "HTTP_URL_SLASH": "url_beg /",
    "HTTP_URL_STAR": "url *",
    "LOCALHOST": "src 127.0.0.1/8 ::1",
    "METH_CONNECT": "method CONNECT",
    "METH_DELETE": "method DELETE",
    "METH_GET": "method GET HEAD",
    "METH_HEAD": "method HEAD",
    "METH_OPTIONS": "method OPTIONS",
    "METH_POST": "method POST",
    "METH_PUT": "method PUT",
    "METH_TRACE": "method TRACE",
}

_FETCH_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)(?:\((.*)\))?", re.S)
_DN_ENTRY_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*|\d+(?:\.\d+)+")   # CN, emailAddress, 2.5.4.3
_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ACL_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_INT_OPS = ("eq", "ge", "gt", "le", "lt")


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------- ACL spec

IpNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IntRange = tuple[Union[int, None], Union[int, None]]   # inclusive; None = open


@dataclass(frozen=True)
class AclSpec:
    """One parsed ACL line.

    fetch is the keyword as written ("hdr_dom"), base the canonical fetch
    ("hdr"), arg the normalised argument (header names lowercased, cookie
    and parameter names as written, None without parentheses), kind the
    sample type, method the match method, icase the -i flag. The patterns
    are in exactly one of: values (str methods other than len; regexes
    already validated), ranges (int and len), networks (ip). found and bool
    have none.
    """

    text: str
    fetch: str
    base: str
    arg: str | None
    kind: str
    method: str
    icase: bool = False
    values: tuple[str, ...] = ()
    ranges: tuple[IntRange, ...] = ()
    networks: tuple[IpNetwork, ...] = ()
    # stick tables: the table named by the fetch (None: the default one)
    # and, for a table_* converter, the sample that is the key (base is
    # then the converter's name and arg the table's)
    table: str | None = None
    key: "Sample | None" = None


def _latin1(value: str, what: str) -> bytes:
    # Requests are matched as bytes; a config character outside Latin-1
    # could never equal a request byte, so refuse it rather than never match.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise ConditionError(f"{what} {value!r} contains a character outside Latin-1") from None


def _compile_regex(pattern: str, icase: bool) -> re.Pattern:
    """Compile a pattern exactly as workers/rules.py will (bytes, latin-1)."""
    raw = _latin1(pattern, "regex")
    try:
        return re.compile(raw, re.IGNORECASE if icase else 0)
    except re.error as e:
        raise ConditionError(f"bad regex {pattern!r}: {e}") from None


def _parse_int(word: str, fetch: str) -> int:
    try:
        if not re.fullmatch(r"[+-]?\d+", word):
            raise ValueError
        return int(word)
    except ValueError:
        raise ConditionError(f"{fetch}: {word!r} is not an integer "
                             f"(integer patterns: N, MIN:MAX, or eq|ge|gt|le|lt N)") from None


def _parse_ranges(values: list[str], fetch: str) -> tuple[IntRange, ...]:
    """HAProxy integer patterns: N, MIN:MAX, :MAX, MIN:, and operators
    eq/ge/gt/le/lt that apply to every following value until the next
    operator ("gt 1" = at least 2)."""
    ranges: list[IntRange] = []
    op = ""
    for word in values:
        if word in _INT_OPS:
            op = word
            continue
        if ":" in word:
            if op:
                raise ConditionError(f"{fetch}: a range ({word!r}) cannot follow operator {op!r}")
            lo_s, hi_s = word.split(":", 1)
            lo = _parse_int(lo_s, fetch) if lo_s else None
            hi = _parse_int(hi_s, fetch) if hi_s else None
            if lo is None and hi is None:
                raise ConditionError(f"{fetch}: range {word!r} needs at least one bound")
            if lo is not None and hi is not None and lo > hi:
                raise ConditionError(f"{fetch}: empty range {word!r} (min > max)")
            ranges.append((lo, hi))
            continue
        n = _parse_int(word, fetch)
        ranges.append({"": (n, n), "eq": (n, n), "ge": (n, None), "gt": (n + 1, None),
                       "le": (None, n), "lt": (None, n - 1)}[op])
    if values and values[-1] in _INT_OPS:
        raise ConditionError(f"{fetch}: operator {values[-1]!r} needs a number after it")
    return tuple(ranges)


def _parse_networks(values: list[str]) -> tuple[IpNetwork, ...]:
    nets = []
    for word in values:
        try:
            # strict=False: HAProxy accepts "10.1.2.3/8" as 10.0.0.0/8.
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            raise ConditionError(f"src: {word!r} is not an IPv4/IPv6 address or network "
                                 f"(host names are not resolved)") from None
    return tuple(nets)


def _parse_fetch_word(word: str) -> tuple[str, _Fetch, str | None]:
    m = _FETCH_RE.fullmatch(word)
    if m is None:
        if "(" in word and not word.endswith(")"):
            raise ConditionError(f"missing ')' in {word!r}")
        raise ConditionError(f"invalid fetch {word!r}")
    name, arg = m.group(1), m.group(2)
    info = FETCHES.get(name)
    if info is None:
        raise ConditionError(f"unknown fetch {name!r}{_suggest(name, FETCHES)}")
    if info.arg == "":
        if arg is not None:
            raise ConditionError(f"{name} takes no argument")
        return name, info, None
    if info.arg in _STICK_ARGS:
        return name, info, _stick_arg(name, info.arg, arg)
    if info.arg == "dn":
        # ssl_c_s_dn / ssl_c_i_dn: the whole DN, or one entry (the last
        # one of that name); HAProxy's occurrence and format are not here
        if arg is None:
            return name, info, None
        if "," in arg:
            raise ConditionError(f"{name}({arg}): only the entry name is supported, e.g. {name}(CN)")
        if not _DN_ENTRY_RE.fullmatch(arg):
            raise ConditionError(f"{name}({arg}): invalid DN entry name (e.g. CN, O, emailAddress)")
        return name, info, arg
    if info.arg == "tlv":
        # fc_pp_tlv: a TLV type by HAProxy's name or number (0-255)
        if arg is not None and arg.upper() in PP_TLV_NAMES:
            return name, info, arg.upper()
        try:
            number = int(arg or "", 0)          # 225 or 0xE1
        except ValueError:
            number = -1
        if 0 <= number <= 255:
            return name, info, str(number)
        raise ConditionError(f"{name}({arg or ''}): expected a TLV type, a number 0-255 or one of "
                             f"{', '.join(PP_TLV_NAMES)}")
    what = {"header": "a header name", "cookie": "a cookie name", "param": "a parameter name",
            "backend": "a backend name"}[info.arg]
    if not arg:
        raise ConditionError(f"{name} needs {what}: {name}(NAME)")
    if "," in arg:
        raise ConditionError(f"{name}({arg}): only one argument ({what}) is supported")
    if info.arg == "header":
        if not _HEADER_NAME_RE.fullmatch(arg):
            raise ConditionError(f"{name}({arg}): invalid header name")
        arg = arg.lower()   # header names are case-insensitive; match on lowercase
    elif any(c in _SPACE or c in ";=&" for c in arg):
        raise ConditionError(f"{name}({arg}): invalid {what}")
    _latin1(arg, "argument")
    return name, info, arg


_TABLE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")


def _stick_arg(name: str, kind: str, arg: str | None) -> str | None:
    """The argument of a stick-counter fetch, normalised to "N" or
    "N,TABLE" (sc_*, scN_*) or "TABLE" / None (src_*)."""
    if kind == "table?":
        if arg is None or arg == "":
            return None
        if not _TABLE_NAME_RE.fullmatch(arg):
            raise ConditionError(f"{name}({arg}): expected a table name")
        return arg
    if kind == "ctr":
        if not arg:
            raise ConditionError(f"{name} needs a counter number: {name}(0)")
        ctr, _, table = arg.partition(",")
        ctr, table = ctr.strip(), table.strip()
    else:
        ctr, table = kind[2], (arg or "").strip()
    if ctr not in ("0", "1", "2"):
        raise ConditionError(f"{name}({arg}): the counter number is 0, 1 or 2")
    if table and not _TABLE_NAME_RE.fullmatch(table):
        raise ConditionError(f"{name}({arg}): {table!r} is not a table name")
    return f"{ctr},{table}" if table else ctr


def split_converters(expr: str) -> list[str]:
    """"fetch(arg),conv1,conv2" -> its parts, split on commas outside
    parentheses."""
    parts, depth, start = [], 0, 0
    for k, c in enumerate(expr):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(expr[start:k])
            start = k + 1
    parts.append(expr[start:])
    return parts


def stick_table_of(spec: "AclSpec") -> str | None:
    """The table an ACL's stick fetch names explicitly, else None."""
    if spec.key is not None or (spec.base in STICK_BASES and spec.base.startswith("src_")):
        return spec.arg
    if spec.base.startswith("sc_") and spec.arg and "," in spec.arg:
        return spec.arg.split(",", 1)[1]
    return None


def is_stick_fetch(base: str) -> bool:
    return base in STICK_BASES


def _parse_table_converter(word: str, text: str) -> tuple[str, str, "Sample"]:
    """"fetch(arg),table_xxx(NAME)" -> (converter, table, key sample)."""
    parts = split_converters(word)
    if len(parts) != 2:
        raise ConditionError(f"{word!r}: only one converter, a table_* lookup, is supported in ACLs")
    conv = parts[1].strip()
    m = re.fullmatch(r"([a-z0-9_]+)\(([^()]*)\)", conv)
    if m is None or m.group(1) not in TABLE_CONVERTERS:
        raise ConditionError(f"{word!r}: unsupported converter {conv!r} (ACLs take the table_* "
                             f"lookups: {', '.join(sorted(TABLE_CONVERTERS))})")
    table = m.group(2).strip()
    if not _TABLE_NAME_RE.fullmatch(table):
        raise ConditionError(f"{conv}: expected a table name")
    return m.group(1), table, parse_key_sample(parts[0])


def parse_key_sample(expr: str) -> "Sample":
    """A tracking key or table lookup key ("src", "req.hdr(x-api-key)") ->
    Sample. Raises ConditionError."""
    name = expr.strip().split("(", 1)[0]
    if name in FETCHES and is_stick_fetch(FETCHES[name].base):
        raise ConditionError(f"{expr!r}: a stick counter cannot be a key")
    return _parse_sample(expr.strip())


_NEGATIVE_NUMBER = re.compile(r"-\d+")
_KIND_NAME = {"str": "string", "int": "integer", "ip": "address", "bool": "boolean",
              "bin": "binary"}


def _parse_acl_words(words: list[str], text: str) -> AclSpec:
    """The ACL parser proper, on already tokenized words."""
    if not words or not words[0]:
        raise ConditionError("empty ACL: expected 'fetch [flags] [values]'")
    if len(split_converters(words[0])) > 1:
        conv, table, key = _parse_table_converter(words[0], text)
        values = words[1:]
        if values and values[0] == "-m" and len(values) > 1 and values[1] == "int":
            values = values[2:]
        if not values:
            raise ConditionError(f"{words[0]}: no values to match")
        return AclSpec(text, words[0], conv, table, "int", "int",
                       ranges=_parse_ranges(values, conv), table=table, key=key)
    fetch, info, arg = _parse_fetch_word(words[0])
    method = info.method
    icase = False
    explicit_m = False
    i = 1
    while i < len(words):
        w = words[i]
        if not w.startswith("-") or len(w) < 2:
            break
        if w == "--":
            i += 1
            break
        if w == "-i":
            icase = True
        elif w == "-n":
            pass  # "no DNS resolution": farm never resolves, nothing to do
        elif w == "-m":
            if i + 1 >= len(words):
                raise ConditionError(f"{fetch}: '-m' needs a method ({' '.join(MATCH_METHODS)})")
            method = words[i + 1]
            if method not in MATCH_METHODS:
                raise ConditionError(f"{fetch}: unknown match method '-m {method}' (known: "
                                     f"{' '.join(MATCH_METHODS)}){_suggest(method, MATCH_METHODS)}")
            explicit_m = True
            i += 1
        elif w in ("-f", "-M", "-u"):
            raise ConditionError(f"{fetch}: flag {w!r} is not supported (no pattern files or maps)")
        elif _NEGATIVE_NUMBER.fullmatch(w):
            break  # a negative number is a value, not a flag
        else:
            raise ConditionError(f"{fetch}: unknown flag {w!r} (flags: -i, -m METHOD, --; "
                                 f"write '-- {w}' if it is a value)")
        i += 1
    values = words[i:]
    kind = info.kind
    if kind == "bool":
        if explicit_m or values:
            raise ConditionError(f"{fetch} is a boolean fetch: it takes no flags or values")
        return AclSpec(text, fetch, info.base, arg, kind, "bool", icase,
                       table=_spec_table(info.base, arg))
    if explicit_m and method not in _METHODS_FOR_KIND[kind]:
        raise ConditionError(f"{fetch}: '-m {method}' does not apply to this {_KIND_NAME[kind]} fetch "
                             f"(use {', '.join('-m ' + m for m in _METHODS_FOR_KIND[kind])})")
    if method == "found":
        if values:
            raise ConditionError(f"{fetch}: '-m found' takes no values")
        return AclSpec(text, fetch, info.base, arg, kind, "found", icase)
    if not values:
        raise ConditionError(f"{fetch}: no values to match (add values, or use '-m found')")
    if method in ("int", "len"):
        return AclSpec(text, fetch, info.base, arg, kind, method, icase,
                       ranges=_parse_ranges(values, fetch), table=_spec_table(info.base, arg))
    if method == "ip":
        return AclSpec(text, fetch, info.base, arg, kind, method, icase,
                       networks=_parse_networks(values))
    if method == "bin":
        for v in values:
            if not _HEX_RE.fullmatch(v):
                raise ConditionError(f"{fetch}: {v!r} is not hexadecimal (binary samples match "
                                     "hex patterns, e.g. 5A3F...)")
        return AclSpec(text, fetch, info.base, arg, kind, method, icase, values=tuple(values))
    for v in values:
        if method == "reg":
            _compile_regex(v, icase)
        else:
            _latin1(v, "value")
    return AclSpec(text, fetch, info.base, arg, kind, method, icase, values=tuple(values))


def _spec_table(base: str, arg: str | None) -> str | None:
    if base not in STICK_BASES:
        return None
    if base.startswith("src_"):
        return arg
    if base.startswith("sc_") and arg and "," in arg:
        return arg.split(",", 1)[1]
    return None


def parse_acl(text: str) -> AclSpec:
    """Parse one ACL line (`fetch[(arg)] [flags] [values...]`) -> AclSpec.

    Accepts the text as written in the config (one line of a named ACL or
    the inside of an anonymous `{ }`). Validates the fetch and its argument,
    the flags, regexes (compiled as latin-1 bytes, as at run time), integer
    patterns and addresses/CIDRs. Raises ConditionError with a message
    naming the offending word.
    """
    return _parse_acl_words(tokenize(text), text.strip())


def check_acl(text: str) -> list[str]:
    """Error messages for one ACL line; [] when it is valid."""
    try:
        parse_acl(text)
    except ConditionError as e:
        return [str(e)]
    return []


# -------------------------------------------------------------- conditions

@dataclass(frozen=True)
class Term:
    """One term of an AND group: a named ACL (name) or an anonymous one
    (acl), negated by `!` when negate is True. Exactly one of name/acl is
    set (parse_condition never returns the all-None placeholder that
    check_condition uses internally for an anonymous ACL it could not
    parse)."""

    negate: bool
    name: str | None = None
    acl: AclSpec | None = None


@dataclass(frozen=True)
class CondSpec:
    """A parsed condition: groups is an OR of ANDs of terms (at least one
    group, each with at least one term). text is the source."""

    text: str
    groups: tuple[tuple[Term, ...], ...]


def _parse_condition(text: str, errors: list[str] | None) -> CondSpec:
    """Shared parser. With errors=None, raise on the first problem; with a
    list, syntax errors still stop parsing, but anonymous-ACL problems are
    collected and parsing goes on so that check_condition reports them all.
    """
    def fail(message: str) -> None:
        if errors is None:
            raise ConditionError(message)
        errors.append(message)

    words = tokenize(text)
    groups: list[tuple[Term, ...]] = []
    cur: list[Term] = []
    neg = False
    i = 0
    while i < len(words):
        w = words[i]
        i += 1
        # HAProxy strips every leading '!' (each one toggles) and accepts a
        # lone '!' that applies to the next word.
        while w.startswith("!"):
            neg = not neg
            w = w[1:]
        if not w:
            continue
        if w == "||" or w.lower() == "or":
            if neg:
                raise ConditionError(f"'!' before {w!r}: a '!' must precede an ACL")
            if not cur:
                raise ConditionError(f"{w!r} with no term before it")
            groups.append(tuple(cur))
            cur = []
            continue
        if w == "{":
            try:
                j = words.index("}", i)
            except ValueError:
                raise ConditionError("'{' without a closing '}' (braces are separate words: "
                                     "'{ path_beg /api }')") from None
            inner = words[i:j]
            i = j + 1
            if not inner:
                raise ConditionError("empty anonymous ACL '{ }'")
            inner_text = " ".join(inner)
            try:
                cur.append(Term(neg, None, _parse_acl_words(inner, inner_text)))
            except ConditionError as e:
                fail(f"in '{{ {inner_text} }}': {e}")
                # collecting: keep a placeholder so the structure checks
                # (e.g. "'||' with no term before it") stay right
                cur.append(Term(neg, None, None))
            neg = False
            continue
        if w == "}":
            raise ConditionError("'}' without a matching '{'")
        if w.startswith("{"):
            raise ConditionError(f"{w!r}: put a space after '{{' (HAProxy syntax: '{{ fetch args }}')")
        if not _ACL_NAME_RE.fullmatch(w):
            raise ConditionError(f"invalid ACL name {w!r} (allowed: letters, digits, "
                                 f"'_', '.', ':', '-'; anonymous ACLs go in '{{ }}')")
        cur.append(Term(neg, w, None))
        neg = False
    if neg:
        raise ConditionError("'!' at the end of the condition")
    if not cur:
        raise ConditionError("'||' at the end of the condition" if groups else "empty condition")
    groups.append(tuple(cur))
    return CondSpec(text.strip(), tuple(groups))


def parse_condition(text: str) -> CondSpec:
    """Parse an if/unless condition -> CondSpec (OR of ANDs of terms).

    Named ACLs are not resolved here (see check_condition); anonymous ACLs
    are fully parsed. Raises ConditionError on the first problem.
    """
    return _parse_condition(text, None)


def check_condition(text: str, acl_names: set[str]) -> list[str]:
    """Error messages for an if/unless condition; [] when it is valid.

    acl_names are the ACLs defined in scope; HAProxy's predefined ACLs
    (TRUE, LOCALHOST, METH_GET, ...) are always known. Reports syntax
    errors, every bad anonymous ACL and every unknown ACL name.
    """
    errors: list[str] = []
    try:
        spec = _parse_condition(text, errors)
    except ConditionError as e:
        return errors + [str(e)]
    for group in spec.groups:
        for term in group:
            if term.name is not None and term.name not in acl_names \
                    and term.name not in PREDEFINED_ACLS:
                known = set(acl_names) | set(PREDEFINED_ACLS)
                errors.append(f"unknown ACL {term.name!r}{_suggest(term.name, known)}")
    return errors


def backends_fetched(text: str, acl_line: bool = False) -> set[str]:
    """The backend names that fetches take as argument (nbsrv(NAME)) in a
    condition's anonymous ACLs, or in an ACL line (acl_line), for the
    loader's check that they exist; an empty set when text does not parse."""
    try:
        if acl_line:
            specs = [parse_acl(text)]
        else:
            specs = [t.acl for g in parse_condition(text).groups for t in g if t.acl is not None]
    except ConditionError:
        return set()
    # (a spec's fetch may not be in FETCHES: a stick-table lookup such as
    # "req.hdr(x-api-key),table_http_req_rate(api)")
    return {s.arg for s in specs
            if s.arg and getattr(FETCHES.get(s.fetch), "arg", None) == "backend"}


_HOST_HEADER_FETCHES = ("hdr", "req.hdr", "fhdr", "req.fhdr")


def literal_hosts(spec: AclSpec) -> tuple[str, ...]:
    """The host names an ACL matches as literal strings: a Host header
    (hdr(host), req.hdr(host), fhdr(host)) or the TLS server name
    (ssl_fc_sni) compared by exact match (-m str, their default), with or
    without -i. Lowercased, a Host value's ":port" and a final dot
    dropped, in order, without repeats. () for any other ACL: a prefix,
    suffix, domain or regex match names no host, and neither does another
    fetch."""
    if spec.method != "str":
        return ()
    if spec.base == "ssl_fc_sni":
        is_header = False
    elif spec.base in _HOST_HEADER_FETCHES and spec.arg == "host":
        is_header = True
    else:
        return ()
    out: list[str] = []
    for value in spec.values:
        name = value.lower()
        if is_header and not name.startswith("["):
            host, sep, port = name.rpartition(":")
            if sep and port.isdigit():
                name = host
        name = name.rstrip(".")
        if name and name not in out:
            out.append(name)
    return tuple(out)


def referenced_acls(cond) -> set[str]:
    """Names of the ACLs a condition refers to (predefined ones included).

    Accepts a CondSpec, a condition string, or anything with a .text (a
    model.Condition); raises ConditionError if the text does not parse.
    """
    if isinstance(cond, str):
        cond = parse_condition(cond)
    elif not isinstance(cond, CondSpec):
        cond = parse_condition(cond.text)
    return {t.name for g in cond.groups for t in g if t.name is not None}


# ------------------------------------------------------------ log-format

@dataclass(frozen=True)
class Sample:
    """A `%[fetch(arg),converter...]` inside a log-format string.

    fetch is the canonical base (see FETCHES), arg normalised as for ACLs,
    converters a tuple of converter names ("lower", "upper").
    """

    fetch: str
    arg: str | None
    converters: tuple[str, ...] = ()


# Fetches usable as values in %[...]: the non-derived keywords.
_SAMPLE_FETCHES = {name for name, f in FETCHES.items()
                   if f.method == _DEFAULT_METHOD[f.kind] and f.arg not in _STICK_ARGS}
_CONVERTERS = ("lower", "upper", "hex")
# HAProxy's short log-format variables that have a meaning here.
_SHORT_VARS = {"ci": Sample("src", None), "cp": Sample("src_port", None),
               "fp": Sample("dst_port", None)}

FormatPart = Union[str, Sample]


def _parse_sample(expr: str) -> Sample:
    parts = split_converters(expr)
    head = parts[0].strip()
    name = head.split("(", 1)[0]
    if name in FETCHES and name not in _SAMPLE_FETCHES:
        raise ConditionError(f"%[{expr}]: {name!r} is an ACL keyword, not a sample fetch "
                             f"(use {FETCHES[name].base!r})")
    name, info, arg = _parse_fetch_word(head)
    if info.kind == "bool" and info.base.startswith("always_"):
        raise ConditionError(f"%[{expr}]: {name!r} has no value to insert")
    convs = []
    for conv in parts[1:]:
        conv = conv.strip()
        if conv not in _CONVERTERS:
            raise ConditionError(f"%[{expr}]: unsupported converter {conv!r} "
                                 f"(supported: {', '.join(_CONVERTERS)})")
        convs.append(conv)
    return Sample(info.base, arg, tuple(convs))


def parse_format(text: str) -> tuple[FormatPart, ...]:
    """Parse a log-format string (header values, redirect targets, set-path,
    set-query) into literal str parts and Sample parts.

    Supported: `%[fetch]`, `%[fetch(arg)]` with optional `,lower`/`,upper`
    /`,hex` converters, for the fetches of FETCHES that are not derived ACL
    keywords (path, url, query, method, req.ver, src, src_port, dst_port,
    status, hdr/req.hdr/res.hdr, fhdr..., hdr_cnt..., req.cook/cook, res.cook,
    url_param/urlp, the ssl_fc* and ssl_c_* ones: booleans insert 1 or 0,
    binary ones their raw bytes, hex-encoded by ,hex); `%ci` `%cp` `%fp`;
    `%%` for a literal '%'. Any other
    '%' is kept literally. Adjacent literals are merged. Raises
    ConditionError for an unclosed `%[` or an unknown fetch/converter.
    """
    out: list[FormatPart] = []
    lit: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "%" or i + 1 >= n:
            lit.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "%":
            lit.append("%")
            i += 2
        elif nxt == "[":
            j = text.find("]", i + 2)
            if j < 0:
                raise ConditionError(f"unclosed '%[' in {text!r}")
            if lit:
                out.append("".join(lit))
                lit = []
            out.append(_parse_sample(text[i + 2:j]))
            i = j + 1
        elif text[i + 1:i + 3] in _SHORT_VARS:
            if lit:
                out.append("".join(lit))
                lit = []
            out.append(_SHORT_VARS[text[i + 1:i + 3]])
            i += 3
        else:
            lit.append(c)
            i += 1
    if lit:
        out.append("".join(lit))
    for part in out:
        if isinstance(part, str):
            _latin1(part, "text")
    return tuple(out)


def check_format(text: str) -> list[str]:
    """Error messages for a log-format string; [] when it is valid."""
    try:
        parse_format(text)
    except ConditionError as e:
        return [str(e)]
    return []


ReplacementPart = Union[str, int, Sample]


def parse_replacement(text: str, groups: int | None = None) -> tuple[ReplacementPart, ...]:
    """Parse the replacement of replace-header / replace-path.

    HAProxy's rules: `\\N` (one digit) inserts capture group N (empty when
    the group did not participate), `\\xHH` a byte, a backslash before any
    other character yields that character; the rest is a log-format string
    (`%[...]`). Returns str literals, int group numbers and Samples. With
    groups (the regex's group count) given, a reference past it is an
    error. Raises ConditionError.

    Differs from HAProxy in one way: HAProxy expands %[...] first and then
    interprets backslashes in the result, so a backslash coming from a
    request value could act as a group reference; here inserted sample
    values are always literal.
    """
    out: list[ReplacementPart] = []
    seg: list[str] = []       # pending log-format text

    def flush() -> None:
        if seg:
            out.extend(parse_format("".join(seg)))
            seg.clear()

    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "\\":
            seg.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise ConditionError(f"replacement {text!r} ends with a lone backslash")
        e = text[i + 1]
        if e.isdigit():
            num = int(e)
            if groups is not None and num > groups:
                raise ConditionError(f"replacement refers to \\{num} but the regex has "
                                     f"{groups} group{'s' if groups != 1 else ''}")
            flush()
            out.append(num)
            i += 2
        elif e == "x":
            hexa = text[i + 2:i + 4]
            if not re.fullmatch(r"[0-9A-Fa-f]{2}", hexa):
                raise ConditionError(f"replacement {text!r}: '\\x' needs two hex digits")
            code = int(hexa, 16)
            if (code < 0x20 and code != 0x09) or code == 0x7F:
                # a CR/LF/NUL produced at run time would split or break the
                # header being rewritten
                raise ConditionError(f"replacement {text!r}: '\\x{hexa}' is a control character")
            # its own literal part, so that it is never read as '%' syntax
            flush()
            out.append(chr(code))
            i += 4
        else:
            # "\%" is a literal percent too, so keep it out of format parsing
            if e == "%":
                flush()
                out.append("%")
            else:
                seg.append(e)
            i += 2
    flush()
    # merge adjacent literals
    merged: list[ReplacementPart] = []
    for p in out:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    return tuple(merged)


def check_replacement(text: str, regex: str) -> list[str]:
    """Error messages for a (match regex, replacement) pair; [] if valid."""
    try:
        rx = _compile_regex(regex, False)
        parse_replacement(text, rx.groups)
    except ConditionError as e:
        return [str(e)]
    return []
