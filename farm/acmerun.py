"""The ACME control plane of the master: which frontends need a
certificate, when, and the child process that gets one.

- prepare(config), before the master builds its SSL contexts: the storage
  directories, a self-signed certificate for a frontend that has none yet
  (so its tls binds are up from the start), and the file each acme
  frontend serves (its certificate once issued, else the self-signed one);
- Scheduler: for each (account, frontend), when its certificate is due
  (missing, not covering the domains, or within renew_before of expiry),
  and the back-off after failures; it runs one order at a time in a forked
  child (obtain()), so the master's loop never blocks on the ACME server;
  the child publishes HTTP-01 answers or TLS-ALPN-01 certificates on the
  board the workers read (farm/challenges.py) and writes the certificate atomically (0600). The
  master reloads when a child succeeds: the new certificate is served by
  the next generation, exactly like a certificate changed on disk, with no
  connection dropped. The scheduler publishes each job's state (failures,
  next attempt, last error) for the workers' stats (farm/renewals.py).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

from farm import acme, challenges, model, renewals, tlsconf
from farm.acmehttp import Https

RECHECK = 3600.0              # look at every certificate's due date at least this often
BACKOFF_BASE = 60.0           # first retry after a failure; doubles up to a day
MIN_RENEWAL = 3600.0          # never order a certificate again sooner after one was issued


@dataclass(frozen=True)
class Job:
    """One certificate to keep: a frontend's domains, from one account."""

    account: model.Acme
    frontend: str
    domains: tuple[str, ...]

    @property
    def path(self) -> str:
        return self.account.certificate_path(self.frontend)


def jobs_of(config: model.Config) -> list[Job]:
    """The certificates config asks ACME for, in frontend order."""
    out = []
    for fe in config.frontends:
        if fe.tls is not None and fe.tls.acme and any(b.tls for b in fe.binds):
            account = config.acme_account(fe.tls.acme)
            if account is not None:
                out.append(Job(account, fe.name, fe.tls.domains))
    return out


