"""balance first: fill servers in order.

The first server (lowest index) that is usable and below its maxconn takes
the connection; when it is full the next one does, and so on. The point
(HAProxy's) is to keep as few servers busy as possible so the others can be
powered down. Without maxconn the first usable server takes everything.

pick() walks the usable servers in order and returns the first that is not
full: O(number of full servers before it), O(1) when the first has room.
"""

from __future__ import annotations

from collections.abc import Collection

from .base import Algorithm


class First(Algorithm):
    """First usable server with room; see the module docstring."""

    name = "first"

    def _setup(self) -> None:
        self._order: list[int] = []

    def _update(self) -> None:
        super()._update()
        self._order = self.usable_indices()

    def pick(self, key: bytes | None = None, avoid: Collection[int] = ()) -> int | None:
        """The lowest-index usable server below its maxconn and not in
        avoid; key is ignored. None if every usable server is full/avoided."""
        conns, maxconn = self.conns, self.maxconn
        for i in self._order:
            m = maxconn[i]
            if m and conns[i] >= m:
                continue
            if avoid and i in avoid:
                continue
            return i
        return None
