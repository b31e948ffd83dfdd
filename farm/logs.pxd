# Types of farm/logs.py for its compiled build (Cython pure mode: the .py
# is the source; farm/build.py, docs/building.md). httplog_values runs
# once per request: its numbers are C integers, formatted without a
# Python int each.
cimport cython

@cython.locals(port=cython.longlong, tr=cython.longlong, tw=cython.longlong,
               tc=cython.longlong, trs=cython.longlong, ta=cython.longlong,
               status=cython.longlong, nbytes=cython.longlong, ac=cython.longlong,
               fc=cython.longlong, bc=cython.longlong, sc=cython.longlong,
               retries=cython.longlong, sq=cython.longlong, bq=cython.longlong)
cpdef str httplog_values(tuple v)

@cython.locals(sec=cython.longlong, ms=cython.longlong)
cpdef str haproxy_date(double epoch)
