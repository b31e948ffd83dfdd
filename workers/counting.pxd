# Types of workers/counting.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md).
cimport cython
from workers.runtime cimport BackendRuntime, FrontendRuntime, ServerRuntime
from workers.stream cimport Stream

cpdef Py_ssize_t status_index(long status)
cpdef connection(FrontendRuntime fe)
cpdef server_taken(BackendRuntime be, ServerRuntime srv, bint balanced, ServerRuntime previous)
cpdef connect_attempt(BackendRuntime be, ServerRuntime srv, bint reused=*)
cpdef _connection_error(str term, BackendRuntime be, ServerRuntime srv)
@cython.locals(q=cython.longlong, conn=cython.longlong, resp=cython.longlong, total=cython.longlong)
cpdef _ended(list c, long long bytes_in, long long bytes_out, str term, tuple times)
@cython.locals(idx=Py_ssize_t, fc=list, bc=list, sc=list, ms=cython.double, q=cython.double,
               r=cython.double)
cpdef http_txn(Stream txn, FrontendRuntime fe, double now_mono)
cpdef bad_request(FrontendRuntime fe, long status, long long bytes_out)
cpdef request_bytes(FrontendRuntime fe, long long n)
