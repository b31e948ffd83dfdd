"""`farm top`: a live terminal view over the admin socket (hatop's job, built in).

    farm top [-c CONFIG | -s SOCKET] [-i INTERVAL] [--no-color] [--once]

It speaks to the master's admin socket exactly as hatop does: interactive
mode (`prompt`), then `show info` and `show stat` every INTERVAL seconds;
the CSV is parsed by column name, rates are computed here from successive
samples of the counters (farm's CSV reports 0 in its rate columns), and the
keys send `set server B/S state ready|drain|maint` and `set weight B/S N`.

The module has three layers:
  * AdminConnection: the interactive CLI session (prompt framing);
  * pure functions: parse_stat, parse_info, Rates, render, render_help,
    move_selection, key_command -- no curses, no sockets, unit-tested;
  * App: the curses loop (keys, resize, reconnect, colours).
"""

from __future__ import annotations

import csv
import locale
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import NamedTuple

DEFAULT_INTERVAL = 2.0
RETRY_INTERVAL = 1.0        # while the socket is lost
MESSAGE_TIME = 5.0          # how long a command's answer stays on the status line
IO_TIMEOUT = 5.0            # one command's answer
PROMPT = b"> "

TYPE_FRONTEND, TYPE_BACKEND, TYPE_SERVER = 0, 1, 2


# -- the admin connection --------------------------------------------------------


class AdminError(Exception):
    """The admin socket could not be reached or stopped answering."""


class AdminConnection:
    """One interactive CLI session on the admin socket (HAProxy framing:
    after `prompt`, every answer ends with the "> " prompt)."""

    def __init__(self, path: str, timeout: float = IO_TIMEOUT, cli_timeout: float = 60.0):
        self.path = path
        self.timeout = timeout
        self.cli_timeout = cli_timeout
        self.sock: socket.socket | None = None

    def connect(self) -> None:
        self.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError as e:
            s.close()
            raise AdminError(f"{self.path}: {e.strerror or e}") from None
        self.sock = s
        try:
            self.ask("prompt")
            self.ask(f"set timeout cli {int(self.cli_timeout)}")
        except AdminError:
            self.close()
            raise

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def ask(self, command: str) -> str:
        """Send one command line, return its answer without the prompt."""
        if self.sock is None:
            raise AdminError("not connected")
        deadline = time.monotonic() + self.timeout
        buf = b""
        try:
            self.sock.sendall(command.encode() + b"\n")
            while not answer_complete(buf):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AdminError(f"no answer to {command!r}")
                self.sock.settimeout(left)
                data = self.sock.recv(65536)
                if not data:
                    raise AdminError("connection closed by farm")
                buf += data
        except OSError as e:
            self.close()
            raise AdminError(f"{self.path}: {e.strerror or e}") from None
        except AdminError:
            self.close()
            raise
        return buf[:-len(PROMPT)].decode("utf-8", "replace")

    def close(self) -> None:
        if self.sock is None:
            return
        s, self.sock = self.sock, None
        try:
            s.settimeout(0.2)
            s.sendall(b"quit\n")
        except OSError:
            pass
        s.close()


def answer_complete(buf: bytes) -> bool:
    """An interactive answer is complete when it ends with the prompt at the
    start of a line ("> " alone answers `prompt` and empty answers)."""
    return buf == PROMPT or buf.endswith(b"\n" + PROMPT)


# -- parsing ---------------------------------------------------------------------


def parse_stat(text: str) -> list[dict]:
    """`show stat` CSV -> one dict per row, keyed by the header's names
    (values are the raw strings; "" is an empty field)."""
    lines = text.splitlines()
    names = None
    body = []
    for line in lines:
        if line.startswith("# "):
            names = line[2:].rstrip(",").split(",")
        elif line.strip() and names is not None:
            body.append(line)
    if names is None:
        return []
    rows = []
    for values in csv.reader(body):
        if len(values) < 2:
            continue
        rows.append(dict(zip(names, values)))
    return rows


