# Types of workers/loop.py for its compiled build (Cython pure mode: the .py
# is the source; farm/build.py, docs/building.md).

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EINTR, errno as errno_
from libc.stdint cimport uint32_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        int fd
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)

cdef int MAX_EVENTS
cdef epoll_event _EVENTS[256]           # Loop._wait fills it (MAX_EVENTS)

@cython.locals(ts=timespec)
cpdef double monotonic()

cdef class Timer:
    cdef public double when, queued
    cdef public object callback
    cdef public bint active
    cdef public Py_ssize_t index, seq
    cpdef cancel(self)
    cpdef release(self)

cdef class FdMap:
    cdef public list items
    cpdef get(self, Py_ssize_t fd, default=*)
    cpdef set(self, Py_ssize_t fd, value)
    cpdef pop(self, Py_ssize_t fd, default=*)

cdef class Loop:
    cdef public object epoll, on_signals
    cdef public FdMap handlers, masks
    cdef public list _heap, _end_of_turn, _soon
    cdef public set _removed
    cdef public Py_ssize_t _seq, _compact_at
    cdef public bint running
    cdef public double now
    cdef public int _wakeup_r, _wakeup_w
    cpdef add(self, int fd, int mask, handler)
    cpdef modify(self, int fd, int mask)
    cpdef watch(self, int fd, int mask, handler)
    cpdef remove(self, int fd)
    cpdef forget(self, int fd)
    cpdef set_timer(self, Timer t, double when, early=*)
    @cython.locals(heap=list, t=Timer, now=cython.double)
    cpdef _run_timers(self)
    @cython.locals(heap=list, t=Timer)
    cpdef double _poll_timeout(self) except? -2
    @cython.locals(live=list, t=Timer, i=Py_ssize_t)
    cpdef _compact(self)
    @cython.locals(n=int, ms=int)
    cdef int _wait(self, int epfd, double timeout) except -1
    @cython.locals(handlers=FdMap, removed=set, n=int, i=int, fd=int, timeout=cython.double)
    cpdef run(self)
    @cython.locals(heap=list, t=Timer, p=Timer, up=Py_ssize_t)
    cdef _sift_up(self, Py_ssize_t pos)
    @cython.locals(heap=list, t=Timer, c=Timer, c2=Timer, n=Py_ssize_t, child=Py_ssize_t)
    cdef _sift_down(self, Py_ssize_t pos)
    @cython.locals(heap=list, first=Timer, last=Timer)
    cdef Timer _pop_first(self)
