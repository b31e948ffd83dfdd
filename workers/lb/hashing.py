"""balance source | uri | url_param | hdr: pick a server by hashing a key.

One class serves the four: they differ only in the key the caller extracts
(client address bytes, the uri, a query parameter, a header value).

The key hash is zlib.crc32 (C speed) followed by a 32-bit avalanche mix.
crc32 alone is linear: keys that differ in a few bits (neighbouring client
addresses) give hashes that differ in structured ways, which a modulo by a
small table size can map to the same few slots. The mix (xor-shift,
multiply, three rounds; the constants are the "lowbias32" ones published by
Chris Wellons' hash-prospector) makes every output bit depend on every input
bit. Python's hash() is not usable: it is randomised per process, and every
worker (and every restart) must send a given key to the same server.

hash_type "map-based" (default, HAProxy's): a table in which each usable
server appears weight // gcd times, interleaved; the slot is hash % len.
Cheapest lookup, and stable while the set of usable servers and their
weights is; any change remaps most keys.

hash_type "consistent": a ring of 32-bit points, weight * K per usable
server, looked up with bisect (O(log points)). A server's points come from
its *name* (blake2b of the name and a counter, at build time only), so they
do not depend on its position in the config or on the other servers: when a
server leaves, only the keys that were on it move (to the next points), and
when it returns they come back. K is fixed per instance as
ceil(RING_POINTS / max configured weight): the heaviest server gets about
RING_POINTS = 256 points. A server's share of the ring then varies by about
1/sqrt(points), roughly 6% for the heaviest, where HAProxy's fixed 16 points
per unit of weight leaves weight-1 servers at about 25%; and a backend with
weights of 100 still gets a ring of only ~256 points per server rather than
1,600. K depends on the configured weights only, so every worker builds the
same ring; changing the largest configured weight reshuffles the ring (as
any weight change does in proportion).

When the hashed server is in avoid, the next slot (map-based) or the next
point of another server (consistent) is used. A key of None (header or
parameter absent) falls back to smooth round robin, like HAProxy.
"""

from __future__ import annotations

import hashlib
import struct
from bisect import bisect_left
from collections.abc import Collection
from zlib import crc32

from .base import Algorithm
from .roundrobin import RoundRobin, smooth_sequence

RING_POINTS = 256          # ring points of the heaviest configured server
_MASK = 0xFFFFFFFF
_M1 = 0x7FEB352D
_M2 = 0x846CA68B
_POINTS16 = struct.Struct("<16I")


def hash32(key: bytes) -> int:
    """The 32-bit hash of key (bytes-like) used by HashAlgorithm.pick.

    Stable across processes, runs and machines. HashAlgorithm.pick inlines
    the same arithmetic to save a call; the tests hold the two together.
    """
    h = crc32(key)
    h ^= h >> 16
    h = (h * _M1) & _MASK
    h ^= h >> 15
    h = (h * _M2) & _MASK
    return h ^ (h >> 16)


def ring_points(name: str, count: int) -> list[int]:
    """The first count ring points (32-bit ints) of the server called name.

    Each point is a stable function of (name, position), so a server's
    points for weight w are a prefix of its points for any larger weight: a
    weight change only adds or removes points at the end of that server's
    series. Uses blake2b: 16 points per 64-byte digest.
    """
    out: list[int] = []
    raw = name.encode("utf-8", "surrogateescape")
    block = 0
    while len(out) < count:
        d = hashlib.blake2b(raw + b"\x00%d" % block, digest_size=64,
                            person=b"farm-chash").digest()
        out.extend(_POINTS16.unpack(d))
        block += 1
    del out[count:]
    return out


class HashAlgorithm(Algorithm):
    """Hash-based selection (map-based or consistent); see the module docstring."""

    name = "hash"

    def _setup(self) -> None:
        self._rr = RoundRobin(self.weights)      # for key None
        self._consistent = self.hash_type == "consistent"
        top = max(self.weights, default=0) or 1
        self._k = -(-RING_POINTS // top)          # ceil division
        # cached encoded ring entries per server (see _build_ring)
        self._encoded: dict[int, list[int]] = {}
        self._by_rank = sorted(range(self.n), key=lambda i: self.names[i])
        self._rank = [0] * self.n
        for r, i in enumerate(self._by_rank):
            self._rank[i] = r
        # map-based
        self._table: list[int] = []
        # consistent
        self._ring: list[int] = []
        self._owner: list[int] = []
        self._len = 0

    def _update(self) -> None:
        super()._update()
        if self._consistent:
            self._build_ring()
        else:
            up = self.up
            self._table = smooth_sequence(
                [w if up[i] else 0 for i, w in enumerate(self.weights)])
            self._len = len(self._table)

    def _build_ring(self) -> None:
        # Each ring entry is one int, point << 32 | rank, rank being the
        # server's position in name order: sorting plain ints is several
        # times faster than sorting tuples, and a tie between two servers'
        # points goes to the smaller name, whatever their config positions.
        entries: list[int] = []
        for i in self.usable_indices():
            count = self.weights[i] * self._k
            enc = self._encoded.get(i)
            if enc is None or len(enc) < count:
                rank = self._rank[i]
                enc = self._encoded[i] = [p << 32 | rank
                                          for p in ring_points(self.names[i], count)]
            entries.extend(enc[:count])
        entries.sort()
        by_rank = self._by_rank
        self._ring = [e >> 32 for e in entries]
        self._owner = [by_rank[e & 0xFFFFFFFF] for e in entries]
        self._len = len(entries)

    def set_up(self, index: int, up: bool) -> None:
        super().set_up(index, up)
        self._rr.set_up(index, up)

    def set_weight(self, index: int, weight: int) -> None:
        super().set_weight(index, weight)
        self._rr.set_weight(index, weight)

    def pick(self, key: bytes | None, avoid: Collection[int] = ()) -> int | None:
        """The server for key (bytes); round robin if key is None.

        Deterministic for a given key, set of usable servers and weights,
        across instances and processes. Avoided servers are skipped to the
        next slot / ring point. None if no usable server is outside avoid.
        """
        if key is None:
            return self._rr.pick(None, avoid)
        n = self._len
        if not n:
            return None
        # hash32(key), inlined
        h = crc32(key)
        h ^= h >> 16
        h = (h * 0x7FEB352D) & 0xFFFFFFFF
        h ^= h >> 15
        h = (h * 0x846CA68B) & 0xFFFFFFFF
        h ^= h >> 16
        if self._consistent:
            pos = bisect_left(self._ring, h)
            if pos == n:
                pos = 0
            owners = self._owner
        else:
            pos = h % n
            owners = self._table
        i = owners[pos]
        if avoid and i in avoid:
            if self._all_avoided(avoid):
                return None
            # Guaranteed to stop: some usable server is outside avoid.
            while i in avoid:
                pos += 1
                if pos == n:
                    pos = 0
                i = owners[pos]
        return i
