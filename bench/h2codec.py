#!/usr/bin/env python3
"""The cost of farm's HTTP/2 codec (workers/h2) per request, against
python-hyper's h2 doing the same work. A tool for farm's developers: the
number the HTTP/2 issue asks for ("the codec's own cost per request").

One request is: a client's HEADERS frame for a GET with 8 typical browser
header fields in (bytes made beforehand by an h2 client), the events out,
then a 200 response with 5 header fields and a 64-byte body as HEADERS +
DATA frames out (data_to_send()). No sockets, no proxying: pure codec CPU.

Scenarios:

- warm: one connection, the requests one after the other, as a browser
  sends them: after the first, the client's HPACK encoder sends most
  fields as one-byte references to its dynamic table, and so does ours
  for the response;
- cold: every request encoded with a fresh HPACK context (literals,
  Huffman-coded: the first request of a connection, or a client that does
  not index);
- farm+translate: warm, plus what the connection layer adds per request:
  messages.to_request() (the http1.Request the stream code uses) and
  messages.response_fields() (an http1.Response to the HTTP/2 field list).

    .venv/bin/python bench/h2codec.py [--number 20000] [--repeat 5]

h2 is a test dependency (pyproject's test extras): `make setup` has it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import h2  # noqa: E402
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import hpack  # noqa: E402
from hyperframe.frame import HeadersFrame  # noqa: E402

from workers.h2 import messages  # noqa: E402
from workers.h2.conn import H2Connection  # noqa: E402
from workers.h2.events import RequestReceived  # noqa: E402
from workers.http1 import Response  # noqa: E402

REQUEST = [
    (b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"www.example.com"),
    (b":path", b"/static/app.js?v=3"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    (b"accept", b"*/*"),
    (b"accept-language", b"en-US,en;q=0.5"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"referer", b"https://www.example.com/"),
    (b"cookie", b"session=0123456789abcdef; theme=dark"),
    (b"sec-fetch-dest", b"script"),
    (b"sec-fetch-mode", b"no-cors"),
]
RESPONSE = [
    (b":status", b"200"),
    (b"server", b"nginx/1.22.1"),
    (b"date", b"Sat, 21 Nov 2026 03:00:00 GMT"),
    (b"content-type", b"text/plain"),
    (b"content-length", b"64"),
    (b"cache-control", b"max-age=60"),
]
H1_RESPONSE = Response(200, headers=[
    (b"Server", b"nginx/1.22.1"), (b"Date", b"Sat, 21 Nov 2026 03:00:00 GMT"),
    (b"Content-Type", b"text/plain"), (b"Content-Length", b"64"),
    (b"Cache-Control", b"max-age=60")])
BODY = b"x" * 64


def client_bytes(number: int, cold: bool):
    """(handshake bytes, [bytes of request i]): an h2 client's preface and
    SETTINGS, with a connection window opened wide (so that 64-byte bodies
    never wait), then one HEADERS frame per request, its block made by
    hpack (one context for all: warm; a fresh one each: cold)."""
    cli = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding=None))
    cli.initiate_connection()
    cli.increment_flow_control_window(2 ** 31 - 1 - 65535)
    # the server's SETTINGS, acknowledged as a real client would
    cli.receive_data(H2Connection().data_to_send())
    handshake = cli.data_to_send()
    reqs = []
    shared = hpack.Encoder()        # the client's HPACK context (warm)
    for i in range(number):
        f = HeadersFrame(2 * i + 1)
        f.flags.add("END_HEADERS")
        f.flags.add("END_STREAM")
        f.data = (hpack.Encoder() if cold else shared).encode(REQUEST, huffman=True)
        reqs.append(f.serialize())
    return handshake, reqs


def run_farm(handshake, reqs, translate=False):
    srv = H2Connection()
    srv.receive_data(handshake)
    srv.data_to_send()
    receive = srv.receive_data
    send_headers = srv.send_headers
    send_data = srv.send_data
    out = srv.data_to_send
    t0 = time.perf_counter()
    for chunk in reqs:
        for ev in receive(chunk):
            if type(ev) is RequestReceived:
                sid = ev.stream_id
                if translate:
                    messages.to_request(ev)
                    fields = messages.response_fields(H1_RESPONSE)
                else:
                    fields = RESPONSE
                send_headers(sid, fields)
                send_data(sid, BODY, True)
        out()
    return time.perf_counter() - t0


def run_h2(handshake, reqs):
    srv = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=False, header_encoding=None))
    srv.initiate_connection()
    srv.receive_data(handshake)
    srv.data_to_send()
    RR = h2.events.RequestReceived
    t0 = time.perf_counter()
    for chunk in reqs:
        for ev in srv.receive_data(chunk):
            if type(ev) is RR:
                sid = ev.stream_id
                srv.send_headers(sid, RESPONSE)
                srv.send_data(sid, BODY, end_stream=True)
        srv.data_to_send()
    return time.perf_counter() - t0


def best(fn, repeat):
    return min(fn() for _ in range(repeat))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--number", type=int, default=20000, help="requests per run")
    ap.add_argument("--repeat", type=int, default=5, help="runs (the best one counts)")
    args = ap.parse_args(argv)
    n = args.number
    print("HTTP/2 codec, microseconds per request (GET with 8 fields in, "
          "200 + 5 fields + 64-byte body out), best of %d runs of %d; h2 %s, Python %s"
          % (args.repeat, n, h2.__version__, sys.version.split()[0]))
    print("%-16s %10s %10s %8s" % ("scenario", "farm", "h2", "h2/farm"))
    for name, cold in (("warm", False), ("cold", True)):
        handshake, reqs = client_bytes(n, cold)
        farm = best(lambda: run_farm(handshake, reqs), args.repeat) / n * 1e6
        hyper = best(lambda: run_h2(handshake, reqs), args.repeat) / n * 1e6
        print("%-16s %10.1f %10.1f %8.1f" % (name, farm, hyper, hyper / farm))
        if not cold:
            full = best(lambda: run_farm(handshake, reqs, True), args.repeat) / n * 1e6
            print("%-16s %10.1f %10s %8s" % ("farm+translate", full, "-", "-"))


if __name__ == "__main__":
    main()
