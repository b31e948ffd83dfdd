"""Reading and extending a lazily parsed request head without splitting it.

The parsers' fast path (workers/http1.py _build_request with lazy=True,
then _keep_raw) leaves a plain request's fields unsplit: ``_headers`` is
None, ``raw`` holds the head as received (its Connection line cut), and
append_field() keeps the fields added since in ``_appended``. Splitting
it (``msg.headers``) costs a tuple and two bytes per field, and makes
head_bytes() compare the split list against the received one.

What the per-request rules ask most (is a field there, what is the last
value of one, add a field) is answered here from ``raw`` and
``_appended`` directly, with the same results as on the split fields:
X-Forwarded-Proto (workers/stream.py set_forwarded_proto), set-header and
%[req.hdr(NAME)] (workers/rules.py). Each function takes a message for
which is_lazy() is true.

Pure logic, no I/O; compiled (lazyhead.pxd types the byte walks, which
read the buffers through C pointers).
"""

from __future__ import annotations

from workers.http1 import _VALUE_OK_T, Request


def is_lazy(msg) -> bool:
    """msg is a Request whose fields are still unsplit (raw kept)."""
    if type(msg) is not Request:
        return False
    r = msg
    return r._headers is None and r.raw is not None


def _field_at(raw: bytes, i: int, lname: bytes) -> bool:
    """raw[i:] starts with the field name lname (lowercase), followed by ':'
    (a validated head has no whitespace before the colon)."""
    p = raw
    q = lname
    m = len(lname)
    if i + m >= len(raw):
        return False
    for k in range(m):
        c = p[i + k]
        if 65 <= c <= 90:           # A-Z: bytes.lower()'s only change
            c += 32
        if c != q[k]:
            return False
    return p[i + m] == 58            # ':'


def _raw_value(raw: bytes, lname: bytes, last: bool):
    """The value of the first (last: the last) field lname in raw (a head
    as received: start line, fields, each line ending in CRLF, an empty
    line), trimmed of SP/HTAB as the parser gives it; None when absent."""
    p = raw
    n = len(raw)
    m = len(lname)
    found = -1
    i = 0
    while i < n:
        if p[i] == 10:      # a line starts after each LF (a validated head has LF only in CRLF)
            i += 1
            if _field_at(raw, i, lname):
                found = i + m + 1
                if not last:
                    break
        else:
            i += 1
    if found < 0:
        return None
    a = found
    while p[a] == 32 or p[a] == 9:
        a += 1
    b = a
    i = a
    while p[i] != 13:
        c = p[i]
        i += 1
        if c != 32 and c != 9:
            b = i
    return p[a:b]


def has_field(msg, lname: bytes) -> bool:
    """The lazy head msg has a field lname (lowercase): among the received
    ones or the appended ones."""
    app = msg._appended
    if app is not None:
        n = len(lname)
        for k, _ in app:
            if len(k) == n and k.lower() == lname:
                return True
    return _raw_value(msg.raw, lname, False) is not None


def last_value(msg, lname: bytes):
    """The value of the last field lname (lowercase) of the lazy head msg,
    appended ones included; None when absent."""
    app = msg._appended
    if app is not None:
        n = len(lname)
        for k, v in reversed(app):
            if len(k) == n and k.lower() == lname:
                return v
    return _raw_value(msg.raw, lname, True)


def value_ok(value: bytes) -> bool:
    """Every byte of value is allowed in a field value (what
    http1._check_field tests with _VALUE_OK_T; the ends are the caller's)."""
    table = _VALUE_OK_T
    t = table
    p = value
    for i in range(len(value)):
        c = p[i]
        if t[c] != c:
            return False
    return True


# -- the path, without Request._split ---------------------------------------
#
# An origin-form target ("/...") has as its path what comes before the
# first '?': the tests below compare in place, without making the path's
# bytes (Request.path splits the target into three new bytes on first
# use). Another request, or another kind of target, goes through .path.

def _path_end(r) -> int:
    """The length of r's path in r._target when it starts the target (an
    origin-form target, or a path already split off: then -1 and the
    caller reads r._path); -2 when neither (use r.path)."""
    if r._path is not None:
        return -1
    target = r._target
    p = target
    n = len(target)
    if n == 0 or p[0] != 47:         # '/'
        return -2
    for i in range(n):
        if p[i] == 63:               # '?'
            return i
    return n


def path_starts(req, pats: tuple) -> bool:
    """req.path.startswith(pats)."""
    return _path_affix(req, pats, False)


def path_ends(req, pats: tuple) -> bool:
    """req.path.endswith(pats)."""
    return _path_affix(req, pats, True)


def _path_affix(req, pats: tuple, at_end: bool) -> bool:
    """req.path.endswith(pats) if at_end, else req.path.startswith(pats),
    read in the target when the path is its first part (no bytes made)."""
    if type(req) is not Request:
        return req.path.endswith(pats) if at_end else req.path.startswith(pats)
    r = req
    end = _path_end(r)
    if end < 0:
        return r.path.endswith(pats) if at_end else r.path.startswith(pats)
    p = r._target
    for pat in pats:
        q = pat
        m = len(pat)
        if m > end:
            continue
        base = end - m if at_end else 0
        k = 0
        while k < m and p[base + k] == q[k]:
            k += 1
        if k == m:
            return True
    return False
