# Types of workers/http1.py for its compiled build (Cython pure mode: the .py
# is the source; farm/build.py, docs/building.md).
cimport cython
from libc.string cimport memcmp

ctypedef const unsigned char *cbytes     # a bytes object's buffer, read in place

cdef class _Message:
    cdef public bytes raw
    cdef public tuple _base
    cdef public list _headers, _appended
    cdef public Py_ssize_t _cut_from, _cut_to, hop
    cdef public object content_length, upgrade, body_mode
    cdef public bint chunked, keep_alive
    cpdef tuple _start_line(self)
    cpdef bint _same_start_line(self, tuple base)
    @cython.locals(cl=object, conn=bytes, cut_from=Py_ssize_t, cut_to=Py_ssize_t)
    cdef _lazy_framing(self, tuple plain, bint v11)
    @cython.locals(eol=Py_ssize_t, end=Py_ssize_t)
    cdef list _raw_fields(self, bint lower)
    @cython.locals(hs=list)
    cpdef list _split_raw(self)
    @cython.locals(hop=Py_ssize_t, p=cbytes)
    cpdef _keep_raw(self, bytes raw)
    cpdef appended(self)
    cpdef append_field(self, bytes name, bytes value)
    cpdef lowercase_fields(self)
    cdef _copy_raw_head(self, _Message r)

cdef class Request(_Message):
    cdef public bytes method, _target, _path, _query, _prefix, version
    cdef public object host
    cdef public bint expect_continue
    @cython.locals(r=Request)
    cpdef Request _lazy_copy(self)
    cpdef tuple _start_line(self)
    cpdef bint _same_start_line(self, tuple base)

cdef class Response(_Message):
    cdef public object status
    cdef public bytes reason, version
    @cython.locals(r=Response)
    cpdef Response _lazy_copy(self)
    cpdef tuple _start_line(self)
    cpdef bint _same_start_line(self, tuple base)

cdef class _Parser:
    cdef public bytes _buf
    cdef public Py_ssize_t _pos, _scan, _checked, _empty, _state, _cstate, _after_end, _remaining
    cdef public Py_ssize_t max_head, max_headers
    cdef public bint _eof
    cdef public object _error, _pending_error, message, body_mode

cdef class RequestParser(_Parser):
    @cython.locals(req=Request)
    cpdef whole_request(self, bytes data)

cdef class _SeenHead:
    cdef public bytes head
    cdef public Response resp
    cdef public Py_ssize_t max_head, max_headers
    cpdef remember(self, bytes head, Response resp, Py_ssize_t max_head, Py_ssize_t max_headers)

cdef class ResponseParser(_Parser):
    cdef public list _expected
    cpdef bint drained(self)
    cpdef expect(self, bytes method, bint upgrade=*)
    @cython.locals(n=Py_ssize_t, end=Py_ssize_t, start=Py_ssize_t, resp=Response, p=cbytes,
                   seen=_SeenHead, known=cython.bint, head=bytes)
    cpdef whole_response(self, bytes data)


cdef _SeenHead _SEEN

@cython.locals(n=Py_ssize_t, p=cbytes, q=cbytes)
cpdef bint _starts_with(bytes buf, bytes prefix)

@cython.locals(eol=Py_ssize_t, sp1=Py_ssize_t, sp2=Py_ssize_t, p=cbytes, method=bytes, target=bytes,
               version=bytes, v11=cython.bint, bad_version=cython.bint, chunked=cython.bint, r=Request,
               hs=list, lnames=list, specials=list)
cpdef Request _build_request(bytes buf, Py_ssize_t start, Py_ssize_t end, Py_ssize_t max_headers,
                             bint lazy=*)

@cython.locals(r=Request, plain=tuple)
cdef Request _plain_request(list specials, bint v11, Py_ssize_t head_start)

@cython.locals(eol=Py_ssize_t, sp1=Py_ssize_t, sp2=Py_ssize_t, p=cbytes, version=bytes, code=bytes,
               reason=bytes, status=cython.longlong, v11=cython.bint, chunked=cython.bint, r=Response,
               hs=list, lnames=list, specials=list)
cpdef Response _build_response(bytes buf, Py_ssize_t start, Py_ssize_t end, Py_ssize_t max_headers,
                               bint lazy=*)

@cython.locals(r=Response, plain=tuple)
cdef Response _plain_response(list specials, bint v11, Py_ssize_t head_start)

@cython.locals(lname=bytes, value=bytes, conn=bytes, host=bytes, line_start=Py_ssize_t,
               line_end=Py_ssize_t, r_from=Py_ssize_t, r_to=Py_ssize_t, n=cython.longlong)
cdef tuple _plain_fields(list specials, Py_ssize_t head_start, bint want_host)

@cython.locals(p=cbytes, n=Py_ssize_t)
cpdef Py_ssize_t _find_crlf(bytes buf, Py_ssize_t i) except -2

@cython.locals(p=cbytes, j=Py_ssize_t, c=cython.uchar)
cpdef Py_ssize_t _head_end(bytes buf, Py_ssize_t i, Py_ssize_t limit) except -2

@cython.locals(p=cbytes)
cpdef Py_ssize_t _find_byte(bytes buf, unsigned char c, Py_ssize_t i, Py_ssize_t end) except -2

@cython.locals(p=cbytes, t=cbytes, i=Py_ssize_t)
cpdef bint _only(bytes s, bytes table) except -1

@cython.locals(p=cbytes, n=Py_ssize_t, i=Py_ssize_t, d=cython.uint, v=cython.longlong)
cpdef long long _decimal(bytes s) except -2

cdef unsigned long long _SPECIAL_LENGTHS
cdef bytes _SPECIAL_FIRST

@cython.locals(tchar_t=bytes, vchar_t=bytes, tchar=cbytes, vchar=cbytes, p=cbytes, hs=list, i=Py_ssize_t, start=Py_ssize_t, n=Py_ssize_t,
               name_end=Py_ssize_t, value_start=Py_ssize_t, value_end=Py_ssize_t, c=cython.uchar,
               name=bytes, lname=bytes)
cpdef list _fields(bytes buf, Py_ssize_t a, Py_ssize_t b, status, Py_ssize_t max_headers, what=*,
                   list specials=*, bint lower=*)

@cython.locals(parts=list, k=bytes, v=bytes)
cpdef bytes _append_fields(bytes raw, list extra)

@cython.locals(n=Py_ssize_t, req=Request)
cpdef Request parse_whole_request(bytes data, Py_ssize_t max_head=*, Py_ssize_t max_headers=*)

cpdef _hop_kind(sp, list hs, list lnames)

cpdef _conn_tokens(list hs, list lnames, status)

cpdef _content_length(list hs, list lnames, status)

cpdef bytes _cut_field(list headers, Py_ssize_t i, bytes raw)

@cython.locals(extra=list)
cpdef bytes head_bytes(_Message msg)

@cython.locals(extra=list)
cpdef Py_ssize_t forwarding_strip(_Message msg, bint keep_upgrade=*) except -1

@cython.locals(p=cbytes, n=Py_ssize_t, i=Py_ssize_t, c=cython.uchar)
cdef Py_ssize_t _line_breaks(bytes data)
