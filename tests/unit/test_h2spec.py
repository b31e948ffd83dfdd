"""h2spec's server cases, ported to the sans-IO connection.

h2spec (github.com/summerwind/h2spec) is not packaged here; its cases are
replayed against workers/h2/conn.H2Connection in memory: the same frames
(built with hyperframe, header blocks with hpack), and the outcome h2spec
accepts (the GOAWAY or RST_STREAM error code, a PING answer, a response).
Where h2spec accepts "connection closed" we require the GOAWAY with the
code (we always send one), except for the invalid preface. Each case runs
twice: input fed whole and byte by byte. A test application answers
requests (200 with a 12-byte body, flow control respected), as h2spec
expects of the server it tests.

Coverage: 141 cases, all of the "generic" (44) and "http2" (97) groups:

generic
  1       Starting HTTP/2: client connection preface (1)
  2       Streams and Multiplexing: PRIORITY on idle; WINDOW_UPDATE, PRIORITY,
          RST_STREAM on half-closed (remote); PRIORITY on closed (5)
  3.1     DATA: one, multiple, padded (3)
  3.2     HEADERS: plain, padded, with priority (3)
  3.3     PRIORITY: weight 1, weight 256, dependency, exclusive, idle then
          lower stream (5)
  3.4     RST_STREAM (1)
  3.5     SETTINGS (1)
  3.7     PING (1)
  3.8     GOAWAY (1)
  3.9     WINDOW_UPDATE on stream 0 and on stream 1 (2)
  3.10    CONTINUATION: one, multiple (2)
  4       HTTP Message Exchanges: GET, HEAD, POST, POST with trailers (4)
  5       HPACK: indexed; incremental indexing, without indexing, never
          indexed, each with indexed and new names, raw and Huffman (12);
          one and multiple dynamic table size updates (2) (15)
http2
  3.5     preface: server SETTINGS first; invalid preface (2)
  4.1     unknown frame type; undefined flag; reserved bit (3)
  4.2     DATA of 2^14; DATA over SETTINGS_MAX_FRAME_SIZE; HEADERS over it (3)
  4.3     invalid block; PRIORITY inside a block; HEADERS of another stream
          inside a block (3)
  5.1     idle: DATA, RST_STREAM, WINDOW_UPDATE, CONTINUATION; half closed
          (remote): DATA, HEADERS, CONTINUATION; closed: DATA, HEADERS,
          CONTINUATION after RST_STREAM, and after END_STREAM (13)
  5.1.1   even stream id; smaller stream id; HEADERS on half-closed (3)
  5.1.2   over SETTINGS_MAX_CONCURRENT_STREAMS (1)
  5.3.1   HEADERS and PRIORITY depending on themselves (2)
  5.4.1   invalid PING closes; GOAWAY is sent (2)
  5.5     unknown extension frame; one inside a header block (2)
  6.1     DATA on stream 0; on half-closed; invalid pad length (3)
  6.2     PRIORITY inside a block; HEADERS of another stream inside a block;
          HEADERS on stream 0; invalid pad length (4)
  6.3     PRIORITY on stream 0; of 4 bytes; idle then lower stream (3)
  6.4     RST_STREAM on stream 0; on idle; of 3 bytes (3)
  6.5     SETTINGS ACK with payload; on stream 1; length not a multiple of 6 (3)
  6.5.2   ENABLE_PUSH 2; INITIAL_WINDOW_SIZE 2^31; MAX_FRAME_SIZE below and
          above its range; unknown identifier (5)
  6.5.3   values in order; ACK sent (2)
  6.7     PING answered; PING ACK not answered; PING on stream 1; PING of 6
          bytes (4)
  6.8     GOAWAY on stream 1 (1)
  6.9     WINDOW_UPDATE of 0 on the connection and on a stream; of 3 bytes (3)
  6.9.1   INITIAL_WINDOW_SIZE 1 respected; window over 2^31-1 on the
          connection and on a stream (3)
  6.9.2   INITIAL_WINDOW_SIZE changed after HEADERS; negative window;
          INITIAL_WINDOW_SIZE 2^31 (3)
  6.10    multiple CONTINUATION; followed by another frame; on stream 0;
          after END_HEADERS (HEADERS and CONTINUATION); after DATA (6)
  7       unknown error codes in GOAWAY and RST_STREAM (2)
  8.1     second HEADERS without END_STREAM (1)
  8.1.2   uppercase field name (1)
  8.1.2.1 unknown pseudo-header; response one in a request; one in
          trailers; one after a regular field (4)
  8.1.2.2 connection-specific field; te other than trailers (2)
  8.1.2.3 empty :path; missing :method, :scheme, :path; duplicate :method
          and :scheme (and the duplicate :method case h2spec lists twice) (7)
  8.1.2.6 content-length against one and several DATA frames (2)
  8.2     PUSH_PROMISE from a client (1)

The "hpack" group (the decoder alone) is covered by test_h2_hpack.py.
"""

