"""Counting into the per-worker counters (farm/shm.py's columns).

Counters are plain lists on the runtime objects (frontend, backend,
server); the worker copies them to shared memory every 0.25 s, so counting
costs list increments, not mmap writes. Every count happens at the event
that HAProxy 2.6 counts it at, so that `show stat` reads the same for the
same traffic (tests/integration/test_stats_vs_haproxy.py holds the two side
by side):

- current sessions (scur, smax) and queues (qcur, qmax) are not counted
  here: they are one number for all workers, the shared gauges moved by
  workers/runtime.py (Gauge, BackendRuntime.enqueue) the moment they change;
- a server taken for a connection attempt: server_taken() (the server's
  stot, lbtot when the balance algorithm chose it, the retry or the
  redispatch that led there, lastsess of the server and the backend);
- connection attempts (connect, reuse): connect_attempt();
- everything else once, when a TCP session or an HTTP transaction ends:
  bytes, responses by class, denials, errors, aborts, times.

Times are summed in milliseconds with `timed` the number of timed sessions,
and their maxima kept; `lastsess` is the epoch second of the last attempt.
The conventions are HAProxy's show stat fields.
"""

from __future__ import annotations

import time

try:
    import cython               # the compiled build: cython.compiled is True
except ImportError:             # pure Python without Cython installed
    from farm import nocython as cython

from farm.shm import (C_BIN, C_BOUT, C_CLI_ABRT, C_CONN_TOT, C_CONNECT, C_CTIME_MAX, C_CTIME_SUM,
                      C_DREQ, C_ECON, C_EREQ, C_ERESP, C_HRSP_1XX, C_HRSP_OTHER, C_INTERCEPTED,
                      C_LASTSESS, C_LBTOT, C_QTIME_MAX, C_QTIME_SUM, C_REQ_TOT, C_REUSE,
                      C_RTIME_MAX, C_RTIME_SUM, C_SRV_ABRT, C_STOT, C_TIMED, C_TTIME_MAX,
                      C_TTIME_SUM, C_WREDIS, C_WRETR)


def status_index(status: int) -> int:
    """The hrsp_Nxx counter of a status."""
    k = status // 100
    return C_HRSP_1XX + k - 1 if 1 <= k <= 5 else C_HRSP_OTHER


# -- events -------------------------------------------------------------------------


def connection(fe) -> None:
    """A client connection accepted by frontend fe."""
    c = fe.c
    c[C_STOT] += 1
    c[C_CONN_TOT] += 1


def server_taken(be, srv, balanced: bool, previous) -> None:
    """Server srv of backend be was taken for a connection attempt (as
    HAProxy counts its assign_server() and connect_server()).

    srv's stot counts every attempt. lbtot (server and backend) counts the
    choices of the balance algorithm: balanced is False when something
    else chose srv (a cookie, a retry bound to the same server, the queue
    giving a freed slot to a waiting session), and a balanced choice of the
    server that just failed is not counted either. previous is the server
    whose connection failed just before (a retry), else None: the failure
    is counted on it as a retry (wretr) when srv is the same server, as a
    redispatch (wredis) when it is another one."""
    srv.c[C_STOT] += 1
    if cython.compiled:
        now = c_time(cython.NULL)    # libc's time(): int(time.time()) without the float
    else:
        now = int(time.time())
    srv.c[C_LASTSESS] = now          # lastsess: the last attempt, as HAProxy's
    be.c[C_LASTSESS] = now
    if balanced and srv is not previous:
        srv.c[C_LBTOT] += 1
        be.c[C_LBTOT] += 1
    if previous is not None:
        retried(be, previous, srv)


def retried(be, failed, srv) -> None:
    """The request whose connection to server `failed` did not work is sent
    to srv: a retry (wretr) when srv is failed, a redispatch (wredis) when
    it is another server; counted on the failed server and its backend."""
    i = C_WRETR if srv is failed else C_WREDIS
    failed.c[i] += 1
    be.c[i] += 1


def connect_attempt(be, srv, reused: bool = False) -> None:
    """A connection to srv was opened (successful or not: connect), or one
    of its idle connections was taken from the pool (reuse). A failed
    attempt is not a connection error yet: econ counts the sessions that
    gave up (see _connection_error)."""
    if reused:
        srv.c[C_REUSE] += 1
        be.c[C_REUSE] += 1
        return
    srv.c[C_CONNECT] += 1
    be.c[C_CONNECT] += 1


# -- at the end of a session -----------------------------------------------------------


def _connection_error(term: str, be, srv) -> None:
    """econ, as HAProxy counts it: once per session that got no server
    connection in the end: its retries spent (SC/sC: on the backend and on
    the server tried last), no usable server (SC without a server), or a
    queue timeout (sQ: the backend)."""
    if term[0] in "Ss":
        second = term[1]
        if second == "C":
            be.c[C_ECON] += 1
            if srv is not None:
                srv.c[C_ECON] += 1
        elif second == "Q":
            be.c[C_ECON] += 1


