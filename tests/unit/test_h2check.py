"""farm/h2check.py: the HTTP/2 health check exchange, sans-IO.

The server side is python-hyper's h2 (an independent implementation, the
oracle), or frames crafted with hyperframe and hpack for what h2 would
never send. Every response is fed whole and byte by byte."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame, PingFrame, PushPromiseFrame,
    RstStreamFrame, SettingsFrame, WindowUpdateFrame,
)

from farm.h2check import CheckFailed, H2Exchange, alpn_mismatch
from tests.unit.h2_helpers import parse_frames


def exchange(want_body=False, **kw) -> H2Exchange:
    args = dict(method="GET", scheme="http", path="/healthz", authority="app.example:80")
    args.update(kw)
    return H2Exchange(want_body=want_body, **args)


def server_for(ex: H2Exchange):
    """An h2 server that has read the check's request: (conn, events)."""
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                             header_encoding="utf-8"))
    c.initiate_connection()
    events = c.receive_data(ex.start())
    return c, events


def feed(ex: H2Exchange, data: bytes, split: bool) -> bytes:
    """Give data to the exchange whole or byte by byte, stopping once it
    is done (as the checker does); what it answered."""
    if not split:
        return ex.receive(data)
    out = b""
    for i in range(len(data)):
        if ex.done:
            break
        out += ex.receive(data[i:i + 1])
    return out


SPLIT = pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])


# -- the request ---------------------------------------------------------------

def test_request_is_preface_settings_and_one_headers_frame_read_by_h2():
    ex = exchange(method="HEAD", scheme="https", path="/ready?x=1", authority="svc:50051")
    c, events = server_for(ex)
    req = [e for e in events if isinstance(e, h2.events.RequestReceived)]
    assert len(req) == 1 and req[0].stream_id == 1
    assert req[0].headers[:4] == [(":method", "HEAD"), (":scheme", "https"),
                                  (":path", "/ready?x=1"), (":authority", "svc:50051")]
    assert req[0].headers[4:] == [("te", "trailers"), ("user-agent", "farm-check")]
    assert any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 1 for e in events)
    settings = [e for e in events if isinstance(e, h2.events.RemoteSettingsChanged)][0]
    assert settings.changed_settings[h2.settings.SettingCodes.ENABLE_PUSH].new_value == 0
    frames = parse_frames(ex.start()[24:])
    assert [type(f).__name__ for f in frames] == ["SettingsFrame", "HeadersFrame"]
    assert frames[1].flags == {"END_STREAM", "END_HEADERS"}


# -- good responses -------------------------------------------------------------

@SPLIT
def test_status_from_h2_server_and_settings_acked(split):
    ex = exchange()
    c, _ = server_for(ex)
    c.send_headers(1, [(":status", "200"), ("content-type", "text/plain")])
    c.send_data(1, b"fine", end_stream=True)
    out = feed(ex, c.data_to_send(), split)
    assert ex.done and ex.status == 200
    assert ex.body == b""                          # no body wanted: done at the headers
    # our answer: the ACK of the server's SETTINGS, which h2 takes
    events = c.receive_data(out)
    assert any(isinstance(e, h2.events.SettingsAcknowledged) for e in events)
    assert parse_frames(ex.goaway())[0].error_code == 0


@SPLIT
def test_body_read_until_end_stream(split):
    ex = exchange(want_body=True)
    c, _ = server_for(ex)
    c.send_headers(1, [(":status", "503")])
    c.send_data(1, b"part one, ")
    c.send_data(1, b"part two", pad_length=7)
    c.send_data(1, b"", end_stream=True)
    feed(ex, c.data_to_send(), split)
    assert ex.done and ex.status == 503 and ex.body == b"part one, part two"


@SPLIT
def test_body_stops_at_the_initial_window(split):
    ex = exchange(want_body=True)
    c, _ = server_for(ex)
    c.send_headers(1, [(":status", "200")])
    c.send_data(1, b"x" * 16384)
    c.send_data(1, b"x" * 16384)
    c.send_data(1, b"x" * 16384)
    c.send_data(1, b"x" * 16383)                 # the whole 65535-byte window
    feed(ex, c.data_to_send(), split)
    assert ex.done and len(ex.body) == 65535


