"""The common interface of the balance algorithms.

An Algorithm picks among a fixed list of n servers, known only by their
index 0..n-1 (the order of the backend, or of one tier of it: see pool.py).
It holds the state every algorithm needs: the weight and up flag of each
server, its optional maxconn, and how many connections are open to it.
Subclasses keep whatever derived table they need and rebuild it in
_update(), which runs only when the set of usable servers or a weight
changes, never per pick.

The connection counts are either the algorithm's own list (acquired() and
released() move them), or a read-only view given as `counts` whose numbers
somebody else moves: in farm's workers, the shared-memory count of all
workers (workers/runtime.py), so that leastconn, random and first see every
worker's connections, not only their own.

A server is *usable* when it is up and its weight is above 0. Weight 0 means
"drain": the server stays up (health, stats) but receives no new traffic.

Everything here is pure logic: no I/O, no clock, no global state.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from farm.model import HASH_TYPES


class Algorithm:
    """Picks among a fixed list of servers, indexed 0..n-1 (the backend's order).

    weights: the configured weight of each server (int >= 0). All servers
        start up with these weights.
    hash_type: "map-based" or "consistent"; only the hashing algorithm uses
        it, the others accept and ignore it.
    maxconn: per-server connection limit (0 = unlimited), or None for all
        unlimited. Only `first` uses it for its own decisions; ServerPool
        enforces it for every algorithm.
    names: a stable identity per server (its name). Only consistent hashing
        uses it, so that a server's ring points do not depend on its
        position in the config. Defaults to the index.
    counts: a sequence whose item i is the current connection count of
        server i, kept up to date by its owner; None (the default) for a
        list of the algorithm's own, moved by acquired() and released().
    """

    #: the config name(s) this class serves; set by subclasses for messages
    name = "?"

    def __init__(
        self,
        weights: Sequence[int],
        hash_type: str = "map-based",
        maxconn: Sequence[int] | None = None,
        names: Sequence[str] | None = None,
        counts: Sequence[int] | None = None,
    ) -> None:
        n = len(weights)
        ws = []
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, int) or w < 0:
                raise ValueError(f"weight must be an int >= 0, got {w!r}")
            ws.append(w)
        if hash_type not in HASH_TYPES:
            raise ValueError(f"unknown hash_type {hash_type!r}")
        if maxconn is None:
            mc = [0] * n
        else:
            mc = [int(m) for m in maxconn]
            if len(mc) != n or any(m < 0 for m in mc):
                raise ValueError("maxconn must give one int >= 0 per server")
        if names is None:
            nm = [str(i) for i in range(n)]
        else:
            nm = [str(s) for s in names]
            if len(nm) != n or len(set(nm)) != n:
                raise ValueError("names must give one distinct name per server")
        self.n = n
        self.hash_type = hash_type
        # Public, read-only for callers (ServerPool, stats): mutate only
        # through set_up/set_weight/acquired/released.
        self.weights: list[int] = ws
        self.up: list[bool] = [True] * n
        self.maxconn: list[int] = mc
        self.names: list[str] = nm
        self.conns = [0] * n if counts is None else counts
        self._own_counts = counts is None
        self.n_usable = 0
        self._setup()
        self._update()

    # -- the interface --------------------------------------------------

    def pick(self, key: bytes | None = None, avoid: Collection[int] = ()) -> int | None:
        """Return the index of the server for a new connection/request.

        key: the hash key for hashing algorithms (client address bytes, uri,
            header value); the others ignore it.
        avoid: indices not to return (already tried by a retry, or full).
            A fast membership test (set, or a short tuple) is assumed.
        Returns None when no usable server remains outside avoid. pick()
        does not count a connection: call acquired() when one starts.
        """
        raise NotImplementedError

    def set_up(self, index: int, up: bool) -> None:
        """Mark a server usable or not (down, maintenance). Takes effect on
        the next pick; a no-op if nothing changes."""
        self._check_index(index)
        up = bool(up)
        if self.up[index] != up:
            self.up[index] = up
            self._update()

    def set_weight(self, index: int, weight: int) -> None:
        """Set the effective weight (int >= 0; 0 = no new traffic). Takes
        effect on the next pick; a no-op if nothing changes."""
        self._check_index(index)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise ValueError(f"weight must be an int >= 0, got {weight!r}")
        if self.weights[index] != weight:
            self.weights[index] = weight
            self._update()

    def acquired(self, index: int) -> None:
        """A connection/request to this server started (counted here when
        the counts are the algorithm's own)."""
        if self._own_counts:
            self.conns[index] += 1

    def released(self, index: int) -> None:
        """A connection/request to this server ended. An unmatched release
        is ignored rather than driving the count negative: one bookkeeping
        bug elsewhere must not make leastconn prefer a server forever."""
        if self._own_counts and self.conns[index] > 0:
            self.conns[index] -= 1

    # -- helpers for subclasses ------------------------------------------

    def usable(self, index: int) -> bool:
        """True if the server may receive new traffic (up and weight > 0)."""
        return self.up[index] and self.weights[index] > 0

    def usable_indices(self) -> list[int]:
        """The usable servers, in index order (a fresh list)."""
        up, ws = self.up, self.weights
        return [i for i in range(self.n) if up[i] and ws[i] > 0]

    def _setup(self) -> None:
        """Allocate subclass state; runs once, before the first _update()."""

    def _update(self) -> None:
        """Rebuild derived tables after a change of up flags or weights.
        Subclasses extend it and must call super()._update()."""
        self.n_usable = sum(1 for i in range(self.n) if self.up[i] and self.weights[i] > 0)

    def _blocks(self, avoid: Collection[int]) -> bool:
        """True if avoid names at least one usable server (so the fast path,
        which ignores avoid, might return it)."""
        up, ws = self.up, self.weights
        for i in avoid:
            if 0 <= i < self.n and up[i] and ws[i] > 0:
                return True
        return False

    def _all_avoided(self, avoid: Collection[int]) -> bool:
        """True if every usable server is in avoid (nothing left to pick)."""
        up, ws = self.up, self.weights
        blocked = {i for i in avoid if 0 <= i < self.n and up[i] and ws[i] > 0}
        return len(blocked) >= self.n_usable

    def _check_index(self, index: int) -> None:
        # Negative indices would silently address the end of the lists.
        if not 0 <= index < self.n:
            raise IndexError(f"server index {index} out of range 0..{self.n - 1}")

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} n={self.n} usable={self.n_usable} "
                f"weights={self.weights}>")
