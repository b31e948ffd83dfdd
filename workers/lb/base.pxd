# Types of workers/lb/base.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md). Algorithm is a cdef
# class: its compiled subclasses (roundrobin, leastconn) and ServerPool
# call pick() and the helpers as C calls; the pure-Python subclasses
# (first, random, static_rr, hashing) still override any cpdef method, and
# keep their own attributes in their instance __dict__.
cimport cython

cdef class Algorithm:
    cdef public Py_ssize_t n, n_usable
    cdef public object hash_type, conns
    cdef public list weights, up, maxconn, names
    cdef public bint _own_counts
    cpdef pick(self, key=*, avoid=*)
    cpdef set_up(self, index, up)
    cpdef set_weight(self, index, weight)
    cpdef acquired(self, Py_ssize_t index)
    cpdef released(self, Py_ssize_t index)
    cpdef bint usable(self, Py_ssize_t index) except -1
    @cython.locals(i=Py_ssize_t)
    cpdef list usable_indices(self)
    cpdef _setup(self)
    cpdef bint _blocks(self, avoid) except -1
    cpdef bint _all_avoided(self, avoid) except -1
    cpdef _check_index(self, index)
