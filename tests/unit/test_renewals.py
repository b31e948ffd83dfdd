"""farm/renewals.py: the renewal state the master shares with the workers
(bounded, consistent under a concurrent writer, shared across fork), and
what the scheduler of farm/acmerun.py publishes on it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from farm import acmerun, model, renewals

FILES = ("/var/lib/farm/acme/www.pem", "/var/lib/farm/acme/www.self-signed.pem")


def rec(frontend="www", state="scheduled", failures=0, next_try=1000.0, error="", files=FILES):
    return renewals.Renewal(frontend, "le", state, failures, next_try, error, files)


def test_write_read_round_trip():
    b = renewals.Board(4096)
    assert b.read() == [] and b.by_file() == {}
    records = [rec(), rec("api\t\"ü\"", "failed", 2, 1234.5, "refused", ("/a b.pem",))]
    b.write(records)
    assert b.read() == records
    assert b.by_file() == {FILES[0]: records[0], FILES[1]: records[0], "/a b.pem": records[1]}
    b.write([])
    assert b.read() == []


def test_a_write_that_changes_nothing_is_skipped():
    b = renewals.Board(4096)
    b.write([rec()])
    seq = b.map[:4]
    b.write([rec()])
    assert b.map[:4] == seq
    b.write([rec(failures=1, state="failed")])
    assert b.map[:4] != seq


def test_sizes_are_bounded():
    b = renewals.Board(1024)
    long = "authorization of a.example is invalid: " + "x " * 500 + "\n connect: connection refused"
    b.write([rec(error=long)])
    (got,) = b.read()
    assert len(got.error) == renewals.ERROR_MAX and "\n" not in got.error
    # what failed (the start) and why (the end) are kept; the middle goes
    assert got.error.startswith("authorization of a.example is invalid: x x")
    assert got.error.endswith("x x connect: connection refused") and got.error.count("\u2026") == 1
    assert renewals.short_error("a\n  b") == "a b"
    # what does not fit is left out, whole records only
    many = [rec(f"fe{i}", files=(f"/acme/fe{i}.pem",)) for i in range(100)]
    b.write(many)
    got = b.read()
    assert 5 < len(got) < 100 and got == many[:len(got)]
    assert len(renewals.encode(many, 1024 - 8)) <= 1024 - 8


def test_garbage_reads_as_nothing():
    assert renewals.decode(b"") == [] and renewals.decode(b"[1,2]") == []
    assert renewals.decode(b"\xff{") == [] and renewals.decode(b'[["a"]]') == []


def test_a_reader_never_waits_for_a_write_in_progress():
    b = renewals.Board(4096)
    b.write([rec()])
    b.map[0:4] = (int.from_bytes(b.map[0:4], "little") | 1).to_bytes(4, "little")   # a writer died mid-write
    assert b.read() == []                                # bounded retries, then nothing


def test_shared_with_forked_readers_while_the_master_writes():
    """A forked reader (a worker) sees only whole snapshots while the
    master (here the parent) rewrites the board as fast as it can. A read
    may come back empty (the writer changed the board during every one of
    its bounded tries: readers never wait), never torn."""
    b = renewals.Board(8192)
    versions = [[rec(failures=i, state="failed" if i else "scheduled", error="e" * (i % 50))
                 for _ in range(i % 7 + 1)] for i in range(200)]
    b.write(versions[0])
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            distinct = set()
            whole = 0
            for _ in range(5000):
                got = b.read()
                if not got:
                    continue                             # gave up for now: allowed
                if got != versions[got[0].failures]:
                    code = 2                             # a torn read
                    break
                whole += 1
                distinct.add(got[0].failures)
            if code == 0 and whole < 50:
                code = 4                                 # readers almost never got through
            elif code == 0 and len(distinct) < 2:
                code = 3                                 # never saw the writer at work
        finally:
            os._exit(code)
    try:
        deadline = time.monotonic() + 20
        while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0):
            assert time.monotonic() < deadline, "the reader did not finish"
            for v in versions[1:] + versions[:1]:
                b.write(v)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_by_file_without_a_board(monkeypatch):
    monkeypatch.setattr(renewals, "BOARD", None)
    assert renewals.by_file() == {}
    b = renewals.create()
    assert renewals.BOARD is b and renewals.create() is b
    b.write([rec()])
    assert renewals.by_file()[FILES[0]] == rec()


# -- what the master's scheduler publishes ------------------------------------------

class FakeTimer:
    def __init__(self, delay, fn):
        self.delay, self.fn = delay, fn

    def cancel(self):
        pass


class Log:
    def info(self, event, **kw):
        pass
    warning = error = info


def config(tmp_path) -> model.Config:
    acct = model.Acme("le", "https://acme.example/dir", storage=str(tmp_path / "acme"))
    fe = model.Frontend(name="www", binds=(model.Bind(model.Address("127.0.0.1", 8443), True),),
                        tls=model.FrontendTls(certificates=(), acme="le", domains=("a.example.com",)))
    return model.Config(frontends=(fe,), acme=(acct,))


@pytest.fixture
def board(monkeypatch):
    b = renewals.Board(4096)
    monkeypatch.setattr(renewals, "BOARD", b)
    return b


def test_the_scheduler_publishes_every_change_of_state(tmp_path, board):
    now = [1000.0]
    timers = []
    sched = acmerun.Scheduler(spawn=lambda fn, keep: 101, log=Log(), on_installed=lambda: None,
                              call_later=lambda d, fn: timers.append(FakeTimer(d, fn)) or timers[-1],
                              clock=lambda: now[0])
    files = (str(tmp_path / "acme" / "www.pem"), str(tmp_path / "acme" / "www.self-signed.pem"))
    sched.configure(config(tmp_path))
    assert board.read() == [renewals.Renewal("www", "le", "scheduled", 0, 1000.0, "", files)]
    timers[-1].fn()                                       # the order starts
    assert board.read()[0].state == "running" and board.read()[0].next_try == 0.0
    assert sched.reaped(101, 1)                           # fails, no reason from the child
    (r,) = board.read()
    assert (r.state, r.failures, r.next_try) == ("failed", 1, 1000.0 + acmerun.BACKOFF_BASE)
    assert r.error == "the ACME client exited with code 1"
    now[0] += acmerun.BACKOFF_BASE
    timers[-1].fn()
    assert board.read()[0].state == "running" and board.read()[0].failures == 1
    assert sched.reaped(101, 1)
    assert board.read()[0].failures == 2
    assert sched.renew("www")                             # acme renew: due now, still failed
    assert board.read()[0].next_try == now[0] and board.read()[0].state == "failed"
    timers[-1].fn()
    assert sched.reaped(101, 0)                           # success: 0 failures, no error
    (r,) = board.read()
    assert (r.state, r.failures, r.error) == ("scheduled", 0, "")
    assert r.next_try == now[0] + acmerun.MIN_RENEWAL
    # a reload without the frontend: nothing left to show
    sched.configure(model.Config())
    assert board.read() == []
