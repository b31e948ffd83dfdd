# Types of workers/lb/roundrobin.py for its compiled build (Cython pure
# mode; docs/building.md). The heap keys stay Python ints: they grow with
# every pick and are unbounded in the pure build, so C integers would
# overflow one day where the .py does not; t counts picks (a C long long
# never reaches its end at any request rate).
cimport cython
from workers.lb.base cimport Algorithm

cdef class RoundRobin(Algorithm):
    cdef public Py_ssize_t _N, _total, _step
    cdef public long long _t
    cdef public list _cur, _key, _groups, _part, _single
    cdef public dict _heap_of
    cpdef _materialize(self)
    cpdef _rebuild(self)
    @cython.locals(single=list, i=Py_ssize_t, t=cython.longlong, groups=list, best_heap=list,
                   heap=list)
    cpdef pick(self, key=*, avoid=*)
    @cython.locals(removed=list, best_heap=list, heap=list, t=cython.longlong, gone=Py_ssize_t)
    cpdef _pick_avoiding(self, avoid)
