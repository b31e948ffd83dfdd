"""An HTTP/2 server for the tests of `proto = "h2"` servers, on python-hyper's
h2 (cleartext, prior knowledge): one thread per connection, responses
that may be delayed (to hold several streams open at once).

Paths:
  /name               the server's name
  /echo               the request body back (once complete); request
                      trailers come back as x-echo-<name> trailers
  /trailers?n=N       N DATA frames, no content-length, trailers
                      x-checksum (body length) and grpc-status: 0
  /big?size=N         N bytes (the pattern of backends.pattern), flow control
  /slow?ms=N          waits N ms, then answers its stream id
  /reset              RST_STREAM INTERNAL_ERROR instead of a response
  /headers            the request's fields as "name: value" lines
  /healthz            status ``health_status`` (200 unless a test changes
                      it), body "health <status>" (health checks)

It records the requests (method, path, fields, body, trailers), the
connections accepted and the most streams open at once on one
connection. ``max_streams`` is its SETTINGS_MAX_CONCURRENT_STREAMS;
``goaway_after`` makes it send GOAWAY (last stream id = the N-th request's)
and refuse the streams after it.
"""

from __future__ import annotations

import heapq
import select
import socket
import ssl
import threading
import time
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.events
import h2.errors
import h2.settings
from hyperframe.frame import GoAwayFrame

from tests.integration.backends import pattern


class H2Request:
    def __init__(self, sid, headers):
        self.sid = sid
        self.headers = headers
        self.method = dict(headers).get(":method")
        self.path = dict(headers).get(":path")
        self.body = b""
        self.trailers = None

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None


