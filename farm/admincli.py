"""The language of the runtime API, without I/O: the command list, `help`,
the answer to an unknown command, and how error answers are marked.

farm/admin.py serves these on the admin socket; `farm ctl` (farm/cli.py)
reads the marks. Both sides use this module, so which answers are errors
is decided in one place: an answer is an error when the server raised
CliError for it (farm/admin.py), and a client sees that through HAProxy's
`set severity-output` mechanism:

- `set severity-output number` (or `string`) for the rest of the session;
- every error answer then starts with "[3]: " (or "[err]: "), the
  syslog severity LOG_ERR, as HAProxy 2.6 prints it; other answers are
  unchanged. Without the command (hatop, socat, exporters) nothing changes.

HAProxy marks an unknown command as "info"; farm marks it as an error,
since a script that mistyped a command must not carry on as if it ran.

The unknown-command answer follows HAProxy 2.6: the words that match a
command exactly are kept, the rest is compared with the remaining keywords of
those commands (difflib's similarity ratio), and the close ones are
listed; when nothing is close, every command that starts with the matching
words is listed. help, prompt and quit always end the list.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

LOG_ERR = 3
SEVERITY_MODES = ("none", "number", "string")
_SEVERITY_NAMES = {LOG_ERR: "err"}


@dataclass(frozen=True)
class Command:
    """One runtime API command: the keywords that name it, its usage line
    (keywords and arguments) and what it does."""

    words: tuple[str, ...]
    usage: str
    text: str

    def line(self) -> str:
        # HAProxy's layout: the usage padded to 40 columns, then ": text".
        return f"  {self.usage:<40}: {self.text}\n"


# Sorted by keywords, as HAProxy lists them. help, prompt and quit are
# listed apart (ALWAYS), at the end of every listing. A new command goes
# here and in farm/admin.py (AdminServer.execute runs it).
COMMANDS: tuple[Command, ...] = tuple(sorted((
    Command(("acme", "renew"), "acme renew <frontend>",
            "order a new certificate for a frontend now (ACME)"),
    Command(("acme", "status"), "acme status", "show the ACME certificates and their schedule"),
    Command(("disable", "server"), "disable server <bk>/<srv>", "put a server in maintenance"),
    Command(("enable", "server"), "enable server <bk>/<srv>", "take a server out of maintenance"),
    Command(("get", "weight"), "get weight <bk>/<srv>", "report a server's current weight"),
    Command(("reload",), "reload", "reload the configuration (answers Success=1 or 0)"),
    Command(("set", "server"), "set server <bk>/<srv> state|weight|addr <v>",
            "set a server's admin state (ready, drain, maint), weight or address"),
    Command(("set", "severity-output"), "set severity-output [none|number|string]",
            "mark error answers with their severity"),
    Command(("set", "timeout", "cli"), "set timeout cli <delay>",
            "change this CLI session's timeout (seconds)"),
    Command(("set", "weight"), "set weight <bk>/<srv> (<w>|<w>%)", "change a server's weight"),
    Command(("show", "backend"), "show backend", "list backends"),
    Command(("show", "table"), "show table [<table> [data.<type> <op> <v>]* [key <k>]]",
            "report stick-table entries, or the list of tables"),
    Command(("set", "table"), "set table <table> key <k> [data.<type> <v>]*",
            "create or update a stick-table entry"),
    Command(("clear", "table"), "clear table <table> [data.<type> <op> <v>]* | [key <k>]",
            "remove stick-table entries (those not in use)"),
    Command(("show", "info"), "show info [typed|json]", "report information about the running process"),
    Command(("show", "servers", "state"), "show servers state [<backend>]",
            "dump volatile server information (all or for a single backend)"),
    Command(("show", "peers"), "show peers", "report the sessions that replicate stick tables"),
    Command(("show", "sess"), "show sess", "report current sessions (summary per proxy)"),
    Command(("show", "ssl", "cert"), "show ssl cert [<certfile>]",
            "display the SSL certificates used in memory, or the details of a file"),
    Command(("show", "stat"), "show stat [typed|json] [<iid> <type> <sid>]",
            "report counters for each proxy and server"),
    Command(("shutdown", "sessions", "server"), "shutdown sessions server <bk>/<srv>",
            "kill the sessions of a server"),
), key=lambda c: c.words))

ALWAYS: tuple[Command, ...] = (
    Command(("help",), "help [<command>]", "list matching or all commands"),
    Command(("prompt",), "prompt", "toggle interactive mode with prompt"),
    Command(("quit",), "quit", "disconnect"),
)

_MAX_SUGGESTIONS = 5
_CLOSE = 0.6      # similarity from which a command is suggested
_MARGIN = 0.1     # ... and how far behind the best one it may be


def _similarity(typed: list[str], keywords: tuple[str, ...]) -> float:
    """0..1: how alike the typed words are to a command's keywords (the
    words past the keywords' count are its arguments: not compared)."""
    return difflib.SequenceMatcher(None, " ".join(typed[:len(keywords)]), " ".join(keywords)).ratio()


