"""The event loop: select.epoll used directly, one handler per fd, lazy timers.

Used by every worker and by the master. Single-threaded; nothing here is
thread-safe and nothing needs to be.

Design choices (see DESIGN.md, "Event loop hygiene"):
- Level-triggered epoll; a handler is a plain callable taking the event mask,
  stored per fd in a list indexed by fd (FdMap), so dispatch is one list
  index and one call.
- `now` is read once per turn (time.monotonic) and shared: sessions use
  loop.now instead of calling the clock per event.
- Timers live in a binary heap of Timer objects (each knows its place, so
  the heap holds no per-timer tuple), with lazy cancel *and* lazy
  extension: pushing a deadline later (the common case: an inactivity
  timeout refreshed on every read) only updates the Timer object; its
  place is moved when it surfaces. So refreshing a timeout costs an
  attribute store, not a heap operation.
- Signals: handlers set by the owner only record; set_wakeup_fd writes to a
  pipe this loop polls, so a signal wakes the loop, and `on_signals` runs in
  the loop, never inside the handler.
- End-of-turn hooks (e.g. flushing the access-log buffer with one write)
  run once per turn after all events and timers.
"""

from __future__ import annotations

import errno
import math
import os
import select
import signal
import time
from collections.abc import Callable

try:
    import cython               # the compiled build: cython.compiled is True
except ImportError:             # pure Python without Cython installed
    from farm import nocython as cython

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLERR = select.EPOLLERR
EPOLLHUP = select.EPOLLHUP
EPOLLRDHUP = select.EPOLLRDHUP
COMPACT_MIN = 4096      # heap entries before stale ones are worth sweeping
MAX_EVENTS = 256        # events taken from epoll per turn


class Timer:
    """A one-shot timer in the loop's heap.

    `when` is the monotonic deadline; cancel() disarms it. A timer has at
    most one place in the heap: `index` (-1: none), ordered by `queued`
    (the deadline it was placed at) and then `seq` (first placed, first
    fired). The place may be stale, a timer cancelled or moved later since:
    it is dropped, or placed again at `when`, when it surfaces.
    """

    __slots__ = ("when", "callback", "active", "queued", "index", "seq")

    def __init__(self, callback: Callable[[], None]):
        self.callback = callback
        self.when = 0.0
        self.active = False
        self.queued = 0.0
        self.index = -1
        self.seq = 0

    def cancel(self) -> None:
        self.active = False

    def release(self) -> None:
        """Cancel for good and drop the callback. A cancelled timer keeps
        its place in the heap until its old deadline; without this, the
        callback (a bound method) would keep its whole session alive until
        then, and the session <-> timer cycle would leave it to the cyclic GC."""
        self.active = False
        self.callback = _noop


