"""Worker entry after fork: setup, accept loop, drain, exit.

A worker owns slot `slot` of every listening address: the master opened one
SO_REUSEPORT socket per (address, slot) and this worker polls only its own.
It never returns to the master's code: it ends with os._exit().

Signals: a worker stops only when its master tells it (SIGTERM drain,
SIGQUIT fast stop; SIGUSR1 reopens the logs). Run in a terminal, a worker is
in the terminal's foreground process group with its master, so Ctrl-C and
Ctrl-Z reach it too: it ignores SIGINT and SIGTSTP (the master never sends
them) and leaves the stop to the master, which tells every worker. A worker
exiting on its own at Ctrl-C would look like a crash to the master, which
would respawn it during the stop.

Exit codes the master understands:
  0           normal exit (drained, or told to stop)
  BOOT_ERROR  the worker could not start (bad address, missing file...):
              the master stops with a clear message instead of respawning.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys
import traceback

from farm import logs, model
from workers import ppaccept, rules
from workers import tables as sticks
from workers.accept import Acceptor
from workers.loop import EPOLLIN, Loop
from workers.runtime import FrontendRuntime, WorkerContext, layer4_router
from workers.tcp import TcpSession
from workers.transport import TlsSocket

BOOT_ERROR = 3
FD_EXHAUSTED_PAUSE = 0.1    # seconds to stop accepting after EMFILE/ENFILE
FD_REPORT_INTERVAL = 5.0    # seconds between two accept_still_paused lines
FD_SETTLE = 1.0             # seconds of accepting without EMFILE that end the episode
COUNTER_FLUSH_INTERVAL = 0.25   # seconds between copies of the counters to shm
FULL_RECHECK = 0.02         # seconds between looks at a full frontend's count
QUEUE_RECHECK = 0.1         # seconds between looks at queues this worker waits in
# What the master tells a worker (handled in the loop), and what a terminal
# sends to its whole foreground process group (ignored: see the docstring).
MASTER_TO_WORKER_SIGNALS = (signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1)
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGTSTP)


def set_title(title: str) -> None:
    """Set the process title shown by ps (argv) and the thread name (comm)."""
    try:
        import prctl
        prctl.set_proctitle(title)
        prctl.set_name(title[:15])
    except Exception:  # pragma: no cover - titles are cosmetic
        pass


def die_with_parent(parent_pid: int) -> None:
    """PR_SET_PDEATHSIG: the kernel kills this worker when the master dies.

    The check of getppid() afterwards closes the race where the master died
    between fork() and prctl().
    """
    try:
        import prctl
        prctl.set_pdeathsig(signal.SIGKILL)
    except ImportError:  # pragma: no cover - python-prctl is a dependency
        pass
    if os.getppid() != parent_pid:
        os._exit(0)


def drop_privileges(user: str | None, group: str | None) -> None:
    """Switch to user/group when started as root (after the binds are done)."""
    if os.getuid() != 0 or not user:
        return
    import grp
    import pwd
    pw = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid if group else pw.pw_gid
    os.setgroups([])
    os.setgid(gid)
    os.setuid(pw.pw_uid)


class FdEpisode:
    """A time out of file descriptors: when it started, when it was last
    logged, the pauses since that line and in all."""

    __slots__ = ("start", "reported", "unreported", "pauses")

    def __init__(self, now: float):
        self.start = self.reported = now
        self.unreported = 0
        self.pauses = 1


def persistence(be_cfg: model.Backend, backend) -> "sticks.Persistence":
    """A backend's stick rules compiled for workers/tables.py: keys and
    conditions of store-response rules read the response."""
    acls = rules.compile_acls(be_cfg.acl)
    by_kind: dict = {kind: [] for kind in model.STICK_KINDS}
    for r in be_cfg.stick:
        phase = "response" if r.kind == "store-response" else "request"
        cond = rules.compile_condition(r.cond, acls, phase) if r.cond is not None else None
        by_kind[r.kind].append((r.table, rules.key_getter(r.key, phase), cond))
    return sticks.Persistence(backend, by_kind["match"], by_kind["store-request"],
                              by_kind["store-response"])


class Worker:
    """One worker process: a loop, its frontends' sockets, its sessions."""

    def __init__(self, config: model.Config, slot: int, generation: int,
                 sockets: dict[model.Address, list[socket.socket]], table=None, tls=None):
        self.config = config
        self.slot = slot
        self.generation = generation
        self.loop = Loop()
        # stick tables first: the rules compiled below look them up
        sticks.install(getattr(table, "sticks", None) or {}, slot, generation)
        self.ctx = WorkerContext(self.loop, config, slot, generation, table)
        if tls is not None:
            self.ctx.tls = tls          # made by the master before the fork (farm/tlsconf.py)
        if self.ctx.tls.backends:
            from workers import servertls
            servertls.attach(self.ctx.backends, self.ctx.tls)   # TLS to servers
        self.ctx.on_session_end = self.on_session_end
        self.ctx.out_of_fds = self.out_of_fds
        self.log = logs.get_logger(proc="worker", slot=slot, gen=generation, pid=os.getpid())
        self.stopping = False
        self.paused_until_fds = False
        self.full_recheck: set = set()     # frontends paused by maxconn, rechecked soon
        self.fd_episode: FdEpisode | None = None   # out of descriptors since...
        # listening fd of a tls or accept_proxy bind -> its session class
        self.tls_sessions: dict[int, object] = {}
        self.tls_fds: set[int] = set()     # listening fds of the tls binds
        for fe_cfg in config.frontends:
            mine = [sockets[b.address][slot] for b in fe_cfg.binds]
            fe = FrontendRuntime(fe_cfg, mine, config.global_.maxconn, self.ctx.shared)
            if fe_cfg.default_backend:
                fe.default_backend = self.ctx.backends[fe_cfg.default_backend]
            fe.session_class = self.session_class(fe_cfg)
            for bind, lsock in zip(fe_cfg.binds, mine):
                if bind.tls:
                    self.tls_sessions[lsock.fileno()] = self.tls_session_class(fe_cfg, bind)
                    self.tls_fds.add(lsock.fileno())
            if fe_cfg.tcp_request:
                # tcp_request rules run on every accepted connection first:
                # the "connection" ones, then the "content" ones (HAProxy's
                # order), each set in file order
                ordered = sorted(fe_cfg.tcp_request, key=lambda r: r.param("on") != "connection")
                tcp_rules = rules.compile_tcp_rules(ordered, rules.compile_acls(fe_cfg.acl))
                fe.session_class = sticks.connection_gate(tcp_rules, fe.session_class, self.ctx.conn_stk)
                for bind, lsock in zip(fe_cfg.binds, mine):
                    if bind.tls:
                        fd = lsock.fileno()
                        self.tls_sessions[fd] = sticks.connection_gate(
                            tcp_rules, self.tls_sessions[fd], self.ctx.conn_stk)
            for bind, lsock in zip(fe_cfg.binds, mine):
                if bind.accept_proxy:
                    # the PROXY header first (so the tcp_request rules see
                    # its addresses), then the session the bind makes
                    fd = lsock.fileno()
                    self.tls_sessions[fd] = ppaccept.session_class(
                        self.tls_sessions.get(fd, fe.session_class), fe_cfg, bind)
            if fe_cfg.mode == "tcp" and fe_cfg.use_backend:
                fe.routes_by_l4 = layer4_router(fe, self.ctx.backends)
            self.ctx.frontends.append(fe)
        # -- stats listener (workers/stats.py): [stats] bind is accepted like a
        #    frontend whose sessions are StatsSessions; it has no backend. --
        if config.stats.bind is not None:
            from workers.stats import stats_frontend
            self.ctx.frontends.append(
                stats_frontend(self.ctx, config, [sockets[config.stats.bind][slot]]))
        # -- end stats listener --
        for be_cfg in config.backends:
            if be_cfg.stick:
                backend = self.ctx.backends[be_cfg.name]
                backend.stick = persistence(be_cfg, backend)
        if any(fe.mode == "http" for fe in config.frontends):
            from workers.server import ConnPool
            self.ctx.conn_pool = ConnPool(self.loop)

    def session_class(self, fe_cfg: model.Frontend):
        if fe_cfg.mode == "tcp":
            return TcpSession
        from workers.h1conn import H1Connection
        return H1Connection.accepted

    def tls_session_class(self, fe_cfg: model.Frontend, bind: model.Bind):
        """The session class of a tls bind: the connection gets a TLS
        transport over the frontend's default context, which the master
        made before the fork (its SNI callback picks the certificate)."""
        from workers.h1conn import H1Connection
        from workers.transport import TlsTransport
        context = self.ctx.tls.frontends[fe_cfg.name].default
        name = bind.name
        if fe_cfg.mode == "tcp":
            def accepted_tcp(ctx, fe, csock, caddr):
                t = TlsTransport(csock, context, name)
                return TcpSession(ctx, fe, t.sock, caddr, t)
            accepted = accepted_tcp
        else:
            def accepted(ctx, fe, csock, caddr):
                return H1Connection(ctx, fe, TlsTransport(csock, context, name), caddr)
        account = self.config.acme_account(fe_cfg.tls.acme) if fe_cfg.tls.acme else None
        if account is not None and account.challenge == "tls-alpn-01":
            # TLS-ALPN-01 validations are told apart by their ClientHello
            # (workers/alpnaccept.py), looked at only while one is pending
            from workers import alpnaccept
            return alpnaccept.session_class(accepted, name)
        return accepted

    # -- accepting -------------------------------------------------------------

    def start_accepting(self) -> None:
        for fe in self.ctx.frontends:
            self.resume(fe)

    def resume(self, fe: FrontendRuntime) -> None:
        if fe.accepting or self.stopping:
            return
        fe.accepting = True
        for lsock in fe.listeners:
            self.loop.add(lsock.fileno(), EPOLLIN, self.acceptor(fe, lsock))

    def pause(self, fe: FrontendRuntime) -> None:
        """Stop polling fe's sockets; new clients wait in the kernel backlog."""
        if fe.accepting:
            fe.accepting = False
            for lsock in fe.listeners:
                self.loop.remove(lsock.fileno())

    def acceptor(self, fe: FrontendRuntime, lsock: socket.socket) -> Acceptor:
        """The loop's handler of listening socket lsock (workers/accept.py)."""
        session_class = self.tls_sessions.get(lsock.fileno(), fe.session_class)
        if lsock.fileno() in self.tls_fds:
            return Acceptor(self, self.ctx, fe, lsock, session_class, TlsSocket)
        return Acceptor(self, self.ctx, fe, lsock, session_class)

    def pause_full(self, fe: FrontendRuntime) -> None:
        """maxconn reached: stop accepting on fe until connections end. Those
        may end in another worker, so look again every FULL_RECHECK too."""
        self.pause(fe)
        if fe not in self.full_recheck:
            self.full_recheck.add(fe)
            self.loop.call_later(FULL_RECHECK, lambda: self.recheck_full(fe))

    def recheck_full(self, fe: FrontendRuntime) -> None:
        self.full_recheck.discard(fe)
        if not fe.accepting and not self.maybe_resume(fe) and not self.stopping:
            self.pause_full(fe)

    def maybe_resume(self, fe: FrontendRuntime) -> bool:
        """Accept on fe again if its maxconn and the global one allow."""
        if self.paused_until_fds or self.stopping:
            return False
        ctx = self.ctx
        if ((fe.maxconn == 0 or fe.g.value() < fe.maxconn)
                and (ctx.maxconn == 0 or ctx.g.value() < ctx.maxconn)):
            self.resume(fe)
            return True
        return False

    def out_of_fds(self) -> None:
        """EMFILE/ENFILE: accepting again at once would spin the CPU on the
        same error; stop all listeners for a moment instead. Logged once
        (accept_paused), then at most one accept_still_paused per
        FD_REPORT_INTERVAL while it lasts, then accept_resumed."""
        if self.paused_until_fds:
            return
        self.paused_until_fds = True
        now = self.loop.now
        ep = self.fd_episode
        if ep is None:
            ep = self.fd_episode = FdEpisode(now)
            self.log.warning("accept_paused", reason="out of file descriptors", seconds=FD_EXHAUSTED_PAUSE)
        else:
            ep.pauses += 1
            ep.unreported += 1
            if now - ep.reported >= FD_REPORT_INTERVAL:
                self.log.warning("accept_still_paused", count=ep.unreported, for_s=round(now - ep.start, 1))
                ep.reported, ep.unreported = now, 0
        for fe in self.ctx.frontends:
            self.pause(fe)

        def retry() -> None:
            self.paused_until_fds = False
            self.start_accepting()
            self.loop.call_later(FD_SETTLE, lambda pauses=ep.pauses: settled(pauses))

        def settled(pauses: int) -> None:
            # no EMFILE for FD_SETTLE since that retry: the episode is over
            if self.fd_episode is ep and ep.pauses == pauses and not self.paused_until_fds:
                self.fd_episode = None
                self.log.info("accept_resumed", pauses=pauses, for_s=round(self.loop.now - ep.start, 1))
        self.loop.call_later(FD_EXHAUSTED_PAUSE, retry)

    def on_session_end(self, fe: FrontendRuntime) -> None:
        if self.stopping:
            if not self.ctx.sessions:
                self.loop.stop()
            return
        if not fe.accepting:
            self.maybe_resume(fe)

    # -- stopping --------------------------------------------------------------

    def on_signals(self, signums: list[int]) -> None:
        for s in signums:
            if s == signal.SIGTERM:
                self.drain()
            elif s == signal.SIGQUIT:
                self.ctx.access.flush()
                os._exit(0)
            elif s == signal.SIGUSR1:
                self.ctx.access.reopen()
                logs.reopen_events()

    def drain(self) -> None:
        """Graceful stop: no new connections; exit once sessions are done, or
        at hard_stop_after, whichever comes first."""
        if self.stopping:
            return
        self.stopping = True
        self.ctx.draining = True
        for fe in self.ctx.frontends:
            self.pause(fe)
            for lsock in fe.listeners:
                lsock.close()   # our copy only: the master keeps the socket
        if self.ctx.conn_pool is not None:
            self.ctx.conn_pool.close_all()
        self.log.info("worker_draining", sessions=len(self.ctx.sessions))
        for sess in list(self.ctx.sessions):
            drain = getattr(sess, "drain", None)
            if drain is not None:
                drain()
        if not self.ctx.sessions:
            self.loop.stop()
            return
        self.loop.call_later(self.config.global_.hard_stop_after, self.hard_stop)

    def hard_stop(self) -> None:
        self.log.warning("hard_stop", sessions=len(self.ctx.sessions))
        for sess in list(self.ctx.sessions):
            sess.kill()
        self.loop.stop()

    def recheck_queues(self) -> None:
        """A safety net under the wakeups: every QUEUE_RECHECK, a worker with
        queued requests offers them the slots that are free."""
        for be in self.ctx.backends.values():
            if be.waiting:
                be.kick()
        self.loop.call_later(QUEUE_RECHECK, self.recheck_queues)

    def flush_counters(self) -> None:
        """Every COUNTER_FLUSH_INTERVAL: publish counters, and apply server
        state changes even when no traffic calls for a pick (an admin
        `shutdown sessions` must act on idle sessions too)."""
        sh = self.ctx.shared
        sh.flush()
        if sh.table.state_version != sh.version:
            sh.apply()
        self.loop.call_later(COUNTER_FLUSH_INTERVAL, self.flush_counters)

    def run(self, ready_fd: int) -> None:
        self.loop.watch_signals(list(MASTER_TO_WORKER_SIGNALS), self.on_signals)
        # The master forked us with its signals blocked; what it sent since
        # (a SIGTERM of a stop that began meanwhile) was kept pending and is
        # delivered now, to our own handlers.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [*MASTER_TO_WORKER_SIGNALS, *TERMINAL_SIGNALS,
                                                    signal.SIGHUP, signal.SIGCHLD])
        if self.ctx.shared.table is not None:
            self.ctx.shared.apply()
            self.flush_counters()
            self.loop.add(self.ctx.shared.table.wakeups[self.slot], EPOLLIN, self.ctx.on_wakeup)
            self.loop.call_later(QUEUE_RECHECK, self.recheck_queues)
        self.start_accepting()
        # Everything built so far (config, compiled rules, balancers) lives
        # as long as the worker: keep it out of the cyclic GC's scans.
        gc.collect()
        gc.freeze()
        os.write(ready_fd, b"R")
        os.close(ready_fd)
        self.log.info("worker_ready")
        self.loop.run()
        self.ctx.shared.flush()
        self.ctx.access.close()
        self.log.info("worker_exit")


def main(config: model.Config, slot: int, generation: int, sockets: dict, ready_fd: int,
         parent_pid: int, config_path: str, table=None, tls=None) -> None:
    """Run a worker in a freshly forked child. Never returns."""
    code = 0
    try:
        die_with_parent(parent_pid)
        set_title(f"farm: worker {slot} [gen {generation}]")
        # Signals are still blocked (see Master.spawn) until run() has its
        # handlers; setting SIG_IGN also discards a terminal signal pending
        # since the fork.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)     # reload is the master's job
        for s in TERMINAL_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        drop_privileges(config.global_.user, config.global_.group)
        try:
            worker = Worker(config, slot, generation, sockets, table, tls)
        except Exception as e:
            logs.get_logger(proc="worker", slot=slot).error(
                "worker_boot_failed", error=f"{type(e).__name__}: {e}")
            code = BOOT_ERROR
        else:
            worker.run(ready_fd)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
