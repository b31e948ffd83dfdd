"""Test helpers for workers/h2: a peer that speaks crafted frames to our
H2Connection (frames built with hyperframe, header blocks with hpack: the
python-hyper packages serve as independent oracles, never as the code under
test), and a tiny application that answers requests the way the connection
layer will (flow control respected, consumed data acknowledged).

Every input can be fed whole or byte by byte (``split=True``): the events
and the frames sent back must not depend on it.
"""

import hpack
from hyperframe.frame import (
    ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame, PriorityFrame,
    PushPromiseFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame,
)

from workers.h2.conn import H2Config, H2Connection
from workers.h2.events import (
    ConnectionTerminated, DataReceived, RemoteSettingsChanged, RequestReceived, TrailersReceived,
    WindowUpdated,
)
from workers.h2.frames import PREFACE

BODY = b"hello, world"          # what the test application answers


def parse_frames(data: bytes) -> list:
    """Every frame in data (hyperframe objects), in order."""
    frames = []
    mv = memoryview(data)
    pos = 0
    while pos < len(data):
        f, length = Frame.parse_frame_header(mv[pos:pos + 9])
        f.parse_body(mv[pos + 9:pos + 9 + length])
        frames.append(f)
        pos += 9 + length
    return frames


def _on_stream(frame_cls, sid, **kw):
    """A hyperframe frame for stream sid; hyperframe refuses stream 0 for the
    stream-bound types, so such a frame is made on stream 1 and patched
    (see _sid())."""
    return frame_cls(sid or 1, **kw)


def _sid(data: bytes, sid: int) -> bytes:
    """A serialized frame with its stream id set to sid."""
    return data[:5] + sid.to_bytes(4, "big") + data[9:]


def common_headers(method=b"GET", path=b"/", authority=b"example.com", scheme=b"https"):
    return [(b":method", method), (b":scheme", scheme), (b":path", path),
            (b":authority", authority)]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


