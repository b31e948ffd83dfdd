"""Logging: structlog for lifecycle events, and the access log.

Event log: one line per event, through structlog. On a terminal the console
renderer; otherwise (or to a file) JSON lines. Every line is written with a
single write() on an O_APPEND descriptor, so lines from the master and the
workers never interleave mid-line, and the file can be reopened on SIGUSR1.

Access log: one line per TCP session or HTTP request, in HAProxy's tcplog /
httplog text formats (halog reads them) or as JSON. Lines are buffered for a
loop turn and written with one write() at the end of the turn, to a file,
stdout, or a syslog server (UDP or unix datagram socket, RFC 3164 or 5424
header). Nothing here blocks the loop on a pipe or a socket: what cannot be
sent is bounded and the lines lost are counted (AccessLog.dropped).
Reading the access log back (parsing, filtering, following): farm/logtail.py.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import stat
import time
from dataclasses import dataclass

import structlog

from farm.model import SYSLOG_FACILITIES

# -- event log ----------------------------------------------------------------


class _Sink:
    """A reopenable O_APPEND file (or stderr) that structlog writes lines to."""

    def __init__(self, target: str):
        self.target = target
        self.fd = 2
        self.reopen()

    def reopen(self) -> None:
        if self.target in ("stderr", "-", ""):
            self.fd = 2
            return
        fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        old, self.fd = self.fd, fd
        if old > 2:
            os.close(old)

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        try:
            os.write(self.fd, data)
        except OSError:
            pass  # an event log that cannot be written must not kill the proxy

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return os.isatty(self.fd)


_sink: _Sink | None = None
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def setup_events(target: str = "stderr", level: str = "info", force_json: bool | None = None) -> None:
    """Configure structlog for this process.

    target: "stderr" or a file path. JSON lines unless the target is a
    terminal (then the console renderer), or as force_json says.
    """
    global _sink
    _sink = _Sink(target)
    use_json = (not _sink.isatty()) if force_json is None else force_json
    renderer = (structlog.processors.JSONRenderer() if use_json
                else structlog.dev.ConsoleRenderer(colors=_sink.isatty()))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=False),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, 20)),
        logger_factory=structlog.WriteLoggerFactory(file=_sink),
        cache_logger_on_first_use=False,
    )


def reopen_events() -> None:
    if _sink is not None:
        _sink.reopen()


def event_fds() -> set[int]:
    """Descriptors the event log writes to (a forked worker keeps them)."""
    return {_sink.fd} if _sink is not None else set()


def get_logger(**bind):
    """A structlog logger with the given context bound (e.g. proc="master")."""
    return structlog.get_logger().bind(**bind)


# -- access log ---------------------------------------------------------------
#
# Targets (the [log] access value):
#   "off"                     no access log
#   "stdout"                  the process's standard output
#   "/path/to/file"           a file, opened O_APPEND (or a FIFO)
#   "udp://HOST[:PORT]"       syslog over UDP (port 514 by default)
#   "unix:///dev/log"         syslog over a unix datagram socket
#
# How a turn's lines leave the worker, per kind of descriptor:
#   regular file / tty / char device: one write() per turn. On an O_APPEND
#       regular file Linux holds the inode lock for the whole write, so the
#       lines of several workers never interleave inside a line. Such a write
#       cannot return EAGAIN; a failure (disk full) drops the lines it could
#       not write and counts them.
#   pipe / FIFO / stream socket (stdout under docker or systemd): written
#       non-blocking (stdout is reopened through /proc/self/fd/1 for a pipe,
#       sent with MSG_DONTWAIT for a socket, so the shared descriptor is never
#       switched to O_NONBLOCK under the feet of other processes), in chunks of
#       at most PIPE_BUF bytes cut at line ends: a pipe write up to PIPE_BUF
#       is atomic, so lines of several workers never tear. What the pipe
#       cannot take waits in `pending` (at most MAX_PENDING bytes); lines
#       that do not fit are dropped and counted.
#   syslog: one datagram per line, sent non-blocking on a connected socket;
#       a send that fails (EAGAIN, ECONNREFUSED, ...) drops the line and
#       counts it.

MAX_PENDING = 4 * 1024 * 1024   # bytes kept while a pipe/socket cannot take more
PIPE_ATOMIC = 4096              # PIPE_BUF: writes to a pipe up to this size are atomic
SYSLOG_MAXLEN = 8192            # a longer syslog message is truncated (newline kept)
SYSLOG_PORT = 514
SYSLOG_SEVERITY_INFO = 6
RECONNECT_DELAY = 1.0           # seconds between attempts to reach a syslog socket
_TAG_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_HOSTNAME_RE = re.compile(r"[!-~]{1,255}")     # printable ASCII, no space (RFC 5424)


@dataclass(frozen=True)
class Target:
    """A parsed access-log target."""

    kind: str            # "off" | "stdout" | "file" | "udp" | "unix"
    path: str = ""       # file path or unix socket path
    host: str = ""       # udp
    port: int = 0        # udp

    @property
    def is_syslog(self) -> bool:
        return self.kind in ("udp", "unix")


def parse_target(text: str) -> Target:
    """"off" | "stdout" | a file path | "udp://HOST[:PORT]" | "unix:///PATH".

    Raises ValueError with a user-facing message."""
    if text == "off":
        return Target("off")
    if text == "stdout":
        return Target("stdout")
    if not text:
        raise ValueError("must not be empty")
    scheme, sep, rest = text.partition("://")
    if not sep:
        return Target("file", path=text)
    scheme = scheme.lower()
    if scheme == "unix":
        if not rest.startswith("/"):
            raise ValueError(f"a unix socket target needs an absolute path: 'unix:///dev/log', got {text!r}")
        return Target("unix", path=rest)
    if scheme == "udp":
        host, port = rest, SYSLOG_PORT
        if rest.startswith("["):                      # [v6]:port
            end = rest.find("]")
            if end < 0:
                raise ValueError(f"unclosed '[' in {text!r}")
            host, tail = rest[1:end], rest[end + 1:]
            if tail:
                if not tail.startswith(":"):
                    raise ValueError(f"expected ':PORT' after ']' in {text!r}")
                port = _port(tail[1:], text)
        elif rest.count(":") == 1:
            host, _, p = rest.partition(":")
            port = _port(p, text)
        elif ":" in rest:
            raise ValueError(f"write an IPv6 address in brackets: 'udp://[::1]:514', got {text!r}")
        if not host or "/" in host:
            raise ValueError(f"expected 'udp://HOST:PORT', got {text!r}")
        return Target("udp", host=host, port=port)
    raise ValueError(f"unknown log target scheme {scheme + '://'!r} (expected udp:// or unix://, "
                     f"or a file path, 'stdout' or 'off')")


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"invalid port {text!r} in {whole!r}")
    return int(text)


def check_tag(text: str) -> str:
    if not _TAG_RE.fullmatch(text):
        raise ValueError(f"invalid syslog tag {text!r} (1 to 32 of: letters, digits, '_', '.', '-')")
    return text


def check_hostname(text: str) -> str:
    if text and not _HOSTNAME_RE.fullmatch(text):
        raise ValueError(f"invalid syslog hostname {text!r} (printable ASCII, no spaces)")
    return text


def syslog_header(fmt: str, facility: str | int, tag: str, pid: int, epoch: float,
                  hostname: str = "", severity: int = SYSLOG_SEVERITY_INFO) -> str:
    """The syslog header that precedes a log line.

    rfc3164: "<134>Nov 20 22:19:17 farm[1234]: " (HAProxy's default shape:
             no hostname unless one is set, then "<134>Nov 20 22:19:17 lb1 farm[1234]: ")
    rfc5424: "<134>1 2026-11-20T22:19:17.568123+01:00 lb1 farm 1234 - - "
             (hostname: the one set, else the system's)
    The time is local time, as syslog daemons expect it.
    """
    code = facility if isinstance(facility, int) else SYSLOG_FACILITIES.index(facility)
    pri = code * 8 + severity
    sec = int(epoch)
    t = time.localtime(sec)
    if fmt == "rfc3164":
        host = hostname + " " if hostname else ""
        return "<%d>%s %2d %02d:%02d:%02d %s%s[%d]: " % (
            pri, _MONTHS[t.tm_mon - 1], t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, host, tag, pid)
    if fmt == "rfc5424":
        off = t.tm_gmtoff // 60
        sign = "+" if off >= 0 else "-"
        off = abs(off)
        stamp = "%04d-%02d-%02dT%02d:%02d:%02d.%06d%s%02d:%02d" % (
            t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
            min(999999, int(round((epoch - sec) * 1e6))), sign, off // 60, off % 60)
        return "<%d>1 %s %s %s %d - - " % (pri, stamp, hostname or socket.gethostname() or "-", tag, pid)
    raise ValueError(f"unknown syslog format {fmt!r}")


def _cut_lines(data: bytes, room: int) -> int:
    """The length of the longest prefix of data (lines ending in \\n) that fits in room."""
    if len(data) <= room:
        return len(data)
    return data.rfind(b"\n", 0, room) + 1


_FILE, _STREAM, _DGRAM = "file", "stream", "dgram"


class AccessLog:
    """Buffered access-log writer for one worker.

    AccessLog(target) with target an access string (see parse_target), or
    AccessLog(log_config) with a model.LogConfig (its syslog options are
    then used too). write(line) appends a line (no newline) to the turn's
    buffer; flush() is called by the loop at the end of every turn. `dropped`
    counts the lines lost (target full or failing); `pending` holds the bytes
    that a pipe/socket could not take yet (at most MAX_PENDING).
    """

    def __init__(self, target, *, syslog_format: str = "rfc3164", facility: str = "local0",
                 tag: str = "farm", hostname: str = ""):
        if not isinstance(target, str):          # a model.LogConfig
            cfg = target
            target = cfg.access
            syslog_format = getattr(cfg, "syslog_format", syslog_format)
            facility = getattr(cfg, "facility", facility)
            tag = getattr(cfg, "tag", tag)
            hostname = getattr(cfg, "hostname", hostname)
        self.target = target
        self.spec = parse_target(target)
        self.enabled = self.spec.kind != "off"
        self.syslog_format = syslog_format
        self.facility = facility
        self.tag = tag
        if syslog_format == "rfc5424" and not hostname:
            hostname = socket.gethostname() or "-"
        self.hostname = hostname
        self.fd = -1
        self.sock: socket.socket | None = None
        self.mode = _FILE
        self.buf: list[str] = []
        self.pending = b""
        self.dropped = 0
        self._own_fd = False
        self._pid = os.getpid()
        self._next_connect = 0.0
        self._addr: tuple | None = None
        self._hdr_sec = -1
        self._hdr = b""
        if self.enabled:
            self._open()

    @classmethod
    def from_config(cls, log) -> "AccessLog":
        return cls(log)

    # -- opening ---------------------------------------------------------------

    def _open(self) -> None:
        """Open the target; raises OSError for a file that cannot be opened."""
        kind = self.spec.kind
        self._pid = os.getpid()
        if kind in ("udp", "unix"):
            self.mode = _DGRAM
            self._resolve()
            self._connect()
            return
        if kind == "stdout":
            fd, own = 1, False
        else:
            fd = os.open(self.spec.path,
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o640)
            own = True
        self._set_fd(fd, own)

    def _set_fd(self, fd: int, own: bool) -> None:
        """Adopt fd as the target and pick how to write to it."""
        try:
            st_mode = os.fstat(fd).st_mode
        except OSError:
            st_mode = 0
        sock = None
        mode = _FILE
        if stat.S_ISFIFO(st_mode):
            mode = _STREAM
            if not own:
                # A new open file description of the same pipe, non-blocking
                # for us alone (O_NONBLOCK on the inherited one would also
                # change it for the master, the other workers, the shell).
                try:
                    fd = os.open("/proc/self/fd/%d" % fd, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                    own = True
                except OSError:
                    pass
        elif stat.S_ISSOCK(st_mode):
            mode = _STREAM
            try:
                sock = socket.socket(fileno=os.dup(fd))
            except OSError:
                sock = None
            if sock is not None and sock.type != socket.SOCK_STREAM:
                sock.close()
                sock = None
        old_fd, old_own, old_sock = self.fd, self._own_fd, self.sock
        self.fd, self._own_fd, self.sock, self.mode = fd, own, sock, mode
        if old_sock is not None:
            old_sock.close()
        if old_own and old_fd >= 0 and old_fd != fd:
            os.close(old_fd)

    def _resolve(self) -> None:
        """The syslog server's address, looked up now (at start and on
        SIGUSR1) and never on the way of a line: a failing DNS must not
        stall the loop at every reconnect."""
        spec = self.spec
        if spec.kind == "unix":
            self._addr = (socket.AF_UNIX, spec.path)
            return
        try:
            family, _, _, _, addr = socket.getaddrinfo(spec.host, spec.port, 0, socket.SOCK_DGRAM)[0]
        except OSError as e:
            self._addr = None
            get_logger(proc="worker", pid=os.getpid()).warning(
                "access_log_unresolved", target=self.target, error=str(e))
            return
        self._addr = (family, addr)

    def _connect(self) -> bool:
        """(Re)connect the syslog socket; False (and a retry later) on failure."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._next_connect = time.monotonic() + RECONNECT_DELAY
        if self._addr is None:
            return False
        family, addr = self._addr
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        except OSError:
            return False
        try:
            sock.setblocking(False)
            sock.connect(addr)
        except OSError:
            sock.close()
            return False
        self.sock = sock
        return True

    def reopen(self) -> None:
        """Reopen the target (SIGUSR1, after logrotate renamed the file).

        The lines of this turn go to the old file first. If the new file
        cannot be opened, the old descriptor is kept and an event is logged."""
        if not self.enabled:
            return
        self.flush()
        kind = self.spec.kind
        if kind in ("udp", "unix"):
            self._pid = os.getpid()
            self._hdr_sec = -1
            self._resolve()
            self._connect()
            return
        if kind == "stdout":
            return
        try:
            fd = os.open(self.spec.path,
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o640)
        except OSError as e:
            get_logger(proc="worker", pid=os.getpid()).warning(
                "access_log_reopen_failed", path=self.spec.path, error=e.strerror or str(e))
            return
        if self.pending:
            # Bytes a FIFO could not take yet belong to the old descriptor;
            # one last try, then they are lost.
            self.pending = self._stream_write(self.pending)
            if self.pending:
                self.dropped += self.pending.count(b"\n")
                self.pending = b""
        self._set_fd(fd, True)

    # -- writing ---------------------------------------------------------------

    def write(self, line: str) -> None:
        self.buf.append(line)

    def flush(self) -> None:
        buf = self.buf
        if not buf:
            if self.pending:
                self.pending = self._stream_write(self.pending)
            return
        if self.mode is _DGRAM:
            self._send_datagrams(buf)
            buf.clear()
            return
        buf.append("")                  # the last line's newline, without another copy
        data = "\n".join(buf).encode("utf-8", "replace")
        buf.clear()
        if self.mode is _FILE:
            self._file_write(data)
            return
        if self.pending:
            keep = _cut_lines(data, MAX_PENDING - len(self.pending))
            if keep < len(data):
                self.dropped += data.count(b"\n", keep)
            data = self.pending + data[:keep]
        rest = self._stream_write(data)
        if len(rest) > MAX_PENDING:
            # Keep what fits (the head may be the end of a line already
            # half written: it must go out first); drop the newest lines.
            keep = _cut_lines(rest, MAX_PENDING)
            self.dropped += rest.count(b"\n", keep)
            rest = rest[:keep]
        self.pending = rest

    def _file_write(self, data: bytes) -> None:
        """One write() of the whole turn; a regular file takes it all unless
        the write fails (disk full, I/O error): the rest is dropped."""
        pos = 0
        try:
            pos = os.write(self.fd, data)       # all of it, as a rule: no view needed
            if pos < len(data):
                view = memoryview(data)
                while pos < len(data):
                    pos += os.write(self.fd, view[pos:])
        except OSError:
            self.dropped += data.count(b"\n", pos)

    def _stream_write(self, data: bytes) -> bytes:
        """Write to a pipe or stream socket without blocking, in chunks of at
        most PIPE_BUF cut at line ends (a longer line goes alone). Returns
        what could not be written."""
        n = len(data)
        view = memoryview(data)
        pos = 0
        sock = self.sock
        try:
            while pos < n:
                end = pos + PIPE_ATOMIC
                if end < n:
                    cut = data.rfind(b"\n", pos, end)
                    end = cut + 1 if cut >= 0 else (data.find(b"\n", end) + 1 or n)
                if sock is not None:
                    pos += sock.send(view[pos:end], socket.MSG_DONTWAIT)
                else:
                    pos += os.write(self.fd, view[pos:end])
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            # The reader is gone (EPIPE) or the target broke: what is left is lost.
            self.dropped += data.count(b"\n", pos)
            return b""
        return data[pos:] if pos else data

    def _header(self, now: float) -> bytes:
        if self.syslog_format == "rfc3164":
            sec = int(now)
            if sec != self._hdr_sec:
                self._hdr_sec = sec
                self._hdr = syslog_header("rfc3164", self.facility, self.tag, self._pid, now,
                                          self.hostname).encode()
            return self._hdr
        return syslog_header(self.syslog_format, self.facility, self.tag, self._pid, now,
                             self.hostname).encode()

    def _send_datagrams(self, lines: list[str]) -> None:
        sock = self.sock
        if sock is None and (time.monotonic() < self._next_connect or not self._connect()):
            self.dropped += len(lines)
            return
        sock = self.sock
        header = self._header(time.time())
        send = sock.send
        for i, line in enumerate(lines):
            msg = header + line.encode("utf-8", "replace") + b"\n"
            if len(msg) > SYSLOG_MAXLEN:
                msg = msg[:SYSLOG_MAXLEN - 1] + b"\n"
            try:
                send(msg)
            except (BlockingIOError, InterruptedError):
                self.dropped += 1            # the receiver's queue is full
            except OSError as e:
                self.dropped += 1
                if self.spec.kind == "unix" and e.errno in (errno.ECONNREFUSED, errno.ENOTCONN,
                                                            errno.ENOENT, errno.EPIPE):
                    # The syslog daemon went away (restarted): reconnect later.
                    self.dropped += len(lines) - i - 1
                    sock.close()
                    self.sock = None
                    self._next_connect = time.monotonic() + RECONNECT_DELAY
                    return
                # udp: ECONNREFUSED reports an earlier datagram that found no
                # listener; the socket stays usable.

    def close(self) -> None:
        self.flush()
        if self.pending:
            self.dropped += self.pending.count(b"\n")
            self.pending = b""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self._own_fd and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1
        self._own_fd = False


