"""farm/challenges.py (the board shared with the workers) and
farm/acmerun.py (storage, the self-signed certificate, due dates, the
scheduler's back-off) without an ACME server."""

from __future__ import annotations

import os
import signal
import time

import pytest

from farm import acme, acmerun, challenges, model, tlsconf


def test_board_publish_answer_withdraw():
    b = challenges.Board(4096)
    assert b.answer(b"tok") is None
    b.publish("tok", "tok.thumb")
    b.publish("other", "other.thumb")
    assert b.answer(b"tok") == b"tok.thumb"
    assert b.entries() == {"tok": "tok.thumb", "other": "other.thumb"}
    b.withdraw("tok")
    assert b.answer(b"tok") is None and b.answer(b"other") == b"other.thumb"
    assert b.answer(b"\xff") is None


def test_board_is_shared_with_forked_processes():
    b = challenges.Board(4096)
    pid = os.fork()
    if pid == 0:
        b.publish("fromchild", "k")
        os._exit(0)
    os.waitpid(pid, 0)
    assert b.answer(b"fromchild") == b"k"


def test_board_readers_see_whole_writes_only():
    """A forked reader (a worker) never sees a board half written while
    the writer (the ACME child; here the parent) rewrites it as fast as it
    can. A read may come back empty (the writer changed the board during
    every one of its bounded tries: readers never wait), never torn."""
    b = challenges.Board(8192)
    versions = [{f"t{i}x{j}": f"k{i}" for j in range(i % 7 + 1)} for i in range(200)]
    b._write(versions[0], {})
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            whole = 0
            for _ in range(5000):
                http = b.entries()
                if not http:
                    continue                  # gave up for now: allowed
                if http != versions[int(next(iter(http))[1:].split("x")[0])]:
                    code = 2                  # a torn read
                    break
                whole += 1
            if code == 0 and whole < 50:
                code = 4                      # readers almost never got through
        finally:
            os._exit(code)
    try:
        deadline = time.monotonic() + 20
        while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0):
            assert time.monotonic() < deadline, "the reader did not finish"
            for v in versions[1:] + versions[:1]:
                b._write(v, {})
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_answer_only_for_the_challenge_path(monkeypatch):
    monkeypatch.setattr(challenges, "BOARD", None)
    assert challenges.answer(b"/.well-known/acme-challenge/t") is None
    b = challenges.Board(4096)
    monkeypatch.setattr(challenges, "BOARD", b)
    b.publish("t", "t.k")
    assert challenges.answer(b"/.well-known/acme-challenge/t") == b"t.k"
    assert challenges.answer(b"/t") is None
    assert challenges.answer(b"/.well-known/acme-challenge/u") is None


def config(tmp_path, domains=("a.example.com",), renew_before=None) -> model.Config:
    acct = model.Acme("le", "https://acme.example/dir", storage=str(tmp_path / "acme"),
                      renew_before=renew_before)
    fe = model.Frontend(name="www", binds=(model.Bind(model.Address("127.0.0.1", 8443), True),),
                        tls=model.FrontendTls(certificates=(), acme="le", domains=tuple(domains)))
    return model.Config(frontends=(fe,), acme=(acct,))


def test_prepare_makes_a_self_signed_certificate_once(tmp_path, monkeypatch):
    monkeypatch.setattr(challenges, "BOARD", None)
    cfg = config(tmp_path)
    paths = acmerun.prepare(cfg)
    waiting = tmp_path / "acme" / "www.self-signed.pem"
    assert paths == {"www": [str(waiting)]}
    assert (tmp_path / "acme").stat().st_mode & 0o777 == 0o700
    assert waiting.stat().st_mode & 0o777 == 0o600
    info = tlsconf.read_certificate(str(waiting)).info
    assert info.names == ("a.example.com",) and "waiting for ACME" in info.subject
    before = waiting.read_bytes()
    acmerun.prepare(cfg)
    assert waiting.read_bytes() == before                 # kept while the domains stay
    acmerun.prepare(config(tmp_path, ("b.example.com",)))
    assert waiting.read_bytes() != before
    assert challenges.BOARD is not None
    # once issued, the certificate is what the frontend serves
    (tmp_path / "acme" / "www.pem").write_bytes(before)
    assert acmerun.prepare(cfg) == {"www": [str(tmp_path / "acme" / "www.pem")]}


def test_prepare_names_storage_it_cannot_write(tmp_path):
    (tmp_path / "file").write_text("")
    cfg = config(tmp_path / "file")
    try:
        acmerun.prepare(cfg)
    except tlsconf.TlsError as e:
        assert "acme storage" in str(e) and "frontend www" in str(e)
    else:
        raise AssertionError("no error")


