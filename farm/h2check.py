"""One HTTP/2 health check exchange, sans-IO (HAProxy's `check-proto h2`).

The master's checker (farm/health.py) owns the socket; this module only
turns the check into bytes and the server's bytes into a verdict:

    ex = H2Exchange("GET", "http", "/healthz", "app.example.com", want_body=False)
    sock.send(ex.start())            # preface, SETTINGS, HEADERS of stream 1
    out = ex.receive(data)           # bytes to answer (SETTINGS ACK, PING ACK)
    ...                              # until ex.done (or ex.eof() on a close)
    ex.status, ex.body               # the response of stream 1
    sock.send(ex.goaway())           # then close

Every way the server can get it wrong raises CheckFailed with a short
reason for the check's log line: a first frame that is not SETTINGS (an
HTTP/1.1 server answering the preface, for one), a frame the codec
refuses, RST_STREAM on stream 1, a GOAWAY that says stream 1 will not be
served, PUSH_PROMISE (push is disabled), a response without a valid
:status.

The body is wanted only when the check matches its content. It is read up
to END_STREAM or until the initial flow-control window (65535 bytes, the
default: no WINDOW_UPDATE is ever sent) is used up, whichever comes first;
that is the part of the body a check looks at, as the HTTP/1.1 check looks
at the first 64 KiB of a response.

The frames and HPACK come from the data plane's own sans-IO codec
(workers/h2/frames.py and hpack.py): the one place farm/ imports workers/
besides `farm explain`, so that there is one HTTP/2 codec.
"""

from __future__ import annotations

from workers.h2 import frames as fr
from workers.h2 import hpack
from workers.h2.errors import NO_ERROR, H2Error, HeaderListTooLarge, error_name

STREAM = 1                         # the check's only stream
WINDOW = fr.DEFAULT_WINDOW         # what the server may send on stream 1 (never raised)
MAX_FRAME = fr.DEFAULT_MAX_FRAME_SIZE   # we never advertise a larger one

# Our SETTINGS: no push (a check wants one response); everything else at
# its default (header table 4096, window 65535, frames of 16 KiB).
_SETTINGS = fr.settings_frame([(fr.SETTINGS_ENABLE_PUSH, 0)])


class CheckFailed(Exception):
    """The exchange cannot give a response: ``str(e)`` says why, in a few
    words (the check's info)."""


