"""workers/h2/frames.py: every frame type both ways against hyperframe (the
oracle), and each payload check with the error (connection or stream, and
its RFC 9113 code)."""

import pytest
from hyperframe.frame import (
    ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame, PingFrame, PriorityFrame,
    PushPromiseFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.h2_helpers import parse_frames
from workers.h2 import frames as F
from workers.h2.errors import (
    FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, PROTOCOL_ERROR, H2ConnectionError, H2StreamError,
)

SIDS = st.integers(min_value=1, max_value=2 ** 31 - 1)
PAYLOAD = st.binary(max_size=300)


def conn_error(code, fn, *args):
    with pytest.raises(H2ConnectionError) as e:
        fn(*args)
    assert type(e.value) is H2ConnectionError and e.value.code == code, e.value


def stream_error(code, fn, *args):
    with pytest.raises(H2StreamError) as e:
        fn(*args)
    assert e.value.code == code, e.value
    return e.value


def payload_of(frame_bytes):
    return frame_bytes[9:]


# --------------------------------------------------------------------------
# header

@settings(max_examples=200, database=None)
@given(st.integers(0, 2 ** 24 - 1), st.integers(0, 255), st.integers(0, 255),
       st.integers(0, 2 ** 31 - 1), st.booleans())
def test_header_round_trip(length, ftype, flags, sid, reserved):
    raw = F.frame_header(length, ftype, flags, sid)
    assert len(raw) == 9
    if reserved:
        raw = raw[:5] + bytes((raw[5] | 0x80,)) + raw[6:]
    assert F.parse_header(raw) == (length, ftype, flags, sid)
    assert F.parse_header(b"xx" + raw, 2) == (length, ftype, flags, sid)


# --------------------------------------------------------------------------
# our frames, parsed by hyperframe

@settings(max_examples=100, database=None)
@given(SIDS, PAYLOAD, st.booleans())
def test_data_frame(sid, data, end):
    (f,) = parse_frames(F.data_frame(sid, data, end))
    assert isinstance(f, DataFrame) and f.stream_id == sid and f.data == data
    assert ("END_STREAM" in f.flags) == end


@settings(max_examples=100, database=None)
@given(SIDS, st.binary(max_size=40000), st.booleans(), st.sampled_from([16384, 20000, 100000]))
def test_headers_frames_split(sid, block, end, max_size):
    frames = parse_frames(F.headers_frames(sid, block, end, max_size))
    assert isinstance(frames[0], HeadersFrame)
    assert all(isinstance(f, ContinuationFrame) for f in frames[1:])
    assert all(f.stream_id == sid and f.body_len <= max_size for f in frames)
    assert b"".join(f.data for f in frames) == block
    assert ["END_HEADERS" in f.flags for f in frames] == [False] * (len(frames) - 1) + [True]
    assert ("END_STREAM" in frames[0].flags) == end


@settings(max_examples=50, database=None)
@given(SIDS, st.integers(1, 2 ** 30 - 1).map(lambda i: 2 * i), st.binary(max_size=40000))
def test_push_promise_frames(sid, promised, block):
    frames = parse_frames(F.push_promise_frames(sid, promised, block))
    assert isinstance(frames[0], PushPromiseFrame) and frames[0].promised_stream_id == promised
    assert b"".join(f.data for f in frames) == block
    assert "END_HEADERS" in frames[-1].flags
    assert F.parse_push_promise(sid, 0x4, payload_of(F.push_promise_frames(sid, promised, b"ab"))
                                ) == (promised, b"ab")


def test_control_frames():
    (f,) = parse_frames(F.priority_frame(3, 1, 256, True))
    assert isinstance(f, PriorityFrame) and (f.depends_on, f.stream_weight, f.exclusive) == (
        1, 255, True)
    (f,) = parse_frames(F.rst_stream_frame(5, 8))
    assert isinstance(f, RstStreamFrame) and f.error_code == 8
    (f,) = parse_frames(F.settings_frame({1: 4096, 3: 100, 0xFF: 7}))
    assert isinstance(f, SettingsFrame) and f.settings == {1: 4096, 3: 100, 0xFF: 7}
    (f,) = parse_frames(F.SETTINGS_ACK)
    assert isinstance(f, SettingsFrame) and "ACK" in f.flags and not f.settings
    (f,) = parse_frames(F.ping_frame(b"12345678", ack=True))
    assert isinstance(f, PingFrame) and f.opaque_data == b"12345678" and "ACK" in f.flags
    (f,) = parse_frames(F.goaway_frame(7, 11, b"calm"))
    assert isinstance(f, GoAwayFrame) and (f.last_stream_id, f.error_code,
                                           f.additional_data) == (7, 11, b"calm")
    (f,) = parse_frames(F.window_update_frame(0, 2 ** 31 - 1))
    assert isinstance(f, WindowUpdateFrame) and f.window_increment == 2 ** 31 - 1
    (f,) = parse_frames(F.continuation_frame(1, b"abc", end_headers=False))
    assert isinstance(f, ContinuationFrame) and "END_HEADERS" not in f.flags
    with pytest.raises(ValueError):
        F.ping_frame(b"short")


# --------------------------------------------------------------------------
# hyperframe's frames, parsed by us

@settings(max_examples=150, database=None)
@given(SIDS, PAYLOAD, st.one_of(st.none(), st.integers(0, 255)))
def test_parse_data(sid, data, pad):
    f = DataFrame(sid, data=data)
    if pad is not None:
        f.flags.add("PADDED")
        f.pad_length = pad
    raw = f.serialize()
    length, ftype, flags, got = F.parse_header(raw)
    assert (ftype, got, length) == (F.DATA, sid, len(raw) - 9)
    assert F.parse_data(sid, flags, raw[9:]) == data


@settings(max_examples=150, database=None)
@given(SIDS, PAYLOAD, st.one_of(st.none(), st.integers(0, 255)),
       st.one_of(st.none(), st.tuples(st.integers(0, 2 ** 31 - 1), st.integers(0, 255),
                                      st.booleans())))
def test_parse_headers(sid, block, pad, prio):
    f = HeadersFrame(sid, data=block)
    if pad is not None:
        f.flags.add("PADDED")
        f.pad_length = pad
    if prio is not None:
        f.flags.add("PRIORITY")
        f.depends_on, f.stream_weight, f.exclusive = prio
    raw = f.serialize()
    _, ftype, flags, _ = F.parse_header(raw)
    got_block, dep = F.parse_headers(sid, flags, raw[9:])
    assert got_block == block
    assert dep == (prio[0] if prio else -1)


@settings(max_examples=100, database=None)
@given(st.dictionaries(st.integers(0, 0xFF), st.integers(0, 2 ** 32 - 1), max_size=8))
def test_parse_settings(values):
    # (identifiers below 256: hyperframe keeps only their low byte)
    values = {k: v for k, v in values.items() if k not in (2, 4, 5, 8)}
    raw = SettingsFrame(0, settings=values).serialize()
    assert dict(F.parse_settings(0, 0, raw[9:])) == values


def test_parse_others_from_hyperframe():
    raw = GoAwayFrame(0, last_stream_id=9, error_code=0xFF, additional_data=b"x").serialize()
    assert F.parse_goaway(0, raw[9:]) == (9, 0xFF, b"x")
    raw = WindowUpdateFrame(3, window_increment=1000).serialize()
    assert F.parse_window_update(raw[9:]) == 1000
    raw = RstStreamFrame(3, error_code=0xABCD).serialize()
    assert F.parse_rst_stream(3, raw[9:]) == 0xABCD
    raw = PriorityFrame(3, depends_on=1, stream_weight=9).serialize()
    assert F.parse_priority(3, raw[9:]) == 1
    raw = PingFrame(0, opaque_data=b"abcdefgh").serialize()
    assert F.parse_ping(0, raw[9:]) == b"abcdefgh"


# --------------------------------------------------------------------------
# checks

def test_stream_zero_rules():
    conn_error(PROTOCOL_ERROR, F.parse_data, 0, 0, b"x")
    conn_error(PROTOCOL_ERROR, F.parse_headers, 0, 0, b"x")
    conn_error(PROTOCOL_ERROR, F.parse_priority, 0, b"\0" * 5)
    conn_error(PROTOCOL_ERROR, F.parse_rst_stream, 0, b"\0" * 4)
    conn_error(PROTOCOL_ERROR, F.parse_push_promise, 0, 0, b"\0" * 4)
    conn_error(PROTOCOL_ERROR, F.parse_continuation, 0, b"")
    conn_error(PROTOCOL_ERROR, F.parse_settings, 1, 0, b"")
    conn_error(PROTOCOL_ERROR, F.parse_ping, 1, b"\0" * 8)
    conn_error(PROTOCOL_ERROR, F.parse_goaway, 1, b"\0" * 8)


def test_sizes():
    e = stream_error(FRAME_SIZE_ERROR, F.parse_priority, 3, b"\0" * 4)
    assert e.stream_id == 3
    conn_error(FRAME_SIZE_ERROR, F.parse_rst_stream, 1, b"\0" * 3)
    conn_error(FRAME_SIZE_ERROR, F.parse_settings, 0, F.FLAG_ACK, b"\0" * 6)
    conn_error(FRAME_SIZE_ERROR, F.parse_settings, 0, 0, b"\0" * 7)
    conn_error(FRAME_SIZE_ERROR, F.parse_ping, 0, b"\0" * 6)
    conn_error(FRAME_SIZE_ERROR, F.parse_goaway, 0, b"\0" * 7)
    conn_error(FRAME_SIZE_ERROR, F.parse_window_update, b"\0" * 5)
    conn_error(FRAME_SIZE_ERROR, F.parse_headers, 1, F.FLAG_PRIORITY, b"\0" * 4)
    conn_error(FRAME_SIZE_ERROR, F.parse_push_promise, 1, 0, b"\0" * 3)
    conn_error(FRAME_SIZE_ERROR, F.parse_data, 1, F.FLAG_PADDED, b"")


def test_padding():
    assert F.parse_data(1, F.FLAG_PADDED, b"\x02ab\0\0") == b"ab"
    assert F.parse_data(1, F.FLAG_PADDED, b"\x00") == b""
    assert F.parse_data(1, F.FLAG_PADDED, b"\x02a\0") == b""          # pad = length - 1
    conn_error(PROTOCOL_ERROR, F.parse_data, 1, F.FLAG_PADDED, b"\x02a")   # pad = length
    conn_error(PROTOCOL_ERROR, F.parse_data, 1, F.FLAG_PADDED, b"\x03ab")
    conn_error(PROTOCOL_ERROR, F.parse_headers, 1, F.FLAG_PADDED, b"\x05abc")
    # padding then priority: the priority must fit in what remains
    conn_error(FRAME_SIZE_ERROR, F.parse_headers, 1, F.FLAG_PADDED | F.FLAG_PRIORITY,
               b"\x01abc\0")


def test_self_dependency():
    stream_error(PROTOCOL_ERROR, F.parse_priority, 5, b"\x00\x00\x00\x05\x10")
    stream_error(PROTOCOL_ERROR, F.parse_priority, 5, b"\x80\x00\x00\x05\x10")


@pytest.mark.parametrize("ident,value,code", [
    (F.SETTINGS_ENABLE_PUSH, 2, PROTOCOL_ERROR),
    (F.SETTINGS_ENABLE_CONNECT_PROTOCOL, 2, PROTOCOL_ERROR),
    (F.SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31, FLOW_CONTROL_ERROR),
    (F.SETTINGS_MAX_FRAME_SIZE, 16383, PROTOCOL_ERROR),
    (F.SETTINGS_MAX_FRAME_SIZE, 2 ** 24, PROTOCOL_ERROR),
])
def test_settings_values(ident, value, code):
    conn_error(code, F.parse_settings, 0, 0, F.settings_frame({ident: value})[9:])


def test_settings_in_order_and_bounds_accepted():
    pairs = [(4, 100), (4, 1), (5, 16384), (5, 2 ** 24 - 1), (4, 2 ** 31 - 1), (2, 0), (2, 1)]
    assert F.parse_settings(0, 0, F.settings_frame(pairs)[9:]) == pairs


def test_window_update_reserved_bit_ignored():
    assert F.parse_window_update(b"\x80\x00\x00\x01") == 1
    assert F.parse_window_update(b"\x00\x00\x00\x00") == 0      # the connection decides
