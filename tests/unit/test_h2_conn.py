"""workers/h2/conn.py: the connection against python-hyper's h2 as a live
peer in memory (our server with an h2 client, our client with an h2
server: property-based, bytes cut at random places, bodies larger than the
flow-control windows), the same script fed whole and byte by byte, and
one test per limit or attack of the HTTP/2 issue."""

import random

import h2.config
import h2.connection
import h2.errors
import h2.events as he
import h2.settings
import hpack
import pytest
from hyperframe.frame import (
    DataFrame, GoAwayFrame, HeadersFrame, PushPromiseFrame, SettingsFrame, WindowUpdateFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.h2_helpers import FakeClock, Peer, common_headers, parse_frames
from workers.h2.conn import H2Config, H2Connection
from workers.h2.errors import (
    CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR,
    NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM, STREAM_CLOSED, MalformedMessage,
)
from workers.h2.events import (
    ConnectionTerminated, DataReceived, PingAckReceived, RemoteSettingsChanged,
    RequestReceived, ResponseReceived, SettingsAcked, StreamReset, TrailersReceived,
    WindowUpdated,
)
from workers.h2.frames import PREFACE
from workers.h2.messages import check_request


@pytest.fixture(params=[False, True], ids=["whole", "bytewise"])
def split(request):
    """Every crafted input is fed whole, then again byte by byte."""
    return request.param


# --------------------------------------------------------------------------
# in-memory plumbing between our connection and h2's

def h2_conn(client):
    c = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=client, header_encoding=None))
    c.initiate_connection()
    return c


def feed(receiver, data, rng):
    """Give data to receiver cut at random places; returns the events."""
    events = []
    pos = 0
    while pos < len(data):
        n = rng.choice((1, 2, 7, 9, 10, 100, 1000, 20000))
        events += receiver.receive_data(data[pos:pos + n])
        pos += n
    return events


class Sender:
    """Bodies waiting for flow-control room, on either implementation."""

    def __init__(self, conn, ours):
        self.conn = conn
        self.ours = ours
        self.pending = {}           # sid -> [data, trailers or None, end]

    def queue(self, sid, data, trailers=None):
        self.pending[sid] = [data, trailers]
        self.pump()

    def pump(self):
        for sid, item in list(self.pending.items()):
            data, trailers = item
            if self.ours:
                sent = self.conn.send_data(sid, data, end_stream=trailers is None)
                data = data[sent:]
                if not data:
                    if trailers is not None:
                        self.conn.send_trailers(sid, trailers)
                    del self.pending[sid]
            else:
                c = self.conn
                while data:
                    room = min(c.local_flow_control_window(sid), c.max_outbound_frame_size)
                    if room <= 0:
                        break
                    c.send_data(sid, data[:room])
                    data = data[room:]
                if not data:
                    if trailers is not None:
                        c.send_headers(sid, trailers, end_stream=True)
                    else:
                        c.end_stream(sid)
                    del self.pending[sid]
            if sid in self.pending:
                self.pending[sid][0] = data


NAMES = st.sampled_from([b"accept", b"x-a", b"x-long-name", b"content-type", b"user-agent",
                         b"accept-language", b"x-b"])
VALUES = st.binary(max_size=60).map(
    lambda b: bytes(33 + c % 94 for c in b))          # visible ASCII, no edge spaces
REQUESTS = st.lists(st.tuples(
    st.sampled_from([b"GET", b"POST", b"PUT"]),
    st.lists(st.tuples(NAMES, VALUES), max_size=6),
    st.sampled_from([0, 1, 100, 16385, 70000, 200000]),
    st.booleans()), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None, database=None)