def _ended(c: list, bytes_in: int, bytes_out: int, term: str, times: tuple | None) -> None:
    """What a backend or server counts of a session that ended."""
    c[C_BIN] += bytes_in
    c[C_BOUT] += bytes_out
    first = term[0]
    if first == "C" or first == "c":
        c[C_CLI_ABRT] += 1
    elif (first == "S" or first == "s") and term[1] in "DL":
        c[C_SRV_ABRT] += 1
    if times is not None:
        q, conn, resp, total = times
        c[C_QTIME_SUM] += q
        c[C_CTIME_SUM] += conn
        c[C_RTIME_SUM] += resp
        c[C_TTIME_SUM] += total
        c[C_TIMED] += 1
        if q > c[C_QTIME_MAX]:
            c[C_QTIME_MAX] = q
        if conn > c[C_CTIME_MAX]:
            c[C_CTIME_MAX] = conn
        if resp > c[C_RTIME_MAX]:
            c[C_RTIME_MAX] = resp
        if total > c[C_TTIME_MAX]:
            c[C_TTIME_MAX] = total


def tcp_session(s) -> None:
    """A TCP session ended (workers/tcp.py TcpSession, at close)."""
    bytes_in, bytes_out = s.c2s.moved, s.s2c.moved
    fe = s.fe
    fe.c[C_BIN] += bytes_in
    fe.c[C_BOUT] += bytes_out
    if s.term[0] in "Cc":
        fe.c[C_CLI_ABRT] += 1
    be = s.be
    srv = s.srv
    times = None
    if s.t_connected >= 0:
        ms = 1000.0
        q = (s.t_connect - s.t_queue) * ms if s.t_queue >= 0 else 0
        times = (int(q), int((s.t_connected - s.t_connect) * ms), 0, int((s.loop.now - s.t0) * ms))
    if times is not None:         # the session's time on the frontend too (graphs only)
        fe.c[C_TTIME_SUM] += times[3]
        fe.c[C_TIMED] += 1
    be.c[C_STOT] += 1
    _connection_error(s.term, be, s.last_srv)
    _ended(be.c, bytes_in, bytes_out, s.term, times)
    if srv is not None:
        _ended(srv.c, bytes_in, bytes_out, s.term, times)


def http_txn(fe, be, srv, status: int, term: str, local: bool, bytes_in: int, bytes_out: int,
             t_start: float, t_queue: float, t_connect: float, t_connected: float,
             t_resp: float, now_mono: float) -> None:
    """An HTTP transaction ended (a workers/stream.py Stream, when it is
    logged), given by its values: frontend, backend and server (None when
    there was none), status (0: none), termination state, local (answered
    by farm), bytes, and the stream's monotonic times (-1: not reached).
    (Values rather than the Stream: stream.py cimports this module, which
    then cannot cimport Stream.)

    HAProxy's rules: a request denied by a rule (term PR) counts dreq on
    the frontend, and on the backend when a backend's rule denied it; a
    redirect or return answered by a rule is intercepted (frontend); a
    response that went wrong on the server side before its headers (SH,
    sH: farm answers 502/504) counts eresp on the server and backend; a
    server's own status, whatever it is, is just its hrsp class."""
    idx = status_index(status) if status else C_HRSP_OTHER
    fc = fe.c
    fc[C_REQ_TOT] += 1
    fc[idx] += 1
    fc[C_BOUT] += bytes_out
    # the frontend's total time (Ta) of every request, local answers too:
    # not a show-stat field, it feeds the stats page's graph (farm/sampler.py)
    fc[C_TTIME_SUM] += int((now_mono - t_start) * 1000.0)
    fc[C_TIMED] += 1
    if local:
        if term == "PR":
            fc[C_DREQ] += 1
            if be is not None:
                be.c[C_DREQ] += 1
        elif term == "--":
            fc[C_INTERCEPTED] += 1
    if be is None:
        return
    times = None
    if t_connected >= 0:
        ms = 1000.0
        q = (t_connect - t_queue) * ms if t_queue >= 0 else 0
        r = (t_resp - t_connected) * ms if t_resp >= 0 else 0
        times = (int(q), int((t_connected - t_connect) * ms), int(r),
                 int((now_mono - t_start) * ms))
    bc = be.c
    bc[C_STOT] += 1
    bc[C_REQ_TOT] += 1
    bc[idx] += 1
    _connection_error(term, be, srv)
    if term[1] == "H" and term[0] in "Ss":
        bc[C_ERESP] += 1
        if srv is not None:
            srv.c[C_ERESP] += 1
    _ended(bc, bytes_in, bytes_out, term, times)
    if srv is not None and not local:
        sc = srv.c
        sc[C_REQ_TOT] += 1
        sc[idx] += 1
        _ended(sc, bytes_in, bytes_out, term, times)


def bad_request(fe, status: int, bytes_out: int) -> None:
    """A request refused before it became a transaction (parse error, 408)."""
    c = fe.c
    c[C_EREQ] += 1
    c[C_REQ_TOT] += 1
    c[status_index(status)] += 1
    c[C_BOUT] += bytes_out


def request_bytes(fe, n: int) -> None:
    fe.c[C_BIN] += n
