"""Health checks: HAProxy's state machine and the TCP/HTTP checkers.

Checks run in the master, on its event loop (one place, so a server gets one
check per interval whatever the number of workers). The result goes to the
shared-memory table; workers read it at their next pick.

State machine (HAProxy's): an integer health in [0, rise+fall-1]. A passed
check raises it by one, a failed one lowers it by one. An UP server whose
health drops below rise goes DOWN (health 0); a DOWN server whose health
reaches rise goes UP (health rise+fall-1). A server starts UP with health =
rise, "up, but down at the first failure", as HAProxy does.

The checker talks to the loop only through add/remove/modify/timer/
set_timer/call_later and reads loop.now, so farm/ does not import workers/
(but for the sans-IO HTTP/2 codec, through farm/h2check.py).

HTTP checks speak HTTP/1.1, or HTTP/2 (Backend.check_proto: check.proto,
else the server's proto): farm/h2check.py builds the request and reads the
response, this module moves the bytes.
"""

from __future__ import annotations

import errno
import math
import os
import random
import select
import socket
import ssl
import time
from dataclasses import dataclass

from farm import h2check, model, resolve, shm, tlsconf

READ_LIMIT = 65536         # bytes of an HTTP check response that are looked at

REASONS = {
    "L4OK": "Layer4 check passed",
    "L4TOUT": "Layer4 timeout",
    "L4CON": "Layer4 connection problem",
    "L6OK": "Layer6 check passed",
    "L6TOUT": "Layer6 timeout",
    "L6RSP": "Layer6 invalid response",
    "L7OK": "Layer7 check passed",
    "L7STS": "Layer7 wrong status",
    "L7RSP": "Layer7 invalid response",
    "L7TOUT": "Layer7 timeout",
    "SOCKERR": "Socket error",
}


# A PROXY protocol v2 header with the LOCAL command and no address: what a
# health check sends to a server that expects the protocol.
PROXY_V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"


@dataclass
class CheckResult:
    ok: bool
    status: str               # HAProxy's check status code (L4OK, L7STS...)
    code: int = 0             # HTTP status for layer 7
    info: str = ""            # detail: strerror, reason phrase...
    duration_ms: int = 0

    def describe(self) -> str:
        """HAProxy's wording: 'reason: ..., code: ..., info: "...", check duration: Nms'."""
        parts = [f"reason: {REASONS.get(self.status, self.status)}"]
        if self.code:
            parts.append(f"code: {self.code}")
        if self.info:
            parts.append(f'info: "{self.info}"')
        parts.append(f"check duration: {self.duration_ms}ms")
        return ", ".join(parts)


class HealthState:
    """The pure state machine of one server (no I/O; unit-tested)."""

    def __init__(self, rise: int, fall: int, health: int | None = None, up: bool = True):
        self.rise = rise
        self.fall = fall
        self.health = rise if health is None else health
        self.up = up

    @property
    def top(self) -> int:
        return self.rise + self.fall - 1

    def record(self, ok: bool) -> str | None:
        """Apply one check result; "up"/"down" on a transition, else None."""
        if ok:
            if self.health < self.top:
                self.health += 1
            if not self.up and self.health >= self.rise:
                self.up = True
                self.health = self.top
                return "up"
        else:
            if self.health > 0:
                self.health -= 1
            if self.up and self.health < self.rise:
                self.up = False
                self.health = 0
                return "down"
        return None

    def next_interval(self, check: model.Check) -> float:
        """inter when settled up, downinter when settled down, fastinter in
        between (HAProxy's rule)."""
        if self.up and self.health == self.top:
            return check.interval
        if not self.up and self.health == 0:
            return check.downinter or check.interval
        return check.fastinter or check.interval


