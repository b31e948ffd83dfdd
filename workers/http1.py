"""Sans-IO HTTP/1.1 parser and serializer: bytes in, events out, never a socket.

This is the framing layer of the L7 proxy (workers/h1conn.py on the client
side, workers/server.py on the server side). It is strict where request
smuggling lives and cheap where a reverse proxy spends its
time: the end of a head is found with one ``bytes.find(b"\\r\\n\\r\\n")``, the
header block is validated *and* split into ``(name, value)`` pairs by one
precompiled regex ``findall`` (C speed, no per-byte Python loop), and a
search that did not find its terminator remembers where it stopped, so bytes
are never scanned twice when more data arrives.

Usage (one parser per direction per connection)::

    p = RequestParser()
    p.feed(data)                       # b"" (or p.close()) means EOF
    while True:
        ev = p.next_event()
        if ev is NEED_DATA: break      # read more, feed again
        if isinstance(ev, Request): ...            # the head; p.body_mode says what follows
        elif isinstance(ev, Data): send(ev.raw)    # raw wire bytes, forward unchanged
        elif ev is END_OF_MESSAGE: ...             # message complete; parser moves on
        elif ev is PAUSED: ...         # Upgrade/CONNECT request done: switch_to_tunnel() or resume()
        elif ev is CLOSED: ...         # no further message can arrive on this connection

Events returned by ``next_event()``:

* ``NEED_DATA`` -- feed more bytes (or EOF).
* a ``Request`` / ``Response`` -- a complete, validated head.
* ``Data(raw)`` -- body bytes exactly as received. For a chunked body that
  is the chunk-size lines, extensions, chunk data, CRLFs, the last chunk and
  the trailer section, each framing element validated *before* it is
  returned (a partial chunk-size line is held back until complete; chunk
  data is returned as it arrives). Relaying ``raw`` verbatim reproduces the
  body's wire framing without re-encoding.
* ``END_OF_MESSAGE`` (the single ``EndOfMessage`` instance) -- the message
  ended exactly here (Content-Length reached, last chunk + trailers read, or
  EOF for a close-delimited response). A head without a body (GET without
  Content-Length, HEAD response, 204, 304, ...) is followed directly by it.
* ``PAUSED`` (request side) -- the request just ended asked to switch
  protocols (``Connection: upgrade`` + ``Upgrade``, or CONNECT). Bytes after
  it are not parsed until the proxy knows the server's answer: call
  ``switch_to_tunnel()`` (returns the leftover bytes, parsing stops for good)
  or ``resume()`` (the upgrade was refused; parse the next request).
* ``TUNNEL`` (response side) -- a 101 to an upgrade request, or a 2xx to
  CONNECT, was just returned; HTTP framing is over. ``switch_to_tunnel()``
  returns the bytes that followed the head (the first tunnel bytes).
* ``CLOSED`` -- no further message: EOF arrived between messages, or the
  last message was not keep-alive (HTTP/1.1 ``Connection: close``, HTTP/1.0
  without keep-alive, a close-delimited response). Bytes after such a
  message are ignored (RFC 9112 section 9.6).

Pipelining is automatic: after ``END_OF_MESSAGE`` the next ``next_event()``
parses the next message from the bytes already buffered (no ``start_next()``
call needed); only an upgrade/CONNECT request pauses (see ``PAUSED``).

Errors: every protocol violation raises ``HttpError(status, reason)``; the
parser then stays broken (every later ``next_event()`` re-raises the same
error). Request-side statuses are 400, 414, 431, 501 and 505; every
response-side error is 502. Nothing from a head that failed validation is
ever returned, so the proxy can answer the error, log ``reason`` and close.
In a chunked body, the bytes validated before the faulty element are
returned first (a Data event) and the error comes with the next call; body
bytes already relayed cannot be taken back anyway, and this way the events
are the same however the bytes were split. The parsers give the same events
and the same status for any split of the input into feed() calls (the test
corpus checks whole, per line, per byte and random splits); for that, a 505
is only raised once the whole head is known to be free of 400 causes.

Fast paths for the common case: ``RequestParser.whole_request(data)`` and
``ResponseParser.whole_response(data)`` take a recv()'s bytes that hold
exactly one whole message (a request without a body; a response with its
whole Content-Length body) in one call, validated by the same functions as
next_event(), and leave the parser as the events would have; they return
None and change nothing otherwise (the caller then feeds the bytes). A
message taken that way keeps its received head (``raw``), which
``head_bytes()`` sends as is while nothing but appended fields changed.

ResponseParser needs ``expect(method, upgrade)`` once per request sent,
before the response arrives (HEAD and CONNECT change the framing; 101 is
only accepted after an upgrade request).

Strictness decisions (the RFC 9110/9112 MUSTs plus the smuggling hardening
HAProxy applies by default):

* Request line: exactly ``METHOD SP TARGET SP VERSION``; method a token;
  target only visible ASCII (0x21-0x7E) without ``#``; origin-form (``/...``),
  absolute-form (``http://`` / ``https://``, no userinfo), authority-form only
  for CONNECT (``host:port``) and ``*`` only for OPTIONS -> else 400.
  ``HTTP/1.0`` and ``HTTP/1.1`` only: another well-formed ``HTTP/d.d`` -> 505,
  anything else (``http/1.1``, trailing space) -> 400.
* Up to 8 empty lines (CRLF) before a request line are skipped (RFC 9112
  section 2.2); more, or any other junk, -> 400. A bare LF anywhere in a head
  -> 400 as soon as it is seen, and so is a non-token byte in the first 32
  bytes before the first SP (a TLS ClientHello is refused at once).
* Size: a head larger than ``max_head`` bytes -> 431, except when the request
  line alone does not end within ``max_head`` bytes -> 414 (in practice the
  URI is what is long). More than ``max_headers`` fields -> 431.
* Fields: a name must be a non-empty token (so whitespace before the colon,
  or a line that starts with SP/HTAB = obs-fold, is rejected); a value may
  hold HTAB, SP, VCHAR and obs-text only (NUL, CR, LF and other controls
  rejected). Values are stored without leading/trailing OWS. -> 400.
* Host: required in HTTP/1.1, at most one, characters of an RFC 3986 host
  [":" port] -> else 400. For an absolute-form target ``request.host`` is
  the target's authority (RFC 9112 section 3.2.2), the header is kept; a
  Host that names another authority -> 400 (as HAProxy does), so rules and
  server always see one host.
* Content-Length: 1*DIGIT, at most 2**63-1; anything else (sign, spaces,
  lists such as ``5, 5``, hex) -> 400. Several Content-Length fields: identical
  values are accepted and collapsed into the first one; different -> 400.
* Transfer-Encoding (requests): together with Content-Length -> 400; in an
  HTTP/1.0 request -> 400; more than one Transfer-Encoding field -> 400; the
  value must be a comma list of tokens (a tab or odd character -> 400); the
  final coding must be ``chunked`` (RFC 9112 6.3: else 400, e.g. ``identity``,
  ``xchunked``, ``chunked, identity``); ``chunked`` twice -> 400; any other
  coding before it (``gzip, chunked``) -> 501, since the proxy decodes none.
  ``Chunked`` in another case is accepted and rewritten to ``chunked`` in
  ``headers`` so the server sees the canonical spelling.
* Responses apply the same rules with 502, except that a coding list whose
  final coding is chunked (``gzip, chunked``) is accepted and passed on.
* Chunked framing: chunk-size 1-16 hex digits, nothing else (no sign,
  ``0x``, spaces, ``_``); BWS only before ``;``; extensions ``;name[=token
  or quoted-string]``; a size line longer than 4096 bytes; chunk data not
  followed by CRLF; a bare LF anywhere; Content-Length, Transfer-Encoding or
  Host in trailers -> 400 (502 in a response).
* Expect: ``100-continue`` sets ``expect_continue`` (HTTP/1.1 only); other
  expectations are ignored (RFC 9110 allows 417, we do not need it).
* Persistence: HTTP/1.1 is keep-alive unless ``close`` is a Connection
  token; HTTP/1.0 is close unless ``keep-alive`` is one (and ``close`` is
  not). Connection is parsed as a case-insensitive comma list over all its
  fields; a non-token element -> 400/502.
* Responses: ``HTTP/1.x SP 3DIGIT SP reason`` (reason may be empty, the SP
  before it may be missing), status 100-599, reason of HTAB/SP/VCHAR/obs-text
  -> else 502. A 101 without an upgrade request -> 502; a response with no
  request expected -> 502.
"""

import re
from operator import itemgetter

try:
    import cython               # the compiled build: cython.compiled is True
except ImportError:             # pure Python without Cython installed
    from farm import nocython as cython

__all__ = [
    "HttpError", "Request", "Response", "Data", "EndOfMessage",
    "NEED_DATA", "END_OF_MESSAGE", "PAUSED", "TUNNEL", "CLOSED",
    "BODY_NONE", "BODY_LENGTH", "BODY_CHUNKED", "BODY_CLOSE", "BODY_TUNNEL",
    "RequestParser", "ResponseParser", "parse_request_head",
    "serialize_request_head", "serialize_response_head",
    "make_response", "error_response", "strip_hop_by_hop", "dechunk",
    "head_bytes", "forwarding_strip",
    "REASONS", "HOP_BY_HOP",
]


# --------------------------------------------------------------------------
# errors, sentinels and events

class HttpError(Exception):
    """A protocol violation. ``status`` is what to answer (request side: 400,
    414, 431, 501, 505; response side: always 502); ``reason`` is for logs."""

    def __init__(self, status: int, reason: str = ""):
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self):
        return "%d %s" % (self.status, self.reason)


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


NEED_DATA = _Sentinel("NEED_DATA")
PAUSED = _Sentinel("PAUSED")
TUNNEL = _Sentinel("TUNNEL")
CLOSED = _Sentinel("CLOSED")

# Body modes (``parser.body_mode`` and ``message.body_mode``).
BODY_NONE = "none"          # no body: EndOfMessage follows the head
BODY_LENGTH = "length"      # Content-Length bytes
BODY_CHUNKED = "chunked"    # chunked framing, relayed raw
BODY_CLOSE = "close"        # response delimited by the server closing
BODY_TUNNEL = "tunnel"      # response that switched protocols (101, CONNECT 2xx)


class Data:
    """Body bytes as received on the wire (see the module docstring)."""
    __slots__ = ("raw",)

    def __init__(self, raw: bytes):
        self.raw = raw

    def __eq__(self, other):
        return isinstance(other, Data) and other.raw == self.raw

    def __repr__(self):
        return "Data(%r)" % (self.raw[:40] + (b"..." if len(self.raw) > 40 else b""),)