@given(REQUESTS, st.integers(0, 2 ** 32))
def test_h2_client_against_our_server(requests, seed):
    rng = random.Random(seed)
    cli = h2_conn(True)
    srv = H2Connection()
    ours = Sender(srv, True)
    theirs = Sender(cli, False)
    sent = {}
    got = {}                        # what our server saw: sid -> [headers, body, trailers]
    answers = {}                    # what the client saw: sid -> [headers, body, trailers, ended]
    for i, (method, extra, size, with_trailers) in enumerate(requests):
        sid = 1 + 2 * i
        headers = common_headers(method=method, path=b"/r%d" % i) + extra
        body = bytes(rng.getrandbits(8) for _ in range(min(size, 64))) * (size // 64 + 1)
        body = body[:size]
        trailers = [(b"x-trailer", b"t%d" % i)] if with_trailers and body else None
        cli.send_headers(sid, headers, end_stream=not body)
        if body:
            theirs.queue(sid, body, trailers)
        sent[sid] = (headers, body, trailers)
    for _ in range(500):
        moved = False
        out = cli.data_to_send()
        if out:
            moved = True
            for ev in feed(srv, out, rng):
                sid = getattr(ev, "stream_id", None)
                t = type(ev)
                if t is RequestReceived:
                    got[sid] = [ev.headers, b"", None]
                elif t is DataReceived:
                    got[sid][1] += ev.data
                    srv.acknowledge_received_data(sid, ev.flow_controlled_length)
                elif t is TrailersReceived:
                    got[sid][2] = ev.headers
                elif t is WindowUpdated or t is RemoteSettingsChanged:
                    ours.pump()
                else:
                    assert t in (SettingsAcked,), ev
                if getattr(ev, "end_stream", False) or t is TrailersReceived:
                    srv.send_headers(sid, [(b":status", b"200"),
                                           (b"x-len", b"%d" % len(got[sid][1]))])
                    ours.queue(sid, got[sid][1], [(b"x-echo", b"1")] if got[sid][2] else None)
        out = srv.data_to_send()
        if out:
            moved = True
            for ev in feed(cli, out, rng):
                if isinstance(ev, he.ResponseReceived):
                    answers[ev.stream_id] = [ev.headers, b"", None, False]
                elif isinstance(ev, he.DataReceived):
                    answers[ev.stream_id][1] += ev.data
                    cli.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, he.TrailersReceived):
                    answers[ev.stream_id][2] = ev.headers
                elif isinstance(ev, he.StreamEnded):
                    answers[ev.stream_id][3] = True
                elif isinstance(ev, (he.WindowUpdated, he.RemoteSettingsChanged)):
                    theirs.pump()
                else:
                    assert isinstance(ev, he.SettingsAcknowledged), ev
        if not moved:
            break
    for sid, (headers, body, trailers) in sent.items():
        assert got[sid] == [headers, body, trailers]
        rh, rbody, rtrailers, ended = answers[sid]
        assert ended and rbody == body
        assert rh == [(b":status", b"200"), (b"x-len", b"%d" % len(body))]
        assert rtrailers == ([(b"x-echo", b"1")] if trailers else None)
    assert not srv.streams and srv.stalled_since is None and not srv.closed


@settings(max_examples=40, deadline=None, database=None)
@given(REQUESTS, st.integers(0, 2 ** 32))
def test_our_client_against_h2_server(requests, seed):
    rng = random.Random(seed)
    cli = H2Connection(client=True)
    srv = h2_conn(False)
    ours = Sender(cli, True)
    theirs = Sender(srv, False)
    sent = {}
    seen = {}
    answers = {}
    for i, (method, extra, size, with_trailers) in enumerate(requests):
        headers = common_headers(method=method, path=b"/r%d" % i) + extra
        body = (b"%d-" % i) * (size // 2 + 1)
        body = body[:size]
        trailers = [(b"x-trailer", b"t%d" % i)] if with_trailers and body else None
        sid = cli.send_request(headers, end_stream=not body)
        if body:
            ours.queue(sid, body, trailers)
        sent[sid] = (headers, body, trailers)
    for _ in range(500):
        moved = False
        out = cli.data_to_send()
        if out:
            moved = True
            for ev in feed(srv, out, rng):
                sid = getattr(ev, "stream_id", None)
                if isinstance(ev, he.RequestReceived):
                    seen[sid] = [ev.headers, b"", None]
                elif isinstance(ev, he.DataReceived):
                    seen[sid][1] += ev.data
                    srv.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, he.TrailersReceived):
                    seen[sid][2] = ev.headers
                elif isinstance(ev, he.StreamEnded):
                    srv.send_headers(sid, [(b":status", b"100")])
                    srv.send_headers(sid, [(b":status", b"200"), (b"x-len",
                                                                  b"%d" % len(seen[sid][1]))])
                    theirs.queue(sid, seen[sid][1] + b"!", [(b"grpc-status", b"0")])
                elif isinstance(ev, (he.WindowUpdated, he.RemoteSettingsChanged)):
                    theirs.pump()
        out = srv.data_to_send()
        if out:
            moved = True
            for ev in feed(cli, out, rng):
                sid = getattr(ev, "stream_id", None)
                t = type(ev)
                if t is ResponseReceived:
                    answers.setdefault(sid, []).append(ev.status)
                    if ev.status == 200:
                        answers[sid] += [ev.headers, b"", None]
                elif t is DataReceived:
                    answers[sid][3] += ev.data
                    cli.acknowledge_received_data(sid, ev.flow_controlled_length)
                elif t is TrailersReceived:
                    answers[sid][4] = ev.headers
                elif t is WindowUpdated or t is RemoteSettingsChanged:
                    ours.pump()
                else:
                    assert t is SettingsAcked, ev
        if not moved:
            break
    for sid, (headers, body, trailers) in sent.items():
        assert seen[sid] == [headers, body, trailers]
        assert answers[sid] == [100, 200, [(b":status", b"200"), (b"x-len", b"%d" % len(body))],
                                body + b"!", [(b"grpc-status", b"0")]]
    assert not cli.streams and cli.can_open_stream()


# --------------------------------------------------------------------------
# the same script, whole or byte by byte

