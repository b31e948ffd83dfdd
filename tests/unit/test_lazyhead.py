"""workers/lazyhead.py: answers from an unsplit head equal the split fields'."""

import random

from workers import http1, lazyhead
from workers.http1 import parse_whole_request

HEADS = [
    b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
    b"GET /x?y HTTP/1.1\r\nhost:b\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n",
    b"GET / HTTP/1.1\r\nHOST:  c  \r\nX-A: 1\r\nx-a:\t2 , 3 \t\r\nConnection: keep-alive\r\nX-A:\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-Forwarded-Protocol: no\r\nHost: d\r\nX-Forwarded-Prot: no\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: e\r\nConnection: close\r\nx-forwarded-proto:http\r\n\r\n",
]
NAMES = [b"host", b"x-a", b"x-forwarded-proto", b"accept", b"connection", b"x", b"x-forwarded-protocol",
         b"x-forwarded-prot", b"h", b"hosts"]


def lazy(head: bytes):
    req = parse_whole_request(head)
    assert lazyhead.is_lazy(req), head
    return req


def split_values(req, name):
    return [v for k, v in req.headers if k.lower() == name]


def test_answers_equal_the_split_fields():
    for head in HEADS:
        for extra in ([], [(b"X-A", b"9")], [(b"Host", b"z"), (b"x-b", b"")]):
            for name in NAMES:
                req = lazy(head)
                for k, v in extra:
                    req.append_field(k, v)
                has = lazyhead.has_field(req, name)
                last = lazyhead.last_value(req, name)
                assert lazyhead.is_lazy(req)          # nothing split it
                values = split_values(req, name)
                assert has == bool(values), (head, extra, name)
                assert last == (values[-1] if values else None), (head, extra, name)


def test_not_lazy():
    assert not lazyhead.is_lazy(http1.Request())
    req = lazy(HEADS[0])
    req.headers
    assert not lazyhead.is_lazy(req)
    assert not lazyhead.is_lazy(object())


def test_value_ok_is_check_fields_table():
    rnd = random.Random(5)
    for _ in range(2000):
        v = bytes(rnd.choice(range(256)) for _ in range(rnd.randint(0, 6)))
        assert lazyhead.value_ok(v) == (v.translate(http1._VALUE_OK_T) == v)


def test_path_tests_equal_the_split_path():
    pats = [(b"/api/",), (b"/",), (b".css", b".js"), (b"?",), (b"",), (b"/a?b",), (b"x", b"/api/v1/x"),
            (b"http:",), (b"*",)]
    targets = [b"/", b"/api/", b"/api/v1/x?q=.css", b"/s.css", b"/s.css?x.js", b"/?a", b"/a?b?c",
               b"*", b"http://h", b"http://h/api/x.js?y", b"h:443", b"/x.js"]
    for t in targets:
        for ps in pats:
            for touch in (False, True):
                req = http1.Request(target=t)
                if touch:
                    req.path      # split already: the cached path is read
                want = http1.Request(target=t).path
                assert lazyhead.path_starts(req, ps) == want.startswith(ps), (t, ps)
                assert lazyhead.path_ends(req, ps) == want.endswith(ps), (t, ps)
    req = http1.Request(target=b"/a/b.css?x")
    req.path = b"/z.js"
    assert lazyhead.path_ends(req, (b".js",)) and not lazyhead.path_ends(req, (b".css",))
    req.target = b"/api/x"
    assert lazyhead.path_starts(req, (b"/api/",))