def parse_info(text: str) -> dict:
    """`show info` ("Key: value" lines) -> dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def num(row: dict, key: str) -> int | None:
    """A numeric field, None when empty or absent."""
    v = row.get(key)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        try:
            return int(float(v))
        except ValueError:
            return None


def row_type(row: dict) -> int:
    t = num(row, "type")
    if t is not None:
        return t
    sv = row.get("svname")
    return TYPE_FRONTEND if sv == "FRONTEND" else TYPE_BACKEND if sv == "BACKEND" else TYPE_SERVER


def row_key(row: dict) -> tuple:
    return (row_type(row), row.get("pxname", ""), row.get("svname", ""))


def rate_counter(row: dict) -> int | None:
    """What the request rate is computed from: req_tot where the row has it
    (HTTP), the session total otherwise (TCP)."""
    v = num(row, "req_tot")
    return v if v is not None else num(row, "stot")


class Rates:
    """Per-second rates from successive samples of monotonic counters."""

    def __init__(self):
        self.prev_t: float | None = None
        self.prev: dict = {}
        self.rates: dict = {}

    def update(self, t: float, counters: dict) -> dict:
        rates = {}
        dt = t - self.prev_t if self.prev_t is not None else 0.0
        for key, value in counters.items():
            old = self.prev.get(key)
            if value is None or old is None or dt <= 0 or value < old:
                rates[key] = None    # first sample, or a counter reset (farm restarted)
            else:
                rates[key] = (value - old) / dt
        self.prev_t, self.prev, self.rates = t, dict(counters), rates
        return rates


def sample_counters(info: dict, rows: list[dict]) -> dict:
    counters = {row_key(r): rate_counter(r) for r in rows}
    try:
        counters["requests"] = int(info.get("CumReq", ""))
    except ValueError:
        counters["requests"] = None
    return counters


# -- formatting ------------------------------------------------------------------


def human_bytes(n: int | None) -> str:
    if n is None:
        return ""
    if n < 1024:
        return str(n)
    for unit in "KMGTP":
        n /= 1024
        if n < 1024 or unit == "P":
            return f"{n:.1f}{unit}" if n < 100 else f"{n:.0f}{unit}"
    return str(n)  # pragma: no cover


def human_count(n: int | None, width: int = 7) -> str:
    """A counter, in k/M/G units when it does not fit the column."""
    if n is None:
        return ""
    s = str(n)
    if len(s) <= width:
        return s
    v = float(n)
    for unit in "kMGTP":
        v /= 1000
        s = f"{v:.1f}{unit}" if v < 100 else f"{v:.0f}{unit}"
        if len(s) <= width:
            return s
    return s


def human_rate(r: float | None) -> str:
    if r is None:
        return "-"
    if r < 10:
        return f"{r:.1f}"
    return human_count(int(round(r)))


def human_duration(secs: int | None) -> str:
    if secs is None:
        return ""
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60:02d}s"
    if secs < 86400:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
    return f"{secs // 86400}d{secs % 86400 // 3600:02d}h"


def status_style(status: str) -> str:
    """A row's status -> a style name (colours are chosen by the UI)."""
    s = status.upper()
    if s.startswith("MAINT"):
        return "maint"
    if s.startswith("DRAIN"):
        return "drain"
    if s.startswith("NOLB"):
        return "nolb"
    if s.startswith("UP") or s == "OPEN" or s == "NO CHECK":
        return "trans" if "/" in s else "up"
    if s.startswith("DOWN"):
        return "trans" if "/" in s else "down"
    if s in ("FULL", "STOP", "STOPPED"):
        return "down"
    return ""


def check_text(row: dict) -> str:
    st = row.get("check_status") or ""
    code = row.get("check_code") or ""
    if not st:
        return "-" if row_type(row) == TYPE_SERVER else ""
    return f"{st}/{code}" if code else st


# -- rendering (pure) ------------------------------------------------------------


