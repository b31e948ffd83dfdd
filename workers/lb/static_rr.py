"""balance static-rr: round robin over a precomputed weighted sequence.

The sequence is one cycle of the smooth schedule (roundrobin.smooth_sequence:
nginx's cycle, or an evenly spread one for very long cycles), so it is
interleaved ("a a b a c a a" for 5/1/1, not "a a a a a b c") and holds each
usable server weight // gcd times. A pick is one list index: the
cheapest algorithm there is. Any up/down or weight change rebuilds the whole
sequence (O(cycle)); the position keeps its relative place in the cycle so a
change does not restart everyone from the first, heaviest server.
"""

from __future__ import annotations

from collections.abc import Collection

from .base import Algorithm
from .roundrobin import smooth_sequence


class StaticRoundRobin(Algorithm):
    """Static weighted round robin; see the module docstring."""

    name = "static-rr"

    def _setup(self) -> None:
        self._seq: list[int] = []
        self._len = 0
        self._pos = 0

    def _update(self) -> None:
        super()._update()
        up = self.up
        seq = smooth_sequence([w if up[i] else 0 for i, w in enumerate(self.weights)])
        old_len, new_len = self._len, len(seq)
        # Same fraction of the way through the cycle as before the change.
        self._pos = self._pos * new_len // old_len if old_len and new_len else 0
        self._seq, self._len = seq, new_len

    def pick(self, key: bytes | None = None, avoid: Collection[int] = ()) -> int | None:
        """Next server of the sequence; key is ignored. Avoided servers are
        skipped (they lose that turn). None if nothing usable is left."""
        n = self._len
        if not n:
            return None
        pos = self._pos
        i = self._seq[pos]
        if avoid and i in avoid:
            return self._walk(avoid)
        pos += 1
        self._pos = 0 if pos == n else pos
        return i

    def _walk(self, avoid: Collection[int]) -> int | None:
        # Checked first so that the walk below always ends within one cycle.
        if self._all_avoided(avoid):
            return None
        seq, n, pos = self._seq, self._len, self._pos
        while True:
            i = seq[pos]
            pos += 1
            if pos == n:
                pos = 0
            if i not in avoid:
                self._pos = pos
                return i