class H2Exchange:
    """The client side of one check: one request on stream 1, one response.

    Assumes the caller sends start() first, feeds every byte received to
    receive() in order (any split), sends what receive() returns, and stops
    once ``done`` is true or an exception came out.
    """

    def __init__(self, method: str, scheme: str, path: str, authority: str,
                 want_body: bool = False):
        self.fields = [(b":method", method.encode("ascii")), (b":scheme", scheme.encode("ascii")),
                       (b":path", path.encode("latin-1")),
                       (b":authority", authority.encode("latin-1")),
                       # te: trailers, as farm's requests to HTTP/2 servers
                       # say: gRPC servers reset a request without it
                       (b"te", b"trailers"), (b"user-agent", b"farm-check")]
        self.want_body = want_body
        self.decoder = hpack.Decoder()
        self.buf = bytearray()
        self.preface_seen = False       # the server's first frame (SETTINGS) arrived
        self.block = bytearray()        # header block being gathered (HEADERS + CONTINUATION)
        self.block_sid = 0              # its stream, while CONTINUATION frames are due
        self.block_end_stream = False
        self.status = 0                 # the final :status, once its HEADERS arrived
        self.body = bytearray()
        self.received = 0               # flow-controlled bytes of stream 1 (padding included)
        self.done = False

    # -- sending ---------------------------------------------------------------

    def start(self) -> bytes:
        """The connection preface, our SETTINGS and the request: HEADERS
        with END_HEADERS and END_STREAM (a check has no body)."""
        block = hpack.Encoder().encode(self.fields)
        return fr.PREFACE + _SETTINGS + fr.headers_frames(STREAM, block, end_stream=True)

    @staticmethod
    def goaway() -> bytes:
        """A GOAWAY NO_ERROR to end the connection politely (the server
        opened no stream, so the last stream id is 0)."""
        return fr.goaway_frame(0, NO_ERROR)

    # -- receiving -------------------------------------------------------------

    def receive(self, data: bytes) -> bytes:
        """Take bytes from the server; return the bytes to send back (ACKs
        of its SETTINGS and PINGs, possibly b""). Raises CheckFailed."""
        self.buf += data
        buf = self.buf
        if not self.preface_seen and buf[:1] == b"H":
            # no frame starts with "H" (the length's first byte would be
            # 72: 4.7 MB): an HTTP/1.x answer; its status line makes a
            # better reason, so wait for it
            if b"\n" in buf or len(buf) >= 64:
                raise CheckFailed(_h1_answer(buf))
            return b""
        out = []
        pos = 0
        try:
            while not self.done and len(buf) - pos >= fr.HEADER_SIZE:
                length, ftype, flags, sid = fr.parse_header(buf, pos)
                if not self.preface_seen:
                    self._check_preface(ftype, flags, sid, length)
                if length > MAX_FRAME:
                    raise CheckFailed(f"frame of {length} bytes above {MAX_FRAME} "
                                      "(FRAME_SIZE_ERROR)")
                end = pos + fr.HEADER_SIZE + length
                if len(buf) < end:
                    break
                payload = bytes(buf[pos + fr.HEADER_SIZE:end])
                pos = end
                out.append(self._frame(ftype, flags, sid, payload))
        except H2Error as e:
            raise CheckFailed(f"invalid frame from the server: {e}") from None
        finally:
            del buf[:pos]
        return b"".join(out)

    def eof(self) -> None:
        """The server closed the connection. Fine once the final status is
        in (the body is then what arrived); otherwise raises CheckFailed."""
        if self.done:
            return
        if self.status:
            self.done = True
            return
        if not self.preface_seen:
            if self.buf[:1] == b"H":
                raise CheckFailed(_h1_answer(self.buf))
            if self.buf:
                raise CheckFailed("invalid HTTP/2 preface from the server")
            raise CheckFailed("connection closed before the server's preface")
        raise CheckFailed("connection closed before the response")

    def _check_preface(self, ftype: int, flags: int, sid: int, length: int) -> None:
        # RFC 9113 section 3.4: the server's preface is a SETTINGS frame
        # (not an ACK) on stream 0
        if ftype != fr.SETTINGS or flags & fr.FLAG_ACK or sid or length % 6 \
                or length > MAX_FRAME:
            raise CheckFailed("invalid HTTP/2 preface from the server (first frame "
                              f"{_frame_name(ftype)}, not SETTINGS)")
        self.preface_seen = True

    def _frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
        """Handle one whole frame; the bytes to answer it with."""
        if self.block_sid and ftype != fr.CONTINUATION:
            raise CheckFailed(f"{_frame_name(ftype)} where a CONTINUATION was due "
                              "(PROTOCOL_ERROR)")
        if ftype == fr.SETTINGS:
            fr.parse_settings(sid, flags, payload)      # checked; nothing of it matters here
            return b"" if flags & fr.FLAG_ACK else fr.SETTINGS_ACK
        if ftype == fr.HEADERS:
            fragment, _ = fr.parse_headers(sid, flags, payload)
            if sid != STREAM:
                raise CheckFailed(f"HEADERS on stream {sid}, which the check did not open")
            self.block[:] = fragment
            self.block_end_stream = bool(flags & fr.FLAG_END_STREAM)
            if flags & fr.FLAG_END_HEADERS:
                self._header_block()
            else:
                self.block_sid = sid
            return b""
        if ftype == fr.CONTINUATION:
            fragment = fr.parse_continuation(sid, payload)
            if sid != self.block_sid:
                raise CheckFailed("CONTINUATION without HEADERS before it (PROTOCOL_ERROR)")
            self.block += fragment
            if flags & fr.FLAG_END_HEADERS:
                self.block_sid = 0
                self._header_block()
            return b""
        if ftype == fr.DATA:
            data = fr.parse_data(sid, flags, payload)
            if sid != STREAM:
                raise CheckFailed(f"DATA on stream {sid}, which the check did not open")
            if not self.status:
                raise CheckFailed("DATA before the response's HEADERS (PROTOCOL_ERROR)")
            self.received += len(payload)
            if self.received > WINDOW:
                raise CheckFailed("DATA beyond the flow-control window (FLOW_CONTROL_ERROR)")
            self.body += data
            if flags & fr.FLAG_END_STREAM or self.received == WINDOW:
                self.done = True       # all of it, or all the server may send
            return b""
        if ftype == fr.RST_STREAM:
            code = fr.parse_rst_stream(sid, payload)
            if sid == STREAM:
                raise CheckFailed(f"stream reset by the server ({error_name(code)})")
            return b""
        if ftype == fr.GOAWAY:
            last, code, debug = fr.parse_goaway(sid, payload)
            if code != NO_ERROR or last < STREAM:
                # an error, or "stream 1 was not and will not be processed";
                # a graceful GOAWAY that covers stream 1 lets it finish
                detail = debug[:80].decode("utf-8", "replace")
                raise CheckFailed(f"GOAWAY from the server ({error_name(code)}"
                                  + (f": {detail}" if detail else "") + ")")
            return b""
        if ftype == fr.PING:
            data = fr.parse_ping(sid, payload)
            return b"" if flags & fr.FLAG_ACK else fr.ping_frame(data, ack=True)
        if ftype == fr.PUSH_PROMISE:
            raise CheckFailed("PUSH_PROMISE while push is disabled (PROTOCOL_ERROR)")
        if ftype == fr.WINDOW_UPDATE:
            fr.parse_window_update(payload)    # its size checked; nothing to send anyway
        # PRIORITY and unknown types: ignored (RFC 9113 sections 5.3.2, 5.5)
        return b""

    def _header_block(self) -> None:
        """A complete header block of stream 1: the final response's
        HEADERS (1xx ones skipped), or its trailers."""
        try:
            fields = self.decoder.decode(bytes(self.block))
        except HeaderListTooLarge as e:
            raise CheckFailed(f"response header list too large ({e.reason})") from None
        end_stream = self.block_end_stream
        if self.status:                 # trailers
            if not end_stream:
                raise CheckFailed("trailers without END_STREAM (PROTOCOL_ERROR)")
            self.done = True
            return
        status = _status(fields)
        if status < 200:
            if end_stream:
                raise CheckFailed(f"stream ended on an interim {status} response")
            return                      # 1xx: the final response follows
        self.status = status
        if end_stream or not self.want_body:
            self.done = True


