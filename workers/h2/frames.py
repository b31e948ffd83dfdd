"""HTTP/2 frames (RFC 9113 sections 4 and 6): the 9-byte header, every
frame type's payload, padding, and the checks that need no connection
state. Pure functions on bytes; no buffering, no state.

Parsing: ``parse_header(buf, pos)`` reads a frame header; the connection
(workers/h2/conn.py) checks the length against its SETTINGS_MAX_FRAME_SIZE
before waiting for the payload, then calls the ``parse_<type>()`` function
of the frame type with the stream id, flags and payload. Each one checks
what RFC 9113 fixes for that type regardless of state (stream id zero or
not, fixed lengths, padding, setting values) and raises ``H2ConnectionError``
or ``H2StreamError`` with the code the RFC names. State checks (idle or
closed streams, flow control, CONTINUATION sequencing) belong to the
connection.

Serializing: one function per frame type returning the frame's bytes.
``headers_frames()`` splits a header block into HEADERS + CONTINUATION
frames of at most the peer's max frame size; DATA is never split here (the
connection sizes DATA to the flow-control windows).

Unknown frame types are ignored by the connection (RFC 9113 section 5.5);
unknown flags are ignored everywhere; the reserved bit of the stream id is
masked off (section 4.1).
"""

import struct

try:
    import cython               # the compiled build: cython.compiled is True
except ImportError:             # pure Python without Cython installed
    from farm import nocython as cython

from workers.h2.errors import (
    FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, PROTOCOL_ERROR,
    H2ConnectionError, H2StreamError,
)

__all__ = [
    "DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
    "GOAWAY", "WINDOW_UPDATE", "CONTINUATION", "FRAME_NAMES",
    "FLAG_END_STREAM", "FLAG_ACK", "FLAG_END_HEADERS", "FLAG_PADDED", "FLAG_PRIORITY",
    "SETTINGS_HEADER_TABLE_SIZE", "SETTINGS_ENABLE_PUSH", "SETTINGS_MAX_CONCURRENT_STREAMS",
    "SETTINGS_INITIAL_WINDOW_SIZE", "SETTINGS_MAX_FRAME_SIZE", "SETTINGS_MAX_HEADER_LIST_SIZE",
    "SETTINGS_ENABLE_CONNECT_PROTOCOL", "SETTINGS_NO_RFC7540_PRIORITIES",
    "PREFACE", "HEADER_SIZE", "DEFAULT_MAX_FRAME_SIZE", "MAX_FRAME_SIZE_LIMIT",
    "DEFAULT_WINDOW", "MAX_WINDOW",
    "parse_header", "frame_header", "strip_padding",
    "parse_data", "parse_headers", "parse_priority", "parse_rst_stream", "parse_settings",
    "parse_push_promise", "parse_ping", "parse_goaway", "parse_window_update",
    "parse_continuation",
    "data_frame", "headers_frames", "priority_frame", "rst_stream_frame", "settings_frame",
    "SETTINGS_ACK", "push_promise_frames", "ping_frame", "goaway_frame",
    "window_update_frame", "continuation_frame",
]

# frame types (section 6)
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

FRAME_NAMES = ("DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE",
               "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION")

# flags
FLAG_END_STREAM = 0x1       # DATA, HEADERS
FLAG_ACK = 0x1              # SETTINGS, PING
FLAG_END_HEADERS = 0x4      # HEADERS, PUSH_PROMISE, CONTINUATION
FLAG_PADDED = 0x8           # DATA, HEADERS, PUSH_PROMISE
FLAG_PRIORITY = 0x20        # HEADERS

# settings (section 6.5.2; 8 is RFC 8441, 9 is RFC 9218)
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8
SETTINGS_NO_RFC7540_PRIORITIES = 0x9

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER_SIZE = 9
DEFAULT_MAX_FRAME_SIZE = 16384          # 2**14, the initial SETTINGS_MAX_FRAME_SIZE
MAX_FRAME_SIZE_LIMIT = 16777215         # 2**24 - 1
DEFAULT_WINDOW = 65535                  # initial flow-control windows
MAX_WINDOW = 2147483647                 # 2**31 - 1

