"""The server name and the ALPN protocols of a TLS ClientHello, read from
the bytes a client sent first (pure: no sockets).

Python's ssl module shows the server name to the SNI callback but never
the ALPN list before it answers, and a TLS-ALPN-01 validation (RFC 8737)
must get another certificate than ordinary clients of the same name. So a
tls bind whose frontend proves its domains with tls-alpn-01 peeks at the
first bytes (workers/alpnaccept.py), and parse() says what they offer.

What is read: TLS records of type handshake (22), their fragments joined
(a ClientHello may be split over several records, and a record over
several reads), the ClientHello's legacy fields skipped, then the
server_name (0) and application_layer_protocol_negotiation (16)
extensions. Everything is bounded: a handshake message longer than
MAX_HELLO is refused, whatever its records claim.

parse() returns NEED_MORE while the bytes are a valid beginning of a
ClientHello, a ClientHello once complete, and raises NotClientHello for
anything else (an HTTP request on a tls bind, an SSLv2 hello, a
malformed message): the caller then lets OpenSSL say so, as usual.
"""

from __future__ import annotations

__all__ = ["ClientHello", "NotClientHello", "NEED_MORE", "MAX_HELLO", "parse"]

MAX_HELLO = 65536            # bytes of handshake message; real ones are < 2 KiB (a few with PQ keys)
_RECORD_MAX = 16384 + 2048   # a TLSPlaintext fragment is at most 2^14; leave the slack OpenSSL leaves
_HANDSHAKE = 22
_CLIENT_HELLO = 1
_EXT_SERVER_NAME = 0
_EXT_ALPN = 16

NEED_MORE = None


class NotClientHello(ValueError):
    """The bytes are not (the beginning of) a TLS ClientHello; str() says why."""


class ClientHello:
    """What a ClientHello offers: sni (the host_name, lowercased, or None)
    and alpn (the protocol names, in the client's order)."""

    __slots__ = ("sni", "alpn")

    def __init__(self, sni: str | None, alpn: tuple[bytes, ...]):
        self.sni = sni
        self.alpn = alpn

    def __repr__(self) -> str:
        return f"ClientHello(sni={self.sni!r}, alpn={self.alpn!r})"


def _handshake_bytes(data: bytes) -> bytes | None:
    """The handshake message bytes carried by the records at the start of
    data, joined; None while the first handshake message is incomplete."""
    out = bytearray()
    pos = 0
    need = -1                          # the handshake message's full length, once known
    while True:
        if len(data) - pos < 5:
            return None
        ctype = data[pos]
        if ctype != _HANDSHAKE:
            if pos == 0:
                raise NotClientHello(f"not a TLS handshake record (content type {ctype})")
            raise NotClientHello("the ClientHello is interleaved with another record type")
        if data[pos + 1] != 3:
            raise NotClientHello("not a TLS record (version major is not 3)")
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        if length == 0 or length > _RECORD_MAX:
            raise NotClientHello(f"TLS record of {length} bytes")
        fragment = data[pos + 5:pos + 5 + length]
        out += fragment
        if need < 0 and len(out) >= 4:
            if out[0] != _CLIENT_HELLO:
                raise NotClientHello(f"first handshake message is type {out[0]}, not a ClientHello")
            need = 4 + int.from_bytes(out[1:4], "big")
            if need > MAX_HELLO:
                raise NotClientHello(f"ClientHello of {need} bytes (more than {MAX_HELLO})")
        if need >= 0 and len(out) >= need:
            return bytes(out[:need])
        if len(fragment) < length:
            return None                # this record is not all there yet
        pos += 5 + length


class _Reader:
    """Bounds-checked reads over one message (NotClientHello past its end)."""

    __slots__ = ("b", "pos", "end")

    def __init__(self, b: bytes, pos: int, end: int):
        self.b, self.pos, self.end = b, pos, end

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise NotClientHello("ClientHello truncated inside a field")
        out = self.b[self.pos:self.pos + n]
        self.pos += n
        return out

    def num(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, size: int) -> "_Reader":
        """The sub-reader of a vector whose length takes `size` bytes."""
        n = self.num(size)
        sub = _Reader(self.b, self.pos, self.pos + n)
        if sub.end > self.end:
            raise NotClientHello("ClientHello truncated inside a vector")
        self.pos += n
        return sub

    def done(self) -> bool:
        return self.pos >= self.end


def _server_name(r: _Reader) -> str | None:
    names = r.vector(2)
    while not names.done():
        kind = names.num(1)
        name = names.vector(2)
        if kind == 0:                  # host_name
            raw = name.take(name.end - name.pos)
            try:
                return raw.decode("ascii").lower().rstrip(".") or None
            except UnicodeDecodeError:
                raise NotClientHello("server name is not ASCII") from None
    return None


def _alpn(r: _Reader) -> tuple[bytes, ...]:
    protocols = r.vector(2)
    out = []
    while not protocols.done():
        p = protocols.vector(1)
        out.append(p.take(p.end - p.pos))
    return tuple(out)


def parse(data: bytes) -> ClientHello | None:
    """The ClientHello at the start of data (see the module docstring):
    a ClientHello, NEED_MORE (None) while incomplete, or NotClientHello."""
    msg = _handshake_bytes(data)
    if msg is None:
        return NEED_MORE
    r = _Reader(msg, 4, len(msg))
    r.take(2 + 32)                     # legacy_version, random
    r.vector(1)                        # legacy_session_id
    r.vector(2)                        # cipher_suites
    r.vector(1)                        # legacy_compression_methods
    sni: str | None = None
    alpn: tuple[bytes, ...] = ()
    if r.done():
        return ClientHello(None, ())   # no extensions at all (very old clients)
    extensions = r.vector(2)
    while not extensions.done():
        kind = extensions.num(2)
        body = extensions.vector(2)
        if kind == _EXT_SERVER_NAME:
            sni = _server_name(body)
        elif kind == _EXT_ALPN:
            alpn = _alpn(body)
    return ClientHello(sni, alpn)
