"""workers/counting.py on real runtime objects (workers/runtime.py): the
events HAProxy 2.6 counts, counted at the same moments (the side-by-side
integration test, tests/integration/test_stats_vs_haproxy.py, checks the
whole against HAProxy itself)."""

from farm import shm
from farm.loader import load_text
from workers import counting
from workers.runtime import BackendRuntime, SharedState

CFG = """
[global]
workers = 1
[defaults]
mode = "http"
[frontends.fe]
bind = "127.0.0.1:1"
default_backend = "be"
[backends.be]
[[backends.be.servers]]
name = "a"
address = "127.0.0.1:2"
maxconn = 1
[[backends.be.servers]]
name = "b"
address = "127.0.0.1:3"
"""


def backend() -> BackendRuntime:
    cfg = load_text(CFG)
    return BackendRuntime(cfg.backends[0], SharedState(shm.Table.create(cfg, 1), 0))


def counts(obj, *names) -> tuple:
    return tuple(obj.c[shm.C[n]] for n in names)


def test_a_balanced_choice_counts_lbtot_on_the_server_and_the_backend():
    be = backend()
    a = be.acquire(0, balanced=True, previous=None)
    assert counts(a, "stot", "lbtot", "wretr", "wredis") == (1, 1, 0, 0)
    assert counts(be, "lbtot") == (1,)
    assert a.c[shm.C_LASTSESS] > 0 and be.c[shm.C_LASTSESS] > 0


def test_a_cookie_or_the_queue_is_not_load_balancing():
    be = backend()
    a = be.acquire(0, balanced=False, previous=None)
    assert counts(a, "stot", "lbtot") == (1, 0) and counts(be, "lbtot") == (0,)


def test_a_redispatch_is_counted_on_the_server_that_failed():
    be = backend()
    a = be.acquire(0, balanced=True, previous=None)
    be.release(a)
    b = be.acquire(1, balanced=True, previous=a)
    assert counts(a, "wredis", "wretr") == (1, 0)
    assert counts(b, "wredis", "wretr", "lbtot") == (0, 0, 1)
    assert counts(be, "wredis", "wretr", "lbtot") == (1, 0, 2)


def test_the_same_server_again_is_a_retry_not_a_new_choice():
    be = backend()
    a = be.acquire(0, balanced=True, previous=None)
    be.release(a)
    be.acquire(0, balanced=False, previous=a)    # retried after a turn-around
    be.release(a)
    be.acquire(0, balanced=True, previous=a)     # the balancer picked it again
    assert counts(a, "stot", "lbtot", "wretr", "wredis") == (3, 1, 2, 0)
    assert counts(be, "lbtot", "wretr") == (1, 2)


def test_smax_is_kept_when_a_session_opens():
    """Current sessions are the shared gauges (all workers): their maximum
    is kept the moment they grow, so a peak shorter than a flush shows."""
    be = backend()
    table = be.pool.shared.table
    be.g.take()
    be.g.take()
    be.g.give()
    be.g.give()
    assert be.conns == 0 and table.gauges(("be", "be"))["smax"] == 2
    a = be.acquire(0, balanced=True, previous=None)
    be.release(a)
    assert a.conns == 0 and table.gauges(("srv", "be", "a"))["smax"] == 1


class Waiter:
    """A queued request that never gets a slot (dequeued() says so)."""

    def dequeued(self) -> bool:
        return False


def test_qmax_is_kept_when_a_session_waits():
    be = backend()
    table = be.pool.shared.table
    first, second = Waiter(), Waiter()
    be.enqueue(first)
    be.enqueue(second)
    assert be.queued() == 2
    be.leave_queue(first)
    be.leave_queue(second)
    assert be.queued() == 0 and table.gauges(("be", "be"))["qmax"] == 2


def test_connect_counts_new_connections_and_reuse_taken_ones():
    be = backend()
    a = be.acquire(0, balanced=True, previous=None)
    counting.connect_attempt(be, a)
    counting.connect_attempt(be, a, reused=True)
    assert counts(a, "connect", "reuse", "econ") == (1, 1, 0)
    assert counts(be, "connect", "reuse", "econ") == (1, 1, 0)
