"""Per-worker runtime state built from the config: frontends, backends,
servers, the shared I/O buffer and the splice pipe pool.

Everything here belongs to one worker process and is touched only by its
loop. Limits that HAProxy applies per process (maxconn of a frontend or a
server) are divided among the workers, since each worker is a process that
cannot see the others' connections without locks: a server with maxconn 100
and 4 workers gets at most 25 connections from each.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections import deque

from farm import model
from farm.logs import AccessLog
from workers.lb.pool import ServerPool
from workers.loop import Loop

BUFFER_SIZE = 65536
PIPE_SIZE = 262144          # bytes a splice pipe holds (fcntl F_SETPIPE_SZ)
MAX_IDLE_PIPES = 64         # pipes kept for reuse; more are closed


def per_worker(limit: int, workers: int) -> int:
    """A per-process limit split across workers (0 = unlimited stays 0)."""
    if limit <= 0:
        return 0
    return max(1, -(-limit // workers))


class PipePool:
    """Reusable pipe pairs for os.splice. Only empty pipes come back."""

    def __init__(self) -> None:
        self.idle: list[tuple[int, int]] = []
        self.used = 0

    def get(self) -> tuple[int, int]:
        self.used += 1
        if self.idle:
            return self.idle.pop()
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # above pipe-max-size for this user: keep the default size
        return r, w

    def put(self, pair: tuple[int, int], empty: bool) -> None:
        """Give a pair back; a pipe still holding bytes is closed instead."""
        self.used -= 1
        if empty and len(self.idle) < MAX_IDLE_PIPES:
            self.idle.append(pair)
        else:
            os.close(pair[0])
            os.close(pair[1])


class ServerRuntime:
    """A server as one worker sees it: this worker's connection count."""

    __slots__ = ("cfg", "index", "backend", "conns", "total", "name", "family", "sockaddr")

    def __init__(self, cfg: model.Server, index: int, backend: "BackendRuntime"):
        self.cfg = cfg
        self.index = index
        self.backend = backend
        self.name = cfg.name
        self.conns = 0
        self.total = 0
        self.family, self.sockaddr = resolve(cfg.address)


def resolve(addr: model.Address) -> tuple[int, tuple]:
    """Resolve a server address once, at worker start (like HAProxy does at
    startup): connect() on the hot path must never wait for DNS."""
    infos = socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM)
    preferred = [i for i in infos if i[0] == addr.family] or infos
    family, _, _, _, sockaddr = preferred[0]
    return family, sockaddr


class BackendRuntime:
    """A backend: its servers, the balance pool, and the queue of sessions
    waiting for a server slot (server maxconn reached)."""

    def __init__(self, cfg: model.Backend, workers: int):
        self.cfg = cfg
        self.name = cfg.name
        self.pool = ServerPool(cfg)
        self.servers = [ServerRuntime(s, i, self) for i, s in enumerate(cfg.servers)]
        self.conns = 0
        self.queue: deque = deque()
        self.needs_source_key = cfg.balance.algorithm == "source"

    def acquire(self, index: int) -> ServerRuntime:
        srv = self.servers[index]
        srv.conns += 1
        srv.total += 1
        self.pool.acquired(index)
        return srv

    def release(self, srv: ServerRuntime) -> None:
        """A connection to srv ended: free the slot and wake a queued session."""
        srv.conns -= 1
        self.pool.released(srv.index)
        while self.queue:
            waiter = self.queue.popleft()
            if waiter.dequeued():
                break


class FrontendRuntime:
    """A frontend: this worker's listening sockets and connection count."""

    def __init__(self, cfg: model.Frontend, listeners: list[socket.socket], workers: int, global_maxconn: int):
        self.cfg = cfg
        self.name = cfg.name
        self.listeners = listeners
        self.conns = 0
        self.total = 0
        limit = cfg.maxconn or global_maxconn
        self.maxconn = per_worker(limit, workers)
        self.accepting = False
        self.paused = False        # by maxconn or fd exhaustion
        self.default_backend: BackendRuntime | None = None


class WorkerContext:
    """Everything one worker's sessions share."""

    def __init__(self, loop: Loop, config: model.Config, slot: int, generation: int):
        self.loop = loop
        self.config = config
        self.slot = slot
        self.generation = generation
        self.buf = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.buf)
        self.pipes = PipePool()
        self.sessions: set = set()
        self.actconn = 0
        self.draining = False
        self.access = AccessLog(config.log.access)
        self.log_format = config.log.format
        workers = config.global_.workers
        self.maxconn = per_worker(config.global_.maxconn, workers)
        self.backends = {b.name: BackendRuntime(b, workers) for b in config.backends}
        self.frontends: list[FrontendRuntime] = []
        loop.at_end_of_turn(self.access.flush)

    def session_ended(self, session) -> None:
        """Bookkeeping when any session ends; lets the worker resume accepting
        on a frontend that maxconn had paused, or exit when draining."""
        self.sessions.discard(session)
        self.actconn -= 1
        self.on_session_end(session.fe)

    def on_session_end(self, fe) -> None:
        """Replaced by the worker; a no-op for contexts built in tests."""

    def out_of_fds(self) -> None:
        """Replaced by the worker: pause accepting for a moment."""

