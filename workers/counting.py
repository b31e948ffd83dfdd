"""Counting into the per-worker counters (farm/shm.py's columns).

Counters are plain lists on the runtime objects (frontend, backend,
server); the worker copies them to shared memory every 0.25 s, so counting
costs list increments, not mmap writes. Everything is counted once, when a
TCP session or an HTTP transaction ends, except connections (at accept) and
connection errors (per failed attempt). Times are summed in milliseconds
with `timed` the number of timed sessions; `lastsess` is an epoch second.
The conventions are HAProxy's show stat fields.
"""

from __future__ import annotations

import time

from farm.shm import (C_BIN, C_BOUT, C_CLI_ABRT, C_CONN_TOT, C_CONNECT, C_CTIME_SUM, C_DREQ,
                      C_ECON, C_EREQ, C_ERESP, C_HRSP_1XX, C_HRSP_OTHER, C_LASTSESS,
                      C_QTIME_SUM, C_REQ_TOT, C_REUSE, C_RTIME_SUM, C_SRV_ABRT, C_STOT,
                      C_TIMED, C_TTIME_SUM, C_WREDIS, C_WRETR)


def status_index(status: int) -> int:
    """The hrsp_Nxx counter of a status."""
    k = status // 100
    return C_HRSP_1XX + k - 1 if 1 <= k <= 5 else C_HRSP_OTHER


def connection(fe) -> None:
    """A client connection accepted by frontend fe."""
    c = fe.c
    c[C_STOT] += 1
    c[C_CONN_TOT] += 1


def connect_attempt(be, srv, ok: bool, reused: bool = False) -> None:
    """A connection to a server was attempted (new) or taken from the pool."""
    if reused:
        srv.c[C_REUSE] += 1
        be.c[C_REUSE] += 1
        return
    srv.c[C_CONNECT] += 1
    be.c[C_CONNECT] += 1
    if not ok:
        srv.c[C_ECON] += 1
        be.c[C_ECON] += 1


def _ended(c: list, bytes_in: int, bytes_out: int, term: str, retries: int, redispatched: bool,
           times: tuple | None, now: int) -> None:
    c[C_BIN] += bytes_in
    c[C_BOUT] += bytes_out
    if retries:
        c[C_WRETR] += retries
    if redispatched:
        c[C_WREDIS] += 1
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
    c[C_LASTSESS] = now


def tcp_session(s) -> None:
    """A TCP session ended (workers/tcp.py TcpSession, at close)."""
    now = int(time.time())
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
    _ended(be.c, bytes_in, bytes_out, s.term, s.retries, s.redispatched, times, now)
    if srv is not None:
        _ended(srv.c, bytes_in, bytes_out, s.term, s.retries, s.redispatched, times, now)


def http_txn(txn, fe, now_mono: float) -> None:
    """An HTTP transaction ended (a workers/stream.py Stream, when it is logged)."""
    now = int(time.time())
    idx = status_index(txn.status) if txn.status else C_HRSP_OTHER
    fc = fe.c
    fc[C_REQ_TOT] += 1
    fc[idx] += 1
    fc[C_BOUT] += txn.bytes_out
    # the frontend's total time (Ta) of every request, local answers too:
    # not a show-stat field, it feeds the stats page's graph (farm/sampler.py)
    fc[C_TTIME_SUM] += int((now_mono - txn.t_start) * 1000.0)
    fc[C_TIMED] += 1
    term = txn.term
    if txn.local and term[0] == "P":
        fc[C_DREQ] += 1          # denied by a rule
    be = txn.be
    if be is None:
        return
    times = None
    if txn.t_connected >= 0:
        ms = 1000.0
        q = (txn.t_connect - txn.t_queue) * ms if txn.t_queue >= 0 else 0
        r = (txn.t_resp - txn.t_connected) * ms if txn.t_resp >= 0 else 0
        times = (int(q), int((txn.t_connected - txn.t_connect) * ms), int(r),
                 int((now_mono - txn.t_start) * ms))
    bc = be.c
    bc[C_STOT] += 1
    bc[C_REQ_TOT] += 1
    bc[idx] += 1
    _ended(bc, txn.bytes_in, txn.bytes_out, term, txn.retries, txn.redispatched, times, now)
    srv = txn.srv
    if srv is not None and not txn.local:
        sc = srv.c
        sc[C_REQ_TOT] += 1
        sc[idx] += 1
        if txn.status == 502 or term[:2] in ("SH", "sH"):
            sc[C_ERESP] += 1
            bc[C_ERESP] += 1
        _ended(sc, txn.bytes_in, txn.bytes_out, term, txn.retries, txn.redispatched, times, now)


def bad_request(fe, status: int, bytes_out: int) -> None:
    """A request refused before it became a transaction (parse error, 408)."""
    c = fe.c
    c[C_EREQ] += 1
    c[C_REQ_TOT] += 1
    c[status_index(status)] += 1
    c[C_BOUT] += bytes_out


def request_bytes(fe, n: int) -> None:
    fe.c[C_BIN] += n