def _status(fields: list) -> int:
    """The :status of a response's header list; CheckFailed unless it is
    there once, first, and three digits (RFC 9113 section 8.3.2)."""
    values = [v for n, v in fields if n == b":status"]
    if len(values) != 1 or fields[0][0] != b":status":
        raise CheckFailed("response without a single leading :status (PROTOCOL_ERROR)")
    v = values[0]
    if len(v) != 3 or not v.isdigit() or v[0:1] == b"0":
        raise CheckFailed(f"invalid :status {v.decode('latin-1')!r}")
    return int(v)


def _h1_answer(buf) -> str:
    """The reason for an answer to the preface that starts with "H"
    (an HTTP/1.x status line, surely)."""
    line = bytes(buf[:64]).split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1", "replace")
    if not line.startswith("HTTP/"):
        return f"invalid HTTP/2 preface from the server ({line!r})"
    return f"invalid HTTP/2 preface: the server answered in HTTP/1.x ({line!r})"


def _frame_name(ftype: int) -> str:
    return fr.FRAME_NAMES[ftype] if ftype < len(fr.FRAME_NAMES) else "type 0x%x" % ftype


def alpn_mismatch(proto: str, selected: str | None) -> str | None:
    """Why a TLS check cannot go on after the handshake, or None: an h2
    check whose server chose another protocol by ALPN, or an h1 check
    whose server chose h2 (each would answer in a protocol the other does
    not speak). No ALPN at all is left to the exchange itself."""
    if selected is None:
        return None
    if proto == "h2" and selected != "h2":
        return f"ALPN: the server chose {selected!r}, not 'h2'"
    if proto == "h1" and selected == "h2":
        return "ALPN: the server chose 'h2' for an HTTP/1.1 check (see check.proto)"
    return None
