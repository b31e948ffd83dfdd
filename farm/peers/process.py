"""The peers process: the sessions with the other nodes of [peers].

The master forks it (farm/peers/supervisor.py) after creating the stick
tables, so it shares their mappings with the workers. Why a process of
its own rather than the master's loop: a full resync encodes and decodes
every entry of every replicated table, and the change scan walks the
tables every SCAN_INTERVAL; done in the master, that work would delay
health checks, the admin socket and reloads, and a bug in a session
could take the master down. Here it can only take the peers process
down, and the master starts it again.

What it does, as HAProxy's peers do:
- listens on this node's address of [peers] and accepts only the other
  nodes, each from its configured address (the protocol has no
  authentication: see docs/configuration.md);
- connects to every node it has no session with (both sides try; an
  incoming session replaces an existing one, and the side that lost one
  waits a random 50 ms to 2 s before calling again), with back-off;
- asks one node for a full resync when it starts (RESYNC_REQ, then
  waits for "finished"; a "partial" one sends it to the next node; after
  RESYNC_WAIT without anyone to learn from it counts itself in sync);
- teaches every node it opens a session with: every live entry (so a
  node that was away gets what changed meanwhile), and answers a resync
  request with "finished" (or "partial" while it has not finished its own
  resync): everything was sent before that answer;
- every SCAN_INTERVAL pushes the entries that changed to every open
  session, acknowledges what it received, sends heartbeats when idle and
  closes a session silent for IDLE_TIMEOUT.
"""

from __future__ import annotations

import errno
import os
import random
import select
import signal
import socket
import time

from farm import tables as T
from farm.peers import codec as C
from farm.peers.session import Session
from farm.peers.sync import TableSync

SCAN_INTERVAL = 0.1           # at least; longer for big tables (run())
HEARTBEAT = 2.0               # HAProxy: 3 s, and it closes a session silent for 5 s
IDLE_TIMEOUT = 8.0
HANDSHAKE_TIMEOUT = 5.0
RESYNC_WAIT = 5.0             # HAProxy's resync timeout
RECONNECT_MIN, RECONNECT_MAX = 0.5, 5.0
MAX_OUT = 64 << 20            # a peer this far behind is dropped (it gets a resync when back)


class Link:
    """One other node: its name, address, and the session with it."""

    def __init__(self, name: str, address):
        self.name = name
        self.address = address
        self.session: Session | None = None
        self.sock: socket.socket | None = None
        self.connecting = False
        self.next_try = 0.0
        self.backoff = RECONNECT_MIN
        self.partial = False         # taught us only partly: do not ask it again
        self.learning = False        # we asked it for a resync and wait
        self.since = 0.0             # when the session opened (monotonic)
        self.sent = self.received = 0
        self.last_error = ""