class EndOfMessage:
    """End of the current message. The parser returns the one instance
    ``END_OF_MESSAGE``; test with ``ev is END_OF_MESSAGE`` or isinstance."""
    __slots__ = ()

    def __eq__(self, other):
        return isinstance(other, EndOfMessage)

    def __hash__(self):
        return 0

    def __repr__(self):
        return "EndOfMessage()"


END_OF_MESSAGE = EndOfMessage()


# --------------------------------------------------------------------------
# character classes (RFC 9110 section 5.6.2 token, 5.5 field-value)

_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TCHAR_CLASS = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
_HEX = b"0123456789abcdefABCDEF"
# request-target: visible ASCII except '#' (a fragment is never sent; HAProxy
# rejects it too). Raw UTF-8 is refused: clients must percent-encode.
_TARGET_OK = bytes(range(0x21, 0x7F)).replace(b"#", b"")
# uri-host [":" port]: unreserved, sub-delims, ':', '[', ']' and '%' (pct-encoded).
_HOST_OK = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
            b"-._~!$&'()*+,;=:[]%")
_REASON_OK = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
_VALUE_OK = _REASON_OK


def only_table(allowed: bytes) -> bytes:
    """A bytes.translate() table that keeps each byte of ``allowed`` and
    changes every other byte (to a different one): ``s.translate(table) !=
    s`` exactly when s holds a byte outside ``allowed``. The checks below use
    it instead of ``s.translate(None, allowed)``, which builds a 256-entry
    table on every call (about 1,300 instructions, whatever the length of
    s); a whole table costs one pass over s, and no copy when nothing
    changed."""
    keep = frozenset(allowed)
    return bytes(c if c in keep else c ^ 1 for c in range(256))


# --------------------------------------------------------------------------
# byte scans. The compiled build walks the bytes in C (http1.pxd types p as
# a pointer into them): a few instructions a byte, where a call to a bytes
# method costs some 300 in argument parsing alone, and a slice through a
# slice object some 600. The pure build calls the bytes methods, and
# tests/unit/test_http1_scans.py holds the two builds to the same answers.

def _find_crlf(buf, i):
    """Index of the first CRLF of buf at or after i; -1 if none."""
    if not cython.compiled:
        return buf.find(b"\r\n", i)
    p = buf
    n = len(buf) - 1
    while i < n:
        if p[i] == 13 and p[i + 1] == 10:
            return i
        i += 1
    return -1


def _head_end(buf, i, limit):
    """Index of the first CRLFCRLF lying wholly in buf[i:limit]; -1 if none."""
    if not cython.compiled:
        return buf.find(b"\r\n\r\n", i, limit)
    p = buf
    limit = min(limit, len(buf))
    j = i + 3                   # where the LF ending a match would be
    while j < limit:
        c = p[j]
        if c == 10:
            if p[j - 1] == 13 and p[j - 2] == 10 and p[j - 3] == 13:
                return j - 3
            j += 2              # this LF could only be a match's second byte
        elif c == 13:
            j += 1
        else:
            j += 4              # no match can hold this byte
    return -1


def _find_byte(buf, c, i, end):
    """Index of the first byte c in buf[i:end]; -1 if none (end <= len(buf))."""
    if not cython.compiled:
        return buf.find(c, i, end)
    p = buf
    while i < end:
        if p[i] == c:
            return i
        i += 1
    return -1


def _only(s, table):
    """True when every byte of s is one that ``table`` (from only_table)
    keeps."""
    if not cython.compiled:
        return s.translate(table) == s
    p = s
    t = table
    for i in range(len(s)):
        if t[p[i]] != p[i]:
            return False
    return True


def _starts_with(buf, prefix):
    """buf.startswith(prefix), as a C comparison once compiled (the method
    call parses its arguments the slow way)."""
    if not cython.compiled:
        return buf.startswith(prefix)
    n = len(prefix)
    if len(buf) < n:
        return False
    p = buf
    q = prefix
    return memcmp(p, q, n) == 0


def _decimal(s):
    """The value of s when it is 1 to 18 ASCII digits (what fits a signed
    64-bit integer whatever the digits); else -1."""
    if not cython.compiled:
        return int(s) if len(s) <= 18 and s.isdigit() else -1
    p = s
    n = len(s)
    if n == 0 or n > 18:
        return -1
    v = 0
    for i in range(n):
        d = p[i] - 48
        if d > 9:               # unsigned: a byte below '0' wraps above 9
            return -1
        v = v * 10 + d
    return v

_TCHAR_T = only_table(_TCHAR)
_HEX_T = only_table(_HEX)
_TARGET_OK_T = only_table(_TARGET_OK)
_HOST_OK_T = only_table(_HOST_OK)
_REASON_OK_T = only_table(_REASON_OK)
_VALUE_OK_T = _REASON_OK_T

# One header line: token ':' OWS value OWS CRLF, anchored at a line start.
# The value group starts and ends with a non-whitespace byte, so OWS is
# stripped by the regex itself. The grammar of a field line: _fields() walks
# it byte by byte, _field_error() uses it to find the line at fault, and
# the unit tests hold the two to the same answers.
_FIELD_RE = re.compile(
    rb"(?m)^([" + _TCHAR_CLASS + rb"]+):[ \t]*"
    rb"([\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff]|)[ \t]*\r\n")
_VERSION_RE = re.compile(rb"HTTP/[0-9]\.[0-9]")
_ABSOLUTE_RE = re.compile(rb"([Hh][Tt][Tt][Pp][Ss]?)://([^/?]*)")
_AUTHORITY_RE = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+):[0-9]{1,5}")
_CHUNK_EXT_RE = re.compile(
    rb"(?:[ \t]*;[ \t]*[" + _TCHAR_CLASS + rb"]+"
    rb"(?:[ \t]*=[ \t]*(?:[" + _TCHAR_CLASS + rb"]+"
    rb"|\"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*\"))?)*")

# Field names whose presence changes framing or derived fields; found with one
# set intersection against the lowercased names.
_SPECIAL = frozenset((b"host", b"content-length", b"transfer-encoding",
                      b"connection", b"expect", b"upgrade", b"keep-alive",
                      b"proxy-connection", b"te"))
# Bit k set when some name of _SPECIAL has k bytes; the first bytes they
# start with (either case): _fields' cheap filter before lowering a name.
_SPECIAL_LENGTHS = sum(1 << k for k in {len(n) for n in _SPECIAL})
_SPECIAL_FIRST = bytes(c in {n[0] for n in _SPECIAL} or (c | 32) in {n[0] for n in _SPECIAL}
                       for c in range(256))
_FRAMING = frozenset((b"content-length", b"transfer-encoding"))
_FORBIDDEN_TRAILERS = frozenset((b"content-length", b"transfer-encoding", b"host"))

# The Connection values seen in practice, pre-split (value is lowercased first).
_CONN_FAST = {
    b"keep-alive": frozenset((b"keep-alive",)),
    b"close": frozenset((b"close",)),
    b"upgrade": frozenset((b"upgrade",)),
    b"keep-alive, upgrade": frozenset((b"keep-alive", b"upgrade")),
    b"upgrade, keep-alive": frozenset((b"keep-alive", b"upgrade")),
    b"te": frozenset((b"te",)),
}
_EMPTY = frozenset()
_name_of = itemgetter(0)

_MAX_INT64 = 2 ** 63 - 1
_MAX_CHUNK_LINE = 4096      # chunk-size line incl. extensions
_MAX_LEADING_CRLF = 8       # empty lines tolerated before a start line
_MAX_HEADERS = 100          # HAProxy's default (tune.http.maxhdr is 101)
_METHOD_WINDOW = 32         # early junk detection looks at this many bytes


# --------------------------------------------------------------------------
# messages

