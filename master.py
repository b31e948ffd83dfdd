#!/usr/bin/env python3
"""farm's master process: the arbiter (control plane).

It parses the config, opens every listening socket (one SO_REUSEPORT socket
per address and worker slot), creates the shared-memory table, forks the
workers, runs the health checks, restarts a worker that dies (with
back-off), reloads on SIGHUP and stops on TERM/INT/QUIT. It never proxies
traffic. Run from a checkout as `python3 master.py run -c FILE`; it accepts
the same subcommands as the installed `farm` command.

A configuration generation is the config, its shm table, its listeners and
its workers. A reload builds generation N+1 next to N, and only when every
new worker has reported ready are the old ones told to drain; if a new
worker cannot start, generation N+1 is dropped and N goes on untouched.

Signals (handlers only record; the loop acts):
  TERM, INT  graceful stop: workers stop accepting, finish their sessions
             (up to global.hard_stop_after), then the master exits 0
  QUIT       fast stop
  HUP        reload
  USR1       reopen log files, and forward to the workers
  CHLD       reap and respawn
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import farm
from farm import (__release_date__, __version__, acmerun, build, confdiff, handoff, loader, logs,
                  model, resolve, sampler, shm, tables, tlsconf)
from farm.admin import AdminServer
from farm.health import HealthChecker
from farm.notify import sd_notify
from farm.peers.supervisor import PeersSupervisor
from workers import worker as worker_mod
from workers.loop import EPOLLIN, Loop

MASTER_SIGNALS = [signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT,
                  signal.SIGUSR1, signal.SIGCHLD]
RESPAWN_MAX_DELAY = 10.0     # seconds, cap of the exponential back-off
STABLE_AFTER = 10.0          # a worker alive this long resets its slot's back-off
KILL_GRACE = 1.0             # seconds after hard_stop_after before SIGKILL
READY_TIMEOUT = 30.0         # a reload whose workers are not ready by then fails
SAMPLE_INTERVAL = 1.0        # seconds between samples of the stats rates and averages (farm/sampler.py)
MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req"


def self_command() -> list[str]:
    """The command line this master was started with, to exec it again
    (`python3 master.py run -c F` from a checkout, `/usr/bin/farm run ...`)."""
    return [sys.executable, *sys.orig_argv[1:]]


def code_roots() -> list[str]:
    """Where farm's code lives: what a package upgrade replaces."""
    import workers
    return [os.path.dirname(farm.__file__), os.path.dirname(workers.__file__),
            os.path.abspath(__file__)]


class MasterError(Exception):
    """A failure the master reports in one line and exits on (bind error...)."""


@dataclass
class WorkerProc:
    pid: int
    slot: int
    generation: int
    started: float
    ready_fd: int
    ready: bool = False
    stopping: bool = False


@dataclass
class SlotState:
    failures: int = 0
    respawn_timer: object = None


@dataclass
class Generation:
    """A config generation: what its workers were forked with."""

    number: int
    config: model.Config
    table: shm.Table
    listeners: dict                        # Address -> [socket per slot]
    tls: tlsconf.TlsSet = field(default_factory=lambda: tlsconf.EMPTY)   # SSL contexts, made before fork
    health: HealthChecker | None = None
    carried: dict = field(default_factory=dict)   # old totals added at carry time
    announced: bool = False
    ready_timer: object = None
    on_done: list = field(default_factory=list)   # reload callbacks (admin `reload`)


# Binding to an address the node does not hold (yet): Linux's option
# numbers, which Python's socket module does not all name.
IP_FREEBIND = 15
IP_TRANSPARENT = 19
IPV6_TRANSPARENT = 75
IPV6_FREEBIND = 78


def make_foreign(s: socket.socket, family: int) -> None:
    """Let s bind an address that is not (yet) local: IP_FREEBIND always
    (no privilege needed), IP_TRANSPARENT too where the process may
    (CAP_NET_ADMIN), as HAProxy's `transparent` does. Raises OSError when
    not even IP_FREEBIND is available."""
    if family == socket.AF_INET6:
        level, freebind, transparent = socket.IPPROTO_IPV6, IPV6_FREEBIND, IPV6_TRANSPARENT
    else:
        level, freebind, transparent = socket.IPPROTO_IP, IP_FREEBIND, IP_TRANSPARENT
    s.setsockopt(level, freebind, 1)
    try:
        s.setsockopt(level, transparent, 1)
    except PermissionError:
        pass   # freebind alone is enough to listen on a virtual address


