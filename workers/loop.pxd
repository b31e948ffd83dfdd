# Types of workers/loop.py for its compiled build (Cython pure mode: the .py
# is the source; farm/build.py, docs/building.md).

cdef class Timer:
    cdef public double when
    cdef public object callback, queued
    cdef public bint active
    cpdef cancel(self)
    cpdef release(self)

cdef class Loop:
    cdef public object epoll, on_signals
    cdef public dict handlers, masks
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
    cpdef set_timer(self, Timer t, double when, early=*)
    cpdef _run_timers(self)
