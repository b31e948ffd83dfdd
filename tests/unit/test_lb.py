"""Unit tests for workers/lb: the balance algorithms and ServerPool."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from farm.model import BALANCE_ALGORITHMS, Address, Backend, Balance, Server
from workers.lb import (
    ALGORITHMS, First, HashAlgorithm, LeastConn, RandomTwo, RoundRobin,
    ServerPool, StaticRoundRobin, hash32, make, smooth_sequence,
)
from workers.lb.roundrobin import NGINX_BUILD_BUDGET, spread_sequence

ROOT = Path(__file__).resolve().parents[2]

ALL_NAMES = list(BALANCE_ALGORITHMS)
KEYS = [b"10.0.%d.%d" % (i // 256, i % 256) for i in range(10_000)]


def build(name: str, weights, hash_type: str = "map-based", **kw):
    """An algorithm by config name; random gets a seeded rng."""
    if name == "random":
        kw.setdefault("rng", random.Random(1234))
        return RandomTwo(weights, hash_type, **kw)
    return ALGORITHMS[name](weights, hash_type, **kw)


def picks(algo, count: int, avoid=()) -> list:
    """count picks with varying keys (so hashing algorithms spread), each
    followed by a short request (acquired + released) so leastconn moves."""
    out = []
    for j in range(count):
        i = algo.pick(KEYS[j % len(KEYS)], avoid)
        if i is not None:
            algo.acquired(i)
            algo.released(i)
        out.append(i)
    return out


def max_run(seq, value) -> int:
    best = run = 0
    for x in seq:
        run = run + 1 if x == value else 0
        best = max(best, run)
    return best


class NginxReference:
    """The literal O(n) nginx smooth weighted round robin, for comparison."""

    def __init__(self, weights):
        self.w = list(weights)
        self.up = [True] * len(self.w)
        self.cur = [0] * len(self.w)

    def pick(self, avoid=()):
        best, total = None, 0
        for i, w in enumerate(self.w):
            if not self.up[i] or w == 0 or i in avoid:
                continue
            self.cur[i] += w
            total += w
            if best is None or self.cur[i] > self.cur[best]:
                best = i
        if best is not None:
            self.cur[best] -= total
        return best


# -- registry ------------------------------------------------------------


def test_registry_covers_every_config_name():
    assert set(ALGORITHMS) == set(BALANCE_ALGORITHMS)
    for name in ("source", "uri", "url_param", "hdr"):
        assert ALGORITHMS[name] is HashAlgorithm
    assert ALGORITHMS["roundrobin"] is RoundRobin
    assert ALGORITHMS["static-rr"] is StaticRoundRobin
    assert ALGORITHMS["leastconn"] is LeastConn
    assert ALGORITHMS["first"] is First
    assert ALGORITHMS["random"] is RandomTwo


def test_make_passes_hash_type_maxconn_and_names():
    a = make(Balance(algorithm="hdr", arg="Host", hash_type="consistent"),
             [1, 1], maxconn=[5, 0], names=["x", "y"])
    assert isinstance(a, HashAlgorithm)
    assert a.hash_type == "consistent"
    assert a.maxconn == [5, 0] and a.names == ["x", "y"]
    with pytest.raises(KeyError):
        make(Balance(algorithm="nope"), [1])


@pytest.mark.parametrize("name", ALL_NAMES)
def test_invalid_arguments(name):
    with pytest.raises(ValueError):
        build(name, [1, -1])
    with pytest.raises(ValueError):
        build(name, [1], hash_type="bogus")
    with pytest.raises(ValueError):
        build(name, [1, 1], maxconn=[1])
    a = build(name, [1, 1])
    with pytest.raises(IndexError):
        a.set_up(2, False)
    with pytest.raises(IndexError):
        a.set_weight(-1, 1)
    with pytest.raises(ValueError):
        a.set_weight(0, -3)


# -- behaviour shared by every algorithm -----------------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
def test_nothing_usable_returns_none(name):
    assert build(name, []).pick(b"k") is None
    a = build(name, [1, 2, 3])
    for i in range(3):
        a.set_up(i, False)
    assert picks(a, 10) == [None] * 10
    assert a.n_usable == 0
    assert build(name, [0, 0]).pick(b"k") is None


@pytest.mark.parametrize("name", ALL_NAMES)
def test_down_server_is_never_picked_and_comes_back(name):
    a = build(name, [1, 1, 1])
    a.set_up(1, False)
    assert 1 not in picks(a, 300)
    assert a.n_usable == 2
    a.set_up(1, True)
    if name == "first":
        a.set_up(0, False)        # first only moves on when 0 is unusable
    assert 1 in picks(a, 300)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_weight_zero_is_never_picked_but_stays_up(name):
    a = build(name, [0, 1, 1])
    assert 0 not in picks(a, 300)
    assert a.up[0] and not a.usable(0)
    a.set_weight(1, 0)
    a.set_weight(2, 0)
    assert picks(a, 5) == [None] * 5
    a.set_weight(0, 4)
    assert picks(a, 5) == [0] * 5


@pytest.mark.parametrize("name", ALL_NAMES)
def test_avoid(name):
    a = build(name, [1, 2, 3])
    for avoid in ({0}, {2}, (1, 2), {0, 1}):
        got = picks(a, 200, avoid)
        assert None not in got
        assert not set(got) & set(avoid)
    assert picks(a, 5, {0, 1, 2}) == [None] * 5
    # avoid may name servers that are down or out of range
    a.set_up(0, False)
    assert picks(a, 5, {1, 2, 7}) == [None] * 5
    assert set(picks(a, 50, {0, 7})) <= {1, 2}


@pytest.mark.parametrize("name", ALL_NAMES)
def test_conns_are_counted_for_every_algorithm(name):
    a = build(name, [1, 1])
    a.acquired(0)
    a.acquired(0)
    a.released(0)
    assert a.conns == [1, 0]
    a.released(1)                  # unmatched release is ignored
    assert a.conns == [1, 0]


# -- roundrobin / static-rr ------------------------------------------------


@pytest.mark.parametrize("cls", [RoundRobin, StaticRoundRobin])
def test_rr_distribution_is_exact(cls):
    a = cls([1, 2, 3])
    got = Counter(a.pick(None) for _ in range(600))
    assert got == {0: 100, 1: 200, 2: 300}
    # Every full cycle holds each server exactly weight times.
    seq = [a.pick(None) for _ in range(60)]
    for start in range(0, 60, 6):
        assert Counter(seq[start:start + 6]) == {0: 1, 1: 2, 2: 3}


@pytest.mark.parametrize("cls", [RoundRobin, StaticRoundRobin])
def test_rr_is_smooth(cls):
    a = cls([5, 1, 1])
    seq = [a.pick(None) for _ in range(700)]
    assert max_run(seq, 0) < 5
    assert Counter(seq) == {0: 500, 1: 100, 2: 100}
    assert seq[:7] == [0, 0, 1, 0, 2, 0, 0]       # nginx's a a b a c a a


def test_rr_equal_weights_is_plain_rotation():
    a = RoundRobin([7, 7, 7, 7])
    assert [a.pick(None) for _ in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]


@pytest.mark.parametrize("seed", range(8))
def test_rr_matches_literal_nginx_under_changes(seed):
    """The heap implementation gives nginx's exact sequence, including
    weight changes, up/down (frozen current) and avoid."""
    rnd = random.Random(seed)
    n = rnd.randint(1, 7)
    weights = [rnd.choice([0, 1, 1, 2, 3, 5, 10, 100]) for _ in range(n)]
    ours, ref = RoundRobin(weights), NginxReference(weights)
    for _ in range(3000):
        op = rnd.random()
        if op < 0.02:
            i, w = rnd.randrange(n), rnd.choice([0, 1, 2, 3, 7, 50])
            ours.set_weight(i, w)
            ref.w[i] = w
        elif op < 0.04:
            i, up = rnd.randrange(n), rnd.random() < 0.6
            ours.set_up(i, up)
            ref.up[i] = up
        elif op < 0.10:
            avoid = set(rnd.sample(range(n), rnd.randint(1, n)))
            assert ours.pick(None, avoid) == ref.pick(avoid)
        else:
            assert ours.pick(None) == ref.pick()


def test_rr_dynamic_weight_change():
    a = RoundRobin([1, 1])
    [a.pick(None) for _ in range(11)]
    a.set_weight(0, 3)
    got = Counter(a.pick(None) for _ in range(400))
    assert abs(got[0] - 300) <= 2 and abs(got[1] - 100) <= 2
    a.set_weight(0, 0)
    assert {a.pick(None) for _ in range(20)} == {1}


def test_static_rr_dynamic_weight_change_rebuilds_sequence():
    a = StaticRoundRobin([1, 1])
    [a.pick(None) for _ in range(3)]
    a.set_weight(0, 3)
    assert Counter(a.pick(None) for _ in range(400)) == {0: 300, 1: 100}
    a.set_up(0, False)
    assert {a.pick(None) for _ in range(10)} == {1}


def test_static_rr_avoid_skips_the_turn():
    a = StaticRoundRobin([1, 1, 1])
    assert [a.pick(None, {1}) for _ in range(4)] == [0, 2, 0, 2]


def test_spread_sequence_for_long_cycles():
    assert spread_sequence([5, 1, 1]) == [0, 0, 0, 1, 0, 0, 2]
    rnd = random.Random(9)
    weights = [rnd.randint(0, 256) for _ in range(100)]
    seq = smooth_sequence(weights)           # over the simulation budget
    assert len(seq) * len(set(weights)) > NGINX_BUILD_BUDGET
    assert seq == spread_sequence(weights)   # gcd is 1 here
    assert Counter(seq) == {i: w for i, w in enumerate(weights) if w}
    # interleaved: the heaviest server never runs much longer than its share
    heavy = max(range(100), key=weights.__getitem__)
    assert max_run(seq + seq, heavy) <= 2


def test_smooth_sequence():
    assert smooth_sequence([5, 1, 1]) == [0, 0, 1, 0, 2, 0, 0]
    assert smooth_sequence([100, 200, 300]) == smooth_sequence([1, 2, 3])
    assert smooth_sequence([0, 0]) == []
    assert smooth_sequence([0, 4]) == [1]
    seq = smooth_sequence([3, 7, 0, 11])
    assert Counter(seq) == {0: 3, 1: 7, 3: 11}


# -- leastconn -------------------------------------------------------------


def test_leastconn_follows_acquired_and_released():
    a = LeastConn([1, 1, 1])
    held = []
    for _ in range(3):
        i = a.pick(None)
        a.acquired(i)
        held.append(i)
    assert sorted(held) == [0, 1, 2]
    a.acquired(0)
    a.acquired(2)                 # conns now 2, 1, 2
    assert a.pick(None) == 1
    a.acquired(1)
    a.acquired(1)                 # 2, 3, 2
    assert a.pick(None) in (0, 2)
    a.released(1)
    a.released(1)
    a.released(1)                 # 2, 0, 2
    assert a.pick(None) == 1


def test_leastconn_round_robin_among_equals():
    a = LeastConn([1, 1, 1, 1])
    seq = []
    for _ in range(12):           # short requests: each ends before the next
        i = a.pick(None)
        a.acquired(i)
        a.released(i)
        seq.append(i)
    assert Counter(seq) == {0: 3, 1: 3, 2: 3, 3: 3}
    assert seq[:4] == [0, 1, 2, 3] and seq[4:8] == seq[:4]


def test_leastconn_weighted_load():
    a = LeastConn([1, 2, 3])
    for _ in range(597):          # long-lived: (conns+1)/weight evens out
        a.acquired(a.pick(None))
    assert a.conns == [99, 199, 299]
    b = LeastConn([1, 3])
    assert b.pick(None) == 1      # idle: the heavier server first


def test_leastconn_weight_change_and_avoid():
    a = LeastConn([1, 1])
    a.acquired(0)
    assert a.pick(None) == 1
    a.set_weight(0, 10)           # (1+1)/10 < (0+1)/1
    assert a.pick(None) == 0
    assert a.pick(None, {0}) == 1
    assert a.pick(None, {0, 1}) is None
    a.set_up(0, False)
    assert a.pick(None) == 1


def test_leastconn_reads_counts_moved_by_others():
    """With a counts view owned elsewhere (all workers' connections in shm),
    picks follow it and acquired()/released() leave it alone."""
    shared = [5, 0, 5]
    a = LeastConn([1, 1, 1], counts=shared)
    assert a.pick(None) == 1
    a.acquired(1)
    assert shared == [5, 0, 5]    # not the algorithm's to move
    shared[1] = 9                 # another worker's connections
    assert a.pick(None) in (0, 2)
    shared[:] = [1, 1, 1]
    assert sorted(a.pick(None) for _ in range(3)) == [0, 1, 2]   # round robin among equals


# -- first -----------------------------------------------------------------


def test_first_fills_in_order_with_maxconn():
    a = First([1, 1, 1], maxconn=[2, 2, 0])
    got = []
    for _ in range(6):
        i = a.pick(None)
        a.acquired(i)
        got.append(i)
    assert got == [0, 0, 1, 1, 2, 2]
    a.released(0)
    assert a.pick(None) == 0
    a.set_up(0, False)
    assert a.pick(None) == 2      # 1 is full
    a.set_weight(2, 0)
    assert a.pick(None) is None   # 1 full, 2 drained, 0 down


def test_first_without_maxconn_takes_everything():
    a = First([1, 5, 1])
    assert set(picks(a, 50)) == {0}
    assert a.pick(None, {0}) == 1


# -- random ----------------------------------------------------------------


def test_random_distribution_when_idle():
    a = RandomTwo([1, 2, 3], rng=random.Random(42))
    got = Counter(a.pick(None) for _ in range(60_000))
    for i, share in enumerate((1 / 6, 2 / 6, 3 / 6)):
        assert abs(got[i] / 60_000 - share) < 0.01


def test_random_prefers_the_less_loaded():
    a = RandomTwo([1, 1], rng=random.Random(7))
    for _ in range(10):
        a.acquired(0)
    got = Counter(a.pick(None) for _ in range(40_000))
    # 0 wins only when both draws are 0: probability 1/4.
    assert abs(got[0] / 40_000 - 0.25) < 0.01


def test_random_is_reproducible_with_a_seed():
    one = RandomTwo([1, 2, 3], rng=random.Random(3))
    two = RandomTwo([1, 2, 3], rng=random.Random(3))
    assert picks(one, 100) == picks(two, 100)


# -- hashing ---------------------------------------------------------------


def test_hash32_is_fixed():
    # Pinned values: the hash must never change between releases, or every
    # sticky client moves on upgrade.
    assert hash32(b"") == 0
    assert [hash32(k) for k in (b"a", b"10.0.0.1", b"/index.html")] == [
        537083488, 2041696028, 49684092]


@pytest.mark.parametrize("hash_type", ["map-based", "consistent"])
def test_hash_is_deterministic_and_matches_hash32(hash_type):
    a = HashAlgorithm([1, 2, 3], hash_type)
    b = HashAlgorithm([1, 2, 3], hash_type)
    assert [a.pick(k) for k in KEYS] == [b.pick(k) for k in KEYS]
    assert a.pick(b"x") == a.pick(b"x")
    if hash_type == "map-based":
        table = smooth_sequence([1, 2, 3])
        assert all(a.pick(k) == table[hash32(k) % 6] for k in KEYS[:500])


_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from workers.lb import HashAlgorithm
keys = [b"10.0.%d.%d" % (i // 256, i % 256) for i in range(2000)]
out = {}
for ht in ("map-based", "consistent"):
    a = HashAlgorithm([1, 2, 3, 1], ht, names=["a", "b", "c", "d"])
    out[ht] = [a.pick(k) for k in keys]
print(json.dumps(out))
"""


def test_hash_is_stable_across_processes():
    results = []
    for seed in ("1", "2"):       # different str-hash randomisation
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT)],
                              capture_output=True, text=True, env=env, check=True)
        results.append(json.loads(proc.stdout))
    assert results[0] == results[1]
    for ht in ("map-based", "consistent"):
        a = HashAlgorithm([1, 2, 3, 1], ht, names=["a", "b", "c", "d"])
        assert results[0][ht] == [a.pick(k) for k in KEYS[:2000]]


@pytest.mark.parametrize("hash_type", ["map-based", "consistent"])
def test_hash_distribution_follows_weights(hash_type):
    a = HashAlgorithm([1, 2, 3], hash_type, names=["a", "b", "c"])
    keys = [b"client-%d" % i for i in range(60_000)]
    got = Counter(a.pick(k) for k in keys)
    tol = 0.01 if hash_type == "map-based" else 0.05
    for i, share in enumerate((1 / 6, 2 / 6, 3 / 6)):
        assert abs(got[i] / 60_000 - share) < tol, got


def test_consistent_hashing_moves_only_the_removed_servers_keys():
    a = HashAlgorithm([1] * 5, "consistent", names=[f"s{i}" for i in range(5)])
    before = [a.pick(k) for k in KEYS]
    a.set_up(3, False)
    after = [a.pick(k) for k in KEYS]
    moved = [j for j in range(len(KEYS)) if before[j] != after[j]]
    assert all(before[j] == 3 for j in moved)           # only 3's keys moved
    assert moved and len(moved) == before.count(3)      # ... all of them
    assert 0.14 < len(moved) / len(KEYS) < 0.26         # about 1/5
    assert 3 not in after
    a.set_up(3, True)                                   # they come back
    assert [a.pick(k) for k in KEYS] == before