class ServerCheck:
    """Runs the checks of one server on the master loop.

    Over TLS (Backend.check_tls: a tls server checked on its own port, or
    check.tls), the connect is followed by a handshake with the backend's
    client context (`tls`, tlsconf.BackendContexts: same verification, SNI
    and client certificate as the traffic): a failed handshake is HAProxy's
    L6RSP ("Layer6 invalid response", with why), a handshake that does not
    end in time L6TOUT, and a tcp check that completes it L6OK.
    """

    def __init__(self, loop, table: shm.Table, backend: model.Backend, server: model.Server,
                 on_transition, tls: tlsconf.BackendContexts | None = None):
        self.loop = loop
        self.table = table
        self.backend = backend
        self.server = server
        self.check = backend.check
        self.sidx = table.server_row(backend.name, server.name)
        st = table.srv_state(self.sidx)
        self.state = HealthState(self.check.rise, self.check.fall, st["health"], st["op_up"] == 1)
        self.on_transition = on_transition
        self.sock: socket.socket | None = None
        self.fd = -1
        self.started = 0.0
        self.phase = ""
        self.buf = b""
        self.timer = loop.timer(self.on_timer)
        self.stopped = False
        self.observed_errors = 0      # live errors seen at the last check
        c = self.check
        connect_to = backend.timeouts.connect or c.interval
        self.timeout = c.timeout or backend.timeouts.check or min(connect_to, c.interval)
        self.resolved = None          # (family, sockaddr) when the table has no address
        self.send_proxy = backend.check_send_proxy(server)   # "v1" | "v2" | None
        self.tls = tls if backend.check_tls(server) else None
        self.tls_session = None       # resumed by the next check
        self.proto = backend.check_proto(server)   # "h1" | "h2" (http checks)
        self.h2: h2check.H2Exchange | None = None   # the HTTP/2 check under way

    # -- scheduling ------------------------------------------------------------

    def start(self) -> None:
        """First check after a random part of the interval, so that many
        servers are not all checked in the same instant."""
        self.loop.set_timer(self.timer, self.loop.now + random.uniform(0, self.check.interval))

    def stop(self) -> None:
        self.stopped = True
        self.timer.cancel()
        self.close_socket()

    def on_timer(self) -> None:
        if self.stopped:
            return
        if self.sock is None:
            self.begin()
        else:
            if self.phase == "handshake":
                status = "L6TOUT"
            elif self.phase == "connect":
                status = "L4TOUT"
            else:
                status = "L7TOUT" if self.check.type == "http" else "L4TOUT"
            self.finish(CheckResult(False, status))

    # -- the check -------------------------------------------------------------

    def target(self) -> tuple[int, tuple] | None:
        """Where to check now: the server's current address (shared memory:
        the runtime API may have changed it), on the check port if one is
        set; None while the server has no address (resolution maintenance)."""
        _, address = self.table.address(self.sidx)
        if address is None:
            if self.table.srv_get(self.sidx, "rmaint"):
                return None
            if self.resolved is None:      # a table without addresses (tests)
                a = self.server.address
                self.resolved = resolve.lookup(a.host, a.port, a.family)
            address = self.resolved
        family, sockaddr = address
        if self.check.port:
            sockaddr = (sockaddr[0], self.check.port) + tuple(sockaddr[2:])
        return family, sockaddr

    def begin(self) -> None:
        self.started = time.monotonic()
        try:
            target = self.target()
            if target is None:
                # HAProxy pauses the check of a server in resolution
                # maintenance; look again after an interval
                self.loop.set_timer(self.timer, self.loop.now + self.check.interval)
                return
            family, sockaddr = target
            sock = socket.socket(family, socket.SOCK_STREAM)
        except resolve.ResolveError as e:
            self.finish(CheckResult(False, "SOCKERR", info=str(e)))
            return
        except OSError as e:
            self.finish(CheckResult(False, "SOCKERR", info=e.strerror or str(e)))
            return
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.phase = "connect"
        err = sock.connect_ex(sockaddr)
        if err not in (0, errno.EINPROGRESS):
            self.finish(CheckResult(False, "L4CON", info=os.strerror(err)))
            return
        self.loop.add(self.fd, select.EPOLLOUT, self.on_event)
        self.loop.set_timer(self.timer, self.loop.now + self.timeout)

    def on_event(self, events: int) -> None:
        if self.phase == "connect":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.finish(CheckResult(False, "L4CON", info=os.strerror(err)))
                return
            if self.send_proxy:
                # the PROXY header first: before TLS, before any request
                try:
                    self.sock.send(self.proxy_header())
                except OSError as e:
                    self.finish(CheckResult(False, "L4CON", info=e.strerror or str(e)))
                    return
            if self.tls is not None:
                self.start_tls()
                return
            self.connected()
            return
        if self.phase == "handshake":
            self.handshake()
            return
        try:
            data = self.sock.recv(16384)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        except OSError as e:
            self.finish(CheckResult(False, "L7RSP", info=e.strerror or str(e)))
            return
        if data and self.tls is not None:
            while self.sock.pending():      # decrypted, not in the kernel: epoll cannot tell
                data += self.sock.recv(self.sock.pending())
        if self.h2 is not None:
            self.h2_received(data)
            return
        self.buf += data
        if not data or len(self.buf) >= READ_LIMIT or self.response_complete():
            self.finish(self.evaluate())

    def h2_received(self, data: bytes) -> None:
        """Bytes (b"": the close) of an HTTP/2 check: answer what needs an
        answer, and judge the response once it is in."""
        ex = self.h2
        try:
            if data:
                out = ex.receive(data)
            else:
                ex.eof()
                out = b""
        except h2check.CheckFailed as e:
            self.finish(CheckResult(False, "L7RSP", info=str(e)))
            return
        if out:
            try:
                self.sock.send(out)          # ACKs: a few bytes, the buffer has room
            except OSError:
                pass                         # a closed connection shows at the next recv
        if not ex.done:
            return
        try:
            self.sock.send(ex.goaway())
        except OSError:
            pass
        self.finish(self.judge(ex.status, "", bytes(ex.body)))

    def proxy_header(self) -> bytes:
        """The PROXY header a check sends first (check.send_proxy, or the
        server's send_proxy): the specification's advice for health
        checks, v2 LOCAL (no addresses: "this connection is the proxy's
        own"), v1 a TCP line with the check connection's own addresses.
        (The same bytes workers/proxyproto.py builds: farm/ does not
        import workers/.)"""
        if self.send_proxy == "v2":
            return PROXY_V2_LOCAL
        src = self.sock.getsockname()
        dst = self.sock.getpeername()
        family = "TCP6" if self.sock.family == socket.AF_INET6 else "TCP4"
        return f"PROXY {family} {src[0]} {dst[0]} {src[1]} {dst[1]}\r\n".encode("ascii")

    def connected(self) -> None:
        """The connection is up (TLS: the handshake done): a tcp check has
        passed; an http check sends its request, in HTTP/1.1 or HTTP/2
        (self.proto), once ALPN (over TLS) has not chosen the other one."""
        if self.check.type != "http":
            self.finish(CheckResult(True, "L6OK" if self.tls is not None else "L4OK"))
            return
        if self.tls is not None:
            why = h2check.alpn_mismatch(self.proto, self.sock.selected_alpn_protocol())
            if why:
                self.finish(CheckResult(False, "L6RSP", info=why))
                return
        self.phase = "response"
        try:
            # one send: the request is small, the socket's buffer empty
            if self.proto == "h2":
                c = self.check
                self.h2 = h2check.H2Exchange(
                    c.method, "https" if self.tls is not None else "http", c.path,
                    c.host or str(self.server.address), want_body=c.expect_body is not None)
                self.sock.send(self.h2.start())
            else:
                self.sock.send(self.http_request())
        except OSError as e:
            self.finish(CheckResult(False, "L4CON", info=e.strerror or str(e)))
            return
        self.loop.modify(self.fd, select.EPOLLIN)

    def start_tls(self) -> None:
        name = self.tls.settings.sni if not self.tls.settings.sni_fetch else None
        if self.tls.settings.sni_fetch and self.check.host:
            name = self.check.host          # what a request's Host would say
        try:
            self.sock = self.tls.context(name).wrap_socket(
                self.sock, server_hostname=name, do_handshake_on_connect=False,
                suppress_ragged_eofs=True, session=self.tls_session)
        except (OSError, ValueError) as e:
            self.finish(CheckResult(False, "L6RSP", info=tlsconf.failure_reason(e)))
            return
        self.phase = "handshake"
        self.handshake()

    def handshake(self) -> None:
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.loop.modify(self.fd, select.EPOLLIN)
            return
        except ssl.SSLWantWriteError:
            self.loop.modify(self.fd, select.EPOLLOUT)
            return
        except OSError as e:
            self.finish(CheckResult(False, "L6RSP", info=tlsconf.failure_reason(e)))
            return
        self.keep_session()
        self.connected()

    def keep_session(self) -> None:
        """Keep the TLS session for the next check, once it can be resumed."""
        try:
            sess = self.sock.session
            if sess is not None and (sess.has_ticket or self.sock.version() != "TLSv1.3"):
                self.tls_session = sess
        except (AttributeError, ValueError, OSError):
            pass

    def http_request(self) -> bytes:
        c = self.check
        host = c.host or str(self.server.address)
        return (f"{c.method} {c.path} HTTP/1.1\r\nHost: {host}\r\n"
                f"User-Agent: farm-check\r\nConnection: close\r\n\r\n").encode("latin-1")

    def response_complete(self) -> bool:
        """True once the head (and, when a body match is wanted, the
        Content-Length body) has arrived; otherwise wait for the close."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        if self.check.expect_body is None:
            return True
        head = self.buf[:end].lower()
        i = head.find(b"\r\ncontent-length:")
        if i < 0:
            return False
        j = head.find(b"\r\n", i + 2)
        try:
            length = int(head[i + 17:j if j > 0 else len(head)].strip())
        except ValueError:
            return False
        return len(self.buf) >= end + 4 + length

    def evaluate(self) -> CheckResult:
        line, _, rest = self.buf.partition(b"\r\n")
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            return CheckResult(False, "L7RSP", info="invalid response")
        code = int(parts[1])
        reason = parts[2].decode("latin-1", "replace") if len(parts) > 2 else ""
        return self.judge(code, reason, rest.partition(b"\r\n\r\n")[2])

    def judge(self, code: int, reason: str, body: bytes) -> CheckResult:
        """The verdict on a response, whatever its protocol: its status
        against expect_status (L7STS), then its body against expect_body
        (L7RSP); reason is HTTP/1.1's reason phrase (HTTP/2 has none)."""
        lo, hi = self.check.expect_status
        if not lo <= code <= hi:
            return CheckResult(False, "L7STS", code=code, info=reason)
        if self.check.expect_body is not None:
            if self.check.expect_body.encode() not in body:
                return CheckResult(False, "L7RSP", code=code, info="expected content not found")
        return CheckResult(True, "L7OK", code=code, info=reason)

    def close_socket(self) -> None:
        if self.sock is not None:
            self.loop.remove(self.fd)
            self.sock.close()
            self.sock = None
            self.fd = -1
        self.buf = b""
        self.h2 = None
        self.phase = ""

    def finish(self, result: CheckResult) -> None:
        result.duration_ms = int((time.monotonic() - self.started) * 1000)
        if self.tls is not None and self.phase == "response":
            self.keep_session()          # TLS 1.3: the ticket came with the response
        self.close_socket()
        self.apply(result)
        if not self.stopped:
            self.loop.set_timer(self.timer, self.loop.now + self.state.next_interval(self.check))

    # -- results -----------------------------------------------------------------

    def observe(self) -> CheckResult | None:
        """Passive health: live connection errors and 5xx counted by the
        workers since the last check; error_limit of them count as one
        failed check (HAProxy's observe + error-limit, on-error fail-check)."""
        if not self.check.observe:
            return None
        row = self.table.read_row(("srv", self.backend.name, self.server.name))
        errors = row["econ"] + row["eresp"] + row["hrsp_5xx"]
        new = errors - self.observed_errors
        self.observed_errors = errors
        if new >= self.check.error_limit:
            return CheckResult(False, "L7STS", info=f"{new} errors observed in live traffic")
        return None

    def apply(self, result: CheckResult) -> None:
        t = self.table
        sidx = self.sidx
        t.srv_set(sidx, "checks", t.srv_get(sidx, "checks") + 1)
        observed = self.observe()
        if observed is not None and result.ok:
            result = observed
        if not result.ok and self.state.health > 0:
            # HAProxy counts a failed check only when it takes health down
            # (a server already fully down fails without counting)
            t.srv_set(sidx, "chkfail", t.srv_get(sidx, "chkfail") + 1)
        t.srv_set(sidx, "check_status", shm.CS.get(result.status, 0))
        t.srv_set(sidx, "check_code", result.code)
        t.srv_set(sidx, "check_duration", result.duration_ms)
        transition = self.state.record(result.ok)
        t.srv_set(sidx, "health", self.state.health)
        if transition is not None:
            now = int(time.time())
            t.srv_set(sidx, "op_up", 1 if transition == "up" else 0)
            t.srv_set(sidx, "last_change", now)
            t.note_downtime(sidx, now)
            if transition == "down":
                t.srv_set(sidx, "chkdown", t.srv_get(sidx, "chkdown") + 1)
            else:
                t.srv_set(sidx, "up_since", now)
                if self.server.slowstart > 0:
                    t.srv_set(sidx, "eff_weight", slowstart_weight(t.srv_get(sidx, "weight"), 0.0,
                                                                   self.server.slowstart))
            t.bump_state_version()
            self.on_transition(self, transition, result)
        else:
            # check status and counters changed: stats readers see it, the
            # balancers need nothing new
            pass


