# Types of workers/h1conn.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md).
from workers.http1 cimport RequestParser, Request
from workers.loop cimport Loop, Timer
from workers.runtime cimport FrontendRuntime
from workers.server cimport ServerConn
from workers.stream cimport Stream
from workers.transport cimport PlainTransport

cdef class H1Connection:
    cdef public object _dst_port, src, src_port, ctx, src_bytes
    cdef public PlainTransport t
    cdef public Loop loop
    cdef public Timer timer
    cdef public FrontendRuntime fe
    cdef public RequestParser rp
    cdef public Stream stream
    cdef public ServerConn own
    cdef public int cfd, state
    cdef public long long requests
    cdef public double accept_time, t_accept, req_start, last_c
    cdef public double to_client, to_request, to_keepalive, to_floor
    cdef public bint c_eof, c_unwanted, discarding, need_pump, req_bytes, shut_c_after_flush
    cdef public bytes out_c
    cdef public list wq_c
    cdef object __weakref__
    cpdef bint take_whole_request(self, bytes data, double now) except -1
    cpdef bint client_readable(self) except -1
    cpdef pump_request(self)
    cpdef start_stream(self, Request req, double t_start, bint whole)
    cpdef bint client_room(self) except -1
    cpdef body_wanted(self, Stream stream)
    cpdef response_head(self, Stream stream, resp)
    cpdef response_data(self, Stream stream, bytes data)
    cpdef local_reply(self, Stream stream, bytes data)
    cpdef stream_ended(self, Stream stream)
    cpdef bint write_client(self) except -1
    cpdef finish_io(self)
    cpdef update_masks(self)
    cpdef rearm(self)
