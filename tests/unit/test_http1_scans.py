"""The byte scans of workers/http1.py: in the compiled build they are C
loops, in the pure build the bytes methods. Both builds run this file
(make test), and each answer is compared with the bytes method's, so the
two builds agree with each other by way of Python's own bytes."""

from hypothesis import given, settings, strategies as st

from workers import http1

# bytes rich in CR, LF and spaces, where the scans have their cases
_BYTES = st.lists(st.sampled_from(b"\r\n \r\nab:0912\x00\xff"), max_size=40).map(bytes)


@settings(max_examples=400)
@given(_BYTES, st.integers(0, 45))
def test_find_crlf_is_bytes_find(buf, i):
    assert http1._find_crlf(buf, i) == buf.find(b"\r\n", i)


@settings(max_examples=600)
@given(_BYTES, st.integers(0, 45), st.integers(0, 50))
def test_head_end_is_bytes_find(buf, i, limit):
    assert http1._head_end(buf, i, limit) == buf.find(b"\r\n\r\n", i, limit)


def test_head_end_cases():
    head = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody\r\n\r\n"
    assert http1._head_end(head, 0, len(head)) == head.index(b"\r\n\r\n")
    assert http1._head_end(head, 0, 25) == 21           # the match ends at 25
    assert http1._head_end(head, 0, 24) == -1           # cut by the limit
    assert http1._head_end(b"\n\r\n\r\n", 0, 5) == 1    # after a lone LF
    assert http1._head_end(b"\r\r\n\r\n", 0, 5) == 1    # after a lone CR
    assert http1._head_end(b"", 0, 10) == -1


@settings(max_examples=400)
@given(_BYTES, st.sampled_from(b" :\r\x00\xff"), st.integers(0, 45), st.integers(0, 45))
def test_find_byte_is_bytes_find(buf, c, i, end):
    end = min(end, len(buf))
    assert http1._find_byte(buf, c, i, end) == buf.find(c, i, end)


@settings(max_examples=400)
@given(st.binary(max_size=30))
def test_only_is_translate(s):
    for table in (http1._TCHAR_T, http1._HOST_OK_T, http1._REASON_OK_T):
        assert http1._only(s, table) == (s.translate(table) == s)


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=20),
                 st.integers(0, 10 ** 19).map(lambda n: str(n).encode())))
def test_decimal_is_int_of_digits(s):
    want = int(s) if 0 < len(s) <= 18 and s.isdigit() else -1
    assert http1._decimal(s) == want


def test_decimal_edges():
    assert http1._decimal(b"0") == 0
    assert http1._decimal(b"999999999999999999") == 999999999999999999   # 18 digits
    assert http1._decimal(b"1000000000000000000") == -1                 # 19
    assert http1._decimal(b"") == -1
    assert http1._decimal(b"/") == -1 and http1._decimal(b":") == -1    # around the digits
    assert http1._decimal(b"+1") == -1 and http1._decimal(b" 1") == -1