import pytest
from hyperframe.frame import GoAwayFrame, PingFrame, SettingsFrame

from tests.unit.h2_helpers import Peer, common_headers
from workers.h2.errors import (
    COMPRESSION_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, PROTOCOL_ERROR, REFUSED_STREAM,
    STREAM_CLOSED,
)
from workers.h2.events import PingAckReceived, StreamReset

DUMMY = b"x" * 4000                     # h2spec's MaxHeaderLen default
HS = 4                                  # SETTINGS_INITIAL_WINDOW_SIZE
PING_DATA = b"h2spec\0\0"


@pytest.fixture(params=[False, True], ids=["whole", "bytewise"])
def split(request):
    return request.param


def peer(split, app=True, settings=None, **kw):
    p = Peer(split=split, app=app, **kw)
    p.handshake(settings)
    return p


def dummy(n=1):
    return [(b"x-dummy%d" % i, DUMMY) for i in range(n)]


def post():
    return common_headers(method=b"POST")


def answered_ping(p, data=b"\0" * 8):
    """The connection is alive: a PING gets its ACK (h2spec's
    VerifyPingFrameWithAck / VerifyEventType(PingFrame))."""
    p.ping(data)
    acks = [f for f in p.of_type(PingFrame) if "ACK" in f.flags]
    return bool(acks) and acks[-1].opaque_data == data and not p.conn.closed


def responded(p, sid=1):
    return bool(p.responses(sid)) and not p.conn.closed


# ------------------------------------------------------------------ generic

def test_generic_1_preface(split):
    p = peer(split)
    first = p.frames[0]
    assert isinstance(first, SettingsFrame) and "ACK" not in first.flags


def test_generic_2_1_priority_on_idle(split):
    p = peer(split)
    p.priority(1, weight=255)
    assert answered_ping(p)


def test_generic_2_2_window_update_half_closed(split):
    p = peer(split, settings={HS: 0})
    p.headers(1)
    assert not p.data_frames(1)             # window 0: the body waits
    p.window_update(1, 1)
    assert [len(f.data) for f in p.data_frames(1)] == [1]


def test_generic_2_3_priority_half_closed(split):
    p = peer(split, settings={HS: 0})
    p.headers(1)
    p.priority(1, weight=255)
    p.window_update(1, 1)
    assert [len(f.data) for f in p.data_frames(1)] == [1]


def test_generic_2_4_rst_stream_half_closed(split):
    p = peer(split, app=False)
    p.headers(1)
    p.rst(1)
    assert StreamReset(1, 8, True) in p.events
    assert answered_ping(p)


def test_generic_2_5_priority_on_closed(split):
    p = peer(split)
    p.headers(1)
    assert 1 not in p.conn.streams          # answered: closed
    p.priority(1, weight=255)
    assert answered_ping(p)


def test_generic_3_1_1_data(split):
    p = peer(split)
    p.headers(1, post(), end_stream=False)
    p.data(1, b"test")
    assert responded(p)


def test_generic_3_1_2_multiple_data(split):
    p = peer(split)
    p.headers(1, post(), end_stream=False)
    p.data(1, b"test", end_stream=False)
    p.data(1, b"test")
    assert responded(p)


def test_generic_3_1_3_data_padded(split):
    p = peer(split)
    p.headers(1, post(), end_stream=False)
    p.data(1, b"test", padded=6)
    assert responded(p)


def test_generic_3_2_1_headers(split):
    p = peer(split)
    p.headers(1)
    assert responded(p)


def test_generic_3_2_2_headers_padded(split):
    p = peer(split)
    p.headers(1, padded=8)
    assert responded(p)


