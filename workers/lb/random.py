"""balance random: power of two random choices.

Draw two servers at random, each with probability weight / total weight, and
take the one with the lower load. Load is conns / weight (all workers'
connections), compared by cross-multiplying so it stays exact; on a tie
(typically both idle) the first draw wins, so an idle backend is spread
exactly by weight. Two choices are enough to avoid both the herd effect of
pure leastconn across many independent workers and the imbalance of a
single random draw.

A weighted draw is a bisect on the cumulative weights (rebuilt on change):
O(log n) per pick. With avoid naming usable servers, the draw is made over a
temporary table of the remaining servers (O(n), retries and full servers).

The random source is injectable (rng=random.Random(seed)) for tests.
"""

from __future__ import annotations

# This module is workers/lb/random.py; absolute imports still reach the
# standard library's random.
import random as _random
from bisect import bisect_right
from collections.abc import Collection, Sequence

from .base import Algorithm


class RandomTwo(Algorithm):
    """Weighted power-of-two-choices; see the module docstring."""

    name = "random"

    def __init__(
        self,
        weights: Sequence[int],
        hash_type: str = "map-based",
        maxconn: Sequence[int] | None = None,
        names: Sequence[str] | None = None,
        counts: Sequence[int] | None = None,
        rng: _random.Random | None = None,
    ) -> None:
        self._rng = rng if rng is not None else _random.Random()
        super().__init__(weights, hash_type, maxconn, names, counts)

    def _setup(self) -> None:
        self._cum: list[int] = []     # cumulative weights of usable servers
        self._idx: list[int] = []     # their indices
        self._total = 0

    def _update(self) -> None:
        super()._update()
        self._idx = self.usable_indices()
        self._cum, self._total = _cumulate(self._idx, self.weights)

    def pick(self, key: bytes | None = None, avoid: Collection[int] = ()) -> int | None:
        """Weighted draw of two, lower load wins; key is ignored."""
        if avoid and self._blocks(avoid):
            return self._pick_avoiding(avoid)
        total = self._total
        if not total:
            return None
        cum, idx, rand = self._cum, self._idx, self._rng.random
        # random() < 1, so random() * total < total for any int total
        # below 2**53: bisect_right never runs off the end.
        a = idx[bisect_right(cum, rand() * total)]
        b = idx[bisect_right(cum, rand() * total)]
        return self._better(a, b)

    def _better(self, a: int, b: int) -> int:
        # conns[b] / w[b] < conns[a] / w[a], without division.
        conns, ws = self.conns, self.weights
        return b if conns[b] * ws[a] < conns[a] * ws[b] else a

    def _pick_avoiding(self, avoid: Collection[int]) -> int | None:
        idx = [i for i in self._idx if i not in avoid]
        cum, total = _cumulate(idx, self.weights)
        if not total:
            return None
        rand = self._rng.random
        a = idx[bisect_right(cum, rand() * total)]
        b = idx[bisect_right(cum, rand() * total)]
        return self._better(a, b)


def _cumulate(idx: list[int], weights: list[int]) -> tuple[list[int], int]:
    """Running sums of weights over idx, and the total."""
    cum = []
    total = 0
    for i in idx:
        total += weights[i]
        cum.append(total)
    return cum, total
