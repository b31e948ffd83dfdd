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
  the child publishes HTTP-01 answers on the board the workers read
  (farm/challenges.py) and writes the certificate atomically (0600). The
  master reloads when a child succeeds: the new certificate is served by
  the next generation, exactly like a certificate changed on disk, with no
  connection dropped.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

from farm import acme, challenges, model, tlsconf
from farm.acmehttp import Https

RECHECK = 3600.0              # look at every certificate's due date at least this often
BACKOFF_BASE = 60.0           # first retry after a failure; doubles up to a day


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
    return acme.renewal_due(start, end, now, job.account.renew_before)


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
    chain = client.issue(list(job.domains), cert_key, board.publish, board.withdraw, account.challenge)
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


@dataclass
class Scheduler:
    """The master's side: when each job runs, one child at a time.

    spawn(fn) forks a child that runs fn() and exits with its result (0:
    a certificate was written), returning the child's pid; call_later and
    the clock come from the master's loop; on_installed() is called after a
    child wrote a certificate (the master reloads)."""

    spawn: Callable[[Callable[[], int]], int]
    call_later: Callable
    log: object
    on_installed: Callable[[], None]
    clock: Callable[[], float] = time.time
    jobs: list[Job] = field(default_factory=list)
    states: dict[tuple[str, str], JobState] = field(default_factory=dict)
    running: tuple[int, Job] | None = None
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
            if not st.failures:
                st.next_try = due_at(job, now)
            keep[key] = st
        self.states = keep
        self.schedule()

    def schedule(self) -> None:
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
                pid = self.spawn(lambda job=job: self.child(job))
                self.running = (pid, job)
                return
            # not due: a recheck (the file may have changed)
            if not st.failures:
                st.next_try = due_at(job, now)
        self.schedule()

    def child(self, job: Job) -> int:
        """Runs in the forked child: 0 when the certificate was written."""
        try:
            obtain(job, challenges.BOARD or challenges.create(), self.log.bind(proc="acme", pid=os.getpid()))
        except (acme.AcmeError, OSError, ValueError) as e:
            self.log.error("acme_order_failed", frontend=job.frontend, acme=job.account.name,
                           error=str(e) or type(e).__name__)
            return 1
        return 0

    def reaped(self, pid: int, code: int) -> bool:
        """A child exited: True if it was ours."""
        if self.running is None or self.running[0] != pid:
            return False
        job = self.running[1]
        self.running = None
        st = self.states.get((job.account.name, job.frontend))
        if code == 0:
            if st is not None:
                st.failures, st.last_error = 0, ""
                st.next_try = due_at(job, self.clock())
            self.log.info("acme_certificate_installed", frontend=job.frontend, acme=job.account.name,
                          path=job.path)
            self.on_installed()
        elif st is not None:
            st.failures += 1
            delay = acme.backoff_delay(st.failures, BACKOFF_BASE)
            st.next_try = self.clock() + delay
            st.last_error = f"exit code {code}"
            self.log.warning("acme_backoff", frontend=job.frontend, acme=job.account.name,
                             failures=st.failures, retry_in=delay,
                             message=f"keeping the current certificate; next attempt in {delay:.0f}s")
        self.schedule()
        return True

    def stop(self) -> int | None:
        """No more orders; the pid of a running child (to be signalled)."""
        self.stopped = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        return self.running[0] if self.running else None