def test_generic_3_2_3_headers_priority(split):
    p = peer(split)
    p.headers(1, priority=(0, 255, False))
    assert responded(p)


@pytest.mark.parametrize("sid,dep,weight,excl", [
    (1, 0, 0, False), (1, 0, 255, False), (3, 1, 0, False), (1, 0, 0, True), (3, 0, 255, False),
], ids=["weight-1", "weight-256", "dependency", "exclusive", "idle-then-lower"])
def test_generic_3_3_priority(split, sid, dep, weight, excl):
    p = peer(split)
    p.priority(sid, depends_on=dep, weight=weight, exclusive=excl)
    p.headers(1)
    assert responded(p)


def test_generic_3_4_rst_stream(split):
    p = peer(split)
    p.headers(1, end_stream=False)
    p.rst(1)
    assert answered_ping(p)


def test_generic_3_5_settings(split):
    p = peer(split)
    before = len(p.of_type(SettingsFrame))
    p.settings({1: 4096, 2: 1, 3: 100, 4: 65535, 5: 16384, 6: 100})
    acks = [f for f in p.of_type(SettingsFrame)[before:] if "ACK" in f.flags]
    assert acks and not p.conn.closed


def test_generic_3_7_ping(split):
    p = peer(split)
    assert answered_ping(p, PING_DATA)


def test_generic_3_8_goaway(split):
    p = peer(split)
    p.goaway(0, 0, b"h2spec")
    assert p.conn.done                  # the connection layer closes it


def test_generic_3_9_1_window_update_connection(split):
    p = peer(split)
    p.window_update(0, 1)
    assert answered_ping(p)


def test_generic_3_9_2_window_update_stream(split):
    p = peer(split)
    p.headers(1)
    p.window_update(1, 1)
    assert responded(p)


def test_generic_3_10_1_continuation(split):
    p = peer(split)
    block = p.block(common_headers())
    p.headers(1, raw_block=block[:5], end_headers=False)
    p.continuation(1, raw_block=block[5:])
    assert responded(p)


def test_generic_3_10_2_multiple_continuation(split):
    p = peer(split)
    block = p.block(common_headers())
    p.headers(1, raw_block=block[:5], end_headers=False)
    p.continuation(1, raw_block=block[5:10], end_headers=False)
    p.continuation(1, raw_block=block[10:])
    assert responded(p)


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_generic_4_1_2_get_head(split, method):
    p = peer(split)
    p.headers(1, common_headers(method=method))
    assert responded(p)


def test_generic_4_3_post(split):
    p = peer(split)
    p.headers(1, post(), end_stream=False)
    p.data(1, b"test")
    assert responded(p)


def test_generic_4_4_post_trailers(split):
    p = peer(split)
    p.headers(1, post() + [(b"trailer", b"x-test")], end_stream=False)
    p.data(1, b"test", end_stream=False)
    p.headers(1, [(b"x-test", b"ok")])
    assert responded(p)


@pytest.mark.parametrize("rep", [
    b"\xba",
    b"\x40\x87\xb5\x05\xb1\x61\xcc\x5a\x93\x84\x9c\x48\xac\xa4",
    b"\x40\x0a\x75\x73\x65\x72\x2d\x61\x67\x65\x6e\x74\x06\x68\x32\x73\x70\x65\x63",
    b"\x40\x06\x78\x2d\x74\x65\x73\x74\x06\x68\x32\x73\x70\x65\x63",
    b"\x40\x85\xf2\xb2\x4a\x84\xff\x84\x9c\x48\xac\xa4",
    b"\x00\x0a\x75\x73\x65\x72\x2d\x61\x67\x65\x6e\x74\x06\x68\x32\x73\x70\x65\x63",
    b"\x00\x87\xb5\x05\xb1\x61\xcc\x5a\x93\x84\x9c\x48\xac\xa4",
    b"\x00\x06\x78\x2d\x74\x65\x73\x74\x06\x68\x32\x73\x70\x65\x63",
    b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x9c\x48\xac\xa4",
    b"\x10\x0a\x75\x73\x65\x72\x2d\x61\x67\x65\x6e\x74\x06\x68\x32\x73\x70\x65\x63",
    b"\x10\x87\xb5\x05\xb1\x61\xcc\x5a\x93\x84\x9c\x48\xac\xa4",
    b"\x10\x85\xf2\xb2\x4a\x84\xff\x84\x9c\x48\xac\xa4",
    b"\x10\x85\xf2\xb2\x4a\x84\xff\x84\x9c\x48\xac\xa4",
], ids=["indexed", "incremental-indexed-name", "incremental-indexed-name-huffman",
        "incremental-new-name", "incremental-new-name-huffman", "without-indexed-name",
        "without-indexed-name-huffman", "without-new-name", "without-new-name-huffman",
        "never-indexed-name", "never-indexed-name-huffman", "never-new-name",
        "never-new-name-huffman"])
