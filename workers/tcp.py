"""TCP mode (layer 4): one session per accepted client connection.

A session picks a server, connects without blocking (retrying elsewhere on
failure), then relays both directions until both have ended:

- small exchanges: recv_into the worker's shared buffer, send at once; only
  what the peer could not take is copied into the session (`pending`), and
  reading that side stops until it has drained (backpressure);
- bulk flows: once a direction has moved SPLICE_AFTER bytes, it switches to
  os.splice through a pooled pipe pair, so the bytes never enter Python;
- half-close: EOF from one side becomes shutdown(SHUT_WR) on the other once
  everything read before it has been delivered;
- timeouts: connect, queue, client and server inactivity, or tunnel when set
  (HAProxy: once established, timeout tunnel supersedes client and server).
- TLS on either side (a tls bind: the client's handshake first, within
  timeout client; a tls server: its handshake after the connect, within
  timeout connect): that side is a TlsEnd, with a plain socket's calls,
  and the relay never splices through it (the bytes are encrypted).

One access-log line (tcplog or JSON) is written when the session ends.
"""

from __future__ import annotations

import _socket
import errno
import os
import socket
import time

import ssl

from farm.logs import connection_error_line, json_line, tcplog_line
from workers import counting, ppsend
from workers.loop import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, is_fd_exhaustion
from workers.runtime import Layer4Txn
from workers.transport import SSL_TIMEOUT, HandshakeError

# Bytes a direction moves by recv/send before switching to splice: below
# it, recv/send costs less per call; above it, splice saves copying through
# Python (HAProxy's rule). FARM_SPLICE_AFTER overrides it for bench/ only.
SPLICE_AFTER = int(os.environ.get("FARM_SPLICE_AFTER", 65536))
SPLICE_CHUNK = 262144       # bytes asked of one splice() call
SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
INF = float("inf")

# Session states. The first four are the letters of HAProxy's termination
# state for that phase; TURNAROUND (waiting to connect again to the server
# that just refused, BackendRuntime.retry_wait) belongs to the connection phase
# and ends with explicit terms (SC, sC, or the caller's).
QUEUED, CONNECTING, DATA, CLOSED, TURNAROUND = "Q", "C", "D", "-", "T"
HANDSHAKE = "H"         # a tls bind: the client's TLS handshake, before anything else


class TlsEnd:
    """One TLS side of the relay (a TLS transport whose handshake is done,
    workers/transport.py) with the calls the relay makes on a plain
    socket: recv_into and send raise BlockingIOError while OpenSSL waits
    for the socket, recv_into returns 0 at the peer's end (close_notify or
    a ragged EOF), shutdown(SHUT_WR) sends close_notify then the FIN. A
    record is never left half read: recv_into is given a buffer larger
    than a record (16 KiB), so what is not read yet is still in the
    kernel, where epoll sees it. The relay offers the same bytes again
    after a BlockingIOError from send, as OpenSSL wants."""

    __slots__ = ("t", "s")

    def __init__(self, t):
        self.t = t
        self.s = t._ssl           # ssl's C object: read/write past ssl.SSLSocket

    def fileno(self) -> int:
        return self.t.fd

    def recv_into(self, buf) -> int:
        try:
            return self.s.read(len(buf), buf)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return 0

    def send(self, data) -> int:
        try:
            return self.s.write(data)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError from None

    def shutdown(self, how: int) -> None:
        try:
            self.s.shutdown()
        except (OSError, ValueError):
            pass        # ours is sent (or the peer is gone); theirs is not awaited
        _socket.socket.shutdown(self.t.sock, how)

    def setsockopt(self, *args) -> None:
        self.t.sock.setsockopt(*args)

    def close(self) -> None:
        self.t.close()


class Direction:
    """One way of the relay: bytes read from src, written to dst."""

    __slots__ = ("src", "dst", "pending", "eof", "shut", "pipe", "piped", "moved")

    def __init__(self, src: socket.socket | None, dst: socket.socket | None):
        self.src = src
        self.dst = dst
        self.pending = b""        # read but not yet accepted by dst
        self.eof = False          # src has sent FIN
        self.shut = False         # dst has been shut down for writing
        self.pipe: tuple[int, int] | None = None
        self.piped = 0            # bytes sitting in the pipe
        self.moved = 0            # bytes relayed so far

    @property
    def busy(self) -> bool:
        return bool(self.pending) or self.piped > 0


class PeerError(Exception):
    """A socket error on one side; side is "C" (client) or "S" (server)."""

    def __init__(self, side: str):
        self.side = side


