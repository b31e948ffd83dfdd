# Types of workers/lazyhead.py for its compiled build (Cython pure mode:
# the .py is the source; farm/build.py, docs/building.md). The walks read
# the heads and the table through C pointers.
cimport cython
from workers.http1 cimport Request

ctypedef const unsigned char *cbytes     # a bytes object's buffer, read in place

@cython.locals(r=Request)
cpdef bint is_lazy(msg) except -1

@cython.locals(p=cbytes, q=cbytes, m=Py_ssize_t, k=Py_ssize_t, c=cython.uchar)
cdef bint _field_at(bytes raw, Py_ssize_t i, bytes lname)

@cython.locals(p=cbytes, n=Py_ssize_t, m=Py_ssize_t, found=Py_ssize_t, i=Py_ssize_t,
               a=Py_ssize_t, b=Py_ssize_t, c=cython.uchar)
cdef _raw_value(bytes raw, bytes lname, bint last)

@cython.locals(app=list, n=Py_ssize_t, k=bytes)
cpdef bint has_field(Request msg, bytes lname) except -1

@cython.locals(app=list, n=Py_ssize_t, k=bytes, v=bytes)
cpdef last_value(Request msg, bytes lname)

@cython.locals(table=bytes, t=cbytes, p=cbytes, i=Py_ssize_t, c=cython.uchar)
cpdef bint value_ok(bytes value) except -1

@cython.locals(target=bytes, p=cbytes, n=Py_ssize_t, i=Py_ssize_t)
cdef Py_ssize_t _path_end(Request r) except -3

cpdef bint path_starts(req, tuple pats) except -1
cpdef bint path_ends(req, tuple pats) except -1

@cython.locals(r=Request, end=Py_ssize_t, p=cbytes, q=cbytes, m=Py_ssize_t, k=Py_ssize_t,
               base=Py_ssize_t, pat=bytes)
cdef bint _path_affix(req, tuple pats, bint at_end) except -1
