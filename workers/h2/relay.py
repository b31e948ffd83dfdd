"""What the HTTP/2 client connection (workers/h2conn.py) needs to relay
HTTP/1.1 messages to an HTTP/2 client: pure, no sockets.

* ``Dechunker``: a chunked response body, as workers/http1.py relays it
  (``Data.raw``: the wire bytes, framing already validated by the
  parser), back to its payload bytes, plus its trailer fields. HTTP/2 has
  no chunked coding: the payload goes out in DATA frames, the trailers in
  a last HEADERS frame.
* ``split_response(data)``: a whole HTTP/1.1 response made by the proxy
  (an error page, a redirect, a rule's answer, an errorfile) ->
  ``(status, fields, body)`` with HTTP/2 field names (lowercase, no
  connection-specific fields).
"""

from workers.h2.messages import CONNECTION_SPECIFIC

__all__ = ["Dechunker", "split_response"]

_SIZE, _DATA, _CRLF, _TRAILERS, _DONE = range(5)
_DROP = CONNECTION_SPECIFIC | {b"te", b"http2-settings"}


class Dechunker:
    """Incremental decoder of a validated chunked body, fed in any split.

    ``feed(raw)`` returns the payload bytes found in raw (maybe b"");
    ``done`` is True once the last chunk and the trailer section were
    read; ``trailers`` then holds the trailer fields as HTTP/2 fields
    (lowercase names, connection-specific ones dropped)."""

    __slots__ = ("state", "left", "buf", "done", "trailers")

    def __init__(self):
        self.state = _SIZE
        self.left = 0
        self.buf = b""
        self.done = False
        self.trailers = []

    def feed(self, raw: bytes) -> bytes:
        if self.buf:
            raw = self.buf + raw
            self.buf = b""
        out = []
        pos = 0
        n = len(raw)
        while pos < n:
            st = self.state
            if st == _DATA:
                take = min(self.left, n - pos)
                out.append(raw[pos:pos + take])
                pos += take
                self.left -= take
                if not self.left:
                    self.state = _CRLF
            elif st == _SIZE:
                nl = raw.find(b"\r\n", pos)
                if nl < 0:
                    self.buf = raw[pos:]
                    break
                size = int(raw[pos:nl].split(b";", 1)[0].strip(b" \t"), 16)
                pos = nl + 2
                if size:
                    self.left = size
                    self.state = _DATA
                else:
                    self.state = _TRAILERS
            elif st == _CRLF:
                if n - pos < 2:
                    self.buf = raw[pos:]
                    break
                pos += 2
                self.state = _SIZE
            elif st == _TRAILERS:
                if raw[pos:pos + 2] == b"\r\n":
                    self.state = _DONE
                    self.done = True
                    break
                end = raw.find(b"\r\n\r\n", pos)
                if end < 0:
                    self.buf = raw[pos:]
                    break
                for line in raw[pos:end].split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name and name not in _DROP:
                        self.trailers.append((name, value.strip(b" \t")))
                self.state = _DONE
                self.done = True
                break
            else:
                break
        if not out:
            return b""
        return out[0] if len(out) == 1 else b"".join(out)


def split_response(data: bytes) -> tuple:
    """(status, fields, body) of a whole HTTP/1.1 response (head and
    body). The proxy made it (or an errorfile holds it), so it is read
    leniently: fields without a colon are skipped; names are lowercased;
    connection-specific fields and transfer-encoding go (the body is
    sent as is, its length is the DATA's)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        head, body = data, b""
    else:
        head, body = data[:end], data[end + 4:]
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        status = 502
    fields = [(b":status", b"%d" % status)]
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        name = name.strip().lower()
        if name and name not in _DROP:
            fields.append((name, value.strip(b" \t")))
    return status, fields, body
