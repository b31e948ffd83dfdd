# Types of workers/lb/leastconn.py for its compiled build (Cython pure
# mode; docs/building.md). The loads stay Python ints: the lcm of the
# weights has no bound a C integer would hold.
cimport cython
from workers.lb.base cimport Algorithm

cdef class LeastConn(Algorithm):
    cdef public list _order, _mult, _stamp
    cdef public long long _seq
    @cython.locals(best=Py_ssize_t, i=Py_ssize_t, mult=list, stamp=list)
    cpdef pick(self, key=*, avoid=*)