class _Message:
    """Header helpers shared by Request and Response. ``headers`` is a plain
    list of ``(name, value)`` bytes tuples, names as received; it may be
    edited directly. The derived fields (content_length, chunked, keep_alive,
    ...) describe the message *as parsed* and are not recomputed when
    headers change: rules that rewrite framing headers own the consequences.

    ``hop`` (parsed heads): 0 without hop-by-hop fields (see HOP_BY_HOP);
    above 0 when the only one is a plain ``Connection: keep-alive`` or
    ``close`` (i + 1 when it is headers[i] of a head split at once; 1 for
    a lazy one); -1 otherwise. ``raw``: the head's bytes as
    received, kept by the parsers' whole_* fast paths unless hop is -1 (a
    plain Connection field is removed from both ``headers`` and ``raw``,
    keep_alive holding its meaning); else None. While the start line and
    ``headers`` are as parsed (``_base``), head_bytes() sends raw instead
    of serializing.

    ``_headers`` is None while a lazily parsed head is not split (see
    headers); ``_appended`` then holds the fields append_field() added,
    and ``_cut_from``/``_cut_to`` the offsets of its Connection line."""
    __slots__ = ("_headers", "_appended", "_cut_from", "_cut_to")

    def _start_line(self) -> tuple:
        raise NotImplementedError

    def _same_start_line(self, base: tuple) -> bool:
        """True while the start line is the one recorded in base (_base)."""
        raise NotImplementedError

    @property
    def headers(self) -> list:
        """The fields: a plain list of (name, value). A head parsed lazily
        (_build_request, _build_response) is split here, from its raw
        bytes, on first use."""
        hs = self._headers
        if hs is None:
            hs = self._split_raw()
        return hs

    @headers.setter
    def headers(self, hs: list) -> None:
        if self._headers is None and self.raw is not None:
            self._split_raw()           # so that appended() sees the change
        self._headers = hs

    def _lazy_framing(self, plain: tuple, v11: bool) -> None:
        """The fields a lazily parsed head shares, from _plain_fields'
        tuple: not split yet (_headers None), framing, and ``hop`` 1 with
        the offsets of the Connection line for _keep_raw to cut, as the
        full parse would."""
        _, cl, conn, cut_from, cut_to = plain
        self._headers = None
        self._appended = None
        self.upgrade = None
        self.raw = None
        self.content_length = cl
        self.chunked = False
        if conn is None:
            self.hop = 0
            self.keep_alive = v11
        else:
            self.hop = 1
            self._cut_from = cut_from
            self._cut_to = cut_to
            self.keep_alive = conn == b"keep-alive"     # in HTTP/1.1 and 1.0 alike

    def _raw_fields(self, lower: bool) -> list:
        """The fields of raw (a head validated when received), names
        lowercased or not."""
        raw = self.raw
        eol = _find_crlf(raw, 0)
        end = len(raw) - 2
        if eol + 2 >= end:
            return []
        return _fields(raw, eol + 2, end, 400, len(raw), "header", None, lower)

    def _split_raw(self) -> list:
        """Make _headers of a lazily parsed head from raw (validated when it
        was received; its Connection field, if any, cut already), record
        them as the received ones for appended(), and add the fields given
        to append_field() since."""
        hs = self._raw_fields(False)
        self._base = self._base[:3] + (hs[:],)
        if self._appended is not None:
            hs.extend(self._appended)
            self._appended = None
        self._headers = hs
        return hs

    def _keep_raw(self, raw: bytes) -> None:
        """Adopt raw (the whole head as received) for pass-through, after
        taking out a lone plain Connection field; leaves raw None when the
        hop-by-hop fields need strip_hop_by_hop(). A lazily parsed head
        (fields not split) has its Connection line cut by offsets."""
        hop = self.hop
        if hop < 0:
            return
        if self._headers is None:
            if hop:
                p = raw
                raw = p[0:self._cut_from] + p[self._cut_to:len(raw)]
            self.raw = raw
            self._base = self._start_line() + (None,)
            return
        if hop:
            raw = _cut_field(self._headers, hop - 1, raw)
        self.raw = raw
        self._base = self._start_line() + (self._headers[:],)

    def _copy_raw_head(self, r) -> None:
        """Give r (a new message of the same class) the fields _Message
        holds for a head kept raw, unsplit, nothing appended (the
        _lazy_copy of Request and Response): raw and _base shared, the
        framing copied. raw is cut already, so no _cut_from/_cut_to."""
        r._headers = None
        r._appended = None
        r.upgrade = None
        r.raw = self.raw
        r._base = self._base
        r.content_length = self.content_length
        r.chunked = self.chunked
        r.hop = self.hop
        r.keep_alive = self.keep_alive
        r.body_mode = self.body_mode

    def lowercase_fields(self):
        """For a lazily parsed head never split nor appended to: its fields
        with lowercased names, made from raw in one pass (what HTTP/2
        sends; the Connection field is cut from raw already). Otherwise
        None."""
        if self._headers is not None or self._appended is not None or self.raw is None:
            return None
        return self._raw_fields(True)

    def append_field(self, name: bytes, value: bytes) -> None:
        """headers.append((name, value)), without splitting a lazily parsed
        head: the field waits in _appended, which appended() returns."""
        if self._headers is not None:
            self._headers.append((name, value))
        elif self._appended is None:
            self._appended = [(name, value)]
        else:
            self._appended.append((name, value))

    def appended(self):
        """While the head is as received except for fields appended at the
        end (what X-Forwarded-For and most set-header rules do): the
        appended fields (maybe []); otherwise None."""
        if self.raw is None:
            return None
        base = self._base
        if not self._same_start_line(base):
            return None
        hs = self._headers
        if hs is None:                  # never split: only append_field() ran
            return [] if self._appended is None else self._appended
        orig = base[3]
        if hs == orig:
            return []
        n = len(orig)
        if len(hs) > n and hs[:n] == orig:
            return hs[n:]
        return None

    def get(self, name_lower: bytes):
        """First value of the field ``name_lower`` (give it lowercased), or None."""
        n = len(name_lower)
        for k, v in self.headers:
            # comparing lengths first avoids most lower() calls
            if len(k) == n and k.lower() == name_lower:
                return v
        return None

    def get_all(self, name_lower: bytes) -> list:
        """Every value of the field ``name_lower``, in order (field lines, not
        comma-split elements)."""
        n = len(name_lower)
        return [v for k, v in self.headers if len(k) == n and k.lower() == name_lower]

    def set(self, name, value) -> None:
        """Replace every ``name`` field by one ``name: value`` at the place of
        the first one (appended if absent). str is encoded as latin-1. Raises
        ValueError for a non-token name or a value with CR/LF/NUL/controls."""
        name, value = _check_field(name, value)
        low = name.lower()
        n = len(low)
        hs = self.headers
        # Usual cases first (a set-header rule on every request): the field
        # is absent (append) or present once (replace in place).
        first = -1
        for i, h in enumerate(hs):
            k = h[0]
            if len(k) == n and k.lower() == low:
                if first >= 0:
                    break               # several: rebuild below
                first = i
        else:
            if first < 0:
                hs.append((name, value))
            else:
                hs[first] = (name, value)
            return
        out = []
        done = False
        for h in hs:
            k = h[0]
            if len(k) == n and k.lower() == low:
                if not done:
                    out.append((name, value))
                    done = True
            else:
                out.append(h)
        if not done:
            out.append((name, value))
        hs[:] = out

    def add(self, name, value) -> None:
        """Append ``name: value`` (validated like set())."""
        self.headers.append(_check_field(name, value))

    def remove(self, name_lower: bytes) -> int:
        """Remove every ``name_lower`` field; returns how many were removed."""
        n = len(name_lower)
        hs = self.headers
        kept = [h for h in hs if not (len(h[0]) == n and h[0].lower() == name_lower)]
        removed = len(hs) - len(kept)
        if removed:
            hs[:] = kept
        return removed


def _check_field(name, value):
    if isinstance(name, str):
        name = name.encode("latin-1")
    if isinstance(value, str):
        value = value.encode("latin-1")
    elif isinstance(value, int):
        value = b"%d" % value
    if not name or name.translate(_TCHAR_T) != name:
        raise ValueError("invalid header name %r" % (name,))
    # _VALUE_RE's rule, without the regex engine: value bytes only, and
    # no whitespace first or last
    if value and (value.translate(_VALUE_OK_T) != value or value[0] == 32 or value[0] == 9
                  or value[-1] == 32 or value[-1] == 9):
        raise ValueError("invalid header value %r" % (value,))
    return name, value


class Request(_Message):
    """A request head. Mutable: rules rewrite it before serialize_request_head().

    ``target`` is the request-target as received; ``path`` and ``query`` are
    views of it (computed on first use) and setting any of the three keeps
    the others consistent. For an absolute-form target the path is the part
    after the authority (``b"/"`` if empty); for authority-form (CONNECT)
    both are b""; for ``*`` the path is b"*". Derived fields are read-only
    by convention (see _Message)."""
    __slots__ = ("method", "_target", "_path", "_query", "_prefix", "version",
                 "content_length", "chunked", "keep_alive", "expect_continue",
                 "upgrade", "host", "body_mode", "hop", "raw", "_base")

    def __init__(self, method: bytes = b"GET", target: bytes = b"/",
                 version: bytes = b"HTTP/1.1", headers=None):
        """Build a request by hand (health checks, tests). Derived fields get
        neutral defaults; nothing is validated here."""
        self.method = method
        self._target = target
        self._path = None
        self._query = None
        self._prefix = None
        self.version = version
        self._headers = list(headers) if headers else []
        self._appended = None
        self.content_length = None
        self.chunked = False
        self.keep_alive = version == b"HTTP/1.1"
        self.expect_continue = False
        self.upgrade = None
        self.host = None
        self.body_mode = BODY_NONE
        self.hop = 0
        self.raw = None

    @property
    def target(self) -> bytes:
        return self._target

    @target.setter
    def target(self, value: bytes):
        self._target = value
        self._path = None

    def _split(self):
        t = self._target
        if t[:1] == b"/":
            prefix = b""
            rest = t
        elif t == b"*":
            self._prefix, self._path, self._query = b"", b"*", b""
            return
        else:
            m = _ABSOLUTE_RE.match(t)
            if m is None:           # authority-form (CONNECT)
                self._prefix, self._path, self._query = t, b"", b""
                return
            prefix = t[:m.end()]
            rest = t[m.end():]
        q = rest.find(b"?")
        if q < 0:
            path, query = rest, b""
        else:
            path, query = rest[:q], rest[q + 1:]
        if not path and prefix:
            path = b"/"
        self._prefix, self._path, self._query = prefix, path, query

    @property
    def path(self) -> bytes:
        if self._path is None:
            self._split()
        return self._path

    @path.setter
    def path(self, value: bytes):
        if self._path is None:
            self._split()
        self._path = value
        self._rebuild()

    @property
    def query(self) -> bytes:
        if self._path is None:
            self._split()
        return self._query

    @query.setter
    def query(self, value: bytes):
        if self._path is None:
            self._split()
        self._query = value
        self._rebuild()

    def _rebuild(self):
        q = self._query
        self._target = self._prefix + self._path + (b"?" + q if q else b"")

    def _start_line(self) -> tuple:
        return (self.method, self._target, self.version)

    def _lazy_copy(self):
        """A new Request equal to this one, a head kept raw with its fields
        not split and nothing appended (see Response._lazy_copy): the start
        line, framing, raw and _base are shared (immutable)."""
        r = Request.__new__(Request)
        r.method = self.method
        r._target = self._target
        r._path = None
        r._query = None
        r._prefix = None
        r.version = self.version
        r.host = self.host
        r.expect_continue = self.expect_continue
        self._copy_raw_head(r)
        return r

    def _same_start_line(self, base) -> bool:
        return self.method is base[0] and self._target is base[1] and self.version is base[2]

    def __repr__(self):
        return "<Request %s %s %s>" % (self.method.decode("latin-1"),
                                       self._target[:80].decode("latin-1"),
                                       self.version.decode("latin-1"))


class Response(_Message):
    """A response head. ``upgrade`` is the Upgrade value of a 101 (else None);
    ``body_mode`` depends on the request method (see ResponseParser)."""
    __slots__ = ("status", "reason", "version", "content_length", "chunked",
                 "keep_alive", "upgrade", "body_mode", "hop", "raw", "_base")

    def __init__(self, status: int = 200, reason=None, version: bytes = b"HTTP/1.1",
                 headers=None):
        self.status = status
        self.reason = REASONS.get(status, b"") if reason is None else reason
        self.version = version
        self._headers = list(headers) if headers else []
        self.content_length = None
        self.chunked = False
        self.keep_alive = version == b"HTTP/1.1"
        self.upgrade = None
        self.body_mode = BODY_NONE
        self.hop = 0
        self.raw = None
        self._appended = None

    def _lazy_copy(self):
        """A new Response equal to this one, a lazily parsed head that
        _keep_raw() took (fields not split, nothing appended): the start
        line, framing, raw and _base are shared (immutable), so that the
        copy is a head as received, for head_bytes() and appended()."""
        r = Response.__new__(Response)
        r.status = self.status
        r.reason = self.reason
        r.version = self.version
        self._copy_raw_head(r)
        return r

    @property
    def interim(self) -> bool:
        """True for a 1xx other than 101: no body, the final response follows."""
        return self.status < 200 and self.status != 101

    def _start_line(self) -> tuple:
        return (self.version, self.status, self.reason)

    def _same_start_line(self, base) -> bool:
        return self.status is base[1] and self.reason is base[2] and self.version is base[0]

    def __repr__(self):
        return "<Response %s %d %s>" % (self.version.decode("latin-1"), self.status,
                                        self.reason.decode("latin-1"))


