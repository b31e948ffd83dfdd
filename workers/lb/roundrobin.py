"""balance roundrobin: smooth weighted round robin (nginx's algorithm).

The rule, per pick, over the usable servers not avoided: every server adds
its weight to its `current`; the one with the highest `current` wins (the
lowest index on a tie); the winner subtracts the total weight of the servers
that took part. With weights 5/1/1 that gives a a b a c a a: each server gets
exactly its share of every cycle of sum(weights) picks, spread out.

Doing that literally costs O(n) per pick. We get the same sequence cheaper:
between two picks every participant's `current` grows by its own weight, so
with a pick counter t we store, per server, b = current - t * weight, which
only changes when that server wins. Servers of equal weight keep their order
(their `current`s grow in parallel), so each distinct weight gets one heap
ordered by (-b, index), and a pick compares only the heap tops: O(d + log n)
for d distinct weights. In practice d is 1 (all equal) or 2 (one server
ramping up), so picks are O(log n); with all-distinct weights it is O(n),
no worse than the literal loop.

Dynamic changes follow nginx: set_up/set_weight take effect on the next pick
and every server keeps its `current` (a server that goes down keeps its
value frozen until it comes back). A pick with `avoid` naming usable servers
behaves like nginx skipping already-tried peers: the avoided servers neither
gain weight nor count in the total for that pick. That path costs O(n) per
avoided server, in C list operations (index, heapify); it serves retries and
full servers.

smooth_sequence() exposes one full cycle of the schedule; static-rr and
map-based hashing use it as their interleaved table.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from heapq import heapify, heappush, heapreplace
from math import gcd

from .base import Algorithm


class RoundRobin(Algorithm):
    """Smooth weighted round robin; see the module docstring."""

    name = "roundrobin"

    def _setup(self) -> None:
        # A server's heap key is the int -b * N + index, with N > every index:
        # the heap minimum is then the largest b (lowest index on a tie), and
        # "b -= total" is "key += total * N". Across groups, t * w * N - key
        # equals current * N - index, so the best top is the largest of those
        # with no division. Ints compare faster than tuples.
        self._N = max(self.n, 1)
        self._t = 0                   # picks since the last rebuild
        self._cur = [0] * self.n      # nginx's current_weight at t == 0
        self._key = [0] * self.n      # each participant's key in its heap
        self._groups: list[tuple[int, list[int]]] = []   # (weight * N, heap)
        self._heap_of: dict[int, list[int]] = {}         # weight -> heap
        self._single: list[int] | None = None   # the heap when len(groups) == 1
        self._part: list[int] = []    # participating (usable) indices, ascending
        self._total = 0               # total participating weight
        self._step = 0                # ... times N

    def _update(self) -> None:
        super()._update()
        # Fold the picks made so far into _cur using the weights the heaps
        # were built with (the old ones), then rebuild with the new weights.
        self._materialize()
        self._part = self.usable_indices()
        self._rebuild()

    def _materialize(self) -> None:
        """Write every participant's current value into _cur and reset t."""
        t, N, cur = self._t, self._N, self._cur
        for wN, heap in self._groups:
            w = wN // N
            for key in heap:
                i = key % N
                cur[i] = (i - key) // N + t * w
        self._t = 0

    def _rebuild(self) -> None:
        """Build the per-weight heaps from _cur (assumes t == 0)."""
        N, cur, ws, keys = self._N, self._cur, self.weights, self._key
        by_weight: dict[int, list[int]] = {}
        total = 0
        for i in self._part:
            w = ws[i]
            k = keys[i] = -cur[i] * N + i
            by_weight.setdefault(w, []).append(k)
            total += w
        groups = []
        for w in sorted(by_weight):
            heapify(by_weight[w])
            groups.append((w * N, by_weight[w]))
        self._groups = groups
        self._heap_of = by_weight
        self._single = groups[0][1] if len(groups) == 1 else None
        self._total = total
        self._step = total * N

    def pick(self, key: bytes | None = None, avoid: Collection[int] = ()) -> int | None:
        """Next server of the smooth schedule; key is ignored.

        Returns None if no usable server is outside avoid.
        """
        if avoid and self._blocks(avoid):
            return self._pick_avoiding(avoid)
        single = self._single
        if single is not None:
            # Equal weights: the top of the one heap is the winner.
            self._t += 1
            k = single[0]
            i = k % self._N
            k = self._key[i] = k + self._step
            heapreplace(single, k)
            return i
        groups = self._groups
        if not groups:
            return None
        t = self._t = self._t + 1
        best_v = 0
        best_heap: list[int] = []
        for wN, heap in groups:
            v = t * wN - heap[0]
            if not best_heap or v > best_v:
                best_v, best_heap = v, heap
        k = best_heap[0]
        i = k % self._N
        k = self._key[i] = k + self._step
        heapreplace(best_heap, k)
        return i

    def _pick_avoiding(self, avoid: Collection[int]) -> int | None:
        """One nginx step that skips the avoided servers.

        The avoided participants are taken out of their heaps for the step
        and put back with b lowered by their weight (they do not gain this
        step), and the winner pays only the total of those that took part.
        O(a * n) in C list operations plus O(d + log n), a = len(avoid).
        """
        N, ws, keys, heap_of = self._N, self.weights, self._key, self._heap_of
        removed = []
        for i in set(avoid):
            if not (0 <= i < self.n) or not self.up[i] or not ws[i]:
                continue
            heap = heap_of[ws[i]]
            j = heap.index(keys[i])
            last = heap.pop()
            if j < len(heap):
                heap[j] = last
                heapify(heap)
            removed.append(i)
        t = self._t + 1
        best_v = 0
        best_heap: list[int] = []
        for wN, heap in self._groups:
            if heap:
                v = t * wN - heap[0]
                if not best_heap or v > best_v:
                    best_v, best_heap = v, heap
        best = None
        if best_heap:
            self._t = t
            k = best_heap[0]
            best = k % N
            gone = 0                 # the avoided ones' weight (a loop, not sum():
            for i in removed:        # a generator would be a closure, refused by
                gone += ws[i]        # Cython in a compiled method)
            step = (self._total - gone) * N
            k = keys[best] = k + step
            heapreplace(best_heap, k)
            for i in removed:
                keys[i] += ws[i] * N
        for i in removed:
            heappush(heap_of[ws[i]], keys[i])
        return best


