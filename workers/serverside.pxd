# Types of workers/serverside.py for its compiled build (Cython pure mode:
# the .py is the source; farm/build.py, docs/building.md).
from workers.http1 cimport Response
from workers.loop cimport Loop

cdef class ServerSide:
    cdef public Loop loop
    cdef public double last_s
    cpdef server_connected(self)
    cpdef server_connect_failed(self, bint timeout=*)
    cpdef bint server_readable(self) except -1
    cpdef bint awaiting_response(self) except -1
    cpdef server_whole(self, Response resp, bytes body)
    cpdef server_head(self, Response resp)
    cpdef server_data(self, bytes data)
    cpdef server_end(self)
    cpdef server_error(self, reason)
    cpdef server_closed_early(self)
    cpdef server_tunnel(self)
    cpdef server_tunnel_data(self, bytes data)
    cpdef finish_io(self)