class Line(NamedTuple):
    """One screen line: (text, style) segments; `reverse` for the cursor."""
    segments: tuple
    reverse: bool = False

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.segments)


class Column(NamedTuple):
    key: str
    header: str
    width: int
    right: bool
    drop: int       # the higher, the sooner it goes on a narrow terminal


COLUMNS = (
    Column("name", "NAME", 0, False, 0),
    Column("status", "STATUS", 10, False, 0),
    Column("weight", "W", 4, True, 1),
    Column("scur", "CUR", 5, True, 1),
    Column("smax", "MAX", 5, True, 6),
    Column("slim", "LIM", 6, True, 8),
    Column("stot", "TOTAL", 7, True, 2),
    Column("rate", "REQ/S", 6, True, 1),
    Column("bin", "IN", 6, True, 5),
    Column("bout", "OUT", 6, True, 5),
    Column("2xx", "2XX", 7, True, 4),
    Column("4xx", "4XX", 6, True, 4),
    Column("5xx", "5XX", 6, True, 3),
    Column("econ", "ECON", 5, True, 4),
    Column("eresp", "ERESP", 5, True, 4),
    Column("check", "CHECK", 9, False, 2),
    Column("lastchg", "LASTCHG", 7, True, 7),
)
NAME_MIN, NAME_MAX = 10, 28


def choose_columns(width: int, name_width: int) -> list[Column]:
    """The columns that fit `width` (one space between columns), dropping
    the least important ones first; NAME and STATUS always stay."""
    cols = [c._replace(width=name_width) if c.key == "name" else c for c in COLUMNS]

    def total(cs):
        return sum(c.width for c in cs) + len(cs) - 1
    while total(cols) > width:
        worst = max(range(len(cols)), key=lambda i: (cols[i].drop, i))
        if cols[worst].drop == 0:
            break
        del cols[worst]
    return cols


def cell(col: Column, value: str) -> str:
    if len(value) > col.width:
        value = value[:col.width - 1] + "~" if col.width > 1 else value[:col.width]
    return value.rjust(col.width) if col.right else value.ljust(col.width)


def row_cells(row: dict, rate: float | None, name: str) -> dict:
    t = row_type(row)
    return {
        "name": name,
        "status": row.get("status", ""),
        "weight": "" if t == TYPE_FRONTEND else (row.get("weight") or ""),
        "scur": row.get("scur", ""),
        "smax": row.get("smax", ""),
        "slim": row.get("slim", ""),
        "stot": human_count(num(row, "stot")),
        "rate": human_rate(rate),
        "bin": human_bytes(num(row, "bin")),
        "bout": human_bytes(num(row, "bout")),
        "2xx": human_count(num(row, "hrsp_2xx")),
        "4xx": human_count(num(row, "hrsp_4xx"), 6),
        "5xx": human_count(num(row, "hrsp_5xx"), 6),
        "econ": human_count(num(row, "econ"), 5),
        "eresp": human_count(num(row, "eresp"), 5),
        "check": check_text(row),
        "lastchg": "" if t == TYPE_FRONTEND else human_duration(num(row, "lastchg")),
    }


