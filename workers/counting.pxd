# Types of workers/counting.py for its compiled build (Cython pure mode).
# The counters are C arrays of int64 (workers/runtime.py new_counters):
# typed views, so that a count is a C addition.
cimport cython
from libc.time cimport time as c_time
from workers.runtime cimport BackendRuntime, FrontendRuntime, ServerRuntime

cpdef Py_ssize_t status_index(long status)
@cython.locals(c='long long[::1]')
cpdef connection(FrontendRuntime fe)
@cython.locals(now=cython.longlong)
cpdef server_taken(BackendRuntime be, ServerRuntime srv, bint balanced, ServerRuntime previous)
cpdef connect_attempt(BackendRuntime be, ServerRuntime srv, bint reused=*)
cpdef _connection_error(str term, BackendRuntime be, ServerRuntime srv)
@cython.locals(q=cython.longlong, conn=cython.longlong, resp=cython.longlong, total=cython.longlong)
cpdef _ended(long long[::1] c, long long bytes_in, long long bytes_out, str term, tuple times)
@cython.locals(idx=Py_ssize_t, fc='long long[::1]', bc='long long[::1]', sc='long long[::1]',
               ms=cython.double, q=cython.double, r=cython.double)
cpdef http_txn(FrontendRuntime fe, BackendRuntime be, ServerRuntime srv, long status, str term,
               bint local, long long bytes_in, long long bytes_out, double t_start,
               double t_queue, double t_connect, double t_connected, double t_resp,
               double now_mono)
@cython.locals(c='long long[::1]')
cpdef bad_request(FrontendRuntime fe, long status, long long bytes_out)
cpdef request_bytes(FrontendRuntime fe, long long n)

# farm/shm.py's column numbers, as C integers (imported at module start)
cdef Py_ssize_t C_BIN, C_BOUT, C_CLI_ABRT, C_CONN_TOT, C_CONNECT, C_CTIME_MAX, C_CTIME_SUM
cdef Py_ssize_t C_DREQ, C_ECON, C_EREQ, C_ERESP, C_HRSP_1XX, C_HRSP_OTHER, C_INTERCEPTED
cdef Py_ssize_t C_LASTSESS, C_LBTOT, C_QTIME_MAX, C_QTIME_SUM, C_REQ_TOT, C_REUSE
cdef Py_ssize_t C_RTIME_MAX, C_RTIME_SUM, C_SRV_ABRT, C_STOT, C_TIMED, C_TTIME_MAX
cdef Py_ssize_t C_TTIME_SUM, C_WREDIS, C_WRETR
