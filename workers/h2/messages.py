"""HTTP/2 messages: the field rules of RFC 9113 section 8, and the
translation between HTTP/2 header lists and workers/http1.py's Request and
Response, so that rules, logs and workers/stream.py see one kind of message
whatever the protocol of either side.

Checking (pure, called by workers/h2/conn.py on every decoded header list;
each raises ``MalformedMessage(reason)``, which the connection turns into
a stream error PROTOCOL_ERROR, RFC 9113 section 8.1.1):

* ``check_request(fields)`` -> ``(method, scheme, path, authority, host,
  content_length, regular)`` where ``regular`` is the index of the first
  regular (non-pseudo) field;
* ``check_response(fields)`` -> ``(status, content_length, regular)``;
* ``check_trailers(fields)``.

The rules (strict where request smuggling lives, as workers/http1.py is;
the character classes are http1's, so both protocols accept the same
bytes):

* names: lowercase tokens (an uppercase letter, a space, a colon after the
  first byte, any non-token byte -> malformed). Stricter than RFC 9113
  section 8.2.1, which allows some non-token bytes that no HTTP/1.1 server
  would accept in a name.
* values: HTAB, SP, VCHAR and obs-text only (so no NUL, CR, LF or other
  control), and no leading or trailing SP/HTAB (section 8.2.1).
* pseudo-header fields: all before the regular fields; each at most once;
  only ``:method``, ``:scheme``, ``:path``, ``:authority`` in requests
  (``:protocol``, RFC 8441, is not supported: malformed), only ``:status``
  in responses, none in trailers.
* requests: ``:method`` (a token), ``:scheme`` (an RFC 3986 scheme) and
  ``:path`` are required, except for CONNECT, which has ``:method`` and
  ``:authority`` (host:port) only. ``:path`` is visible ASCII without
  ``#``, starts with ``/``, or is ``*`` for OPTIONS (section 8.3.1).
  ``:authority`` has the characters of an RFC 3986 host [":" port] and no
  userinfo.
* ``:authority`` and ``host``: at most one ``host``. When both are present
  they must name the same authority, compared as workers/http1.py compares
  an absolute-form target with Host (case-insensitively, a default port
  written on one side only being equal): otherwise malformed. Our choice:
  RFC 9113 section 8.3.1 only says a server SHOULD treat a differing Host
  as malformed; refusing it means rules and the server always see one
  host, as for HTTP/1.1's absolute form. A request with neither is
  malformed too, since the request goes on to HTTP/1.1 servers, where
  Host is required.
* connection-specific fields (section 8.2.2): ``connection``,
  ``keep-alive``, ``proxy-connection``, ``transfer-encoding``, ``upgrade``
  -> malformed; ``te`` with any value other than ``trailers`` -> malformed.
* ``content-length``: digits only, at most 2**63-1; several fields must
  agree. The connection then checks it against the DATA received
  (section 8.1.1).
* responses: ``:status`` exactly once, three digits; 101 is refused
  (section 8.6).

Translating:

* ``to_request(ev)``: a RequestReceived event -> ``http1.Request`` (version
  ``HTTP/2.0``, target ``:path``, or ``:authority`` for CONNECT;
  ``host`` from ``:authority``; a ``host`` field is added from
  ``:authority`` when absent, as RFC 9113 section 8.3.1 requires of an
  intermediary that goes to HTTP/1.1; split ``cookie`` fields joined with
  "; " (section 8.2.3); a body of unknown length is announced as
  ``transfer-encoding: chunked`` for HTTP/1.1 servers, the body bytes then
  framed with ``h1_chunk()`` / ``h1_last_chunk()``).
* ``response_fields(resp)``: an ``http1.Response`` from an HTTP/1.1 server
  -> the field list to send (``:status`` first, names lowercased,
  hop-by-hop fields dropped: those of http1.strip_hop_by_hop() and
  ``transfer-encoding``).
* ``request_fields(req, scheme)`` and ``to_response(status, fields,
  regular)``: the same in the other direction, for HTTP/2 to servers.
* ``trailer_fields(fields)``: HTTP/1.1 trailer fields -> HTTP/2 trailers.
"""

import re
from operator import itemgetter, methodcaller

from workers import http1
from workers.h2.errors import MalformedMessage
from workers.http1 import (BODY_CHUNKED, BODY_LENGTH, BODY_NONE, REASONS, Request, Response,
                           strip_hop_by_hop)

