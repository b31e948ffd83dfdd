"""Request smuggling and malformed requests through the real farm: every
case is refused with the right status, the connection is closed, and
NOTHING reaches the server (the backend records every byte it receives).

One farm and one backend serve the whole module (a farm start costs more
than all these requests); each test resets the backend's records first.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.backends import free_port
from tests.integration.conftest import Farm
from tests.integration.http_backend import HttpBackend, RawClient
from tests.integration.test_http import config, parse_log, servers


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    backend = HttpBackend("s1")
    port = free_port()
    farm = Farm(tmp_path_factory.mktemp("smuggling"),
                config(port, "[backends.be]\n" + servers("be", backend))).start()
    yield farm, port, backend
    farm.stop()
    backend.close()


H = b"Host: test.local\r\n"

CASES = {
    # framing conflicts
    "cl_and_te": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "te_and_cl": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                  b"Content-Length: 5\r\n\r\n0\r\n\r\n"),
    "two_different_cl": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
                         b"Content-Length: 6\r\n\r\nhello!"),
    "cl_list": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello"),
    "cl_plus_sign": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello"),
    "cl_minus_sign": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n"),
    "cl_hex": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello"),
    "cl_space_inside": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 1 0\r\n\r\n0123456789"),
    "te_xchunked": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    "te_chunked_identity": (400, b"POST /echo HTTP/1.1\r\n" + H
                            + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
    "te_identity": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\nhello"),
    "te_chunked_twice": (400, b"POST /echo HTTP/1.1\r\n" + H
                         + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    "te_two_fields": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "te_gzip_chunked": (501, b"POST /echo HTTP/1.1\r\n" + H
                        + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    "te_space_before_colon": (400, b"POST /echo HTTP/1.1\r\n" + H
                              + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
    "te_tab_value": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n"),
    "te_in_http10": (400, b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "bad_chunk_size": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nhello\r\n0\r\n\r\n"),
    "chunk_size_0x": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                      b"0x5\r\nhello\r\n0\r\n\r\n"),
    "chunk_size_bare_lf": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                           b"5\nhello\r\n0\r\n\r\n"),
    "chunk_data_too_long": (400, b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                            b"3\r\nhello\r\n0\r\n\r\n"),
    # header syntax
    "obs_fold": (400, b"GET /name HTTP/1.1\r\n" + H + b"X-Long: a\r\n  folded\r\n\r\n"),
    "nul_in_value": (400, b"GET /name HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n"),
    "bare_cr_in_value": (400, b"GET /name HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n"),
    "bare_lf_in_value": (400, b"GET /name HTTP/1.1\r\n" + H + b"X-A: a\nb\r\n\r\n"),
    "space_in_name": (400, b"GET /name HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n"),
    "no_colon": (400, b"GET /name HTTP/1.1\r\n" + H + b"X-A b\r\n\r\n"),
    "two_hosts": (400, b"GET /name HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"),
    "no_host_http11": (400, b"GET /name HTTP/1.1\r\nX-A: b\r\n\r\n"),
    "bad_host": (400, b"GET /name HTTP/1.1\r\nHost: a b\r\n\r\n"),
    # request line
    "http20_request_line": (505, b"GET /name HTTP/2.0\r\n" + H + b"\r\n"),
    "http09_request_line": (505, b"GET /name HTTP/0.9\r\n" + H + b"\r\n"),
    "lowercase_version": (400, b"GET /name http/1.1\r\n" + H + b"\r\n"),
    "double_space": (400, b"GET  /name HTTP/1.1\r\n" + H + b"\r\n"),
    "fragment_in_target": (400, b"GET /name#x HTTP/1.1\r\n" + H + b"\r\n"),
    "bare_lf_line_ends": (400, b"GET /name HTTP/1.1\n" + H + b"\n"),
    "tls_client_hello": (400, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40)),
    # sizes
    "head_over_16k": (431, b"GET /name HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 17000 + b"\r\n\r\n"),
    "many_headers": (431, b"GET /name HTTP/1.1\r\n" + H
                     + b"".join(b"X-H%d: v\r\n" % i for i in range(120)) + b"\r\n"),
    "uri_over_16k": (414, b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\n" + H + b"\r\n"),
    # absolute form: the server must use the target's authority (RFC 9112
    # 3.2.2), so a Host naming another one would let rules judge the wrong host
    "absolute_form_host_differs": (400, b"GET http://admin.example/secret HTTP/1.1\r\n"
                                   b"Host: public.example\r\n\r\n"),
    "absolute_form_host_other_port": (400, b"GET http://test.local:8080/name HTTP/1.1\r\n" + H + b"\r\n"),
}


BODY_ERRORS = {"bad_chunk_size", "chunk_size_0x", "chunk_size_bare_lf", "chunk_data_too_long"}


def read_answer(c: RawClient) -> bytes:
    """Everything farm sends until it closes (it must close)."""
    c.sock.settimeout(3)
    return c.read_all()


@pytest.mark.parametrize("case", sorted(CASES))
def test_smuggling_refused_and_nothing_reaches_the_server(site, case):
    farm, port, backend = site
    status, raw = CASES[case]
    backend.reset()
    n0 = len(farm.access_lines())
    with RawClient(port) as c:
        c.send(raw)
        answer = read_answer(c)
    assert answer.startswith(b"HTTP/1.1 %d " % status), (case, answer[:200])
    assert b"\r\nConnection: close\r\n" in answer.split(b"\r\n\r\n")[0] + b"\r\n"
    time.sleep(0.05)
    assert backend.requests == [] and backend.bytes_received == 0, (case, backend.raw)
    # logged once, as a request the proxy refused
    deadline = time.monotonic() + 2
    while len(farm.access_lines()) <= n0 and time.monotonic() < deadline:
        time.sleep(0.02)
    lines = farm.access_lines()[n0:]
    assert len(lines) == 1, lines
    rec = parse_log(lines[0])
    assert rec["status"] == str(status), lines
    if case in BODY_ERRORS:
        # the head was valid and a server picked (nothing was sent to it
        # yet): the proxy refused the body, HAProxy's PD
        assert rec["tsc"][:2] == "PD", lines
    else:
        assert rec["s"] == "<NOSRV>" and rec["tsc"][:2] == "PR", lines


def test_smuggled_request_after_a_valid_one_is_not_forwarded(site):
    """A valid request pipelined with an invalid one: the first is served,
    the second refused, and the server sees only the first."""
    farm, port, backend = site
    backend.reset()
    with RawClient(port) as c:
        c.send(b"GET /name HTTP/1.1\r\n" + H + b"\r\n" + CASES["cl_and_te"][1])
        r = c.read_response()
        assert (r.status, r.body) == (200, b"s1")
        assert read_answer(c).startswith(b"HTTP/1.1 400 ")
    assert backend.paths() == ["/name"]
    assert len(backend.requests) == 1


def test_identical_duplicate_content_length_is_collapsed(site):
    """Two equal Content-Lengths are accepted (RFC 9112 6.3) and the server
    sees only one."""
    farm, port, backend = site
    backend.reset()
    with RawClient(port) as c:
        c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
        r = c.read_response("POST")
        assert (r.status, r.body) == (200, b"hello")
    assert backend.requests[0].header_all("Content-Length") == ["5"]


def test_chunked_in_other_case_is_canonicalised(site):
    farm, port, backend = site
    backend.reset()
    with RawClient(port) as c:
        c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        assert c.read_response("POST").body == b"hello"
    assert backend.requests[0].header("Transfer-Encoding") == "chunked"


def test_connection_header_cannot_strip_framing_fields(site):
    """`Connection: Content-Length` must not make the proxy drop the length
    of a body it forwards (the server would read the body as a request)."""
    farm, port, backend = site
    backend.reset()
    with RawClient(port) as c:
        c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Connection: Content-Length, X-Drop\r\n"
               b"X-Drop: 1\r\nContent-Length: 5\r\n\r\nhello")
        assert c.read_response("POST").body == b"hello"
    got = backend.requests[0]
    assert got.header("Content-Length") == "5" and got.header("X-Drop") is None
    assert got.header("Connection") is None


def test_invalid_response_becomes_502_and_is_not_relayed(site):
    farm, port, backend = site
    backend.reset()
    with RawClient(port) as c:
        r = c.request("GET", "/badresponse")
        assert r.status == 502
        assert b"Bad Header" not in r.head + r.body


def test_absolute_form_cannot_pass_a_host_acl(tmp_path):
    """`GET http://admin.example/...` with `Host: public.example` used to get
    past a deny on hdr(host) and reach the server, which serves the URL's
    host. Now it is refused; with a matching Host the deny applies; another
    host is served, and the server sees one host."""
    backend = HttpBackend("s1")
    port = free_port()
    deny = """
[frontends.fe.acl]
admin = "hdr(host) -i admin.example"
[[frontends.fe.http_request]]
action = "deny"
if = "admin"
"""
    farm = Farm(tmp_path, config(port, "[backends.be]\n" + servers("be", backend), frontend=deny)).start()
    try:
        answers = {}
        for name, raw in {
            "differs": b"GET http://admin.example/secret HTTP/1.1\r\nHost: public.example\r\n\r\n",
            "same": b"GET http://admin.example/secret HTTP/1.1\r\nHost: ADMIN.example\r\n\r\n",
            "public": b"GET http://public.example/name HTTP/1.1\r\nHost: public.example\r\n\r\n",
        }.items():
            with RawClient(port) as c:
                c.send(raw)
                answers[name] = c.read_response()
        assert answers["differs"].status == 400
        assert answers["same"].status == 403
        assert (answers["public"].status, answers["public"].body) == (200, b"s1")
        assert backend.paths() == ["http://public.example/name"] or backend.paths() == ["/name"]
        assert [r.header("Host") for r in backend.requests] == ["public.example"]
    finally:
        farm.stop()
        backend.close()
