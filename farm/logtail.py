"""`farm logs`: read, filter and follow the access log.

    farm logs [-f] [--file PATH] [-c CONFIG] [--status 5xx|404|4xx,5xx]
              [--backend NAME] [--server NAME] [--frontend NAME]
              [--slow 500ms] [--json] [--lines N] [--summary]

Three parts, usable on their own:

- the parser: parse_line(text) -> Entry | None understands HAProxy's httplog
  and tcplog lines (with or without a syslog header in front, with or
  without captured headers) and farm's JSON lines; Entry.fields uses the key
  names of farm's JSON format, whatever the line's format;
- the filter: Filter(status=..., backend=..., slow_ms=...).match(entry);
- the follower: Follower(path).poll() -> complete lines, following the path
  across rotations the way `tail -F` does (a rename or a new file at the
  path: the old file is read to its end, and kept a while for the lines the
  workers still write to it before they reopen; a truncation: read again
  from the start), never returning a line twice.

--summary counts the matching lines instead of printing them (status
codes, per server, percentiles: farm/logsummary.py).

Exit codes: 0; 1 when the file does not exist (or cannot be read) and -f
is not given; 2 on a usage error (bad option value, no access-log file in the
config, a --frontend/--backend/--server that the config does not have).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import time
from typing import Callable, Iterable, Iterator

# ------------------------------------------------------------------ parser

# An optional syslog header, as a syslog daemon writes it to a file or as
# farm sends it: RFC 5424 "<134>1 TIMESTAMP HOST APP PROCID MSGID SD ", or
# RFC 3164 "[<134>]Nov 20 22:19:17 [HOST ]TAG[PID]: " (also with an ISO
# timestamp, rsyslog's high-precision file format).
_SYSLOG_PREFIX = re.compile(
    r"(?:<\d{1,3}>1 \S+ \S+ \S+ \S+ \S+ (?:-|(?:\[[^\]]*\])+) "
    r"|(?:<\d{1,3}>)?(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+) "
    r"(?:\S+ )?[^\s\[:]+(?:\[\d+\])?: )")

_COMMON = (r"(?P<client_ip>\S+):(?P<client_port>\d+) \[(?P<accept_date>[^\]]+)\] "
           r"(?P<frontend>\S+) (?P<backend>[^\s/]+)/(?P<server>\S+) ")
_CONNS = (r"(?P<actconn>\d+)/(?P<feconn>\d+)/(?P<beconn>\d+)/(?P<srv_conn>\d+)/(?P<retries>\+?\d+) "
          r"(?P<srv_queue>\d+)/(?P<backend_queue>\d+)")

# %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc
# %ac/%fc/%bc/%sc/%rc %sq/%bq [{%hrl}] [{%hsl}] %{+Q}r
HTTPLOG_RE = re.compile(
    _COMMON
    + r"(?P<tr>-?\d+)/(?P<tw>-?\d+)/(?P<tc>-?\d+)/(?P<tr_server>-?\d+)/(?P<ta>\+?-?\d+) "
    r"(?P<status>-?\d+) (?P<bytes_read>\+?\d+) "
    r"(?P<captured_request_cookie>\S+) (?P<captured_response_cookie>\S+) (?P<termination_state>\S{4}) "
    + _CONNS
    + r"(?: \{(?P<captured_request_headers>[^}]*)\})?(?: \{(?P<captured_response_headers>[^}]*)\})?"
    r' "(?P<request>.*)"$')

# %ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq
TCPLOG_RE = re.compile(
    _COMMON
    + r"(?P<tw>-?\d+)/(?P<tc>-?\d+)/(?P<tt>\+?-?\d+) (?P<bytes_read>\+?\d+) (?P<termination_state>\S{2,4}) "
    + _CONNS + "$")

_INT_FIELDS = frozenset((
    "client_port", "tr", "tw", "tc", "tr_server", "ta", "tt", "status", "bytes_read",
    "actconn", "feconn", "beconn", "srv_conn", "srv_queue", "backend_queue"))


class Entry:
    """One parsed access-log line.

    raw: the line as read (no newline); format: "httplog", "tcplog" or
    "json"; fields: the values under farm's JSON key names (client_ip,
    client_port, accept_date, frontend, backend, server, times tr/tw/tc/
    tr_server/ta (HTTP) or tw/tc/tt (TCP) in ms, status, bytes_read,
    termination_state, actconn/feconn/beconn/srv_conn, retries, srv_queue,
    backend_queue, request...), numbers as ints.
    """

    __slots__ = ("raw", "format", "fields")

    def __init__(self, raw: str, fmt: str, fields: dict):
        self.raw = raw
        self.format = fmt
        self.fields = fields

    @property
    def mode(self) -> str:
        """"http" for a request (it has a status), "tcp" for a session."""
        return "http" if "status" in self.fields else "tcp"

    @property
    def status(self) -> int | None:
        return _as_int(self.fields.get("status"))

    @property
    def total_ms(self) -> int | None:
        """Total time: Ta for a request, Tt for a TCP session."""
        f = self.fields
        return _as_int(f.get("ta") if "status" in f else f.get("tt"))

    def __repr__(self) -> str:
        return f"Entry({self.format}, {self.fields!r})"


def _frontend_name(value):
    """The frontend of a log line without HAProxy's "~" (%ft marks TLS
    connections with it): www~ is frontend www."""
    if isinstance(value, str) and value.endswith("~"):
        return value[:-1]
    return value


def _as_int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.lstrip("+"))
        except ValueError:
            return None
    if isinstance(value, float):
        return int(value)
    return None


def _typed(groups: dict) -> dict:
    out = {}
    for key, value in groups.items():
        if value is None:
            continue
        if key == "retries":
            out["retries"] = int(value.lstrip("+"))
            out["redispatched"] = value.startswith("+")
        elif key in _INT_FIELDS:
            out[key] = int(value.lstrip("+"))
        else:
            out[key] = value
    return out


def strip_syslog(text: str) -> str:
    """The log line without the syslog header in front of it, if any."""
    if text[:1] == "<" or text[:1].isalpha() or text[:4].isdigit():
        m = _SYSLOG_PREFIX.match(text)
        if m:
            return text[m.end():]
    return text


def parse_line(text: str) -> Entry | None:
    """An access-log line (httplog, tcplog or JSON; a syslog header is
    skipped) -> Entry, or None when it is none of them."""
    raw = text.rstrip("\r\n")
    body = strip_syslog(raw)
    if body.startswith("{"):
        try:
            fields = json.loads(body)
        except ValueError:
            return None
        return Entry(raw, "json", fields) if isinstance(fields, dict) else None
    m = HTTPLOG_RE.match(body)
    if m:
        return Entry(raw, "httplog", _typed(m.groupdict()))
    m = TCPLOG_RE.match(body)
    if m:
        return Entry(raw, "tcplog", _typed(m.groupdict()))
    return None


# ------------------------------------------------------------------ filters

_STATUS_CLASS = re.compile(r"([1-5])xx", re.I)
_STATUS_RANGE = re.compile(r"(\d{3})-(\d{3})")


def parse_status_spec(text: str) -> tuple[tuple[int, int], ...]:
    """"5xx" | "404" | "4xx,5xx" | "500-504" (comma-separated) -> ranges."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if m := _STATUS_CLASS.fullmatch(part):
            lo = int(m.group(1)) * 100
            out.append((lo, lo + 99))
        elif m := _STATUS_RANGE.fullmatch(part):
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise ValueError(f"empty status range {part!r}")
            out.append((lo, hi))
        elif part.isdigit() and len(part) == 3:
            out.append((int(part), int(part)))
        else:
            raise ValueError(f"invalid status {part!r} (expected e.g. 5xx, 404, 4xx,5xx or 500-504)")
    return tuple(out)


