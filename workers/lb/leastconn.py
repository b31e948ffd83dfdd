"""balance leastconn: the server with the lowest load for its weight.

Like HAProxy, the load compared is (conns + 1) / weight, where conns is the
server's current count of connections from every worker (the shared-memory
count, workers/runtime.py; a list of the algorithm's own in unit tests):
with equal weights that is "fewest connections"; at equal connections the
heavier server wins; a server of weight 3 is given about three times the
concurrent connections of a server of weight 1. Servers with the same load
are taken in round-robin order (the one picked least recently first), so
idle servers share short requests instead of the first one taking them all.

Since other workers move the counts at any time, nothing can be kept
sorted between picks: pick() scans the usable servers, comparing loads
exactly with integers, (conns + 1) * (L // weight), L the lcm of the
usable weights. O(n) per pick, which is what a handful to a few dozen
servers costs least with; the scan reads each count once.
"""

from __future__ import annotations

from collections.abc import Collection
from math import lcm

from .base import Algorithm


class LeastConn(Algorithm):
    """Weighted least connections; see the module docstring."""

    name = "leastconn"

    def _setup(self) -> None:
        self._order: list[int] = []   # usable servers
        self._mult = [0] * self.n     # L // weight for usable servers
        self._stamp = [0] * self.n    # when each was last picked (round robin among equals)
        self._seq = 0

    def _update(self) -> None:
        super()._update()
        usable = self.usable_indices()
        ws, mult = self.weights, self._mult
        big = lcm(*(ws[i] for i in usable)) if usable else 1
        for i in range(self.n):
            mult[i] = 0
        for i in usable:
            mult[i] = big // ws[i]
        self._order = usable

    def pick(self, key: bytes | None = None, avoid: Collection[int] = ()) -> int | None:
        """The least loaded usable server not in avoid (key is ignored); the
        least recently picked among equals. It marks the server picked, and
        counts nothing: call acquired() when the connection starts."""
        conns, mult, stamp = self.conns, self._mult, self._stamp
        best = -1
        best_load = 0
        best_stamp = 0
        for i in self._order:
            if avoid and i in avoid:
                continue
            load = (conns[i] + 1) * mult[i]
            if best < 0 or load < best_load or (load == best_load and stamp[i] < best_stamp):
                best, best_load, best_stamp = i, load, stamp[i]
        if best < 0:
            return None
        self._seq += 1
        stamp[best] = self._seq
        return best