# Above this many (cycle length x distinct weights) steps, simulating the
# schedule would stall the event loop for milliseconds (tens of ms for 100
# servers with all-different weights up to 256); spread_sequence() builds an
# equally proportioned, interleaved cycle with one C-speed sort instead.
NGINX_BUILD_BUDGET = 1 << 16


def smooth_sequence(weights: Sequence[int]) -> list[int]:
    """One full cycle of a smooth weighted schedule for weights.

    weights: one int >= 0 per server (0 = left out). The weights are reduced
    by their gcd first (the schedule is the same, the cycle shorter), so the
    result has sum(weights) // gcd entries, each index i appearing
    weights[i] // gcd times, interleaved; empty if every weight is 0. The
    result depends only on weights (the same in every process).

    It is exactly RoundRobin's cycle when that is cheap to simulate (cycle
    length x distinct weights <= NGINX_BUILD_BUDGET, which covers equal
    weights and a few distinct ones), else spread_sequence()'s.
    Meant for table builds, not per pick.
    """
    g = 0
    for w in weights:
        g = gcd(g, w)
    if g == 0:
        return []
    reduced = [w // g for w in weights]
    total = sum(reduced)
    if total * len(set(reduced)) > NGINX_BUILD_BUDGET:
        return spread_sequence(reduced)
    rr = RoundRobin(reduced)
    pick = rr.pick
    return [pick() for _ in range(total)]  # type: ignore[misc]


def spread_sequence(weights: Sequence[int]) -> list[int]:
    """A cycle in which server i appears weights[i] times, evenly spaced.

    Server i's j-th turn sits at (j + phase_i) / weights[i] of the cycle,
    with phase_i = (i + 0.5) / n: every server is spread evenly over the
    cycle, and the phases keep light servers from landing on the same spot
    (5/1/1 gives a a a b a a c, runs of at most 3). O(total log total),
    deterministic (IEEE arithmetic only).
    """
    n = len(weights)
    entries: list[tuple[float, int]] = []
    for i, w in enumerate(weights):
        if w > 0:
            phase = (i + 0.5) / n
            entries.extend(((j + phase) / w, i) for j in range(w))
    entries.sort()
    return [i for _, i in entries]