def parse_slow(text: str) -> int:
    """"500ms" | "2s" | "1m" | "250" (ms) -> milliseconds."""
    from farm.loader import parse_duration
    return int(round(parse_duration(text.strip()) * 1000))


def _names(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    return frozenset(n.strip() for n in text.split(",") if n.strip())


class Filter:
    """All the given conditions must hold (an unset one always holds).

    status: ranges from parse_status_spec (a TCP session, having no status,
    never matches); frontend/backend/server: names (comma-separated lists
    allowed); slow_ms: total time (Ta, or Tt for TCP) at least this long.
    """

    def __init__(self, status: tuple[tuple[int, int], ...] | None = None,
                 frontend: str | None = None, backend: str | None = None,
                 server: str | None = None, slow_ms: int | None = None):
        self.status = status
        self.frontend = _names(frontend)
        self.backend = _names(backend)
        self.server = _names(server)
        self.slow_ms = slow_ms

    @property
    def active(self) -> bool:
        return any(x is not None for x in (self.status, self.frontend, self.backend,
                                           self.server, self.slow_ms))

    def match(self, e: Entry) -> bool:
        f = e.fields
        if self.status is not None:
            st = e.status
            if st is None or not any(lo <= st <= hi for lo, hi in self.status):
                return False
        if self.frontend is not None and _frontend_name(f.get("frontend")) not in self.frontend:
            return False
        if self.backend is not None and f.get("backend") not in self.backend:
            return False
        if self.server is not None and f.get("server") not in self.server:
            return False
        if self.slow_ms is not None:
            t = e.total_ms
            if t is None or t < self.slow_ms:
                return False
        return True


# ------------------------------------------------------------------ reading

CHUNK = 1 << 16


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace")


def read_lines(fd: int, start: int, end: int) -> Iterator[bytes]:
    """The lines (without newline) between byte offsets start and end of
    fd, in order; an unterminated last line included."""
    pos = start
    carry = b""
    while pos < end:
        data = os.pread(fd, min(CHUNK * 16, end - pos), pos)
        if not data:
            break
        pos += len(data)
        parts = (carry + data).split(b"\n")
        carry = parts.pop()
        yield from parts
    if carry:
        yield carry


def read_lines_reversed(fd: int, end: int) -> Iterator[bytes]:
    """The lines before byte offset end of fd, last first (an
    unterminated last line included)."""
    pos = end
    carry = b""
    first = True
    while pos > 0:
        size = min(CHUNK, pos)
        pos -= size
        data = os.pread(fd, size, pos) + carry
        if first:
            first = False
            if data.endswith(b"\n"):
                data = data[:-1]
        parts = data.split(b"\n")
        carry = parts[0]
        for line in reversed(parts[1:]):
            yield line
    if carry:
        yield carry


def last_newline_end(fd: int, size: int) -> int:
    """The offset just after the last newline before size (0 if none):
    where the complete lines of a file being written end."""
    pos = size
    while pos > 0:
        n = min(CHUNK, pos)
        data = os.pread(fd, n, pos - n)
        i = data.rfind(b"\n")
        if i >= 0:
            return pos - n + i + 1
        pos -= n
    return 0


# ------------------------------------------------------------------ following

ROTATED_GRACE = 5.0     # seconds a rotated file is still read after it stopped growing
READ_MAX = 4 << 20      # bytes read from one file per poll (fairness between files)


class _Tracked:
    """One open file being followed: its identity, offset and partial line."""

    def __init__(self, fd: int, pos: int):
        st = os.fstat(fd)
        self.fd = fd
        self.ident = (st.st_dev, st.st_ino)
        self.pos = pos
        self.partial = b""
        self.last_growth = time.monotonic()

    def read(self, out: list[bytes]) -> bool:
        """Append the new complete lines to out; True if anything was read."""
        got = False
        budget = READ_MAX
        while budget > 0:
            data = os.pread(self.fd, min(CHUNK * 16, budget), self.pos)
            if not data:
                break
            got = True
            self.pos += len(data)
            budget -= len(data)
            parts = (self.partial + data).split(b"\n")
            self.partial = parts.pop()
            out.extend(parts)
        if got:
            self.last_growth = time.monotonic()
        return got

    def close(self, out: list[bytes]) -> None:
        if self.partial:       # a line cut short (disk full, crash): still a line
            out.append(self.partial)
            self.partial = b""
        os.close(self.fd)


class Follower:
    """Follow `path` like `tail -F`, across renames, re-creations and
    truncations, returning every complete line exactly once.

    poll() returns the lines that arrived since the last call (possibly
    none) and never blocks. On a rotation (the path now names another file)
    the old file stays open and is read until it has not grown for
    ROTATED_GRACE seconds: workers keep appending to it until they have
    reopened their log (SIGUSR1), and those lines count too. A file that
    shrank below the offset read so far was truncated: it is read again
    from its start.
    """

    def __init__(self, path: str, start: int | None = None, notice: Callable[[str], None] | None = None,
                 grace: float = ROTATED_GRACE):
        self.path = path
        self.current: _Tracked | None = None
        self.rotated: list[_Tracked] = []
        self.notice = notice or (lambda msg: None)
        self.grace = grace
        self._missing_said = False
        if start is not None:
            self._open(start)

    def _open(self, start: int | None = None) -> bool:
        """Open the file at path; start at `start` (None: its beginning)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError as e:
            self.notice(f"cannot open {self.path}: {e.strerror}")
            return False
        self.current = _Tracked(fd, start or 0)
        return True

    def adopt(self, fd: int, start: int) -> None:
        """Follow an already open descriptor of path from offset start."""
        self.current = _Tracked(fd, start)

    def poll(self) -> list[bytes]:
        out: list[bytes] = []
        now = time.monotonic()
        for t in list(self.rotated):
            if not t.read(out) and now - t.last_growth > self.grace:
                t.close(out)
                self.rotated.remove(t)
        cur = self.current
        if cur is not None:
            cur.read(out)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if not self._missing_said:
                self._missing_said = True
                self.notice(f"{self.path} has disappeared; waiting for it")
            return out
        except OSError:
            return out
        self._missing_said = False
        if cur is None:
            if self._open():
                self.current.read(out)
            return out
        if (st.st_dev, st.st_ino) != cur.ident:
            # Rotated: a new file at path. Keep draining the old one.
            self.notice(f"{self.path} was rotated; following the new file")
            cur.read(out)
            self.rotated.append(cur)
            self.current = None
            if self._open():
                self.current.read(out)
        elif st.st_size < cur.pos:
            self.notice(f"{self.path} was truncated; reading it from the start")
            cur.pos = 0
            cur.partial = b""
            cur.read(out)
        return out

    def close(self) -> None:
        for t in self.rotated + ([self.current] if self.current else []):
            os.close(t.fd)
        self.rotated = []
        self.current = None


# ------------------------------------------------------------------ command

DEFAULT_FOLLOW_LINES = 10
POLL_INTERVAL = 0.1


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `farm logs` (the caller adds -c/--config)."""

    def status(text):
        try:
            return parse_status_spec(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e))

    def slow(text):
        try:
            return parse_slow(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e))

    def count(text):
        if not text.isdigit():
            raise argparse.ArgumentTypeError(f"expected a number of lines, got {text!r}")
        return int(text)

    p.add_argument("-f", "--follow", action="store_true",
                   help="keep reading as lines are added, across log rotations (like tail -F)")
    p.add_argument("--file", help="the access log to read (default: [log] access of the config)")
    p.add_argument("--status", type=status, metavar="SPEC",
                   help="only these statuses: 5xx, 404, 4xx,5xx, 500-504 (HTTP requests only)")
    p.add_argument("--frontend", metavar="NAME", help="only this frontend (NAME[,NAME...])")
    p.add_argument("--backend", metavar="NAME", help="only this backend (NAME[,NAME...])")
    p.add_argument("--server", metavar="NAME", help="only this server (NAME[,NAME...])")
    p.add_argument("--slow", type=slow, metavar="DURATION",
                   help="only requests/sessions whose total time (Ta, or Tt for TCP) is at least this: 500ms, 2s")
    p.add_argument("--json", action="store_true",
                   help="print the parsed records as JSON lines (with --summary: the summary as JSON)")
    p.add_argument("--summary", action="store_true",
                   help="count instead of printing: status codes, per server, percentiles of Tc/Tr/Ta "
                        "(halog -st, -srv, -pct)")
    p.add_argument("-n", "--lines", type=count, metavar="N",
                   help=f"print only the last N matching lines already in the file "
                        f"(default: all; {DEFAULT_FOLLOW_LINES} with -f)")


