# Types of workers/accept.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md).
from workers.runtime cimport FrontendRuntime, Gauge, WorkerContext

cdef class Acceptor:
    cdef public object worker, accept_fd, session_class, sock_class
    cdef public WorkerContext ctx
    cdef public FrontendRuntime fe
    cdef public int family, sock_type, proto
