# Types of farm/logs.py for its compiled build (Cython pure mode: the .py
# is the source; farm/build.py, docs/building.md). The httplog line is
# made once per request: its numbers are C integers (httplog_text takes
# them as such from the worker, workers/stream.py), turned into text
# from _SMALL or formatted without a Python int each.
cimport cython

ctypedef const unsigned char *cbytes     # a bytes object's buffer, read in place

@cython.locals(port=cython.longlong, tr=cython.longlong, tw=cython.longlong,
               tc=cython.longlong, trs=cython.longlong, ta=cython.longlong,
               status=cython.longlong, nbytes=cython.longlong, ac=cython.longlong,
               fc=cython.longlong, bc=cython.longlong, sc=cython.longlong,
               retries=cython.longlong, sq=cython.longlong, bq=cython.longlong, t=cython.double,
               redispatched=cython.bint)
cpdef str httplog_values(tuple v)

cpdef str haproxy_date(double epoch)

@cython.locals(sec=cython.longlong)
cdef str _date_second(double epoch)

@cython.locals(sec=cython.longlong, ms=cython.longlong)
cdef str _date_millis(double epoch)

cdef long long _SMALL_MIN, _SMALL_MAX
cdef tuple _SMALL, _MILLIS

cdef str _num(long long n)

cpdef str httplog_text(ip, long long port, double t, fe, be, srv, long long tr, long long tw,
                       long long tc, long long trs, long long ta, long long status,
                       long long nbytes, cc, cs, ts1, ts2, ts3, long long ac, long long fc,
                       long long bc, long long sc, long long retries, bint redispatched,
                       long long sq, long long bq, request)

@cython.locals(rc=str)
cdef str _httplog_joined(ip, long long port, double t, fe, be, srv, long long tr, long long tw,
                         long long tc, long long trs, long long ta, long long status,
                         long long nbytes, cc, cs, ts1, ts2, ts3, long long ac, long long fc,
                         long long bc, long long sc, long long retries, bint redispatched,
                         long long sq, long long bq, str request)

ctypedef unsigned char *wbytes           # a bytearray's buffer, written in place
cdef bytearray _LINE
cdef bytes _HEX_DIGITS
cdef Py_ssize_t _MARGIN

@cython.locals(buf=bytearray, p=wbytes, lim=Py_ssize_t, i=Py_ssize_t, parts=tuple, k=Py_ssize_t)
cdef _httplog_fast(ip, long long port, double t, fe, be, srv, long long tr, long long tw,
                   long long tc, long long trs, long long ta, long long status,
                   long long nbytes, cc, cs, ts1, ts2, ts3, long long ac, long long fc,
                   long long bc, long long sc, long long retries, bint redispatched,
                   long long sq, long long bq, request)

@cython.locals(text=str, ch=Py_UCS4, c=cython.uint)
cdef Py_ssize_t _put_text(wbytes p, Py_ssize_t pos, Py_ssize_t lim, s)

@cython.locals(end=Py_ssize_t, i=Py_ssize_t, u=cython.ulonglong, m=cython.ulonglong)
cdef Py_ssize_t _put_int(wbytes p, Py_ssize_t pos, Py_ssize_t lim, long long n)

@cython.locals(n=Py_ssize_t, q=cbytes, digits=bytes, h=cbytes, k=Py_ssize_t, c=cython.uchar)
cdef Py_ssize_t _put_request(wbytes p, Py_ssize_t pos, Py_ssize_t lim, bytes request)

# The access-log writer: an extension type, so that the worker's
# per-request write (workers/stream.py log) is a C call.
cdef class AccessLog:
    cdef public object target, spec, syslog_format, facility, tag, hostname, fd, sock, mode
    cdef public object pending, dropped, _own_fd, _pid, _next_connect, _addr, _hdr_sec, _hdr
    cdef public bint enabled
    cdef public list buf
    cpdef write(self, line)