def _matching_prefix(words: list[str]) -> int:
    """How many leading words name some command's leading keywords exactly."""
    best = 0
    for cmd in COMMANDS + ALWAYS:
        n = 0
        while n < len(cmd.words) and n < len(words) and cmd.words[n] == words[n]:
            n += 1
        best = max(best, n)
    return best


def usage(words: list[str], help_asked: bool = False) -> str:
    """The answer to `help [words]` (help_asked) or to the unknown command
    words: a header, the matching or closest commands, then help, prompt
    and quit."""
    length = _matching_prefix(words)
    if help_asked:
        head = "The following commands are valid at this level:\n"
    elif not words:
        head = "Unknown command. Please enter one of the following commands only:\n"
    else:
        head = "Unknown command, but maybe one of the following ones is a better match:\n"
    same_start = [c for c in COMMANDS if c.words[:length] == tuple(words[:length])
                  and len(c.words) >= length]
    chosen: list[Command] = []
    rest = words[length:]
    if rest and not help_asked:
        scored = sorted(((_similarity(rest, c.words[length:]), c) for c in same_start
                         if len(c.words) > length), key=lambda t: -t[0])
        if scored and scored[0][0] >= _CLOSE:
            best = scored[0][0]
            chosen = [c for r, c in scored[:_MAX_SUGGESTIONS] if r >= max(_CLOSE, best - _MARGIN)]
    if not chosen:
        chosen = same_start
    chosen.sort(key=lambda c: c.words)
    return head + "".join(c.line() for c in chosen) + "".join(c.line() for c in ALWAYS)


# ---------------------------------------------------------------- severity marks

def mark(text: str, severity: int, mode: str) -> str:
    """An answer as a session with `set severity-output MODE` sees it."""
    if mode == "number":
        return f"[{severity}]: {text}"
    if mode == "string":
        return f"[{_SEVERITY_NAMES.get(severity, severity)}]: {text}"
    return text


_MARK = re.compile(r"\[(\d+|[a-z]+)\]: ")
_NAMES_TO_NUMBERS = {name: n for n, name in _SEVERITY_NAMES.items()}


def unmark(answer: str) -> tuple[int | None, str]:
    """One answer read with `set severity-output number` or `string` ->
    (its severity, or None when it carries none; the text without the mark)."""
    m = _MARK.match(answer)
    if m is None:
        return None, answer
    tag = m.group(1)
    severity = int(tag) if tag.isdigit() else _NAMES_TO_NUMBERS.get(tag)
    return severity, answer[m.end():]


def is_error(severity: int | None) -> bool:
    """True for an answer marked at LOG_ERR or worse (lower numbers)."""
    return severity is not None and severity <= LOG_ERR