class H2Backend:
    def __init__(self, name: str = "h2s1", max_streams: int = 100, goaway_after: int = 0,
                 tls=None):
        """tls: an Issued certificate (tests/tlscerts.py): TLS with ALPN h2."""
        self.name = name
        self.ctx = None
        self.alpn: list = []            # the protocol each TLS connection chose
        if tls is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(str(tls.crt), str(tls.key))
            self.ctx.set_alpn_protocols(["h2"])
        self.max_streams = max_streams
        self.health_status = 200
        self.goaway_after = goaway_after
        self.requests: list[H2Request] = []
        self.connections = 0
        self.max_open = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.closing = False
        self.threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def close(self):
        self.closing = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()

    # ----------------------------------------------------------------- serving

    def _serve(self, sock):
        if self.ctx is not None:
            try:
                sock.settimeout(10)
                sock = self.ctx.wrap_socket(sock, server_side=True)
                sock.settimeout(None)
            except OSError:
                sock.close()
                return
            self.alpn.append(sock.selected_alpn_protocol())
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                        validate_inbound_headers=True)
        c = h2.connection.H2Connection(cfg)
        c.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams})
        c.initiate_connection()
        sock.sendall(c.data_to_send())
        reqs: dict[int, H2Request] = {}
        later: list = []            # (when, sid, callable)
        pending: dict[int, list] = {}   # sid -> [data left, trailers] (flow control)
        served = 0
        goaway_last = 0
        try:
            while not self.closing:
                timeout = max(0.0, later[0][0] - time.monotonic()) if later else 0.5
                r, _, _ = select.select([sock], [], [], timeout)
                if not r and self.ctx is not None and sock.pending():
                    r = [sock]
                now = time.monotonic()
                while later and later[0][0] <= now:
                    _, sid, fn = heapq.heappop(later)
                    fn()
                if r:
                    data = sock.recv(65536)
                    if not data:
                        return
                    for ev in c.receive_data(data):
                        if isinstance(ev, h2.events.RequestReceived):
                            served += 1
                            req = H2Request(ev.stream_id, ev.headers)
                            reqs[ev.stream_id] = req
                            with self.lock:
                                self.max_open = max(self.max_open, c.open_inbound_streams)
                            if self.goaway_after and served == self.goaway_after:
                                # a graceful GOAWAY by hand: h2's close_connection()
                                # would stop the streams below last too
                                goaway_last = ev.stream_id
                                sock.sendall(c.data_to_send() + GoAwayFrame(
                                    0, last_stream_id=goaway_last, error_code=0).serialize())
                            elif goaway_last and ev.stream_id > goaway_last:
                                continue        # refused by the GOAWAY: never answered
                            if ev.stream_ended:
                                self._request_done(c, req, later, pending)
                        elif isinstance(ev, h2.events.DataReceived):
                            req = reqs.get(ev.stream_id)
                            c.acknowledge_received_data(ev.flow_controlled_length,
                                                        ev.stream_id)
                            if req is not None:
                                req.body += ev.data
                                if ev.stream_ended:
                                    self._request_done(c, req, later, pending)
                        elif isinstance(ev, h2.events.TrailersReceived):
                            req = reqs.get(ev.stream_id)
                            if req is not None:
                                req.trailers = ev.headers
                                if ev.stream_ended:
                                    self._request_done(c, req, later, pending)
                        elif isinstance(ev, (h2.events.WindowUpdated,
                                             h2.events.RemoteSettingsChanged)):
                            for sid in list(pending):
                                self._push(c, sid, pending)
                        elif isinstance(ev, h2.events.ConnectionTerminated):
                            sock.sendall(c.data_to_send())
                            return
                out = c.data_to_send()
                if out:
                    sock.sendall(out)
                if goaway_last and not later and not pending and all(
                        sid > goaway_last or sid not in c.streams or c.streams[sid].closed
                        for sid in reqs):
                    return      # every stream up to the GOAWAY's last id answered: close
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            sock.close()

    def _request_done(self, c, req, later, pending):
        with self.lock:
            self.requests.append(req)
        url = urlsplit(req.path)
        q = parse_qs(url.query)
        path = url.path
        sid = req.sid
        if path == "/slow":
            ms = int(q.get("ms", ["200"])[0])
            heapq.heappush(later, (time.monotonic() + ms / 1000, sid,
                                   lambda: self._respond(c, sid, b"%d" % sid, pending)))
            return
        if path == "/reset":
            c.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            return
        if path == "/echo":
            trailers = None
            if req.trailers:
                trailers = [("x-echo-" + k, v) for k, v in req.trailers]
            # (with trailers: no content-length, as gRPC answers: farm drops the
            # trailers of a length-delimited response, which HTTP/1.1 cannot carry)
            self._respond(c, sid, req.body, pending, trailers=trailers, length=not trailers,
                          extra=[("content-type", req.header("content-type") or "x/y")])
            return
        if path == "/trailers":
            n = int(q.get("n", ["3"])[0])
            body = b"".join(b"part%d;" % i for i in range(n))
            self._respond(c, sid, body, pending, length=False,
                          trailers=[("x-checksum", str(len(body))), ("grpc-status", "0")])
            return
        if path == "/big":
            self._respond(c, sid, pattern(int(q.get("size", ["100000"])[0])), pending)
            return
        if path == "/healthz":
            status = self.health_status
            self._respond(c, sid, b"health %d" % status, pending, status=status)
            return
        if path == "/headers":
            body = "".join(f"{k}: {v}\n" for k, v in req.headers).encode()
            self._respond(c, sid, body, pending)
            return
        self._respond(c, sid, self.name.encode(), pending)

    def _respond(self, c, sid, body, pending, trailers=None, length=True, extra=(), status=200):
        if sid not in c.streams:
            return
        headers = [(":status", str(status)), ("server", self.name)] + list(extra)
        if length:
            headers.append(("content-length", str(len(body))))
        c.send_headers(sid, headers, end_stream=not body and not trailers)
        if body or trailers:
            pending[sid] = [body, trailers]
            self._push(c, sid, pending)

    def _push(self, c, sid, pending):
        body, trailers = pending[sid]
        try:
            while body:
                room = min(c.local_flow_control_window(sid), c.max_outbound_frame_size)
                if room <= 0:
                    pending[sid] = [body, trailers]
                    return
                chunk, body = body[:room], body[room:]
                c.send_data(sid, chunk, end_stream=not body and not trailers)
            if trailers:
                c.send_headers(sid, trailers, end_stream=True)
        except (h2.exceptions.StreamClosedError, KeyError):
            pass
        pending.pop(sid, None)
