"""balance leastconn: the server with the lowest load for its weight.

Like HAProxy, the load compared is (conns + 1) / weight, where conns is this
worker's current count for the server: with equal weights that is "fewest
connections"; at equal connections the heavier server wins; a server of
weight 3 is given about three times the concurrent connections of a server
of weight 1. Servers with the same load are taken in round-robin order (the
one whose load changed least recently first), so idle servers share short
requests instead of the first one taking them all.

Data structure: a lazy heap of (load, stamp, index). Every acquired/released
pushes a fresh entry and bumps the server's stamp, which makes the old entry
stale; pick() drops stale entries from the top. The stamp also orders equal
loads by recency, which gives the round robin. Load is kept exact with
integers: (conns + 1) * (L // weight), L the lcm of the usable weights.
Costs: pick O(1) amortised, acquired/released O(log n); the heap is compacted
when stale entries pile up (O(n), amortised over at least n events).
"""

from __future__ import annotations

from collections.abc import Collection
from heapq import heapify, heappop, heappush
from math import lcm

from .base import Algorithm


class LeastConn(Algorithm):
    """Weighted least connections; see the module docstring."""

    name = "leastconn"

    def _setup(self) -> None:
        self._heap: list[tuple[int, int, int]] = []
        self._stamp = [-1] * self.n   # -1: not usable, no live entry
        self._mult = [0] * self.n     # L // weight for usable servers
        self._seq = 0
        self._limit = 64

    def _update(self) -> None:
        super()._update()
        usable = self.usable_indices()
        ws, stamp, mult = self.weights, self._stamp, self._mult
        big = lcm(*(ws[i] for i in usable)) if usable else 1
        for i in range(self.n):
            mult[i] = 0
        for i in usable:
            mult[i] = big // ws[i]
        # Keep the stamps of servers that stay usable (their round-robin
        # place); newcomers queue behind them.
        order = sorted(usable, key=lambda i: (stamp[i] < 0, stamp[i], i))
        keep = set(usable)
        for i in range(self.n):
            if i not in keep:
                stamp[i] = -1
        seq = 0
        for i in order:
            stamp[i] = seq
            seq += 1
        self._seq = seq
        self._limit = 2 * len(usable) + 64
        self._compact()

    def _compact(self) -> None:
        """Rebuild the heap with exactly one live entry per usable server."""
        conns, mult, stamp = self.conns, self._mult, self._stamp
        heap = [((conns[i] + 1) * mult[i], stamp[i], i)
                for i in range(self.n) if stamp[i] >= 0]
        heapify(heap)
        self._heap = heap

    # acquired/released run once per connection each, so the push is written
    # out in both rather than shared through a helper call.

    def acquired(self, index: int) -> None:
        conns = self.conns
        c = conns[index] = conns[index] + 1
        if self._stamp[index] >= 0:
            s = self._seq
            self._seq = s + 1
            self._stamp[index] = s
            heap = self._heap
            heappush(heap, ((c + 1) * self._mult[index], s, index))
            if len(heap) > self._limit:
                self._compact()

    def released(self, index: int) -> None:
        conns = self.conns
        c = conns[index]
        if c <= 0:
            return          # unmatched release: ignored (see Algorithm.released)
        c = conns[index] = c - 1
        if self._stamp[index] >= 0:
            s = self._seq
            self._seq = s + 1
            self._stamp[index] = s
            heap = self._heap
            heappush(heap, ((c + 1) * self._mult[index], s, index))
            if len(heap) > self._limit:
                self._compact()

    def pick(self, key: bytes | None = None, avoid: Collection[int] = ()) -> int | None:
        """The least loaded usable server not in avoid; key is ignored.
        pick() itself changes nothing: call acquired() on the result."""
        heap, stamp = self._heap, self._stamp
        while heap:
            _, s, i = heap[0]
            if stamp[i] != s:
                heappop(heap)     # stale: the server's load changed since
                continue
            if avoid and i in avoid:
                return self._pick_avoiding(avoid)
            return i
        return None

    def _pick_avoiding(self, avoid: Collection[int]) -> int | None:
        # O(n) scan: only reached when the best server is to be avoided.
        conns, mult, stamp = self.conns, self._mult, self._stamp
        best = None
        for i in range(self.n):
            s = stamp[i]
            if s < 0 or i in avoid:
                continue
            cand = ((conns[i] + 1) * mult[i], s, i)
            if best is None or cand < best:
                best = cand
        return None if best is None else best[2]
