# Types of workers/h1conn.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md).
cimport cython
from workers.clientconn cimport ClientConn
from workers.counting cimport request_bytes
from workers.http1 cimport RequestParser, Request, Response, head_bytes, parse_whole_request
from workers.loop cimport Timer
from workers.stream cimport Stream

# Constants compared on every event, as C values: a Python global costs a
# dictionary lookup and an int object per comparison. Assigned at import
# from the .py's own definitions and imports (workers/states.py); nothing
# may import them from this module.
cdef int C_REQ, C_STREAM, C_TUNNEL, C_CLOSING, C_LINGER, C_CLOSED, C_HANDSHAKE
cdef int EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, ST_SERVER, ST_TUNNEL
cdef Py_ssize_t HIGH_WATER
cdef double INF, DRAIN_IDLE_GRACE

cdef class H1Connection(ClientConn):
    cdef public Timer timer
    cdef public RequestParser rp
    cdef public Stream stream
    cdef public int cfd, state
    cdef public double req_start
    cdef public double to_client, to_request, to_keepalive, to_floor
    cdef public bint c_eof, c_unwanted, discarding, need_pump, req_bytes, shut_c_after_flush
    cdef public bytes out_c
    cdef public list wq_c
    cdef object __weakref__
    cpdef bint take_whole_request(self, bytes data, double now) except -1
    cpdef bint client_readable(self) except -1
    cpdef pump_request(self)
    cpdef start_stream(self, Request req, double t_start, bint whole)
    cpdef body_wanted(self, stream)
    @cython.locals(s=Stream, r=Response, req=Request, head=bytes)
    cpdef response_head(self, stream, resp)
    cpdef response_data(self, stream, bytes data)
    cpdef local_reply(self, stream, bytes data)
    cpdef stream_ended(self, stream)
    cpdef queue_c(self, data)
    @cython.locals(n=Py_ssize_t, out=bytes)
    cpdef bint write_client(self) except -1
    cpdef update_masks(self)
    cpdef rearm(self)
    cpdef linger(self)
    cpdef close_session(self)