# -- formats ------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_date_cache = [-1, ""]


def haproxy_date(epoch: float) -> str:
    """HAProxy's accept date, "20/Nov/2026:22:19:17.568" (local time).

    The part up to the second is cached: formatting runs once per second,
    not once per line.
    """
    return _date_second(epoch) + _date_millis(epoch)


def _date_second(epoch: float) -> str:
    """The date up to the second ("20/Nov/2026:22:19:17"), from the cache
    while the second is the same."""
    sec = int(epoch)
    if _date_cache[0] != sec:
        t = time.localtime(sec)
        _date_cache[0] = sec
        _date_cache[1] = "%02d/%s/%04d:%02d:%02d:%02d" % (
            t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)
    return _date_cache[1]


def _date_millis(epoch: float) -> str:
    """The milliseconds of the date (".568"), a constant string each."""
    sec = int(epoch)
    ms = int((epoch - sec) * 1000)
    return _MILLIS[ms if 0 <= ms < 1000 else 0]


_MILLIS = tuple(".%03d" % i for i in range(1000))      # ".000" .. ".999"

def iso_date(epoch: float) -> str:
    t = time.localtime(epoch)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03d" % int((epoch % 1) * 1000) + time.strftime("%z", t)


def tcplog_line(r: dict) -> str:
    """HAProxy's `option tcplog` line from a session record.

    Format: %ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq
    Times are in ms; -1 where a phase did not happen (as HAProxy writes).
    """
    return "%s:%d [%s] %s %s/%s %d/%d/%d %d %s %d/%d/%d/%d/%s %d/%d" % (
        r["client_ip"], r["client_port"], haproxy_date(r["accept_time"]),
        r["frontend"], r["backend"], r["server"],
        r["tw"], r["tc"], r["tt"], r["bytes_read"], r["termination_state"],
        r["actconn"], r["feconn"], r["beconn"], r["srv_conn"],
        ("+%d" % r["retries"]) if r.get("redispatched") else str(r["retries"]),
        r["srv_queue"], r["backend_queue"])


