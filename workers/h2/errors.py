"""HTTP/2 error codes (RFC 9113 section 7) and the exceptions of workers/h2.

Two kinds of protocol errors exist in HTTP/2 (RFC 9113 section 5.4):

* a *connection error* ends the whole connection: the endpoint sends GOAWAY
  with the error code and the last stream it processed, then closes;
* a *stream error* ends one stream: the endpoint sends RST_STREAM and the
  connection goes on.

The frame and HPACK layers raise ``H2ConnectionError`` or ``H2StreamError``;
workers/h2/conn.py turns them into frames and events. The caller of
conn.H2Connection never sees these exceptions from ``receive_data()``: they
come out as ``ConnectionTerminated`` / ``StreamReset`` events.
"""

NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD

ERROR_NAMES = {
    NO_ERROR: "NO_ERROR", PROTOCOL_ERROR: "PROTOCOL_ERROR",
    INTERNAL_ERROR: "INTERNAL_ERROR", FLOW_CONTROL_ERROR: "FLOW_CONTROL_ERROR",
    SETTINGS_TIMEOUT: "SETTINGS_TIMEOUT", STREAM_CLOSED: "STREAM_CLOSED",
    FRAME_SIZE_ERROR: "FRAME_SIZE_ERROR", REFUSED_STREAM: "REFUSED_STREAM",
    CANCEL: "CANCEL", COMPRESSION_ERROR: "COMPRESSION_ERROR",
    CONNECT_ERROR: "CONNECT_ERROR", ENHANCE_YOUR_CALM: "ENHANCE_YOUR_CALM",
    INADEQUATE_SECURITY: "INADEQUATE_SECURITY", HTTP_1_1_REQUIRED: "HTTP_1_1_REQUIRED",
}


def error_name(code: int) -> str:
    """The RFC name of an error code; unknown codes (allowed on the wire,
    RFC 9113 section 7) are shown in hex."""
    return ERROR_NAMES.get(code) or "0x%x" % code


class H2Error(Exception):
    """Base of the protocol errors. ``code`` is the RFC 9113 error code,
    ``reason`` a short text for logs (never sent to the peer verbatim unless
    the connection puts it in GOAWAY's debug data)."""

    def __init__(self, code: int, reason: str = ""):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self):
        return "%s: %s" % (error_name(self.code), self.reason)


class H2ConnectionError(H2Error):
    """The whole connection must end (GOAWAY with ``code``)."""


class H2StreamError(H2Error):
    """Stream ``stream_id`` must end (RST_STREAM with ``code``); the
    connection goes on."""

    def __init__(self, stream_id: int, code: int, reason: str = ""):
        super().__init__(code, reason)
        self.stream_id = stream_id


class HPACKError(H2ConnectionError):
    """A header block that cannot be decoded: always a connection error of
    type COMPRESSION_ERROR (RFC 9113 section 4.3), since the compression
    context is lost for every later block."""

    def __init__(self, reason: str = ""):
        super().__init__(COMPRESSION_ERROR, reason)


class HeaderListTooLarge(Exception):
    """A header block decoded fine (the HPACK context is intact) but its
    header list is over the configured limit (bytes or fields). The
    connection answers 431 on that stream and goes on."""

    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason


class MalformedMessage(Exception):
    """A header list that breaks RFC 9113 section 8 (pseudo-header rules,
    field syntax, connection-specific fields...): a stream error of type
    PROTOCOL_ERROR (section 8.1.1)."""

    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason
