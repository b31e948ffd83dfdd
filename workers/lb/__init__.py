"""Balance algorithms: one module per algorithm, a tiny common interface.

ALGORITHMS maps every config name of farm.model.BALANCE_ALGORITHMS to the
class implementing it; make() builds one from a farm.model.Balance. The
hashing names (source, uri, url_param, hdr) share HashAlgorithm: the caller
extracts the key. ServerPool (pool.py) wraps a whole backend: active and
backup tiers, maxconn.
"""

from __future__ import annotations

from .base import Algorithm
from .first import First
from .hashing import HashAlgorithm, hash32
from .leastconn import LeastConn
from .pool import ServerPool
from .random import RandomTwo
from .registry import ALGORITHMS, make
from .roundrobin import RoundRobin, smooth_sequence
from .static_rr import StaticRoundRobin

__all__ = [
    "ALGORITHMS", "Algorithm", "First", "HashAlgorithm", "LeastConn",
    "RandomTwo", "RoundRobin", "ServerPool", "StaticRoundRobin", "hash32",
    "make", "smooth_sequence",
]
