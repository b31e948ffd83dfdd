# Types of workers/lb/pool.py for its compiled build (Cython pure mode;
# docs/building.md). pick() reaches the tier's algorithm as a C call
# (Algorithm.pick is cpdef); workers/runtime.pxd's SharedStatePool
# extends ServerPool.
cimport cython
from workers.lb.base cimport Algorithm

cdef class ServerPool:
    cdef public object name
    cdef public Py_ssize_t n
    cdef public list _tier, _local, _maxconn
    cdef public tuple _ids, _algos, _limited
    @cython.locals(t=Py_ssize_t, n=Py_ssize_t, algo=Algorithm, algos=tuple, limited=list,
                   blocked=set)
    cpdef pick(self, key, avoid=*)
    cpdef set_up(self, Py_ssize_t index, up)
    cpdef set_weight(self, Py_ssize_t index, weight)
    cpdef acquired(self, Py_ssize_t index)
    cpdef released(self, Py_ssize_t index)
    cpdef conns(self, Py_ssize_t index)
    cpdef bint full(self, Py_ssize_t index) except -1
    cpdef bint is_up(self, Py_ssize_t index) except -1
    cpdef weight(self, Py_ssize_t index)
    cpdef bint any_up(self) except -1
    cpdef tuple up_count(self)

cdef class TierCounts:
    cdef object _src
    cdef list _ids