class TcpSession:
    """A layer-4 session: client socket <-> one server socket."""

    def __init__(self, ctx, fe, csock: socket.socket, caddr: tuple, ctls=None):
        """ctls: the client's TlsTransport on a tls bind (csock is then
        its ssl.SSLSocket, handshake not done yet)."""
        self.ctx = ctx
        self.loop = ctx.loop
        self.fe = fe
        self.be = fe.default_backend if fe.routes_by_l4 is None else fe.routes_by_l4(csock, caddr)
        self.csock = csock
        self.cfd = csock.fileno()
        self.caddr = caddr
        self.ssock: socket.socket | None = None
        self.sfd = -1
        self.srv = None
        self.accept_time = time.time()
        self.t0 = self.loop.now
        self.t_queue = -1.0
        self.t_connect = -1.0
        self.retries = 0
        self.redispatched = False
        self.tried: set[int] = set()
        self.retry_to: int | None = None     # the server of a same-server retry
        self.last_srv = None                  # the server last tried (named in the log)
        self.state = CONNECTING
        self.term = "--"
        self.c2s = Direction(csock, None)
        self.s2c = Direction(None, csock)
        bt = self.be.cfg.timeouts
        ft = fe.cfg.timeouts
        self.to_client = ft.client or INF
        self.to_server = bt.server or INF
        self.to_tunnel = bt.tunnel or ft.tunnel
        self.last_c = self.last_s = self.t0   # last activity on each side
        self.t_connected = -1.0
        self.timer = self.loop.timer(self.on_timeout)
        self.key = caddr[0].encode() if self.be.needs_source_key else None
        self.ctls = ctls
        self.stls = None           # the server's ServerTlsTransport (a tls server)
        self.splice_ok = ctls is None
        self.silent = False        # a failed client handshake: no tcplog line
        self.stuck = False         # a stick match chose the server
        self.persist = None        # the backend's stick rules, when it has stores to do
        self.stick_keys = None     # [(table, key)] to name the server once connected
        if self.be.stick is not None:
            self.stick_rules(self.be.stick, csock, caddr)
        ctx.sessions.add(self)
        self.be.g.take()
        if ctls is not None:
            self.state = HANDSHAKE
            self.loop.add(self.cfd, EPOLLIN, self.on_client_handshake)
            self.loop.set_timer(self.timer, self.t0 + self.to_client)
            self.on_client_handshake(EPOLLIN)
            return
        self.connect()

    def stick_rules(self, persist, csock, caddr: tuple) -> None:
        """The backend's stick match rules pick the server (HAProxy's
        stick on src in mode tcp); its store-request keys wait for the
        connection to be established (connected)."""
        pp = getattr(caddr, "proxy", None)     # a PROXY header's destination wins
        if pp is not None and pp.dst is not None:
            dst = (pp.dst, pp.dst_port)
        else:
            try:
                dst = csock.getsockname()
            except OSError:
                dst = ("", 0)
        idx, keys = persist.on_connection(Layer4Txn(caddr, dst))
        if idx is not None:
            self.retry_to = idx
            self.stuck = True
        if keys:
            self.persist = persist
            self.stick_keys = keys

    # -- TLS -------------------------------------------------------------------

    def on_client_handshake(self, events: int) -> None:
        """The client's TLS handshake (a tls bind); once done, connect."""
        t = self.ctls
        try:
            done = t.handshake()
        except HandshakeError as e:
            self.client_handshake_failed(str(e))
            return
        if not done:
            self.loop.modify(self.cfd, EPOLLOUT if t.wants_write else EPOLLIN)
            return
        self.loop.remove(self.cfd)          # added again, for the relay, once connected
        self.csock = TlsEnd(t)
        self.c2s.src = self.s2c.dst = self.csock
        self.state = CONNECTING
        self.connect()

    def client_handshake_failed(self, message: str) -> None:
        """Logged as HAProxy does ("<frontend>/<bind>: <message>"), without
        a tcplog line: no session began."""
        ctx = self.ctx
        if ctx.access.enabled:
            ctx.access.write(connection_error_line(ctx.log_format, self.caddr[0], self.caddr[1],
                                                   self.accept_time, self.fe.name,
                                                   self.ctls.bind_name, message))
        self.silent = True
        self.close("CR")

    def start_server_tls(self) -> None:
        """The connect to a tls server completed: its handshake, still
        within timeout connect (the state stays CONNECTING)."""
        tls = self.srv.tls
        try:
            self.stls = tls.wrap(self.ssock, tls.fixed_name)
        except (OSError, ValueError) as e:
            self.server_handshake_failed(str(e))
            return
        self.ssock = self.stls.sock
        self.splice_ok = False
        self.loop.handlers[self.sfd] = self.on_server_handshake
        self.on_server_handshake(EPOLLOUT)

    def on_server_handshake(self, events: int) -> None:
        t = self.stls
        try:
            done = t.handshake()
        except HandshakeError as e:
            self.server_handshake_failed(str(e))
            return
        if not done:
            self.loop.modify(self.sfd, EPOLLOUT if t.wants_write else EPOLLIN)
            return
        self.srv.tls.keep_session(t)
        self.ssock = TlsEnd(t)
        self.connected()

    def server_handshake_failed(self, why: str) -> None:
        self.srv.tls.failed(self.ctx, self.caddr[0], self.caddr[1], self.accept_time, self.srv, why)
        self.connect_failed()

    # -- connecting ----------------------------------------------------------

    def connect(self) -> None:
        """Pick a server and start a non-blocking connect; queue or fail."""
        be = self.be
        if be.must_wait():
            self.enqueue()     # behind the sessions already waiting
            return
        srv = self.take_server()
        if srv is None:
            if be.pool.any_up():
                self.enqueue()
            else:
                self.close("SC")
            return
        self.use_server(srv)

    def take_server(self, from_queue: bool = False):
        """A server with one of its slots taken, or None (all full); a retry
        names the server that failed (counting.server_taken)."""
        previous = self.last_srv if self.retries else None
        srv = self.be.take_server(self.key, self.tried, self.retry_to, from_queue, previous)
        if srv is not None:
            self.retry_to = None
        return srv

    def use_server(self, srv) -> None:
        """Connect to srv, whose slot is ours."""
        be = self.be
        if self.tried and srv.index not in self.tried:
            self.redispatched = True
        self.srv = self.last_srv = srv
        self.t_connect = self.loop.now
        addr = srv.sockaddr
        try:
            sock = socket.socket(srv.family, socket.SOCK_STREAM)
        except OSError as e:
            # Out of descriptors: fail this session (R = resource) and make
            # the worker pause accepting rather than take more it cannot serve.
            self.be.release(srv)
            self.srv = None
            if is_fd_exhaustion(e):
                self.ctx.out_of_fds()
            self.close("RC")
            return
        sock.setblocking(False)
        self.ssock = sock
        self.sfd = sock.fileno()
        err = sock.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS):
            self.connect_failed()
            return
        self.state = CONNECTING
        self.loop.add(self.sfd, EPOLLOUT, self.on_connect_event)
        self.loop.set_timer(self.timer, self.loop.now + (be.cfg.timeouts.connect or INF))

    def enqueue(self) -> None:
        self.state = QUEUED
        self.t_queue = self.loop.now
        self.loop.set_timer(self.timer, self.loop.now + (self.be.cfg.timeouts.queue or INF))
        self.be.enqueue(self)     # may serve it at once (dequeued)

    def dequeued(self) -> bool:
        """The backend has a slot for the oldest waiter: take it. False if
        there was none after all (it keeps waiting); True once served."""
        if self.state != QUEUED:
            return True
        srv = self.take_server(from_queue=True)
        if srv is None:
            return False
        self.use_server(srv)
        return True

    def on_connect_event(self, events: int) -> None:
        err = self.ssock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err or not self.send_proxy_header():
            self.connect_failed()
        elif self.srv.tls is not None:
            self.start_server_tls()
        else:
            self.connected()

    def send_proxy_header(self) -> bool:
        """Just connected: a server with send_proxy gets the PROXY header
        first (workers/ppsend.py), written at once into the empty send
        buffer; False if it could not be, which fails the connection."""
        cfg = self.srv.cfg
        if cfg.send_proxy is None:
            return True
        caddr = self.caddr
        header = ppsend.client_header(cfg, caddr[0], caddr[1], self.csock,
                                      getattr(caddr, "proxy", None))
        try:
            # no Nagle before the header: the client's first bytes must not
            # wait for the header's ACK
            self.ssock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return os.write(self.sfd, header) == len(header)
        except OSError:
            return False

    def connect_failed(self, timeout: bool = False) -> None:
        """Give the server slot back, then retry or give up (SC / sC)."""
        be = self.be
        idx = self.srv.index
        counting.connect_attempt(be, self.srv)
        self.drop_server_socket()
        self.tried.add(idx)
        be.release(self.srv)
        self.srv = None
        if self.retries >= be.cfg.retries:
            self.close("sC" if timeout else "SC")
            return
        self.retries += 1
        wait = be.retry_wait(idx, self.retries, self.stuck, timeout)
        if wait is not None:
            self.retry_to = idx                # the same server again
        if not wait:
            self.connect()
            return
        now = self.loop.now
        if self.t_queue < 0:
            self.t_queue = now     # waited time, as HAProxy logs it: in Tw
        self.state = TURNAROUND
        self.loop.set_timer(self.timer, now + wait)

    def drop_server_socket(self) -> None:
        if self.stls is not None:
            if self.stls.established and not self.stls.session_taken:
                self.srv.tls.keep_session(self.stls)   # TLS 1.3: the ticket came with the data
            self.stls = None
        if self.ssock is not None:
            self.loop.remove(self.sfd)
            self.ssock.close()
            self.ssock = None
            self.sfd = -1

    def connected(self) -> None:
        counting.connect_attempt(self.be, self.srv)
        if self.stick_keys is not None:
            self.persist.store(self.stick_keys, self.srv)   # stick store-request: the server reached
            self.stick_keys = None
        loop = self.loop
        self.state = DATA
        self.t_connected = loop.now
        ssock = self.ssock
        ssock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c2s.dst = ssock
        self.s2c.src = ssock
        loop.handlers[self.sfd] = self.on_server
        loop.modify(self.sfd, EPOLLIN)
        loop.add(self.cfd, EPOLLIN, self.on_client)
        self.last_c = self.last_s = loop.now
        self.rearm()

    # -- relaying --------------------------------------------------------------

    def on_client(self, events: int) -> None:
        self.on_socket(events, self.c2s, self.s2c)

    def on_server(self, events: int) -> None:
        self.on_socket(events, self.s2c, self.c2s)
        stls = self.stls
        if stls is not None and not stls.session_taken:
            # TLS 1.3: the server's ticket comes after the handshake, before
            # its data: kept as soon as it is there, for the next session
            self.srv.tls.keep_session(stls, self.s2c.moved > 0)

    def on_socket(self, events: int, reading: Direction, writing: Direction) -> None:
        """Events on one socket: it is the source of `reading` and the
        destination of `writing`."""
        try:
            if events & EPOLLOUT and writing.busy:
                self.flush(writing)
            if events & (EPOLLIN | EPOLLHUP | EPOLLERR) and not (reading.eof or reading.busy):
                self.pump(reading)
        except PeerError as e:
            self.close(e.side + "D")
            return
        self.after_io()

    def pump(self, d: Direction) -> None:
        """Read once from d.src and forward what was read to d.dst."""
        src_side, dst_side = ("C", "S") if d is self.c2s else ("S", "C")
        if d.pipe is not None:
            try:
                n = os.splice(d.src.fileno(), d.pipe[1], SPLICE_CHUNK, flags=SPLICE_FLAGS)
            except BlockingIOError:
                return
            except OSError:
                raise PeerError(src_side)
            if n == 0:
                self.got_eof(d)
                return
            d.piped += n
            d.moved += n
            self.touch(src_side)
            self.drain_pipe(d, dst_side)
            return
        ctx = self.ctx
        try:
            n = d.src.recv_into(ctx.buf)
        except BlockingIOError:
            return
        except OSError:
            raise PeerError(src_side)
        if n == 0:
            self.got_eof(d)
            return
        d.moved += n
        self.touch(src_side)
        try:
            sent = d.dst.send(ctx.view[:n])
        except BlockingIOError:
            sent = 0
        except OSError:
            raise PeerError(dst_side)
        if sent < n:
            d.pending = bytes(ctx.view[sent:n])
        else:
            self.touch(dst_side)
            if d.moved >= SPLICE_AFTER and self.splice_ok:
                d.pipe = ctx.pipes.get()    # a bulk flow: splice from now on

    def drain_pipe(self, d: Direction, dst_side: str) -> None:
        try:
            n = os.splice(d.pipe[0], d.dst.fileno(), d.piped, flags=SPLICE_FLAGS)
        except BlockingIOError:
            return
        except OSError:
            raise PeerError(dst_side)
        d.piped -= n
        self.touch(dst_side)

    def flush(self, d: Direction) -> None:
        """dst became writable: push what is pending, then finish a half-close."""
        dst_side = "S" if d is self.c2s else "C"
        if d.pending:
            try:
                sent = d.dst.send(d.pending)
            except BlockingIOError:
                return
            except OSError:
                raise PeerError(dst_side)
            d.pending = d.pending[sent:]
            self.touch(dst_side)
            if not d.pending and d.moved >= SPLICE_AFTER and d.pipe is None and self.splice_ok:
                d.pipe = self.ctx.pipes.get()
        elif d.piped:
            self.drain_pipe(d, dst_side)
        if d.eof and not d.busy:
            self.shut(d)

    def got_eof(self, d: Direction) -> None:
        d.eof = True
        if not d.busy:
            self.shut(d)

    def shut(self, d: Direction) -> None:
        """Forward a half-close: nothing more will come from d.src."""
        if not d.shut:
            d.shut = True
            try:
                d.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the peer is already gone; the other direction will tell

    def touch(self, side: str) -> None:
        if side == "C":
            self.last_c = self.loop.now
        else:
            self.last_s = self.loop.now

    def after_io(self) -> None:
        """Recompute what each socket waits for; end the session when done."""
        c2s, s2c = self.c2s, self.s2c
        if c2s.shut and s2c.shut:
            self.close("--")
            return
        cmask = (0 if (c2s.eof or c2s.busy) else EPOLLIN) | (EPOLLOUT if s2c.busy else 0)
        smask = (0 if (s2c.eof or s2c.busy) else EPOLLIN) | (EPOLLOUT if c2s.busy else 0)
        self.loop.watch(self.cfd, cmask, self.on_client)
        self.loop.watch(self.sfd, smask, self.on_server)
        self.rearm()

    def rearm(self) -> None:
        if self.to_tunnel:
            when = max(self.last_c, self.last_s) + self.to_tunnel
        else:
            when = min(self.last_c + self.to_client, self.last_s + self.to_server)
        if when != INF:
            self.loop.set_timer(self.timer, when)

    def on_timeout(self) -> None:
        now = self.loop.now
        if self.state == HANDSHAKE:
            self.client_handshake_failed(SSL_TIMEOUT)
        elif self.state == CONNECTING:
            self.connect_failed(timeout=True)
        elif self.state == TURNAROUND:
            self.connect()
        elif self.state == QUEUED:
            self.close("sQ")
        elif self.state == DATA:
            if self.to_tunnel:
                if max(self.last_c, self.last_s) + self.to_tunnel <= now:
                    self.close("cD")
                else:
                    self.rearm()
            elif self.last_c + self.to_client <= now:
                self.close("cD")
            elif self.last_s + self.to_server <= now:
                self.close("sD")
            else:
                self.rearm()

    # -- ending ----------------------------------------------------------------

    def kill(self, term: str = "KD") -> None:
        """End the session now (hard stop, admin shutdown)."""
        if self.state != CLOSED:
            self.close(term)

    def close(self, term: str) -> None:
        if self.state == CLOSED:
            return
        if self.state == QUEUED:
            self.be.leave_queue(self)
        self.state = CLOSED
        self.term = term
        self.timer.release()
        loop = self.loop
        loop.remove(self.cfd)
        self.csock.close()
        self.drop_server_socket()
        for d in (self.c2s, self.s2c):
            if d.pipe is not None:
                self.ctx.pipes.put(d.pipe, d.piped == 0)
                d.pipe = None
        if self.srv is not None:
            self.be.release(self.srv)
        self.be.g.give()
        self.ctx.session_ended(self)
        if self.silent:
            return
        counting.tcp_session(self)
        if self.ctx.access.enabled:
            self.log()

    def log(self) -> None:
        now = self.loop.now
        ms = lambda t: int(t * 1000)  # noqa: E731
        tw = ms((self.t_connect if self.t_connect >= 0 else now) - self.t_queue) if self.t_queue >= 0 else 0
        tc = ms(self.t_connected - self.t_connect) if self.t_connected >= 0 else -1
        srv = self.srv
        named = self.last_srv     # a failed connection names the server, as HAProxy's log does
        rec = {
            "client_ip": self.caddr[0], "client_port": self.caddr[1],
            "accept_time": self.accept_time,
            "frontend": self.fe.name + "~" if self.ctls is not None else self.fe.name,   # %ft
            "backend": self.be.name,
            "server": named.name if named is not None else "<NOSRV>",
            "tw": tw, "tc": tc, "tt": ms(now - self.t0),
            "bytes_read": self.s2c.moved, "bytes_uploaded": self.c2s.moved,
            "termination_state": self.term,
            "actconn": self.ctx.actconn + 1, "feconn": self.fe.g.value() + 1,
            "beconn": self.be.conns + 1, "srv_conn": (srv.conns + 1) if srv is not None else 0,
            "retries": self.retries, "redispatched": self.redispatched,
            "srv_queue": 0, "backend_queue": self.be.queued(),
        }
        fmt = self.ctx.log_format
        self.ctx.access.write(json_line(rec) if fmt == "json" else tcplog_line(rec))
