"""Atomic int64 cells shared by the master and every worker.

What must be one number for all workers (a server's current connections
and queue, a frontend's connections, stick-table counters) lives in cells
of the shared-memory table and is changed with atomic operations, so that
maxconn, queues, leastconn and rate limits hold globally, never per worker.

`Cells(buffer)` wraps a writable, 8-byte aligned buffer (the table's mmap);
cell i is the int64 at byte offset 8 * i. Operations:

  load(i)                 the value
  store(i, v)             set it
  add(i, d)               add d (may be negative); returns the new value
  cas(i, expected, new)   set new if the cell holds expected; True if so
  inc_below(i, limit)     add 1 if the value is below limit (limit <= 0:
                          always); the new value if added, else 0: a
                          slot taken atomically
  raise_to(i, v)          value = max(value, v) (maxima)
  release()               let the buffer go (before the mmap is closed)

The C implementation (farm/_atomics.c, lock-free __atomic builtins) is used
when built; without a compiler farm runs this module's fallback, which
does the same under a lock shared through fork (a POSIX semaphore): it
must therefore be created by the master before it forks.
"""

from __future__ import annotations

import multiprocessing


class LockedCells:
    """Same API as farm._atomics.Cells, serialized by a process-shared lock
    (the fallback where the C module is not built)."""

    def __init__(self, buffer) -> None:
        self._q = memoryview(buffer).cast("B").cast("q")
        self._lock = multiprocessing.Lock()
        self.size = len(self._q)

    def load(self, i: int) -> int:
        return self._q[i]

    def store(self, i: int, v: int) -> None:
        with self._lock:
            self._q[i] = v

    def add(self, i: int, d: int) -> int:
        with self._lock:
            v = self._q[i] + d
            self._q[i] = v
            return v

    def cas(self, i: int, expected: int, new: int) -> bool:
        with self._lock:
            if self._q[i] != expected:
                return False
            self._q[i] = new
            return True

    def inc_below(self, i: int, limit: int) -> int:
        with self._lock:
            v = self._q[i]
            if 0 < limit <= v:
                return 0
            self._q[i] = v + 1
            return v + 1

    def raise_to(self, i: int, v: int) -> None:
        with self._lock:
            if self._q[i] < v:
                self._q[i] = v

    def release(self) -> None:
        self._q.release()


try:
    from farm._atomics import Cells
    COMPILED = True
except ImportError:         # no compiler where farm was installed: a lock instead
    COMPILED = False
    Cells = LockedCells  # type: ignore[misc, assignment]
