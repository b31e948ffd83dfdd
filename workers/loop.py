"""The event loop: select.epoll used directly, one handler per fd, lazy timers.

Used by every worker and by the master. Single-threaded; nothing here is
thread-safe and nothing needs to be.

Design choices (see DESIGN.md, "Event loop hygiene"):
- Level-triggered epoll; a handler is a plain callable taking the event mask,
  stored per fd, so dispatch is one dict lookup and one call.
- `now` is read once per turn (time.monotonic) and shared: sessions use
  loop.now instead of calling the clock per event.
- Timers live in a heap with lazy cancel *and* lazy extension: pushing a
  deadline later (the common case: an inactivity timeout refreshed on every
  read) only updates the Timer object; the heap entry is re-queued when it
  surfaces. So refreshing a timeout costs an attribute store, not a heappush.
- Signals: handlers set by the owner only record; set_wakeup_fd writes to a
  pipe this loop polls, so a signal wakes the loop, and `on_signals` runs in
  the loop, never inside the handler.
- End-of-turn hooks (e.g. flushing the access-log buffer with one write)
  run once per turn after all events and timers.
"""

from __future__ import annotations

import errno
import heapq
import os
import select
import signal
import time
from collections.abc import Callable

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLERR = select.EPOLLERR
EPOLLHUP = select.EPOLLHUP
EPOLLRDHUP = select.EPOLLRDHUP
COMPACT_MIN = 4096      # heap entries before stale ones are worth sweeping


class Timer:
    """A one-shot timer owned by the loop's heap.

    `when` is the monotonic deadline. reset() moves it; cancel() disarms it.
    The heap may hold a stale entry for a timer; `queued` is the deadline of
    the entry that counts, so stale entries are recognised and skipped.
    """

    __slots__ = ("when", "callback", "active", "queued")

    def __init__(self, callback: Callable[[], None]):
        self.callback = callback
        self.when = 0.0
        self.active = False
        self.queued: float | None = None

    def cancel(self) -> None:
        self.active = False

    def release(self) -> None:
        """Cancel for good and drop the callback. A cancelled timer's heap
        entry lives until its old deadline; without this, the callback (a
        bound method) would keep its whole session alive until then, and
        the session <-> timer cycle would leave it to the cyclic GC."""
        self.active = False
        self.callback = _noop


class Loop:
    """An epoll loop. Register fds with a handler `handler(events: int)`."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.masks: dict[int, int] = {}
        self._heap: list[tuple[float, int, Timer]] = []
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
        self.handlers[fd] = handler
        self.masks[fd] = mask

    def modify(self, fd: int, mask: int) -> None:
        """Change the event mask of a watched fd (no syscall if unchanged)."""
        if self.masks.get(fd) != mask:
            self.epoll.modify(fd, mask)
            self.masks[fd] = mask

    def watch(self, fd: int, mask: int, handler: Callable[[int], None]) -> None:
        """Make fd wait for exactly `mask`, calling handler. An fd waiting
        for nothing leaves the epoll set: epoll reports EPOLLHUP/EPOLLERR
        even for an empty mask, so a paused socket that hangs up would
        otherwise spin the loop."""
        if mask == 0:
            self.remove(fd)
        elif fd in self.masks:
            self.handlers[fd] = handler
            self.modify(fd, mask)
        else:
            self.add(fd, mask, handler)

    def remove(self, fd: int) -> None:
        """Stop watching fd. Safe to call for an fd that is not watched."""
        if self.handlers.pop(fd, None) is not None:
            del self.masks[fd]
            self._removed.add(fd)
            try:
                self.epoll.unregister(fd)
            except (OSError, ValueError):
                pass  # already closed: the kernel dropped it from the set

    # -- timers ------------------------------------------------------------

    def timer(self, callback: Callable[[], None]) -> Timer:
        """A disarmed timer bound to callback; arm it with set_timer()."""
        return Timer(callback)

    def set_timer(self, t: Timer, when: float, early: float | None = None) -> None:
        """Arm (or re-arm) t for the monotonic time `when`.

        early (optional, now < early <= when): if a heap entry has to be
        pushed, push it at `early` instead. A timer that alternates between
        a long and a shorter deadline (an HTTP session: keep-alive 60 s,
        server 30 s) then pushes once per `early` interval instead of on
        every switch; the entry surfacing before `when` just re-queues."""
        t.when = when
        t.active = True
        q = t.queued
        if q is None or when < q:
            # Earlier than the queued entry (or none queued): push a new entry.
            # Pushing later needs nothing: the old entry re-queues on surfacing.
            if early is not None and early < when:
                when = early
            t.queued = when
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, t))
            if len(self._heap) > self._compact_at:
                self._compact()

    def _compact(self) -> None:
        """Drop stale and cancelled entries when they have piled up (many
        short sessions closing long before their timeouts)."""
        live = [e for e in self._heap if e[2].active and e[2].queued == e[0]]
        for e in self._heap:
            t = e[2]
            if not t.active and t.queued == e[0]:
                t.queued = None
        heapq.heapify(live)
        self._heap = live
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
        while heap and heap[0][0] <= now:
            when, _, t = heapq.heappop(heap)
            if t.queued != when:
                continue  # stale entry: a newer, earlier one was pushed
            if not t.active:
                t.queued = None
                continue
            if t.when > now:
                # Extended since it was queued: re-queue at the new deadline.
                t.queued = t.when
                self._seq += 1
                heapq.heappush(heap, (t.when, self._seq, t))
                continue
            t.queued = None
            t.active = False
            t.callback()

    def _poll_timeout(self) -> float:
        if self._soon:
            return 0
        heap = self._heap
        while heap:
            when, _, t = heap[0]
            if t.queued != when or not t.active:
                heapq.heappop(heap)
                if t.queued == when:
                    t.queued = None
                continue
            return max(0.0, when - time.monotonic())
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
        handlers = self.handlers
        while self.running:
            timeout = self._poll_timeout()
            try:
                events = poll(timeout, 256)
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

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        if self._wakeup_r >= 0:
            signal.set_wakeup_fd(-1)
            os.close(self._wakeup_r)
            os.close(self._wakeup_w)
            self._wakeup_r = self._wakeup_w = -1
        self.epoll.close()


def _noop() -> None:
    pass


def _record_only(signum, frame) -> None:
    """Signal handler: intentionally empty. set_wakeup_fd already wrote the
    signal number to the loop's pipe; the loop does the work."""


def is_fd_exhaustion(exc: OSError) -> bool:
    """True for EMFILE/ENFILE/ENOBUFS/ENOMEM: back off instead of spinning."""
    return exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
