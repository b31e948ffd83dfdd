# Types of workers/clientconn.py for its compiled build (Cython pure mode:
# the .py is the source; farm/build.py, docs/building.md).
from workers.loop cimport Loop
from workers.transport cimport Transport
from workers.runtime cimport FrontendRuntime, WorkerContext

cdef class ClientConn:
    cdef public WorkerContext ctx
    cdef public Loop loop
    cdef public FrontendRuntime fe
    cdef public Transport t
    cdef public object src, src_port, _src_bytes, own, _dst_port
    cdef public double last_c, accept_time, t_accept
    cdef public long long requests
    cpdef response_head(self, stream, resp)
    cpdef response_data(self, stream, bytes data)
    cpdef local_reply(self, stream, bytes data)
    cpdef stream_ended(self, stream)
    cpdef bint client_room(self, stream) except -1
    cpdef body_wanted(self, stream)
    cpdef finish_io(self)
    cpdef stream_io(self, stream)
    cpdef start_tunnel(self, stream)
    cpdef tunnel_data(self, stream, bytes data)
    cpdef take_own(self, srv)
    cpdef keep_own(self, sc)
    cpdef dst_port(self)