# --------------------------------------------------------------------------
# head parsing (pure functions on a buffer; the parsers call them)

def _fields(buf, a, b, status, max_headers, what="header", specials=None, lower=False):
    """Validate and split the field block buf[a:b] (each line ends in CRLF;
    the terminating empty line is not included). Returns [(name, value)]:
    each line is a token name, ':', optional SP/HT, a value of field bytes
    (HT, SP, visible ASCII, obs-text) whose trailing SP/HT are dropped,
    then CRLF; anything else (bare CR or LF, NUL and other controls,
    obs-fold, whitespace before the colon, an empty name) refuses the block
    through _field_error, which names the line. The grammar is _FIELD_RE's,
    walked byte by byte: compiled (workers/http1.pxd types the indices and
    bytes), the walk costs a few instructions a byte where the regex engine
    cost about twenty, and the block is read once.

    With a list as ``specials``, the block is validated the same way but
    only the fields named in _SPECIAL are kept, appended to it as
    ``(lowercased name, value, start, end)`` (the offsets of the line in buf,
    its CRLF included), and [] is returned: what a lazily parsed head needs
    (see _build_response). ``lower``: the names are returned lowercased
    (what HTTP/2 sends)."""
    # The compiled build types tchar, vchar and p as C pointers to the bytes
    # (http1.pxd): the walk then reads memory with no index checks, so b
    # must stay inside buf. Pure Python indexes the bytes alike.
    if a < 0 or b > len(buf):
        raise ValueError("field block outside the buffer")
    tchar_t = _TCHAR_T          # held here: the pointers below read into them
    vchar_t = _VALUE_OK_T
    tchar = tchar_t
    vchar = vchar_t
    p = buf
    hs = []
    n = 0
    i = a
    while i < b:
        start = i
        while i < b:
            c = p[i]
            if tchar[c] != c:
                break
            i += 1
        if i == start or i >= b or p[i] != 58:        # ':'
            _field_error(buf[a:b], status, what)
        name_end = i
        i += 1
        while i < b:
            c = p[i]
            if c != 32 and c != 9:
                break
            i += 1
        value_start = value_end = i
        while i < b:
            c = p[i]
            if c == 13:
                break
            if vchar[c] != c:
                _field_error(buf[a:b], status, what)
            i += 1
            if c != 32 and c != 9:
                value_end = i
        if i + 1 >= b or p[i + 1] != 10:                # CR not followed by LF
            _field_error(buf[a:b], status, what)
        if specials is None:
            if lower:
                hs.append((p[start:name_end].lower(), p[value_start:value_end]))
            else:
                hs.append((p[start:name_end], p[value_start:value_end]))
        elif (_SPECIAL_LENGTHS >> min(name_end - start, 63)) & 1 and _SPECIAL_FIRST[p[start]]:
            # only names of a special length and first letter are lowered
            lname = p[start:name_end].lower()
            if lname in _SPECIAL:
                specials.append((lname, p[value_start:value_end], start, i + 2))
        n += 1
        i += 2
    if n > max_headers:
        raise HttpError(431 if status == 400 else status, "too many %s fields" % what)
    return hs


def _field_error(block, status, what):
    """Slow path: say which line of a rejected field block is wrong."""
    for line in block.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            reason = "obs-fold (line starting with whitespace)"
        elif b"\n" in line:
            reason = "bare LF"
        elif b"\r" in line:
            reason = "bare CR"
        else:
            colon = line.find(b":")
            if colon < 0:
                reason = "%s line without colon" % what
            elif colon == 0:
                reason = "empty %s name" % what
            else:
                name = line[:colon]
                if b" " in name or b"\t" in name:
                    reason = "whitespace in %s name (before colon)" % what
                elif name.translate(_TCHAR_T) != name:
                    reason = "invalid character in %s name" % what
                elif b"\0" in line:
                    reason = "NUL in %s value" % what
                elif _FIELD_RE.fullmatch(line + b"\r\n"):
                    continue
                else:
                    reason = "invalid character in %s value" % what
        raise HttpError(status, "%s: %r" % (reason, line[:64]))
    raise HttpError(status, "malformed %s block" % what)


def _hop_kind(sp, hs, lnames):
    """_Message.hop of a head with hop-by-hop fields: i + 1 when the only
    one is a single plain ``Connection: keep-alive`` or ``close`` at
    headers[i], else -1."""
    if len(sp.intersection(HOP_BY_HOP)) == 1 and lnames.count(b"connection") == 1:
        i = lnames.index(b"connection")
        if hs[i][1].lower() in (b"keep-alive", b"close"):
            return i + 1
    return -1


def _conn_tokens(hs, lnames, status):
    """Lowercased tokens of every Connection field (comma list, OWS around
    elements, empty elements ignored)."""
    if lnames.count(b"connection") == 1:
        fast = _CONN_FAST.get(hs[lnames.index(b"connection")][1].lower())
        if fast is not None:
            return fast
    toks = set()
    for i, ln in enumerate(lnames):
        if ln == b"connection":
            for t in hs[i][1].lower().split(b","):
                t = t.strip(b" \t")
                if not t:
                    continue
                if t.translate(_TCHAR_T) != t:
                    raise HttpError(status, "invalid Connection header")
                toks.add(t)
    return toks


def _content_length(hs, lnames, status):
    """Validated Content-Length (identical duplicates collapsed in hs)."""
    i = lnames.index(b"content-length")
    v = hs[i][1]
    if len(v) < 19 and v.isdigit() and lnames.count(b"content-length") == 1:
        return int(v)       # the usual case: one plain value
    if lnames.count(b"content-length") > 1:
        dups = [j for j, ln in enumerate(lnames) if ln == b"content-length"]
        for j in dups[1:]:
            if hs[j][1] != v:
                raise HttpError(status, "conflicting Content-Length headers")
        # forward one: a server may reject (or worse, misread) duplicates
        for j in reversed(dups[1:]):
            del hs[j]
            del lnames[j]
    # bytes.isdigit() is ASCII-only: rejects signs, spaces, lists, hex, empty
    if not v.isdigit():
        raise HttpError(status, "invalid Content-Length %r" % (v[:32],))
    if len(v) > 18:
        n = int(v)
        if n > _MAX_INT64:
            raise HttpError(status, "Content-Length too large")
        return n
    return int(v)


def _transfer_encoding(hs, lnames, status, unknown_status):
    """Check Transfer-Encoding; returns normally only when the final coding is
    chunked. ``unknown_status`` is what a well-formed but unsupported coding
    list gets (501 for requests); None means such lists are accepted."""
    if lnames.count(b"transfer-encoding") > 1:
        raise HttpError(status, "more than one Transfer-Encoding header")
    i = lnames.index(b"transfer-encoding")
    v = hs[i][1]
    if v == b"chunked":
        return
    codings = [c.strip(b" ") for c in v.split(b",")]
    for c in codings:
        # strip() only removed spaces: a tab, a control or a parameter fails here
        if not c or c.translate(_TCHAR_T) != c:
            raise HttpError(status, "malformed Transfer-Encoding %r" % (v[:64],))
    low = [c.lower() for c in codings]
    if low[-1] != b"chunked":
        raise HttpError(status, "Transfer-Encoding without final chunked: %r" % (v[:64],))
    if low.count(b"chunked") > 1:
        raise HttpError(status, "chunked applied more than once")
    if len(low) > 1:
        if unknown_status is not None:
            raise HttpError(unknown_status, "unsupported transfer coding %r" % (v[:64],))
        return
    # a lone "Chunked"/"CHUNKED": forward the canonical spelling so that a
    # case-sensitive server cannot read the body differently
    hs[i] = (hs[i][0], b"chunked")


def _check_target(method, target):
    """Non-origin-form targets. Returns the authority of an absolute-form
    target (it replaces Host, RFC 9112 3.2.2), else None."""
    if method == b"CONNECT":
        if not _AUTHORITY_RE.fullmatch(target):
            raise HttpError(400, "CONNECT needs an authority-form target (host:port)")
        return None
    if target == b"*":
        if method != b"OPTIONS":
            raise HttpError(400, "asterisk-form target outside OPTIONS")
        return None
    m = _ABSOLUTE_RE.match(target)
    if m is None:
        raise HttpError(400, "invalid request target")
    auth = m.group(2)
    if not auth or b"@" in auth or auth.translate(_HOST_OK_T) != auth:
        raise HttpError(400, "invalid authority in absolute-form target")
    return auth


def _same_authority(target, authority, host):
    """Whether a Host field names the authority of an absolute-form target:
    equal but for case, or for the scheme's default port written on one
    side only (``http://a:80/`` and ``Host: a``)."""
    a = authority.lower()
    h = host.lower()
    if a == h:
        return True
    port = b":443" if target[4:5] in b"sS" else b":80"
    return (a[:-len(port)] if a.endswith(port) else a) == (h[:-len(port)] if h.endswith(port) else h)