def test_consistent_hashing_weight_change_moves_keys_to_that_server_only():
    a = HashAlgorithm([1] * 4, "consistent", names=list("abcd"))
    before = [a.pick(k) for k in KEYS]
    a.set_weight(2, 2)
    after = [a.pick(k) for k in KEYS]
    assert all(after[j] == 2 for j in range(len(KEYS)) if before[j] != after[j])
    assert after.count(2) > before.count(2)


def test_consistent_ring_ignores_config_order():
    names = ["alpha", "beta", "gamma"]
    a = HashAlgorithm([1, 1, 1], "consistent", names=names)
    b = HashAlgorithm([1, 1, 1], "consistent", names=names[::-1])
    assert [names[a.pick(k)] for k in KEYS] == [names[::-1][b.pick(k)] for k in KEYS]


def test_map_based_is_stable_while_the_set_is():
    a = HashAlgorithm([1, 1, 1, 1], "map-based")
    before = [a.pick(k) for k in KEYS]
    a.set_up(2, False)
    a.set_up(2, True)
    assert [a.pick(k) for k in KEYS] == before


@pytest.mark.parametrize("hash_type", ["map-based", "consistent"])
def test_hash_avoid_moves_to_the_next_server(hash_type):
    a = HashAlgorithm([1, 1, 1], hash_type)
    for k in KEYS[:300]:
        first = a.pick(k)
        second = a.pick(k, {first})
        assert second is not None and second != first
        assert a.pick(k, {first}) == second             # deterministic
        third = a.pick(k, {first, second})
        assert third not in (first, second, None)
        assert a.pick(k, {0, 1, 2}) is None