__all__ = ["check_request", "check_response", "check_trailers", "to_request",
           "response_fields", "head_fields", "request_fields", "to_response", "trailer_fields",
           "h1_chunk", "h1_last_chunk", "CONNECTION_SPECIFIC"]

# the character classes of workers/http1.py (one definition for both protocols)
_NAME_OK = http1._TCHAR.translate(None, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ") + b"\n"
_VALUE_OK = http1._VALUE_OK + b"\n"
_TCHAR = http1._TCHAR
_TARGET_OK = http1._TARGET_OK
_HOST_OK = http1._HOST_OK.replace(b"@", b"")
_AUTHORITY_RE = http1._AUTHORITY_RE
# translate() tables of the classes above (see http1.only_table)
_NAME_OK_T = http1.only_table(_NAME_OK)
_VALUE_OK_T = http1.only_table(_VALUE_OK)
_TCHAR_T = http1._TCHAR_T
_TARGET_OK_T = http1._TARGET_OK_T
_HOST_OK_T = http1.only_table(_HOST_OK)
_same_authority = http1._same_authority
_SCHEME_RE = re.compile(rb"[A-Za-z][A-Za-z0-9+\-.]*")
_USUAL_SCHEMES = frozenset((b"https", b"http"))
_USUAL_METHODS = frozenset((b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"))
_SEEN_MAX = 256             # fields remembered per connection (check_request)
_MAX_INT64 = 2 ** 63 - 1

CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection",
                                 b"transfer-encoding", b"upgrade"))
# names that need a look beyond syntax (found with one set intersection)
_SPECIAL = CONNECTION_SPECIFIC | {b"te", b"content-length", b"host"}
_WS = (b" ", b"\t")
_name_of = itemgetter(0)
_strip_ows = methodcaller("strip", b" \t")
_value_of = itemgetter(1)


def _check_regular(fields, start):
    """Syntax of fields[start:] (names and values, see the module
    docstring). Returns the set of special names present."""
    rest = fields[start:] if start else fields
    names = list(map(_name_of, rest))
    values = list(map(_value_of, rest))
    # one C pass per side: the joined names/values hold only allowed bytes
    # and as many LFs as separators (so no LF inside an element)
    jn = b"\n".join(names)
    if jn.translate(_NAME_OK_T) != jn or b"" in names or jn.count(b"\n") != len(names) - 1:
        _bad_name(names)
    jv = b"\n".join(values)
    # strip() returns the very object when there is nothing to strip, so the
    # list comparison is one pointer test per value
    if (jv.translate(_VALUE_OK_T) != jv or jv.count(b"\n") != len(values) - 1
            or list(map(_strip_ows, values)) != values):
        _bad_value(names, values)
    return _SPECIAL.intersection(names), names, values


def _bad_name(names):
    for name in names:
        if not name:
            raise MalformedMessage("empty field name")
        if name[0] == 58:
            raise MalformedMessage("pseudo-header field %r after a regular field"
                                   % (name[:32],))
        if name != name.lower():
            raise MalformedMessage("uppercase field name %r" % (name[:32],))
        if name.translate(None, _NAME_OK[:-1]):
            raise MalformedMessage("invalid field name %r" % (name[:32],))
    raise MalformedMessage("invalid field name")


def _bad_value(names, values):
    for name, value in zip(names, values):
        if value.translate(None, _VALUE_OK[:-1]):
            raise MalformedMessage("invalid character in the value of %r" % (name[:32],))
        if value[:1] in _WS or value[-1:] in _WS:
            raise MalformedMessage("whitespace around the value of %r" % (name[:32],))
    raise MalformedMessage("invalid field value")


def _content_length(names, values):
    cl = None
    for name, value in zip(names, values):
        if name == b"content-length":
            if not value.isdigit() or len(value) > 19 or int(value) > _MAX_INT64:
                raise MalformedMessage("invalid content-length %r" % (value[:32],))
            if cl is not None and int(value) != cl:
                raise MalformedMessage("conflicting content-length fields")
            cl = int(value)
    return cl


def _special_fields(sp, names, values, what):
    """Connection-specific fields and te (section 8.2.2); content-length."""
    bad = sp & CONNECTION_SPECIFIC
    if bad:
        raise MalformedMessage("connection-specific field %r in %s" % (min(bad), what))
    if b"te" in sp:
        for name, value in zip(names, values):
            if name == b"te" and value.lower() != b"trailers":
                raise MalformedMessage("te other than trailers")
    if b"content-length" in sp:
        return _content_length(names, values)
    return None


def check_request(fields: list, seen=None) -> tuple:
    """Check a request's header list (see the module docstring). Returns
    (method, scheme, path, authority, host, content_length, regular):
    absent pseudo-header fields, host and content-length are None.

    ``seen`` (optional, one set per connection) remembers the fields found
    valid, so that a field repeated by the next requests (the usual case:
    HPACK's dynamic table hands back the same fields) is not checked again.
    Only fields whose validity does not depend on the rest of the list go
    in (not host, content-length, te, connection-specific names)."""
    method = scheme = path = authority = None
    i = 0
    n = len(fields)
    while i < n:
        name, value = fields[i]
        if name[:1] != b":":
            break
        if name == b":method":
            if method is not None:
                raise MalformedMessage("duplicate :method")
            method = value
        elif name == b":path":
            if path is not None:
                raise MalformedMessage("duplicate :path")
            path = value
        elif name == b":scheme":
            if scheme is not None:
                raise MalformedMessage("duplicate :scheme")
            scheme = value
        elif name == b":authority":
            if authority is not None:
                raise MalformedMessage("duplicate :authority")
            authority = value
        else:
            raise MalformedMessage("unknown pseudo-header field %r in a request" % (name[:32],))
        i += 1
    host = cl = None
    if i < n and (seen is None or not seen.issuperset(fields[i:])):
        sp, names, values = _check_regular(fields, i)
        if sp:
            cl = _special_fields(sp, names, values, "a request")
            if b"host" in sp:
                if names.count(b"host") > 1:
                    raise MalformedMessage("more than one host field")
                host = values[names.index(b"host")]
                if not host or host.translate(_HOST_OK_T) != host:
                    raise MalformedMessage("invalid host field")
        if seen is not None:
            if len(seen) > _SEEN_MAX:
                seen.clear()
            if sp:
                seen.update([f for f in fields[i:] if f[0] not in _SPECIAL])
            else:
                seen.update(fields[i:])
    if method is None:
        raise MalformedMessage("missing :method")
    if method == b"CONNECT":
        if scheme is not None or path is not None:
            raise MalformedMessage("CONNECT with :scheme or :path")
        if authority is None or not _AUTHORITY_RE.fullmatch(authority):
            raise MalformedMessage("CONNECT needs an :authority host:port")
    else:
        if scheme is None:
            raise MalformedMessage("missing :scheme")
        if path is None:
            raise MalformedMessage("missing :path")
        if scheme not in _USUAL_SCHEMES and not _SCHEME_RE.fullmatch(scheme):
            raise MalformedMessage("invalid :scheme")
        if not path:
            raise MalformedMessage("empty :path")
        if path[0] != 47:
            if path != b"*" or method != b"OPTIONS":
                raise MalformedMessage(":path neither absolute nor * for OPTIONS")
        elif path.translate(_TARGET_OK_T) != path:
            raise MalformedMessage("invalid character in :path")
    if method not in _USUAL_METHODS and (not method or method.translate(_TCHAR_T) != method):
        raise MalformedMessage("invalid :method")
    if authority is not None and (not authority or authority.translate(_HOST_OK_T) != authority):
        raise MalformedMessage("invalid :authority")
    if host is not None:
        if authority is not None and not _same_authority(scheme + b"://" if scheme else b"",
                                                         authority, host):
            raise MalformedMessage("host differs from :authority")
    elif authority is None:
        raise MalformedMessage("no :authority and no host")
    return method, scheme, path, authority, host, cl, i


def check_response(fields: list) -> tuple:
    """Check a response's header list. Returns (status, content_length,
    regular)."""
    status = None
    i = 0
    n = len(fields)
    while i < n:
        name, value = fields[i]
        if name[:1] != b":":
            break
        if name != b":status":
            raise MalformedMessage("pseudo-header field %r in a response" % (name[:32],))
        if status is not None:
            raise MalformedMessage("duplicate :status")
        if len(value) != 3 or not value.isdigit():
            raise MalformedMessage("invalid :status %r" % (value[:16],))
        status = int(value)
        i += 1
    if status is None:
        raise MalformedMessage("missing :status")
    if status < 100 or status == 101:
        raise MalformedMessage(":status %d not allowed in HTTP/2" % status)
    cl = None
    if i < n:
        sp, names, values = _check_regular(fields, i)
        if sp:
            cl = _special_fields(sp, names, values, "a response")
    return status, cl, i


def check_trailers(fields: list) -> None:
    """Check a trailer section: no pseudo-header field, the field syntax,
    no connection-specific field."""
    if not fields:
        return
    for name, _ in fields:
        if name[:1] == b":":
            raise MalformedMessage("pseudo-header field %r in trailers" % (name[:32],))
    sp, names, values = _check_regular(fields, 0)
    if sp:
        _special_fields(sp, names, values, "trailers")


# --------------------------------------------------------------------------
# translation

def to_request(ev) -> Request:
    """The http1.Request for a RequestReceived event (see the module
    docstring). The request is keep-alive (the connection goes on).

    A request without a body whose header block the codec knows (ev.known:
    the same fields as before, say every request h2load or a browser
    repeats) is a copy of a template made the first time (kept in
    ev.known.derived): its head already serialized as the HTTP/1.1 bytes
    a server is sent, fields unsplit, as the HTTP/1.1 parser's fast path
    leaves a request (workers/lazyhead.py reads such heads in place)."""
    known = ev.known
    if known is None or not ev.end_stream:
        return _to_request(ev)
    tpl = known.derived
    if tpl is None:
        req = _to_request(ev)
        tpl = known.derived = _as_template(req)
        if tpl is False:
            return req              # (left as made: not a template)
    elif tpl is False:
        return _to_request(ev)
    t = tpl                         # typed (Request) once compiled: a C call
    return t._lazy_copy()


def _as_template(req):
    """req (a request without a body, just made by _to_request, held by
    nobody else) turned into a template: its head kept as raw bytes
    (serialize_request_head: the HTTP/1.1 head, Host included) with the
    fields unsplit, as _keep_raw leaves a head received over HTTP/1.1;
    False, req untouched, when it holds a hop-by-hop field (te: trailers)
    to strip first."""
    for k, _ in req._headers:
        if k in _DROPPED:
            return False
    raw = http1.serialize_request_head(req)
    req._headers = None
    req._keep_raw(raw)
    return req


def _to_request(ev) -> Request:
    """to_request() from the event's fields."""
    fields = ev.headers
    regular = ev.regular
    hs = fields[regular:]
    authority = ev.authority
    if ev.host is None:
        hs.insert(0, (b"host", authority))
    # one pass for the two names that need more than copying
    cookies = 0
    expect = False
    for field in hs:
        name = field[0]
        if name == b"cookie":
            cookies += 1
        elif name == b"expect":
            expect = True
    if cookies > 1:
        names = list(map(_name_of, hs))
        first = names.index(b"cookie")
        joined = b"; ".join([v for k, v in hs if k == b"cookie"])
        hs = [h for i, h in enumerate(hs) if i == first or h[0] != b"cookie"]
        hs[first] = (b"cookie", joined)
    method = ev.method
    cl = ev.content_length
    body_mode = BODY_NONE               # also the constructor's default
    chunked = False
    if ev.end_stream:
        pass
    elif cl is not None:
        if cl:
            body_mode = BODY_LENGTH
    elif method != b"CONNECT":
        # unknown length: HTTP/1.1 servers get it chunked
        body_mode = BODY_CHUNKED
        chunked = True
        hs.append((b"transfer-encoding", b"chunked"))
    req = Request(method, authority if method == b"CONNECT" else ev.path, b"HTTP/2.0", hs)
    req.keep_alive = True
    req.host = authority if authority is not None else ev.host
    req.content_length = cl
    req.body_mode = body_mode
    req.chunked = chunked
    if expect:
        for k, v in hs:
            if k == b"expect" and v.lower() == b"100-continue":
                req.expect_continue = True
    return req


def h1_chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk holding data (not empty: b"" would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def h1_last_chunk(trailers=None) -> bytes:
    """The last chunk of an HTTP/1.1 chunked body, with trailer fields
    (already checked: check_trailers)."""
    if not trailers:
        return b"0\r\n\r\n"
    return b"".join([b"0\r\n", *[k + b": " + v + b"\r\n" for k, v in trailers], b"\r\n"])


def response_fields(resp: Response) -> list:
    """The HTTP/2 field list of an http1.Response (a copy: resp is left
    as is)."""
    out = resp.lowercase_fields()
    if out is not None:
        # a head as received whose only hop-by-hop field (a plain
        # Connection) was cut, without Transfer-Encoding: nothing to drop
        out.insert(0, (b":status", _STATUS.get(resp.status) or b"%d" % resp.status))
        return out
    hs = resp.headers
    lnames = list(map(bytes.lower, map(_name_of, hs)))
    if not _DROPPED.isdisjoint(lnames):
        hs = hs[:]
        strip_hop_by_hop(hs)
        hs = [h for h in hs if h[0].lower() != b"transfer-encoding"]
        lnames = list(map(bytes.lower, map(_name_of, hs)))
    out = list(zip(lnames, map(_value_of, hs)))
    out.insert(0, (b":status", _STATUS.get(resp.status) or b"%d" % resp.status))
    return out


_STATUS = {code: b"%d" % code for code in REASONS}
_DROPPED = http1.HOP_BY_HOP | {b"transfer-encoding"}
_HEADS_MAX = 16             # heads a connection remembers (head_fields; emptied when full)
_HEAD_MAX_LEN = 2048        # longer heads are not remembered


def head_fields(resp: Response, memo: dict) -> tuple:
    """(fields, size, key) for the HEADERS of resp: response_fields(resp),
    their size as counted in bytes_out (name, value and 4 per field), and
    the key under which the encoder may remember the block
    (hpack.Encoder.encode), or None.

    A head as received (not split, nothing appended: what
    lowercase_fields() reads) is a function of its raw bytes and status
    alone; such heads are remembered in memo (one dict per connection:
    raw -> (raw, status, fields, size)), so that a server answering the
    same head again costs one lookup. memo[None] holds the last head
    found, compared first byte for byte (cheaper than hashing a new head);
    the key returned is the remembered raw object, whose hash is known.
    The fields are shared: read them, never change them."""
    raw = resp.raw
    if raw is None or resp._headers is not None or resp._appended is not None \
            or len(raw) > _HEAD_MAX_LEN:
        fields = response_fields(resp)
        return fields, sum([len(k) + len(v) + 4 for k, v in fields]), None
    status = resp.status
    hit = memo.get(None)
    if hit is None or hit[0] != raw or hit[1] != status:
        hit = memo.get(raw)
        if hit is None or hit[1] != status:
            fields = response_fields(resp)
            if len(memo) >= _HEADS_MAX:
                memo.clear()
            hit = memo[raw] = (raw, status, fields,
                               sum([len(k) + len(v) + 4 for k, v in fields]))
        memo[None] = hit
    return hit[2], hit[3], hit[0]


def trailer_fields(fields) -> list:
    """HTTP/1.1 trailer fields -> HTTP/2 trailers (lowercase names, no
    connection-specific field)."""
    out = []
    for k, v in fields:
        lk = k.lower()
        if lk not in CONNECTION_SPECIFIC and lk != b"te":
            out.append((lk, v))
    return out


def request_fields(req: Request, scheme: bytes = b"https") -> list:
    """The HTTP/2 field list of an http1.Request, for an HTTP/2 server:
    pseudo-header fields from the method, target and host; host, hop-by-hop
    fields and transfer-encoding dropped; te kept only as "trailers"
    (gRPC needs it)."""
    hs = req.headers[:]
    te_trailers = any(k.lower() == b"te" and v.lower() == b"trailers" for k, v in hs)
    strip_hop_by_hop(hs)
    authority = req.host
    if authority is None:
        authority = req.get(b"host")
    if req.method == b"CONNECT":
        out = [(b":method", b"CONNECT"), (b":authority", req.target)]
    else:
        out = [(b":method", req.method), (b":scheme", scheme)]
        if authority is not None:
            out.append((b":authority", authority))
        out.append((b":path", req.path + (b"?" + req.query if req.query else b"")
                    if req.target[:1] != b"/" and req.target != b"*" else req.target))
    for k, v in hs:
        lk = k.lower()
        if lk != b"host" and lk != b"transfer-encoding":
            out.append((lk, v))
    if te_trailers:
        out.append((b"te", b"trailers"))
    return out


def to_response(status: int, fields: list, regular: int, content_length=None) -> Response:
    """The http1.Response for a response's header list (checked:
    check_response). Version HTTP/2.0, keep-alive."""
    resp = Response(status, REASONS.get(status, b""), b"HTTP/2.0", fields[regular:])
    resp.keep_alive = True
    resp.content_length = content_length
    return resp
