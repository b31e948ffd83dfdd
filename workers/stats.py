"""The stats listener ([stats] bind): a small keep-alive HTTP/1.1 server
session on the worker's loop, rendering farm/stats.py from shared memory.

Routes (uri is stats.uri, "/" by default; options follow HAProxy's stats
URI syntax, ";opt" after the uri, also after a "?"):

  GET {uri}                  HTML dashboard (auto refresh: stats.refresh;
                             farm/stats_page.py)
  GET {uri};csv              `show stat` CSV (text/plain); ;typed for typed
  GET {uri};json             `show stat json`
  GET {uri};history          the graphs' samples (JSON; ;since=N for those
                             after sample N), from the shm history ring
  GET /metrics               Prometheus, HAProxy's native metric names
  POST {uri}                 admin action (stats.admin only): b=BACKEND,
                             s=SERVER (repeatable),
                             action=ready|drain|maint|shutdown
  other options: ;norefresh, ;up, ;no-maint, ;st=CODE (message banner)

Errors: 401 (stats.auth set, credentials missing or wrong), 404 (unknown
path), 405 (any other method, or POST without stats.admin), 413 (request
body over 64 KiB), and the parser's 400/414/431/501/505.

A worker cannot write server state (the master is the only writer), so an
admin action is sent to the master's admin socket (global.admin_socket) as
the runtime-API command `set server B/S state ready|drain|maint` (or
`shutdown sessions server B/S`), one per server, then the client is
redirected (303) to the page with ";st=DONE" (or PART/ERRP/FAIL).

The stats frontend counts like any frontend in its shm row ("fe", "stats"):
sessions, bytes, requests, responses by class, intercepted requests.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import socket
import time
from urllib.parse import parse_qs

import farm
from farm import build, logs, model, renewals, shm
from farm import stats as render
from farm import stats_page
from workers import counting, http1, linger
from workers.http1 import CLOSED, END_OF_MESSAGE, NEED_DATA, PAUSED, Data, HttpError, Request
from workers.loop import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT
from workers.runtime import FrontendRuntime
from workers.transport import PlainTransport

RECV_SIZE = 65536
MAX_BODY = 65536             # bytes of a POST body we read (a form is tiny)
HIGH_WATER = 262144          # unsent bytes above which we stop reading the client
DRAIN_IDLE_GRACE = 0.5       # idle keep-alive seconds once the worker drains
ADMIN_TIMEOUT = 1.0          # total seconds an admin action may block the loop
METRICS_PATH = "/metrics"
ADMIN_ACTIONS = tuple(a for a, _ in stats_page.BULK_ACTIONS)   # ready drain maint shutdown
REALM = "farm statistics"

_HRSP = (shm.C_HRSP_OTHER, shm.C_HRSP_1XX, shm.C_HRSP_2XX, shm.C_HRSP_3XX,
         shm.C_HRSP_4XX, shm.C_HRSP_5XX)

# session states
S_REQ, S_LINGER, S_CLOSED = range(3)


def stats_frontend(ctx, config: model.Config, listeners: list[socket.socket]) -> FrontendRuntime:
    """A FrontendRuntime for stats.bind whose sessions are StatsSessions.
    It needs no backend; its counters go to the shm row ("fe", "stats")."""
    cfg = model.Frontend(name=render.STATS_PROXY, binds=(model.Bind(config.stats.bind),), mode="http",
                         timeouts=model.Timeouts())
    fe = FrontendRuntime(cfg, listeners, config.global_.maxconn, ctx.shared)
    fe.session_class = StatsSession
    return fe


def release_date() -> str:
    return farm.__release_date__


def proc_info(ctx) -> dict:
    """The proc dict of farm.stats.info(), as a worker knows it."""
    cfg = ctx.config
    t = ctx.shared.table
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        ulimit = 0 if soft == resource.RLIM_INFINITY else soft
    except (ImportError, OSError, ValueError):
        ulimit = 0
    process = t.read_row(shm.PROCESS_ROW) if t is not None else None
    return {
        "pid": os.getppid(),                              # the master, as HAProxy's Pid
        "start_time": t.q[shm.H_START] if t is not None else int(time.time()),
        "workers": cfg.global_.workers,
        "maxconn": cfg.global_.maxconn,
        "node": cfg.global_.node or socket.gethostname(),
        "version": farm.__version__,
        "build": build.describe(),
        "release_date": release_date(),
        "stopping": 1 if ctx.draining else 0,
        # dropped access-log lines of all the workers (the process row)
        "dropped_logs": process["dropped_logs"] if process else ctx.access.dropped,
        "listeners": len(cfg.all_binds()) * cfg.global_.workers,   # sockets, as the CLI counts
        "ulimit_n": ulimit,
        **(render.process_rates(process) if process else {}),
    }


# -- request routing (pure) ------------------------------------------------------------


def route(target: bytes, uri: str) -> tuple[str, set, str | None] | None:
    """(kind, options, st) for a request target, or None (404).

    kind: "metrics" or "stats". The target must be the stats uri itself,
    optionally followed by "/" (when uri does not end with one), then any
    of ";opt" / "?" parts, as HAProxy's stats URI (e.g. "/;csv",
    "/stats;csv;norefresh", "/haproxy?stats;csv")."""
    t = target.decode("latin-1")
    path = t.split("?", 1)[0]
    if path == METRICS_PATH and uri != METRICS_PATH:
        return "metrics", set(), None
    if not t.startswith(uri):
        return None
    rest = t[len(uri):]
    if rest.startswith("/") and not uri.endswith("/"):
        rest = rest[1:]
    if rest and rest[0] not in ";?":
        return None
    opts: set = set()
    st = None
    for part in rest.replace("?", ";").split(";")[1:]:
        part = part.split("&", 1)[0]
        if part.startswith("st="):
            st = part[3:]
        elif part:
            opts.add(part)
    return "stats", opts, st


def check_auth(header: bytes | None, auth: tuple[str, str] | None) -> bool:
    """HTTP basic authentication against stats.auth (constant-time compare)."""
    if auth is None:
        return True
    if not header:
        return False
    scheme, _, cred = header.partition(b" ")
    if scheme.lower() != b"basic":
        return False
    try:
        raw = base64.b64decode(cred.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = raw.partition(b":")
    if not sep:
        return False
    ok_user = hmac.compare_digest(user, auth[0].encode("utf-8"))
    ok_pass = hmac.compare_digest(password, auth[1].encode("utf-8"))
    return ok_user and ok_pass


def admin_targets(config: model.Config, form: dict) -> tuple[str, list[tuple[str, str]]] | None:
    """The (action, [(backend, server)...]) of an admin form, or None if a
    parameter is missing or names nothing that exists. b is a backend name
    or "#iid"; s a server name or "#sid"; action ready|drain|maint|shutdown
    (ADMIN_ACTIONS). Only names from the config come back, so nothing the
    client sends reaches the admin socket verbatim."""
    action = (form.get("action") or [""])[0]
    b = (form.get("b") or [""])[0]
    names = form.get("s") or []
    if action not in ADMIN_ACTIONS or not b or not names:
        return None
    be = None
    if b.startswith("#"):
        ids = render.proxy_ids(config)
        for cand in config.backends:
            if str(ids[("be", cand.name)]) == b[1:]:
                be = cand
    else:
        be = config.backend(b)
    if be is None:
        return None
    out = []
    for name in names:
        srv = None
        if name.startswith("#"):
            srv = next((s for s in be.servers if str(s.id) == name[1:]), None)
        else:
            srv = be.server(name)
        if srv is None:
            return None
        out.append((be.name, srv.name))
    return action, out


def admin_line(action: str, backend: str, server: str) -> str:
    """The runtime-API command of a page action on one server."""
    if action == "shutdown":
        return f"shutdown sessions server {backend}/{server}"
    return f"set server {backend}/{server} state {action}"


def admin_command(path: str, line: str, deadline: float) -> tuple[bool, str]:
    """Send one runtime-API line to the master's admin socket and read the
    answer until EOF. (ok, answer): ok when the answer is empty, as the CLI
    answers a successful `set server`.

    This blocks the worker's loop, for at most until `deadline` (ADMIN_TIMEOUT
    in all for one form post): acceptable for a rare, human-triggered admin
    action, and simpler than a non-blocking exchange for it."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False, "timeout"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(remaining)
        s.connect(path)
        s.sendall(line.encode("utf-8") + b"\n")
        chunks = []
        while True:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            data = s.recv(4096)
            if not data:
                break
            chunks.append(data)
        answer = b"".join(chunks).decode("utf-8", "replace")
    except OSError as e:
        return False, e.strerror or str(e)
    finally:
        s.close()
    return answer.strip() == "", answer.strip()