def test_hash_without_key_falls_back_to_round_robin():
    a = HashAlgorithm([1, 2, 3])
    rr = RoundRobin([1, 2, 3])
    assert [a.pick(None) for _ in range(60)] == [rr.pick(None) for _ in range(60)]
    a.set_up(2, False)
    assert 2 not in [a.pick(None) for _ in range(30)]


# -- ServerPool ------------------------------------------------------------


def backend(*specs, balance="roundrobin", **bal):
    """specs: (name, weight, backup, maxconn[, disabled])."""
    servers = []
    for n, spec in enumerate(specs):
        name, weight, backup, maxconn, *rest = spec
        servers.append(Server(name=name, address=Address("127.0.0.1", 8000 + n),
                              weight=weight, backup=backup, maxconn=maxconn,
                              disabled=bool(rest and rest[0]), id=n + 1))
    return Backend(name="be", servers=tuple(servers),
                   balance=Balance(algorithm=balance, **bal))


def pool_picks(pool, count, avoid=()):
    return [pool.pick(KEYS[j], avoid) for j in range(count)]


def test_pool_backup_takes_over_only_when_no_active_is_usable():
    p = ServerPool(backend(("a1", 1, False, 0), ("b1", 1, True, 0),
                           ("a2", 1, False, 0), ("b2", 1, True, 0)))
    assert p.up_count() == (2, 2)
    assert set(pool_picks(p, 20)) == {0, 2}
    p.set_up(0, False)
    assert set(pool_picks(p, 20)) == {2}
    p.set_weight(2, 0)                      # drained counts as not usable
    assert p.up_count() == (0, 2)
    assert set(pool_picks(p, 20)) == {1, 3}  # backups, balanced
    p.set_up(3, False)
    assert set(pool_picks(p, 20)) == {1}
    p.set_up(0, True)                       # an active is back
    assert set(pool_picks(p, 20)) == {0}
    assert p.any_up()