def _build_request(buf, start, end, max_headers, lazy=False):
    """Parse the head buf[start:end+4] whose final CRLFCRLF starts at ``end``
    (start is the first byte of the request line). Returns a Request.

    lazy: an origin-form request whose only special fields are one valid
    Host, at most one plain Content-Length and at most one plain
    ``Connection: keep-alive`` or ``close`` has its fields validated but not
    split (as _build_response does; the caller gives the head to
    _keep_raw())."""
    eol = _find_crlf(buf, start)
    sp1 = _find_byte(buf, 32, start, eol)
    sp2 = _find_byte(buf, 32, sp1 + 1, eol) if sp1 >= 0 else -1
    if sp2 < 0 or _find_byte(buf, 32, sp2 + 1, eol) >= 0:
        raise HttpError(400, "malformed request line")   # not three parts
    p = buf
    method = p[start:sp1]
    target = p[sp1 + 1:sp2]
    version = p[sp2 + 1:eol]
    if not method or not _only(method, _TCHAR_T):
        raise HttpError(400, "invalid method")
    bad_version = False
    if version == b"HTTP/1.1":
        v11 = True
    elif version == b"HTTP/1.0":
        v11 = False
    elif _VERSION_RE.fullmatch(version):
        # 505, but only after the fields were validated: a 400 found anywhere
        # in the head must win, as it does when a bare LF is caught before
        # the head is complete (same answer however the bytes arrive)
        bad_version = v11 = True
    else:
        raise HttpError(400, "malformed HTTP version %r" % (version[:16],))
    if not target or not _only(target, _TARGET_OK_T):
        raise HttpError(400, "invalid character in request target")

    if eol == end:
        hs = []
        lnames = []
        sp = _EMPTY
    else:
        if lazy and not bad_version and target[0] == 47 and method != b"CONNECT":
            specials = []
            _fields(buf, eol + 2, end + 2, 400, max_headers, "header", specials)
            r = _plain_request(specials, v11, start)
            if r is not None:
                r.method = method
                r._target = target
                r.version = version
                return r
        hs = _fields(buf, eol + 2, end + 2, 400, max_headers)
        lnames = list(map(bytes.lower, map(_name_of, hs)))   # no Python frame per name
        sp = _SPECIAL.intersection(lnames)
    if bad_version:
        raise HttpError(505, "unsupported HTTP version %r" % (version,))
    authority = None
    if target[0] != 47:          # not "/": absolute-, authority- or asterisk-form
        authority = _check_target(method, target)
    elif method == b"CONNECT":
        raise HttpError(400, "CONNECT needs an authority-form target (host:port)")

    r = Request.__new__(Request)
    r.method = method
    r._target = target
    r._path = None
    r.version = version
    r._headers = hs
    r._appended = None
    r.expect_continue = False
    r.upgrade = None
    r.hop = 0 if sp.isdisjoint(HOP_BY_HOP) else _hop_kind(sp, hs, lnames)
    r.raw = None

    if b"host" in sp:
        if lnames.count(b"host") > 1:
            raise HttpError(400, "more than one Host header")
        host = hs[lnames.index(b"host")][1]
        if not _only(host, _HOST_OK_T):
            raise HttpError(400, "invalid Host header")
        if authority is not None and not _same_authority(target, authority, host):
            # RFC 9112 3.2.2 makes a server use the target's authority, so
            # rules reading Host would judge another host than the one served
            raise HttpError(400, "Host differs from the absolute-form authority")
        r.host = host if authority is None else authority
    elif v11:
        raise HttpError(400, "HTTP/1.1 request without Host")
    else:
        r.host = authority

    cl = None
    chunked = False
    if b"transfer-encoding" in sp:
        if not v11:
            raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if b"content-length" in sp:
            raise HttpError(400, "both Content-Length and Transfer-Encoding")
        _transfer_encoding(hs, lnames, 400, 501)
        chunked = True
        r.body_mode = BODY_CHUNKED
    elif b"content-length" in sp:
        cl = _content_length(hs, lnames, 400)
        r.body_mode = BODY_LENGTH if cl else BODY_NONE
    else:
        r.body_mode = BODY_NONE
    r.content_length = cl
    r.chunked = chunked

    if b"connection" in sp:
        toks = _conn_tokens(hs, lnames, 400)
        if v11:
            r.keep_alive = b"close" not in toks
            if b"upgrade" in toks and b"upgrade" in sp:
                # RFC 9110 7.8: Upgrade only counts when listed in Connection,
                # and is ignored in HTTP/1.0
                ups = [hs[i][1] for i, ln in enumerate(lnames) if ln == b"upgrade"]
                up = ups[0] if len(ups) == 1 else b", ".join(ups)
                # h2c (RFC 7540 3.2, removed by RFC 9113) is not offered:
                # not an upgrade, so Upgrade and HTTP2-Settings are stripped
                if up.strip(b" \t").lower() != b"h2c":
                    r.upgrade = up
        else:
            r.keep_alive = b"keep-alive" in toks and b"close" not in toks
    else:
        r.keep_alive = v11
    if v11 and b"expect" in sp:
        for i, ln in enumerate(lnames):
            if ln == b"expect" and hs[i][1].lower() == b"100-continue":
                r.expect_continue = True
    return r


def _build_response(buf, start, end, max_headers, lazy=False):
    """Parse the status line and fields of buf[start:end+4] (see
    _build_request). Framing that depends on the request is decided by
    ResponseParser; here content_length/chunked/keep_alive are filled.

    lazy: when the head's only special fields are one plain Content-Length
    and one plain ``Connection: keep-alive`` or ``close`` (what most servers
    send), the fields are validated but not split: the Response's headers
    are made from its raw head when first asked for (Response.headers), and
    a proxy that forwards the head as received never pays for them. The
    caller must then give the head to _keep_raw() (ResponseParser.
    whole_response does)."""
    eol = _find_crlf(buf, start)
    sp1 = _find_byte(buf, 32, start, eol)
    if sp1 < 0:
        raise HttpError(502, "malformed status line")
    sp2 = _find_byte(buf, 32, sp1 + 1, eol)
    p = buf
    version = p[start:sp1]
    if sp2 < 0:
        code = p[sp1 + 1:eol]
        reason = b""
    else:
        code = p[sp1 + 1:sp2]
        reason = p[sp2 + 1:eol]
    if version == b"HTTP/1.1":
        v11 = True
    elif version == b"HTTP/1.0":
        v11 = False
    else:
        raise HttpError(502, "unsupported HTTP version %r" % (version[:16],))
    status = _decimal(code) if len(code) == 3 else -1
    if not 100 <= status <= 599:
        raise HttpError(502, "invalid status code %r" % (code[:8],))
    if reason and not _only(reason, _REASON_OK_T):
        raise HttpError(502, "invalid character in reason phrase")

    if eol == end:
        hs = []
        lnames = []
        sp = _EMPTY
    else:
        if lazy:
            specials = []
            _fields(buf, eol + 2, end + 2, 502, max_headers, "header", specials)
            r = _plain_response(specials, v11, start)
            if r is not None:
                r.status = status
                r.reason = reason
                r.version = version
                return r
        hs = _fields(buf, eol + 2, end + 2, 502, max_headers)
        lnames = list(map(bytes.lower, map(_name_of, hs)))
        sp = _SPECIAL.intersection(lnames)

    r = Response.__new__(Response)
    r.status = status
    r.reason = reason
    r.version = version
    r._headers = hs
    r._appended = None
    r.upgrade = None
    r.hop = 0 if sp.isdisjoint(HOP_BY_HOP) else _hop_kind(sp, hs, lnames)
    r.raw = None
    cl = None
    chunked = False
    if b"transfer-encoding" in sp:
        if not v11:
            raise HttpError(502, "Transfer-Encoding in an HTTP/1.0 response")
        if b"content-length" in sp:
            raise HttpError(502, "both Content-Length and Transfer-Encoding")
        _transfer_encoding(hs, lnames, 502, None)
        chunked = True
    elif b"content-length" in sp:
        cl = _content_length(hs, lnames, 502)
    r.content_length = cl
    r.chunked = chunked
    if b"connection" in sp:
        toks = _conn_tokens(hs, lnames, 502)
        r.keep_alive = (b"close" not in toks) if v11 else (
            b"keep-alive" in toks and b"close" not in toks)
    else:
        r.keep_alive = v11
    if b"upgrade" in sp:
        r.upgrade = hs[lnames.index(b"upgrade")][1]
    return r


def _plain_fields(specials, head_start, want_host):
    """(host, content_length, connection, cut_from, cut_to) when
    ``specials`` (from _fields) holds at most one plain Content-Length, at
    most one Connection whose value is keep-alive or close (lowercased;
    cut_from/cut_to its line's offsets from head_start), and, with
    want_host, exactly one Host of valid bytes (without, none); else None:
    the full parse then decides, errors included."""
    cl = None
    conn = None
    host = None
    r_from = r_to = 0
    for lname, value, line_start, line_end in specials:
        if lname == b"content-length":
            n = _decimal(value)
            if cl is not None or n < 0:
                return None
            cl = n
        elif lname == b"connection":
            if conn is not None:
                return None
            conn = value.lower()
            if conn != b"keep-alive" and conn != b"close":
                return None
            r_from = line_start - head_start
            r_to = line_end - head_start
        elif lname == b"host" and want_host:
            if host is not None or not _only(value, _HOST_OK_T):
                return None
            host = value
        else:
            return None
    if want_host and host is None:
        return None
    return host, cl, conn, r_from, r_to


def _plain_request(specials, v11, head_start):
    """The lazy Request of _build_request (see _plain_fields), or None. The
    caller sets the start line."""
    plain = _plain_fields(specials, head_start, True)
    if plain is None:
        return None
    r = Request.__new__(Request)
    r._path = None
    r.host = plain[0]
    r.expect_continue = False
    r._lazy_framing(plain, v11)
    r.body_mode = BODY_LENGTH if r.content_length else BODY_NONE
    return r


def _plain_response(specials, v11, head_start):
    """The lazy Response of _build_response (see _plain_fields), or None.
    The caller sets the status line."""
    plain = _plain_fields(specials, head_start, False)
    if plain is None:
        return None
    r = Response.__new__(Response)
    r._lazy_framing(plain, v11)
    return r


def _skip_empty_lines(buf, pos, status, n=0):
    """Skip the CRLFs allowed before a start line; ``n`` counts those skipped
    in earlier calls for the same message. Returns (new pos, new count)."""
    while buf.startswith(b"\r\n", pos):
        pos += 2
        n += 1
        if n > _MAX_LEADING_CRLF:
            raise HttpError(status, "too many empty lines before the start line")
    return pos, n


def _bare_lf(buf, lo, hi, floor):
    """True if buf[lo:hi] holds an LF not preceded by CR (bytes before
    ``floor`` do not count as a CR)."""
    return buf.count(b"\n", lo, hi) != buf.count(b"\r\n", max(lo - 1, floor), hi)


def _request_head_incomplete(buf, pos, lo, max_head):
    """Checks on a request head whose end is not buffered yet, so junk
    (say a TLS ClientHello), bare LFs and oversize are refused now rather
    than after a timeout. ``lo`` is the first byte not yet checked for a bare
    LF; returns the new value. Every check looks at a window that does not
    depend on how the bytes were split across recv() calls (the first
    max_head bytes; the first _METHOD_WINDOW bytes for the method), and in
    the same order, so the outcome is the same for any split. Cost per call
    is bounded by the new bytes plus a constant: nothing is rescanned."""
    n = len(buf)
    hi = min(n, pos + max_head)
    if lo < hi and _bare_lf(buf, lo, hi, pos):
        raise HttpError(400, "bare LF in request head")
    m = buf[pos:min(hi, pos + _METHOD_WINDOW)]
    sp = m.find(b" ")
    if sp > 0:
        m = m[:sp]
    if sp == 0 or m.translate(_TCHAR_T) != m:
        raise HttpError(400, "invalid request line")
    if n - pos >= max_head:
        if buf.find(b"\r\n", pos, pos + max_head) < 0:
            raise HttpError(414, "request line too long")
        raise HttpError(431, "request head too large")
    return hi


def _response_head_incomplete(buf, pos, lo, max_head):
    hi = min(len(buf), pos + max_head)
    if lo < hi and _bare_lf(buf, lo, hi, pos):
        raise HttpError(502, "bare LF in response head")
    k = min(hi - pos, 5)
    if buf[pos:pos + k] != b"HTTP/"[:k]:
        raise HttpError(502, "invalid status line")
    if len(buf) - pos >= max_head:
        raise HttpError(502, "response head too large")
    return hi