def script(split):
    p = Peer(split=split)
    p.handshake({4: 10})
    p.headers(1, common_headers(method=b"POST") + [(b"content-length", b"5")], end_stream=False)
    p.data(1, b"he", end_stream=False)
    p.data(1, b"llo", padded=3)
    p.headers(3, end_headers=False, end_stream=False)
    p.continuation(3, [(b"x-more", b"1")])
    p.data(3, b"", end_stream=False)
    p.headers(3, [(b"x-trailer", b"yes")])
    p.ping(b"12345678")
    p.window_update(0, 1000)
    p.window_update(1, 100)
    p.headers(5, common_headers() + [(b"Bad", b"x")])
    p.priority(7, weight=3)
    p.goaway(0)
    return p


def test_events_do_not_depend_on_the_split():
    whole = script(False)
    bytewise = script(True)
    assert whole.events == bytewise.events
    assert [f.serialize() for f in whole.frames] == [f.serialize() for f in bytewise.frames]
    types = [type(e).__name__ for e in whole.events]
    assert "RequestReceived" in types and "TrailersReceived" in types
    assert StreamReset(5, PROTOCOL_ERROR, False, "uppercase field name b'Bad'") in whole.events


# --------------------------------------------------------------------------
# flow control and backpressure

def stream_updates(p, sid):
    return [f.window_increment for f in p.of_type(WindowUpdateFrame) if f.stream_id == sid]


def test_receive_window_reopens_only_when_consumed(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1, common_headers(method=b"POST"), end_stream=False)
    for _ in range(3):
        p.data(1, b"x" * 16384, end_stream=False)
    p.data(1, b"x" * 16383, end_stream=False)      # the whole 65535-byte window
    assert not p.rst_codes(1)
    # nothing consumed: no credit given back, one byte more is too much
    p.data(1, b"x", end_stream=False)
    assert p.rst_codes(1) == [FLOW_CONTROL_ERROR] and not stream_updates(p, 1)
    assert StreamReset(1, FLOW_CONTROL_ERROR, False, "DATA over the stream window") in p.events

    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1, common_headers(method=b"POST"), end_stream=False)
    p.data(1, b"x" * 16384, end_stream=False)
    p.data(1, b"x" * 16384, end_stream=False)
    p.conn.acknowledge_received_data(1, 20000)
    p.send(b"")
    assert not stream_updates(p, 1)                 # under half a window: not yet
    p.conn.acknowledge_received_data(1, 12768)      # half the window: credit goes back
    p.send(b"")
    assert stream_updates(p, 1) == [32768]
    for _ in range(3):
        p.data(1, b"x" * 16384, end_stream=False)
    p.data(1, b"x" * 16383, end_stream=False)      # the window is whole again
    assert not p.rst_codes(1)


def test_acknowledging_too_much_never_opens_past_the_window(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1, common_headers(method=b"POST"), end_stream=False)
    for size in (16384, 16384, 7232):
        p.data(1, b"x" * size, end_stream=False)
    p.conn.acknowledge_received_data(1, 10 ** 9)
    p.send(b"")
    assert stream_updates(p, 1) == [40000]
    assert sum(stream_updates(p, 0)) == (1 << 20) - 65535     # only the initial one


def test_connection_window_is_enforced(split):
    cfg = H2Config(connection_window=65535, initial_window_size=2 ** 20)
    p = Peer(split=split, config=cfg, app=False)
    p.handshake()
    p.headers(1, common_headers(method=b"POST"), end_stream=False)
    p.headers(3, common_headers(method=b"POST"), end_stream=False)
    for _ in range(3):
        p.data(1, b"x" * 16384, end_stream=False)
    p.data(3, b"x" * 16383, end_stream=False)
    assert not p.conn.closed
    p.data(3, b"xx", end_stream=False)
    assert p.connection_error(FLOW_CONTROL_ERROR)


def test_data_on_reset_stream_gives_connection_window_back(split):
    cfg = H2Config(connection_window=65535)
    p = Peer(split=split, config=cfg, app=False)
    p.handshake()
    p.headers(1, common_headers(method=b"POST"), end_stream=False)
    p.conn.reset_stream(1, CANCEL)
    for _ in range(10):                     # 160 KiB: more than the connection window
        p.data(1, b"x" * 16384, end_stream=False)
    assert not p.conn.closed and p.rst_codes(1) == [CANCEL]
    assert sum(f.window_increment for f in p.of_type(WindowUpdateFrame)
               if f.stream_id == 0) >= 10 * 16384 - 65535