# length (24 bits) as a 16-bit and an 8-bit field, type, flags, R + stream id
_HEADER = struct.Struct(">HBBBL")
_header_unpack = _HEADER.unpack_from
_header_pack = _HEADER.pack
_U32 = struct.Struct(">L")
_U32x2 = struct.Struct(">LL")
_SETTING = struct.Struct(">HL")
_PRIO = struct.Struct(">LB")


# --------------------------------------------------------------------------
# header

def parse_header(buf, pos: int = 0) -> tuple:
    """(length, type, flags, stream_id) of the frame header at buf[pos:pos+9]
    (bytes, bytearray or memoryview holding at least 9 bytes from pos). The
    reserved bit is dropped."""
    hi, lo, ftype, flags, sid = _header_unpack(buf, pos)
    return (hi << 8) | lo, ftype, flags, sid & 0x7FFFFFFF


def frame_header(length: int, ftype: int, flags: int, stream_id: int) -> bytes:
    """The 9-byte header of a frame (length < 2**24, stream id < 2**31;
    type and flags < 256)."""
    if not cython.compiled:
        return _header_pack(length >> 8, length & 0xFF, ftype, flags, stream_id)
    # written byte by byte into a C array: struct's pack is a call, its
    # format read again, and five integers converted
    h = _HEAD_BUF
    h[0] = (length >> 16) & 0xFF
    h[1] = (length >> 8) & 0xFF
    h[2] = length & 0xFF
    h[3] = ftype
    h[4] = flags
    h[5] = (stream_id >> 24) & 0x7F
    h[6] = (stream_id >> 16) & 0xFF
    h[7] = (stream_id >> 8) & 0xFF
    h[8] = stream_id & 0xFF
    return h[0:9]


# --------------------------------------------------------------------------
# payloads (receiving)

def strip_padding(payload: bytes) -> bytes:
    """The payload of a PADDED frame without the Pad Length byte and the
    padding. A pad length equal to or above the rest is a connection error
    PROTOCOL_ERROR (sections 6.1, 6.2); a PADDED frame without room for the
    Pad Length byte is a FRAME_SIZE_ERROR."""
    if not payload:
        raise H2ConnectionError(FRAME_SIZE_ERROR, "padded frame without pad length")
    pad = payload[0]
    end = len(payload) - pad
    if end <= 0:
        raise H2ConnectionError(PROTOCOL_ERROR, "padding longer than the payload")
    return payload[1:end]


def parse_data(stream_id: int, flags: int, payload: bytes) -> bytes:
    """The data of a DATA frame (padding removed). The flow-controlled size
    is the whole payload, padding included (section 6.9)."""
    if not stream_id:
        raise H2ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
    if flags & FLAG_PADDED:
        return strip_padding(payload)
    return payload


def parse_headers(stream_id: int, flags: int, payload: bytes) -> tuple:
    """(header block fragment, stream dependency or -1) of a HEADERS frame.
    The priority fields are read only to detect a stream depending on
    itself (a stream error PROTOCOL_ERROR, section 5.3.1 of RFC 7540, kept
    by h2spec): priorities are otherwise ignored, as RFC 9113 allows."""
    if not stream_id:
        raise H2ConnectionError(PROTOCOL_ERROR, "HEADERS on stream 0")
    if flags & FLAG_PADDED:
        payload = strip_padding(payload)
    dep = -1
    if flags & FLAG_PRIORITY:
        if len(payload) < 5:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "HEADERS too short for its priority")
        dep = _U32.unpack_from(payload)[0] & 0x7FFFFFFF
        payload = payload[5:]
    return payload, dep


def parse_priority(stream_id: int, payload: bytes) -> int:
    """The stream dependency of a PRIORITY frame (section 6.3): stream 0 is a
    connection error; a length other than 5 a stream error FRAME_SIZE_ERROR;
    depending on itself a stream error PROTOCOL_ERROR."""
    if not stream_id:
        raise H2ConnectionError(PROTOCOL_ERROR, "PRIORITY on stream 0")
    if len(payload) != 5:
        raise H2StreamError(stream_id, FRAME_SIZE_ERROR, "PRIORITY length %d" % len(payload))
    dep = _U32.unpack_from(payload)[0] & 0x7FFFFFFF
    if dep == stream_id:
        raise H2StreamError(stream_id, PROTOCOL_ERROR, "stream depends on itself")
    return dep