def parse_request_head(buf: bytes, start: int = 0, max_head: int = 16384,
                       max_headers: int = _MAX_HEADERS):
    """One-call fast path: parse the request head that begins at buf[start]
    (empty lines before it are skipped). Returns ``(Request, end_offset)``
    where end_offset is the index of the first byte after the head (body or
    next request), or None when the head is not complete yet. Raises
    HttpError exactly as RequestParser does. Stateless: a caller that gets
    None and reads more should use RequestParser, which does not rescan."""
    pos = start
    if buf.startswith(b"\r", pos):
        pos = _skip_empty_lines(buf, pos, 400)[0]
        if pos == len(buf) - 1 and buf[pos] == 13:
            return None
    end = buf.find(b"\r\n\r\n", pos, pos + max_head)
    if end < 0:
        _request_head_incomplete(buf, pos, pos, max_head)
        return None
    return _build_request(buf, pos, end, max_headers), end + 4


# --------------------------------------------------------------------------
# parsers

# parser states
_S_HEAD = 0
_S_LENGTH = 1
_S_CHUNKED = 2
_S_CLOSE = 3
_S_END = 4        # body complete: EndOfMessage is next
_S_PAUSED = 5
_S_TUNNEL = 6
_S_CLOSED = 7
_S_ERROR = 8
_S_SWITCHED = 9   # switch_to_tunnel() done: the parser is retired

# chunked sub-states
_C_SIZE = 0
_C_DATA = 1
_C_CRLF = 2
_C_TRAILER = 3


def parse_whole_request(data: bytes, max_head: int = 16384, max_headers: int = _MAX_HEADERS):
    """RequestParser.whole_request() without a parser, for a connection
    between requests that keeps none (an idle parser holds no state that a
    new one would not have; workers/h1conn.py): the Request of data (bytes
    from one recv) when data is exactly one complete request head, within
    max_head, with no body and not switching protocols; else None, and the
    caller feeds data to a parser, which also reports any error in it."""
    n = len(data)
    if n == 0 or n > max_head or data[0] == 13 or _head_end(data, 0, n) != n - 4:
        return None
    try:
        req = _build_request(data, 0, n - 4, max_headers, True)
    except HttpError:
        return None
    if req.body_mode != BODY_NONE or req.upgrade is not None or req.method == b"CONNECT":
        return None
    req._keep_raw(data)
    return req


class _Parser:
    """Buffering and body framing shared by both directions.

    Buffer discipline: ``_buf`` holds received bytes, ``_pos`` the first
    unconsumed one. feed() on a fully consumed buffer just adopts the new
    bytes object (so a body recv() is returned as Data without a copy);
    otherwise it appends to the unconsumed tail (bounded by max_head for a
    head, by 4 KiB for a chunk-size line). ``_scan`` is where the pending
    terminator search resumes and ``_checked`` the first byte not yet checked
    for a bare LF, so no byte is scanned twice."""

    # one parser per connection and direction: no per-instance dict
    __slots__ = ("_after_end", "_buf", "_checked", "_cstate", "_empty", "_eof", "_error",
                 "_pending_error", "_pos", "_remaining", "_scan", "_state", "body_mode",
                 "max_head", "max_headers", "message")

    _status = 400      # error status for framing errors (502 for responses)

    def __init__(self, max_head: int = 16384, max_headers: int = _MAX_HEADERS):
        self.max_head = max_head
        self.max_headers = max_headers
        self._buf = b""
        self._pos = 0
        self._scan = 0
        self._checked = 0
        self._empty = 0              # empty lines skipped before this start line
        self._eof = False
        self._state = _S_HEAD
        self._error = None
        self._pending_error = None   # chunked: raised after the valid prefix
        self._remaining = 0
        self._cstate = _C_SIZE
        self._after_end = _S_HEAD
        self.message = None          # the last head returned
        self.body_mode = None        # body mode of self.message

    # -- input

    def feed(self, data: bytes) -> None:
        """Append received bytes (bytes, or any bytes-like object, which is
        copied); ``b""`` means the peer closed (EOF). Bytes fed after CLOSED
        or an error are dropped: they would never be parsed."""
        if self._state == _S_SWITCHED:
            raise RuntimeError("parser switched to tunnel mode")
        if self._eof:
            if data:
                raise RuntimeError("feed() after EOF")
            return
        if not data:
            self._eof = True
            return
        if self._state == _S_CLOSED or self._state == _S_ERROR:
            return          # never parsed: do not let a peer grow the buffer
        if type(data) is not bytes:
            data = bytes(data)
        pos = self._pos
        buf = self._buf
        if pos >= len(buf):
            self._buf = data
            self._scan = self._checked = 0
        else:
            self._buf = (buf[pos:] if pos else buf) + data
            self._scan = max(self._scan - pos, 0)
            self._checked = max(self._checked - pos, 0)
        self._pos = 0

    def close(self) -> None:
        """Same as feed(b""): the peer closed its side."""
        self.feed(b"")

    def idle(self) -> bool:
        """Between messages, nothing buffered, no EOF: the next bytes fed
        start a new head (next_event() would say NEED_DATA)."""
        return self._state == _S_HEAD and self._pos >= len(self._buf) and not self._eof

    @property
    def eof(self) -> bool:
        """True once EOF was fed."""
        return self._eof

    @property
    def leftover(self) -> bytes:
        """Buffered bytes not consumed yet (after CLOSED: the ignored bytes)."""
        return self._buf[self._pos:]

    def switch_to_tunnel(self) -> bytes:
        """Stop HTTP parsing for good and return the bytes buffered after the
        last message (the first tunnel bytes). Valid in the PAUSED (request)
        and TUNNEL (response) states; feed() raises RuntimeError afterwards."""
        if self._state != _S_PAUSED and self._state != _S_TUNNEL:
            raise RuntimeError("switch_to_tunnel() outside PAUSED/TUNNEL")
        rest = self._buf[self._pos:]
        self._buf = b""
        self._pos = 0
        self._state = _S_SWITCHED
        return rest

    # -- output

    def next_event(self):
        """Return the next event (see the module docstring). Raises HttpError;
        the parser then stays in error and raises it again on every call."""
        st = self._state
        try:
            if st == _S_HEAD:
                return self._next_head()
            if st == _S_LENGTH:
                return self._next_length()
            if st == _S_END:
                self._state = self._after_end
                self._scan = self._checked = self._pos    # next head starts here
                return END_OF_MESSAGE
            if st == _S_CHUNKED:
                return self._next_chunked()
            if st == _S_CLOSE:
                return self._next_close()
        except HttpError as e:
            self._state = _S_ERROR
            self._error = e
            raise
        if st == _S_PAUSED:
            return PAUSED
        if st == _S_TUNNEL:
            return TUNNEL
        if st == _S_CLOSED:
            return CLOSED
        if st == _S_ERROR:
            raise self._error
        raise RuntimeError("parser switched to tunnel mode")

    def _next_head(self):
        buf = self._buf
        pos = self._pos
        if buf.startswith(b"\r", pos):
            pos, self._empty = _skip_empty_lines(buf, pos, self._status, self._empty)
            self._pos = pos
            if pos == len(buf) - 1 and buf[pos] == 13:
                # a lone CR: maybe the first half of one more empty line
                if self._eof:
                    self._state = _S_CLOSED
                    return CLOSED
                return NEED_DATA
        if pos >= len(buf):
            if self._eof:
                self._state = _S_CLOSED
                return CLOSED
            return NEED_DATA
        scan = self._scan
        end = buf.find(b"\r\n\r\n", scan if scan > pos else pos, pos + self.max_head)
        if end < 0:
            checked = self._checked
            self._checked = self._incomplete(buf, pos, checked if checked > pos else pos,
                                             self.max_head)
            if self._eof:
                raise HttpError(self._status, "connection closed inside a head")
            # the terminator may straddle the end: resume 3 bytes back
            self._scan = max(pos, len(buf) - 3)
            return NEED_DATA
        msg = self._build(buf, pos, end, self.max_headers)
        self._pos = end + 4
        self._scan = self._checked = end + 4
        self._empty = 0
        self._head_done(msg)
        return msg

    def _next_length(self):
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if not avail:
            if self._eof:
                raise HttpError(self._status, "connection closed before the end of the body")
            return NEED_DATA
        rem = self._remaining
        if avail <= rem:
            data = buf[pos:] if pos else buf     # common case: the recv() object itself
            self._buf = b""
            self._pos = 0
            rem -= avail
        else:
            data = buf[pos:pos + rem]
            self._pos = pos + rem
            rem = 0
        self._remaining = rem
        if not rem:
            self._state = _S_END
        return Data(data)

    def _next_close(self):
        buf = self._buf
        pos = self._pos
        if len(buf) > pos:
            data = buf[pos:] if pos else buf
            self._buf = b""
            self._pos = 0
            return Data(data)
        if self._eof:
            self._state = _S_CLOSED
            return END_OF_MESSAGE
        return NEED_DATA

    def _next_chunked(self):
        """Walk the chunked framing from _pos, validating each element, and
        return everything validated so far as one Data (raw bytes). A framing
        error after some valid bytes returns those bytes first and raises on
        the next call, so the events never depend on how bytes were split."""
        if self._pending_error is not None:
            raise self._pending_error
        buf = self._buf
        n = len(buf)
        start = p = self._pos
        cs = self._cstate
        done = False
        err = None
        while p < n:
            if cs == _C_DATA:
                rem = self._remaining
                if n - p >= rem:
                    p += rem
                    cs = _C_CRLF
                else:
                    self._remaining = rem - (n - p)
                    p = n
            elif cs == _C_SIZE:
                scan = self._scan
                nl = buf.find(b"\n", scan if scan > p else p, p + _MAX_CHUNK_LINE)
                if nl < 0:
                    if n - p >= _MAX_CHUNK_LINE:
                        err = "chunk-size line too long"
                    else:
                        self._scan = n
                    break
                if nl == p or buf[nl - 1] != 13:
                    err = "bare LF in chunk-size line"
                    break
                line = buf[p:nl - 1]
                semi = line.find(b";")
                if semi < 0:
                    size = line
                else:
                    size = line[:semi].rstrip(b" \t")    # BWS before ';'
                    if not _CHUNK_EXT_RE.fullmatch(line, semi):
                        err = "invalid chunk extension"
                        break
                # int(x, 16) alone would accept "0x1", "+1", " 1", "1_0"
                if not size or len(size) > 16 or size.translate(_HEX_T) != size:
                    err = "invalid chunk size %r" % (size[:20],)
                    break
                p = nl + 1
                size = int(size, 16)
                if size:
                    self._remaining = size
                    cs = _C_DATA
                else:
                    cs = _C_TRAILER
                    self._scan = self._checked = p
            elif cs == _C_CRLF:
                if buf[p] != 13:
                    err = "chunk data not followed by CRLF"
                    break
                if p + 1 >= n:
                    break
                if buf[p + 1] != 10:
                    err = "chunk data not followed by CRLF"
                    break
                p += 2
                cs = _C_SIZE
            else:   # _C_TRAILER: CRLF, or trailer fields then CRLF
                c = buf[p]
                if c == 13:
                    if p + 1 >= n:
                        break
                    if buf[p + 1] != 10:
                        err = "bare CR after the last chunk"
                        break
                    p += 2
                    done = True
                    break
                if c == 10:
                    err = "bare LF after the last chunk"
                    break
                limit = p + self.max_head
                scan = self._scan
                end = buf.find(b"\r\n\r\n", scan if scan > p else p, limit)
                if end < 0:
                    hi = min(n, limit)
                    lo = self._checked if self._checked > p else p
                    if lo < hi and _bare_lf(buf, lo, hi, p):
                        err = "bare LF in trailers"
                    elif n - p >= self.max_head:
                        err = "trailer section too large"
                    else:
                        self._checked = hi
                        self._scan = max(p, n - 3)
                    break
                try:
                    tr = _fields(buf, p, end + 2, self._status, self.max_headers, "trailer")
                except HttpError as e:
                    err = e.reason
                    break
                for k, _ in tr:
                    if k.lower() in _FORBIDDEN_TRAILERS:
                        err = "forbidden trailer field %r" % (k,)
                        break
                if err is not None:
                    break
                p = end + 4
                done = True
                break
        self._cstate = cs
        if err is not None:
            e = HttpError(self._status, err)
            if p == start:
                raise e
            self._pending_error = e
        elif done:
            self._state = _S_END
            self._cstate = _C_SIZE
        elif p == start:
            if self._eof:
                raise HttpError(self._status, "connection closed inside a chunked body")
            return NEED_DATA
        if p == n:
            self._buf = b""
            self._pos = 0
            self._scan = self._checked = 0
            return Data(buf[start:] if start else buf)
        self._pos = p
        return Data(buf[start:p])

    def _start_body(self, msg, mode):
        """Enter the state that follows a head whose body mode is ``mode``."""
        self.message = msg
        self.body_mode = msg.body_mode = mode
        self._after_end = self._after_message(msg)
        if mode == BODY_NONE:
            self._state = _S_END
        elif mode == BODY_LENGTH:
            self._remaining = msg.content_length
            self._state = _S_LENGTH
        elif mode == BODY_CHUNKED:
            self._cstate = _C_SIZE
            self._state = _S_CHUNKED
        elif mode == BODY_CLOSE:
            self._state = _S_CLOSE
        else:
            self._state = _S_TUNNEL

    def _after_message(self, msg):
        return _S_HEAD if msg.keep_alive else _S_CLOSED