class PeersProcess:
    def __init__(self, local: str, nodes, sticks: dict, log, master_pid: int = 0, board=None,
                 server_names: dict | None = None):
        """local: this node's name; nodes: farm.model.PeerNode of every node
        (this one included: where to listen); sticks: name -> StickTable of
        the tables to replicate; board: a farm.peers.status.StatusBoard
        for `show peers`; server_names: table -> ((server id, name), ...)
        of the backend whose stick rules use it (farm/peers/sync.py)."""
        self.local = local
        self.board = board
        self.published = 0.0
        self.log = log
        self.master_pid = master_pid
        me = next(n for n in nodes if n.name == local)
        self.listen_address = me.address
        self.links = {n.name: Link(n.name, n.address) for n in nodes if n.name != local}
        names = server_names or {}
        self.syncs = {name: TableSync(t, i + 1, names.get(name, ()))
                      for i, (name, t) in enumerate(sorted(sticks.items()))}
        self.defs = {name: s.definition() for name, s in self.syncs.items()}
        self.fds: dict[int, tuple] = {}      # fd -> ("listen", sock) | ("link", Link) | ("pending", sock, Session)
        self.ep = select.epoll()
        self.listener: socket.socket | None = None
        self.started = time.monotonic()
        self.synced = False
        self.stopping = False
        self.acks: dict[int, set] = {}       # id(session) -> remote TableDefs to acknowledge
        self.listen_retry = 0.0
        self.listen_error = 0

    # -- setup --------------------------------------------------------------------

    def try_listen(self, now: float) -> None:
        """Listen on this node's address; on failure, say so (once per
        reason: the previous peers process holding the port for a moment
        after a restart is not worth a line) and try again a second later.
        Sessions this node opens work meanwhile."""
        if now < self.listen_retry:
            return
        a = self.listen_address
        s = socket.socket(a.family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(a.sockaddr())
            s.listen(64)
        except OSError as e:
            s.close()
            self.listen_retry = now + 1.0
            quiet = e.errno == errno.EADDRINUSE and now - self.started < 10
            if not quiet and e.errno != self.listen_error:
                self.listen_error = e.errno
                self.log.error("peers_listen_failed", address=str(a), error=e.strerror or str(e),
                               message="other nodes cannot open sessions to this one; retrying")
            return
        s.setblocking(False)
        self.listener = s
        self.fds[s.fileno()] = ("listen", s)
        self.ep.register(s.fileno(), select.EPOLLIN)
        self.log.info("peers_listening", address=str(a), node=self.local,
                      tables=",".join(self.syncs))

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # what the tables hold now goes to each node when its session opens
        # (teach), not as changes: take the first snapshot before any
        for s in self.syncs.values():
            s.changed()
        next_scan = 0.0
        while not self.stopping:
            now = time.monotonic()
            if self.listener is None:
                self.try_listen(now)
            if now >= next_scan:
                try:
                    self.tick(now)
                except Exception:                # logged; the next tick tries again
                    self.log.exception("peers_tick_error")
                # a scan costs about 1 ms per 10,000 entries: with big tables,
                # scan less often rather than take the CPU (at most ~20 %)
                next_scan = now + max(SCAN_INTERVAL, 4 * (time.monotonic() - now))
            for fd, ev in self.ep.poll(max(0.0, next_scan - time.monotonic())):
                self.on_event(fd, ev)
            if self.master_pid and os.getppid() != self.master_pid:
                break
        for link in self.links.values():
            self.drop(link, "stopping", quiet=True)
        return 0

    # -- events -------------------------------------------------------------------

    def on_event(self, fd: int, ev: int) -> None:
        what = self.fds.get(fd)
        if what is None:
            return
        if what[0] == "listen":
            self.accept(what[1])
        elif what[0] == "link":
            try:
                self.on_link(what[1], ev)
            except Exception as e:             # a bug must cost one session, not all
                self.log.exception("peer_internal_error", peer=what[1].name)
                self.drop(what[1], f"internal error: {type(e).__name__}: {e}")

    def accept(self, lsock: socket.socket) -> None:
        while True:
            try:
                sock, addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.log.warning("peer_accept_failed", error=e.strerror or str(e))
                return
            src = addr[0]
            if not any(_same_ip(src, l.address.host) for l in self.links.values()):
                self.log.warning("peer_refused", source=src,
                                 reason="not the address of a configured peer node")
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = Session(self.local, time.monotonic(),
                              check_caller=lambda name, src=src: self.check_caller(name, src))
            pending = Link(f"<incoming from {src}>", None)
            pending.session, pending.sock = session, sock
            self.fds[sock.fileno()] = ("link", pending)
            self.ep.register(sock.fileno(), select.EPOLLIN)

    def check_caller(self, name: str, src: str) -> int:
        link = self.links.get(name)
        if link is None:
            return C.ST_ERR_PEER
        if not _same_ip(src, link.address.host):
            self.log.warning("peer_refused", peer=name, source=src,
                             reason=f"{name} connects from {link.address.host}")
            return C.ST_ERR_PEER
        return C.ST_OK

    def on_link(self, link: Link, ev: int) -> None:
        s = link.session
        if s is None or link.sock is None:
            return
        if link.connecting:
            err = link.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.drop(link, f"connect: {os.strerror(err)}", quiet=True)
                return
            link.connecting = False
        if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
            try:
                data = link.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError as e:
                self.drop(link, f"read: {e.strerror or e}")
                return
            if data == b"":
                self.drop(link, "closed by the peer" if s.is_open else "closed during the handshake")
                return
            if data:
                for event in s.feed(data, time.monotonic()):
                    link = self.on_session_event(link, event)
        self.flush(link)

    def on_session_event(self, link: Link, event: tuple) -> Link:
        kind = event[0]
        s = link.session
        if kind == "open":
            if link.address is None:                  # incoming: it is that node's session now
                real = self.links[event[1]]
                if real.session is not None:
                    self.drop(real, "replaced by the session the peer opened", quiet=True)
                    real.next_try = time.monotonic() + 0.05 + random.random() * 2
                real.session, real.sock = s, link.sock
                self.fds[link.sock.fileno()] = ("link", real)
                link = real
            link.backoff = RECONNECT_MIN
            link.since = time.monotonic()
            self.log.info("peer_session_open", peer=link.name,
                          direction="out" if s.outgoing else "in")
            self.teach(link, unasked=True)
        elif kind == "table":
            d = event[1]
            sync = self.syncs.get(d.name)
            d.refused = sync.matches(d) if sync is not None else "not replicated here"
            if sync is not None and d.refused:
                self.log.warning("peer_table_ignored", peer=link.name, table=d.name, reason=d.refused)
        elif kind == "update":
            _, d, u = event
            if d.refused == "":                      # checked at its definition: it matches
                self.syncs[d.name].apply(d, u, T.now_ms())
                link.received += 1
                self.acks.setdefault(id(s), set()).add(d.table_id)
        elif kind == "resync_request":
            # everything was taught when the session opened and every change
            # since was pushed: the peer is up to date once it reads this
            s.send_control(C.CTRL_RESYNC_FINISHED if self.synced else C.CTRL_RESYNC_PARTIAL)
            self.log.info("peer_resync_request", peer=link.name)
        elif kind == "resync_done":
            partial = event[1]
            if link.learning:
                link.learning = False
                if partial:
                    link.partial = True
                else:
                    self.synced = True
                self.log.info("peer_resync_done", peer=link.name, partial=partial)
        elif kind == "closed":
            pass                                       # flushed then dropped by flush()
        return link

    def teach(self, link: Link, unasked: bool) -> None:
        """Every live entry of every replicated table to link's session
        (then, when asked, "finished" or "partial"). Done on every session
        that opens: a node that was away gets what changed meanwhile; a new
        one (empty tables) asks for a resync and gets "finished" at once."""
        s = link.session
        now = T.now_ms()
        count = 0
        for name, sync in self.syncs.items():
            d = self.defs[name]
            for e in sync.live_entries(now):
                u = sync.update(e, now)
                if u is not None:
                    s.send_update(d, u)
                    count += 1
        link.sent += count
        if not unasked:
            s.send_control(C.CTRL_RESYNC_FINISHED if self.synced else C.CTRL_RESYNC_PARTIAL)
        self.log.info("peer_teach", peer=link.name, entries=count, asked=not unasked)

    # -- output and closing ---------------------------------------------------------

    def flush(self, link: Link) -> None:
        s, sock = link.session, link.sock
        if s is None or sock is None:
            return
        while s.out and not link.connecting:
            try:
                n = sock.send(s.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self.drop(link, f"write: {e.strerror or e}")
                return
            del s.out[:n]
            s.last_tx = time.monotonic()
        if s.state == "closed" and (not s.out or link.connecting):
            self.drop(link, s.reason)
            return
        if len(s.out) > MAX_OUT:
            self.drop(link, "the peer does not read fast enough")
            return
        want = select.EPOLLIN | (select.EPOLLOUT if s.out or link.connecting else 0)
        try:
            self.ep.modify(sock.fileno(), want)
        except OSError:
            pass

    def drop(self, link: Link, reason: str, quiet: bool = False) -> None:
        s, sock = link.session, link.sock
        if sock is not None:
            self.fds.pop(sock.fileno(), None)
            try:
                self.ep.unregister(sock.fileno())
            except (OSError, ValueError):
                pass
            if s is not None and s.out:
                try:
                    sock.send(s.out)                   # a last status or error, if it fits
                except OSError:
                    pass
            sock.close()
        was_open = s is not None and s.is_open
        if link.address is not None and reason != "stopping":
            link.last_error = reason
        link.since = 0.0
        if s is not None:
            self.acks.pop(id(s), None)
        link.session = link.sock = None
        link.connecting = False
        if link.learning:
            link.learning = False
        if link.address is not None and link.next_try <= time.monotonic():
            link.next_try = time.monotonic() + link.backoff * (0.5 + random.random() / 2)
            link.backoff = min(RECONNECT_MAX, link.backoff * 2)
        if not quiet and (was_open or "refused" in reason or "error" in reason
                          or "limit" in reason or "handshake" in reason):
            self.log.warning("peer_session_closed", peer=link.name, reason=reason)

    # -- every SCAN_INTERVAL ----------------------------------------------------------

    def tick(self, now: float) -> None:
        open_links = [l for l in self.links.values() if l.session is not None and l.session.is_open]
        # pushes
        ms = T.now_ms()
        for name, sync in self.syncs.items():
            changed = sync.changed()
            if not changed or not open_links:
                continue
            d = self.defs[name]
            for e in changed:
                u = sync.update(e, ms)
                if u is None:
                    continue
                for l in open_links:
                    l.session.send_update(d, u)
                    l.sent += 1
        # acks, heartbeats, timeouts
        for link in list(self.links.values()):
            s = link.session
            if s is None:
                continue
            if s.is_open:
                for tid in self.acks.pop(id(s), ()):
                    d = s.remote_tables.get(tid)
                    if d is not None:
                        s.send_ack(d)
                if now - s.last_tx >= HEARTBEAT and not s.out:
                    s.send_control(C.CTRL_HEARTBEAT)
                if now - s.last_rx > IDLE_TIMEOUT:
                    self.drop(link, f"nothing received for {IDLE_TIMEOUT:g} s")
                    continue
            elif now - s.last_rx > HANDSHAKE_TIMEOUT:
                self.drop(link, "handshake timeout")
                continue
            self.flush(link)
        for fd, what in list(self.fds.items()):       # incoming sessions before their hello
            if what[0] == "link" and what[1].address is None:
                s = what[1].session
                if s is not None and now - s.last_rx > HANDSHAKE_TIMEOUT:
                    self.drop(what[1], "handshake timeout")
        # resync
        if not self.synced:
            if now - self.started > RESYNC_WAIT and not any(l.learning for l in self.links.values()):
                self.synced = True
            elif not any(l.learning for l in self.links.values()):
                for l in open_links:
                    if not l.partial:
                        l.learning = True
                        l.session.send_control(C.CTRL_RESYNC_REQ)
                        self.flush(l)
                        break
        # connections
        for link in self.links.values():
            if link.session is None and now >= link.next_try:
                self.connect(link, now)
        if self.board is not None and now - self.published >= 1.0:
            self.publish(now)

    def publish(self, now: float) -> None:
        """The state of every session for `show peers` (farm/peers/status.py)."""
        self.published = now
        peers = []
        for l in self.links.values():
            s = l.session
            status = ("NONE" if s is None else "CONN" if l.connecting
                      else "ESTA" if s.is_open else "HSHK")
            peers.append({"name": l.name, "addr": str(l.address), "status": status,
                          "dir": None if s is None else "out" if s.outgoing else "in",
                          "since": l.since or None, "last_rx": s.last_rx if s is not None else None,
                          "sent": l.sent, "received": l.received, "last_error": l.last_error})
        self.board.write({"local": self.local, "listen": str(self.listen_address),
                          "listening": self.listener is not None, "synced": self.synced,
                          "at": now, "peers": peers})

    def connect(self, link: Link, now: float) -> None:
        a = link.address
        sock = socket.socket(a.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.connect(a.sockaddr())
        except BlockingIOError:
            pass
        except OSError as e:
            sock.close()
            link.next_try = now + link.backoff
            link.backoff = min(RECONNECT_MAX, link.backoff * 2)
            self.log.debug("peer_connect_failed", peer=link.name, error=e.strerror or str(e))
            return
        link.sock = sock
        link.connecting = True
        link.session = Session(self.local, now, remote=link.name, pid=os.getpid())
        self.fds[sock.fileno()] = ("link", link)
        self.ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLOUT)


def _same_ip(a: str, b: str) -> bool:
    """Two textual addresses are the same host (IPv4-mapped IPv6 counts as IPv4)."""
    import ipaddress
    try:
        x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return a == b
    x = getattr(x, "ipv4_mapped", None) or x
    y = getattr(y, "ipv4_mapped", None) or y
    return x == y
