"""The events of workers/h2/conn.py: what ``H2Connection.receive_data()``
returns. Small slotted classes (one allocation each, no dict); equality
and repr compare and show every slot, for tests and logs.

A header list is a list of ``(name, value)`` bytes pairs in received order,
pseudo-header fields first.
"""

from workers.h2.errors import error_name

__all__ = ["Event", "KnownHead", "RequestReceived", "ResponseReceived", "TrailersReceived", "DataReceived",
           "StreamReset", "WindowUpdated", "RemoteSettingsChanged", "SettingsAcked",
           "PingReceived", "PingAckReceived", "ConnectionTerminated"]


class Event:
    __slots__ = ()

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__ if s != "known")

    def __repr__(self):
        parts = []
        for s in self.__slots__:
            if s == "known":            # a cache, not part of what happened
                continue
            v = getattr(self, s)
            if s == "error_code":
                v = error_name(v)
            elif isinstance(v, bytes) and len(v) > 40:
                v = v[:40] + b"..."
            parts.append("%s=%r" % (s, v))
        return "%s(%s)" % (type(self).__name__, ", ".join(parts))


class KnownHead:
    """A request header block the connection decoded and checked before:
    ``gen`` the decoder's generation then (the block means the same fields
    only while the decoder's table is as it was), ``fields`` and
    ``checked`` (check_request's tuple). ``derived`` is the application's
    to fill: what it made of these fields once (messages.to_request keeps
    a template Request there), found again on every request that repeats
    the block; None at first."""
    __slots__ = ("gen", "fields", "checked", "derived")

    def __init__(self, gen, fields, checked):
        self.gen = gen
        self.fields = fields
        self.checked = checked
        self.derived = None


class RequestReceived(Event):
    """Server role: a checked request head opened stream ``stream_id``.
    ``end_stream``: no body follows. The pseudo-header values, the host
    field and the content-length (None when absent) are given as found by
    the checks, and ``regular`` is the index of the first regular field in
    ``headers`` (messages.to_request() builds an http1.Request from it).
    ``known``: the KnownHead of a block seen before on the connection
    (else None; not compared)."""
    __slots__ = ("stream_id", "headers", "end_stream", "method", "scheme", "path",
                 "authority", "host", "content_length", "regular", "known")

    def __init__(self, stream_id, headers, end_stream, method, scheme, path, authority,
                 host, content_length, regular, known=None):
        self.known = known
        self.stream_id = stream_id
        self.headers = headers
        self.end_stream = end_stream
        self.method = method
        self.scheme = scheme
        self.path = path
        self.authority = authority
        self.host = host
        self.content_length = content_length
        self.regular = regular


class ResponseReceived(Event):
    """Client role: a checked response head on stream ``stream_id``; an
    interim one (1xx) when ``status`` < 200, the final one may follow."""
    __slots__ = ("stream_id", "headers", "end_stream", "status", "content_length", "regular")

    def __init__(self, stream_id, headers, end_stream, status, content_length, regular):
        self.stream_id = stream_id
        self.headers = headers
        self.end_stream = end_stream
        self.status = status
        self.content_length = content_length
        self.regular = regular


class TrailersReceived(Event):
    """A checked trailer section; the stream's incoming side is over."""
    __slots__ = ("stream_id", "headers")

    def __init__(self, stream_id, headers):
        self.stream_id = stream_id
        self.headers = headers


class DataReceived(Event):
    """Body bytes. ``flow_controlled_length`` (data plus padding) is what
    to give back with ``acknowledge_received_data()`` once consumed."""
    __slots__ = ("stream_id", "data", "flow_controlled_length", "end_stream")

    def __init__(self, stream_id, data, flow_controlled_length, end_stream):
        self.stream_id = stream_id
        self.data = data
        self.flow_controlled_length = flow_controlled_length
        self.end_stream = end_stream


class StreamReset(Event):
    """The stream is over, reset. ``remote``: the peer sent RST_STREAM
    (``error_code`` is its code); otherwise we reset it for a stream error
    of the peer's (malformed message, flow control, refused...): the
    RST_STREAM is queued already and ``reason`` says why. A local reset may
    name a stream that never produced a RequestReceived (refused before):
    log it, there is nothing else to do."""
    __slots__ = ("stream_id", "error_code", "remote", "reason")

    def __init__(self, stream_id, error_code, remote, reason=""):
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote = remote
        self.reason = reason


class WindowUpdated(Event):
    """The peer gave ``delta`` more bytes of window on stream ``stream_id``
    (0: the connection): blocked sends may go on (``max_send()``)."""
    __slots__ = ("stream_id", "delta")

    def __init__(self, stream_id, delta):
        self.stream_id = stream_id
        self.delta = delta


class RemoteSettingsChanged(Event):
    """The peer's SETTINGS (already applied and acknowledged): ``changes``
    maps setting identifiers to values. A larger INITIAL_WINDOW_SIZE may
    unblock sends, as a WindowUpdated does."""
    __slots__ = ("changes",)

    def __init__(self, changes):
        self.changes = changes


class SettingsAcked(Event):
    """The peer acknowledged our SETTINGS."""
    __slots__ = ()


class PingReceived(Event):
    """A PING from the peer (already answered)."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


class PingAckReceived(Event):
    """The answer to one of our PINGs."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


class ConnectionTerminated(Event):
    """GOAWAY. ``remote``: the peer sent it (``error_code`` NO_ERROR is a
    graceful shutdown: streams up to ``last_stream_id`` go on, no new ones);
    otherwise we detected a connection error: GOAWAY is queued, nothing
    more will be read or sent, flush ``data_to_send()`` and close."""
    __slots__ = ("error_code", "last_stream_id", "remote", "reason")

    def __init__(self, error_code, last_stream_id, remote, reason=""):
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        self.remote = remote
        self.reason = reason
