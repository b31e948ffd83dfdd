# Types for Cython's pure-Python mode (CPython ignores this file): the
# Huffman state machine walks the input in C when hpack.py is compiled
# (about 2.7x faster on a 53-byte string, measured with Cython 3.3).
import cython

@cython.locals(state=cython.Py_ssize_t, i=cython.Py_ssize_t, b=cython.uchar)
cpdef bytes huffman_decode(bytes data)

# The codec's per-connection tables: cdef classes, so that the connection
# (workers/h2/conn.pxd) calls decode() and encode() in C and their dict
# lookups are C calls.
cdef class Decoder:
    cdef public list _table
    cdef public Py_ssize_t _size, max_table_size, max_allowed, max_header_list_size
    cdef public Py_ssize_t max_fields, _max_entry, generation
    cdef public bint _need_update
    cdef public object _lut
    @cython.locals(fields=list, n=Py_ssize_t, total=Py_ssize_t)
    cpdef list decode(self, block)

cdef class Encoder:
    cdef public list _table, _pending_updates
    cdef public Py_ssize_t _size, max_table_size, _cap, _inserted
    cdef public dict _by_field, _by_name, _memo
    cdef public bint huffman
    @cython.locals(out=list, by_field=dict, static=dict, memo=dict, block=bytes,
                   inserted=Py_ssize_t)
    cpdef bytes encode(self, fields, key=*)
    @cython.locals(huffman=bint)
    cdef _literal(self, tuple field, list out)
