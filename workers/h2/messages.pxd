# Types of workers/h2/messages.py for its compiled build (Cython pure mode:
# the .py is the source; farm/build.py, docs/building.md): what the codec
# (workers/h2/conn.pxd) and the client connection (workers/h2conn.pxd)
# call per request, as C calls.
cimport cython
from workers.h2.events cimport KnownHead, RequestReceived
from workers.http1 cimport Request, Response

@cython.locals(rest=list, names=list, values=list, jn=bytes, jv=bytes)
cpdef tuple _check_regular(list fields, Py_ssize_t start)
@cython.locals(i=Py_ssize_t, n=Py_ssize_t, name=bytes, value=bytes, method=bytes,
               scheme=bytes, path=bytes, authority=bytes, host=bytes, names=list, values=list)
cpdef tuple check_request(list fields, set seen=*)
@cython.locals(fields=list, hs=list, names=list, req=Request, method=bytes, authority=bytes,
               regular=Py_ssize_t, cookies=Py_ssize_t, expect=bint, field=tuple, name=bytes,
               chunked=bint)
cpdef Request _to_request(RequestReceived ev)
@cython.locals(known=KnownHead, t=Request)
cpdef Request to_request(RequestReceived ev)
cpdef _as_template(Request req)
cpdef bytes h1_chunk(bytes data)
cpdef bytes h1_last_chunk(trailers=*)
@cython.locals(hs=list, lnames=list, out=list)
cpdef list response_fields(Response resp)
@cython.locals(raw=bytes, hit=tuple, fields=list)
cpdef tuple head_fields(Response resp, dict memo)