@SPLIT
def test_interim_responses_skipped_and_trailers_end(split):
    ex = exchange(want_body=True)
    c, _ = server_for(ex)
    c.send_headers(1, [(":status", "103"), ("link", "</a>")])
    c.send_headers(1, [(":status", "200"), ("grpc-encoding", "identity")])
    c.send_data(1, b"body")
    c.send_headers(1, [("grpc-status", "0")], end_stream=True)
    feed(ex, c.data_to_send(), split)
    assert ex.done and ex.status == 200 and ex.body == b"body"


@SPLIT
def test_headers_split_in_continuation_and_ping_answered(split):
    ex = exchange()
    enc = hpack.Encoder()
    block = enc.encode([(":status", "204"), ("x-big", "v" * 300)])
    data = (SettingsFrame(0).serialize()
            + PingFrame(0, opaque_data=b"12345678").serialize()
            + WindowUpdateFrame(0, window_increment=1000).serialize()
            + HeadersFrame(1, block[:100], flags=["END_STREAM"]).serialize()
            + ContinuationFrame(1, block[100:200]).serialize()
            + ContinuationFrame(1, block[200:], flags=["END_HEADERS"]).serialize())
    out = feed(ex, data, split)
    assert ex.done and ex.status == 204
    frames = parse_frames(out)
    assert [(type(f).__name__, f.flags) for f in frames] == [
        ("SettingsFrame", {"ACK"}), ("PingFrame", {"ACK"})]
    assert frames[1].opaque_data == b"12345678"


