#!/usr/bin/env python3
"""farm's master process: the arbiter (control plane).

It parses the config, opens every listening socket (one SO_REUSEPORT socket
per address and worker slot), forks the workers, restarts a worker that dies
(with back-off), and stops gracefully or fast on signals. It never proxies
traffic. Run from a checkout as `python3 master.py run -c FILE`; it accepts
the same subcommands as the installed `farm` command.

Signals (handlers only record; the loop acts):
  TERM, INT  graceful stop: workers stop accepting, finish their sessions
             (up to global.hard_stop_after), then the master exits 0
  QUIT       fast stop
  HUP        reload (see reload())
  USR1       reopen log files, and forward to the workers
  CHLD       reap and respawn
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from farm import loader, logs, model
from farm.notify import sd_notify
from workers import worker as worker_mod
from workers.loop import EPOLLIN, Loop

MASTER_SIGNALS = [signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT,
                  signal.SIGUSR1, signal.SIGCHLD]
RESPAWN_MAX_DELAY = 10.0     # seconds, cap of the exponential back-off
STABLE_AFTER = 10.0          # a worker alive this long resets its slot's back-off
KILL_GRACE = 1.0             # seconds after hard_stop_after before SIGKILL


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
class Listeners:
    """Listening sockets by address: one per worker slot."""

    by_addr: dict = field(default_factory=dict)

    def close_all(self) -> None:
        for socks in self.by_addr.values():
            for s in socks:
                s.close()
        self.by_addr.clear()


def open_listener(addr: model.Address, backlog: int) -> socket.socket:
    """A non-blocking SO_REUSEPORT listening socket bound to addr."""
    s = socket.socket(addr.family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if addr.family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(addr.sockaddr())
        s.listen(backlog)
        s.setblocking(False)
    except OSError as e:
        s.close()
        raise MasterError(f"cannot bind {addr}: {e.strerror or e}") from None
    return s


class Master:
    def __init__(self, config_path: str, config: model.Config):
        self.config_path = config_path
        self.config = config
        self.generation = 1
        self.loop = Loop()
        self.listeners = Listeners()
        self.procs: dict[int, WorkerProc] = {}
        self.slots: dict[int, SlotState] = {}
        self.stopping = False
        self.exit_code = 0
        self.started = time.time()
        self.log = logs.get_logger(proc="master", pid=os.getpid())

    # -- listeners -------------------------------------------------------------

    def open_listeners(self) -> None:
        """Open one socket per (bind address, worker slot) of the config."""
        cfg = self.config
        backlog = max(128, min(cfg.global_.maxconn, 65535))
        for addr in cfg.all_binds():
            if addr not in self.listeners.by_addr:
                self.listeners.by_addr[addr] = [open_listener(addr, backlog)
                                                for _ in range(cfg.global_.workers)]

    # -- workers ---------------------------------------------------------------

    def spawn(self, slot: int) -> None:
        """Fork the worker of `slot` for the current generation."""
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        # Block signals across fork so the child cannot receive one before it
        # has installed its own handlers; the child unblocks them.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNALS)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready_r)
                self.loop.close_in_child()
                for p in self.procs.values():
                    if p.ready_fd >= 0:
                        os.close(p.ready_fd)
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
            except BaseException:
                os._exit(worker_mod.BOOT_ERROR)
            worker_mod.main(self.config, slot, self.generation, self.listeners.by_addr,
                            ready_w, self.parent_pid, self.config_path)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        os.close(ready_w)
        proc = WorkerProc(pid, slot, self.generation, time.monotonic(), ready_r)
        self.procs[pid] = proc
        self.loop.add(ready_r, EPOLLIN, lambda ev, p=proc: self.on_ready_pipe(p))
        self.log.info("worker_spawned", slot=slot, worker_pid=pid, gen=self.generation)

    def on_ready_pipe(self, proc: WorkerProc) -> None:
        try:
            data = os.read(proc.ready_fd, 16)
        except OSError:
            data = b""
        self.loop.remove(proc.ready_fd)
        os.close(proc.ready_fd)
        proc.ready_fd = -1
        if data.startswith(b"R"):
            proc.ready = True
            if all(p.ready for p in self.procs.values() if p.generation == self.generation):
                self.on_all_ready()

    def on_all_ready(self) -> None:
        if getattr(self, "_announced", 0) == self.generation:
            return
        self._announced = self.generation
        self.log.info("farm_ready", gen=self.generation, workers=self.config.global_.workers,
                      binds=[str(a) for a in self.config.all_binds()])
        sd_notify("READY=1\nSTATUS=serving")

    def reap(self) -> None:
        """Collect every exited child; respawn its slot unless stopping."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            proc = self.procs.pop(pid, None)
            if proc is None:
                continue
            if proc.ready_fd >= 0:
                self.loop.remove(proc.ready_fd)
                os.close(proc.ready_fd)
            code = os.waitstatus_to_exitcode(status)
            self.on_worker_exit(proc, code)
        
    def on_worker_exit(self, proc: WorkerProc, code: int) -> None:
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
        if self.stopping or proc.stopping:
            self.log.info("worker_exited", slot=proc.slot, worker_pid=proc.pid, status=how)
            if self.stopping and not self.procs:
                self.loop.stop()
            return
        if code == worker_mod.BOOT_ERROR:
            self.log.error("worker_boot_failed", slot=proc.slot, worker_pid=proc.pid,
                           message="a worker could not start; stopping instead of respawning")
            self.exit_code = 1
            self.stop(graceful=False)
            return
        state = self.slots.setdefault(proc.slot, SlotState())
        lived = time.monotonic() - proc.started
        state.failures = 0 if lived >= STABLE_AFTER else state.failures + 1
        delay = 0.0 if state.failures <= 1 else min(RESPAWN_MAX_DELAY, 0.1 * 2 ** (state.failures - 1))
        self.log.warning("worker_died", slot=proc.slot, worker_pid=proc.pid, status=how,
                         respawn_in=round(delay, 3))
        if delay == 0:
            self.spawn(proc.slot)
        else:
            state.respawn_timer = self.loop.call_later(delay, lambda s=proc.slot: self.respawn(s))

    def respawn(self, slot: int) -> None:
        if not self.stopping and not any(p.slot == slot and not p.stopping for p in self.procs.values()):
            self.spawn(slot)

    def signal_workers(self, signum: int, only_generation: int | None = None) -> None:
        for p in self.procs.values():
            if only_generation is None or p.generation == only_generation:
                try:
                    os.kill(p.pid, signum)
                except ProcessLookupError:
                    pass

    # -- stopping --------------------------------------------------------------

    def stop(self, graceful: bool) -> None:
        if not graceful:
            self.stopping = True
            self.signal_workers(signal.SIGQUIT)
            self.listeners.close_all()
            self.loop.stop()
            return
        if self.stopping:
            return
        self.stopping = True
        sd_notify("STOPPING=1")
        self.log.info("farm_stopping", graceful=True, workers=len(self.procs))
        self.signal_workers(signal.SIGTERM)
        # Our copies of the listening sockets go too: once the workers have
        # closed theirs, new clients are refused instead of queued forever.
        self.listeners.close_all()
        for st in self.slots.values():
            if st.respawn_timer is not None:
                st.respawn_timer.cancel()
        if not self.procs:
            self.loop.stop()
            return
        self.loop.call_later(self.config.global_.hard_stop_after + KILL_GRACE, self.kill_remaining)

    def kill_remaining(self) -> None:
        if self.procs:
            self.log.warning("killing_workers", count=len(self.procs))
            self.signal_workers(signal.SIGKILL)

    # -- signals ---------------------------------------------------------------

    def on_signals(self, signums: list[int]) -> None:
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

    def reload(self) -> None:
        """Reload the config (generation N+1). Until the graceful reload of
        the health/reload issue lands, a reload validates the new file and
        reports; it changes nothing."""
        try:
            loader.load(self.config_path)
        except loader.ConfigErrors as e:
            for err in e.errors:
                self.log.error("reload_config_error", error=str(err))
            self.log.error("reload_refused", errors=len(e.errors), message="keeping the running configuration")
            return
        self.log.warning("reload_unsupported", message="configuration is valid; restart farm to apply it")

    # -- running ---------------------------------------------------------------

    def run(self) -> int:
        self.parent_pid = os.getpid()
        worker_mod.set_title(f"farm: master [gen {self.generation}] -c {self.config_path}")
        self.open_listeners()
        self.loop.watch_signals(MASTER_SIGNALS, self.on_signals)
        self.log.info("farm_starting", config=self.config_path, workers=self.config.global_.workers)
        for slot in range(self.config.global_.workers):
            self.spawn(slot)
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
        self.listeners.close_all()
        self.log.info("farm_stopped", code=self.exit_code)
        return self.exit_code


def run(config_path: str) -> int:
    """`farm run -c FILE`: load, then run the master in the foreground."""
    try:
        config = loader.load(config_path)
    except loader.ConfigErrors as e:
        print(str(e), file=sys.stderr)
        print(f"farm: {len(e.errors)} error(s) in {config_path}; not starting", file=sys.stderr)
        return 1
    logs.setup_events(config.log.events, config.log.level)
    master = Master(config_path, config)
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