def open_listener(addr: model.Address, backlog: int, transparent: bool = False) -> socket.socket:
    """A non-blocking SO_REUSEPORT listening socket bound to addr; with
    transparent, bound even if addr is not one of this node's addresses."""
    s = socket.socket(addr.family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if addr.family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if transparent:
            make_foreign(s, addr.family)
        s.bind(addr.sockaddr())
        s.listen(backlog)
        s.setblocking(False)
    except OSError as e:
        s.close()
        hint = ""
        if e.errno == errno.EADDRNOTAVAIL and not transparent:
            hint = (" (not an address of this node; a bind with transparent = true, or the"
                    " sysctl net.ipv4.ip_nonlocal_bind = 1, listens on it before it arrives)")
        raise MasterError(f"cannot bind {addr}: {e.strerror or e}{hint}") from None
    return s


def reconcile_listeners(current: dict, config: model.Config) -> tuple[dict, list]:
    """Listeners for config, reusing the sockets of `current` for the same
    address and slot (so nothing queued in a backlog is lost), opening only
    what is new. Returns (listeners, newly opened sockets). Raises
    MasterError after closing what it opened if a bind fails."""
    workers = config.global_.workers
    backlog = max(128, min(config.global_.maxconn, 65535))
    out: dict = {}
    opened: list = []
    transparent = config.transparent_binds()
    try:
        for addr in config.all_binds():
            socks = list(current.get(addr, ()))[:workers]
            while len(socks) < workers:
                s = open_listener(addr, backlog, addr in transparent)
                opened.append(s)
                socks.append(s)
            out[addr] = socks
    except MasterError:
        for s in opened:
            s.close()
        raise
    return out, opened


def close_unused(old: dict, keep: dict) -> None:
    """Close the sockets of `old` that `keep` does not use."""
    kept = {id(s) for socks in keep.values() for s in socks}
    for socks in old.values():
        for s in socks:
            if id(s) not in kept:
                s.close()


def close_fds_except(keep: set[int]) -> None:
    """In a freshly forked worker: close every descriptor the master had
    open (admin socket and its clients, health-check sockets, other workers'
    ready pipes, other generations' listeners) but those in keep. A copy
    left open in a worker would keep, say, an admin client's connection
    alive after the master closed it. The master's Python objects that own
    these fds stay referenced and the worker ends with os._exit, so no
    finalizer ever closes a reused fd number."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass   # the fd of the listdir itself, already gone


def configured_address(config: model.Config, key: tuple[str, str]) -> str | None:
    """The address written in config for server key (backend, server), or None."""
    be = config.backend(key[0])
    srv = be.server(key[1]) if be is not None else None
    return str(srv.address) if srv is not None else None


def enable_migrate_req(log) -> None:
    """net.ipv4.tcp_migrate_req: when a reuseport socket closes, the kernel
    hands its queued connections to a sibling instead of resetting them."""
    try:
        with open(MIGRATE_REQ) as f:
            if f.read().strip() == "1":
                return
        with open(MIGRATE_REQ, "w") as f:
            f.write("1")
        log.info("tcp_migrate_req_enabled")
    except OSError as e:
        log.info("tcp_migrate_req_unavailable", reason=e.strerror or str(e))


class Master:
    def __init__(self, config_path: str, config: model.Config,
                 resolver: resolve.Resolver | None = None):
        self.config_path = config_path
        self.log = logs.get_logger(proc="master", pid=os.getpid())
        self.loop = Loop()
        self.procs: dict[int, WorkerProc] = {}
        self.slots: dict[int, SlotState] = {}
        self.pending: Generation | None = None
        self.draining: dict[int, Generation] = {}
        self.admin_weights: dict[tuple[str, str], int] = {}
        # (backend, server) -> (configured Address, (family, sockaddr)) set by
        # `set server ... addr`: kept over reloads while the config's address
        # for that server stays the same
        self.admin_addrs: dict[tuple[str, str], tuple] = {}
        self.tls_store = tlsconf.TlsStore()
        self.sticks = tables.TableSet()          # the stick tables, kept over reloads
        self.current = Generation(1, config, self.new_table(config, 1, resolver or resolve.Resolver()), {},
                                  self.build_tls(config))
        self.sticks.adopt(self.current.table.sticks)
        self.stopping = False
        self.exit_code = 0
        self.started = time.time()
        self.version = __version__
        self.release_date = __release_date__
        self.admin: AdminServer | None = None
        self.reload_again = False                 # a reload was asked during a reload
        self.queued_callbacks: list = []
        self.code_stamp = handoff.code_fingerprint(code_roots())
        self.adopted: Generation | None = None    # workers of the image before an exec
        self.stats_sampler: sampler.StatsSampler | None = None
        self.acme = acmerun.Scheduler(self.spawn_helper, self.loop.call_later, self.log, self.reload)
        self.peers = PeersSupervisor(lambda fn, title: self.spawn_helper(fn, title=title, die_with_master=True),
                                     self.loop.call_later, self.log)

    @property
    def config(self) -> model.Config:
        return self.current.config

    @property
    def table(self) -> shm.Table:
        return self.current.table

    @property
    def generation(self) -> int:
        return self.current.number

    # -- workers ---------------------------------------------------------------

    def spawn(self, slot: int, gen: Generation) -> None:
        """Fork the worker of `slot` for generation gen."""
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        # Block signals across fork so the child cannot receive one before it
        # has installed its own handlers: until then it runs the master's
        # handlers, which only record into a loop the child no longer runs,
        # so a SIGTERM would be lost. The worker unblocks them once its
        # handlers are set (Worker.run), and what came meanwhile is delivered.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNALS)
        pid = os.fork()
        if pid == 0:
            try:
                self.loop.close_in_child()
                keep = {0, 1, 2, ready_w, *logs.event_fds()}
                keep.update(s.fileno() for socks in gen.listeners.values() for s in socks)
                keep.update(gen.table.inherited_fds())
                close_fds_except(keep)
            except BaseException:
                os._exit(worker_mod.BOOT_ERROR)
            worker_mod.main(gen.config, slot, gen.number, gen.listeners,
                            ready_w, self.parent_pid, self.config_path, gen.table, gen.tls)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        os.close(ready_w)
        proc = WorkerProc(pid, slot, gen.number, time.monotonic(), ready_r)
        self.procs[pid] = proc
        self.loop.add(ready_r, EPOLLIN, lambda ev, p=proc: self.on_ready_pipe(p))
        self.log.info("worker_spawned", slot=slot, worker_pid=pid, gen=gen.number)

    def workers_of(self, number: int) -> list[WorkerProc]:
        return [p for p in self.procs.values() if p.generation == number]

    def on_ready_pipe(self, proc: WorkerProc) -> None:
        try:
            data = os.read(proc.ready_fd, 16)
        except OSError:
            data = b""
        self.loop.remove(proc.ready_fd)
        os.close(proc.ready_fd)
        proc.ready_fd = -1
        if not data.startswith(b"R"):
            return      # it died before being ready: reap() deals with it
        proc.ready = True
        for gen in (self.current, self.pending):
            if gen is not None and gen.number == proc.generation:
                procs = self.workers_of(gen.number)
                if len(procs) == gen.config.global_.workers and all(p.ready for p in procs):
                    self.generation_ready(gen)

    def generation_ready(self, gen: Generation) -> None:
        if gen is self.pending:
            self.promote(gen)
            return
        if not gen.announced:
            gen.announced = True
            self.log.info("farm_ready", gen=gen.number, workers=gen.config.global_.workers,
                          binds=[str(a) for a in gen.config.all_binds()])
            sd_notify(f"READY=1\nSTATUS=serving, generation {gen.number}")
            if self.adopted is not None:
                self.drain_adopted()

    def reap(self) -> None:
        """Collect every exited child."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            proc = self.procs.pop(pid, None)
            if proc is None:
                if not self.peers.reaped(pid, os.waitstatus_to_exitcode(status)):
                    self.acme.reaped(pid, os.waitstatus_to_exitcode(status))
                continue
            if proc.ready_fd >= 0:
                self.loop.remove(proc.ready_fd)
                os.close(proc.ready_fd)
                proc.ready_fd = -1
            self.on_worker_exit(proc, os.waitstatus_to_exitcode(status))

    def forget_stick_refs(self, proc: WorkerProc) -> None:
        """A worker exited: the stick-table entries its sessions still held
        (a crash, or a drain cut short by hard_stop_after) are released,
        unless a live worker uses the same E_HELD cell (farm/tables.py
        held_index: same slot, same generation parity)."""
        tables_now = self.sticks.tables
        if self.stopping or not tables_now or any(p.slot == proc.slot and (p.generation ^ proc.generation) & 1 == 0
                                 for p in self.procs.values()):
            return
        for t in tables_now.values():
            t.forget_worker(tables.held_index(proc.slot, proc.generation, t.workers))

    def on_worker_exit(self, proc: WorkerProc, code: int) -> None:
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
        self.forget_stick_refs(proc)
        if self.stopping or proc.stopping:
            self.log.info("worker_exited", slot=proc.slot, worker_pid=proc.pid, gen=proc.generation,
                          status=how)
            self.generation_gone(proc.generation)
            if self.stopping and not self.procs:
                self.loop.stop()
            return
        if self.pending is not None and proc.generation == self.pending.number:
            self.abort_reload(f"new worker {proc.slot} exited ({how}) before it was ready")
            return
        if code == worker_mod.BOOT_ERROR:
            self.log.error("worker_boot_failed", slot=proc.slot, worker_pid=proc.pid,
                           message="a worker could not start; stopping instead of respawning")
            self.exit_code = 1
            self.stop(graceful=False)
            return
        if proc.generation != self.current.number:
            self.generation_gone(proc.generation)
            return
        state = self.slots.setdefault(proc.slot, SlotState())
        lived = time.monotonic() - proc.started
        state.failures = 0 if lived >= STABLE_AFTER else state.failures + 1
        delay = 0.0 if state.failures <= 1 else min(RESPAWN_MAX_DELAY, 0.1 * 2 ** (state.failures - 1))
        self.log.warning("worker_died", slot=proc.slot, worker_pid=proc.pid, status=how,
                         respawn_in=round(delay, 3))
        # its connections and queued requests died with it: give their
        # share of the global counts back before its replacement starts
        self.current.table.forget_worker(proc.slot)
        if delay == 0:
            self.spawn(proc.slot, self.current)
        else:
            state.respawn_timer = self.loop.call_later(delay, lambda s=proc.slot: self.respawn(s))

    def respawn(self, slot: int) -> None:
        if self.stopping:
            return
        if not any(p.slot == slot and p.generation == self.current.number for p in self.procs.values()):
            self.spawn(slot, self.current)

    def signal_workers(self, signum: int, generation: int | None = None) -> None:
        for p in list(self.procs.values()):
            if generation is None or p.generation == generation:
                try:
                    os.kill(p.pid, signum)
                except ProcessLookupError:
                    pass

    # -- reload ----------------------------------------------------------------

    def reload(self, on_done=None) -> bool:
        """SIGHUP / admin `reload`: start generation N+1. False if refused.

        on_done(ok, messages) is called once the reload has finished (new
        workers ready) or failed."""
        def refused(messages: list[str]) -> bool:
            self.tls_store.retain(self.current.tls, self.pending.tls if self.pending else None)
            sd_notify("READY=1")
            if on_done is not None:
                on_done(False, messages)
            return False
        if self.stopping:
            return refused(["farm is stopping"])
        sd_notify("RELOADING=1")
        if self.pending is not None:
            # Another reload asked while one is starting: run it again once
            # this one is done, so the newest file on disk is what applies.
            # Any number of requests meanwhile coalesce into that one.
            self.log.info("reload_queued", message="a reload is in progress; will reload again after it")
            self.reload_again = True
            if on_done is not None:
                self.queued_callbacks.append(on_done)
            return True
        if handoff.code_fingerprint(code_roots()) != self.code_stamp:
            return self.reexec(on_done, refused)
        resolver = resolve.Resolver()
        warnings: list[loader.ConfigError] = []
        try:
            config = loader.load(self.config_path, resolver=resolver, tls_files=True, warnings=warnings)
        except loader.ConfigErrors as e:
            for err in e.errors:
                self.log.error("reload_config_error", error=str(err))
            self.log.error("reload_refused", errors=len(e.errors),
                           message="configuration invalid; keeping the running one")
            return refused([str(err) for err in e.errors])
        for w in warnings:
            self.log.warning("reload_config_warning", warning=str(w))
        try:
            tls = self.build_tls(config)
        except MasterError as e:
            self.log.error("reload_refused", message=str(e))
            return refused([str(e)])
        number = self.current.number + 1
        try:
            table = self.new_table(config, number, resolver, self.current)
        except MasterError as e:
            self.log.error("reload_refused", message=str(e))
            return refused([str(e)])
        try:
            listeners, _ = reconcile_listeners(self.current.listeners, config)
        except MasterError as e:
            self.sticks.discard(table.sticks)
            table.close()
            self.log.error("reload_refused", message=str(e))
            return refused([str(e)])
        table.carry_from(self.current.table)
        self.reapply_admin(config, table)
        gen = Generation(number, config, table, listeners, tls)
        gen.carried = {key: self.current.table.read_row(key) for key in table.layout.rows
                       if key in self.current.table.layout.rows}
        if on_done is not None:
            gen.on_done.append(on_done)
        self.pending = gen
        changes = confdiff.describe(self.current.config, config)
        self.log.info("reload_started", gen=number,
                      message=f"reload gen {number}: " + (", ".join(changes) or "no change"))
        for slot in range(config.global_.workers):
            self.spawn(slot, gen)
        gen.ready_timer = self.loop.call_later(READY_TIMEOUT, lambda: self.abort_reload(
            f"new workers not ready within {READY_TIMEOUT:.0f}s") if self.pending is gen else None)
        self.reload_message = f"reload gen {number}: " + (", ".join(changes) or "no change")
        return True

    def reexec(self, on_done, refused) -> bool:
        """The code on disk changed (a package upgrade): check the config with
        the new code, then exec the new code in place (same pid), handing it
        the listening sockets, the running workers and the server state. The
        new image starts generation N+1 and drains the old workers once its
        own are ready, as any reload does."""
        check = subprocess.run([sys.executable, sys.argv[0], "check", "-q", "-c", self.config_path],
                               capture_output=True, text=True, timeout=120)
        if check.returncode != 0:
            errors = [l for l in check.stderr.splitlines() if l.strip()] or ["farm check failed"]
            for err in errors:
                self.log.error("reload_config_error", error=err)
            self.log.error("reload_refused", message="the new code refuses the configuration; "
                           "keeping the running farm")
            return refused(errors)
        t = self.table
        state = {f"{be}/{srv}": t.srv_state(sidx) for (be, srv), sidx in t.layout.servers.items()}
        totals = {"\t".join(key): t.read_row(key) for key in t.layout.rows}
        data = {
            "generation": self.generation, "started": self.started,
            "listeners": {str(a): [s.fileno() for s in socks]
                          for a, socks in self.current.listeners.items()},
            "workers": [{"pid": p.pid, "slot": p.slot, "generation": p.generation}
                        for p in self.procs.values()],
            "servers": state, "totals": totals,
            "admin_weights": {f"{be}/{srv}": w for (be, srv), w in self.admin_weights.items()},
            "admin_addrs": {f"{be}/{srv}": [configured, *addr]
                            for (be, srv), (configured, addr) in self.admin_addrs.items()},
        }
        path = handoff.write(data)
        for socks in self.current.listeners.values():
            for s in socks:
                os.set_inheritable(s.fileno(), True)
        self.log.info("reexec", gen=self.generation + 1,
                      message="new code on disk: re-executing the master in place")
        if self.admin is not None:
            self.admin.close()       # the new image binds it again
        if self.current.health is not None:
            self.current.health.stop()
        self.peers.stop()            # the new image starts its own (the sessions reconnect)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])  # reaped by the new image
        try:
            os.execve(sys.executable, self_command(), dict(os.environ, **{handoff.ENV: path}))
        except OSError as e:
            # Still the old image, whole: put back what was stopped for the exec.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
            os.unlink(path)
            for socks in self.current.listeners.values():
                for s in socks:
                    os.set_inheritable(s.fileno(), False)
            if self.config.global_.admin_socket:
                self.admin = AdminServer(self.loop, self, self.config.global_.admin_socket)
            self.current.health = HealthChecker(self.loop, self.table, self.config, self.log, self.current.tls)
            self.current.health.start()
            self.log.error("reexec_failed", error=e.strerror or str(e))
            return refused([f"cannot execute the new code: {e.strerror or e}"])
        return True   # not reached

    def adopt(self, data: dict) -> None:
        """In the new image after a re-exec: take over the sockets, the state
        and the running workers described by the handoff data."""
        by_name = {str(a): a for a in self.config.all_binds()}
        inherited = {}
        for name, fds in data["listeners"].items():
            socks = [socket.socket(fileno=fd) for fd in fds]
            if name in by_name:
                inherited[by_name[name]] = socks
            else:
                self.orphan_listeners.extend(socks)   # closed once the old workers are gone
        number = data["generation"] + 1
        for name, entry in data.get("admin_addrs", {}).items():
            be, _, srv = name.partition("/")
            configured, family, sockaddr = entry
            self.admin_addrs[(be, srv)] = (configured, (family, tuple(sockaddr)))
        self.current = Generation(number, self.config,
                                  self.new_table(self.config, number, resolve.Resolver()), {},
                                  self.build_tls(self.config))
        self.current.listeners, _ = reconcile_listeners(inherited, self.config)
        for socks in inherited.values():
            for s in socks[self.config.global_.workers:]:
                self.orphan_listeners.append(s)
        self.started = data.get("started", self.started)
        t = self.table
        for name, st in data["servers"].items():
            be, _, srv = name.partition("/")
            sidx = t.server_row(be, srv)
            if sidx is None:
                continue
            for k in ("op_up", "health", "admin", "check_status", "check_code", "check_duration",
                      "last_change", "downtime", "down_since", "chkfail", "chkdown", "checks",
                      "up_since"):
                t.srv_set(sidx, k, st[k])
        for name, w in data.get("admin_weights", {}).items():
            be, _, srv = name.partition("/")
            self.admin_weights[(be, srv)] = w
        self.reapply_admin(self.config, t)
        for key, totals in data.get("totals", {}).items():
            k = tuple(key.split("\t"))
            if k in t.layout.rows:
                t.add_carried(k, totals)
        t.bump_state_version()
        old = Generation(data["generation"], self.config, None, {})
        old.announced = True
        self.adopted = old
        now = time.monotonic()
        for w in data["workers"]:
            self.procs[w["pid"]] = WorkerProc(w["pid"], w["slot"], w["generation"], now, -1,
                                              ready=True, stopping=True)
        self.log.info("reexec_adopted", gen=number, workers=len(data["workers"]),
                      listeners=len(inherited))

    def drain_adopted(self) -> None:
        """The new image's workers are ready: the adopted ones drain."""
        old, self.adopted = self.adopted, None
        pids = [p.pid for p in self.procs.values() if p.generation < self.generation]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for s in self.orphan_listeners:
            s.close()
        self.orphan_listeners = []
        self.log.info("reload_done", gen=self.generation, draining=old.number)
        hard = self.config.global_.hard_stop_after + KILL_GRACE
        self.loop.call_later(hard, lambda: [self.signal_workers(signal.SIGKILL, g)
                                            for g in {p.generation for p in self.procs.values()
                                                      if p.generation < self.generation}])

    def reapply_admin(self, config: model.Config, table: shm.Table) -> None:
        """Weights set through the admin socket survive a reload (admin
        states are carried by carry_from already)."""
        for (be, srv), w in list(self.admin_weights.items()):
            sidx = table.server_row(be, srv)
            if sidx is None:
                del self.admin_weights[(be, srv)]
                continue
            table.srv_set(sidx, "weight", w)
            table.srv_set(sidx, "eff_weight", w * shm.WEIGHT_SCALE)
        table.bump_state_version()

    def promote(self, gen: Generation) -> None:
        """Every new worker is ready: generation N+1 becomes current and
        generation N drains."""
        old = self.current
        self.pending = None
        if gen.ready_timer is not None:
            gen.ready_timer.cancel()
        self.current = gen
        gen.announced = True
        self.tls_store.retain(gen.tls)
        self.sticks.adopt(gen.table.sticks)
        self.forget_stale_addrs(gen.config)
        self.acme.configure(gen.config)
        self.peers.configure(gen.config, gen.table.sticks, self.parent_pid)
        if old.health is not None:
            old.health.stop()
        gen.health = HealthChecker(self.loop, gen.table, gen.config, self.log, gen.tls)
        gen.health.start()
        self.draining[old.number] = old
        for p in self.workers_of(old.number):
            p.stopping = True
        old.table.mark_superseded()     # a reload, not a stop: monitor_uri stays 200
        self.signal_workers(signal.SIGTERM, old.number)
        close_unused(old.listeners, gen.listeners)
        worker_mod.set_title(f"farm: master [gen {gen.number}] -c {self.config_path}")
        self.log.info("reload_done", gen=gen.number, draining=old.number)
        sd_notify(f"READY=1\nSTATUS=serving, generation {gen.number}")
        self.save_state()
        for cb in gen.on_done:
            cb(True, [self.reload_message])
        self.run_queued_reload()
        if not self.workers_of(old.number):
            self.generation_gone(old.number)
        else:
            self.loop.call_later(old.config.global_.hard_stop_after + KILL_GRACE,
                                 lambda n=old.number: self.signal_workers(signal.SIGKILL, n))

    def abort_reload(self, reason: str) -> None:
        gen = self.pending
        if gen is None:
            return
        self.pending = None
        self.log.error("reload_failed", gen=gen.number, reason=reason,
                       message="keeping the running configuration")
        for p in self.workers_of(gen.number):
            p.stopping = True
        self.signal_workers(signal.SIGKILL, gen.number)
        close_unused(gen.listeners, self.current.listeners)
        self.tls_store.retain(self.current.tls)
        self.sticks.discard(gen.table.sticks)
        gen.table.close()    # our mapping only: the killed workers had their own
        sd_notify("READY=1")
        for cb in gen.on_done:
            cb(False, [reason])
        self.run_queued_reload()

    def run_queued_reload(self) -> None:
        if self.reload_again and not self.stopping:
            self.reload_again = False
            callbacks, self.queued_callbacks = self.queued_callbacks, []
            self.loop.call_soon(lambda: self.reload_with(callbacks))

    def reload_with(self, callbacks: list) -> None:
        def done(ok: bool, messages: list[str]) -> None:
            for cb in callbacks:
                cb(ok, messages)
        self.reload(on_done=done if callbacks else None)

    def generation_gone(self, number: int) -> None:
        """The last worker of a draining generation exited: add what its
        workers counted after the carry into the current table, and unmap."""
        old = self.draining.get(number)
        if old is None or self.workers_of(number) or old.table is None:
            return
        del self.draining[number]
        cur = self.current.table
        for key, at_carry in self.current.carried.items():
            if key in cur.layout.rows and key in old.table.layout.rows:
                final = old.table.read_row(key)
                delta = {k: final[k] - at_carry.get(k, 0) for k in final
                         if k not in shm.MAXIMA}
                cur.add_carried(key, delta)
        self.current.carried = {}
        old.table.close()
        self.log.info("generation_drained", gen=number)

    # -- TLS ---------------------------------------------------------------------

    def spawn_helper(self, fn, keep: tuple[int, ...] = (), title: str = "",
                     die_with_master: bool = False) -> int:
        """Fork a helper child (the ACME client, farm/acmerun.py; the peers
        process, farm/peers/) that runs fn() and exits with its result; its
        pid. It keeps only the standard and event-log descriptors and
        `keep`, takes the default signal handlers (and, die_with_master,
        is killed by the kernel when the master dies)."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNALS)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self.loop.close_in_child()
                close_fds_except({0, 1, 2, *logs.event_fds(), *keep})
                for s in MASTER_SIGNALS:
                    signal.signal(s, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                if die_with_master:
                    worker_mod.die_with_parent(self.parent_pid)
                worker_mod.set_title(title or f"farm: acme client -c {self.config_path}")
                code = fn()
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return pid

    def build_tls(self, config: model.Config) -> tlsconf.TlsSet:
        """The SSL contexts of config, made here so that every worker forks
        with the same ones (shared session-ticket keys); a frontend whose
        certificate files and TLS settings did not change keeps its
        contexts (farm/tlsconf.py). Raises MasterError naming the file."""
        try:
            return self.tls_store.build(config, acmerun.prepare(config))
        except tlsconf.TlsError as e:
            raise MasterError(str(e)) from None

    # -- server addresses ----------------------------------------------------------

    def new_table(self, config: model.Config, number: int, resolver: resolve.Resolver,
                  previous: Generation | None = None) -> shm.Table:
        """The shm table of generation `number`, with the address of every
        server (resolved through `resolver`, which the loader filled). On a
        reload (`previous`), a server whose configured address is unchanged
        keeps an address the runtime API gave it, or the one it had when
        its name no longer resolves. Raises MasterError naming backend and
        server for a name that must resolve and does not."""
        pinned = {key: addr for key, (configured, addr) in self.admin_addrs.items()
                  if configured_address(config, key) == configured}

        def earlier(backend: str, server: str):
            if previous is None or previous.table is None:
                return None
            old_be = previous.config.backend(backend)
            old_srv = old_be.server(server) if old_be is not None else None
            new_srv = config.backend(backend).server(server)
            sidx = previous.table.server_row(backend, server)
            if old_srv is None or sidx is None or old_srv.address != new_srv.address:
                return None
            return previous.table.address(sidx)[1]
        try:
            addresses, notes = resolve.server_addresses(config, resolver, pinned, earlier)
        except resolve.ResolveError as e:
            raise MasterError(str(e)) from None
        for note in notes:
            self.log.warning("server_address", message=note)
        table = shm.Table.create(config, number, addresses)
        table.sticks = self.sticks.build(config.tables, config.global_.workers)
        return table

    def forget_stale_addrs(self, config: model.Config) -> None:
        """After a reload: forget runtime addresses of servers that are gone
        or whose configured address changed (the file wins again)."""
        self.admin_addrs = {key: v for key, v in self.admin_addrs.items()
                            if configured_address(config, key) == v[0]}

    def restore_addr(self, backend: str, server: str, saved) -> None:
        """An address set by the runtime API before a restart (the state
        file's "addr"), applied while the config's address is the same."""
        if not isinstance(saved, dict):
            return
        srv = self.config.backend(backend).server(server)
        try:
            family = resolve.literal_ip(saved["ip"])
            if saved["config"] != str(srv.address) or family is None:
                return
            address = resolve.lookup(saved["ip"], int(saved["port"]), family)
        except (KeyError, TypeError, ValueError, OSError, resolve.ResolveError):
            return
        self.set_server_addr(backend, server, address)

    def set_server_addr(self, backend: str, server: str, address: tuple[int, tuple]) -> bool:
        """`set server B/S addr IP [port N]`: workers connect new sessions to
        `address` (family, sockaddr), health checks too; a server waiting in
        resolution maintenance leaves it."""
        srv = self.config.backend(backend).server(server) if self.config.backend(backend) else None
        if srv is None:
            return False
        for gen in (self.current, self.pending):
            t = gen.table if gen is not None else None
            sidx = t.server_row(backend, server) if t is not None else None
            if sidx is None:
                continue
            t.set_address(sidx, address)
            if t.srv_get(sidx, "rmaint"):
                t.srv_set(sidx, "rmaint", 0)
                t.srv_set(sidx, "last_change", int(time.time()))
            t.bump_state_version()
        self.admin_addrs[(backend, server)] = (str(srv.address), address)
        self.log.info("server_addr", backend=backend, server=server,
                      address=shm.format_sockaddr(address[1]))
        self.save_state()
        return True

    # -- admin state -------------------------------------------------------------

    def set_server_admin(self, backend: str, server: str, state: int) -> bool:
        sidx = self.table.server_row(backend, server)
        if sidx is None:
            return False
        t = self.table
        if t.srv_get(sidx, "admin") != state:
            t.srv_set(sidx, "admin", state)
            now = int(time.time())
            t.srv_set(sidx, "last_change", now)
            t.note_downtime(sidx, now)
            t.bump_state_version()
            self.log.info("server_admin", backend=backend, server=server, state=shm.ADMIN_NAMES[state])
            self.save_state()
        return True

    def set_server_weight(self, backend: str, server: str, weight: int) -> bool:
        sidx = self.table.server_row(backend, server)
        if sidx is None:
            return False
        t = self.table
        t.srv_set(sidx, "weight", weight)
        t.srv_set(sidx, "eff_weight", weight * shm.WEIGHT_SCALE)
        t.bump_state_version()
        self.admin_weights[(backend, server)] = weight
        self.log.info("server_weight", backend=backend, server=server, weight=weight)
        self.save_state()
        return True

    def save_state(self) -> None:
        """Write server state to global.state_file (atomically), like
        HAProxy's server-state-file, so admin changes survive a restart."""
        path = self.config.global_.state_file
        if not path:
            return
        t = self.table
        servers = {}
        for (be, srv), sidx in t.layout.servers.items():
            st = t.srv_state(sidx)
            servers[f"{be}/{srv}"] = {
                "admin": shm.ADMIN_NAMES[st["admin"]], "op_up": st["op_up"],
                "health": st["health"],
                "weight": self.admin_weights.get((be, srv)),
            }
            if (be, srv) in self.admin_addrs:
                configured, (family, sockaddr) = self.admin_addrs[(be, srv)]
                servers[f"{be}/{srv}"]["addr"] = {"config": configured, "ip": sockaddr[0],
                                                  "port": sockaddr[1]}
        tmp = f"{path}.tmp.{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                json.dump({"version": 1, "saved": int(time.time()), "servers": servers}, f)
            os.replace(tmp, path)
        except OSError as e:
            self.log.warning("state_file_not_written", path=path, error=e.strerror or str(e))

    def load_state(self) -> None:
        path = self.config.global_.state_file
        if not path or not os.path.exists(path):
            return
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            self.log.warning("state_file_unreadable", path=path, error=str(e))
            return
        t = self.table
        applied = 0
        for name, st in data.get("servers", {}).items():
            be, _, srv = name.partition("/")
            sidx = t.server_row(be, srv)
            if sidx is None:
                continue
            if st.get("admin") in shm.ADMIN_NAMES:
                t.srv_set(sidx, "admin", shm.ADMIN_NAMES.index(st["admin"]))
            if st.get("op_up") in (0, 1) and t.srv_get(sidx, "has_check"):
                t.srv_set(sidx, "op_up", st["op_up"])
                t.srv_set(sidx, "health", int(st.get("health", 0)))
            if isinstance(st.get("weight"), int):
                self.admin_weights[(be, srv)] = st["weight"]
                t.srv_set(sidx, "weight", st["weight"])
                t.srv_set(sidx, "eff_weight", st["weight"] * shm.WEIGHT_SCALE)
            self.restore_addr(be, srv, st.get("addr"))
            t.note_downtime(sidx, int(time.time()))
            applied += 1
        t.bump_state_version()
        self.log.info("state_file_loaded", path=path, servers=applied)

    # -- stopping --------------------------------------------------------------

    def stop(self, graceful: bool) -> None:
        self.peers.stop()
        acme_pid = self.acme.stop()
        if acme_pid is not None:
            os.kill(acme_pid, signal.SIGTERM)     # an order half done is redone at the next start
        if not graceful:
            self.stopping = True
            self.signal_workers(signal.SIGQUIT)
            self.loop.stop()
            return
        if self.stopping:
            return
        self.stopping = True
        sd_notify("STOPPING=1")
        self.log.info("farm_stopping", graceful=True, workers=len(self.procs))
        for p in self.procs.values():
            p.stopping = True
        self.signal_workers(signal.SIGTERM)
        if self.current.health is not None:
            self.current.health.stop()
        self.save_state()
        # Our copies of the listening sockets go too: once the workers have
        # closed theirs, new clients are refused instead of queued forever.
        self.close_all_listeners()
        for st in self.slots.values():
            if st.respawn_timer is not None:
                st.respawn_timer.cancel()
        if not self.procs:
            self.loop.stop()
            return
        self.loop.call_later(self.config.global_.hard_stop_after + KILL_GRACE, self.kill_remaining)

    def close_all_listeners(self) -> None:
        for gen in [self.current, self.pending, *self.draining.values()]:
            if gen is not None:
                for socks in gen.listeners.values():
                    for s in socks:
                        s.close()

    def kill_remaining(self) -> None:
        if self.procs:
            self.log.warning("killing_workers", count=len(self.procs))
            self.signal_workers(signal.SIGKILL)

    # -- signals ---------------------------------------------------------------

    def on_signals(self, signums: list[int]) -> None:
        """Act on the signals recorded since the last turn, stop signals
        first. A terminal sends SIGINT/SIGQUIT to the whole process group,
        and the kernel runs the handlers of signals pending together in no
        useful order: a worker's exit (SIGCHLD) can be recorded before the
        master's own stop signal. Reaped first, that exit would look like a
        crash and be respawned in the middle of the stop."""
        stops = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
        signums = sorted(signums, key=lambda s: s not in stops)   # stable: otherwise in order
        for s in signums:
            if s == signal.SIGCHLD:
                self.reap()
            elif s in (signal.SIGTERM, signal.SIGINT):
                self.stop(graceful=True)
            elif s == signal.SIGQUIT:
                self.stop(graceful=False)
            elif s == signal.SIGUSR1:
                logs.reopen_events()
                self.signal_workers(signal.SIGUSR1)
            elif s == signal.SIGHUP:
                self.reload()

    # -- running ---------------------------------------------------------------

    def sample_stats(self) -> None:
        """Every SAMPLE_INTERVAL: the stats rates and recent averages of the
        current generation's table (a new sampler when a reload made a new
        table)."""
        if self.stats_sampler is None or self.stats_sampler.table is not self.table:
            self.stats_sampler = sampler.StatsSampler(self.table)
        self.stats_sampler.sample()
        for t in self.table.sticks.values():
            t.sweep()                  # expired stick-table entries
        self.loop.call_later(SAMPLE_INTERVAL, self.sample_stats)

    def run(self) -> int:
        self.parent_pid = os.getpid()
        self.orphan_listeners: list[socket.socket] = []
        inherited = handoff.take()
        if inherited is not None:
            self.load_state()
            self.adopt(inherited)
        else:
            refuse_if_running(self.config.global_.admin_socket)
            self.current.listeners, _ = reconcile_listeners({}, self.config)
            self.load_state()
        worker_mod.set_title(f"farm: master [gen {self.generation}] -c {self.config_path}")
        enable_migrate_req(self.log)
        if self.config.global_.admin_socket:
            try:
                self.admin = AdminServer(self.loop, self, self.config.global_.admin_socket)
            except OSError as e:
                raise MasterError(f"cannot create admin socket {self.config.global_.admin_socket}: "
                                  f"{e.strerror or e}") from None
        self.loop.watch_signals(MASTER_SIGNALS, self.on_signals)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])   # blocked across a re-exec
        self.reap()          # an adopted worker may have exited during the exec
        described = build.describe()
        self.log.info("farm_starting", config=self.config_path, workers=self.config.global_.workers,
                      build=described)
        if described != "compiled":
            # said once: farm works pure, but slower (docs/building.md)
            self.log.warning("running_pure", build=described,
                             message="per-request modules run as pure Python (slower); "
                                     "see docs/building.md")
        for slot in range(self.config.global_.workers):
            self.spawn(slot, self.current)
        self.current.health = HealthChecker(self.loop, self.table, self.config, self.log, self.current.tls)
        self.current.health.start()
        self.loop.call_later(SAMPLE_INTERVAL, self.sample_stats)
        self.acme.configure(self.config)
        self.peers.configure(self.config, self.table.sticks, self.parent_pid)
        self.loop.run()
        # Fast stop or last worker gone: make sure no child outlives us.
        self.signal_workers(signal.SIGKILL)
        deadline = time.monotonic() + 2
        while self.procs and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, 0)
                self.procs.pop(pid, None)
            except ChildProcessError:
                break
        self.close_all_listeners()
        if self.admin is not None:
            self.admin.close()
        self.log.info("farm_stopped", code=self.exit_code)
        return self.exit_code


