"""What a client connection offers the streams it carries.

A stream (workers/stream.py) is one HTTP transaction and does not know the
protocol of the client connection that made it: HTTP/1.1
(workers/h1conn.py) or HTTP/2. It talks to it only through this
interface, which each client connection implements:

  response_head(stream, resp)   frame and send a response head (1xx too)
  response_data(stream, data)   response body bytes, as the server sent them
  local_reply(stream, data)     a whole response made by the proxy (an
                                error page, a rule's answer), HTTP/1.1 bytes
  stream_ended(stream)          the transaction is over (logged, released)
  client_room(stream)           False while the client's queue for stream is
                                full (the stream stops reading its server)
  body_wanted(stream)           the server side takes the request body now
  finish_io()                   end of an event: flush, masks, timers
  stream_io(stream)             the same, at the end of an event of stream's
                                server side (HTTP/2 looks at that stream)
  start_tunnel(stream)          101 / CONNECT 2xx: raw bytes from now on
  tunnel_data(stream, data)     tunnel bytes for the client (b"": the end)
  take_own(srv) / keep_own(sc)  the connection's private idle server
                                connection (http-reuse never)
  dst_port()                    the local port the client connected to
  dst()                         the local address it connected to (text)

and these attributes: ctx (the worker's context), loop, fe (the
frontend's runtime), t (the transport), src, src_port, src_bytes (the
client's address as bytes, for X-Forwarded-For), last_c (the monotonic
time of the client's last activity), requests (streams so far),
accept_time (epoch) and t_accept (monotonic), own (the private idle
server connection, or None).

The base class holds the attributes and says what must be implemented;
it exists so that a compiled stream calls its connection through one
typed interface, whichever protocol it speaks.
"""

from __future__ import annotations


class ClientConn:
    """The interface above; subclasses implement every method."""

    __slots__ = ("ctx", "loop", "fe", "t", "src", "src_port", "_src_bytes", "last_c",
                 "requests", "accept_time", "t_accept", "own", "_dst_port")

    @property
    def src_bytes(self) -> bytes:
        """The client's address as bytes, for X-Forwarded-For: made on
        first use (set _src_bytes to None at start), so a connection that
        never needs it (most idle keep-alive ones) does not hold it."""
        b = self._src_bytes
        if b is None:
            b = self._src_bytes = self.src.encode()
        return b

    def response_head(self, stream, resp) -> None:
        raise NotImplementedError

    def response_data(self, stream, data: bytes) -> None:
        raise NotImplementedError

    def local_reply(self, stream, data: bytes) -> None:
        raise NotImplementedError

    def stream_ended(self, stream) -> None:
        raise NotImplementedError

    def client_room(self, stream) -> bool:
        raise NotImplementedError

    def body_wanted(self, stream) -> None:
        raise NotImplementedError

    def finish_io(self) -> None:
        raise NotImplementedError

    def stream_io(self, stream) -> None:
        self.finish_io()

    def start_tunnel(self, stream) -> None:
        raise NotImplementedError

    def tunnel_data(self, stream, data: bytes) -> None:
        raise NotImplementedError

    def take_own(self, srv):
        raise NotImplementedError

    def keep_own(self, sc) -> None:
        raise NotImplementedError

    def dst(self) -> str | None:
        """The local address the client connected to: a PROXY header's
        destination (workers/ppaccept.py), else the socket's."""
        pp = self.t.proxy
        if pp is not None and pp.dst is not None:
            return pp.dst
        try:
            return self.t.sock.getsockname()[0]
        except OSError:
            return None

    def dst_port(self) -> int:
        if self._dst_port is None:
            self._dst_port = self.t.local_port()
        return self._dst_port
