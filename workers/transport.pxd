# Types of workers/transport.py for its compiled build (Cython pure mode:
# the .py is the source; farm/build.py, docs/building.md).

cdef class Transport:
    cdef public object _sock, bind_name, proxy
    cdef public int fd
    cdef public bint wants_write, secure, established
    cpdef bint handshake(self) except -1
    cpdef recv(self)
    cpdef Py_ssize_t send(self, data) except -1
    cpdef shutdown_write(self)
    cpdef drop_socket(self)
    cpdef close(self)
    cpdef local_port(self)

cdef class PlainTransport(Transport):
    cpdef recv(self)
    cpdef Py_ssize_t send(self, data) except -1
    cpdef shutdown_write(self)