def test_pool_nothing_up():
    p = ServerPool(backend(("a", 1, False, 0), ("b", 1, True, 0)))
    p.set_up(0, False)
    p.set_up(1, False)
    assert p.pick(b"k") is None
    assert not p.any_up()
    assert p.up_count() == (0, 0)
    assert ServerPool(backend()).pick(None) is None


def test_pool_maxconn_full_servers_are_skipped():
    p = ServerPool(backend(("a", 1, False, 1), ("b", 1, False, 2), ("c", 1, True, 0)))
    got = []
    for _ in range(3):
        i = p.pick(None)
        p.acquired(i)
        got.append(i)
    assert sorted(got) == [0, 1, 1]
    assert p.full(0) and p.full(1)
    assert p.pick(None) is None             # all full: queue, not 503
    assert p.any_up()                       # ... which any_up() tells
    p.released(1)
    assert not p.full(1) and p.conns(1) == 1
    assert p.pick(None) == 1


def test_pool_avoid_uses_backend_indices():
    p = ServerPool(backend(("b0", 1, True, 0), ("a1", 1, False, 0), ("a2", 1, False, 0)))
    assert set(pool_picks(p, 20, {1})) == {2}
    assert p.pick(None, {1, 2}) is None     # actives tried: no backup while they are up
    p.set_up(1, False)
    p.set_up(2, False)
    assert p.pick(None, {1, 2}) == 0


