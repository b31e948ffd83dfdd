"""The registry: config name -> Algorithm class, and make().

Re-exported by workers/lb/__init__.py; a module of its own so that pool.py
can import make() without a cycle through the package.
"""

from __future__ import annotations

from collections.abc import Sequence

from farm.model import BALANCE_ALGORITHMS, Balance

from .base import Algorithm
from .first import First
from .hashing import HashAlgorithm
from .leastconn import LeastConn
from .random import RandomTwo
from .roundrobin import RoundRobin
from .static_rr import StaticRoundRobin

ALGORITHMS: dict[str, type[Algorithm]] = {
    "roundrobin": RoundRobin,
    "static-rr": StaticRoundRobin,
    "leastconn": LeastConn,
    "first": First,
    "random": RandomTwo,
    "source": HashAlgorithm,
    "uri": HashAlgorithm,
    "url_param": HashAlgorithm,
    "hdr": HashAlgorithm,
}

# The loader validates names against model.BALANCE_ALGORITHMS; fail at import
# rather than at the first request if the two lists ever drift apart.
if set(ALGORITHMS) != set(BALANCE_ALGORITHMS):
    raise ImportError("workers.lb registry out of sync with farm.model.BALANCE_ALGORITHMS")


def make(
    balance: Balance,
    weights: Sequence[int],
    maxconn: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    counts: Sequence[int] | None = None,
) -> Algorithm:
    """Build the algorithm for balance over servers with these weights.

    maxconn: per-server limits (0 = unlimited) or None; names: stable
    server names (used by consistent hashing) or None for the indices;
    counts: a live view of the servers' connection counts owned elsewhere
    (Algorithm), or None. Raises KeyError for an unknown algorithm name
    (the loader prevents it).
    """
    cls = ALGORITHMS[balance.algorithm]
    return cls(weights, hash_type=balance.hash_type, maxconn=maxconn, names=names, counts=counts)
