"""Sans-IO HTTP/2 connection (RFC 9113): bytes in, events out, frames to
send; never a socket, never a timer.

Usage, server role (the client side of the proxy)::

    c = H2Connection()                      # queues our SETTINGS
    send(c.data_to_send())
    for ev in c.receive_data(recv()):       # the client's bytes, any split
        if type(ev) is RequestReceived: ...   # messages.to_request(ev)
        elif type(ev) is DataReceived: ...    # later: c.acknowledge_received_data(sid, n)
        ...
    c.send_headers(sid, fields)             # messages.response_fields(resp)
    sent = c.send_data(sid, body, end_stream=True)   # may send less: flow control
    send(c.data_to_send())

The client role (``H2Connection(client=True)``, for HTTP/2 servers)
queues the connection preface, opens streams with ``send_request()`` and
gets ``ResponseReceived`` (1xx first when any), ``DataReceived`` and
``TrailersReceived``.

Events (workers/h2/events.py) come out of ``receive_data()`` in wire
order. Protocol errors never raise out of it: a stream error resets the
stream (RST_STREAM queued, ``StreamReset`` with ``remote`` False); a
connection error queues GOAWAY, returns ``ConnectionTerminated`` and the
connection is dead (later calls do nothing): flush ``data_to_send()`` and
close. ``done`` tells when the connection can be closed after a graceful
GOAWAY (sent or received) once its last stream ended; a GOAWAY received
with an error code means the peer is closing: end everything. Times come
from ``clock`` (default time.monotonic; the connection layer can pass its
loop's clock); they only serve the flood budgets and ``stalled_since``.

Flow control. Sending: ``send_data()`` sends what the peer's windows
allow now (``max_send(sid)`` tells how much) and returns the number of
bytes taken; the caller keeps the rest and retries on ``WindowUpdated``
or ``RemoteSettingsChanged``. The connection never buffers payload beyond
the frames it returns from ``data_to_send()``. While some data could not
be sent, ``stalled_since`` holds the clock time it started waiting (None
otherwise): the connection layer applies its timeout to it (a peer that
never opens its window). Receiving: our windows close as DATA arrives and
reopen only when the caller says it consumed the bytes
(``acknowledge_received_data()``): WINDOW_UPDATE goes out once half a
window was consumed. That is the backpressure from the server side to
the client.

Streams. A request opens a stream; it ends when both sides sent
END_STREAM, or on a reset. A server that answers before the request body
is over (an error, a 413) ends its side, then ``reset_stream(sid,
NO_ERROR)`` tells the client to stop sending (RFC 9113 section 8.1). After the graceful ``goaway()`` (or
``start_graceful_shutdown()``, which first announces 2**31-1 and sends
the real last stream id after a PING round trip, so requests already in
flight are not lost), new streams above the last id are ignored (the
client retries them elsewhere) and the others finish.

Errors and limits (``H2Config``; each has a unit test):

* invalid preface: connection closed without GOAWAY (the peer does not
  speak HTTP/2); first frame not SETTINGS: PROTOCOL_ERROR.
* frame larger than our SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR
  (connection), refused from its header, before its payload is buffered.
* frames on idle streams (not opened yet): PROTOCOL_ERROR (connection);
  on half-closed (remote) streams: STREAM_CLOSED (stream); on closed
  streams: after our RST_STREAM ignored (DATA still counted in the
  connection window), after the peer's RST_STREAM STREAM_CLOSED (stream),
  after END_STREAM both ways STREAM_CLOSED (connection); a HEADERS that
  reuses an older stream id (or skips back) is PROTOCOL_ERROR. Closed
  streams are remembered up to ``4 * max_concurrent_streams`` entries.
* ``max_concurrent_streams`` (default 100): a request above it is refused
  with REFUSED_STREAM (the client may retry it).
* header blocks: at most ``max_header_block`` encoded bytes and
  ``max_header_frames`` frames (HEADERS + CONTINUATION) without
  END_HEADERS (the CONTINUATION flood): ENHANCE_YOUR_CALM (connection).
  A decoded list over ``max_header_list_size`` bytes or ``max_header_fields``
  fields: the request is answered 431 on its stream (HPACK bombs: see
  workers/h2/hpack.py).
* rapid reset (CVE-2023-44487): streams reset by the client before their
  response started, plus streams we reset for the client's errors, are
  counted; more than ``rapid_reset_budget`` within ``flood_window``
  seconds: ENHANCE_YOUR_CALM (connection).
* PING and SETTINGS floods: more than ``ping_budget`` PINGs or
  ``settings_budget`` SETTINGS within ``flood_window`` seconds, or more
  than ``max_pending_control`` answers (PING and SETTINGS ACKs,
  RST_STREAMs) queued and not yet taken by ``data_to_send()`` (a peer that
  does not read): ENHANCE_YOUR_CALM. Empty DATA frames without END_STREAM
  (CVE-2019-9518) have their own ``empty_frame_budget``.
* WINDOW_UPDATE above 2**31-1: FLOW_CONTROL_ERROR (stream or
  connection); increment 0: PROTOCOL_ERROR (idem); DATA over our window:
  FLOW_CONTROL_ERROR (idem).
* PUSH_PROMISE: PROTOCOL_ERROR (a client cannot push; as a client we
  disable push).
* PRIORITY frames are accepted and ignored (as HAProxy does), a stream
  depending on itself aside (PROTOCOL_ERROR on that stream).
* malformed messages (workers/h2/messages.py), trailers without
  END_STREAM, content-length not matching the DATA: PROTOCOL_ERROR on the
  stream.
"""

