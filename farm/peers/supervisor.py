"""The master's side of the peers process: start it when the configuration
has [peers] and replicated tables, start a new one when a reload changes
[peers], replaces a replicated table's memory (a changed definition) or
changes the servers of a backend that sticks on one (their names are sent),
keep it otherwise (a reload that changes neither keeps the sessions),
restart it with back-off when it dies, stop it with the master.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Callable

from farm import model
from farm.peers.status import StatusBoard, render

RESTART_MIN, RESTART_MAX = 1.0, 30.0


def server_names(config: model.Config) -> dict:
    """table name -> {server id: server name} of the one backend whose
    stick rules use the table (server_id is the server's `id`): sent as
    HAProxy's server_key. Tables used by no backend or by several get none."""
    users: dict[str, set] = {}
    for b in config.backends:
        for rule in b.stick:
            users.setdefault(rule.table, set()).add(b.name)
    out = {}
    for table, names in users.items():
        if len(names) == 1:
            b = config.backend(next(iter(names)))
            out[table] = tuple(sorted((s.id, s.name) for s in b.servers))
    return out


def replicated(config: model.Config, sticks: dict) -> dict:
    """The stick tables of config that peers replicate: name -> StickTable."""
    if config.peers is None:
        return {}
    return {t.name: sticks[t.name] for t in config.tables if t.peers and t.name in sticks}


class PeersSupervisor:
    def __init__(self, fork: Callable, call_later: Callable, log):
        """fork(fn, title) runs fn() in a child and returns its pid;
        call_later(delay, fn) schedules on the master's loop."""
        self.fork = fork
        self.call_later = call_later
        self.log = log
        self.pid: int | None = None
        self.want: tuple | None = None           # (Peers, ((name, id(table)), ...))
        self.args: tuple | None = None
        self.backoff = RESTART_MIN
        self.stopped = False
        self.retired: set[int] = set()            # pids told to stop, not reaped yet
        self.board = None                         # StatusBoard shared with the process

    def configure(self, config: model.Config, sticks: dict, master_pid: int) -> None:
        """The configuration in service is config, its tables sticks."""
        tables = replicated(config, sticks)
        names = {t: n for t, n in server_names(config).items() if t in tables}
        want = (config.peers, tuple(sorted((n, id(t)) for n, t in tables.items())),
                tuple(sorted(names.items()))) if config.peers is not None and tables else None
        if want == self.want and (self.pid is not None or want is None):
            return
        self._retire()
        self.want = want
        self.args = (config.peers, tables, names, master_pid) if want is not None else None
        self.backoff = RESTART_MIN
        if want is not None:
            self._start()

    def _start(self) -> None:
        if self.args is None or self.stopped or self.pid is not None:
            return
        peers, tables, names, master_pid = self.args
        if self.board is None:
            self.board = StatusBoard()
        board = self.board

        def main() -> int:
            from farm import logs
            from farm.peers.process import PeersProcess
            log = logs.get_logger(proc="peers", pid=os.getpid())
            return PeersProcess(peers.local, peers.nodes, tables, log, master_pid, board,
                                names).run()

        self.pid = self.fork(main, f"farm: peers {peers.local}")
        self.log.info("peers_started", peers_pid=self.pid, node=peers.local,
                      tables=",".join(sorted(tables)))

    def _retire(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.retired.add(self.pid)
            except ProcessLookupError:
                pass
            self.pid = None

    def reaped(self, pid: int, code: int) -> bool:
        """A child exited: True when it was a peers process (restarted
        after a back-off when it was the current one)."""
        if pid in self.retired:
            self.retired.discard(pid)
            return True
        if pid != self.pid:
            return False
        self.pid = None
        if not self.stopped:
            self.log.error("peers_exited", peers_pid=pid, code=code, restart_in=self.backoff)
            self.call_later(self.backoff, self._start)
            self.backoff = min(RESTART_MAX, self.backoff * 2)
        return True

    def show(self) -> str:
        """`show peers` on the admin socket."""
        running = self.pid is not None and self.board is not None
        return render(self.board.read() if running else None, time.monotonic())

    def stop(self) -> None:
        self.stopped = True
        self._retire()