def parse_rst_stream(stream_id: int, payload: bytes) -> int:
    """The error code of a RST_STREAM frame (section 6.4)."""
    if not stream_id:
        raise H2ConnectionError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
    if len(payload) != 4:
        raise H2ConnectionError(FRAME_SIZE_ERROR, "RST_STREAM length %d" % len(payload))
    return _U32.unpack_from(payload)[0]


def parse_settings(stream_id: int, flags: int, payload: bytes) -> list:
    """The (identifier, value) pairs of a SETTINGS frame in order (empty for
    an ACK), each known value range-checked (section 6.5.2): ENABLE_PUSH and
    ENABLE_CONNECT_PROTOCOL 0 or 1 (PROTOCOL_ERROR), INITIAL_WINDOW_SIZE at
    most 2**31-1 (FLOW_CONTROL_ERROR), MAX_FRAME_SIZE within
    [2**14, 2**24-1] (PROTOCOL_ERROR). Unknown identifiers are returned too
    (the connection ignores them)."""
    if stream_id:
        raise H2ConnectionError(PROTOCOL_ERROR, "SETTINGS on stream %d" % stream_id)
    n = len(payload)
    if flags & FLAG_ACK:
        if n:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
        return []
    if n % 6:
        raise H2ConnectionError(FRAME_SIZE_ERROR, "SETTINGS length %d not a multiple of 6" % n)
    out = list(_SETTING.iter_unpack(payload))
    for ident, value in out:
        if ident == SETTINGS_INITIAL_WINDOW_SIZE:
            if value > MAX_WINDOW:
                raise H2ConnectionError(FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE above 2^31-1")
        elif ident == SETTINGS_MAX_FRAME_SIZE:
            if not DEFAULT_MAX_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                raise H2ConnectionError(PROTOCOL_ERROR, "MAX_FRAME_SIZE %d out of range" % value)
        elif ident == SETTINGS_ENABLE_PUSH or ident == SETTINGS_ENABLE_CONNECT_PROTOCOL:
            if value > 1:
                raise H2ConnectionError(PROTOCOL_ERROR, "setting 0x%x must be 0 or 1" % ident)
    return out


def parse_push_promise(stream_id: int, flags: int, payload: bytes) -> tuple:
    """(promised stream id, header block fragment) of a PUSH_PROMISE frame
    (section 6.6). farm never enables push, so the connection refuses every
    PUSH_PROMISE; this is here for completeness and tests."""
    if not stream_id:
        raise H2ConnectionError(PROTOCOL_ERROR, "PUSH_PROMISE on stream 0")
    if flags & FLAG_PADDED:
        payload = strip_padding(payload)
    if len(payload) < 4:
        raise H2ConnectionError(FRAME_SIZE_ERROR, "PUSH_PROMISE too short")
    return _U32.unpack_from(payload)[0] & 0x7FFFFFFF, payload[4:]


def parse_ping(stream_id: int, payload: bytes) -> bytes:
    """The 8 opaque bytes of a PING frame (section 6.7). The stream id is
    checked first, then the length (the order h2spec expects)."""
    if stream_id:
        raise H2ConnectionError(PROTOCOL_ERROR, "PING on stream %d" % stream_id)
    if len(payload) != 8:
        raise H2ConnectionError(FRAME_SIZE_ERROR, "PING length %d" % len(payload))
    return payload


def parse_goaway(stream_id: int, payload: bytes) -> tuple:
    """(last stream id, error code, debug data) of a GOAWAY frame (6.8)."""
    if stream_id:
        raise H2ConnectionError(PROTOCOL_ERROR, "GOAWAY on stream %d" % stream_id)
    if len(payload) < 8:
        raise H2ConnectionError(FRAME_SIZE_ERROR, "GOAWAY length %d" % len(payload))
    last, code = _U32x2.unpack_from(payload)
    return last & 0x7FFFFFFF, code, payload[8:]


def parse_window_update(payload: bytes) -> int:
    """The window size increment of a WINDOW_UPDATE frame (section 6.9),
    possibly 0: whether 0 is a stream or a connection error depends on the
    stream id, which the connection decides."""
    if len(payload) != 4:
        raise H2ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE length %d" % len(payload))
    return _U32.unpack_from(payload)[0] & 0x7FFFFFFF


def parse_continuation(stream_id: int, payload: bytes) -> bytes:
    """The header block fragment of a CONTINUATION frame (section 6.10)."""
    if not stream_id:
        raise H2ConnectionError(PROTOCOL_ERROR, "CONTINUATION on stream 0")
    return payload


# --------------------------------------------------------------------------
# frames (sending)

def data_frame(stream_id: int, data: bytes, end_stream: bool = False) -> bytes:
    """One DATA frame (the caller keeps data within the peer's max frame
    size and the flow-control windows)."""
    n = len(data)
    return frame_header(n, DATA, FLAG_END_STREAM if end_stream else 0, stream_id) + data


def headers_frames(stream_id: int, block: bytes, end_stream: bool = False,
                   max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """A header block as one HEADERS frame, followed by CONTINUATION frames
    when it is larger than max_frame_size (section 4.3)."""
    flags = FLAG_END_STREAM if end_stream else 0
    n = len(block)
    if n <= max_frame_size:
        return frame_header(n, HEADERS, flags | FLAG_END_HEADERS,
                            stream_id) + block
    return _split_block(HEADERS, flags, stream_id, b"", block, max_frame_size)


def _split_block(ftype, flags, stream_id, prefix, block, max_frame_size):
    first = max_frame_size - len(prefix)
    out = [frame_header(max_frame_size, ftype, flags, stream_id), prefix, block[:first]]
    pos = first
    n = len(block)
    while pos < n:
        chunk = block[pos:pos + max_frame_size]
        pos += len(chunk)
        out.append(frame_header(len(chunk), CONTINUATION,
                                FLAG_END_HEADERS if pos >= n else 0, stream_id))
        out.append(chunk)
    return b"".join(out)


def continuation_frame(stream_id: int, fragment: bytes, end_headers: bool = True) -> bytes:
    """One CONTINUATION frame (tests build odd sequences with it)."""
    return frame_header(len(fragment), CONTINUATION,
                        FLAG_END_HEADERS if end_headers else 0, stream_id) + fragment


def priority_frame(stream_id: int, depends_on: int = 0, weight: int = 16,
                   exclusive: bool = False) -> bytes:
    """A PRIORITY frame (``weight`` 1-256 as in RFC 7540)."""
    return (frame_header(5, PRIORITY, 0, stream_id)
            + _PRIO.pack(depends_on | (0x80000000 if exclusive else 0), weight - 1))


def rst_stream_frame(stream_id: int, error_code: int) -> bytes:
    return frame_header(4, RST_STREAM, 0, stream_id) + _U32.pack(error_code)


def settings_frame(settings) -> bytes:
    """A SETTINGS frame with the (identifier, value) pairs of ``settings``
    (a list of pairs or a dict), in order."""
    if isinstance(settings, dict):
        settings = settings.items()
    payload = b"".join([_SETTING.pack(k, v) for k, v in settings])
    return frame_header(len(payload), SETTINGS, 0, 0) + payload


SETTINGS_ACK = frame_header(0, SETTINGS, FLAG_ACK, 0)


def push_promise_frames(stream_id: int, promised_id: int, block: bytes,
                        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """PUSH_PROMISE (+ CONTINUATION) frames; farm never pushes (tests only)."""
    prefix = _U32.pack(promised_id)
    if len(block) + 4 <= max_frame_size:
        return (frame_header(len(block) + 4, PUSH_PROMISE, FLAG_END_HEADERS, stream_id)
                + prefix + block)
    return _split_block(PUSH_PROMISE, 0, stream_id, prefix, block, max_frame_size)


def ping_frame(data: bytes, ack: bool = False) -> bytes:
    """A PING frame; data is exactly 8 bytes."""
    if len(data) != 8:
        raise ValueError("PING data must be 8 bytes")
    return frame_header(8, PING, FLAG_ACK if ack else 0, 0) + data


def goaway_frame(last_stream_id: int, error_code: int, debug: bytes = b"") -> bytes:
    return (frame_header(8 + len(debug), GOAWAY, 0, 0)
            + _U32x2.pack(last_stream_id, error_code) + debug)


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return frame_header(4, WINDOW_UPDATE, 0, stream_id) + _U32.pack(increment)