def connection_error_line(fmt: str, client_ip: str, client_port: int, accept_time: float,
                          frontend: str, bind: str, message: str) -> str:
    """A connection that failed before any request (a TLS handshake), as
    HAProxy logs it: "%ci:%cp [%t] <frontend>/<bind>: <message>" (the
    same line in httplog and tcplog); in JSON the same fields, named."""
    if fmt == "json":
        return json.dumps({"client_ip": client_ip, "client_port": client_port,
                           "accept_date": iso_date(accept_time), "frontend": frontend,
                           "bind": bind, "message": message}, separators=(",", ":"))
    return "%s:%d [%s] %s/%s: %s" % (client_ip, client_port, haproxy_date(accept_time),
                                     frontend, bind, message)


def json_line(r: dict) -> str:
    """The JSON access-log line: the same fields as the text formats."""
    out = dict(r)
    out["accept_date"] = iso_date(out.pop("accept_time"))
    out.pop("redispatched", None)
    return json.dumps(out, separators=(",", ":"))



def _escape_request(text: str) -> str:
    """HAProxy's log escaping for the quoted request: '"', controls and
    non-ASCII become #XX, so a line is always one parsable line."""
    if text.isprintable() and '"' not in text and text.isascii():
        return text
    return "".join(c if (" " <= c < "\x7f" and c != '"') else "#%02X" % (ord(c) & 0xFF) for c in text)