def test_send_data_respects_windows_and_frame_size(split):
    clock = FakeClock()
    p = Peer(split=split, app=False, clock=clock)
    p.handshake({4: 20000})
    p.headers(1)
    c = p.conn
    assert c.max_send(1) == 20000
    c.send_headers(1, [(b":status", b"200")])
    assert c.send_data(1, b"a" * 50000, end_stream=True) == 20000
    assert c.stalled_since == clock.t
    p.send(b"")
    sizes = [len(f.data) for f in p.data_frames(1)]
    assert sizes == [16384, 3616] and not any("END_STREAM" in f.flags for f in p.data_frames(1))
    assert c.max_send(1) == 0 and c.send_data(1, b"rest") == 0
    clock.t += 5
    p.window_update(1, 100000)
    assert c.stalled_since is None and WindowUpdated(1, 100000) in p.events
    # the connection window (65535 - 20000) is now the limit
    assert c.max_send(1) == 65535 - 20000
    assert c.send_data(1, b"b" * 30000, end_stream=True) == 30000
    p.send(b"")
    assert "END_STREAM" in p.data_frames(1)[-1].flags
    assert 1 not in c.streams


def test_empty_end_stream_needs_no_window(split):
    p = Peer(split=split, app=False)
    p.handshake({4: 0})
    p.headers(1)
    p.conn.send_headers(1, [(b":status", b"204")])
    assert p.conn.send_data(1, b"", end_stream=True) == 0
    p.send(b"")
    assert "END_STREAM" in p.data_frames(1)[-1].flags and not p.conn.streams


def test_negative_window_after_settings(split):
    p = Peer(split=split, app=False)
    p.handshake({4: 100})
    p.headers(1)
    p.conn.send_headers(1, [(b":status", b"200")])
    assert p.conn.send_data(1, b"x" * 100) == 100
    p.settings({4: 50})
    assert p.conn.max_send(1) == 0
    p.window_update(1, 60)
    assert p.conn.max_send(1) == 10


# --------------------------------------------------------------------------
# sending

def test_large_header_block_uses_continuation(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1)
    big = [(b":status", b"200")] + [(b"x-%d" % i, b"v" * 1000) for i in range(40)]
    p.conn.send_headers(1, big, end_stream=True)
    p.send(b"")
    kinds = [type(f).__name__ for f in p.frames[-4:]]
    assert kinds[-1] == "ContinuationFrame" and "HeadersFrame" in kinds
    # an h2 client reads it back
    cli = h2_conn(True)
    cli.send_headers(1, common_headers(), end_stream=True)
    srv = H2Connection()
    srv.receive_data(cli.data_to_send())
    cli.receive_data(srv.data_to_send())
    srv.send_headers(1, big, end_stream=True)
    evs = cli.receive_data(srv.data_to_send())
    resp = [e for e in evs if isinstance(e, he.ResponseReceived)]
    assert resp and resp[0].headers == big


def test_interim_responses_and_trailers(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1)
    c = p.conn
    assert c.send_headers(1, [(b":status", b"103"), (b"link", b"</a.css>")])
    assert c.send_headers(1, [(b":status", b"200")])
    c.send_data(1, b"body")
    assert c.send_trailers(1, [(b"x-t", b"1")])
    p.send(b"")
    heads = p.responses(1)
    assert len(heads) == 3 and "END_STREAM" in heads[-1].flags
    assert not c.streams


def test_programming_errors(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1)
    c = p.conn
    with pytest.raises(ValueError):
        c.send_headers(1, [(b":status", b"100")], end_stream=True)
    c.send_headers(1, [(b":status", b"200")])
    with pytest.raises(ValueError):
        c.send_headers(1, [(b"x", b"1")])            # trailers must end the stream
    with pytest.raises(ValueError):
        c.send_request([])                          # server role
    c.send_data(1, b"", end_stream=True)
    assert c.send_data(1, b"more") == 0 and not c.send_headers(1, [(b":status", b"200")])


def test_sending_on_a_stream_the_peer_reset(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1, end_stream=False)
    p.rst(1, CANCEL)
    assert StreamReset(1, CANCEL, True) in p.events
    assert p.conn.send_headers(1, [(b":status", b"200")]) is False
    assert p.conn.send_data(1, b"x") == 0 and not p.conn.end_stream(1)
    p.conn.reset_stream(1)                          # nothing to do
    p.data(1, b"late")                              # after the peer's RST: STREAM_CLOSED
    assert p.rst_codes(1) == [STREAM_CLOSED]


# --------------------------------------------------------------------------
# limits and attacks

def test_max_concurrent_streams(split):
    p = Peer(split=split, config=H2Config(max_concurrent_streams=2), app=False)
    p.handshake()
    assert p.frames[0].settings[3] == 2             # advertised
    p.headers(1)
    p.headers(3)
    p.headers(5)
    assert p.rst_codes(5) == [REFUSED_STREAM]
    assert StreamReset(5, REFUSED_STREAM, False, "over max_concurrent_streams") in p.events
    assert [e.stream_id for e in p.events if type(e) is RequestReceived] == [1, 3]
    p.conn.send_headers(1, [(b":status", b"204")], end_stream=True)
    p.headers(7)
    assert [e.stream_id for e in p.events if type(e) is RequestReceived] == [1, 3, 7]