def test_due_dates(tmp_path):
    cfg = config(tmp_path, ("a.example.com", "b.example.com"))
    (job,) = acmerun.jobs_of(cfg)
    assert acmerun.due_at(job, 1000.0) == 1000.0               # no certificate yet
    os.makedirs(tmp_path / "acme")
    key = acme.Key.generate()
    (tmp_path / "acme" / "www.pem").write_bytes(acme.self_signed(["a.example.com"], key))
    assert acmerun.due_at(job, 1000.0) == 1000.0               # does not cover b.example.com
    pem = acme.self_signed(["a.example.com", "b.example.com"], key, days=90)
    (tmp_path / "acme" / "www.pem").write_bytes(pem)
    start, end = acme.certificate_dates(pem)
    assert acmerun.due_at(job, 1000.0) == end - (end - start) / 3


class FakeTimer:
    def __init__(self, delay, fn):
        self.delay, self.fn, self.cancelled = delay, fn, False

    def cancel(self):
        self.cancelled = True


class Log:
    def __init__(self):
        self.lines = []

    def info(self, event, **kw):
        self.lines.append((event, kw))
    warning = error = info


def test_scheduler_backs_off_and_reloads_on_success(tmp_path):
    now = [1000.0]
    timers, spawned, installed = [], [], []
    log = Log()
    sched = acmerun.Scheduler(spawn=lambda fn, keep: spawned.append(fn) or 100 + len(spawned),
                              call_later=lambda d, fn: timers.append(FakeTimer(d, fn)) or timers[-1],
                              log=log, on_installed=lambda: installed.append(1), clock=lambda: now[0])
    sched.configure(config(tmp_path))
    assert timers[-1].delay == 0                        # no certificate: now
    timers[-1].fn()
    assert len(spawned) == 1 and sched.running[0] == 101
    assert not sched.reaped(999, 0)                     # not ours
    assert "\tle\trunning\t-\t-\t-\n" in sched.status()
    assert sched.reaped(101, 1)
    assert sched.status().splitlines()[1].split("\t") == [
        "www", "le", "failed", "-", "1970-01-01T00:17:40Z", "the ACME client exited with code 1"]
    assert log.lines[-1][0] == "acme_backoff" and log.lines[-1][1]["retry_in"] == acmerun.BACKOFF_BASE
    assert timers[-1].delay == acmerun.BACKOFF_BASE and not installed
    now[0] += acmerun.BACKOFF_BASE
    timers[-1].fn()
    assert sched.reaped(102, 1)
    assert timers[-1].delay == 2 * acmerun.BACKOFF_BASE
    # a reload does not forget the back-off
    sched.configure(config(tmp_path))
    assert timers[-1].delay == 2 * acmerun.BACKOFF_BASE
    now[0] += 2 * acmerun.BACKOFF_BASE
    timers[-1].fn()
    assert sched.reaped(103, 0)
    assert installed == [1] and sched.states[("le", "www")].failures == 0
    # issued, but (here) still due: not ordered again before MIN_RENEWAL,
    # nor after the reload that installs it
    assert timers[-1].delay == acmerun.MIN_RENEWAL
    sched.configure(config(tmp_path))
    assert timers[-1].delay == acmerun.MIN_RENEWAL
    # acme renew: now
    assert not sched.renew("nope")
    assert sched.renew("www") and timers[-1].delay == 0
    assert sched.stop() is None and timers[-1].cancelled


def test_board_tls_alpn_entries_and_the_pending_hint():
    b = challenges.Board(8192)
    assert not b.alpn_pending()
    b.publish("tok", "tok.k")
    assert not b.alpn_pending()
    pem = acme.alpn_certificate("a.test", "tok.k")
    seq = b.sequence()
    b.publish_alpn("A.test", pem)
    assert b.alpn_pending() and b.sequence() != seq
    assert b.snapshot() == ({"tok": "tok.k"}, {"a.test": pem})
    assert b.answer(b"tok") == b"tok.k" and b.answer(b"@a.test") is None
    b.withdraw_alpn("a.test")
    assert not b.alpn_pending() and b.snapshot() == ({"tok": "tok.k"}, {})
    with pytest.raises(ValueError, match="too many challenges"):
        for i in range(20):
            b.publish_alpn(f"d{i}.test", pem)


def test_proofs_by_challenge():
    b = challenges.Board(8192)
    publish, withdraw = acmerun.proofs(b, "http-01")
    publish("tok", "tok.k", "a.test")
    assert b.snapshot() == ({"tok": "tok.k"}, {})
    withdraw("tok")
    publish, withdraw = acmerun.proofs(b, "tls-alpn-01")
    publish("tok", "tok.k", "a.test")
    http, alpn = b.snapshot()
    assert http == {} and list(alpn) == ["a.test"]
    assert acme.certificate_names(alpn["a.test"]) == {"a.test"}
    withdraw("tok")
    assert b.snapshot() == ({}, {}) and not b.alpn_pending()
