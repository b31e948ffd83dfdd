# Types of workers/server.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md).
cimport cython
from workers.http1 cimport Request, ResponseParser, head_bytes
from workers.loop cimport Loop
from workers.serverside cimport ServerSide
from workers.transport cimport Transport

# Constants compared on every event, as C values (workers/states.py)
cdef int EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, M_CONNECTING, M_HANDSHAKE, M_HTTP, M_TUNNEL

cdef class ServerConn:
    cdef public Transport t
    cdef public int fd, mode
    cdef public object srv, on_idle, pool, pool_key, sni
    cdef public ServerSide stream
    cdef public ResponseParser rp
    cdef public bint reused, eof, shut_after_flush, want_session
    cdef public double idle_since
    cdef public list wq
    cdef public bytes out, proxy_header
    cpdef bint send_proxy_header(self) except -1
    cpdef attach(self, stream, Loop loop, int mask)
    cpdef begin(self, Request req)
    cpdef close(self, loop)
    cpdef Py_ssize_t flush(self) except -1
    @cython.locals(n=Py_ssize_t, out=bytes)
    cpdef bint write(self) except -1
    cpdef discard_output(self)
    cpdef int mask(self, bint readable)
    cpdef bint take_whole(self, bytes data) except -1
    @cython.locals(stream=ServerSide)
    cpdef pump(self)
    @cython.locals(stream=ServerSide)
    cdef _on_event(self, int events)
    cpdef bint reusable(self)

cdef class ConnPool:
    cdef public Loop loop
    cdef public dict idle, h2
    cdef public bint sweeping
    @cython.locals(conns=list, conn=ServerConn)
    cpdef take(self, key)
    @cython.locals(conns=list, loop=Loop)
    cpdef give(self, ServerConn conn)