@pytest.mark.parametrize("extra", [
    [(b"x-big", b"v" * 70000)],
    [(b"x-%d" % i, b"v") for i in range(101)],
], ids=["bytes", "fields"])
def test_header_list_too_large_gets_431(extra, split):
    cfg = H2Config(max_header_block=1 << 20)
    p = Peer(split=split, config=cfg, app=False)
    p.handshake()
    p.headers_split(1, common_headers() + extra, end_stream=False)
    assert not p.conn.closed
    (resp,) = p.responses(1)
    assert hpack.Decoder().decode(resp.data, raw=True)[0] == (b":status", b"431")
    assert "END_STREAM" in resp.flags and p.rst_codes(1) == [NO_ERROR]
    reset = [e for e in p.events if type(e) is StreamReset][0]
    assert reset.stream_id == 1 and reset.reason.startswith("431")
    assert not [e for e in p.events if type(e) is RequestReceived]
    # the HPACK context survived: the next request decodes
    p.data(1, b"ignored")
    p.headers(3)
    assert [e.stream_id for e in p.events if type(e) is RequestReceived] == [3]


def test_a_request_block_seen_again_is_not_decoded_nor_checked_again(split):
    """A request block that left the HPACK table unchanged is remembered
    with its checked fields (_heads); the same block means the same fields
    only while the table is the same: after an insertion it is decoded
    again. Every outcome matches an independent decoder's reading."""
    p = Peer(split=split, app=False)
    p.handshake()
    fields = common_headers() + [(b"accept", b"*/*")]
    first = p.block(fields)                         # inserts into the table
    again = p.block(fields)                         # one-byte indexes only
    assert len(again) < len(first)
    p.headers(1, raw_block=first)
    p.headers(3, raw_block=again)
    assert list(p.conn._heads) == [again]
    p.headers(5, raw_block=again)                   # remembered
    mine = p.events[-1].headers
    assert mine == fields
    mine.append((b"x", b"y"))                       # the event's list is its own
    p.headers(7, raw_block=again)
    assert p.events[-1].headers == fields
    # an insertion: the same block now reads other entries (shifted by one)
    x_new = p.block([*fields, (b"x-new", b"1")])
    p.headers(9, raw_block=x_new)
    oracle = hpack.Decoder()
    for block in (first, again, x_new):
        oracle.decode(block, raw=True)
    want = oracle.decode(again, raw=True)
    assert want != fields
    try:
        check_request(want)
        valid = True
    except MalformedMessage:
        valid = False
    for sid in (11, 13):
        p.headers(sid, raw_block=again)
        ev = p.events[-1]
        if valid:
            assert type(ev) is RequestReceived and ev.headers == want
        else:
            assert type(ev) is StreamReset and ev.stream_id == sid


def test_hpack_bomb_of_references(split):
    p = Peer(split=split, app=False)
    p.handshake()
    value = b"x" * 3000
    p.headers(1, common_headers() + [(b"x-bomb", value)])
    assert [e.stream_id for e in p.events if type(e) is RequestReceived] == [1]
    # now a tiny block that references the 3 KB entry a thousand times
    block = p.enc.encode(common_headers()) + b"\xbe" * 1000
    p.headers(3, raw_block=block)
    assert p.responses(3) and not p.conn.closed
    assert [e.stream_id for e in p.events if type(e) is RequestReceived] == [1]


def test_hpack_table_size_over_our_setting(split):
    p = Peer(split=split, config=H2Config(header_table_size=1024), app=False)
    p.handshake()                   # our SETTINGS are acknowledged
    p.headers(1, raw_block=b"\x3f\xe2\x07" + p.enc.encode(common_headers()))  # 1058 > 1024
    assert p.connection_error(COMPRESSION_ERROR)


def test_rapid_reset(split):
    clock = FakeClock()
    cfg = H2Config(rapid_reset_budget=20, flood_window=10)
    p = Peer(split=split, config=cfg, clock=clock, app=False)
    p.handshake()
    block = p.enc.encode(common_headers())
    sid = 1
    for _ in range(20):
        p.headers(sid, raw_block=block, end_stream=False)
        p.rst(sid)
        sid += 2
    assert not p.conn.closed
    p.headers(sid, raw_block=block, end_stream=False)
    p.rst(sid)
    assert p.connection_error(ENHANCE_YOUR_CALM)
    # the servers saw a bounded number of requests
    assert len([e for e in p.events if type(e) is RequestReceived]) == 21


def test_rapid_reset_budget_is_per_window_and_spares_answered_streams(split):
    clock = FakeClock()
    cfg = H2Config(rapid_reset_budget=20, flood_window=10)
    p = Peer(split=split, config=cfg, clock=clock, app=False)
    p.handshake()
    block = p.enc.encode(common_headers())
    sid = 1
    for round_ in range(5):
        for _ in range(20):
            p.headers(sid, raw_block=block, end_stream=False)
            p.rst(sid)
            sid += 2
        clock.t += 11                       # a new window
    # streams reset after their response started are not counted
    for _ in range(50):
        p.headers(sid, raw_block=block, end_stream=False)
        p.conn.send_headers(sid, [(b":status", b"200")])
        p.rst(sid)
        sid += 2
    assert not p.conn.closed


