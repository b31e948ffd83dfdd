# Types of workers/transport.py for its compiled build (Cython pure mode:
# the .py is the source; farm/build.py, docs/building.md).

cimport cython
from libc.errno cimport EAGAIN, EINTR, errno
from posix.unistd cimport read, write

ctypedef const unsigned char *cbytes

cdef unsigned char _RECV_BUF[65536]     # PlainTransport.recv reads here (RECV_SIZE)

cdef class Transport:
    cdef public object _sock, bind_name, proxy
    cdef public int fd
    cdef public bint wants_write, secure, established
    cpdef bint handshake(self) except -1
    cpdef recv(self)
    cpdef Py_ssize_t send(self, data) except -1
    cpdef bint shutdown_write(self) except -1
    cpdef drop_socket(self)
    cpdef close(self)
    cpdef local_port(self)

cdef class PlainTransport(Transport):
    @cython.locals(n=Py_ssize_t, p=cbytes)
    cpdef recv(self)
    @cython.locals(n=Py_ssize_t, p=cbytes)
    cpdef Py_ssize_t send(self, data) except -1
    cpdef bint shutdown_write(self) except -1

cdef class TlsTransport(Transport):
    cdef public object _cert, _ssl, sni
    cdef object __weakref__        # ssl's C layer refers to its owner weakly
    cpdef bint handshake(self) except -1
    cpdef recv(self)
    cpdef Py_ssize_t send(self, data) except -1
    cpdef bint shutdown_write(self) except -1

cdef class ServerTlsTransport(TlsTransport):
    cdef public object server_name
    cdef public bint session_taken