def test_generic_5_hpack_representations(split, rep):
    p = peer(split)
    p.headers(1, raw_block=p.block(common_headers()) + rep)
    assert responded(p)
    value = p.requests[1].headers[-1]
    assert value in ((b"user-agent", b""), (b"user-agent", b"h2spec"), (b"x-test", b"h2spec"))


@pytest.mark.parametrize("update", [b"\x20", b"\x20\x3f\xe1\x1f"], ids=["one", "multiple"])
def test_generic_5_hpack_table_size_update(split, update):
    p = peer(split)
    p.headers(1, raw_block=update + p.block(common_headers()))
    assert responded(p)


# -------------------------------------------------------------------- http2

def test_http2_3_5_1_preface(split):
    p = peer(split)
    assert isinstance(p.frames[0], SettingsFrame) and "ACK" not in p.frames[0].flags


def test_http2_3_5_2_invalid_preface(split):
    p = Peer(split=split)
    sent = len(p.frames)
    p.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
    assert p.conn.closed and p.terminated()[0].error_code == PROTOCOL_ERROR
    assert len(p.frames) == sent            # closed without a word


@pytest.mark.parametrize("frame", [
    b"\x00\x00\x08\x16\x00\x00\x00\x00\x00" + b"\0" * 8,     # unknown type 0x16
    b"\x00\x00\x08\x06\x16\x00\x00\x00\x00" + b"\0" * 8,     # PING with undefined flags
    b"\x00\x00\x08\x06\x16\x80\x00\x00\x00" + b"\0" * 8,     # ... and the reserved bit
], ids=["unknown-type", "undefined-flag", "reserved-bit"])
def test_http2_4_1_frame_format(split, frame):
    p = peer(split)
    p.send(frame)
    assert answered_ping(p)


def test_http2_4_2_1_data_max_frame_size(split):
    p = peer(split)
    p.headers(1, post(), end_stream=False)
    p.data(1, b"x" * 16384)
    assert responded(p)


def test_http2_4_2_2_data_over_max_frame_size(split):
    p = peer(split)
    p.headers(1, post(), end_stream=False)
    p.data(1, b"x" * 16385)
    assert p.stream_error(1, FRAME_SIZE_ERROR)


def test_http2_4_2_3_headers_over_max_frame_size(split):
    p = peer(split)
    p.headers(1, common_headers() + dummy(5))
    assert p.connection_error(FRAME_SIZE_ERROR)


def test_http2_4_3_1_invalid_block(split):
    p = peer(split)
    p.send(b"\x00\x00\x01\x01\x05\x00\x00\x00\x01\x40")
    assert p.connection_error(COMPRESSION_ERROR)


def test_http2_4_3_2_priority_inside_block(split):
    p = peer(split)
    p.headers(1, end_stream=False, end_headers=False)
    p.priority(1, weight=255)
    p.continuation(1, dummy())
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_4_3_3_headers_inside_block(split):
    p = peer(split)
    p.headers(1, end_stream=False, end_headers=False)
    p.headers(3)
    p.continuation(1, dummy())
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_5_1_idle_data(split):
    p = peer(split)
    p.data(1, b"test")
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_5_1_idle_rst_stream(split):
    p = peer(split)
    p.rst(1)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_5_1_idle_window_update(split):
    p = peer(split)
    p.window_update(1, 100)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_5_1_idle_continuation(split):
    p = peer(split)
    p.continuation(1, common_headers())
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_5_1_half_closed_data(split):
    p = peer(split, app=False)
    p.headers(1)
    p.data(1, b"test")
    assert p.stream_error(1, STREAM_CLOSED)