def test_stream_errors_count_as_resets(split):
    cfg = H2Config(rapid_reset_budget=10)
    p = Peer(split=split, config=cfg, clock=FakeClock(), app=False)
    p.handshake()
    for i in range(11):
        p.headers(1 + 2 * i, common_headers() + [(b"Bad", b"1")])
    assert p.connection_error(ENHANCE_YOUR_CALM)


def test_continuation_flood_frames(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1, end_headers=False)
    for _ in range(15):
        p.continuation(1, raw_block=b"", end_headers=False)
    assert not p.conn.closed
    p.continuation(1, raw_block=b"", end_headers=False)
    assert p.connection_error(ENHANCE_YOUR_CALM)


def test_continuation_flood_bytes(split):
    cfg = H2Config(max_header_block=20000)
    p = Peer(split=split, config=cfg, app=False)
    p.handshake()
    p.headers(1, raw_block=b"\0" * 16000, end_headers=False)
    p.continuation(1, raw_block=b"\0" * 5000, end_headers=False)
    assert p.connection_error(ENHANCE_YOUR_CALM)
    p = Peer(split=split, config=H2Config(max_header_block=10000), app=False)
    p.handshake()
    p.headers(1, raw_block=b"\0" * 12000, end_headers=False)     # in the HEADERS alone
    assert p.connection_error(ENHANCE_YOUR_CALM)


def test_settings_flood(split):
    clock = FakeClock()
    p = Peer(split=split, config=H2Config(settings_budget=10), clock=clock, app=False)
    p.handshake()                           # one SETTINGS counted
    for _ in range(9):
        p.settings({3: 100})
    assert not p.conn.closed
    p.settings({3: 100})
    assert p.connection_error(ENHANCE_YOUR_CALM)


def test_ping_flood(split):
    clock = FakeClock()
    p = Peer(split=split, config=H2Config(ping_budget=10), clock=clock, app=False)
    p.handshake()
    for _ in range(10):
        p.ping()
    clock.t += 10                           # a new window: the count starts again
    for _ in range(10):
        p.ping()
    assert not p.conn.closed
    p.ping()
    assert p.connection_error(ENHANCE_YOUR_CALM)


def test_unread_acks_flood(split):
    """A peer that sends PINGs and SETTINGS but never reads the answers:
    answers pile up between two data_to_send() calls."""
    p = Peer(split=split, config=H2Config(max_pending_control=50, ping_budget=10 ** 6), app=False)
    p.handshake()
    ping = bytes.fromhex("000008060000000000") + b"\0" * 8
    p.send(ping * 50)
    assert not p.conn.closed
    p.send(ping * 51)
    assert p.connection_error(ENHANCE_YOUR_CALM)


def test_empty_data_flood(split):
    p = Peer(split=split, config=H2Config(empty_frame_budget=10), clock=FakeClock(), app=False)
    p.handshake()
    p.headers(1, common_headers(method=b"POST"), end_stream=False)
    for _ in range(10):
        p.data(1, b"", end_stream=False)
    assert not p.conn.closed
    p.data(1, b"", end_stream=False)
    assert p.connection_error(ENHANCE_YOUR_CALM)


