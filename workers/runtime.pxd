# Types of workers/runtime.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md).
cimport cython
from workers.lb.pool cimport ServerPool
from workers.loop cimport Loop
from workers.server cimport ConnPool

# farm/shm.py's header cell of the server state version, as a C integer
cdef Py_ssize_t H_STATE_VERSION

cdef class Gauge:
    cdef public object cells
    cdef object _inc, _add, _cell
    cdef long long[:] q
    cdef public Py_ssize_t cur, mine
    cdef public long long peak
    @cython.locals(n=cython.longlong)
    cpdef bint take(self, long long limit=*) except -1
    cpdef long long reserve(self, long long limit=*) except -1
    cpdef confirm(self, long long n)
    cpdef give(self)
    cpdef long long value(self) except? -1

cdef class SharedCounts:
    cdef public object cells
    cdef public list cur

cdef class SharedState:
    cdef public object table, sessions, ctx_row
    cdef long long[:] q
    cdef public Py_ssize_t worker
    cdef public long long version, started_ms
    cdef public list backends, rows
    cpdef bint stale(self) except -1

cdef class SharedStatePool(ServerPool):
    cdef public SharedState shared
    cpdef pick(self, key, avoid=*)
    cpdef bint any_up(self) except -1

cdef class ServerRuntime:
    cdef public object cfg, backend, name, family, sockaddr, tls
    cdef public Gauge g
    cdef public Py_ssize_t index, sidx
    cdef public long long maxconn, shutdown_seq, addr_seq
    cdef public long long[::1] c
    cdef public bint h2

cdef class BackendRuntime:
    cdef public object cfg, name, cells, q, wakeups, waiting, req_rules, resp_rules
    cdef public SharedStatePool pool
    cdef public object key_of, cookie, errorfiles, stick
    cdef public Gauge g
    cdef public list servers, q_heads
    cdef public long long[::1] c
    cdef public bint limited, needs_source_key, forwardfor, forwarded, redispatch
    cdef public Py_ssize_t q_count, q_max, q_tail, my_head, my_count, worker
    cdef public double to_server, to_queue, to_connect, to_tunnel
    cdef public long long retries
    cdef public int reuse
    @cython.locals(srv=ServerRuntime)
    cpdef ServerRuntime acquire(self, Py_ssize_t index, bint balanced=*, ServerRuntime previous=*)
    cpdef ServerRuntime take_server(self, key, tried, forced, bint from_queue, ServerRuntime previous)
    cpdef release(self, ServerRuntime srv)
    cpdef bint must_wait(self) except -1
    cpdef long long queued(self) except? -1

cdef class FrontendRuntime:
    cdef public object cfg, name, listeners, default_backend, session_class, routes_by_l4
    cdef public object req_rules, resp_rules, choose_backend, fixed_backend, errorfiles, xff_name
    cdef public object monitor_uri, monitor_fail
    cdef public Gauge g
    cdef public long long[::1] c
    cdef public long long maxconn, max_head
    cdef public bint accepting, forwardfor, forwarded
    cdef public double to_tunnel

cdef class WorkerContext:
    cdef public Loop loop
    cdef public object config, buf, view, pipes, access, log_format
    cdef public SharedState shared
    cdef public ConnPool conn_pool
    cdef public object on_session_end, out_of_fds, tls
    cdef public set sessions
    cdef public dict backends, conn_stk
    cdef public list frontends
    cdef public long long[::1] c
    cdef public Gauge g
    cdef public long long slot, generation, maxconn
    cdef public bint draining, acme_http
    cpdef bint superseded(self) except -1
