"""workers/h2/messages.py: RFC 9113 section 8 field rules, and the
translation between HTTP/2 header lists and http1.Request / Response."""

import pytest

from workers import http1
from workers.h2.errors import MalformedMessage
from workers.h2.events import KnownHead, RequestReceived
from workers.h2.messages import (
    check_request, check_response, check_trailers, h1_chunk, h1_last_chunk, head_fields,
    request_fields, response_fields, to_request, to_response, trailer_fields,
)

BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/a?b=1"),
        (b":authority", b"example.com")]


def bad(fields, *, seen=None):
    with pytest.raises(MalformedMessage) as e:
        check_request(fields, seen)
    return e.value.reason


# --------------------------------------------------------------------------
# requests

def test_valid_request():
    assert check_request(BASE + [(b"accept", b"*/*")]) == (
        b"GET", b"https", b"/a?b=1", b"example.com", None, None, 4)
    # pseudo-header fields in any order, host agreeing with :authority
    fields = [(b":authority", b"Example.com:443"), (b":path", b"/"), (b":method", b"POST"),
              (b":scheme", b"https"), (b"host", b"example.com"), (b"content-length", b"12")]
    assert check_request(fields) == (b"POST", b"https", b"/", b"Example.com:443",
                                     b"example.com", 12, 4)
    assert check_request([(b":method", b"OPTIONS"), (b":scheme", b"http"), (b":path", b"*"),
                          (b":authority", b"a")])[2] == b"*"
    assert check_request([(b":method", b"CONNECT"), (b":authority", b"a.example:443")])[0] \
        == b"CONNECT"
    # no :authority but a host field
    assert check_request(BASE[:3] + [(b"host", b"h.example")])[4] == b"h.example"
    # te: trailers is the one connection-specific field allowed
    check_request(BASE + [(b"te", b"trailers")])
    # empty values, obs-text, inner spaces and tabs are fine
    check_request(BASE + [(b"x-a", b""), (b"x-b", b"\xe9t\xe9"), (b"x-c", b"a \t b")])