def test_too_large_frame_refused_from_its_header(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.send(bytes.fromhex("004e20000100000001"))     # DATA of 20000 bytes, header only
    assert p.connection_error(FRAME_SIZE_ERROR)


def test_larger_frames_when_advertised(split):
    p = Peer(split=split, config=H2Config(max_frame_size=65536, initial_window_size=2 ** 20,
                             connection_window=2 ** 21), app=False)
    p.handshake()
    assert p.frames[0].settings[5] == 65536
    p.headers(1, common_headers(method=b"POST"), end_stream=False)
    p.data(1, b"x" * 65536)
    assert not p.conn.closed and DataReceived(1, b"x" * 65536, 65536, True) in p.events


def test_invalid_preface_byte_by_byte_and_first_frame():
    p = Peer(split=True)
    p.send(PREFACE[:10] + b"X")
    assert p.conn.closed and not p.of_type(GoAwayFrame)
    p = Peer()
    p.send(PREFACE)
    assert not p.conn.closed
    p.ping()
    assert p.connection_error(PROTOCOL_ERROR)       # first frame must be SETTINGS
    p = Peer()
    p.send(PREFACE + SettingsFrame(0, flags=["ACK"]).serialize())
    assert p.connection_error(PROTOCOL_ERROR)


def test_frames_on_closed_streams(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1, end_stream=False)
    p.conn.reset_stream(1, CANCEL)
    p.data(1, b"late", end_stream=False)            # after our RST: ignored
    p.headers(1, [(b"x-trailer", b"1")])
    p.window_update(1, 10)
    p.rst(1)
    assert p.rst_codes(1) == [CANCEL] and not p.conn.closed
    p.headers(3)
    p.conn.send_headers(3, [(b":status", b"204")], end_stream=True)
    p.window_update(3, 10)                          # allowed a little after the end
    p.priority(3)
    assert not p.conn.closed
    p.data(3, b"x")                                 # after END_STREAM both ways
    assert p.connection_error(STREAM_CLOSED)


def test_even_and_idle_streams(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.window_update(2, 1)
    assert p.connection_error(PROTOCOL_ERROR)


def test_self_dependency_on_existing_stream(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1, end_stream=False)
    p.headers(1, [(b"x", b"1")], priority=(1, 16, False))
    assert p.rst_codes(1) == [PROTOCOL_ERROR] and not p.conn.closed


def test_content_length_checks(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1, common_headers(method=b"POST") + [(b"content-length", b"5")])
    assert p.rst_codes(1) == [PROTOCOL_ERROR]            # END_STREAM on HEADERS
    p.headers(3, common_headers(method=b"POST") + [(b"content-length", b"5")],
              end_stream=False)
    p.data(3, b"abc", end_stream=False)
    p.headers(3, [(b"x-t", b"1")])
    assert p.rst_codes(3) == [PROTOCOL_ERROR]            # trailers after 3 of 5 bytes
    p.headers(5, common_headers(method=b"POST") + [(b"content-length", b"3")],
              end_stream=False)
    p.data(5, b"abc")
    assert not p.rst_codes(5) and DataReceived(5, b"abc", 3, True) in p.events


# --------------------------------------------------------------------------
# GOAWAY

def test_goaway_graceful(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1)
    p.headers(3, end_stream=False)
    c = p.conn
    c.goaway()
    p.send(b"")
    g = p.of_type(GoAwayFrame)[-1]
    assert (g.last_stream_id, g.error_code) == (3, NO_ERROR)
    p.headers(5)                                    # above the last id: ignored
    assert [e.stream_id for e in p.events if type(e) is RequestReceived] == [1, 3]
    assert not c.done
    p.data(3, b"body")
    c.send_headers(1, [(b":status", b"200")], end_stream=True)
    assert not c.done
    c.send_headers(3, [(b":status", b"200")], end_stream=True)
    assert c.done and not c.closed


def test_graceful_shutdown_waits_for_a_ping_round_trip(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1)
    c = p.conn
    c.start_graceful_shutdown()
    p.send(b"")
    first, ping = p.frames[-2:]
    assert isinstance(first, GoAwayFrame) and first.last_stream_id == 2 ** 31 - 1
    # sent by the client before it saw the GOAWAY: still served
    p.headers(3)
    assert [e.stream_id for e in p.events if type(e) is RequestReceived] == [1, 3]
    assert not c.done
    p.ping(ping.opaque_data, ack=True)              # the round trip is over
    final = p.of_type(GoAwayFrame)[-1]
    assert final.last_stream_id == 3 and final.error_code == NO_ERROR
    p.headers(5)                                    # too late: ignored
    assert [e.stream_id for e in p.events if type(e) is RequestReceived] == [1, 3]
    c.send_headers(1, [(b":status", b"200")], end_stream=True)
    assert not c.done
    c.send_headers(3, [(b":status", b"200")], end_stream=True)
    assert c.done


def test_goaway_during_a_graceful_shutdown(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.conn.start_graceful_shutdown()
    assert not p.conn.done
    p.conn.goaway()                     # e.g. the drain timer ran out
    assert p.conn.done


def test_peer_goaway(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.headers(1)
    p.goaway(1, 0, b"bye")
    assert ConnectionTerminated(0, 1, True, "bye") in p.events
    assert not p.conn.done
    p.conn.send_headers(1, [(b":status", b"200")], end_stream=True)
    assert p.conn.done


def test_goaway_with_error_closes(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.conn.goaway(ENHANCE_YOUR_CALM, reason="bye")
    assert p.conn.closed and p.conn.done
    p.send(b"")
    assert p.goaway_code() == ENHANCE_YOUR_CALM


# --------------------------------------------------------------------------
# client role specifics

def client_pair():
    cli = H2Connection(client=True)
    srv = h2_conn(False)
    srv.receive_data(cli.data_to_send())
    return cli, srv


def test_client_preface_and_settings():
    cli = H2Connection(client=True)
    out = cli.data_to_send()
    assert out.startswith(PREFACE)
    settings = parse_frames(out[len(PREFACE):])[0]
    assert isinstance(settings, SettingsFrame) and settings.settings[2] == 0


def test_client_refuses_push_and_bad_first_frame():
    cli, srv = client_pair()
    sid = cli.send_request(common_headers())
    cli.receive_data(srv.data_to_send())
    f = PushPromiseFrame(sid, promised_stream_id=2, flags=["END_HEADERS"])
    f.data = hpack.Encoder().encode(common_headers())
    evs = cli.receive_data(f.serialize())
    assert evs[-1].error_code == PROTOCOL_ERROR and cli.closed
    cli = H2Connection(client=True)
    evs = cli.receive_data(DataFrame(1, data=b"x").serialize())
    assert evs[-1].error_code == PROTOCOL_ERROR
    cli = H2Connection(client=True)
    evs = cli.receive_data(SettingsFrame(0, settings={2: 1}).serialize())
    assert evs[-1].error_code == PROTOCOL_ERROR


def test_client_goaway_refuses_streams_above_last():
    cli, srv = client_pair()
    a = cli.send_request(common_headers(), end_stream=True)
    b = cli.send_request(common_headers(), end_stream=True)
    srv.receive_data(cli.data_to_send())
    srv.close_connection(last_stream_id=a)
    evs = cli.receive_data(srv.data_to_send())
    assert StreamReset(b, REFUSED_STREAM, True, "GOAWAY") in evs
    assert any(type(e) is ConnectionTerminated and e.remote for e in evs)
    assert not cli.can_open_stream()
    with pytest.raises(ValueError):
        cli.send_request(common_headers())


def test_client_respects_peer_max_concurrent_streams():
    cli, srv = client_pair()
    srv.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    cli.receive_data(srv.data_to_send())
    assert cli.peer_max_concurrent == 1
    a = cli.send_request(common_headers(), end_stream=True)
    assert not cli.can_open_stream()
    srv.receive_data(cli.data_to_send())
    srv.send_headers(a, [(b":status", b"204")], end_stream=True)
    cli.receive_data(srv.data_to_send())
    assert cli.can_open_stream()


def test_client_response_checks():
    cli, srv = client_pair()
    cli.receive_data(srv.data_to_send())
    sid = cli.send_request(common_headers(method=b"HEAD"), end_stream=True)
    srv.receive_data(cli.data_to_send())
    srv.send_headers(sid, [(b":status", b"200"), (b"content-length", b"1000")], end_stream=True)
    evs = cli.receive_data(srv.data_to_send())
    r = [e for e in evs if type(e) is ResponseReceived][0]
    assert r.status == 200 and r.end_stream and r.content_length == 1000
    assert not cli.streams
    # a malformed response resets the stream
    sid = cli.send_request(common_headers(), end_stream=True)
    srv.receive_data(cli.data_to_send())
    blob = HeadersFrame(sid, data=hpack.Encoder().encode(
        [(b":status", b"200"), (b"Upper", b"x")]), flags=["END_HEADERS"]).serialize()
    evs = cli.receive_data(blob)
    assert type(evs[-1]) is StreamReset and evs[-1].error_code == PROTOCOL_ERROR
    assert parse_frames(cli.data_to_send())[-1].error_code == PROTOCOL_ERROR


def test_ping_round_trip_and_acks(split):
    p = Peer(split=split, app=False)
    p.handshake()
    p.conn.ping(b"abcdefgh")
    p.send(b"")
    p.ping(b"abcdefgh", ack=True)
    assert PingAckReceived(b"abcdefgh") in p.events
    assert SettingsAcked() in p.events


def test_client_stream_refused_or_reset_by_the_server():
    """What workers/h2server.py relies on: a stream the server refused
    (REFUSED_STREAM: not processed, safe to send again) and one it reset
    mid-response come out as remote StreamResets with their codes; the
    connection goes on."""
    cli, srv = client_pair()
    cli.receive_data(srv.data_to_send())
    a = cli.send_request(common_headers(), end_stream=True)
    b = cli.send_request(common_headers(method=b"POST"), end_stream=False)
    cli.send_data(b, b"body", end_stream=False)
    srv.receive_data(cli.data_to_send())
    srv.reset_stream(a, h2.errors.ErrorCodes.REFUSED_STREAM)
    srv.send_headers(b, [(b":status", b"200")])
    srv.send_data(b, b"partial")
    srv.reset_stream(b, h2.errors.ErrorCodes.INTERNAL_ERROR)
    evs = cli.receive_data(srv.data_to_send())
    assert StreamReset(a, REFUSED_STREAM, True) in evs
    assert [type(e) for e in evs if getattr(e, "stream_id", None) == b] == [
        ResponseReceived, DataReceived, StreamReset]
    assert evs[-1].error_code == 2 and evs[-1].remote
    assert not cli.streams and cli.can_open_stream() and not cli.closed
    # sending on the reset stream does nothing (the caller then drops it)
    assert cli.send_data(b, b"more") == 0
    c = cli.send_request(common_headers(), end_stream=True)
    srv.receive_data(cli.data_to_send())
    srv.send_headers(c, [(b":status", b"204")], end_stream=True)
    evs = cli.receive_data(srv.data_to_send())
    assert [e.status for e in evs if type(e) is ResponseReceived] == [204]
