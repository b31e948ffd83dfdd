# Types of farm/tables.py for its compiled build (Cython pure mode: the .py
# is the source; farm/build.py, docs/building.md). The sizes and offsets of
# a table are C integers, so that the request path (track, untrack, get,
# the rate arithmetic) does its index arithmetic without Python objects.
cimport cython

cdef long long _HDR, _NEXT, _TOUCH, _EXPIRE, _HELD, _IDX_MASK, _CNT_MAX

cdef class StickTable:
    cdef public object defn, name, type, off, period, mm, q, b, cells
    cdef public long long key_len, size, expire, workers, holders, kwidth, key_off, stride
    cdef public long long nbuckets, mask, entries_at, nbytes, pid, _sweep_at
    cdef public long long o_conn_cnt, o_conn_cur, o_conn_rate, o_sess_cnt, o_sess_rate
    cdef public long long o_req_cnt, o_req_rate, o_err_cnt, o_err_rate
    cdef public long long o_bin_cnt, o_bin_rate, o_bout_cnt, o_bout_rate
    cdef public long long p_conn_rate, p_req_rate
    cdef public bint counts_bytes, counts_errors
    cdef public long long[::1] qc

    @cython.locals(off=object, c=cython.longlong, period=object, qc="long long[::1]")
    cpdef get(self, long long e, str name, object now=*)

    @cython.locals(bucket=cython.longlong, lock=cython.longlong, e=cython.longlong,
                   e1=cython.longlong, base=cython.longlong, o=cython.longlong,
                   w=cython.longlong, stride=cython.longlong, at=cython.longlong,
                   koff=cython.longlong, exp=cython.longlong, q="long long[::1]")
    cpdef long long track(self, bytes key, long long slot, long long now, bint request) except? -2

    @cython.locals(base=cython.longlong, c=cython.longlong, q="long long[::1]")
    cpdef untrack(self, long long e, long long slot, long long now)

    @cython.locals(n=cython.longlong, idx=cython.longlong, v=cython.longlong,
                   cnt=cython.longlong, qc="long long[::1]")
    cpdef _rate_add(self, long long c, long long period, long long d, long long now)


@cython.locals(n=cython.longlong, cur=cython.longlong, prev=cython.longlong,
               cur_cell=cython.longlong, prev_cell=cython.longlong)
cpdef long long rate_read(long long c0, long long c1, long long now_ms, long long period)
