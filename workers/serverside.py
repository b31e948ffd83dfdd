"""What a server connection asks of the transaction it carries.

A server connection (workers/server.py ServerConn) carries one HTTP
transaction at a time, a stream (workers/stream.py Stream), and tells it
what happens on the server's side through this interface:

  server_connected()            the TCP connect (and TLS handshake) completed
  server_connect_failed(timeout=False)
                                it did not (refused, reset, timed out)
  server_readable()             whether to read the server now (backpressure)
  awaiting_response()           whether the stream still waits for response
                                events (the connection's parser loop)
  server_whole(resp, body)      a whole response in one read (the fast path)
  server_head(resp)             a response head (1xx too)
  server_data(data)             response body bytes, as received
  server_end()                  the response is complete
  server_error(reason)          the server sent something invalid
  server_closed_early()         the server closed (or reset) before the end
  server_tunnel()               101 / CONNECT 2xx: raw bytes from now on
  server_tunnel_data(data)      tunnel bytes from the server (b"": the end)
  finish_io()                   end of an event: flush, masks, timers

and these attributes: loop (the worker's Loop) and last_s (the monotonic
time of the server's last activity).

The base class holds the attributes and says what must be implemented; it
exists so that server.py, compiled, calls its stream in C without
importing stream.py (which imports server.py: a cycle at import time).
"""

from __future__ import annotations


class ServerSide:
    """The interface above; subclasses implement every method."""

    __slots__ = ("loop", "last_s")

    def server_connected(self) -> None:
        raise NotImplementedError

    def server_connect_failed(self, timeout: bool = False) -> None:
        raise NotImplementedError

    def server_readable(self) -> bool:
        raise NotImplementedError

    def awaiting_response(self) -> bool:
        raise NotImplementedError

    def server_whole(self, resp, body: bytes) -> None:
        raise NotImplementedError

    def server_head(self, resp) -> None:
        raise NotImplementedError

    def server_data(self, data: bytes) -> None:
        raise NotImplementedError

    def server_end(self) -> None:
        raise NotImplementedError

    def server_error(self, reason) -> None:
        raise NotImplementedError

    def server_closed_early(self) -> None:
        raise NotImplementedError

    def server_tunnel(self) -> None:
        raise NotImplementedError

    def server_tunnel_data(self, data: bytes) -> None:
        raise NotImplementedError

    def finish_io(self) -> None:
        raise NotImplementedError