def slowstart_weight(weight: int, elapsed: float, slowstart: float) -> int:
    """Effective weight (x WEIGHT_SCALE) `elapsed` seconds into a slowstart
    ramp: grows linearly from almost nothing to the full weight."""
    full = weight * shm.WEIGHT_SCALE
    if full <= 0:
        return 0
    if elapsed >= slowstart:
        return full
    return max(1, math.ceil(full * max(elapsed, 0.0) / slowstart))


def transition_message(backend: model.Backend, server: model.Server, transition: str,
                       result: CheckResult, table: shm.Table) -> str:
    """HAProxy's log line for a server going UP or DOWN."""
    active = backup = 0
    for s in backend.servers:
        up, _ = table.usable(table.server_row(backend.name, s.name))
        if up:
            if s.backup:
                backup += 1
            else:
                active += 1
    state = "UP" if transition == "up" else "DOWN"
    tail = (f"{active} active and {backup} backup servers left." if transition == "down"
            else f"{active} active and {backup} backup servers online.")
    return f"Server {backend.name}/{server.name} is {state}, {result.describe()}. {tail}"


class HealthChecker:
    """All the server checks of one configuration generation."""

    def __init__(self, loop, table: shm.Table, config: model.Config, log,
                 tls: tlsconf.TlsSet | None = None):
        self.loop = loop
        self.table = table
        self.config = config
        self.log = log
        self.checks: list[ServerCheck] = []
        self.ramping: set[int] = set()
        self.ramp_timer = None
        for be in config.backends:
            if be.check.type is None:
                continue
            for s in be.servers:
                if s.check:
                    contexts = tls.backends.get(be.name) if tls is not None else None
                    self.checks.append(ServerCheck(loop, table, be, s, self.on_transition, contexts))

    def start(self) -> None:
        for c in self.checks:
            c.start()

    def stop(self) -> None:
        for c in self.checks:
            c.stop()
        if self.ramp_timer is not None:
            self.ramp_timer.cancel()

    def on_transition(self, check: ServerCheck, transition: str, result: CheckResult) -> None:
        be, srv = check.backend, check.server
        msg = transition_message(be, srv, transition, result, self.table)
        level = self.log.warning if transition == "down" else self.log.info
        level("server_" + transition, backend=be.name, server=srv.name, message=msg)
        if transition == "down":
            if not any(self.table.usable(self.table.server_row(be.name, s.name))[0]
                       for s in be.servers):
                self.log.error("backend_down", backend=be.name,
                               message=f"backend {be.name} has no server available!")
        elif srv.slowstart > 0:
            self.ramping.add(check.sidx)
            self.schedule_ramp()

    def schedule_ramp(self) -> None:
        if self.ramp_timer is None or not self.ramp_timer.active:
            self.ramp_timer = self.loop.call_later(0.25, self.ramp)

    def ramp(self) -> None:
        """Move slowstart weights along; the workers see each step."""
        now = time.time()
        changed = False
        for sidx in list(self.ramping):
            be_name, srv_name = self.table.layout.server_keys[sidx]
            srv = self.config.backend(be_name).server(srv_name)
            t = self.table
            w = slowstart_weight(t.srv_get(sidx, "weight"), now - t.srv_get(sidx, "up_since"),
                                 srv.slowstart)
            if w != t.srv_get(sidx, "eff_weight"):
                t.srv_set(sidx, "eff_weight", w)
                changed = True
            if w >= t.srv_get(sidx, "weight") * shm.WEIGHT_SCALE or t.srv_get(sidx, "op_up") == 0:
                self.ramping.discard(sidx)
        if changed:
            self.table.bump_state_version()
        self.ramp_timer = None
        if self.ramping:
            self.schedule_ramp()