def test_pool_disabled_servers_start_down():
    p = ServerPool(backend(("a", 1, False, 0, True), ("b", 1, False, 0)))
    assert not p.is_up(0) and p.is_up(1)
    assert p.up_count() == (1, 0)
    assert set(pool_picks(p, 10)) == {1}


@pytest.mark.parametrize("name", ALL_NAMES)
def test_pool_works_with_every_algorithm(name):
    bal = {"arg": "X"} if name in ("hdr", "url_param") else {}
    p = ServerPool(backend(("a", 1, False, 0), ("b", 2, False, 1), ("c", 1, True, 0),
                           balance=name, **bal))
    got = set()
    for j in range(50):
        i = p.pick(KEYS[j])
        assert i in (0, 1)
        got.add(i)
        p.acquired(i)
        p.released(i)
    assert p.conns(0) == p.conns(1) == 0
    assert p.weight(1) == 2
    p.set_up(0, False)
    p.set_up(1, False)
    assert p.pick(KEYS[0]) == 2


def test_pool_consistent_hashing_uses_server_names():
    one = ServerPool(backend(("x", 1, False, 0), ("y", 1, False, 0), ("z", 1, False, 0),
                             balance="source", hash_type="consistent"))
    two = ServerPool(backend(("z", 1, False, 0), ("x", 1, False, 0), ("y", 1, False, 0),
                             balance="source", hash_type="consistent"))
    n1, n2 = "xyz", "zxy"
    assert [n1[one.pick(k)] for k in KEYS[:2000]] == [n2[two.pick(k)] for k in KEYS[:2000]]


def test_every_up_pattern_gives_exact_rr_shares():
    # Exhaustive over small up/down patterns: the picks are exactly the
    # usable servers, in proportion to their weights, for both RR flavours.
    weights = [1, 2, 3, 4]
    for pattern in itertools.product([True, False], repeat=4):
        for cls in (RoundRobin, StaticRoundRobin):
            a = cls(weights)
            for i, up in enumerate(pattern):
                a.set_up(i, up)
            total = sum(w for w, up in zip(weights, pattern) if up)
            got = Counter(a.pick(None) for _ in range(total * 10))
            expect = {i: w * 10 for i, (w, up) in enumerate(zip(weights, pattern)) if up}
            assert dict(got) == expect