def test_http2_5_1_half_closed_headers(split):
    p = peer(split, app=False)
    p.headers(1)
    p.headers(1)
    assert p.stream_error(1, STREAM_CLOSED)


def test_http2_5_1_half_closed_continuation(split):
    p = peer(split, app=False)
    block = p.block(common_headers())
    p.headers(1, raw_block=block)
    p.continuation(1, raw_block=block)
    assert p.stream_error(1, STREAM_CLOSED, PROTOCOL_ERROR)


def test_http2_5_1_closed_data_after_rst(split):
    p = peer(split)
    p.headers(1, end_stream=False)
    p.rst(1)
    p.data(1, b"test")
    assert p.stream_error(1, STREAM_CLOSED)


def test_http2_5_1_closed_headers_after_rst(split):
    p = peer(split)
    p.headers(1, end_stream=False)
    p.rst(1)
    p.headers(1)
    assert p.stream_error(1, STREAM_CLOSED)


def test_http2_5_1_closed_continuation_after_rst(split):
    p = peer(split)
    p.headers(1, end_stream=False)
    p.rst(1)
    p.continuation(1, dummy())
    assert p.stream_error(1, STREAM_CLOSED, PROTOCOL_ERROR)


def test_http2_5_1_closed_data(split):
    p = peer(split)
    p.headers(1)
    assert responded(p) and 1 not in p.conn.streams
    p.data(1, b"test")
    assert p.connection_error(STREAM_CLOSED)


def test_http2_5_1_closed_headers(split):
    p = peer(split)
    p.headers(1)
    assert responded(p)
    p.headers(1)
    assert p.connection_error(STREAM_CLOSED)


def test_http2_5_1_closed_continuation(split):
    p = peer(split)
    p.headers(1)
    assert responded(p)
    p.continuation(1, dummy())
    assert p.connection_error(STREAM_CLOSED, PROTOCOL_ERROR)


def test_http2_5_1_1_even_stream_id(split):
    p = peer(split)
    p.headers(2)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_5_1_1_smaller_stream_id(split):
    p = peer(split)
    p.headers(5)
    p.headers(3)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_5_1_1_headers_half_closed(split):
    p = peer(split)
    p.headers(5)
    p.headers(5)
    assert p.stream_error(5, STREAM_CLOSED)


def test_http2_5_1_2_concurrent_streams(split):
    p = peer(split, settings={HS: 0})
    block = p.block(common_headers())
    limit = p.conn.config.max_concurrent_streams
    for i in range(limit + 1):
        p.headers(1 + 2 * i, raw_block=block)
    assert p.stream_error(1 + 2 * limit, PROTOCOL_ERROR, REFUSED_STREAM)
    assert not p.conn.closed and p.conn.open_streams == limit


def test_http2_5_3_1_headers_depends_on_itself(split):
    p = peer(split)
    p.headers(1, priority=(1, 255, False))
    assert p.stream_error(1, PROTOCOL_ERROR)


def test_http2_5_3_1_priority_depends_on_itself(split):
    p = peer(split)
    p.priority(1, depends_on=1, weight=255)
    assert p.stream_error(1, PROTOCOL_ERROR)


def test_http2_5_4_1_invalid_ping_closes(split):
    p = peer(split)
    p.send(b"\x00\x00\x08\x06\x00\x00\x00\x00\x03" + b"\0" * 8)
    assert p.conn.closed and p.conn.done


def test_http2_5_4_1_invalid_ping_goaway(split):
    p = peer(split)
    p.send(b"\x00\x00\x08\x06\x00\x00\x00\x00\x03" + b"\0" * 8)
    assert p.of_type(GoAwayFrame)


def test_http2_5_5_unknown_extension_frame(split):
    p = peer(split)
    p.send(b"\x00\x00\x08\x16\x00\x00\x00\x00\x00" + b"\0" * 8)
    assert answered_ping(p)


def test_http2_5_5_extension_frame_inside_block(split):
    p = peer(split)
    p.headers(1, end_headers=False)
    p.send(b"\x00\x00\x08\x16\x00\x00\x00\x00\x00" + b"\0" * 8)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_1_1_data_stream_0(split):
    p = peer(split)
    p.data(0, b"test")
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_1_2_data_half_closed(split):
    p = peer(split)
    p.headers(1, post())
    p.data(1, b"test")
    assert p.stream_error(1, STREAM_CLOSED)