class _Printer:
    def __init__(self, flt: Filter, as_json: bool, out=None):
        self.flt = flt
        self.as_json = as_json
        self.out = out or sys.stdout.buffer
        self.strict = flt.active or as_json   # unparsable lines are skipped

    def select(self, line: bytes) -> bytes | None:
        """The bytes to print for line (without newline), or None."""
        if not self.strict:
            return line
        e = parse_line(_decode(line))
        if e is None or not self.flt.match(e):
            return None
        if self.as_json:
            return json.dumps(e.fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")
        return line

    def emit(self, lines: Iterable[bytes]) -> None:
        chunks = []
        for line in lines:
            s = self.select(line)
            if s is not None:
                chunks.append(s)
                chunks.append(b"\n")
        if chunks:
            self.out.write(b"".join(chunks))
            self.out.flush()


def _load_config(args):
    """(config or None, error message)."""
    from farm import loader
    try:
        return loader.load(args.config), ""
    except loader.ConfigErrors as e:
        return None, str(e)
    except OSError as e:
        return None, f"{args.config}: {e.strerror or e}"


def _access_path(args, cfg, error: str) -> tuple[str | None, str]:
    """(path, error message)."""
    if args.file:
        return args.file, ""
    if cfg is None:
        return None, error
    from farm import logs
    target = logs.parse_target(cfg.log.access)
    if target.kind != "file":
        return None, (f"{args.config}: [log] access is {cfg.log.access!r}, not a file: "
                      f"pass --file PATH")
    return target.path, ""


# What a log line may name besides the config's proxies and servers.
_LOCAL_SERVERS = ("<NOSRV>", "<STATS>")


def unknown_names(cfg, args) -> list[str]:
    """The --frontend/--backend/--server names that cfg does not have, as
    messages. A request answered by its frontend is logged with the
    frontend's name as backend (HAProxy's rule), so those count too."""
    frontends = {f.name for f in cfg.frontends}
    backends = {b.name for b in cfg.backends}
    servers = {s.name for b in cfg.backends for s in b.servers}
    out = []
    for option, given, known, what in (
            ("--frontend", args.frontend, frontends, "frontend"),
            ("--backend", args.backend, backends | frontends, "backend"),
            ("--server", args.server, servers | set(_LOCAL_SERVERS), "server")):
        for name in sorted(_names(given) or ()):
            if name not in known:
                choices = ", ".join(sorted(known - set(_LOCAL_SERVERS))) or "none"
                out.append(f"{option}: no {what} {name!r} in {args.config} (it has: {choices})")
    return out


def run(args) -> int:
    if args.file:
        # The log is named: the config only serves to check the names, if
        # -c names one (the default config may not be the one that wrote
        # this file) and it is valid.
        from farm.cli import DEFAULT_CONFIG
        given = args.config != DEFAULT_CONFIG and os.path.exists(args.config)
        cfg, error = _load_config(args) if given else (None, "")
    else:
        cfg, error = _load_config(args)
    if cfg is not None:
        problems = unknown_names(cfg, args)
        if problems:
            for msg in problems:
                print(f"farm logs: {msg}", file=sys.stderr)
            return 2
    path, error = _access_path(args, cfg, error)
    if path is None:
        print(f"farm logs: {error}", file=sys.stderr)
        return 2
    if args.summary and args.follow:
        print("farm logs: --summary reads the file once: it does not go with -f", file=sys.stderr)
        return 2
    flt = Filter(status=args.status, frontend=args.frontend, backend=args.backend,
                 server=args.server, slow_ms=args.slow)
    if args.summary:
        return _summarize(path, args, flt)
    printer = _Printer(flt, args.json)
    try:
        return _run(path, args, printer)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (farm logs | head): not an error. Point
        # stdout at /dev/null so that the interpreter's final flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _summarize(path: str, args, flt: Filter) -> int:
    """--summary: the matching lines (the last --lines N of them if given)
    counted by farm/logsummary.py and printed once."""
    from farm.logsummary import Summary
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        print(f"farm logs: {path}: {e.strerror}", file=sys.stderr)
        return 1
    summary = Summary()
    try:
        size = os.fstat(fd).st_size
        if args.lines is not None:
            selected = _last_matching(fd, size, args.lines, _Printer(flt, True))
        else:
            selected = read_lines(fd, 0, size)
        for line in selected:
            e = parse_line(_decode(line))
            if e is None:
                if line.strip():
                    summary.count_unparsed()
            elif flt.match(e):
                summary.add(e)
    finally:
        os.close(fd)
    sys.stdout.write(summary.render_json() if args.json else summary.render())
    return 0


def _notice(msg: str) -> None:
    print(f"farm logs: {msg}", file=sys.stderr, flush=True)


def _run(path: str, args, printer: _Printer) -> int:
    n = args.lines if args.lines is not None else (DEFAULT_FOLLOW_LINES if args.follow else None)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        if not args.follow or not isinstance(e, FileNotFoundError):
            print(f"farm logs: {path}: {e.strerror}", file=sys.stderr)
            return 1
        fd = -1
    if fd < 0:
        _notice(f"{path} does not exist yet; waiting for it")
        follower = Follower(path, notice=_notice)
    else:
        size = os.fstat(fd).st_size
        end = last_newline_end(fd, size) if args.follow else size
        # Following, an unterminated last line is still being written: the
        # follower reads it once complete. Otherwise it is printed as it is.
        if n is None:
            printer.emit(read_lines(fd, 0, end))
        elif n > 0:
            printer.emit(_last_matching(fd, end, n, printer))
        if not args.follow:
            os.close(fd)
            return 0
        follower = Follower(path, notice=_notice)
        follower.adopt(fd, end)
    try:
        while True:
            lines = follower.poll()
            if lines:
                printer.emit(lines)
            else:
                time.sleep(POLL_INTERVAL)
    finally:
        follower.close()


def _last_matching(fd: int, end: int, n: int, printer: _Printer) -> list[bytes]:
    """The last n lines before offset end that the printer selects, in file order."""
    picked: collections.deque = collections.deque()
    for line in read_lines_reversed(fd, end):
        if printer.select(line) is not None:
            picked.appendleft(line)
            if len(picked) >= n:
                break
    return list(picked)
