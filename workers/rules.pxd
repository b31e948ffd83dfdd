# Types of workers/rules.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md): the compiled
# closures call workers/lazyhead.py's tests as C functions, and the
# set-header action is an extension type.
cimport cython
from workers.http1 cimport Request
from workers.lazyhead cimport has_field, is_lazy, last_value, path_ends, path_starts, value_ok

ctypedef const unsigned char *cbytes     # a bytes object's buffer, read in place

cdef class _LastHeader:
    cdef public bytes lname
    cdef public bint split
    @cython.locals(lname=bytes, v=bytes, n=Py_ssize_t)
    cpdef bytes get(self, txn)

cdef class _SetField:
    cdef public bytes name, lname
    cdef public object value, msg_of
    cdef public bint const, replace_all, request, lazy_ok
    @cython.locals(v=bytes, req=Request, last=_LastHeader)
    cpdef run(self, txn)

@cython.locals(p=cbytes, n=Py_ssize_t)
cdef bytes _strip_ows(bytes v)

cdef class _Test:
    cpdef bint test(self, txn) except -1

@cython.locals(t=_Test)
cdef bint _holds(m, txn) except -1

cdef class _PathTest(_Test):
    cdef public tuple pats
    cdef public bint ends
    cpdef bint test(self, txn) except -1

cdef class _Both(_Test):
    cdef public object a, b
    cpdef bint test(self, txn) except -1

cdef class _Either(_Test):
    cdef public object a, b
    cpdef bint test(self, txn) except -1

cdef class _Not(_Test):
    cdef public object m
    cpdef bint test(self, txn) except -1

cdef class _Steps:
    cdef public tuple steps
    @cython.locals(sf=_SetField)
    cpdef run(self, txn)

cdef class _Choose:
    cdef public tuple choices
    cdef public object default
    cpdef run(self, txn)

@cython.locals(steps=_Steps)
cpdef apply_rules(rules, txn)

@cython.locals(c=_Choose)
cpdef choose_with(choose, txn)