def test_http2_6_1_3_data_invalid_pad_length(split):
    p = peer(split)
    p.headers(1, post() + [(b"content-length", b"4")], end_stream=False)
    p.send(b"\x00\x00\x05\x00\x09\x00\x00\x00\x01" + b"\x06Test")
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_2_1_priority_inside_block(split):
    p = peer(split)
    p.headers(1, end_stream=False, end_headers=False)
    p.priority(1, weight=255)
    p.continuation(1, dummy())
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_2_2_headers_inside_block(split):
    p = peer(split)
    p.headers(1, end_stream=False, end_headers=False)
    p.headers(3)
    p.continuation(1, dummy())
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_2_3_headers_stream_0(split):
    p = peer(split)
    p.headers(0)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_2_4_headers_invalid_pad_length(split):
    p = peer(split)
    block = p.block(common_headers())
    n = len(block) + 1
    p.send(bytes((0, 0, n, 1, 0x0D, 0, 0, 0, 1, n + 1)) + block)
    assert p.stream_error(1, PROTOCOL_ERROR)


def test_http2_6_3_1_priority_stream_0(split):
    p = peer(split)
    p.priority(0, weight=255)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_3_2_priority_length(split):
    p = peer(split)
    p.headers(1)
    p.send(b"\x00\x00\x04\x02\x00\x00\x00\x00\x01" + b"\x80\x00\x00\x01")
    assert p.stream_error(1, FRAME_SIZE_ERROR)


def test_http2_6_3_3_priority_idle_then_lower(split):
    p = peer(split)
    p.priority(3, weight=255)
    p.headers(1)
    assert responded(p)


def test_http2_6_4_1_rst_stream_0(split):
    p = peer(split)
    p.rst(0)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_4_2_rst_idle(split):
    p = peer(split)
    p.rst(1)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_4_3_rst_length(split):
    p = peer(split)
    p.headers(1)
    p.send(b"\x00\x00\x03\x03\x00\x00\x00\x00\x01" + b"\0\0\0")
    assert p.stream_error(1, FRAME_SIZE_ERROR)


def test_http2_6_5_1_settings_ack_payload(split):
    p = peer(split)
    p.send(b"\x00\x00\x01\x04\x01\x00\x00\x00\x00" + b"\0")
    assert p.connection_error(FRAME_SIZE_ERROR)


def test_http2_6_5_2_settings_stream_1(split):
    p = peer(split)
    p.send(b"\x00\x00\x06\x04\x00\x00\x00\x00\x01" + b"\x00\x03\x00\x00\x00\x64")
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_5_3_settings_length(split):
    p = peer(split)
    p.send(b"\x00\x00\x09\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x64\x00\x02\x00")
    assert p.connection_error(PROTOCOL_ERROR, FRAME_SIZE_ERROR)


@pytest.mark.parametrize("setting,code", [
    ((2, 2), PROTOCOL_ERROR), ((4, 2 ** 31), FLOW_CONTROL_ERROR), ((5, 16383), PROTOCOL_ERROR),
    ((5, 2 ** 24), PROTOCOL_ERROR),
], ids=["enable-push-2", "initial-window-2^31", "max-frame-size-low", "max-frame-size-high"])
def test_http2_6_5_2_defined_settings(split, setting, code):
    p = peer(split)
    p.settings(dict([setting]))
    assert p.connection_error(code)


def test_http2_6_5_2_unknown_setting(split):
    p = peer(split)
    p.settings({0xFF: 1})
    assert answered_ping(p)


def test_http2_6_5_3_1_values_in_order(split):
    p = peer(split)
    p.send(b"\x00\x00\x0c\x04\x00\x00\x00\x00\x00"
           + b"\x00\x04\x00\x00\x00\x64" + b"\x00\x04\x00\x00\x00\x01")
    p.headers(1)
    assert [len(f.data) for f in p.data_frames(1)] == [1]


def test_http2_6_5_3_2_settings_ack(split):
    p = peer(split)
    n = len(p.of_type(SettingsFrame))
    p.settings({2: 0})
    assert any("ACK" in f.flags for f in p.of_type(SettingsFrame)[n:])


def test_http2_6_7_1_ping(split):
    p = peer(split)
    assert answered_ping(p, PING_DATA)