@pytest.mark.parametrize("fields,reason", [
    (BASE[1:], "missing :method"),
    (BASE[:1] + BASE[2:], "missing :scheme"),
    (BASE[:2] + BASE[3:], "missing :path"),
    (BASE + [(b":method", b"GET")], "duplicate :method"),
    (BASE + [(b":scheme", b"https")], "duplicate :scheme"),
    (BASE + [(b":path", b"/")], "duplicate :path"),
    (BASE + [(b":authority", b"x")], "duplicate :authority"),
    (BASE + [(b":status", b"200")], "unknown pseudo-header"),
    (BASE + [(b":protocol", b"websocket")], "unknown pseudo-header"),
    (BASE + [(b":METHOD", b"GET")], "unknown pseudo-header"),
    (BASE[:2] + [(b"x", b"y")] + BASE[2:], "after a regular field"),
    (BASE + [(b"X-Upper", b"1")], "uppercase"),
    (BASE + [(b"x y", b"1")], "invalid field name"),
    (BASE + [(b"x:y", b"1")], "invalid field name"),
    (BASE + [(b"", b"1")], "empty field name"),
    (BASE + [(b"x\ny", b"1")], "invalid field name"),
    (BASE + [(b"x", b"a\nb")], "invalid character"),
    (BASE + [(b"x", b"a\rb")], "invalid character"),
    (BASE + [(b"x", b"a\0b")], "invalid character"),
    (BASE + [(b"x", b"a\x01b")], "invalid character"),
    (BASE + [(b"x", b" a")], "whitespace"),
    (BASE + [(b"x", b"a\t")], "whitespace"),
    (BASE + [(b"connection", b"keep-alive")], "connection-specific"),
    (BASE + [(b"keep-alive", b"5")], "connection-specific"),
    (BASE + [(b"proxy-connection", b"x")], "connection-specific"),
    (BASE + [(b"transfer-encoding", b"chunked")], "connection-specific"),
    (BASE + [(b"upgrade", b"h2c")], "connection-specific"),
    (BASE + [(b"te", b"trailers, deflate")], "te other than trailers"),
    (BASE + [(b"te", b"gzip")], "te other than trailers"),
    (BASE + [(b"content-length", b"-1")], "invalid content-length"),
    (BASE + [(b"content-length", b"1, 1")], "invalid content-length"),
    (BASE + [(b"content-length", b"99999999999999999999")], "invalid content-length"),
    (BASE + [(b"content-length", b"1"), (b"content-length", b"2")], "conflicting"),
    (BASE + [(b"host", b"a"), (b"host", b"a")], "more than one host"),
    (BASE + [(b"host", b"a b")], "invalid host"),
    (BASE + [(b"host", b"other.example")], "host differs"),
    ([(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")], "no :authority"),
    ([(b":method", b"G T")] + BASE[1:], "invalid :method"),
    ([(b":method", b"")] + BASE[1:], "invalid :method"),
    (BASE[:1] + [(b":scheme", b"1http")] + BASE[2:], "invalid :scheme"),
    (BASE[:2] + [(b":path", b"")] + BASE[3:], "empty :path"),
    (BASE[:2] + [(b":path", b"a/b")] + BASE[3:], "neither absolute"),
    (BASE[:2] + [(b":path", b"*")] + BASE[3:], "neither absolute"),
    (BASE[:2] + [(b":path", b"/a b")] + BASE[3:], "invalid character in :path"),
    (BASE[:2] + [(b":path", b"/a#b")] + BASE[3:], "invalid character in :path"),
    (BASE[:3] + [(b":authority", b"user@example.com")], "invalid :authority"),
    (BASE[:3] + [(b":authority", b"")], "invalid :authority"),
    ([(b":method", b"CONNECT"), (b":authority", b"a:443"), (b":path", b"/")], "CONNECT with"),
    ([(b":method", b"CONNECT"), (b":authority", b"a")], "CONNECT needs"),
])
def test_malformed_requests(fields, reason):
    assert reason in bad(fields)
    # the per-connection memory of valid fields changes nothing
    seen = set()
    check_request(BASE + [(b"accept", b"x")], seen)
    assert reason in bad(fields, seen=seen)


@pytest.mark.parametrize("authority,host", [
    (b"example.com", b"EXAMPLE.com"), (b"example.com:443", b"example.com"),
    (b"example.com", b"example.com:443"),
])
def test_authority_host_same(authority, host):
    check_request(BASE[:3] + [(b":authority", authority), (b"host", host)])


def test_authority_host_default_port_depends_on_scheme():
    fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
              (b":authority", b"example.com:80"), (b"host", b"example.com")]
    check_request(fields)
    fields[3] = (b":authority", b"example.com:443")
    assert "host differs" in bad(fields)


def test_seen_fields_skip_checks_but_not_special_ones():
    seen = set()
    fields = BASE + [(b"accept", b"*/*"), (b"content-length", b"3"), (b"host", b"example.com")]
    assert check_request(fields, seen)[4:6] == (b"example.com", 3)
    assert (b"accept", b"*/*") in seen
    assert (b"content-length", b"3") not in seen and (b"host", b"example.com") not in seen
    # a second, identical request is answered the same
    assert check_request(fields, seen)[4:6] == (b"example.com", 3)


# --------------------------------------------------------------------------
# responses and trailers

def test_responses():
    assert check_response([(b":status", b"200"), (b"content-length", b"5")]) == (200, 5, 1)
    assert check_response([(b":status", b"103"), (b"link", b"</a>")]) == (103, None, 1)
    for fields, reason in [
        ([], "missing :status"),
        ([(b"x", b"1")], "missing :status"),
        ([(b":status", b"20")], "invalid :status"),
        ([(b":status", b"2000")], "invalid :status"),
        ([(b":status", b"20x")], "invalid :status"),
        ([(b":status", b"101")], "not allowed"),
        ([(b":status", b"099")], "not allowed"),
        ([(b":status", b"200"), (b":status", b"200")], "duplicate"),
        ([(b":status", b"200"), (b":path", b"/")], "pseudo-header field"),
        ([(b":status", b"200"), (b"transfer-encoding", b"chunked")], "connection-specific"),
        ([(b":status", b"200"), (b"Content-Type", b"x")], "uppercase"),
    ]:
        with pytest.raises(MalformedMessage) as e:
            check_response(fields)
        assert reason in e.value.reason, fields


def test_trailers():
    check_trailers([])
    check_trailers([(b"grpc-status", b"0"), (b"grpc-message", b"")])
    for fields in ([(b":path", b"/")], [(b"connection", b"x")], [(b"X", b"1")],
                   [(b"x", b"a\r\nb")]):
        with pytest.raises(MalformedMessage):
            check_trailers(fields)


# --------------------------------------------------------------------------
# translation

def event(fields, end_stream=True, sid=1):
    return RequestReceived(sid, fields, end_stream, *check_request(fields))


def test_to_request_get():
    req = to_request(event(BASE + [(b"accept", b"*/*"), (b"cookie", b"a=1"),
                                   (b"user-agent", b"t"), (b"cookie", b"b=2")]))
    assert (req.method, req.target, req.version) == (b"GET", b"/a?b=1", b"HTTP/2.0")
    assert req.path == b"/a" and req.query == b"b=1"
    assert req.headers == [(b"host", b"example.com"), (b"accept", b"*/*"),
                           (b"cookie", b"a=1; b=2"), (b"user-agent", b"t")]
    assert req.host == b"example.com" and req.get(b"host") == b"example.com"
    assert req.keep_alive and req.body_mode == http1.BODY_NONE and not req.chunked
    # what stream.py and the log use works on it
    assert http1.serialize_request_head(req).startswith(b"GET /a?b=1 HTTP/1.1\r\nhost:")
    assert http1.forwarding_strip(req) == 0


def test_to_request_keeps_host_field():
    fields = BASE + [(b"host", b"example.com")]
    req = to_request(event(fields))
    assert req.headers == [(b"host", b"example.com")] and req.host == b"example.com"
    req = to_request(event(BASE[:3] + [(b"host", b"h.example")]))
    assert req.host == b"h.example" and req.headers == [(b"host", b"h.example")]


def test_to_request_bodies():
    req = to_request(event(BASE + [(b"content-length", b"10")], end_stream=False))
    assert req.body_mode == http1.BODY_LENGTH and req.content_length == 10
    req = to_request(event(BASE + [(b"content-length", b"0")], end_stream=False))
    assert req.body_mode == http1.BODY_NONE
    req = to_request(event(BASE + [(b"expect", b"100-continue")], end_stream=False))
    assert req.body_mode == http1.BODY_CHUNKED and req.chunked
    assert req.headers[-1] == (b"transfer-encoding", b"chunked") and req.expect_continue
    assert h1_chunk(b"hello") == b"5\r\nhello\r\n"
    assert h1_last_chunk() == b"0\r\n\r\n"
    assert h1_last_chunk([(b"grpc-status", b"0")]) == b"0\r\ngrpc-status: 0\r\n\r\n"
    # what HTTP/1.1 reads back is the body and the trailers
    assert http1.dechunk(h1_chunk(b"ab") + h1_chunk(b"c") + h1_last_chunk()) == b"abc"


def test_to_request_of_a_known_block_copies_a_template_kept_raw():
    """A request repeating a header block the codec knows (ev.known) and
    without a body is a copy of a template whose head is the HTTP/1.1 bytes
    a server gets, fields unsplit: equal to the request made from the
    fields, and a message of its own."""
    fields = BASE + [(b"accept", b"*/*"), (b"cookie", b"a=1"), (b"cookie", b"b=2")]
    known = KnownHead(1, fields[:], check_request(fields))

    def known_event(end_stream=True):
        return RequestReceived(1, fields[:], end_stream, *known.checked, known)
    plain = to_request(event(fields[:]))
    first = to_request(known_event())               # made from the fields, template kept
    assert known.derived is not None and known.derived is not False
    second = to_request(known_event())
    assert second._headers is None and second.raw is known.derived.raw
    for req in (first, second):
        assert (req.method, req.target, req.version, req.host, req.body_mode, req.keep_alive) == (
            plain.method, plain.target, plain.version, plain.host, plain.body_mode, True)
        assert http1.head_bytes(req) == http1.serialize_request_head(plain)
    assert second.headers == plain.headers
    # edits stay in their copy
    second.append_field(b"x-forwarded-for", b"127.0.0.1")
    second.method = b"POST"
    third = to_request(known_event())
    assert http1.head_bytes(third) == http1.serialize_request_head(plain)
    assert third.method == b"GET" and third.appended() == []
    # with a body, the request is made from the fields (no template)
    assert to_request(known_event(end_stream=False)).raw is None
    # te: trailers (hop-by-hop in HTTP/1.1) is stripped on the way: no template
    te = BASE + [(b"te", b"trailers")]
    known_te = KnownHead(1, te[:], check_request(te))
    for _ in range(2):
        req = to_request(RequestReceived(1, te[:], True, *known_te.checked, known_te))
        assert req.raw is None and known_te.derived is False


def test_to_request_connect():
    req = to_request(event([(b":method", b"CONNECT"), (b":authority", b"a.example:443")],
                           end_stream=False))
    assert (req.method, req.target) == (b"CONNECT", b"a.example:443")
    assert req.host == b"a.example:443" and req.body_mode == http1.BODY_NONE


def test_response_fields():
    resp = http1.Response(200, headers=[
        (b"Content-Type", b"text/html"), (b"Connection", b"keep-alive, X-Hop"),
        (b"Keep-Alive", b"timeout=5"), (b"Transfer-Encoding", b"chunked"), (b"X-Hop", b"1"),
        (b"Upgrade", b"h2c"), (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")])
    before = list(resp.headers)
    assert response_fields(resp) == [(b":status", b"200"), (b"content-type", b"text/html"),
                                     (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    assert resp.headers == before
    # and it passes our own response checks
    check_response(response_fields(resp))


def test_response_fields_of_a_head_kept_raw_are_those_of_its_split_fields():
    """A response parsed lazily (kept raw, not split) gives the same HTTP/2
    fields from its raw head as from its fields split the usual way."""
    data = (b"HTTP/1.1 404 Not Found\r\nServer: nginx\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 3\r\nConnection: keep-alive\r\nX-A:  b c \r\n\r\nabc")

    def lazy():
        p = http1.ResponseParser()
        p.expect(b"GET")
        return p.whole_response(data)[0]
    fast = lazy()
    assert fast._headers is None
    got = response_fields(fast)
    assert fast._headers is None, "the HTTP/2 fields were made by splitting the head"
    split = lazy()
    split.headers                                       # split the usual way
    assert got == response_fields(split) == [
        (b":status", b"404"), (b"server", b"nginx"), (b"content-type", b"text/plain"),
        (b"content-length", b"3"), (b"x-a", b"b c")]
    appended = lazy()
    appended.append_field(b"Connection", b"close")      # hop-by-hop again: the slow path drops it
    assert response_fields(appended) == got


def test_head_fields_remembers_the_heads_kept_raw():
    """head_fields: response_fields, their size, and the raw head as the
    encoder's key; a head kept raw is remembered per connection (memo)
    with its status, others are not."""
    data = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 3\r\n"
            b"Connection: keep-alive\r\n\r\nabc")

    def lazy():
        p = http1.ResponseParser()
        p.expect(b"GET")
        return p.whole_response(data)[0]
    memo = {}
    first = lazy()
    fields, size, key = head_fields(first, memo)
    assert fields == response_fields(first) == [(b":status", b"200"), (b"server", b"nginx"),
                                                (b"content-length", b"3")]
    assert size == sum(len(k) + len(v) + 4 for k, v in fields)
    assert key == first.raw and [k for k in memo if k is not None] == [first.raw]
    again = lazy()
    got, _, key = head_fields(again, memo)
    assert got is fields and key is first.raw           # compared with the last one
    data404 = data.replace(b"200 OK", b"404 Not Found")
    p = http1.ResponseParser()
    p.expect(b"GET")
    assert head_fields(p.whole_response(data404)[0], memo)[0][0] == (b":status", b"404")
    assert head_fields(lazy(), memo)[0] is fields       # found in memo again
    other = lazy()
    other.status = 404                                  # a rule's set-status
    assert head_fields(other, memo)[0] == [(b":status", b"404")] + fields[1:]
    split = lazy()
    split.headers.append((b"X-A", b"1"))                # split: not keyed
    got, _, key = head_fields(split, memo)
    assert key is None and got == fields + [(b"x-a", b"1")]


def test_trailer_fields():
    assert trailer_fields([(b"Grpc-Status", b"0"), (b"Connection", b"x"), (b"TE", b"x")]) == [
        (b"grpc-status", b"0")]


def test_request_fields_and_back():
    req = http1.Request(b"POST", b"/svc/Method", b"HTTP/1.1", [
        (b"Host", b"backend:50051"), (b"Content-Type", b"application/grpc"),
        (b"TE", b"trailers"), (b"Connection", b"keep-alive, te"),
        (b"Transfer-Encoding", b"chunked")])
    req.host = b"backend:50051"
    fields = request_fields(req, b"http")
    assert fields == [(b":method", b"POST"), (b":scheme", b"http"),
                      (b":authority", b"backend:50051"), (b":path", b"/svc/Method"),
                      (b"content-type", b"application/grpc"), (b"te", b"trailers")]
    check_request(fields)
    absolute = http1.Request(b"GET", b"http://a.example/x?y", b"HTTP/1.1", [])
    assert (b":path", b"/x?y") in request_fields(absolute)
    connect = http1.Request(b"CONNECT", b"a.example:443", b"HTTP/1.1", [])
    assert request_fields(connect) == [(b":method", b"CONNECT"), (b":authority", b"a.example:443")]
    fields = [(b":status", b"404"), (b"content-length", b"3"), (b"x", b"y")]
    status, cl, regular = check_response(fields)
    resp = to_response(status, fields, regular, cl)
    assert (resp.status, resp.reason, resp.version) == (404, b"Not Found", b"HTTP/2.0")
    assert resp.headers == [(b"content-length", b"3"), (b"x", b"y")] and resp.content_length == 3