# An HTTP transaction record, in the order of the httplog line. The worker
# builds it as a plain tuple (one per request, no dict); JSON names it.
HTTP_FIELDS = (
    "client_ip", "client_port", "accept_time", "frontend", "backend", "server",
    "tr", "tw", "tc", "tr_server", "ta", "status", "bytes_read",
    "captured_request_cookie", "captured_response_cookie", "termination_state",
    "actconn", "feconn", "beconn", "srv_conn", "retries", "redispatched",
    "srv_queue", "backend_queue", "request",
)


def httplog_values(v: tuple) -> str:
    """HAProxy's `option httplog` line from a record tuple (HTTP_FIELDS):

    %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc
    %ac/%fc/%bc/%sc/%rc %sq/%bq %{+Q}r
    """
    (ip, port, t, fe, be, srv, tr, tw, tc, trs, ta, status, nbytes, cc, cs, ts,
     ac, fc, bc, sc, retries, redispatched, sq, bq, request) = v
    # (the escaped text is printable ASCII without '"': escaping it again,
    # as httplog_text does, changes nothing)
    return httplog_text(ip, port, t, fe, be, srv, tr, tw, tc, trs, ta, status, nbytes, cc, cs,
                        ts, "", "", ac, fc, bc, sc, retries, redispatched, sq, bq,
                        _escape_request(request).encode("ascii"))