def write_private(path: str, data: bytes) -> None:
    """Write data to path atomically (a temporary file in the same
    directory, fsync, rename), mode 0600."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
        raise


def prepare(config: model.Config) -> dict[str, list[str]]:
    """Before the SSL contexts of config are built: make the storage
    directories (0700) and a self-signed certificate for every acme
    frontend that has no certificate yet. Returns frontend -> [the file it
    serves]. Raises tlsconf.TlsError (naming the path) when storage cannot
    be written."""
    out: dict[str, list[str]] = {}
    jobs = jobs_of(config)
    if jobs:
        challenges.create()
        renewals.create()
    for job in jobs:
        try:
            os.makedirs(job.account.storage, mode=0o700, exist_ok=True)
            if os.path.exists(job.path):
                out[job.frontend] = [job.path]
                continue
            waiting = job.account.waiting_path(job.frontend)
            if not os.path.exists(waiting) or \
                    acme.certificate_names(_read(waiting)) != set(job.domains):
                key = acme.Key.generate(job.account.key_type)
                write_private(waiting, acme.self_signed(list(job.domains), key))
            out[job.frontend] = [waiting]
        except (OSError, ValueError) as e:
            raise tlsconf.TlsError(f"acme storage {job.account.storage} (frontend {job.frontend}): "
                                   f"{getattr(e, 'strerror', None) or e}") from None
    return out


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def due_at(job: Job, now: float) -> float:
    """When job's certificate should be (re)ordered: now when it is missing,
    unreadable or does not cover the domains; else its renewal time."""
    try:
        pem = _read(job.path)
        names = acme.certificate_names(pem)
        start, end = acme.certificate_dates(pem)
    except (OSError, ValueError):
        return now
    if not set(job.domains) <= names:
        return now
    return acme.renewal_due(start, end, job.account.renew_before)


def proofs(board: challenges.Board, challenge: str):
    """(publish(token, keyauth, domain), withdraw(token)) for
    AcmeClient.issue: HTTP-01 puts the key authorization on the board;
    TLS-ALPN-01 the challenge certificate made for it (the workers answer
    the validation's handshake with it)."""
    if challenge != "tls-alpn-01":
        return (lambda token, keyauth, domain: board.publish(token, keyauth)), board.withdraw
    domains: dict[str, str] = {}

    def publish(token: str, keyauth: str, domain: str) -> None:
        domains[token] = domain
        board.publish_alpn(domain, acme.alpn_certificate(domain, keyauth))

    def withdraw(token: str) -> None:
        domain = domains.pop(token, None)
        if domain is not None:
            board.withdraw_alpn(domain)
    return publish, withdraw


def obtain(job: Job, board: challenges.Board, log) -> None:
    """In the ACME child: order job's certificate and write it (chain and a
    new key, 0600) where the frontend's tls binds read it. Raises
    acme.AcmeError or OSError; writes nothing then."""
    account = job.account
    key_path = account.account_key_path()
    try:
        key = acme.Key.from_pem(_read(key_path))
    except FileNotFoundError:
        key = acme.Key.generate(account.key_type)
        os.makedirs(os.path.dirname(key_path) or ".", mode=0o700, exist_ok=True)
        write_private(key_path, key.pem())
        log.info("acme_account_key_created", path=key_path)
    except ValueError as e:
        raise acme.AcmeError(f"account key {key_path}: {e}") from None
    client = acme.AcmeClient(account.directory, key, Https(account.directory_ca), account.contact)
    cert_key = acme.Key.generate(account.key_type)
    publish, withdraw = proofs(board, account.challenge)
    chain = client.issue(list(job.domains), cert_key, publish, withdraw, account.challenge)
    data = chain if chain.endswith(b"\n") else chain + b"\n"
    data += cert_key.pem()
    tmp = job.path + ".new"
    write_private(tmp, data)
    try:
        tlsconf.read_certificate(tmp)        # loads as farm will load it, or nothing changes
    except tlsconf.TlsError as e:
        os.unlink(tmp)
        raise acme.AcmeError(f"the certificate issued does not load: {e}") from None
    os.replace(tmp, job.path)


@dataclass
class JobState:
    failures: int = 0
    next_try: float = 0.0          # epoch seconds
    last_error: str = ""
    hold_until: float = 0.0        # no new order before (MIN_RENEWAL after the last issued)

    def plan(self, job: Job, now: float) -> None:
        """next_try from the certificate on disk, unless failures hold it back:
        a renew_before longer than the certificate's lifetime must not make
        farm order one after the other."""
        if not self.failures:
            self.next_try = max(due_at(job, now), self.hold_until)


@dataclass
class Scheduler:
    """The master's side: when each job runs, one child at a time.

    spawn(fn, keep) forks a child that runs fn() and exits with its result
    (0: a certificate was written), keeping the descriptors `keep` open,
    and returns the child's pid; call_later and
    the clock come from the master's loop; on_installed() is called after a
    child wrote a certificate (the master reloads)."""

    spawn: Callable[..., int]
    call_later: Callable
    log: object
    on_installed: Callable[[], None]
    clock: Callable[[], float] = time.time
    jobs: list[Job] = field(default_factory=list)
    states: dict[tuple[str, str], JobState] = field(default_factory=dict)
    running: tuple[int, Job, int] | None = None     # pid, job, read end of its error pipe
    timer: object = None
    stopped: bool = False

    def configure(self, config: model.Config) -> None:
        """The jobs of a new generation's config; when each is due."""
        self.jobs = jobs_of(config)
        now = self.clock()
        keep = {}
        for job in self.jobs:
            key = (job.account.name, job.frontend)
            st = self.states.get(key) or JobState()
            st.plan(job, now)
            keep[key] = st
        self.states = keep
        self.schedule()

    def schedule(self) -> None:
        """Publish the jobs' state, then arm the timer for the soonest
        (called after every change of a job's state)."""
        self.publish()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.stopped or not self.jobs or self.running is not None:
            return
        now = self.clock()
        soonest = min(self.states[(j.account.name, j.frontend)].next_try for j in self.jobs)
        self.timer = self.call_later(max(0.0, min(RECHECK, soonest - now)), self.tick)

    def tick(self) -> None:
        self.timer = None
        if self.stopped or self.running is not None:
            return
        now = self.clock()
        for job in self.jobs:
            st = self.states[(job.account.name, job.frontend)]
            if st.next_try <= now:
                self.log.info("acme_order_started", frontend=job.frontend, acme=job.account.name,
                              domains=",".join(job.domains))
                r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                try:
                    pid = self.spawn(lambda job=job: self.child(job, w), (w,))
                except OSError as e:
                    os.close(r)
                    self.log.error("acme_order_failed", frontend=job.frontend, error=f"fork: {e}")
                    st.next_try = now + BACKOFF_BASE
                    break
                finally:
                    os.close(w)
                self.running = (pid, job, r)
                self.publish()
                return
            st.plan(job, now)          # not due: a recheck (the file may have changed)
        self.schedule()

    def child(self, job: Job, error_fd: int) -> int:
        """Runs in the forked child: 0 when the certificate was written;
        else the reason is logged and written to error_fd for the master."""
        try:
            obtain(job, challenges.BOARD or challenges.create(), self.log.bind(proc="acme", pid=os.getpid()))
        except (acme.AcmeError, OSError, ValueError) as e:
            reason = str(e) or type(e).__name__
            self.log.error("acme_order_failed", frontend=job.frontend, acme=job.account.name, error=reason)
            try:
                os.write(error_fd, reason.encode("utf-8", "replace")[:4000])
            except OSError:
                pass
            return 1
        return 0

    def reaped(self, pid: int, code: int) -> bool:
        """A child exited: True if it was ours."""
        if self.running is None or self.running[0] != pid:
            return False
        _, job, error_fd = self.running
        self.running = None
        try:
            reason = os.read(error_fd, 4096).decode("utf-8", "replace")
        except OSError:
            reason = ""
        os.close(error_fd)
        st = self.states.get((job.account.name, job.frontend))
        if code == 0:
            if st is not None:
                st.failures, st.last_error = 0, ""
                st.hold_until = self.clock() + MIN_RENEWAL
                st.plan(job, self.clock())
            self.log.info("acme_certificate_installed", frontend=job.frontend, acme=job.account.name,
                          path=job.path)
            self.on_installed()
        elif st is not None:
            st.failures += 1
            delay = acme.backoff_delay(st.failures, BACKOFF_BASE)
            st.next_try = self.clock() + delay
            st.last_error = reason or f"the ACME client exited with code {code}"
            self.log.warning("acme_backoff", frontend=job.frontend, acme=job.account.name,
                             failures=st.failures, retry_in=delay, error=st.last_error,
                             message=f"keeping the current certificate; next attempt in {delay:.0f}s")
        self.schedule()
        return True

    def state_of(self, job: Job) -> tuple[str, JobState]:
        """(running | failed | scheduled, the job's JobState)."""
        st = self.states.get((job.account.name, job.frontend), JobState())
        if self.running is not None and self.running[1] == job:
            return "running", st
        return ("failed" if st.failures else "scheduled"), st

    def publish(self) -> None:
        """Every job's state on the renewal board the workers read
        (farm/renewals.py); nothing without a board (no [acme] yet), and
        no write when nothing changed."""
        board = renewals.BOARD
        if board is None:
            return
        records = []
        for job in self.jobs:
            state, st = self.state_of(job)
            records.append(renewals.Renewal(
                job.frontend, job.account.name, state, st.failures,
                0.0 if state == "running" else st.next_try, st.last_error,
                (job.path, job.account.waiting_path(job.frontend))))
        board.write(records)

    def status(self) -> str:
        """`acme status`: one tab-separated line per certificate: frontend,
        acme section, state (running, scheduled, failed), the certificate's
        expiry, when the next order is due, and the last error."""
        now = self.clock()
        lines = ["# frontend\tacme\tstate\texpires (UTC)\tscheduled (UTC)\tlast error\n"]
        for job in self.jobs:
            state, st = self.state_of(job)
            try:
                expires = _utc(acme.certificate_dates(_read(job.path))[1])
            except (OSError, ValueError):
                expires = "-"
            scheduled = _utc(max(now, st.next_try)) if state != "running" else "-"
            lines.append(f"{job.frontend}\t{job.account.name}\t{state}\t{expires}\t{scheduled}\t"
                         f"{st.last_error or '-'}\n")
        return "".join(lines)

    def renew(self, frontend: str) -> bool:
        """`acme renew FRONTEND`: order its certificate now (after the
        running order, if any). False when no frontend of that name gets
        its certificate from ACME."""
        for job in self.jobs:
            if job.frontend == frontend:
                st = self.states.setdefault((job.account.name, job.frontend), JobState())
                st.next_try = st.hold_until = self.clock()
                self.schedule()
                return True
        return False

    def stop(self) -> int | None:
        """No more orders; the pid of a running child (to be signalled)."""
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        return self.running[0] if self.running else None