import time
from workers.h2.errors import (
    CANCEL, ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, NO_ERROR,
    PROTOCOL_ERROR, REFUSED_STREAM, STREAM_CLOSED, H2ConnectionError, H2StreamError,
    HeaderListTooLarge, MalformedMessage,
)
from workers.h2.events import (
    ConnectionTerminated, DataReceived, KnownHead, PingAckReceived, PingReceived, RemoteSettingsChanged,
    RequestReceived, ResponseReceived, SettingsAcked, StreamReset, TrailersReceived,
    WindowUpdated,
)
from workers.h2.frames import (
    CONTINUATION, DATA, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, FLAG_ACK, FLAG_END_HEADERS,
    FLAG_END_STREAM, GOAWAY, HEADERS, MAX_WINDOW, PING, PREFACE, PRIORITY, PUSH_PROMISE,
    RST_STREAM, SETTINGS, SETTINGS_ACK, SETTINGS_ENABLE_PUSH, SETTINGS_HEADER_TABLE_SIZE,
    SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_MAX_FRAME_SIZE,
    SETTINGS_MAX_HEADER_LIST_SIZE, WINDOW_UPDATE, frame_header, goaway_frame, headers_frames,
    parse_continuation, parse_data, parse_goaway, parse_headers, parse_ping, parse_priority,
    parse_push_promise, parse_rst_stream, parse_settings, parse_window_update, ping_frame,
    rst_stream_frame, settings_frame, window_update_frame,
)
from workers.h2.hpack import DEFAULT_TABLE_SIZE, Decoder, Encoder
from workers.h2.messages import check_request, check_response, check_trailers

__all__ = ["H2Config", "H2Connection"]

_PREFACE_LEN = len(PREFACE)
_MAX_STREAM_ID = 0x7FFFFFFF
_SHUTDOWN_PING = b"farm-gw\x00"
_HEAD_MEMO_MAX = 16         # request blocks remembered per connection (emptied when full)
_HEAD_MEMO_LEN = 512        # longer blocks are not remembered

# connection states
_S_PREFACE = 0      # server: waiting for the client's preface
_S_SETTINGS = 1     # waiting for the peer's first frame (SETTINGS)
_S_OPEN = 2
_S_CLOSED = 3

# how a closed stream ended (what to do with frames that still arrive)
_C_END = 1          # END_STREAM both ways
_C_PEER_RST = 2     # the peer reset it
_C_LOCAL_RST = 3    # we reset it (or ignored it): later frames are dropped

# flood counters
_F_RESET = 0
_F_PING = 1
_F_SETTINGS = 2
_F_EMPTY = 3


class H2Config:
    """Limits and settings of a connection (see the module docstring);
    one instance can be shared by every connection of a frontend."""

    __slots__ = ("max_concurrent_streams", "initial_window_size", "connection_window",
                 "max_frame_size", "header_table_size", "encoder_table_size",
                 "max_header_list_size", "max_header_fields", "max_header_block",
                 "max_header_frames", "rapid_reset_budget", "ping_budget", "settings_budget",
                 "empty_frame_budget", "flood_window", "max_pending_control",
                 "max_closed_streams")

    def __init__(self, max_concurrent_streams: int = 100, initial_window_size: int = DEFAULT_WINDOW,
                 connection_window: int = 1 << 20, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 header_table_size: int = DEFAULT_TABLE_SIZE,
                 encoder_table_size: int = DEFAULT_TABLE_SIZE,
                 max_header_list_size: int = 65536, max_header_fields: int = 100,
                 max_header_block=None, max_header_frames: int = 16,
                 rapid_reset_budget: int = 100, ping_budget: int = 100,
                 settings_budget: int = 100, empty_frame_budget: int = 100,
                 flood_window: float = 10.0, max_pending_control: int = 100,
                 max_closed_streams=None):
        self.max_concurrent_streams = max_concurrent_streams
        self.initial_window_size = initial_window_size      # our streams' receive window
        self.connection_window = max(connection_window, DEFAULT_WINDOW)
        self.max_frame_size = max_frame_size
        self.header_table_size = header_table_size          # our decoder's table (advertised)
        self.encoder_table_size = encoder_table_size        # our encoder's table (our cap)
        self.max_header_list_size = max_header_list_size
        self.max_header_fields = max_header_fields
        self.max_header_block = max_header_block or max_header_list_size
        self.max_header_frames = max_header_frames
        self.rapid_reset_budget = rapid_reset_budget
        self.ping_budget = ping_budget
        self.settings_budget = settings_budget
        self.empty_frame_budget = empty_frame_budget
        self.flood_window = flood_window
        self.max_pending_control = max_pending_control
        self.max_closed_streams = max_closed_streams or max(4 * max_concurrent_streams, 64)


_DEFAULT_CONFIG = H2Config()


class _Stream:
    """One open stream. recv_open / send_open: the peer's / our side has
    not ended yet."""

    __slots__ = ("id", "recv_open", "send_open", "send_window", "recv_window", "unacked",
                 "content_length", "received", "responded", "final", "method")

    def __init__(self, sid, send_window, recv_window):
        self.id = sid
        self.recv_open = True
        self.send_open = True
        self.send_window = send_window
        self.recv_window = recv_window
        self.unacked = 0              # bytes consumed and not yet given back
        self.content_length = -1      # expected body length (-1: unknown)
        self.received = 0             # body bytes received
        self.responded = False        # server role: final response head sent
        self.final = False            # client role: final response head received
        self.method = None            # client role: the request's method