# Small numbers as text, made once: most numbers of a line (times in ms,
# counts, status) are small, and taking one costs less than formatting it.
_SMALL_MIN, _SMALL_MAX = -1, 1023
_SMALL = tuple(str(i) for i in range(_SMALL_MIN, _SMALL_MAX + 1))


def _num(n: int) -> str:
    """str(n), from _SMALL when it is there."""
    if _SMALL_MIN <= n <= _SMALL_MAX:
        return _SMALL[n - _SMALL_MIN]
    return f"{n}"


def httplog_text(ip, port: int, t: float, fe, be, srv, tr: int, tw: int, tc: int, trs: int,
                 ta: int, status: int, nbytes: int, cc, cs, ts1, ts2, ts3, ac: int, fc: int,
                 bc: int, sc: int, retries: int, redispatched: bool, sq: int, bq: int,
                 request) -> str:
    """The httplog line of httplog_values from its fields as arguments (no
    record tuple: the worker passes C values, logs.pxd): the termination
    state as the concatenation ts1 + ts2 + ts3, the request line as bytes,
    or as a tuple of bytes to join with spaces (method, target, version),
    escaped here as _escape_request escapes its latin-1 text.

    Written byte by byte into one buffer (_LINE) when every text part is
    ASCII and the line fits, which the compiled build does in C; else made
    by _httplog_joined, to the same text."""
    line = _httplog_fast(ip, port, t, fe, be, srv, tr, tw, tc, trs, ta, status, nbytes, cc, cs,
                         ts1, ts2, ts3, ac, fc, bc, sc, retries, redispatched, sq, bq, request)
    if line is not None:
        return line
    if type(request) is tuple:
        request = b" ".join(request)
    return _httplog_joined(ip, port, t, fe, be, srv, tr, tw, tc, trs, ta, status, nbytes, cc, cs,
                           ts1, ts2, ts3, ac, fc, bc, sc, retries, redispatched, sq, bq,
                           _escape_request(request.decode("latin-1")))