class Peer:
    """A client (by default) that sends crafted bytes to our server
    connection and records what comes back."""

    def __init__(self, config=None, split=False, clock=None, app=True, client=False):
        kw = {"config": config or H2Config()}
        if clock is not None:
            kw["clock"] = clock
        self.conn = H2Connection(client=client, **kw)
        self.split = split
        self.app = app                  # answer requests like a server application
        self.enc = hpack.Encoder()
        self.events = []
        self.frames = parse_frames(self.conn.data_to_send())
        self.pending = {}               # stream id -> response body not sent yet
        self.requests = {}              # stream id -> RequestReceived

    # -- sending to our connection

    def send(self, data: bytes) -> list:
        """Feed data to the connection (whole, or byte by byte); returns the
        new events and records the frames the connection sends back."""
        if self.split:
            new = []
            for i in range(len(data)):
                new += self.conn.receive_data(data[i:i + 1])
        else:
            new = self.conn.receive_data(data)
        self.events += new
        if self.app:
            self._serve(new)
        self.frames += parse_frames(self.conn.data_to_send())
        return new

    def handshake(self, settings=None):
        f = SettingsFrame(0)
        if settings:
            f.settings = dict(settings)
        self.send(PREFACE + f.serialize())
        self.send(SettingsFrame(0, flags=["ACK"]).serialize())

    def block(self, fields):
        return self.enc.encode(fields)

    def headers(self, sid, fields=None, end_stream=True, end_headers=True, raw_block=None,
                padded=None, priority=None):
        f = _on_stream(HeadersFrame, sid)
        f.data = raw_block if raw_block is not None else self.block(
            common_headers() if fields is None else fields)
        if end_stream:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        if padded is not None:
            f.flags.add("PADDED")
            f.pad_length = padded
        if priority is not None:
            f.flags.add("PRIORITY")
            f.depends_on, f.stream_weight, f.exclusive = priority
        return self.send(_sid(f.serialize(), sid))

    def headers_split(self, sid, fields, end_stream=True, size=16384):
        """A header block too large for one frame: HEADERS + CONTINUATION."""
        block = self.block(fields)
        rest = block[size:]
        self.headers(sid, raw_block=block[:size], end_stream=end_stream, end_headers=not rest)
        while rest:
            self.continuation(sid, raw_block=rest[:size], end_headers=len(rest) <= size)
            rest = rest[size:]

    def continuation(self, sid, fields=None, end_headers=True, raw_block=None):
        f = _on_stream(ContinuationFrame, sid)
        f.data = raw_block if raw_block is not None else self.block(fields)
        if end_headers:
            f.flags.add("END_HEADERS")
        return self.send(_sid(f.serialize(), sid))

    def data(self, sid, data, end_stream=True, padded=None):
        f = _on_stream(DataFrame, sid)
        f.data = data
        if end_stream:
            f.flags.add("END_STREAM")
        if padded is not None:
            f.flags.add("PADDED")
            f.pad_length = padded
        return self.send(_sid(f.serialize(), sid))

    def settings(self, settings=None, ack=False):
        f = SettingsFrame(0, flags=["ACK"] if ack else [])
        if settings:
            f.settings = dict(settings)
        return self.send(f.serialize())

    def ping(self, data=b"\0" * 8, ack=False):
        f = PingFrame(0, flags=["ACK"] if ack else [])
        f.opaque_data = data
        return self.send(f.serialize())

    def rst(self, sid, code=8):
        return self.send(_sid(_on_stream(RstStreamFrame, sid, error_code=code).serialize(), sid))

    def window_update(self, sid, inc):
        return self.send(WindowUpdateFrame(sid, window_increment=inc).serialize())

    def priority(self, sid, depends_on=0, weight=16, exclusive=False):
        return self.send(_sid(_on_stream(PriorityFrame, sid, depends_on=depends_on,
                                         stream_weight=weight, exclusive=exclusive).serialize(),
                              sid))

    def goaway(self, last=0, code=0, debug=b""):
        return self.send(GoAwayFrame(0, last_stream_id=last, error_code=code,
                                     additional_data=debug).serialize())

    def push_promise(self, sid, promised, fields=None):
        f = PushPromiseFrame(sid, promised_stream_id=promised, flags=["END_HEADERS"])
        f.data = self.block(fields or common_headers())
        return self.send(f.serialize())

    # -- the application

    def _serve(self, events):
        conn = self.conn
        for ev in events:
            t = type(ev)
            if t is RequestReceived:
                self.requests[ev.stream_id] = ev
                if ev.end_stream:
                    self._respond(ev.stream_id)
            elif t is DataReceived:
                conn.acknowledge_received_data(ev.stream_id, ev.flow_controlled_length)
                if ev.end_stream:
                    self._respond(ev.stream_id)
            elif t is TrailersReceived:
                self._respond(ev.stream_id)
            elif t is WindowUpdated or t is RemoteSettingsChanged:
                for sid in list(self.pending):
                    self._push(sid)

    def _respond(self, sid):
        if self.conn.send_headers(sid, [(b":status", b"200"),
                                        (b"content-length", b"%d" % len(BODY))]):
            self.pending[sid] = BODY
            self._push(sid)

    def _push(self, sid):
        body = self.pending[sid]
        sent = self.conn.send_data(sid, body, end_stream=True)
        if sent == len(body) or sid not in self.conn.streams:
            del self.pending[sid]
        else:
            self.pending[sid] = body[sent:]

    # -- what came back

    def of_type(self, cls):
        return [f for f in self.frames if isinstance(f, cls)]

    def goaway_code(self):
        """The error code of the GOAWAY we got, or None."""
        g = self.of_type(GoAwayFrame)
        return g[-1].error_code if g else None

    def rst_codes(self, sid):
        return [f.error_code for f in self.of_type(RstStreamFrame) if f.stream_id == sid]

    def terminated(self):
        return [e for e in self.events if type(e) is ConnectionTerminated]

    def responses(self, sid):
        return [f for f in self.of_type(HeadersFrame) if f.stream_id == sid]

    def data_frames(self, sid):
        return [f for f in self.of_type(DataFrame) if f.stream_id == sid]

    def connection_error(self, *codes):
        """Like h2spec's VerifyConnectionError: a GOAWAY with one of codes
        (we always send one), and the connection is closed."""
        return self.conn.closed and self.goaway_code() in codes

    def stream_error(self, sid, *codes):
        """Like h2spec's VerifyStreamError: RST_STREAM on sid with one of
        codes, or a connection error with one of them."""
        return any(c in codes for c in self.rst_codes(sid)) or self.connection_error(*codes)