class RequestParser(_Parser):
    """Parses the requests of one client connection.

    ``RequestParser(max_head=16384, max_headers=100)``; see the module
    docstring for the events. ``message`` is the last Request returned by
    next_event() (None after whole_request()) and ``body_mode`` its body
    mode (BODY_NONE, BODY_LENGTH or BODY_CHUNKED).
    After an upgrade or CONNECT request, ``next_event()`` returns PAUSED
    until ``switch_to_tunnel()`` or ``resume()`` is called."""

    __slots__ = ()

    _status = 400
    _incomplete = staticmethod(_request_head_incomplete)
    _build = staticmethod(_build_request)

    def _head_done(self, req):
        self._start_body(req, req.body_mode)

    def _after_message(self, req):
        if req.upgrade is not None or req.method == b"CONNECT":
            return _S_PAUSED
        return _S_HEAD if req.keep_alive else _S_CLOSED

    def whole_request(self, data: bytes):
        """The fast path of the common case. When the parser is idle() and
        ``data`` (bytes from one recv) is exactly one complete request head
        with no body that does not switch protocols, return its Request and
        leave the parser as feed(data) followed by taking the head and
        END_OF_MESSAGE would. Otherwise return None and change nothing: the
        caller feeds data as usual, which also reports any error in it.
        Validation is the same _build_request as next_event()'s."""
        if self._state != _S_HEAD or self._pos < len(self._buf) or self._eof:
            return None
        req = parse_whole_request(data, self.max_head, self.max_headers)
        if req is None:
            return None
        # The parser's state after the message, as the events leave it, but
        # message stays None: the caller holds the request as long as it
        # needs it, and an idle keep-alive connection should not keep it
        # (with its raw head) alive until the next one.
        self.message = None
        self.body_mode = BODY_NONE
        self._state = _S_HEAD if req.keep_alive else _S_CLOSED
        self._empty = 0
        return req

    def resume(self) -> None:
        """After PAUSED: the server refused the upgrade / CONNECT, so the
        connection stays HTTP; parse the next request (or CLOSED if the
        paused request was not keep-alive)."""
        if self._state != _S_PAUSED:
            raise RuntimeError("resume() outside PAUSED")
        self._state = _S_HEAD if self.message.keep_alive else _S_CLOSED


class ResponseParser(_Parser):
    """Parses the responses of one server connection.

    Call ``expect(method, upgrade=False)`` once per request sent, in order
    (``upgrade``: the request carried Connection: upgrade + Upgrade). Each
    final response consumes one expectation; a response with none pending
    is an error (502).

    Body rules (RFC 9112 section 6.3): a response to HEAD, any 1xx, 204 and
    304 have no body; a 2xx to CONNECT and a 101 switch to a tunnel (the head
    is returned, then TUNNEL); then chunked, then Content-Length; otherwise
    the body runs until EOF (BODY_CLOSE; keep_alive is then False).

    Interim responses (100, 102, 103) are returned as Response heads with
    ``interim`` True and are *not* followed by END_OF_MESSAGE: the next event
    is the next head. ``message``/``body_mode`` are the last head's (message
    is None after whole_response())."""

    __slots__ = ("_expected",)

    _status = 502
    _incomplete = staticmethod(_response_head_incomplete)
    _build = staticmethod(_build_response)

    def __init__(self, max_head: int = 16384, max_headers: int = _MAX_HEADERS):
        super().__init__(max_head, max_headers)
        self._expected = []

    def drained(self) -> bool:
        """No request awaiting an answer and no byte buffered: the
        connection may serve another request."""
        return not self._expected and self._pos >= len(self._buf)

    def expect(self, method: bytes, upgrade: bool = False) -> None:
        """Announce a request sent on this connection (FIFO)."""
        self._expected.append((method, upgrade))

    @property
    def pending(self) -> int:
        """Requests announced with expect() and not answered yet."""
        return len(self._expected)

    def whole_response(self, data: bytes):
        """The fast path of the common case. When the parser is idle(), one
        request is expected (not CONNECT) and ``data`` (bytes from one recv)
        is exactly one final response: its head plus its whole body framed
        by Content-Length (or no body: HEAD, 204, 304), return ``(response,
        body)`` and leave the parser as feeding data and taking every event
        up to END_OF_MESSAGE would. Otherwise return None and change
        nothing: the caller feeds data as usual."""
        if (self._state != _S_HEAD or self._pos < len(self._buf) or self._eof
                or len(self._expected) != 1 or data[0] == 13):
            return None
        seen = _SEEN
        if (seen.head is not None and seen.max_head == self.max_head
                and seen.max_headers == self.max_headers and _starts_with(data, seen.head)):
            # the head the last response of any connection had, byte for
            # byte (a server answering alike): checked then, copied now
            resp = seen.resp._lazy_copy()
            end = len(seen.head) - 4
            known = True
        else:
            end = _head_end(data, 0, self.max_head)
            if end < 0:
                return None
            try:
                resp = _build_response(data, 0, end, self.max_headers, True)
            except HttpError:
                return None
            known = False
        st = resp.status
        method = self._expected[0][0]
        if st < 200 or resp.chunked or method == b"CONNECT":
            return None
        start = end + 4
        n = len(data)
        if method == b"HEAD" or st == 204 or st == 304:
            if start != n:
                return None
            mode = BODY_NONE
        else:
            cl = resp.content_length
            if cl is None or n - start != cl:
                return None
            mode = BODY_LENGTH if cl else BODY_NONE
        del self._expected[0]
        # as in whole_request (message None: not kept by an idle connection)
        self.message = None
        self.body_mode = resp.body_mode = mode
        self._state = _S_HEAD if resp.keep_alive else _S_CLOSED
        self._empty = 0
        p = data
        body = b"" if start == n else p[start:n]
        if not known:
            head = data if start == n else p[0:start]
            resp._keep_raw(head)
            if resp._headers is None and resp.raw is not None:
                seen.remember(head, resp, self.max_head, self.max_headers)
        return resp, body

    def _head_done(self, resp):
        if not self._expected:
            raise HttpError(502, "response without a request")
        method, upgrade = self._expected[0]
        st = resp.status
        if st < 200:
            if st == 101:
                if not upgrade:
                    raise HttpError(502, "101 Switching Protocols without an upgrade request")
                del self._expected[0]
                self._start_body(resp, BODY_TUNNEL)
                return
            # interim: no body, no EndOfMessage, stay in the head state
            self.message = resp
            self.body_mode = resp.body_mode = BODY_NONE
            return
        del self._expected[0]
        if method == b"CONNECT" and st < 300:
            mode = BODY_TUNNEL
        elif method == b"HEAD" or st == 204 or st == 304:
            mode = BODY_NONE
        elif resp.chunked:
            mode = BODY_CHUNKED
        elif resp.content_length is not None:
            mode = BODY_LENGTH if resp.content_length else BODY_NONE
        else:
            mode = BODY_CLOSE
            resp.keep_alive = False
        self._start_body(resp, mode)


class _SeenHead:
    """The last response head ResponseParser.whole_response() parsed
    lazily (one per worker process, whatever the connection): ``head``,
    its bytes as received (CRLF CRLF included), ``resp`` a copy of the
    Response made of it (after _keep_raw), and the parser limits it was
    checked under. A server sends the same head again and again (nginx
    changes its Date once a second): then the next response starting with
    these bytes is known valid without a parse. A head is a function of
    its bytes, so nothing else can make the copy wrong."""
    __slots__ = ("head", "resp", "max_head", "max_headers")

    def __init__(self):
        self.head = None
        self.resp = None
        self.max_head = 0
        self.max_headers = 0

    def remember(self, head, resp, max_head, max_headers):
        self.head = head
        self.resp = resp._lazy_copy()
        self.max_head = max_head
        self.max_headers = max_headers


