# Types of workers/stream.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md). The client
# connection is typed by its interface (workers/clientconn.py): HTTP/1.1
# and HTTP/2 connections alike.
cimport cython
from farm.logs cimport AccessLog, httplog_text
from workers.clientconn cimport ClientConn
from workers.counting cimport connect_attempt, http_txn
from workers.http1 cimport Request, Response, forwarding_strip
from workers.lazyhead cimport has_field, is_lazy
from workers.loop cimport Loop
from workers.rules cimport apply_rules, choose_with
from workers.runtime cimport BackendRuntime, FrontendRuntime, ServerRuntime, WorkerContext
from workers.server cimport ServerConn
from workers.serverside cimport ServerSide

# Constants compared on every event, as C values (workers/states.py)
cdef int EPOLLIN, EPOLLOUT, M_HTTP, REUSE_ALWAYS, REUSE_NEVER, REUSE_SAFE
cdef int ST_CONNECTING, ST_DONE, ST_QUEUED, ST_RULES, ST_SERVER, ST_TARPIT, ST_TUNNEL, ST_TURNAROUND

cdef class Stream(ServerSide):
    cdef public ClientConn conn
    cdef public object resp, src, src_port, _rules_src, key, forced_server
    cdef public object term, cc, cs, request_line, tried, t_retry, stk, peer
    cdef public FrontendRuntime fe
    cdef public BackendRuntime be
    cdef public ServerRuntime srv
    cdef public ServerConn sc
    cdef public Request req
    cdef public int state, status
    cdef public double t_start, t_head, t_queue, t_connect, t_connected, t_resp, to_tunnel
    cdef public long long bytes_out, bytes_in, retries
    cdef public bint redispatched, close, resp_started, req_done, local, released, unlogged
    @cython.locals(fe=FrontendRuntime, be=BackendRuntime, req=Request)
    cpdef start(self)
    cpdef monitor_reply(self)
    cpdef bint acme_challenge(self) except -1
    cpdef prepare_request(self, BackendRuntime be)
    cpdef request_data(self, bytes data)
    cpdef request_end(self)
    cpdef bint wants_request_body(self) except -1
    cpdef bint server_room(self) except -1
    cpdef connect_server(self)
    cpdef take_server(self, bint from_queue=*)
    @cython.locals(sc=ServerConn, conn=ClientConn)
    cpdef use_server(self, ServerRuntime srv)
    cpdef open_connection(self, ServerRuntime srv, key=*)
    cpdef use_h2_server(self, ServerRuntime srv, key)
    cpdef server_ready(self)
    cpdef server_connected(self)
    cpdef server_connect_failed(self, bint timeout=*)
    cpdef server_error(self, reason)
    cpdef server_closed_early(self)
    cpdef server_tunnel(self)
    cpdef server_tunnel_data(self, bytes data)
    cpdef bint awaiting_response(self) except -1
    cpdef bint server_readable(self) except -1
    cpdef server_whole(self, Response resp, bytes body)
    cpdef server_data(self, bytes data)
    cpdef server_head(self, Response resp)
    cpdef server_end(self)
    cpdef double deadline(self) except? -1
    cpdef reply_locally(self, int status, bytes data, term)
    cpdef end(self)
    cpdef finish(self)
    cpdef release_server(self)
    cpdef drop_server_conn(self)
    cpdef finish_io(self)
    @cython.locals(conn=ClientConn, ctx=WorkerContext, access=AccessLog)
    cpdef log(self)
    @cython.locals(conn=ClientConn, be=BackendRuntime, srv=ServerRuntime, fe=FrontendRuntime)
    cpdef str httplog_line(self, double now)
    @cython.locals(t_queue=double, t_connect=double)
    cdef long long _log_tw(self, double now)
    cdef long long _log_tc(self)
    cdef long long _log_tr(self)
    cpdef tuple log_record(self, double now)

@cython.locals(xfp=tuple)
cpdef set_forwarded_proto(Request req, bint secure=*)
