#!/usr/bin/env python3
"""farm's HTTP/1.1 head parser against httptools (llhttp), on speed and on
strictness. A tool for farm's developers: it backs the choice of parser in
bench/README.md ("Parser: ours or llhttp").

- speed: microseconds per message head, for heads like the benchmark's
  (wrk's two-line GET, nginx's small response) and a browser-like GET with
  a dozen fields. farm is timed on both of its paths: the whole-message
  fast path the worker takes when a head arrives in one recv, and the
  event API (feed + next_event) it falls back to. httptools is timed with
  the callbacks a proxy needs at the least (the target, each field, the
  end of the head), reusing one parser per connection as a proxy would.
- strictness: every request of farm's parser corpus (tests/unit/
  http1_corpus.py) that farm refuses is fed to httptools; the ones it
  accepts are listed, grouped by the status farm answers them with
  (entries that need an end of stream, or farm's options, are left out).

    .venv/bin/python -m pip install httptools   # not a farm dependency
    .venv/bin/python bench/parsers.py [--number 20000]

No network; pure CPU.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers import http1  # noqa: E402

WRK_GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
BROWSER_GET = (
    b"GET /static/app.js?v=3 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: */*\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Referer: https://www.example.com/\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=0123456789abcdef; theme=dark\r\n"
    b"Sec-Fetch-Dest: script\r\n"
    b"Sec-Fetch-Mode: no-cors\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"If-None-Match: \"5f3c-1a2b\"\r\n\r\n")
NGINX_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: nginx/1.22.1\r\n"
    b"Date: Sat, 21 Nov 2026 03:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 64\r\n"
    b"Connection: keep-alive\r\n\r\n" + b"x" * 64)


# -- farm ----------------------------------------------------------------------

def farm_request_whole(data: bytes):
    p = http1.RequestParser()
    return lambda: p.whole_request(data)


def farm_request_events(data: bytes):
    p = http1.RequestParser()
    feed, next_event = p.feed, p.next_event
    end = http1.END_OF_MESSAGE

    def parse():
        feed(data)
        while next_event() is not end:
            pass
    return parse


def farm_response_whole(data: bytes):
    p = http1.ResponseParser()

    def parse():
        p.expect(b"GET", False)
        return p.whole_response(data)
    return parse


def farm_response_events(data: bytes):
    p = http1.ResponseParser()
    end = http1.END_OF_MESSAGE

    def parse():
        p.expect(b"GET", False)
        p.feed(data)
        while p.next_event() is not end:
            pass
    return parse


# -- httptools -----------------------------------------------------------------

class _Collect:
    """The least a proxy keeps of a head: target or status, fields, done."""

    __slots__ = ("url", "headers", "done")

    def __init__(self):
        self.url = b""
        self.headers = []
        self.done = False

    def on_message_begin(self):
        self.url = b""
        self.headers = []
        self.done = False

    def on_url(self, url: bytes):
        self.url += url

    def on_header(self, name: bytes, value: bytes):
        self.headers.append((name, value))

    def on_message_complete(self):
        self.done = True


def llhttp_request(data: bytes):
    import httptools
    c = _Collect()
    p = httptools.HttpRequestParser(c)

    def parse():
        p.feed_data(data)
        return p.get_method(), c.url, c.headers, p.should_keep_alive()
    return parse


def llhttp_response(data: bytes):
    import httptools
    c = _Collect()
    p = httptools.HttpResponseParser(c)

    def parse():
        p.feed_data(data)
        return p.get_status_code(), c.headers, p.should_keep_alive()
    return parse


def time_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def speed(number: int, have_llhttp: bool) -> None:
    rows = [("wrk GET (1 field)", WRK_GET, "request"),
            ("browser GET (12 fields)", BROWSER_GET, "request"),
            ("nginx 200 + 64 B body", NGINX_RESPONSE, "response")]
    print("speed, microseconds per head (best of 5 x %d)" % number)
    print("%-26s %12s %12s %12s" % ("head", "farm whole", "farm events", "httptools"))
    for name, data, kind in rows:
        if kind == "request":
            fns = [farm_request_whole(data), farm_request_events(data),
                   llhttp_request(data) if have_llhttp else None]
        else:
            fns = [farm_response_whole(data), farm_response_events(data),
                   llhttp_response(data) if have_llhttp else None]
        cells = ["%12.2f" % time_us(f, number) if f else "%12s" % "-" for f in fns]
        print("%-26s %s" % (name, " ".join(cells)))


# -- strictness ----------------------------------------------------------------

def llhttp_accepts(data: bytes) -> bool:
    """True if httptools parses data without an error (an upgrade or
    CONNECT hands the connection over: what it parsed up to there counts)."""
    import httptools
    p = httptools.HttpRequestParser(_Collect())
    try:
        p.feed_data(data)
    except httptools.HttpParserUpgrade:
        return True
    except httptools.HttpParserError:
        return False
    return True


def strictness() -> None:
    from tests.unit.http1_corpus import CORPUS
    refused = []
    for e in CORPUS:
        if e["kind"] != "request" or e.get("opts") or e.get("eof"):
            # smaller limits test farm's options; httptools has no call for
            # the end of the stream, so a head cut by EOF cannot be compared
            continue
        errors = [ev[1] for ev in e["events"] if ev[0] == "error"]
        if errors:
            refused.append((e["id"], errors[0], e["data"]))
    accepted = [(i, st) for i, st, data in refused if llhttp_accepts(data)]
    print("\nstrictness: %d requests of the corpus that farm refuses; httptools accepts %d of them"
          % (len(refused), len(accepted)))
    by_status: dict[int, list[str]] = {}
    for i, st in accepted:
        by_status.setdefault(st, []).append(i)
    for st in sorted(by_status):
        ids = by_status[st]
        print("  farm %d, httptools accepts (%d): %s" % (st, len(ids), ", ".join(ids)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--number", type=int, default=20000, help="calls per timing")
    a = ap.parse_args()
    try:
        import httptools
        print("httptools %s (llhttp)" % httptools.__version__)
        have = True
    except ImportError:
        print("httptools is not installed: farm alone (.venv/bin/python -m pip install httptools)")
        have = False
    speed(a.number, have)
    if have:
        strictness()
    return 0


if __name__ == "__main__":
    sys.exit(main())