def test_http2_6_7_2_ping_ack_not_answered(split):
    p = peer(split)
    p.ping(b"invalid\0", ack=True)
    assert PingAckReceived(b"invalid\0") in p.events
    assert answered_ping(p, PING_DATA)
    assert all(f.opaque_data != b"invalid\0" for f in p.of_type(PingFrame))


def test_http2_6_7_3_ping_stream_1(split):
    p = peer(split)
    p.send(b"\x00\x00\x08\x06\x00\x00\x00\x00\x01" + b"\0" * 8)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_7_4_ping_length(split):
    # h2spec sends it on stream 1 and expects PROTOCOL_ERROR (the stream id
    # is checked first); on stream 0 it is a FRAME_SIZE_ERROR (test_h2_frames)
    p = peer(split)
    p.send(b"\x00\x00\x06\x06\x00\x00\x00\x00\x01" + b"\0" * 6)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_8_goaway_stream_1(split):
    p = peer(split)
    p.send(b"\x00\x00\x08\x07\x00\x00\x00\x00\x01" + b"\0" * 8)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_9_1_window_update_0_connection(split):
    p = peer(split)
    p.window_update(0, 0)
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_9_2_window_update_0_stream(split):
    p = peer(split)
    p.headers(1, end_stream=False)
    p.window_update(1, 0)
    assert p.stream_error(1, PROTOCOL_ERROR)
    assert not p.conn.closed


def test_http2_6_9_3_window_update_length(split):
    p = peer(split)
    p.send(b"\x00\x00\x03\x08\x00\x00\x00\x00\x00" + b"\x00\x00\x01")
    assert p.connection_error(FRAME_SIZE_ERROR)


def test_http2_6_9_1_1_initial_window_1(split):
    p = peer(split, settings={HS: 1})
    p.headers(1)
    assert [len(f.data) for f in p.data_frames(1)] == [1]


def test_http2_6_9_1_2_connection_window_overflow(split):
    p = peer(split)
    p.window_update(0, 2 ** 31 - 1)
    p.window_update(0, 2 ** 31 - 1)
    assert p.goaway_code() == FLOW_CONTROL_ERROR


def test_http2_6_9_1_3_stream_window_overflow(split):
    p = peer(split)
    p.headers(1, end_stream=False)
    p.window_update(1, 2 ** 31 - 1)
    p.window_update(1, 2 ** 31 - 1)
    assert p.rst_codes(1) == [FLOW_CONTROL_ERROR]
    assert not p.conn.closed


def test_http2_6_9_2_1_initial_window_changed(split):
    p = peer(split, settings={HS: 0})
    p.headers(1)
    assert not p.data_frames(1)
    p.settings({HS: 1})
    assert [len(f.data) for f in p.data_frames(1)] == [1]


def test_http2_6_9_2_2_negative_window(split):
    p = peer(split, settings={HS: 3})
    p.headers(1)
    assert [len(f.data) for f in p.data_frames(1)] == [3]
    p.settings({HS: 2})                     # window 3 - 3 - 1 = -1
    assert p.conn.max_send(1) == 0
    p.window_update(1, 2)
    assert [len(f.data) for f in p.data_frames(1)] == [3, 1]


