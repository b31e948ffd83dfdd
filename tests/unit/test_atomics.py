"""farm/atomics.py: the cells every worker changes at once (maxconn, queues,
leastconn), in the C build (farm/_atomics.c) and in the locked fallback.
Each operation's meaning, then real forked processes racing on one shared
mapping: no update is lost and a limit taken with inc_below is never
passed."""

from __future__ import annotations

import mmap
import os

import pytest

from farm import atomics

IMPLEMENTATIONS = [pytest.param(atomics.LockedCells, id="locked")]
if atomics.COMPILED:
    IMPLEMENTATIONS.insert(0, pytest.param(atomics.Cells, id="c"))


def test_the_c_build_is_there_when_farm_is_compiled():
    """make build compiles farm/_atomics.c; farm must not silently run the
    lock fallback (FARM_PURE concerns the Cython modules, not this one)."""
    from farm import build
    if build.describe() == "compiled":
        assert atomics.COMPILED


@pytest.fixture
def shared():
    """A MAP_SHARED anonymous mapping of 16 cells, inherited through fork."""
    m = mmap.mmap(-1, 16 * 8, flags=mmap.MAP_SHARED)
    yield m
    try:
        m.close()
    except BufferError:     # a failed test left its Cells holding the buffer
        pass


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_operations(impl, shared):
    c = impl(shared)
    assert c.size == 16
    assert c.load(3) == 0
    c.store(3, 41)
    assert c.add(3, 1) == 42
    assert c.add(3, -50) == -8
    assert c.cas(3, -8, 7) is True
    assert c.cas(3, -8, 9) is False and c.load(3) == 7
    c.raise_to(3, 5)
    assert c.load(3) == 7
    c.raise_to(3, 12)
    assert c.load(3) == 12
    c.release()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_inc_below_takes_a_slot_only_below_the_limit(impl, shared):
    c = impl(shared)
    assert [c.inc_below(0, 3) for _ in range(5)] == [1, 2, 3, 0, 0]
    assert c.load(0) == 3
    assert c.inc_below(1, 0) == 1 and c.inc_below(1, -1) == 2    # no limit
    c.release()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_an_index_past_the_end_is_refused(impl, shared):
    c = impl(shared)
    with pytest.raises(IndexError):
        c.load(16)
    with pytest.raises(IndexError):
        c.add(99, 1)
    c.release()


ROUNDS = 20000                  # per process: long enough to overlap on 2 cores
START = 15                      # the cell the racers meet at


def _race(impl, shared, work):
    """Run work(cells, k) in 4 forked processes that start together (each
    waits at cell START until all 4 are there); each must exit 0."""
    c = impl(shared)            # made before the fork: the lock is shared
    pids = []
    for k in range(4):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                c.add(START, 1)
                while c.load(START) < 4:
                    pass
                work(c, k)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    return c


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_no_add_is_lost_between_processes(impl, shared):
    def work(c, k):
        for _ in range(ROUNDS):
            c.add(0, 1)
            c.add(1, -1)
            c.raise_to(2, k)

    c = _race(impl, shared, work)
    assert (c.load(0), c.load(1), c.load(2)) == (4 * ROUNDS, -4 * ROUNDS, 3)
    c.release()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_limit_holds_for_all_processes_together(impl, shared):
    """Cell 0 is a server's current connections with maxconn 3; cell 1
    counts the holders as they see themselves; cell 2 the most seen; cell
    3 the slots taken in all."""
    def work(c, k):
        taken = 0
        for _ in range(ROUNDS):
            if c.inc_below(0, 3):
                taken += 1
                holders = c.add(1, 1)
                c.raise_to(2, holders)
                if holders > 3:
                    raise AssertionError(f"{holders} holders of 3 slots")
                c.add(1, -1)
                c.add(0, -1)
        # (one process may get no slot at all: the others can be preempted
        # holding all three for the whole of its time slice)
        c.add(3, taken)

    c = _race(impl, shared, work)
    assert c.load(0) == 0 and c.load(1) == 0
    assert 1 <= c.load(2) <= 3
    assert c.load(3) > 0
    c.release()