def _httplog_joined(ip, port: int, t: float, fe, be, srv, tr: int, tw: int, tc: int, trs: int,
                    ta: int, status: int, nbytes: int, cc, cs, ts1, ts2, ts3, ac: int, fc: int,
                    bc: int, sc: int, retries: int, redispatched: bool, sq: int, bq: int,
                    request: str) -> str:
    """httplog_text as an f-string, request already escaped: any part."""
    rc = "+" + _num(retries) if redispatched else _num(retries)
    return (f'{ip}:{_num(port)} [{_date_second(t)}{_date_millis(t)}] {fe} {be}/{srv} '
            f'{_num(tr)}/{_num(tw)}/{_num(tc)}/{_num(trs)}/{_num(ta)} '
            f'{_num(status)} {_num(nbytes)} {cc} {cs} {ts1}{ts2}{ts3} '
            f'{_num(ac)}/{_num(fc)}/{_num(bc)}/{_num(sc)}/{rc} {_num(sq)}/{_num(bq)} '
            f'"{request}"')


_LINE = bytearray(8192)         # where _httplog_fast writes a line (one worker, one line at a time)
_HEX_DIGITS = b"0123456789ABCDEF"
_MARGIN = 8                     # bytes kept after each checked write, for the separators


def _httplog_fast(ip, port: int, t: float, fe, be, srv, tr: int, tw: int, tc: int, trs: int,
                  ta: int, status: int, nbytes: int, cc, cs, ts1, ts2, ts3, ac: int, fc: int,
                  bc: int, sc: int, retries: int, redispatched: bool, sq: int, bq: int,
                  request):
    """httplog_text written into _LINE; None when a text part is not an
    ASCII str or the line does not fit (the caller joins it instead)."""
    buf = _LINE
    p = buf
    lim = len(buf) - _MARGIN
    i = _put_text(p, 0, lim, ip)
    if i < 0:
        return None
    p[i] = 58                                   # ':'
    i = _put_int(p, i + 1, lim, port)
    if i < 0:
        return None
    p[i] = 32
    p[i + 1] = 91                               # ' ['
    i = _put_text(p, i + 2, lim, _date_second(t))
    if i < 0:
        return None
    i = _put_text(p, i, lim, _date_millis(t))
    if i < 0:
        return None
    p[i] = 93
    p[i + 1] = 32                               # '] '
    i = _put_text(p, i + 2, lim, fe)
    if i < 0:
        return None
    p[i] = 32
    i = _put_text(p, i + 1, lim, be)
    if i < 0:
        return None
    p[i] = 47                                   # '/'
    i = _put_text(p, i + 1, lim, srv)
    if i < 0:
        return None
    p[i] = 32
    i = _put_int(p, i + 1, lim, tr)
    if i < 0:
        return None
    p[i] = 47
    i = _put_int(p, i + 1, lim, tw)
    if i < 0:
        return None
    p[i] = 47
    i = _put_int(p, i + 1, lim, tc)
    if i < 0:
        return None
    p[i] = 47
    i = _put_int(p, i + 1, lim, trs)
    if i < 0:
        return None
    p[i] = 47
    i = _put_int(p, i + 1, lim, ta)
    if i < 0:
        return None
    p[i] = 32
    i = _put_int(p, i + 1, lim, status)
    if i < 0:
        return None
    p[i] = 32
    i = _put_int(p, i + 1, lim, nbytes)
    if i < 0:
        return None
    p[i] = 32
    i = _put_text(p, i + 1, lim, cc)
    if i < 0:
        return None
    p[i] = 32
    i = _put_text(p, i + 1, lim, cs)
    if i < 0:
        return None
    p[i] = 32
    i = _put_text(p, i + 1, lim, ts1)
    if i < 0:
        return None
    i = _put_text(p, i, lim, ts2)
    if i < 0:
        return None
    i = _put_text(p, i, lim, ts3)
    if i < 0:
        return None
    p[i] = 32
    i = _put_int(p, i + 1, lim, ac)
    if i < 0:
        return None
    p[i] = 47
    i = _put_int(p, i + 1, lim, fc)
    if i < 0:
        return None
    p[i] = 47
    i = _put_int(p, i + 1, lim, bc)
    if i < 0:
        return None
    p[i] = 47
    i = _put_int(p, i + 1, lim, sc)
    if i < 0:
        return None
    p[i] = 47
    i += 1
    if redispatched:
        p[i] = 43                               # '+'
        i += 1
    i = _put_int(p, i, lim, retries)
    if i < 0:
        return None
    p[i] = 32
    i = _put_int(p, i + 1, lim, sq)
    if i < 0:
        return None
    p[i] = 47
    i = _put_int(p, i + 1, lim, bq)
    if i < 0:
        return None
    p[i] = 32
    p[i + 1] = 34                               # ' "'
    i += 2
    if type(request) is tuple:
        parts = request
        for k in range(len(parts)):
            if k:
                p[i] = 32
                i += 1
            i = _put_request(p, i, lim, parts[k])
            if i < 0:
                return None
    else:
        i = _put_request(p, i, lim, request)
        if i < 0:
            return None
    p[i] = 34
    return p[:i + 1].decode("ascii")


