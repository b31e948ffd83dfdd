"""workers/h2/relay.py: chunked bodies back to their payload (any split),
trailers to HTTP/2 fields, the proxy's HTTP/1.1 answers to HTTP/2 fields."""

import pytest

from workers import http1
from workers.h2.relay import Dechunker, split_response
from workers.h2conn import is_preface

BODY = (b"5\r\nhello\r\n"
        b"1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n"
        b"0\r\nX-Checksum: 42\r\nConnection: close\r\n\r\n")


def feed_split(raw: bytes, sizes) -> tuple:
    d = Dechunker()
    out = []
    pos = 0
    for n in sizes:
        out.append(d.feed(raw[pos:pos + n]))
        pos += n
    out.append(d.feed(raw[pos:]))
    return b"".join(out), d


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_dechunk_any_split(step):
    payload, d = feed_split(BODY, [step] * (len(BODY) // step))
    assert payload == b"hello" + b"abcdefghijklmnopqrstuvwxyz"
    assert d.done
    assert d.trailers == [(b"x-checksum", b"42")]     # connection-specific dropped


def test_dechunk_without_trailers_and_as_the_parser_relays_it():
    p = http1.ResponseParser()
    p.expect(b"GET")
    p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n")
    d = Dechunker()
    out = []
    while True:
        ev = p.next_event()
        if ev is http1.NEED_DATA or ev is http1.END_OF_MESSAGE:
            break
        if type(ev) is http1.Data:
            out.append(d.feed(ev.raw))
    assert b"".join(out) == b"helloabcdefghijklmnopqrstuvwxyz"
    assert d.done and d.trailers == []


def test_split_response_of_error_pages_and_redirects():
    status, fields, body = split_response(http1.error_response(503))
    assert status == 503 and fields[0] == (b":status", b"503")
    names = [k for k, _ in fields]
    assert b"connection" not in names and all(k == k.lower() for k in names)
    assert dict(fields)[b"content-length"] == b"%d" % len(body)
    raw = http1.make_response(302, headers=[("Location", "/x"), ("Connection", "close")])
    status, fields, body = split_response(raw)
    assert status == 302 and (b"location", b"/x") in fields and body == b""


def test_preface_detection():
    assert is_preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00")
    assert is_preface(b"PRI * HT")
    assert not is_preface(b"PRI /x HTTP/1.1\r\n")
    assert not is_preface(b"GET / HTTP/1.1\r\n")


def test_h2c_upgrade_is_not_an_upgrade():
    p = http1.RequestParser()
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
    req = p.next_event()
    assert req.upgrade is None
    http1.forwarding_strip(req)
    names = [k.lower() for k, _ in req.headers]
    assert b"upgrade" not in names and b"http2-settings" not in names
    assert p.next_event() is http1.END_OF_MESSAGE


def test_h2_request_goes_to_servers_as_http11():
    req = http1.Request(b"GET", b"/x", b"HTTP/2.0", [(b"host", b"a")])
    assert http1.serialize_request_head(req).startswith(b"GET /x HTTP/1.1\r\n")