def refuse_if_running(admin_path: str | None) -> None:
    """Raise MasterError when another farm answers on admin_path (the same
    config started twice): the listeners use SO_REUSEPORT, so a second
    farm would bind the same ports without an error, take half of the new
    connections, and steal the admin socket. Checked before any listener
    is bound. A socket file left by a farm that died refuses connections
    and is no obstacle."""
    if not admin_path or not os.path.exists(admin_path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(admin_path)
    except OSError:
        return
    finally:
        probe.close()
    raise MasterError(f"another farm is running: its admin socket {admin_path} answers. "
                      f"Reload it (systemctl reload farm, or SIGHUP to its master) instead of "
                      f"starting a second one, which would share its ports (SO_REUSEPORT)")


def run(config_path: str) -> int:
    """`farm run -c FILE`: load, then run the master in the foreground."""
    resolver = resolve.Resolver()
    warnings: list[loader.ConfigError] = []
    try:
        config = loader.load(config_path, resolver=resolver, tls_files=True, warnings=warnings)
    except loader.ConfigErrors as e:
        print(str(e), file=sys.stderr)
        print(f"farm: {len(e.errors)} error(s) in {config_path}; not starting", file=sys.stderr)
        return 1
    logs.setup_events(config.log.events, config.log.level)
    for w in warnings:
        logs.get_logger(proc="master", pid=os.getpid()).warning("config_warning", warning=str(w))
    try:
        master = Master(config_path, config, resolver)
    except MasterError as e:
        print(f"farm: {e}", file=sys.stderr)
        return 1
    try:
        return master.run()
    except MasterError as e:
        master.log.error("farm_start_failed", error=str(e))
        print(f"farm: {e}", file=sys.stderr)
        master.signal_workers(signal.SIGKILL)
        return 1


if __name__ == "__main__":
    from farm.cli import main
    sys.exit(main())