def group_rows(rows: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """Rows grouped the way HAProxy orders them: each frontend alone, each
    backend with its servers then its BACKEND row. -> (kind, name, rows)."""
    groups: list[tuple[str, str, list[dict]]] = []
    index: dict = {}
    for r in rows:
        t = row_type(r)
        kind = "frontend" if t == TYPE_FRONTEND else "backend"
        key = (kind, r.get("iid") or r.get("pxname"))
        if key not in index:
            index[key] = len(groups)
            groups.append((kind, r.get("pxname", ""), []))
        groups[index[key]][2].append(r)
    for kind, _, members in groups:
        if kind == "backend":
            members.sort(key=lambda r: row_type(r) == TYPE_BACKEND)   # stable: servers first
    return groups


def servers(rows: list[dict]) -> list[tuple[str, str]]:
    """The selectable rows, in display order: (backend, server)."""
    out = []
    for kind, _, members in group_rows(rows):
        for r in members:
            if row_type(r) == TYPE_SERVER:
                out.append((r.get("pxname", ""), r.get("svname", "")))
    return out


def move_selection(rows: list[dict], selected: tuple | None, delta: int) -> tuple | None:
    """The server `delta` rows away from `selected` (clamped); the first
    server when nothing (or a server that is gone) was selected."""
    srv = servers(rows)
    if not srv:
        return None
    if selected not in srv:
        return srv[0]
    i = min(max(srv.index(selected) + delta, 0), len(srv) - 1)
    return srv[i]


def key_command(key: str, selected: tuple | None, rows: list[dict]) -> str | None:
    """The admin command a key sends for the selected server, or None."""
    if selected is None:
        return None
    ref = f"{selected[0]}/{selected[1]}"
    state = {"r": "ready", "d": "drain", "m": "maint"}.get(key)
    if state:
        return f"set server {ref} state {state}"
    if key in ("+", "-"):
        row = next((r for r in rows if row_type(r) == TYPE_SERVER
                    and (r.get("pxname"), r.get("svname")) == selected), None)
        if row is None:
            return None
        w = num(row, "uweight")          # the user weight (the weight column is the effective one)
        if w is None:
            w = num(row, "weight")
        if w is None:
            return None
        w = min(256, w + 1) if key == "+" else max(0, w - 1)
        return f"set weight {ref} {w}"
    return None


@dataclass
class View:
    """Everything the screen shows."""
    info: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    rates: dict = field(default_factory=dict)
    selected: tuple | None = None
    message: str = ""
    error: bool = False            # the message is an error (socket lost, refused command)
    connected: bool = False
    message_until: float = 0.0     # (monotonic) when the message may go away
    socket: str = ""
    interval: float = DEFAULT_INTERVAL
    updated: float | None = None   # epoch of the last sample


def ellipsis() -> str:
    enc = (locale.getpreferredencoding(False) or "").lower().replace("-", "")
    return "\u2026" if enc == "utf8" else "..."


def header_lines(view: View, width: int) -> list[Line]:
    i = view.info
    rate = view.rates.get("requests")
    # (text, style, drop order: the higher, the sooner it goes when narrow)
    parts = [
        (f"{i.get('Name', 'farm')} {i.get('Version', '')}".strip(), "title", 0),
        (f"  node {i.get('node', '?')}", "", 4),
        (f"  pid {i.get('Pid', '?')}", "", 5),
        (f"  up {i.get('Uptime', '?')}", "", 3),
        (f"  conns {i.get('CurrConns', '?')}/{i.get('Maxconn', '?')}", "", 2),
        (f"  requests {human_count(num(i, 'CumReq'), 12) or '?'} ({human_rate(rate)}/s)", "", 1),
    ]
    if not i:
        parts = [("farm top", "title", 0)]
    while len(parts) > 1 and sum(len(t) for t, _, _ in parts) > width:
        parts.remove(max(parts, key=lambda p: p[2]))
    parts = [(t, st) for t, st, _ in parts]
    first = Line(tuple(parts))
    if view.message:
        second = Line(((view.message, "error" if view.error else "message"),))
    else:
        when = time.strftime("%H:%M:%S", time.localtime(view.updated)) if view.updated else "-"
        second = Line(((f"{view.socket}  every {view.interval:g}s  updated {when}", "muted"),))
    return [first, second]


FOOTER = "j/k,up/down select  r ready  d drain  m maint  +/- weight  ? help  q quit"


def render(view: View, width: int, height: int) -> list[Line]:
    """The whole screen as at most `height` lines (the body scrolls so that
    the selected server stays visible)."""
    width = max(width, 1)
    if height < 5 or width < 30:
        return [Line((("terminal too small"[:width], "error"),))][:max(height, 0)]
    lines = header_lines(view, width)
    lines.append(Line(()))

    names = [len(r.get("svname", "")) + 2 for r in view.rows if row_type(r) == TYPE_SERVER]
    name_w = min(NAME_MAX, max([NAME_MIN] + names))
    cols = choose_columns(width, name_w)
    lines.append(Line(((" ".join(cell(c, c.header) for c in cols), "head"),)))

    body: list[Line] = []
    sel_line = None
    for gi, (kind, name, members) in enumerate(group_rows(view.rows)):
        if gi:
            body.append(Line(()))
        first = members[0]
        desc = first.get("mode", "")
        if kind == "backend":
            be = next((r for r in members if row_type(r) == TYPE_BACKEND), first)
            algo = be.get("algo", "")
            desc = ", ".join(x for x in (be.get("mode", ""), algo) if x)
        body.append(Line(((f"{kind} {name}" + (f" ({desc})" if desc else ""), "section"),)))
        for r in members:
            t = row_type(r)
            sv = r.get("svname", "")
            selected = t == TYPE_SERVER and (r.get("pxname"), sv) == view.selected
            label = ("> " if selected else "  ") + sv if t == TYPE_SERVER else sv
            cells = row_cells(r, view.rates.get(row_key(r)), label)
            segs = []
            for ci, c in enumerate(cols):
                text = cell(c, cells[c.key]) + (" " if ci + 1 < len(cols) else "")
                style = status_style(cells["status"]) if c.key == "status" else ""
                segs.append((text, style))
            if selected:
                sel_line = len(body)
                pad = width - sum(len(text) for text, _ in segs)
                if pad > 0:
                    segs.append((" " * pad, ""))
            body.append(Line(tuple(segs), reverse=selected))
    if not view.rows:
        body.append(Line((("waiting for data" + ellipsis() if not view.connected else
                            "no frontend or backend", "muted"),)))

    room = height - len(lines) - 1
    offset = 0
    if sel_line is not None and sel_line >= room:
        offset = min(sel_line - room + 1 + min(2, room // 4), len(body) - room)
    lines.extend(body[offset:offset + room])
    lines.extend([Line(())] * (height - 1 - len(lines)))
    lines.append(Line(((FOOTER, "muted"),)))
    return [clip(line, width) for line in lines]


def clip(line: Line, width: int) -> Line:
    out, used = [], 0
    for text, style in line.segments:
        if used >= width:
            break
        text = text[:width - used]
        out.append((text, style))
        used += len(text)
    return Line(tuple(out), line.reverse)


HELP_TEXT = """\
farm top: a live view of farm through its admin socket

Keys
  up, k / down, j     select the previous / next server
  PgUp / PgDn         move by 10 servers;  Home, g / End, G: first / last
  r                   set the selected server ready  (set server B/S state ready)
  d                   drain it: no new sessions      (set server B/S state drain)
  m                   put it in maintenance          (set server B/S state maint)
  + / -               its weight +1 / -1             (set weight B/S N)
  ?                   this help (any key closes it)
  q                   quit

Columns
  STATUS   UP, DOWN, MAINT, DRAIN; "UP 1/3": going down, "DOWN 1/2": going up
  W        effective weight        CUR/MAX/LIM  current, max and limit of sessions
  TOTAL    sessions since start    REQ/S        requests (TCP: sessions) per second
  IN/OUT   bytes received / sent   2XX 4XX 5XX  HTTP responses by class
  ECON     connection errors       ERESP        response errors
  CHECK    last health check       LASTCHG      time since the last state change
"""


def render_help(width: int, height: int) -> list[Line]:
    lines = [Line(((t, "title" if i == 0 else ""),)) for i, t in enumerate(HELP_TEXT.splitlines())]
    return [clip(line, width) for line in lines[:height]]


def render_text(lines: list[Line]) -> str:
    return "\n".join(line.text.rstrip() for line in lines) + "\n"


# -- the application -------------------------------------------------------------


class Model:
    """The data side of the app, without curses: polling, reconnecting,
    sending commands. The curses App drives it."""

    def __init__(self, path: str, interval: float):
        self.conn = AdminConnection(path, cli_timeout=max(60.0, interval * 3))
        self.rates = Rates()
        self.view = View(socket=path, interval=interval)
        self.last_error = ""

    def say(self, message: str, error: bool = False, for_s: float = MESSAGE_TIME) -> None:
        v = self.view
        v.message, v.error, v.message_until = message, error, time.monotonic() + for_s

    def lost(self, e: Exception) -> None:
        self.last_error = str(e)
        self.view.connected = False
        self.say(f"{e}: reconnecting{ellipsis()}", error=True, for_s=0.0)

    def poll(self) -> bool:
        """Take one sample; False (and a message) when the socket is lost."""
        v = self.view
        try:
            if not self.conn.connected:
                self.conn.connect()
            info = parse_info(self.conn.ask("show info"))
            rows = parse_stat(self.conn.ask("show stat"))
        except AdminError as e:
            self.lost(e)
            return False
        v.connected = True
        if v.message and time.monotonic() >= v.message_until:
            v.message, v.error = "", False     # back online, or an answer shown long enough
        v.info, v.rows = info, rows
        v.rates = self.rates.update(time.monotonic(), sample_counters(info, rows))
        v.updated = time.time()
        if v.selected not in servers(rows):
            v.selected = move_selection(rows, None, 0)
        return True

    def command(self, cmd: str) -> None:
        if not self.conn.connected:
            self.say(f"not connected: {cmd} not sent", error=True)
            return
        try:
            answer = self.conn.ask(cmd).strip()
        except AdminError as e:
            self.lost(e)
            return
        if answer:                              # farm (like HAProxy) answers nothing on success
            self.say(f"{cmd}: {answer.splitlines()[0]}", error=True)
        else:
            self.say(f"{cmd}: done")

    def close(self) -> None:
        self.conn.close()


class App:
    """The curses loop."""

    STYLE_COLORS = {          # style -> curses colour name
        "up": "GREEN", "down": "RED", "maint": "BLUE", "drain": "YELLOW", "nolb": "YELLOW",
        "trans": "CYAN", "error": "RED", "section": "CYAN", "title": "", "message": "GREEN",
    }

    def __init__(self, model: Model, color: bool = True):
        self.model = model
        self.color = color
        self.help = False
        self.attrs: dict = {}

    def setup_styles(self, curses) -> None:
        bold = curses.A_BOLD
        self.attrs = {"": curses.A_NORMAL, "title": bold, "head": bold | curses.A_UNDERLINE,
                      "section": bold, "down": bold, "error": bold, "maint": bold,
                      "muted": curses.A_NORMAL, "message": curses.A_NORMAL,
                      "up": curses.A_NORMAL, "drain": curses.A_NORMAL, "nolb": curses.A_NORMAL,
                      "trans": curses.A_NORMAL}
        if not (self.color and curses.has_colors()):
            return
        try:
            curses.start_color()
            try:
                curses.use_default_colors()
                bg = -1
            except curses.error:
                bg = curses.COLOR_BLACK
            pairs = {}
            for style, name in self.STYLE_COLORS.items():
                if not name:
                    continue
                if name not in pairs:
                    pairs[name] = len(pairs) + 1
                    curses.init_pair(pairs[name], getattr(curses, "COLOR_" + name), bg)
                self.attrs[style] = self.attrs.get(style, 0) | curses.color_pair(pairs[name])
        except curses.error:
            pass                      # a terminal that lies about its colours: stay plain

    def draw(self, curses, scr) -> None:
        h, w = scr.getmaxyx()
        lines = render_help(w, h) if self.help else render(self.model.view, w, h)
        scr.erase()
        for y, line in enumerate(lines[:h]):
            x = 0
            rev = curses.A_REVERSE if line.reverse else 0
            for text, style in line.segments:
                if x >= w or not text:
                    continue
                try:
                    scr.addnstr(y, x, text, w - x, self.attrs.get(style, 0) | rev)
                except curses.error:
                    pass               # the bottom-right cell
                x += len(text)
        scr.noutrefresh()
        curses.doupdate()

    def run(self, scr) -> int:
        import curses
        try:
            curses.curs_set(0)
        except curses.error:
            pass
        self.setup_styles(curses)
        scr.keypad(True)
        scr.timeout(100)
        m = self.model
        next_poll = 0.0
        dirty = True
        while True:
            now = time.monotonic()
            if now >= next_poll:
                ok = m.poll()
                next_poll = time.monotonic() + (m.view.interval if ok else RETRY_INTERVAL)
                dirty = True
            if dirty:
                self.draw(curses, scr)
                dirty = False
            ch = scr.getch()
            if ch == -1:
                continue
            dirty = True
            if ch == curses.KEY_RESIZE:
                try:
                    curses.update_lines_cols()
                except AttributeError:  # pragma: no cover
                    pass
                continue
            key = chr(ch) if 0 <= ch < 256 else ""
            if self.help:
                self.help = False
                if key not in ("q", "Q"):
                    continue
            if key in ("q", "Q"):
                return 0
            if key in ("?", "h", "H"):
                self.help = True
                continue
            v = m.view
            move = {curses.KEY_UP: -1, curses.KEY_DOWN: 1, curses.KEY_PPAGE: -10,
                    curses.KEY_NPAGE: 10, curses.KEY_HOME: -10**9, curses.KEY_END: 10**9}.get(ch)
            if move is None:
                move = {"k": -1, "j": 1, "g": -10**9, "G": 10**9}.get(key)
            if move is not None:
                v.selected = move_selection(v.rows, v.selected, move)
                continue
            if key == "\x0c":           # ^L: redraw
                scr.clear()
                continue
            cmd = key_command(key, v.selected, v.rows)
            if cmd:
                m.command(cmd)
                next_poll = 0.0        # show the effect now


# -- entry point -----------------------------------------------------------------


def add_arguments(p) -> None:
    p.add_argument("-s", "--socket", help="admin socket path (default: global.admin_socket)")
    p.add_argument("-i", "--interval", type=float, default=DEFAULT_INTERVAL,
                   help=f"refresh interval in seconds (default {DEFAULT_INTERVAL:g})")
    p.add_argument("--no-color", action="store_true",
                   help="no colours (also when NO_COLOR is set)")
    p.add_argument("--once", action="store_true",
                   help="print one screen as text and exit (no terminal needed)")


def run(args) -> int:
    from farm.cli import require_admin_socket
    path = require_admin_socket(args, "farm top")
    if not path:
        return 2
    interval = max(0.2, args.interval)
    model = Model(path, interval)
    if args.once:
        ok = model.poll()
        model.close()
        if not ok:
            print(f"farm top: {model.last_error}", file=sys.stderr)
            return 2
        model.view.message, model.view.selected = "", None
        height = 5 + len(model.view.rows) + 2 * len(group_rows(model.view.rows))
        cols = os.get_terminal_size().columns if sys.stdout.isatty() else 160
        lines = render(model.view, cols, height)[:-1]      # no key reminder
        while lines and not lines[-1].text.strip():
            lines.pop()
        sys.stdout.write(render_text(lines))
        return 0
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("farm top: needs a terminal (or use --once)", file=sys.stderr)
        return 2
    try:
        locale.setlocale(locale.LC_ALL, "")     # UTF-8 output where the terminal has it
    except locale.Error:
        pass
    color = not (args.no_color or os.environ.get("NO_COLOR"))
    import curses
    for var in ("LINES", "COLUMNS"):     # curses would take an exported (stale) size over the
        os.environ.pop(var, None)        # terminal's own; the real size counts in a live view
    app = App(model, color=color)
    try:
        return curses.wrapper(app.run)
    except KeyboardInterrupt:
        return 0
    finally:
        model.close()