# -- the session -------------------------------------------------------------------------


class StatsSession:
    """One client connection to the stats listener (keep-alive, pipelined
    requests answered in order)."""

    def __init__(self, ctx, fe, csock: socket.socket, caddr: tuple):
        self.ctx = ctx
        self.loop = loop = ctx.loop
        self.fe = fe
        self.csock = csock
        self.cfd = csock.fileno()
        self.caddr = caddr
        self.rp = http1.RequestParser(fe.cfg.max_header_size)
        self.state = S_REQ
        self.req: Request | None = None
        self.body: list[bytes] = []
        self.body_len = 0
        self.out = b""
        self.closing = False         # close once `out` is sent
        self.c_eof = False
        self.requests = 0
        self.last = loop.now         # last progress (read or write)
        self.req_start = loop.now    # accept, or end of the previous response
        self.req_bytes = False       # bytes of the next request arrived
        t = fe.cfg.timeouts
        self.to_client = t.client or float("inf")
        self.to_request = t.http_request or float("inf")
        self.to_keepalive = t.http_keep_alive or self.to_request
        self.timer = loop.timer(self.on_timeout)
        ctx.sessions.add(self)
        counting.connection(fe)
        loop.add(self.cfd, EPOLLIN, self.on_event)
        self.rearm()

    # -- I/O -------------------------------------------------------------------------

    def on_event(self, events: int) -> None:
        if self.state == S_LINGER:
            self.on_linger()
            return
        if events & EPOLLOUT and self.out:
            if not self.write():
                return
        if events & (EPOLLIN | EPOLLHUP | EPOLLERR) and self.readable():
            try:
                data = self.csock.recv(RECV_SIZE)
            except BlockingIOError:
                data = None
            except OSError:
                self.close()
                return
            if data is not None:
                self.last = self.loop.now
                if data:
                    self.fe.c[shm.C_BIN] += len(data)
                    if self.req is None:
                        self.req_bytes = True
                else:
                    self.c_eof = True
                self.rp.feed(data)
                self.pump()
        self.finish()

    def readable(self) -> bool:
        return not self.c_eof and not self.closing and len(self.out) < HIGH_WATER

    def write(self) -> bool:
        try:
            n = self.csock.send(self.out)
        except BlockingIOError:
            return True
        except OSError:
            self.close()
            return False
        self.fe.c[shm.C_BOUT] += n
        self.out = self.out[n:]
        self.last = self.loop.now
        return True

    def finish(self) -> None:
        """End of an event: send, then close, linger or wait for more."""
        if self.state != S_REQ:
            return
        if self.out and not self.write():
            return
        if not self.out and (self.closing or (self.c_eof and self.req is None)):
            self.linger()
            return
        mask = (EPOLLIN if self.readable() else 0) | (EPOLLOUT if self.out else 0)
        if not mask:                  # client gone mid-request: nothing left to do
            self.close()
            return
        self.loop.modify(self.cfd, mask)
        self.rearm()

    def pump(self) -> None:
        """Take parser events; answer each complete request in order."""
        rp = self.rp
        while not self.closing:
            try:
                ev = rp.next_event()
            except HttpError as e:
                self.error(e.status)
                return
            if ev is NEED_DATA:
                return
            if ev is CLOSED:
                self.closing = True
                return
            if ev is PAUSED:
                rp.resume()            # upgrade/CONNECT: answered as a plain request
                continue
            t = type(ev)
            if t is Request:
                self.req = ev
                self.body = []
                self.body_len = 0
                if ev.expect_continue and ev.method == b"POST" and (ev.content_length or ev.chunked):
                    self.out += b"HTTP/1.1 100 Continue\r\n\r\n"
            elif t is Data:
                self.body_len += len(ev.raw)
                if self.body_len > MAX_BODY:
                    self.error(413)
                    return
                self.body.append(ev.raw)
            elif ev is END_OF_MESSAGE:
                req, self.req = self.req, None
                raw = b"".join(self.body)
                self.body = []
                if req.chunked and raw:
                    try:
                        raw = http1.dechunk(raw)
                    except (ValueError, IndexError):
                        raw = b""
                self.respond(req, raw)
                self.req_start = self.loop.now
                self.req_bytes = False

    # -- answers ---------------------------------------------------------------------

    def count(self, status: int) -> None:
        """A response of this status (the request was counted on arrival)."""
        self.fe.c[_HRSP[status // 100] if 100 <= status < 600 else shm.C_HRSP_OTHER] += 1

    def error(self, status: int) -> None:
        """A request we cannot parse or accept: answer and close."""
        self.fe.c[shm.C_REQ_TOT] += 1
        self.count(status)
        self.out += http1.error_response(status, close=True)
        self.closing = True

    def respond(self, req: Request, body: bytes) -> None:
        self.requests += 1
        self.fe.c[shm.C_REQ_TOT] += 1
        try:
            status, headers, payload = self.handle(req, body)
        except Exception as e:  # a rendering bug must not kill the worker
            logs.get_logger(proc="worker", slot=self.ctx.slot).error(
                "stats_render_failed", error=f"{type(e).__name__}: {e}")
            status, headers, payload = 500, [("Content-Type", "text/plain")], b"stats rendering failed\n"
        self.count(status)
        if 200 <= status < 300 or status == 303:
            self.fe.c[shm.C_INTERCEPTED] += 1
        close = not req.keep_alive or self.ctx.draining
        if close:
            headers.append(("Connection", "close"))
            self.closing = True
        elif req.version == b"HTTP/1.0":
            headers.append(("Connection", "keep-alive"))
        data = http1.make_response(status, headers=headers, body=payload)
        if req.method == b"HEAD":
            data = data[:len(data) - len(payload)]
        self.out += data

    def handle(self, req: Request, body: bytes) -> tuple[int, list, bytes]:
        """(status, headers, body) for one request."""
        ctx = self.ctx
        scfg = ctx.config.stats
        if not check_auth(req.get(b"authorization"), scfg.auth):
            return 401, [("WWW-Authenticate", f'Basic realm="{REALM}"'),
                         ("Content-Type", "text/html"), ("Cache-Control", "no-cache")], (
                b"<html><body><h1>401 Unauthorized</h1>\n"
                b"You need a valid user and password to access this content.\n</body></html>\n")
        found = route(req.target, scfg.uri)
        if found is None:
            return 404, [("Content-Type", "text/plain")], b"Not Found\n"
        kind, opts, st = found
        method = req.method
        if method == b"POST" and kind == "stats" and scfg.admin and not (opts & {"csv", "json", "typed"}):
            return self.admin_action(body)
        if method not in (b"GET", b"HEAD"):
            allow = "GET, HEAD, POST" if scfg.admin and kind == "stats" else "GET, HEAD"
            return 405, [("Allow", allow), ("Content-Type", "text/plain")], b"Method Not Allowed\n"
        table = ctx.shared.table
        if table is None:
            return 503, [("Content-Type", "text/plain")], b"statistics unavailable\n"
        nocache = ("Cache-Control", "no-cache")
        if kind == "stats" and "history" in opts:     # polled by the page: no snapshot needed
            data = stats_page.history_json(table, stats_page.history_since(opts))
            return 200, [("Content-Type", "application/json"), nocache], data.encode()
        ctx.shared.flush()                 # this worker's own counters, fresh
        proc = proc_info(ctx)
        rows = render.snapshot(ctx.config, table, proc)
        certs = render.cert_rows(ctx.tls.certificates(), renewals=renewals.by_file())
        if kind == "metrics":
            text = render.prometheus(rows, render.info(proc, rows), certs,
                                     list(getattr(table, "sticks", {}).values()))
            return 200, [("Content-Type", render.PROMETHEUS_CONTENT_TYPE), nocache], text.encode()
        rows = render.filter_rows(rows, up="up" in opts, no_maint="no-maint" in opts)
        if "json" in opts:
            return 200, [("Content-Type", "application/json"), nocache], render.json_stats(rows).encode()
        if "csv" in opts or "typed" in opts:
            text = render.csv(rows, typed="typed" in opts)
            return 200, [("Content-Type", "text/plain"), nocache], text.encode()
        refresh = 0 if "norefresh" in opts else scfg.refresh
        page = stats_page.html(rows, render.info(proc, rows), refresh, scfg.admin, scfg.uri,
                               message=st, certs=certs)
        return 200, [("Content-Type", "text/html; charset=utf-8"), nocache], page.encode()

    def admin_action(self, body: bytes) -> tuple[int, list, bytes]:
        """POST from the page: forward to the master, redirect back (303)."""
        cfg = self.ctx.config
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        parsed = admin_targets(cfg, form)
        log = logs.get_logger(proc="worker", slot=self.ctx.slot)
        if parsed is None:
            code = "ERRP"
        elif not cfg.global_.admin_socket:
            log.warning("stats_admin_failed", reason="no global.admin_socket configured")
            code = "FAIL"
        else:
            action, targets = parsed
            deadline = time.monotonic() + ADMIN_TIMEOUT
            done = 0
            for be, srv in targets:
                line = admin_line(action, be, srv)
                ok, answer = admin_command(cfg.global_.admin_socket, line, deadline)
                if ok:
                    done += 1
                    log.info("stats_admin_action", backend=be, server=srv, action=action,
                             client=self.caddr[0])
                else:
                    log.warning("stats_admin_failed", backend=be, server=srv, action=action,
                                answer=answer)
            code = "DONE" if done == len(targets) else ("PART" if done else "FAIL")
        location = cfg.stats.uri + ";st=" + code
        return 303, [("Location", location), ("Content-Type", "text/plain")], b""

    # -- timeouts and endings --------------------------------------------------------

    def rearm(self) -> None:
        if self.state != S_REQ:
            return
        if self.out:
            when = self.last + self.to_client
        elif self.req is not None or self.req_bytes or self.requests == 0:
            when = self.req_start + self.to_request
        else:
            when = self.req_start + self.to_keepalive
        if when != float("inf"):
            self.loop.set_timer(self.timer, when)
        else:
            self.timer.cancel()

    def on_timeout(self) -> None:
        if self.state == S_LINGER:
            self.close()
            return
        now = self.loop.now
        if self.out:
            if now < self.last + self.to_client:
                return self.rearm()
            self.close()
            return
        if self.req is not None or self.req_bytes:
            if now < self.req_start + self.to_request:
                return self.rearm()
            self.error(408)           # a client too slow to send its request
            self.finish()
            return
        limit = self.to_request if self.requests == 0 else self.to_keepalive
        if now < self.req_start + limit:
            return self.rearm()
        self.close()                  # idle keep-alive (or nothing ever sent)

    def drain(self) -> None:
        """The worker drains: the next response says Connection: close (see
        respond), an idle connection closes after a short grace."""
        self.to_keepalive = min(self.to_keepalive, DRAIN_IDLE_GRACE)
        if self.requests == 0 and not self.req_bytes:
            self.to_request = min(self.to_request, self.loop.now - self.req_start + DRAIN_IDLE_GRACE)
        self.rearm()

    def kill(self) -> None:
        self.close()

    def linger(self) -> None:
        """Close without a reset (workers/linger.py)."""
        self.state = S_LINGER
        if not linger.start(self.loop, PlainTransport(self.csock), self.timer, self.c_eof, self.on_event):
            self.close()

    def on_linger(self) -> None:
        if linger.drained(PlainTransport(self.csock)):
            self.close()

    def close(self) -> None:
        if self.state == S_CLOSED:
            return
        self.state = S_CLOSED
        self.timer.release()
        self.loop.remove(self.cfd)
        self.csock.close()
        self.ctx.session_ended(self)