def _put_text(p, pos: int, lim: int, s) -> int:
    """Write the str s at p[pos]; the end, or -1 when s is not an ASCII
    str or would pass lim."""
    if type(s) is not str:
        return -1
    text = s
    if pos + len(text) > lim:
        return -1
    for ch in text:
        c = ord(ch)
        if c > 127:
            return -1
        p[pos] = c
        pos += 1
    return pos


def _put_int(p, pos: int, lim: int, n: int) -> int:
    """Write n in decimal at p[pos]; the end, or -1 past lim."""
    if pos + 21 > lim:
        return -1
    if n < 0:
        p[pos] = 45                             # '-'
        pos += 1
        n = -n
    u = n                                       # unsigned in C: plain divisions
    end = pos + 1
    m = u // 10
    while m:
        end += 1
        m //= 10
    i = end
    while True:
        i -= 1
        p[i] = 48 + u % 10
        u //= 10
        if not u:
            break
    return end


def _put_request(p, pos: int, lim: int, request: bytes) -> int:
    """Write the request line at p[pos], escaped as _escape_request does
    ('"', controls and bytes above 126 as #XX); the end, or -1 past lim."""
    n = len(request)
    if pos + 3 * n > lim:
        return -1
    q = request
    digits = _HEX_DIGITS
    h = digits
    for k in range(n):
        c = q[k]
        if c < 32 or c > 126 or c == 34:
            p[pos] = 35                         # '#'
            p[pos + 1] = h[c >> 4]
            p[pos + 2] = h[c & 15]
            pos += 3
        else:
            p[pos] = c
            pos += 1
    return pos


def json_http_values(v: tuple) -> str:
    """The JSON access-log line of a record tuple (HTTP_FIELDS)."""
    return json_line(dict(zip(HTTP_FIELDS, v)))


def httplog_line(r: dict) -> str:
    """httplog from a record as a dict with the HTTP_FIELDS keys."""
    return httplog_values(tuple(r.get(k, 0 if k in _HTTP_NUMBERS else False) for k in HTTP_FIELDS))


# The fields httplog writes as numbers (%d): a missing one is 0.
_HTTP_NUMBERS = frozenset(("client_port", "tr", "tw", "tc", "tr_server", "ta", "status",
                           "bytes_read", "actconn", "feconn", "beconn", "srv_conn",
                           "retries", "srv_queue", "backend_queue"))


json_http_line = json_line