class FdMap:
    """A map from file descriptor to a value (the loop's handlers, and its
    event masks), kept as a list indexed by the fd, None where there is no
    value. Descriptor numbers are small and dense (the kernel hands out the
    lowest free one), so a list slot (8 bytes) serves where a dict would
    hold an entry and an int key object per fd: about 60 bytes more for
    every connection, idle keep-alive ones included.

    Dict-like where the rest of the worker uses it: m[fd] = value,
    m.get(fd), fd in m, m.pop(fd, None). A value is never None."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list = []

    def get(self, fd: int, default=None):
        items = self.items
        if 0 <= fd < len(items):
            v = items[fd]
            if v is not None:
                return v
        return default

    def set(self, fd: int, value) -> None:
        items = self.items
        if fd >= len(items):
            items.extend([None] * (fd + 1 - len(items)))
        items[fd] = value

    def pop(self, fd: int, default=None):
        items = self.items
        if 0 <= fd < len(items):
            v = items[fd]
            if v is not None:
                items[fd] = None
                return v
        return default

    def __contains__(self, fd: int) -> bool:
        return self.get(fd) is not None

    def __getitem__(self, fd: int):
        v = self.get(fd)
        if v is None:
            raise KeyError(fd)
        return v

    def __setitem__(self, fd: int, value) -> None:
        self.set(fd, value)

    def __len__(self) -> int:
        return len(self.items) - self.items.count(None)


class Loop:
    """An epoll loop. Register fds with a handler `handler(events: int)`."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.handlers = FdMap()      # fd -> handler(events)
        self.masks = FdMap()         # fd -> the event mask it waits for
        self._heap: list[Timer] = []   # a binary heap on (queued, seq)
        self._seq = 0
        self._compact_at = COMPACT_MIN
        self._end_of_turn: list[Callable[[], None]] = []
        # fds removed during the current turn: a later event of the same
        # epoll batch may belong to the closed socket while a new one has
        # reused its number; level-triggered epoll reports a real one again.
        self._removed: set[int] = set()
        self._soon: list[Callable[[], None]] = []
        self.running = False
        self.now = time.monotonic()
        self._wakeup_r = -1
        self._wakeup_w = -1
        self.on_signals: Callable[[list[int]], None] | None = None

    # -- fds ---------------------------------------------------------------

    def add(self, fd: int, mask: int, handler: Callable[[int], None]) -> None:
        """Start watching fd for `mask` events; `handler(events)` is called."""
        self.epoll.register(fd, mask)
        self.handlers.set(fd, handler)
        self.masks.set(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        """Change the event mask of a watched fd (no syscall if unchanged)."""
        if self.masks.get(fd) != mask:
            self.epoll.modify(fd, mask)
            self.masks.set(fd, mask)

    def watch(self, fd: int, mask: int, handler: Callable[[int], None]) -> None:
        """Make fd wait for exactly `mask`, calling handler. An fd waiting
        for nothing leaves the epoll set: epoll reports EPOLLHUP/EPOLLERR
        even for an empty mask, so a paused socket that hangs up would
        otherwise spin the loop."""
        if mask == 0:
            self.remove(fd)
        elif self.masks.get(fd) is not None:
            self.handlers.set(fd, handler)
            self.modify(fd, mask)
        else:
            self.add(fd, mask, handler)

    def remove(self, fd: int) -> None:
        """Stop watching fd. Safe to call for an fd that is not watched."""
        if self.handlers.pop(fd, None) is not None:
            self.masks.pop(fd, None)
            self._removed.add(fd)
            try:
                self.epoll.unregister(fd)
            except (OSError, ValueError):
                pass  # already closed: the kernel dropped it from the set

    def forget(self, fd: int) -> None:
        """Stop watching fd, which the caller closes right away: closing it
        takes it out of the epoll set, so the epoll_ctl that remove()
        makes is spared (a client connection's descriptor is this
        process's alone: no other process or duplicate holds it open)."""
        if self.handlers.pop(fd, None) is not None:
            self.masks.pop(fd, None)
            self._removed.add(fd)

    # -- timers ------------------------------------------------------------

    def timer(self, callback: Callable[[], None]) -> Timer:
        """A disarmed timer bound to callback; arm it with set_timer()."""
        return Timer(callback)

    def set_timer(self, t: Timer, when: float, early: float | None = None) -> None:
        """Arm (or re-arm) t for the monotonic time `when`.

        early (optional, now < early <= when): if t has to be placed in the
        heap (or moved up in it), place it at `early` instead. A timer that
        alternates between a long and a shorter deadline (an HTTP session:
        keep-alive 60 s, server 30 s) then moves once per `early` interval
        instead of on every switch; surfacing before `when` just places it
        again."""
        t.when = when
        t.active = True
        if t.index < 0 or when < t.queued:
            # Not placed, or earlier than its place: (re)place it. Later
            # needs nothing: it is placed again when it surfaces.
            if early is not None and early < when:
                when = early
            t.queued = when
            self._seq += 1
            t.seq = self._seq
            if t.index < 0:
                t.index = len(self._heap)
                self._heap.append(t)
                if len(self._heap) > self._compact_at:
                    self._compact()
                    return
            self._sift_up(t.index)

    # The heap: _heap[i] is placed no later than _heap[2i+1] and _heap[2i+2]
    # (on (queued, seq)), and every timer's index is its position.

    def _sift_up(self, pos: int) -> None:
        """Move the timer at pos up to its place (its key got smaller)."""
        heap = self._heap
        t = heap[pos]
        while pos > 0:
            up = (pos - 1) >> 1
            p = heap[up]
            if p.queued < t.queued or (p.queued == t.queued and p.seq < t.seq):
                break
            heap[pos] = p
            p.index = pos
            pos = up
        heap[pos] = t
        t.index = pos

    def _sift_down(self, pos: int) -> None:
        """Move the timer at pos down to its place (its key got larger)."""
        heap = self._heap
        n = len(heap)
        t = heap[pos]
        while True:
            child = 2 * pos + 1
            if child >= n:
                break
            c = heap[child]
            if child + 1 < n:
                c2 = heap[child + 1]
                if c2.queued < c.queued or (c2.queued == c.queued and c2.seq < c.seq):
                    child += 1
                    c = c2
            if t.queued < c.queued or (t.queued == c.queued and t.seq < c.seq):
                break
            heap[pos] = c
            c.index = pos
            pos = child
        heap[pos] = t
        t.index = pos

    def _pop_first(self) -> Timer:
        """Take the first timer out of the heap (which is not empty)."""
        heap = self._heap
        first = heap[0]
        last = heap.pop()
        if heap:
            heap[0] = last
            self._sift_down(0)
        first.index = -1
        return first

    def _compact(self) -> None:
        """Drop cancelled timers when they have piled up (many short
        sessions closing long before their timeouts)."""
        live = []
        for t in self._heap:
            if t.active:
                live.append(t)
            else:
                t.index = -1
        self._heap = live
        for i in range(len(live)):
            live[i].index = i
        for i in range(len(live) // 2 - 1, -1, -1):
            self._sift_down(i)
        self._compact_at = max(COMPACT_MIN, 2 * len(live))

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        t = Timer(callback)
        self.set_timer(t, self.now + delay)
        return t

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run callback at the end of this turn (before end-of-turn hooks)."""
        self._soon.append(callback)

    def at_end_of_turn(self, callback: Callable[[], None]) -> None:
        """Register a hook run after every turn (e.g. the access-log flush)."""
        self._end_of_turn.append(callback)

    def _run_timers(self) -> None:
        heap = self._heap
        now = self.now
        while heap:
            t = heap[0]
            if t.queued > now:
                break
            if not t.active:
                self._pop_first()
                continue
            if t.when > now:
                # Extended since it was placed: place it again at when.
                t.queued = t.when
                self._seq += 1
                t.seq = self._seq
                self._sift_down(0)
                continue
            self._pop_first()
            t.active = False
            t.callback()

    def _poll_timeout(self) -> float:
        if self._soon:
            return 0
        heap = self._heap
        while heap:
            t = heap[0]
            if not t.active:
                self._pop_first()
                continue
            return max(0.0, t.queued - monotonic())
        return -1

    # -- signals -----------------------------------------------------------

    def watch_signals(self, signums: list[int], on_signals: Callable[[list[int]], None]) -> None:
        """Route the given signals to on_signals(list) run inside the loop.

        Python runs the C-level handler, writes the signal number to the
        wakeup pipe, and this loop reads the numbers back: the handler itself
        does nothing else, so no work ever happens inside a signal handler.
        """
        if self._wakeup_r < 0:
            self._wakeup_r, self._wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self.add(self._wakeup_r, EPOLLIN, self._on_wakeup)
            signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        self.on_signals = on_signals
        for s in signums:
            signal.signal(s, _record_only)

    def _on_wakeup(self, events: int) -> None:
        try:
            data = os.read(self._wakeup_r, 512)
        except BlockingIOError:
            return
        if data and self.on_signals is not None:
            self.on_signals(list(data))

    def close_in_child(self) -> None:
        """Drop this loop's descriptors in a freshly forked child.

        Only closes: an epoll instance is shared across fork(), so
        unregistering an fd here would remove it from the parent's set too.
        """
        signal.set_wakeup_fd(-1)
        self.epoll.close()
        if self._wakeup_r >= 0:
            os.close(self._wakeup_r)
            os.close(self._wakeup_w)
            self._wakeup_r = self._wakeup_w = -1

    # -- running -----------------------------------------------------------

    def run(self) -> None:
        """Run turns until stop() is called."""
        self.running = True
        poll = self.epoll.poll
        epfd = self.epoll.fileno()
        handlers = self.handlers
        while self.running:
            timeout = self._poll_timeout()
            if cython.compiled:
                # epoll_wait(2) into a C array (loop.pxd): epoll.poll makes a
                # list, and a tuple and an int or two, of every event
                n = self._wait(epfd, timeout)
                self.now = monotonic()
                removed = self._removed
                if removed:
                    removed.clear()
                for i in range(n):
                    fd = _EVENTS[i].data.fd
                    if removed and fd in removed:
                        continue       # closed (and maybe reused) earlier this turn
                    h = handlers.get(fd)
                    if h is not None:
                        h(_EVENTS[i].events)
            else:
                try:
                    events = poll(timeout, MAX_EVENTS)
                except InterruptedError:  # pragma: no cover - PEP 475 retries
                    events = ()
                self.now = time.monotonic()
                removed = self._removed
                if removed:
                    removed.clear()
                for fd, ev in events:
                    if fd in removed:
                        continue       # closed (and maybe reused) earlier this turn
                    h = handlers.get(fd)
                    if h is not None:
                        h(ev)
            if self._heap:
                self._run_timers()
            if self._soon:
                soon, self._soon = self._soon, []
                for cb in soon:
                    cb()
            for hook in self._end_of_turn:
                hook()

    def _wait(self, epfd: int, timeout: float) -> int:
        """The compiled build's epoll_wait: up to MAX_EVENTS events into
        _EVENTS, waiting at most timeout seconds (rounded up to a
        millisecond, as epoll.poll does; below 0: no limit), the GIL let go
        meanwhile. Returns how many came; an interrupted wait returns 0
        after running the signal handlers, as epoll.poll would."""
        ms = -1 if timeout < 0 else int(math.ceil(timeout * 1000))
        with cython.nogil:
            n = epoll_wait(epfd, _EVENTS, MAX_EVENTS, ms)
        if n < 0:
            if errno_ != EINTR:
                raise OSError(errno_, os.strerror(errno_))
            PyErr_CheckSignals()
            return 0
        return n

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        if self._wakeup_r >= 0:
            signal.set_wakeup_fd(-1)
            os.close(self._wakeup_r)
            os.close(self._wakeup_w)
            self._wakeup_r = self._wakeup_w = -1
        self.epoll.close()


def monotonic() -> float:
    """time.monotonic(): the same clock, read through clock_gettime in the
    compiled build (no module attribute and float call to pay)."""
    if not cython.compiled:
        return time.monotonic()
    clock_gettime(CLOCK_MONOTONIC, cython.address(ts))
    return ts.tv_sec + ts.tv_nsec * 1e-9


def _noop() -> None:
    pass


def _record_only(signum, frame) -> None:
    """Signal handler: intentionally empty. set_wakeup_fd already wrote the
    signal number to the loop's pipe; the loop does the work."""


def is_fd_exhaustion(exc: OSError) -> bool:
    """True for EMFILE/ENFILE/ENOBUFS/ENOMEM: back off instead of spinning."""
    return exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
