"""ServerPool: the servers of one backend, as the data plane sees them.

It holds two Algorithm instances built with the backend's balance: one over
the active servers and one over the backup servers, and translates between
their local indices and the backend's server indices (positions in
Backend.servers). Backups get traffic only while no active server is usable
(HAProxy's default); they are then balanced with the same algorithm.

"Usable" is up and weight > 0, as in HAProxy, where servers drained to
weight 0 do not count as available: if every active server is drained or
down, the backups take over. any_up() and up_count() count usable servers.

Server maxconn is enforced here for every algorithm: a server at its
maxconn is skipped as if avoided. pick() returns None both when nothing is
usable and when everything usable is full or avoided; any_up() tells the
two apart (503 versus queue).

Connection counts: a worker gives the pool a live view of the servers'
counts in shared memory (all workers' connections, moved atomically by
workers/runtime.py), so maxconn, leastconn, random and first hold across
workers; without one (unit tests) the pool counts in lists of its own,
through acquired() and released().
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from farm.model import Backend

from .base import Algorithm
from .registry import make


class ServerPool:
    """Active and backup tiers of one backend; see the module docstring.

    All indices in this API are backend server indices (0-based positions in
    Backend.servers). Servers marked disabled in the config start down
    (maintenance); all others start up with their configured weights.
    """

    def __init__(self, backend: Backend, counts: Sequence[int] | None = None) -> None:
        """counts: the servers' current connection counts, indexed by
        backend server index and kept by their owner; None to count here."""
        servers = backend.servers
        n = len(servers)
        self.name = backend.name
        self.n = n
        self._tier = [1 if s.backup else 0 for s in servers]
        ids: tuple[list[int], list[int]] = ([], [])
        self._local = [0] * n
        for g, s in enumerate(servers):
            t = self._tier[g]
            self._local[g] = len(ids[t])
            ids[t].append(g)
        self._ids = ids
        self._algos: tuple[Algorithm, Algorithm] = tuple(  # type: ignore[assignment]
            make(backend.balance,
                 [servers[g].weight for g in ids[t]],
                 [servers[g].maxconn for g in ids[t]],
                 [servers[g].name for g in ids[t]],
                 None if counts is None else TierCounts(counts, ids[t]))
            for t in (0, 1))
        self._maxconn = [s.maxconn for s in servers]
        # per tier: (backend index, local index, maxconn) of the servers
        # with a maxconn, whose counts pick() must look at
        self._limited = tuple([(g, self._local[g], servers[g].maxconn) for g in ids[t]
                               if servers[g].maxconn] for t in (0, 1))
        for g, s in enumerate(servers):
            if s.disabled:
                self.set_up(g, False)

    def pick(self, key: bytes | None, avoid: Collection[int] = ()) -> int | None:
        """The backend index of the server for a new connection/request.

        key: the hash key (for hashing balances), else ignored. avoid:
        backend indices not to return (tried already). Actives first;
        backups only if no active server is usable. None if no usable
        server is outside avoid and below its maxconn.
        """
        algos = self._algos
        t = 0
        algo = algos[0]
        if not algo.n_usable:
            t = 1
            algo = algos[1]
            if not algo.n_usable:
                return None
        limited = self._limited[t]
        if not avoid and not limited:
            i = algo.pick(key)
        else:
            local, tier, n = self._local, self._tier, self.n
            blocked = {local[g] for g in avoid if 0 <= g < n and tier[g] == t}
            if limited:
                conns = algo.conns
                for g, loc, m in limited:
                    if conns[loc] >= m:
                        blocked.add(loc)
            i = algo.pick(key, blocked) if blocked else algo.pick(key)
        return None if i is None else self._ids[t][i]

    def set_up(self, index: int, up: bool) -> None:
        """Server index became usable / unusable (down, maintenance)."""
        self._algos[self._tier[index]].set_up(self._local[index], up)

    def set_weight(self, index: int, weight: int) -> None:
        """Set the effective weight of server index (0 = no new traffic)."""
        self._algos[self._tier[index]].set_weight(self._local[index], weight)

    def acquired(self, index: int) -> None:
        """A connection/request to server index started (counted here when
        the pool has no counts view)."""
        self._algos[self._tier[index]].acquired(self._local[index])

    def released(self, index: int) -> None:
        """A connection/request to server index ended."""
        self._algos[self._tier[index]].released(self._local[index])

    def conns(self, index: int) -> int:
        """Current connections to server index."""
        return self._algos[self._tier[index]].conns[self._local[index]]

    def full(self, index: int) -> bool:
        """True if server index has a maxconn and is at (or over) it."""
        m = self._maxconn[index]
        return bool(m) and self.conns(index) >= m

    def is_up(self, index: int) -> bool:
        """True if server index is up (whatever its weight)."""
        return self._algos[self._tier[index]].up[self._local[index]]

    def weight(self, index: int) -> int:
        """The current effective weight of server index."""
        return self._algos[self._tier[index]].weights[self._local[index]]

    def any_up(self) -> bool:
        """True if some server (active or backup) is usable: up, weight > 0."""
        return bool(self._algos[0].n_usable or self._algos[1].n_usable)

    def up_count(self) -> tuple[int, int]:
        """(usable active servers, usable backup servers)."""
        return self._algos[0].n_usable, self._algos[1].n_usable

    def __repr__(self) -> str:
        a, b = self.up_count()
        return f"<ServerPool {self.name} servers={self.n} usable={a}+{b}bck>"


class TierCounts:
    """The counts of one tier's servers (local index -> count) read from a
    backend-wide counts view (backend index -> count)."""

    __slots__ = ("_src", "_ids")

    def __init__(self, src: Sequence[int], ids: list[int]) -> None:
        self._src = src
        self._ids = ids

    def __getitem__(self, i: int) -> int:
        return self._src[self._ids[i]]

    def __len__(self) -> int:
        return len(self._ids)
