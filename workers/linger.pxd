# Types of workers/linger.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md).
from workers.loop cimport Loop, Timer
from workers.transport cimport Transport

cdef int EPOLLIN
cdef double LINGER_TIMEOUT

cpdef bint start(Loop loop, Transport t, Timer timer, bint eof_seen, on_readable) except -1
cpdef bint drained(Transport t) except -1