def test_graceful_goaway_covering_stream_1_lets_it_finish():
    ex = exchange()
    block = hpack.Encoder().encode([(":status", "200")])
    ex.receive(SettingsFrame(0).serialize()
               + GoAwayFrame(0, last_stream_id=1, error_code=0).serialize()
               + HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    assert ex.done and ex.status == 200


def test_close_after_status_keeps_it():
    ex = exchange(want_body=True)
    block = hpack.Encoder().encode([(":status", "200")])
    ex.receive(SettingsFrame(0).serialize() + HeadersFrame(1, block, flags=["END_HEADERS"])
               .serialize() + DataFrame(1, b"partial").serialize())
    assert not ex.done
    ex.eof()
    assert ex.done and ex.status == 200 and ex.body == b"partial"


# -- failures ---------------------------------------------------------------------

def failure(ex: H2Exchange, data: bytes, split: bool, eof: bool = False) -> str:
    with pytest.raises(CheckFailed) as e:
        feed(ex, data, split)
        if eof:
            ex.eof()
    return str(e.value)


@SPLIT
def test_http1_server_answering_the_preface(split):
    why = failure(exchange(), b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", split)
    assert why.startswith("invalid HTTP/2 preface: the server answered in HTTP/1.x")
    assert "'HTTP/1.1 400 Bad Request'" in why


def test_short_http1_answer_then_close():
    assert "answered in HTTP/1.x" in failure(exchange(), b"HTTP/", False, eof=True)


@SPLIT
def test_first_frame_not_settings(split):
    block = hpack.Encoder().encode([(":status", "200")])
    why = failure(exchange(), HeadersFrame(1, block, flags=["END_HEADERS"]).serialize(), split)
    assert why == "invalid HTTP/2 preface from the server (first frame HEADERS, not SETTINGS)"
    why = failure(exchange(), SettingsFrame(0, flags=["ACK"]).serialize(), split)
    assert "invalid HTTP/2 preface" in why


def test_garbage_and_closes():
    assert "invalid HTTP/2 preface" in failure(exchange(), b"\x00\x00", False, eof=True)
    assert failure(exchange(), b"", False, eof=True) == \
        "connection closed before the server's preface"
    assert failure(exchange(), SettingsFrame(0).serialize(), False, eof=True) == \
        "connection closed before the response"


SETTINGS = SettingsFrame(0).serialize()


class Raw:
    """A frame hyperframe would refuse to build."""

    def __init__(self, data: bytes):
        self.data = data

    def serialize(self) -> bytes:
        return self.data


@SPLIT
@pytest.mark.parametrize("frames, words", [
    ([RstStreamFrame(1, error_code=2)], "stream reset by the server (INTERNAL_ERROR)"),
    ([GoAwayFrame(0, last_stream_id=0, error_code=0)], "GOAWAY from the server (NO_ERROR)"),
    ([GoAwayFrame(0, last_stream_id=1, error_code=11, additional_data=b"calm down")],
     "GOAWAY from the server (ENHANCE_YOUR_CALM: calm down)"),
    ([PushPromiseFrame(1, promised_stream_id=2, data=b"\x82", flags=["END_HEADERS"])],
     "PUSH_PROMISE while push is disabled"),
    ([DataFrame(1, b"early")], "DATA before the response's HEADERS"),
    ([DataFrame(3, b"x")], "DATA on stream 3"),
    ([HeadersFrame(3, b"\x88", flags=["END_HEADERS"])], "HEADERS on stream 3"),
    ([HeadersFrame(1, b"\x88"), DataFrame(1, b"x")], "DATA where a CONTINUATION was due"),
    ([ContinuationFrame(1, b"\x88", flags=["END_HEADERS"])], "CONTINUATION without HEADERS"),
    ([HeadersFrame(1, b"\xff\xff", flags=["END_HEADERS"])],
     "invalid frame from the server: COMPRESSION_ERROR"),
    ([Raw(b"\x00\x00\x08\x06\x00\x00\x00\x00\x01" + b"12345678")],     # PING on stream 1
     "invalid frame from the server: PROTOCOL_ERROR"),
    ([HeadersFrame(1, hpack.Encoder().encode([("server", "x")]), flags=["END_HEADERS"])],
     "response without a single leading :status"),
    ([HeadersFrame(1, hpack.Encoder().encode([(":status", "20x")]), flags=["END_HEADERS"])],
     "invalid :status '20x'"),
    ([HeadersFrame(1, hpack.Encoder().encode([(":status", "100")]),
                   flags=["END_HEADERS", "END_STREAM"])], "stream ended on an interim 100"),
])
def test_failures(frames, words, split):
    data = SETTINGS + b"".join(f.serialize() for f in frames)
    assert words in failure(exchange(), data, split)


def test_frame_above_max_size_and_flow_control():
    big = b"\x00\x40\x01\x00\x00\x00\x00\x00\x01"        # DATA of 16385 bytes
    assert "FRAME_SIZE_ERROR" in failure(exchange(), SETTINGS + big, False)
    ex = exchange(want_body=True)
    block = hpack.Encoder().encode([(":status", "200")])
    head = SETTINGS + HeadersFrame(1, block, flags=["END_HEADERS"]).serialize()
    data = head + b"".join(DataFrame(1, b"x" * 16384).serialize() for _ in range(3)) \
        + DataFrame(1, b"x" * 16384).serialize()    # 65536 > 65535
    assert "FLOW_CONTROL_ERROR" in failure(ex, data, False)


def test_rst_of_another_stream_and_unknown_frames_ignored():
    ex = exchange()
    block = hpack.Encoder().encode([(":status", "200")])
    unknown = b"\x00\x00\x03\xee\x00\x00\x00\x00\x00abc"
    ex.receive(SETTINGS + unknown + RstStreamFrame(5, error_code=8).serialize()
               + HeadersFrame(1, block, flags=["END_HEADERS"]).serialize())
    assert ex.done and ex.status == 200


# -- ALPN ---------------------------------------------------------------------------

@pytest.mark.parametrize("proto, selected, words", [
    ("h2", "h2", None), ("h2", None, None), ("h1", None, None), ("h1", "http/1.1", None),
    ("h2", "http/1.1", "ALPN: the server chose 'http/1.1', not 'h2'"),
    ("h1", "h2", "ALPN: the server chose 'h2' for an HTTP/1.1 check"),
])
def test_alpn_mismatch(proto, selected, words):
    why = alpn_mismatch(proto, selected)
    assert why == words if words is None else why.startswith(words)