def test_http2_6_9_2_3_initial_window_too_large(split):
    p = peer(split)
    p.send(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x04\x80\x00\x00\x00")
    assert p.connection_error(FLOW_CONTROL_ERROR)


def test_http2_6_10_1_multiple_continuation(split):
    p = peer(split)
    p.headers(1, end_headers=False)
    p.continuation(1, dummy(), end_headers=False)
    p.continuation(1, dummy())
    assert responded(p)


def test_http2_6_10_2_continuation_then_other(split):
    p = peer(split)
    p.headers(1, post(), end_stream=False, end_headers=False)
    p.continuation(1, dummy(), end_headers=False)
    p.data(1, b"test")
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_10_3_continuation_stream_0(split):
    p = peer(split)
    p.headers(1, end_headers=False)
    p.continuation(0, dummy())
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_10_4_continuation_after_end_headers(split):
    p = peer(split)
    p.headers(1)
    p.continuation(1, dummy())
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_10_5_continuation_after_continuation_end_headers(split):
    p = peer(split)
    p.headers(1, end_headers=False)
    p.continuation(1, dummy())
    p.continuation(1, dummy())
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_6_10_6_continuation_after_data(split):
    p = peer(split)
    p.headers(1, post(), end_stream=False, end_headers=False)
    p.data(1, b"test")
    p.continuation(1, dummy(), end_headers=False)
    p.continuation(0, dummy())
    assert p.connection_error(PROTOCOL_ERROR)


def test_http2_7_1_goaway_unknown_code(split):
    p = peer(split)
    p.goaway(0, 0xFF)
    assert p.conn.done and not p.conn.closed


def test_http2_7_2_rst_unknown_code(split):
    p = peer(split)
    p.headers(1, post(), end_stream=False)
    p.rst(1, 0xFF)
    assert answered_ping(p)


def test_http2_8_1_second_headers_without_end_stream(split):
    p = peer(split)
    p.headers(1, post(), end_stream=False)
    p.data(1, b"test", end_stream=False)
    p.headers(1, [(b"x-test", b"ok")], end_stream=False)
    assert p.stream_error(1, PROTOCOL_ERROR)


def test_http2_8_1_2_uppercase(split):
    p = peer(split)
    p.headers(1, common_headers() + [(b"X-TEST", b"ok")])
    assert p.stream_error(1, PROTOCOL_ERROR)


@pytest.mark.parametrize("fields", [
    common_headers() + [(b":test", b"ok")],
    common_headers() + [(b":status", b"200")],
    [(b"x-test", b"ok")] + common_headers(),
], ids=["unknown", "response-pseudo", "after-regular"])
def test_http2_8_1_2_1_pseudo_headers(split, fields):
    p = peer(split)
    p.headers(1, fields)
    assert p.stream_error(1, PROTOCOL_ERROR)


def test_http2_8_1_2_1_pseudo_in_trailers(split):
    p = peer(split)
    p.headers(1, post(), end_stream=False)
    p.data(1, b"test", end_stream=False)
    p.headers(1, [(b":method", b"POST")], end_stream=False)
    assert p.stream_error(1, PROTOCOL_ERROR)


@pytest.mark.parametrize("extra", [
    [(b"connection", b"keep-alive")],
    [(b"trailers", b"test"), (b"te", b"trailers, deflate")],
], ids=["connection", "te"])
def test_http2_8_1_2_2_connection_specific(split, extra):
    p = peer(split)
    p.headers(1, common_headers() + extra)
    assert p.stream_error(1, PROTOCOL_ERROR)


def _without(i):
    h = common_headers()
    del h[i]
    return h


@pytest.mark.parametrize("fields", [
    [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b""),
     (b":authority", b"example.com")],
    _without(0), _without(1), _without(2),
    common_headers() + [(b":method", b"GET")],
    common_headers() + [(b":scheme", b"https")],
    common_headers() + [(b":method", b"/")],
], ids=["empty-path", "no-method", "no-scheme", "no-path", "dup-method", "dup-scheme",
        "dup-method-2"])
def test_http2_8_1_2_3_request_pseudo_headers(split, fields):
    p = peer(split)
    p.headers(1, fields)
    assert p.stream_error(1, PROTOCOL_ERROR)


def test_http2_8_1_2_6_content_length_one_data(split):
    p = peer(split)
    p.headers(1, post() + [(b"content-length", b"1")], end_stream=False)
    p.data(1, b"test")
    assert p.stream_error(1, PROTOCOL_ERROR)


def test_http2_8_1_2_6_content_length_several_data(split):
    p = peer(split)
    p.headers(1, post() + [(b"content-length", b"1")], end_stream=False)
    p.data(1, b"test", end_stream=False)
    p.data(1, b"test")
    assert p.stream_error(1, PROTOCOL_ERROR)


def test_http2_8_2_push_promise(split):
    p = peer(split)
    p.push_promise(1, 3)
    assert p.connection_error(PROTOCOL_ERROR)


def test_case_count():
    """The docstring's count is the number of cases above (parametrized
    cases counted one by one; the fixtures' two feeds are not cases)."""
    import inspect
    import sys
    mod = sys.modules[__name__]
    n = 0
    for name, fn in inspect.getmembers(mod, inspect.isfunction):
        if not name.startswith(("test_generic", "test_http2")):
            continue
        marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        k = 1
        for m in marks:
            k *= len(m.args[1])
        n += k
    assert n == 141
