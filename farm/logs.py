"""Logging: structlog for lifecycle events, and the access log.

Event log: one line per event, through structlog. On a terminal the console
renderer; otherwise (or to a file) JSON lines. Every line is written with a
single write() on an O_APPEND descriptor, so lines from the master and the
workers never interleave mid-line, and the file can be reopened on SIGUSR1.

Access log: one line per TCP session or HTTP request, in HAProxy's tcplog /
httplog text formats (halog reads them) or as JSON. Lines are buffered for a
loop turn and written with one write() at the end of the turn.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time

import structlog

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


def get_logger(**bind):
    """A structlog logger with the given context bound (e.g. proc="master")."""
    return structlog.get_logger().bind(**bind)


# -- access log ---------------------------------------------------------------

MAX_PENDING = 4 * 1024 * 1024   # bytes kept while the target cannot take more
PIPE_ATOMIC = 4096              # writes to a pipe up to PIPE_BUF are atomic


class AccessLog:
    """Buffered access-log writer for one worker.

    target: "off", "stdout" or a file path (opened O_APPEND, created 0640).
    write(line) appends to the turn's buffer; flush() is called by the loop
    at the end of every turn and writes everything with one write() (to a
    pipe: in chunks of at most PIPE_BUF, cut at line ends, so lines of
    several workers never tear). What cannot be written is kept up to
    MAX_PENDING bytes; beyond that lines are dropped and counted.
    """

    def __init__(self, target: str):
        self.target = target
        self.enabled = target != "off"
        self.fd = -1
        self.is_pipe = False
        self.buf: list[str] = []
        self.pending = b""
        self.dropped = 0
        if self.enabled:
            self.reopen()

    def reopen(self) -> None:
        """(Re)open the target: after logrotate renamed the file (SIGUSR1)."""
        if not self.enabled:
            return
        if self.target == "stdout":
            self.fd = 1
        else:
            self.flush()
            fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            old, self.fd = self.fd, fd
            if old > 2:
                os.close(old)
        try:
            import stat
            self.is_pipe = not stat.S_ISREG(os.fstat(self.fd).st_mode)
        except OSError:
            self.is_pipe = True

    def write(self, line: str) -> None:
        self.buf.append(line)

    def flush(self) -> None:
        if not self.buf and not self.pending:
            return
        data = self.pending + ("\n".join(self.buf) + "\n").encode("utf-8", "replace") if self.buf else self.pending
        self.buf.clear()
        self.pending = b""
        try:
            if self.is_pipe:
                data = self._write_pipe(data)
            else:
                n = os.write(self.fd, data)
                data = data[n:]
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EINTR):
                self.dropped += data.count(b"\n")
                data = b""
        if data:
            if len(data) > MAX_PENDING:
                cut = data.rfind(b"\n", 0, len(data) - MAX_PENDING) + 1
                self.dropped += data.count(b"\n", 0, cut)
                data = data[cut:]
            self.pending = data

    def _write_pipe(self, data: bytes) -> bytes:
        while data:
            if len(data) <= PIPE_ATOMIC:
                chunk = len(data)
            else:
                chunk = data.rfind(b"\n", 0, PIPE_ATOMIC) + 1 or PIPE_ATOMIC
            n = os.write(self.fd, data[:chunk])
            data = data[n:]
        return data

    def close(self) -> None:
        self.flush()
        if self.fd > 2:
            os.close(self.fd)
        self.fd = -1


# -- formats ------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_date_cache = [-1, ""]


def haproxy_date(epoch: float) -> str:
    """HAProxy's accept date, "20/Nov/2026:22:19:17.568" (local time).

    The part up to the second is cached: formatting runs once per second,
    not once per line.
    """
    sec = int(epoch)
    if _date_cache[0] != sec:
        t = time.localtime(sec)
        _date_cache[0] = sec
        _date_cache[1] = "%02d/%s/%04d:%02d:%02d:%02d" % (
            t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)
    return "%s.%03d" % (_date_cache[1], int((epoch - sec) * 1000))


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


def json_line(r: dict) -> str:
    """The JSON access-log line: the same fields as the text formats."""
    out = dict(r)
    out["accept_date"] = iso_date(out.pop("accept_time"))
    out.pop("redispatched", None)
    return json.dumps(out, separators=(",", ":"))


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def _escape_request(text: str) -> str:
    """HAProxy's log escaping for the quoted request: '"', controls and
    non-ASCII become #XX, so a line is always one parsable line."""
    if text.isprintable() and '"' not in text and text.isascii():
        return text
    return "".join(c if (" " <= c < "\x7f" and c != '"') else "#%02X" % (ord(c) & 0xFF) for c in text)


def httplog_line(r: dict) -> str:
    """HAProxy's `option httplog` line from a transaction record:

    %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc
    %ac/%fc/%bc/%sc/%rc %sq/%bq %{+Q}r
    """
    return '%s:%d [%s] %s %s/%s %d/%d/%d/%d/%d %d %d %s %s %s %d/%d/%d/%d/%s %d/%d "%s"' % (
        r["client_ip"], r["client_port"], haproxy_date(r["accept_time"]),
        r["frontend"], r["backend"], r["server"],
        r["tr"], r["tw"], r["tc"], r["tr_server"], r["ta"],
        r["status"], r["bytes_read"],
        r["captured_request_cookie"], r["captured_response_cookie"], r["termination_state"],
        r["actconn"], r["feconn"], r["beconn"], r["srv_conn"],
        ("+%d" % r["retries"]) if r.get("redispatched") else str(r["retries"]),
        r["srv_queue"], r["backend_queue"], _escape_request(r["request"]))


json_http_line = json_line