class H2Connection:
    """One HTTP/2 connection, server role by default (see the module
    docstring)."""

    __slots__ = ("config", "client", "_clock", "_state", "_pre", "_parts", "_plen", "_need",
                 "_out", "_events", "streams", "_closed", "_closed_order", "_closed_head",
                 "_highest_remote", "_next_local",
                 "_decoder", "_encoder", "peer_max_frame", "peer_initial_window",
                 "peer_max_concurrent", "peer_max_header_list", "_send_window",
                 "_recv_window", "_recv_unacked", "_recv_initial", "_settings_unacked",
                 "_cont_sid", "_cont_flags", "_cont_frags", "_cont_len", "_cont_dep",
                 "_goaway_sent", "_goaway_last", "_goaway_received", "_shutdown",
                 "_flood_t0", "_flood", "_pending_control", "stalled_since",
                 "peer_goaway_last", "_seen", "_heads")

    def __init__(self, client: bool = False, config=None, clock=time.monotonic):
        cfg = self.config = config or _DEFAULT_CONFIG
        self.client = client
        self._clock = clock
        self._state = _S_SETTINGS if client else _S_PREFACE
        self._pre = 0
        self._parts = []                    # a partial frame, in pieces
        self._plen = 0
        self._need = 0                      # bytes needed before parsing again
        self._out = []
        self._events = []
        self.streams = {}                   # id -> _Stream, open streams only
        self._closed = {}                   # id -> _C_*, recently closed
        self._closed_order = []             # their ids, oldest first from _closed_head
        self._closed_head = 0
        self._highest_remote = 0            # highest stream id opened by the peer
        self._next_local = 1 if client else 2
        # until our SETTINGS are acknowledged the peer may use the defaults
        self._decoder = Decoder(DEFAULT_TABLE_SIZE, cfg.max_header_list_size,
                                cfg.max_header_fields)
        self._encoder = Encoder(cfg.encoder_table_size)
        self.peer_max_frame = DEFAULT_MAX_FRAME_SIZE
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_concurrent = _MAX_STREAM_ID
        self.peer_max_header_list = None
        self._send_window = DEFAULT_WINDOW
        self._recv_window = cfg.connection_window
        self._recv_unacked = 0
        self._recv_initial = DEFAULT_WINDOW
        self._settings_unacked = 1
        self._cont_sid = 0                  # stream of a header block in progress
        self._cont_flags = 0
        self._cont_frags = None
        self._cont_len = 0
        self._cont_dep = -1
        self._goaway_sent = False
        self._goaway_last = _MAX_STREAM_ID
        self._goaway_received = False
        self.peer_goaway_last = _MAX_STREAM_ID
        self._shutdown = 0                  # 1: waiting for the PING of a graceful shutdown
        self._flood_t0 = -1e18
        self._flood = [0, 0, 0, 0]
        self._pending_control = 0
        self.stalled_since = None
        self._seen = set()                  # fields already found valid (check_request)
        self._heads = {}                    # request blocks decoded and checked (_header_block)
        out = self._out
        if client:
            out.append(PREFACE)
        settings = [(SETTINGS_MAX_CONCURRENT_STREAMS, cfg.max_concurrent_streams)]
        if client:
            settings.append((SETTINGS_ENABLE_PUSH, 0))
        if cfg.header_table_size != DEFAULT_TABLE_SIZE:
            settings.append((SETTINGS_HEADER_TABLE_SIZE, cfg.header_table_size))
        if cfg.initial_window_size != DEFAULT_WINDOW:
            settings.append((SETTINGS_INITIAL_WINDOW_SIZE, cfg.initial_window_size))
        if cfg.max_frame_size != DEFAULT_MAX_FRAME_SIZE:
            settings.append((SETTINGS_MAX_FRAME_SIZE, cfg.max_frame_size))
        settings.append((SETTINGS_MAX_HEADER_LIST_SIZE, cfg.max_header_list_size))
        out.append(settings_frame(settings))
        if cfg.connection_window > DEFAULT_WINDOW:
            out.append(window_update_frame(0, cfg.connection_window - DEFAULT_WINDOW))

    # ------------------------------------------------------------ output

    def data_to_send(self) -> bytes:
        """Every frame queued since the last call (b"" if none)."""
        out = self._out
        if not out:
            return b""
        data = b"".join(out)
        out.clear()
        self._pending_control = 0
        return data

    # ------------------------------------------------------------- state

    @property
    def closed(self) -> bool:
        """A connection error happened, or goaway() with an error was sent:
        nothing more will be read or sent."""
        return self._state == _S_CLOSED

    @property
    def done(self) -> bool:
        """The connection can be closed: it is closed, or a GOAWAY went
        either way (a graceful one completed) and no stream is left."""
        if self._state == _S_CLOSED:
            return True
        return ((self._goaway_sent and self._shutdown != 1) or self._goaway_received) \
            and not self.streams

    @property
    def open_streams(self) -> int:
        return len(self.streams)

    @property
    def settings_acked(self) -> bool:
        """The peer acknowledged our SETTINGS (a connection layer may give
        it a few seconds, then goaway(SETTINGS_TIMEOUT))."""
        return not self._settings_unacked

    def can_open_stream(self) -> bool:
        """Client role: whether send_request() may open a stream now (no
        GOAWAY either way, under the peer's MAX_CONCURRENT_STREAMS)."""
        return (self._state != _S_CLOSED and not self._goaway_received
                and not self._goaway_sent and len(self.streams) < self.peer_max_concurrent
                and self._next_local <= _MAX_STREAM_ID)

    def max_send(self, stream_id: int) -> int:
        """How many DATA bytes stream_id may send now (both windows)."""
        st = self.streams.get(stream_id)
        if st is None or not st.send_open:
            return 0
        room = min(st.send_window, self._send_window)
        return room if room > 0 else 0

    # ------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> list:
        """Process bytes from the peer (any split); returns the events."""
        events = self._events = []
        if self._state == _S_CLOSED or not data:
            return events
        parts = self._parts
        if parts:
            parts.append(data)
            self._plen += len(data)
            if self._plen < self._need:
                return events
            data = b"".join(parts)
            parts.clear()
            self._plen = 0
        try:
            pos = 0
            if self._state == _S_PREFACE:
                pos = self._preface(data)
                if pos < 0:
                    return events
            self._frames(data, pos)
        except H2ConnectionError as e:
            self._terminate(e.code, e.reason)
        return events

    def _preface(self, data):
        k = self._pre
        chunk = data[:_PREFACE_LEN - k]
        if chunk != PREFACE[k:k + len(chunk)]:
            # not HTTP/2: no GOAWAY, just the end
            self._terminate(PROTOCOL_ERROR, "invalid connection preface", False)
            return -1
        k += len(chunk)
        self._pre = k
        if k < _PREFACE_LEN:
            return -1
        self._state = _S_SETTINGS
        return len(chunk)

    def _frames(self, data, pos):
        n = len(data)
        maxf = self.config.max_frame_size
        p = data            # compiled: a pointer to the bytes (a slice is one copy)
        while n - pos >= 9:
            # the 9-byte header read byte by byte: C array reads once
            # compiled, where struct's unpack is a call and a tuple
            length = (p[pos] << 16) | (p[pos + 1] << 8) | p[pos + 2]
            ftype = p[pos + 3]
            flags = p[pos + 4]
            sid = (((p[pos + 5] & 0x7F) << 24) | (p[pos + 6] << 16)
                   | (p[pos + 7] << 8) | p[pos + 8])
            if length > maxf:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "frame of %d bytes" % length)
            end = pos + 9 + length
            if end > n:
                break
            payload = p[pos + 9:end]
            pos = end
            if self._cont_sid and ftype != CONTINUATION:
                raise H2ConnectionError(PROTOCOL_ERROR, "frame inside a header block")
            if self._state != _S_OPEN:
                if ftype != SETTINGS or flags & FLAG_ACK:
                    raise H2ConnectionError(PROTOCOL_ERROR, "first frame is not SETTINGS")
                self._state = _S_OPEN
            try:
                if ftype == DATA:
                    self._on_data(sid, flags, payload)
                elif ftype == HEADERS:
                    self._on_headers(sid, flags, payload)
                elif ftype == WINDOW_UPDATE:
                    self._on_window_update(sid, payload)
                elif ftype == SETTINGS:
                    self._on_settings(sid, flags, payload)
                elif ftype == RST_STREAM:
                    self._on_rst_stream(sid, payload)
                elif ftype == PING:
                    self._on_ping(sid, flags, payload)
                elif ftype == PRIORITY:
                    parse_priority(sid, payload)        # checked, then ignored
                elif ftype == CONTINUATION:
                    self._on_continuation(sid, flags, payload)
                elif ftype == GOAWAY:
                    self._on_goaway(sid, payload)
                elif ftype == PUSH_PROMISE:
                    parse_push_promise(sid, flags, payload)
                    raise H2ConnectionError(PROTOCOL_ERROR, "PUSH_PROMISE (push is disabled)")
                # unknown frame types are ignored (section 5.5)
            except H2StreamError as e:
                self._stream_error(e.stream_id, e.code, e.reason)
            if self._state == _S_CLOSED:
                return
        if pos < n:
            rest = data[pos:] if pos else data
            self._parts.append(rest)
            self._plen = len(rest)
            if len(rest) >= 9:
                self._need = 9 + ((rest[0] << 16) | (rest[1] << 8) | rest[2])
            else:
                self._need = 9

    # --------------------------------------------------------- frame handlers

    def _on_data(self, sid, flags, payload):
        length = len(payload)
        data = parse_data(sid, flags, payload)
        if length > self._recv_window:
            raise H2ConnectionError(FLOW_CONTROL_ERROR, "DATA over the connection window")
        self._recv_window -= length
        st = self.streams.get(sid)
        if st is None or not st.recv_open:
            self._consumed(length)          # nobody will read it: give the window back
            self._inactive(sid, st, "DATA")
            return
        if length > st.recv_window:
            self._consumed(length)
            raise H2StreamError(sid, FLOW_CONTROL_ERROR, "DATA over the stream window")
        st.recv_window -= length
        end = flags & FLAG_END_STREAM
        if not length and not end:
            self._count(_F_EMPTY, self.config.empty_frame_budget, "empty DATA frame")
        if self.client and not st.final:
            self._consumed(length)
            raise H2StreamError(sid, PROTOCOL_ERROR, "DATA before the response head")
        received = st.received + len(data)
        st.received = received
        cl = st.content_length
        if cl >= 0 and (received > cl or (end and received != cl)):
            self._consumed(length)
            raise H2StreamError(sid, PROTOCOL_ERROR,
                                "content-length %d but %d bytes of DATA" % (cl, received))
        if end:
            st.recv_open = False
            self._events.append(DataReceived(sid, data, length, True))
            if not st.send_open:
                self._close_stream(st, _C_END)
        else:
            self._events.append(DataReceived(sid, data, length, False))

    def _on_headers(self, sid, flags, payload):
        block, dep = parse_headers(sid, flags, payload)
        if not flags & FLAG_END_HEADERS:
            if len(block) > self.config.max_header_block:
                raise H2ConnectionError(ENHANCE_YOUR_CALM, "header block too large")
            self._cont_sid = sid
            self._cont_flags = flags
            self._cont_frags = [block]
            self._cont_len = len(block)
            self._cont_dep = dep
            return
        self._header_block(sid, flags, block, dep)

    def _on_continuation(self, sid, flags, payload):
        parse_continuation(sid, payload)
        if sid != self._cont_sid:
            raise H2ConnectionError(PROTOCOL_ERROR, "CONTINUATION without a header block")
        frags = self._cont_frags
        frags.append(payload)
        self._cont_len += len(payload)
        if (self._cont_len > self.config.max_header_block
                or len(frags) > self.config.max_header_frames):
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "CONTINUATION flood")
        if flags & FLAG_END_HEADERS:
            self._cont_sid = 0
            self._cont_frags = None
            self._header_block(sid, self._cont_flags, b"".join(frags), self._cont_dep)

    def _header_block(self, sid, flags, block, dep):
        """A complete header block for stream sid (HEADERS flags)."""
        # decode first, whatever becomes of the stream: the HPACK context
        # must follow every block. A request block seen before, which left
        # the decoder's table as it was then and finds it so now, means the
        # same fields, already checked: remembered (_heads), not decoded.
        decoder = self._decoder
        gen = decoder.generation
        too_large = None
        known = self._heads.get(block) if not self.client else None
        if known is not None and known.gen == gen and not decoder._need_update:
            fields = known.fields[:]        # the event's list is the caller's
        else:
            known = None
            try:
                fields = decoder.decode(block)
            except HeaderListTooLarge as e:
                fields = None
                too_large = e.reason
        end = flags & FLAG_END_STREAM
        st = self.streams.get(sid)
        if st is None:
            if self.client:
                self._closed_or_idle_headers(sid)
                return
            if not sid & 1:
                raise H2ConnectionError(PROTOCOL_ERROR, "HEADERS on even stream %d" % sid)
            if sid <= self._highest_remote:
                self._closed_or_idle_headers(sid)
                return
            if known is not None:
                self._new_request(sid, end, dep, fields, None, known)
            elif too_large is None and decoder.generation == gen and len(block) <= _HEAD_MEMO_LEN:
                checked = self._new_request(sid, end, dep, fields, None, None)
                if checked is not None:
                    heads = self._heads
                    if len(heads) >= _HEAD_MEMO_MAX:
                        heads.clear()
                    heads[block] = KnownHead(gen, fields[:], checked)
            else:
                self._new_request(sid, end, dep, fields, too_large, None)
            return
        if dep == sid:
            raise H2StreamError(sid, PROTOCOL_ERROR, "stream depends on itself")
        if not st.recv_open:
            raise H2StreamError(sid, STREAM_CLOSED, "HEADERS after END_STREAM")
        if too_large is not None:
            raise H2StreamError(sid, PROTOCOL_ERROR, too_large)
        if self.client and not st.final:
            self._response_head(st, end, fields)
            return
        # trailers
        if not end:
            raise H2StreamError(sid, PROTOCOL_ERROR, "trailers without END_STREAM")
        try:
            check_trailers(fields)
        except MalformedMessage as e:
            raise H2StreamError(sid, PROTOCOL_ERROR, e.reason) from None
        cl = st.content_length
        if cl >= 0 and st.received != cl:
            raise H2StreamError(sid, PROTOCOL_ERROR,
                                "content-length %d but %d bytes of DATA" % (cl, st.received))
        st.recv_open = False
        self._events.append(TrailersReceived(sid, fields))
        if not st.send_open:
            self._close_stream(st, _C_END)

    def _new_request(self, sid, end, dep, fields, too_large, known):
        """A request head opens stream sid. ``known``: the KnownHead of the
        same block decoded before (its fields checked then), or None.
        Returns check_request's tuple once checked (None otherwise)."""
        self._highest_remote = sid
        if self._goaway_sent and sid > self._goaway_last:
            self._remember(sid, _C_LOCAL_RST)      # ignored: the client retries elsewhere
            return None
        if dep == sid:
            raise H2StreamError(sid, PROTOCOL_ERROR, "stream depends on itself")
        if len(self.streams) >= self.config.max_concurrent_streams:
            raise H2StreamError(sid, REFUSED_STREAM, "over max_concurrent_streams")
        if too_large is not None:
            self._refuse_431(sid, end, too_large)
            return None
        if known is not None:
            checked = known.checked
        else:
            try:
                checked = check_request(fields, self._seen)
            except MalformedMessage as e:
                raise H2StreamError(sid, PROTOCOL_ERROR, e.reason) from None
        method, scheme, path, authority, host, cl, regular = checked
        if end and cl:
            raise H2StreamError(sid, PROTOCOL_ERROR, "content-length %d without DATA" % cl)
        st = _Stream(sid, self.peer_initial_window, self._recv_initial)
        if end:
            st.recv_open = False
        if cl is not None:
            st.content_length = cl
        self.streams[sid] = st
        self._events.append(RequestReceived(sid, fields, bool(end), method, scheme, path,
                                            authority, host, cl, regular, known))
        return checked

    def _response_head(self, st, end, fields):
        sid = st.id
        try:
            status, cl, regular = check_response(fields)
        except MalformedMessage as e:
            raise H2StreamError(sid, PROTOCOL_ERROR, e.reason) from None
        if status < 200:
            if end:
                raise H2StreamError(sid, PROTOCOL_ERROR, "1xx response with END_STREAM")
            self._events.append(ResponseReceived(sid, fields, False, status, cl, regular))
            return
        st.final = True
        if st.method == b"HEAD" or status == 204 or status == 304:
            st.content_length = 0               # no body, whatever content-length says
        elif cl is not None:
            st.content_length = cl
        if end and st.content_length > 0:
            raise H2StreamError(sid, PROTOCOL_ERROR, "content-length %d without DATA" % cl)
        self._events.append(ResponseReceived(sid, fields, bool(end), status, cl, regular))
        if end:
            st.recv_open = False
            if not st.send_open:
                self._close_stream(st, _C_END)

    def _closed_or_idle_headers(self, sid):
        """HEADERS for a stream that is not open (the block was decoded)."""
        if self.client:
            if not sid & 1:
                raise H2ConnectionError(PROTOCOL_ERROR, "HEADERS on even stream %d" % sid)
            if sid >= self._next_local:
                raise H2ConnectionError(PROTOCOL_ERROR, "HEADERS on idle stream %d" % sid)
        how = self._closed.get(sid)
        if how == _C_LOCAL_RST:
            return
        if how == _C_PEER_RST:
            raise H2StreamError(sid, STREAM_CLOSED, "HEADERS after RST_STREAM")
        if how == _C_END:
            raise H2ConnectionError(STREAM_CLOSED, "HEADERS on closed stream %d" % sid)
        raise H2ConnectionError(PROTOCOL_ERROR, "HEADERS reusing stream id %d" % sid)

    def _inactive(self, sid, st, what):
        """A DATA frame for a stream that is not open for receiving."""
        if st is not None:
            raise H2StreamError(sid, STREAM_CLOSED, "%s after END_STREAM" % what)
        if self._idle(sid):
            raise H2ConnectionError(PROTOCOL_ERROR, "%s on idle stream %d" % (what, sid))
        how = self._closed.get(sid)
        if how == _C_LOCAL_RST:
            return
        if how == _C_END:
            raise H2ConnectionError(STREAM_CLOSED, "%s on closed stream %d" % (what, sid))
        raise H2StreamError(sid, STREAM_CLOSED, "%s on closed stream" % what)

    def _idle(self, sid):
        """Whether sid names a stream that was never opened (section 5.1)."""
        if (sid & 1) == (0 if self.client else 1):
            return sid > self._highest_remote      # the peer's
        return sid >= self._next_local               # ours

    def _on_rst_stream(self, sid, payload):
        code = parse_rst_stream(sid, payload)
        st = self.streams.pop(sid, None)
        if st is None:
            if self._idle(sid):
                raise H2ConnectionError(PROTOCOL_ERROR, "RST_STREAM on idle stream %d" % sid)
            return
        self._remember(sid, _C_PEER_RST)
        self._events.append(StreamReset(sid, code, True))
        if not self.client and not st.responded:
            self._count(_F_RESET, self.config.rapid_reset_budget, "rapid reset")

    def _on_window_update(self, sid, payload):
        inc = parse_window_update(payload)
        if not sid:
            if not inc:
                raise H2ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            window = self._send_window + inc
            if window > MAX_WINDOW:
                raise H2ConnectionError(FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            self._send_window = window
        else:
            st = self.streams.get(sid)
            if st is None:
                if self._idle(sid):
                    raise H2ConnectionError(PROTOCOL_ERROR,
                                            "WINDOW_UPDATE on idle stream %d" % sid)
                return
            if not inc:
                raise H2StreamError(sid, PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            window = st.send_window + inc
            if window > MAX_WINDOW:
                raise H2StreamError(sid, FLOW_CONTROL_ERROR, "stream window above 2^31-1")
            st.send_window = window
        self.stalled_since = None
        self._events.append(WindowUpdated(sid, inc))

    def _on_settings(self, sid, flags, payload):
        pairs = parse_settings(sid, flags, payload)
        if flags & FLAG_ACK:
            if self._settings_unacked:
                self._settings_unacked -= 1
                self._local_settings_acked()
            self._events.append(SettingsAcked())
            return
        self._count(_F_SETTINGS, self.config.settings_budget, "SETTINGS")
        changes = {}
        for ident, value in pairs:
            if ident == SETTINGS_INITIAL_WINDOW_SIZE:
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                if delta:
                    for st in self.streams.values():
                        w = st.send_window + delta
                        if w > MAX_WINDOW:
                            raise H2ConnectionError(FLOW_CONTROL_ERROR,
                                                    "stream window above 2^31-1")
                        st.send_window = w
                    if delta > 0:
                        self.stalled_since = None
            elif ident == SETTINGS_MAX_FRAME_SIZE:
                self.peer_max_frame = value
            elif ident == SETTINGS_HEADER_TABLE_SIZE:
                self._encoder.set_max_table_size(value)
            elif ident == SETTINGS_MAX_CONCURRENT_STREAMS:
                self.peer_max_concurrent = value
            elif ident == SETTINGS_ENABLE_PUSH:
                if value and self.client:
                    raise H2ConnectionError(PROTOCOL_ERROR, "server enabled push")
            elif ident == SETTINGS_MAX_HEADER_LIST_SIZE:
                self.peer_max_header_list = value
            else:
                continue        # unknown settings are ignored
            changes[ident] = value
        self._out.append(SETTINGS_ACK)
        self._control_queued()
        self._events.append(RemoteSettingsChanged(changes))

    def _local_settings_acked(self):
        """Our SETTINGS are in force from now on."""
        cfg = self.config
        delta = cfg.initial_window_size - self._recv_initial
        if delta:
            self._recv_initial = cfg.initial_window_size
            for st in self.streams.values():
                st.recv_window += delta
        if cfg.header_table_size != self._decoder.max_allowed:
            self._decoder.set_max_allowed(cfg.header_table_size)

    def _on_ping(self, sid, flags, payload):
        data = parse_ping(sid, payload)
        if flags & FLAG_ACK:
            if self._shutdown == 1 and data == _SHUTDOWN_PING:
                self.goaway()
            self._events.append(PingAckReceived(data))
            return
        self._count(_F_PING, self.config.ping_budget, "PING")
        self._out.append(frame_header(8, PING, FLAG_ACK, 0) + data)
        self._control_queued()
        self._events.append(PingReceived(data))

    def _on_goaway(self, sid, payload):
        last, code, debug = parse_goaway(sid, payload)
        self._goaway_received = True
        self.peer_goaway_last = last
        events = self._events
        if self.client:
            # our streams above last were not processed: safe to retry
            for st in [s for s in self.streams.values() if s.id > last]:
                del self.streams[st.id]
                self._remember(st.id, _C_PEER_RST)
                events.append(StreamReset(st.id, REFUSED_STREAM, True, "GOAWAY"))
        reason = debug[:256].decode("latin-1")
        events.append(ConnectionTerminated(code, last, True, reason))

    # ----------------------------------------------------------- bookkeeping

    def _count(self, kind, budget, what):
        """One more event of a kind that floods are made of; over budget
        within flood_window seconds: ENHANCE_YOUR_CALM."""
        now = self._clock()
        counts = self._flood
        if now - self._flood_t0 >= self.config.flood_window:
            self._flood_t0 = now
            counts[0] = counts[1] = counts[2] = counts[3] = 0
        counts[kind] += 1
        if counts[kind] > budget:
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "%s flood" % what)

    def _control_queued(self):
        self._pending_control += 1
        if self._pending_control > self.config.max_pending_control:
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "control frames not read by the peer")

    def _remember(self, sid, how):
        """Remember how stream sid closed; past max_closed_streams the
        oldest is forgotten (first remembered, first forgotten: a FIFO of
        ids beside the dict, whose entries are only removed here)."""
        closed = self._closed
        if sid in closed:
            closed[sid] = how
            return
        closed[sid] = how
        order = self._closed_order
        order.append(sid)
        if len(closed) > self.config.max_closed_streams:
            head = self._closed_head
            del closed[order[head]]
            head += 1
            if head >= 64 and head * 2 >= len(order):
                del order[:head]
                head = 0
            self._closed_head = head

    def _close_stream(self, st, how):
        del self.streams[st.id]
        self._remember(st.id, how)

    def _stream_error(self, sid, code, reason):
        """Reset stream sid for an error of the peer's."""
        st = self.streams.pop(sid, None)
        known = self._closed.get(sid)
        self._out.append(rst_stream_frame(sid, code))
        if known is None:
            self._remember(sid, _C_LOCAL_RST)
        if st is not None or known is None:
            self._events.append(StreamReset(sid, code, False, reason))
            if not self.client:
                self._count(_F_RESET, self.config.rapid_reset_budget, "stream error")
        self._control_queued()

    def _refuse_431(self, sid, end, reason):
        """Answer 431 to a request whose header list is over our limits."""
        block = self._encoder.encode(((b":status", b"431"), (b"content-length", b"0")))
        self._out.append(headers_frames(sid, block, True, self.peer_max_frame))
        if not end:
            self._out.append(rst_stream_frame(sid, NO_ERROR))
        self._remember(sid, _C_LOCAL_RST)
        self._events.append(StreamReset(sid, NO_ERROR, False, "431 sent: " + reason))
        self._count(_F_RESET, self.config.rapid_reset_budget, "stream error")

    def _consumed(self, n):
        """n bytes of the connection window were consumed (read by the
        caller, or dropped): send WINDOW_UPDATE once half the window is."""
        unacked = self._recv_unacked + n
        if unacked + self._recv_window > self.config.connection_window:
            # more than was received (a caller's mistake): never open the
            # window past what we advertised
            unacked = self.config.connection_window - self._recv_window
        if unacked >= self.config.connection_window >> 1:
            self._out.append(window_update_frame(0, unacked))
            self._recv_window += unacked
            unacked = 0
        self._recv_unacked = unacked

    def _terminate(self, code, reason, goaway=True):
        if self._state == _S_CLOSED:
            return
        self._state = _S_CLOSED
        last = self._highest_remote
        if goaway:
            self._out.append(goaway_frame(last, code, reason.encode("ascii", "replace")[:256]))
        self._events.append(ConnectionTerminated(code, last, False, reason))
        self._cont_sid = 0
        self._cont_frags = None
        self._parts.clear()

    # --------------------------------------------------------------- sending

    def acknowledge_received_data(self, stream_id: int, n: int) -> None:
        """The caller consumed n flow-controlled bytes of stream_id (the
        flow_controlled_length of DataReceived events): reopen the windows
        (WINDOW_UPDATE once half a window was consumed). A stream that
        ended meanwhile only gives the connection window back."""
        if n <= 0 or self._state == _S_CLOSED:
            return
        self._consumed(n)
        st = self.streams.get(stream_id)
        if st is not None and st.recv_open:
            unacked = st.unacked + n
            if unacked + st.recv_window > self._recv_initial:
                unacked = self._recv_initial - st.recv_window
            if unacked >= self._recv_initial >> 1:
                self._out.append(window_update_frame(stream_id, unacked))
                st.recv_window += unacked
                unacked = 0
            st.unacked = unacked

    def send_headers(self, stream_id: int, headers, end_stream: bool = False,
                     key=None) -> bool:
        """Send a header list on stream_id: the response head (server role;
        1xx heads first if any), or trailers (end_stream must be True once
        the final head was sent). Field names must be lowercase, pseudo-
        header fields first (messages.response_fields() does it). ``key``:
        see hpack.Encoder.encode (messages.head_fields gives one). Returns
        False, sending nothing, when the stream is gone (reset, or the
        connection closed)."""
        st = self.streams.get(stream_id)
        if st is None or self._state == _S_CLOSED:
            return False
        if not st.send_open:
            raise ValueError("stream %d already ended" % stream_id)
        if st.responded:
            if not end_stream:
                raise ValueError("trailers must end the stream")
        elif not self.client:
            first = headers[0]
            status = first[1]
            if first[0] == b":status" and status and status[0] == 49:     # 1xx
                if end_stream:
                    raise ValueError("1xx response cannot end the stream")
            else:
                st.responded = True
        block = self._encoder.encode(headers, key)
        n = len(block)
        if n <= self.peer_max_frame:
            self._out.append(frame_header(n, HEADERS,
                                          (FLAG_END_HEADERS | FLAG_END_STREAM) if end_stream
                                          else FLAG_END_HEADERS, stream_id))
            self._out.append(block)
        else:
            self._out.append(headers_frames(stream_id, block, end_stream, self.peer_max_frame))
        if end_stream:
            st.send_open = False
            if not st.recv_open:
                self._close_stream(st, _C_END)
        return True

    def send_trailers(self, stream_id: int, headers) -> bool:
        """Trailers: the last header list of a stream (END_STREAM)."""
        return self.send_headers(stream_id, headers, True)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> int:
        """Send as much of data (bytes) as the flow-control windows allow;
        returns how many bytes were taken (0 when the stream is gone).
        END_STREAM goes with the last byte, so only once all of data was
        taken; b"" with end_stream ends the stream at once."""
        st = self.streams.get(stream_id)
        if st is None or self._state == _S_CLOSED:
            return 0
        if not st.send_open:
            raise ValueError("stream %d already ended" % stream_id)
        n = len(data)
        out = self._out
        maxf = self.peer_max_frame
        room = st.send_window
        if self._send_window < room:
            room = self._send_window
        if (n <= room or not n) and n <= maxf:
            # the usual case: one frame (an empty one needs no window)
            out.append(frame_header(n, DATA,
                                    FLAG_END_STREAM if end_stream else 0, stream_id))
            out.append(data)
            st.send_window -= n
            self._send_window -= n
            if end_stream:
                st.send_open = False
                if not st.recv_open:
                    self._close_stream(st, _C_END)
            return n
        take = n if n <= room else (room if room > 0 else 0)
        if take:
            view = memoryview(data)
            pos = 0
            while pos < take:
                size = take - pos
                if size > maxf:
                    size = maxf
                last = pos + size >= n
                out.append(frame_header(size, DATA,
                                        FLAG_END_STREAM if (last and end_stream) else 0,
                                        stream_id))
                out.append(view[pos:pos + size])
                pos += size
            st.send_window -= take
            self._send_window -= take
        if take < n:
            if self.stalled_since is None:
                self.stalled_since = self._clock()
            return take
        if end_stream:
            st.send_open = False
            if not st.recv_open:
                self._close_stream(st, _C_END)
        return take

    def end_stream(self, stream_id: int) -> bool:
        """End our side of stream_id with an empty DATA frame."""
        st = self.streams.get(stream_id)
        if st is None or not st.send_open or self._state == _S_CLOSED:
            return False
        self.send_data(stream_id, b"", True)
        return True

    def reset_stream(self, stream_id: int, error_code: int = CANCEL) -> None:
        """Reset stream_id (RST_STREAM); frames that still arrive for it are
        ignored. No event is produced."""
        st = self.streams.pop(stream_id, None)
        if st is None or self._state == _S_CLOSED:
            return
        self._out.append(rst_stream_frame(stream_id, error_code))
        self._remember(stream_id, _C_LOCAL_RST)

    def send_request(self, headers, end_stream: bool = False) -> int:
        """Client role: open a stream with a request head (pseudo-header
        fields first: messages.request_fields()). Returns the stream id.
        Raises ValueError when can_open_stream() is False."""
        if not self.client:
            raise ValueError("send_request() is for the client role")
        if not self.can_open_stream():
            raise ValueError("cannot open a stream now")
        sid = self._next_local
        self._next_local = sid + 2
        st = _Stream(sid, self.peer_initial_window, self._recv_initial)
        st.responded = True             # what follows on our side are trailers
        for name, value in headers:
            if name == b":method":
                st.method = value
                break
        self.streams[sid] = st
        block = self._encoder.encode(headers)
        self._out.append(headers_frames(sid, block, end_stream, self.peer_max_frame))
        if end_stream:
            st.send_open = False
        return sid

    def ping(self, data: bytes = b"\x00" * 8) -> None:
        """Send a PING (8 bytes); the answer comes as PingAckReceived."""
        self._out.append(ping_frame(data))

    def goaway(self, error_code: int = NO_ERROR, last_stream_id=None,
               reason: str = "") -> None:
        """Send GOAWAY. With NO_ERROR (graceful) streams up to
        last_stream_id (default: the last one the peer opened) finish and
        later ones are ignored; with an error code the connection is over
        (closed becomes True)."""
        if self._state == _S_CLOSED:
            return
        if last_stream_id is None:
            last_stream_id = self._highest_remote
        self._goaway_sent = True
        self._goaway_last = min(last_stream_id, self._goaway_last)
        self._shutdown = 2              # (a graceful shutdown's PING no longer matters)
        self._out.append(goaway_frame(last_stream_id, error_code,
                                      reason.encode("ascii", "replace")[:256]))
        if error_code != NO_ERROR:
            self._state = _S_CLOSED

    def start_graceful_shutdown(self) -> None:
        """Announce the end (GOAWAY with 2**31-1 and a PING): the real last
        stream id follows when the PING comes back, so requests the client
        sent in between still count (RFC 9113 section 6.8)."""
        if self._goaway_sent or self._state == _S_CLOSED:
            return
        self._out.append(goaway_frame(_MAX_STREAM_ID, NO_ERROR))
        self._out.append(ping_frame(_SHUTDOWN_PING))
        self._shutdown = 1