_SEEN = _SeenHead()


# --------------------------------------------------------------------------
# serialization

def _serialize(start_line, headers):
    out = b"\r\n".join([start_line, *map(b": ".join, headers), b"", b""])
    # one pass instead of validating every value: a CR or LF smuggled into
    # a name or value by a rule would show up as an extra line break (the
    # join puts len(headers) + 2 CRLFs: any more CR or LF is one too many)
    if _line_breaks(out) != 2 * (len(headers) + 2):
        raise ValueError("CR or LF inside a start line or header field")
    return out


def _line_breaks(data):
    """How many bytes of data are CR or LF (a typed loop once compiled:
    bytes.count parses its arguments the slow way)."""
    p = data
    n = 0
    for i in range(len(data)):
        c = p[i]
        if c == 13 or c == 10:
            n += 1
    return n


# the usual spellings of the one field _cut_field takes out
_CUT_NEEDLES = {n: b"\r\n" + n + b":" for n in (b"Connection", b"connection", b"CONNECTION")}


def _cut_field(headers: list, i: int, raw: bytes) -> bytes:
    """Remove headers[i] (in place) and return raw (the head it was parsed
    from) without its line. The name must be the only one of that exact
    spelling: values hold no CR/LF, so the line is the first that starts
    with it."""
    # partition (one argument, parsed as such) rather than find (whose
    # argument parsing costs about a thousand instructions a call)
    name = headers[i][0]
    needle = _CUT_NEEDLES.get(name)
    if needle is None:
        needle = b"\r\n" + name + b":"
    before, _, rest = raw.partition(needle)
    _, crlf, after = rest.partition(b"\r\n")
    del headers[i]
    return before + crlf + after


def _append_fields(raw: bytes, extra: list) -> bytes:
    """raw (a head ending in CRLF CRLF) with the fields of extra added last."""
    parts = [raw[:-2]]
    for k, v in extra:
        # (a typed pass, not `b"\n" in v`: bytes.__contains__ first tries
        # its argument as an integer, and raises and clears a TypeError for
        # a bytes one; nor translate, which makes a copy)
        if _line_breaks(v) or _line_breaks(k):
            raise ValueError("CR or LF inside a header field")
        parts.append(k)
        parts.append(b": ")
        parts.append(v)
        parts.append(b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def head_bytes(msg) -> bytes:
    """The head to send for a Request or Response as it is now: the bytes
    received (plus appended fields) while only appends changed it (see
    _Message.appended), else serialized. Raises ValueError if a CR or LF
    would be injected. Hop-by-hop fields are *not* touched: call
    strip_hop_by_hop() (or forwarding_strip())."""
    extra = msg.appended()
    if extra is None:
        if type(msg) is Request:
            return serialize_request_head(msg)
        return serialize_response_head(msg)
    if not extra:
        return msg.raw
    return _append_fields(msg.raw, extra)


def forwarding_strip(msg, keep_upgrade: bool = False) -> int:
    """strip_hop_by_hop(msg.headers) for a message about to be forwarded,
    skipped when it cannot find anything: a head kept raw had its
    hop-by-hop fields removed already, so only fields appended since need
    a look."""
    extra = msg.appended()
    if extra is not None:
        for k, _ in extra:
            if len(k) in _HOP_LENGTHS and k.lower() in HOP_BY_HOP:
                break
        else:
            return 0
    return strip_hop_by_hop(msg.headers, keep_upgrade)


def serialize_request_head(req) -> bytes:
    """Request line + fields + empty line, from req.method/target/version/
    headers as they are now. Raises ValueError if a CR or LF would be
    injected. Hop-by-hop fields are *not* touched: call strip_hop_by_hop()."""
    version = req.version
    if version == b"HTTP/2.0":
        version = b"HTTP/1.1"       # an HTTP/2 request goes to an HTTP/1.1 server
    # joined rather than %-formatted: the format parser costs more than the copy
    return _serialize(b" ".join((req.method, req._target, version)), req.headers)


def serialize_response_head(resp) -> bytes:
    """Status line + fields + empty line (see serialize_request_head)."""
    return _serialize(b"%s %d %s" % (resp.version, resp.status, resp.reason), resp.headers)


REASONS = {
    100: b"Continue", 101: b"Switching Protocols", 102: b"Processing", 103: b"Early Hints",
    200: b"OK", 201: b"Created", 202: b"Accepted", 203: b"Non-Authoritative Information",
    204: b"No Content", 205: b"Reset Content", 206: b"Partial Content",
    207: b"Multi-Status", 208: b"Already Reported", 226: b"IM Used",
    300: b"Multiple Choices", 301: b"Moved Permanently", 302: b"Found", 303: b"See Other",
    304: b"Not Modified", 305: b"Use Proxy", 307: b"Temporary Redirect",
    308: b"Permanent Redirect",
    400: b"Bad Request", 401: b"Unauthorized", 402: b"Payment Required", 403: b"Forbidden",
    404: b"Not Found", 405: b"Method Not Allowed", 406: b"Not Acceptable",
    407: b"Proxy Authentication Required", 408: b"Request Timeout", 409: b"Conflict",
    410: b"Gone", 411: b"Length Required", 412: b"Precondition Failed",
    413: b"Content Too Large", 414: b"URI Too Long", 415: b"Unsupported Media Type",
    416: b"Range Not Satisfiable", 417: b"Expectation Failed", 421: b"Misdirected Request",
    422: b"Unprocessable Content", 423: b"Locked", 424: b"Failed Dependency",
    425: b"Too Early", 426: b"Upgrade Required", 428: b"Precondition Required",
    429: b"Too Many Requests", 431: b"Request Header Fields Too Large",
    451: b"Unavailable For Legal Reasons",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported", 506: b"Variant Also Negotiates",
    507: b"Insufficient Storage", 508: b"Loop Detected", 510: b"Not Extended",
    511: b"Network Authentication Required",
}


def make_response(status: int, reason=None, headers=None, body: bytes = b"",
                  version: bytes = b"HTTP/1.1") -> bytes:
    """A complete generated response (head + body). ``reason`` defaults to
    REASONS; ``headers`` is a list of (name, value) (str or bytes); a
    Content-Length is added unless the status forbids a body (1xx, 204, 304)
    or the caller gave Content-Length/Transfer-Encoding."""
    if reason is None:
        reason = REASONS.get(status, b"Unknown")
    elif isinstance(reason, str):
        reason = reason.encode("latin-1")
    hs = [_check_field(k, v) for k, v in headers] if headers else []
    if not (status < 200 or status == 204 or status == 304) and not any(
            k.lower() in _FRAMING for k, _ in hs):
        hs.append((b"Content-Length", b"%d" % len(body)))
    return _serialize(b"%s %d %s" % (version, status, reason), hs) + body


_ERROR_TEXT = {
    400: b"Your browser sent an invalid request.",
    403: b"Request forbidden by administrative rules.",
    408: b"Your browser didn't send a complete request in time.",
    413: b"The request body is too large.",
    414: b"The request URI is too long.",
    431: b"The request header fields are too large.",
    500: b"An internal server error occurred.",
    501: b"The request uses a feature this server does not implement.",
    502: b"The server returned an invalid or incomplete response.",
    503: b"No server is available to handle this request.",
    504: b"The server didn't respond in time.",
    505: b"The HTTP version of the request is not supported.",
}
_error_cache = {}


def error_response(status: int, close: bool = True) -> bytes:
    """The proxy's own error page for ``status`` (HAProxy style HTML, with
    Cache-Control: no-cache and, by default, Connection: close). Built once
    per (status, close) and cached."""
    key = (status, close)
    out = _error_cache.get(key)
    if out is None:
        reason = REASONS.get(status, b"Error")
        body = b"<html><body><h1>%d %s</h1>\n%s\n</body></html>\n" % (
            status, reason, _ERROR_TEXT.get(status, reason))
        hs = [(b"Content-Type", b"text/html"), (b"Cache-Control", b"no-cache")]
        if close:
            hs.append((b"Connection", b"close"))
        out = _error_cache[key] = make_response(status, reason, hs, body)
    return out


# RFC 9110 7.6.1's connection-specific fields (Trailer is end-to-end: it
# announces the trailer fields, which are relayed).
HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"te",
                        b"upgrade"))
_HOP_LENGTHS = frozenset(len(n) for n in HOP_BY_HOP)
# Never removed because Connection names them: stripping a framing field or
# Host on a client's say-so would let it desynchronize proxy and server.
_NEVER_STRIP = frozenset((b"content-length", b"transfer-encoding", b"host"))


def strip_hop_by_hop(headers: list, keep_upgrade: bool = False) -> int:
    """Remove, in place, the hop-by-hop fields of ``headers``: Connection,
    Keep-Alive, Proxy-Connection, TE, Upgrade and every field named
    in a Connection field (except Content-Length, Transfer-Encoding and Host,
    which are kept whatever Connection says). Transfer-Encoding itself is
    kept because the proxy relays chunked bodies raw. With ``keep_upgrade``
    the Upgrade field stays (the proxy forwards an upgrade and then adds
    ``Connection: upgrade`` itself). Returns the number of fields removed.

    The proxy calls it on every message it forwards, before adding its own
    Connection field; the parser never calls it."""
    # Hot path (twice per proxied request): a name is lowercased only when
    # its length is that of a hop-by-hop field, and the list is rebuilt
    # only when there is something to remove.
    drop = HOP_BY_HOP
    lengths = _HOP_LENGTHS
    hit = False
    for k, v in headers:
        if len(k) in lengths:
            lk = k.lower()
            if lk in drop:
                hit = True
                if lk == b"connection":
                    named = {t.strip(b" \t") for t in v.lower().split(b",")}
                    named.discard(b"")
                    if not named <= drop:
                        drop = (drop | named) - _NEVER_STRIP
                        lengths = None      # any length may be named now
                        break
    if lengths is not None and not hit:
        return 0
    if keep_upgrade:
        drop = drop - {b"upgrade"}
    kept = [h for h in headers if h[0].lower() not in drop]
    removed = len(headers) - len(kept)
    if removed:
        headers[:] = kept
    return removed


def dechunk(raw: bytes) -> bytes:
    """Decode a complete chunked body as relayed in Data events (already
    validated by the parser; trailers are dropped). For health checks and
    tests, not for the relay path."""
    out = []
    p = 0
    while True:
        nl = raw.index(b"\r\n", p)
        size = int(raw[p:nl].split(b";", 1)[0].strip(b" \t"), 16)
        if size == 0:
            return b"".join(out)
        out.append(raw[nl + 2:nl + 2 + size])
        p = nl + 4 + size
