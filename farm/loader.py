"""TOML config -> farm.model.Config, with every error located.

The loader reads one TOML file, validates it completely and either returns
a frozen model.Config or raises ConfigErrors carrying *all* the problems of
the file, each with the file, the line (from farm.tomlpos) and the key path.
A bad value is reported and replaced by its default so that validation can
go on; the result of a file with errors is never returned.

Structure: small pure value parsers (raise _Invalid), declarative schemas
(key -> parser) per table, one generic table walker (_fields) that reports
unknown keys and bad values, builders that turn parsed fields into model
objects (applying [defaults]), and a final cross-reference pass.

Schema decisions (the contract others rely on):
- durations: "250ms" "5s" "1m" "1h" "1d" "10us", compounds "1m30s",
  decimals "1.5s"; a bare TOML integer (or a string of digits) is
  milliseconds, as in HAProxy; stored as float seconds;
- sizes: "16k" "1m" "1g" (powers of 1024); a bare integer is bytes;
- [defaults] values apply where a section does not set its own; the
  timeout, check and errorfiles tables merge key by key;
- errorfiles paths are resolved against the config file's directory and
  stored absolute (when loaded with load(); load_text() takes base_dir);
- rule params include the documented defaults (deny status 403, return
  status 200, redirect code 302);
- when a backend has a cookie table, each server's cookie defaults to its
  name;
- ACL lines, if/unless conditions, log-format values (set-header value,
  redirect location/prefix, set-path, set-query) and replace-* replacements
  are checked through farm.conditions, looked up at call time;
- refused: http_request/http_response/cookie in a tcp section, a tcp
  frontend without default_backend, a config with nothing to listen on;
- bounded: every integer and duration has a ceiling farm can honour
  (durations 2^31-1 ms as in HAProxy, workers 4 per core, maxconn 524288
  per worker...); global.user and global.group must exist;
- with a resolver (`farm check`, `farm run`, reloads), every server host
  name is resolved and one that does not resolve is an error unless its
  init_addr has "none"; servers inherit init_addr from [defaults];
- never a traceback: absurd nesting, numbers Python will not convert and
  wrong types at any level all become located messages; HAProxy habits get
  a pointer (farm.confhints).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import socket
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

from farm import conditions, confhints, model, resolve, tomlpos
from farm.model import (
    Acl, Address, Backend, BackendTls, Balance, Bind, Check, Condition, Config, Cookie,
    Frontend, FrontendTls, Global, LogConfig, Rule, Server, Stats, Timeouts, UseBackend,
)

__all__ = [
    "ConfigError", "ConfigErrors", "load", "load_text", "summary",
    "parse_duration", "parse_size", "parse_address",
]


# ---------------------------------------------------------------- errors

@dataclass(frozen=True)
class ConfigError:
    """One problem: where (file, 1-based line or 0, key path) and what."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        what = f"{self.path}: {self.message}" if self.path else self.message
        return f"{where}: {what}"

    def as_warning(self) -> str:
        """The same place and message, marked as a warning."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        what = f"{self.path}: {self.message}" if self.path else self.message
        return f"{where}: warning: {what}"


class ConfigErrors(Exception):
    """Raised by load()/load_text() with every error of the file."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


# ---------------------------------------------------------- value parsers

class _Invalid(ValueError):
    """A value failed validation; str() is the user-facing reason."""


_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?")
# re.ASCII: \d must not match other scripts' digits ("²" is not a number)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h|d)", re.ASCII)
_DURATION_RE = re.compile(r"(?:\d+(?:\.\d+)?(?:us|ms|s|m|h|d))+", re.ASCII)
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_RE = re.compile(r"(\d{1,15})([kKmMgG]?)", re.ASCII)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
_BALANCE_RE = re.compile(r"([A-Za-z_-]+)(?:\(([^()]*)\))?((?:\s+\S+)*)\s*")
_URI_OPTIONS = ("whole", "path-only")
ERRORFILE_CODES = (400, 403, 404, 408, 429, 500, 502, 503, 504)
REDIRECT_CODES = (301, 302, 303, 307, 308)
LOG_LEVELS = ("debug", "info", "warning", "error")
HTTP_REUSE = ("never", "safe", "always")

# Ceilings: every number of the config is bounded by what farm can honour.
# HAProxy keeps times as signed 32-bit milliseconds: 2^31-1 ms (24d20h31m23s)
# is the longest timeout it accepts, and farm's too.
MAX_DURATION_MS = 2 ** 31 - 1
# A proxied connection holds two descriptors (client and server side) and
# the kernel's default per-process ceiling (fs.nr_open) is 1048576: one
# worker cannot hold more connections than this.
MAXCONN_PER_WORKER = 1048576 // 2
# workers: each is a single-threaded, CPU-bound event loop, so more
# workers than cores only adds context switches, memory (a Python process
# each) and shared-memory columns; a few per core leaves room for a
# machine whose cores are shared, and catches a mistyped number.
WORKERS_PER_CORE = 4
MAX_INT32 = 2 ** 31 - 1        # counts HAProxy keeps in an int (error_limit...)


def _number(value: int | float) -> str:
    """A number for a message: huge integers shortened (str() of an int of
    more than 4300 digits raises, and a message must stay readable)."""
    if isinstance(value, int) and value.bit_length() > 64:
        digits = int(value.bit_length() * 0.30103) + 1
        return f"{'-' if value < 0 else ''}(a number of about {digits} digits)"
    return str(value)


def _describe(value: Any) -> str:
    """A short, user-facing description of a TOML value for messages."""
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {_number(value)}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"string {text!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"{type(value).__name__} {value}"


def _suggest(word: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_int(value: Any) -> bool:
    # bool is a subclass of int in Python but never an integer in TOML.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_range(value, lo, hi, why: str = "") -> None:
    """Raise _Invalid unless lo <= value <= hi (None: no bound); `why`
    follows the message (the reason for a ceiling)."""
    why = f" ({why})" if why else ""
    if lo is not None and hi is not None and not lo <= value <= hi:
        raise _Invalid(f"must be between {lo} and {hi}{why}, got {_number(value)}")
    if lo is not None and value < lo:
        raise _Invalid(f"must be at least {lo}, got {_number(value)}")
    if hi is not None and value > hi:
        raise _Invalid(f"must be at most {hi}{why}, got {_number(value)}")


def _int(lo: int | None = None, hi: int | None = None, why: str = "") -> Callable:
    """An integer in lo..hi; every integer key has a ceiling (MAX_INT32 at
    most) so that nothing farm cannot honour passes `farm check`."""
    def parse(value: Any) -> int:
        if not _is_int(value):
            raise _Invalid(f"expected an integer, got {_describe(value)}")
        _check_range(value, lo, hi, why)
        return value
    return parse


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected a boolean (true or false), got {_describe(value)}")
    return value


def _str(value: Any) -> str:
    """Any non-empty string."""
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_describe(value)}")
    if not value:
        raise _Invalid("must not be empty")
    return value


def _any_str(value: Any) -> str:
    """Any string, empty included."""
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_describe(value)}")
    return value


def _choice(choices: tuple[str, ...], what: str) -> Callable:
    def parse(value: Any) -> str:
        text = _str(value)
        if text not in choices:
            hint = _suggest(text, choices) or f" (expected one of: {', '.join(choices)})"
            raise _Invalid(f"unknown {what} {text!r}{hint}")
        return text
    return parse


def _name(value: Any) -> str:
    text = _str(value)
    if not _NAME_RE.fullmatch(text):
        raise _Invalid(f"invalid name {text!r} (allowed: letters, digits, '_', '.', ':', '-')")
    return text


def _token(value: Any) -> str:
    """An HTTP token: a header name or a method."""
    text = _str(value)
    if not _TOKEN_RE.fullmatch(text):
        raise _Invalid(f"invalid header name or token {text!r}")
    return text


def _header_value(value: Any) -> str:
    # CR, LF or NUL in a header value would let a config split headers.
    text = _any_str(value)
    if any(c in text for c in "\r\n\0"):
        raise _Invalid("must not contain CR, LF or NUL characters")
    return text


def _path(value: Any) -> str:
    text = _header_value(_str(value))
    if not text.startswith("/"):
        raise _Invalid(f"must start with '/', got {text!r}")
    return text


def _monitor_uri(value: Any) -> str:
    """monitor_uri: a request target compared as is ("/healthz")."""
    text = _path(value)
    if any(c in text for c in " \t") or not text.isascii():
        raise _Invalid(f"must be a URI path (ASCII, without spaces), got {text!r}")
    return text


def _regex(value: Any) -> str:
    text = _any_str(value)
    try:
        re.compile(text)
    except re.error as e:
        raise _Invalid(f"invalid regular expression {text!r}: {e}") from None
    return text


def _format(value: Any) -> str:
    """A log-format string (%[fetch] ...) as used by header values, redirect
    targets, set-path and set-query; checked by farm.conditions."""
    text = _header_value(value)
    messages = conditions.check_format(text)
    if messages:
        raise _Invalid("; ".join(messages))
    return text


def _path_format(value: Any) -> str:
    """set-path's value: a format; a plain one (no '%') must be a path."""
    text = _format(_str(value))
    if "%" not in text and not text.startswith("/"):
        raise _Invalid(f"must start with '/', got {text!r}")
    return text


def _status(lo: int = 100, hi: int = 599) -> Callable:
    return _int(lo, hi)


def _shown(value: Any) -> str:
    """A value as a message quotes it: repr, long strings shortened."""
    if isinstance(value, str) and len(value) > 60:
        return repr(value[:57] + "...")
    if _is_int(value):
        return _number(value)
    return repr(value)


def parse_duration(value: Any, *, positive: bool = False) -> float:
    """A TOML duration -> float seconds.

    Accepts a non-negative integer (milliseconds, HAProxy style), a string
    of digits (milliseconds), or a string of number+unit parts with units
    us, ms, s, m, h, d ("250ms", "1m30s", "1.5s"), up to MAX_DURATION_MS
    (HAProxy's ceiling). With positive=True, 0 is refused. Raises
    ValueError (a _Invalid) with a user-facing message.
    """
    hint = "expected a duration like '250ms', '5s', '1m30s' or an integer of milliseconds"
    if _is_int(value):
        if value < 0:
            raise _Invalid(f"invalid duration {_number(value)}: must not be negative")
        seconds = value / 1000.0 if value.bit_length() < 64 else float("inf")
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            # float() of the digits: int() refuses more than 4300 of them
            seconds = float(text) / 1000.0
        elif _DURATION_RE.fullmatch(text):
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise _Invalid(f"invalid duration {_shown(value)} ({hint})")
    else:
        raise _Invalid(f"{hint}, got {_describe(value)}")
    if not seconds * 1000 <= MAX_DURATION_MS:
        raise _Invalid(f"duration {_shown(value)} is too long: at most {MAX_DURATION_MS}ms "
                       "(24d20h31m23s, HAProxy's limit)")
    if positive and seconds <= 0:
        raise _Invalid(f"must be greater than 0, got {_shown(value)}")
    return seconds


def _duration(value: Any) -> float:
    return parse_duration(value)


def _positive_duration(value: Any) -> float:
    return parse_duration(value, positive=True)


def parse_size(value: Any) -> int:
    """A TOML size -> int bytes: an integer (bytes) or "16k"/"1m"/"1g"
    (powers of 1024; upper or lower case). Raises ValueError (_Invalid)."""
    if _is_int(value):
        if value < 0:
            raise _Invalid(f"invalid size {_number(value)}: must not be negative")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.fullmatch(value.strip())
        if m:
            return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
        raise _Invalid(f"invalid size {_shown(value)} (expected e.g. '16k', '1m', '1g' or an integer of bytes)")
    raise _Invalid(f"expected a size like '16k' or an integer of bytes, got {_describe(value)}")


def _header_size(value: Any) -> int:
    size = parse_size(value)
    _check_range(size, 1024, 1024 * 1024)
    return size


def parse_address(value: Any, *, bind: bool = False) -> Address:
    """"host:port", "[v6]:port", "*:port" or ":port" -> model.Address.

    For a bind (bind=True) the host must be a literal IP; "*" and "" mean
    0.0.0.0. For a server the host may also be a DNS name but must be given.
    The port is 1..65535. Literal IPs are stored in canonical form (so that
    "[::0]:80" and "[::]:80" compare equal); IPv6 sets AF_INET6.
    Raises ValueError (_Invalid).
    """
    text = _str(value).strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise _Invalid(f"invalid address {text!r} (expected '[IPv6]:port')")
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            raise _Invalid(f"invalid IPv6 address {host!r} in {text!r}") from None
        return Address(str(ip), _port(port_text, text), socket.AF_INET6)
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise _Invalid(f"missing port in address {text!r} (expected host:port)")
    if ":" in host:
        raise _Invalid(f"IPv6 addresses need brackets: {text!r} (e.g. '[::1]:80')")
    port = _port(port_text, text)
    if host in ("", "*"):
        if not bind:
            raise _Invalid(f"a server address needs a host, got {text!r}")
        return Address("0.0.0.0", port)
    try:
        return Address(str(ipaddress.IPv4Address(host)), port)
    except ValueError:
        pass
    if bind:
        raise _Invalid(f"a bind address must be a literal IP, got {text!r}")
    if not _HOSTNAME_RE.fullmatch(host):
        raise _Invalid(f"invalid host name {host!r} in {text!r}")
    return Address(host, port)


def _port(text: str, whole: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 5 and 1 <= int(text) <= 65535):
        raise _Invalid(f"invalid port {text!r} in {whole!r} (expected 1..65535)")
    return int(text)


def _bind_address(value: Any) -> Address:
    return parse_address(value, bind=True)


def _server_address(value: Any) -> Address:
    return parse_address(value, bind=False)


def _workers(value: Any) -> int:
    if value == "auto":
        return _cpu_count()
    if not _is_int(value):
        raise _Invalid(f"expected an integer or 'auto', got {_describe(value)}")
    cores = os.cpu_count() or 1
    _check_range(value, 1, WORKERS_PER_CORE * cores,
                 f"{WORKERS_PER_CORE} per core; this machine has {cores}")
    return value


def _init_addr(value: Any) -> tuple[str, ...]:
    """HAProxy's init-addr: "libc", "none" or "libc,none" (methods tried in
    order at start and reload) -> ("libc", "none")."""
    text = _str(value)
    methods = tuple(m.strip() for m in text.split(","))
    for m in methods:
        if m not in model.INIT_ADDR_METHODS:
            hint = _suggest(m, model.INIT_ADDR_METHODS) or \
                " (expected \"libc\", \"none\" or \"libc,none\"; farm has no state-file method 'last')"
            raise _Invalid(f"unknown init_addr method {m!r}{hint}")
    if len(set(methods)) != len(methods):
        raise _Invalid(f"repeated method in init_addr {text!r}")
    if methods[0] == "none" and len(methods) > 1:
        raise _Invalid(f"'none' always succeeds: nothing after it is ever tried in {text!r}")
    return methods


def _cpu_count() -> int:
    """Cores for workers = "auto": psutil's count, but no more than the CPUs
    this process may run on (a cpuset, taskset or container limit)."""
    try:
        import psutil
        count = psutil.cpu_count() or 1
    except ImportError:
        count = os.cpu_count() or 1
    try:
        count = min(count, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        pass
    return max(1, count)


def _auth(value: Any) -> tuple[str, str]:
    user, sep, password = _str(value).partition(":")
    if not sep or not user or not password:
        raise _Invalid("expected 'user:password'")
    return (user, password)


def _expect_status(value: Any) -> tuple[int, int]:
    """200, "200" or "200-399" -> (lo, hi) within 100..599."""
    if _is_int(value):
        lo = hi = value
    elif isinstance(value, str) and re.fullmatch(r"\d{3}(-\d{3})?", value.strip(), re.ASCII):
        lo_s, _, hi_s = value.strip().partition("-")
        lo, hi = int(lo_s), int(hi_s or lo_s)
    else:
        raise _Invalid(f"expected a status like \"200\" or a range like \"200-399\", got {_describe(value)}")
    if not (100 <= lo <= hi <= 599):
        raise _Invalid(f"invalid status range {_shown(value)} (codes 100..599, low <= high)")
    return (lo, hi)


def _parse_balance(value: Any) -> tuple[str, str | None, tuple[str, ...]]:
    """"roundrobin", "uri whole", "hdr(Host)" ... -> (algorithm, arg, options)."""
    text = _str(value).strip()
    m = _BALANCE_RE.fullmatch(text)
    algorithm = m.group(1) if m else text
    if algorithm not in model.BALANCE_ALGORITHMS:
        hint = _suggest(algorithm, model.BALANCE_ALGORITHMS) or \
            f" (expected one of: {', '.join(model.BALANCE_ALGORITHMS)})"
        raise _Invalid(f"unknown balance algorithm {algorithm!r}{hint}")
    arg, options = m.group(2), tuple(m.group(3).split())
    if algorithm in model.BALANCE_WITH_ARG:
        if arg is None or not _TOKEN_RE.fullmatch(arg.strip()):
            raise _Invalid(f"balance {algorithm} needs a name in parentheses, e.g. '{algorithm}(NAME)'")
        arg = arg.strip()
    elif arg is not None:
        raise _Invalid(f"balance {algorithm} takes no argument, got {text!r}")
    allowed = _URI_OPTIONS if algorithm == "uri" else ()
    for opt in options:
        if opt not in allowed:
            hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
            raise _Invalid(f"unknown option {opt!r} for balance {algorithm}{hint}")
    if len(set(options)) != len(options):
        raise _Invalid(f"repeated option in balance {text!r}")
    return algorithm, arg, options


def _balance(value: Any) -> tuple:
    return _parse_balance(value)


# ------------------------------------------------------------- the walker

class _Skip:
    """Marker: a nested parser reported its own errors and has no value."""


_SKIP = _Skip()


@dataclass(frozen=True)
class _Nested:
    """A schema entry that walks a sub-structure and reports its own errors:
    fn(ctx, path, value, scope) -> parsed value or _SKIP."""

    fn: Callable


@dataclass
class _Scope:
    """What a section's nested parsers share: the ACL names of the section
    (filled by the 'acl' entry, which each schema lists before the rules)."""

    acl_names: set[str] = field(default_factory=set)


@dataclass
class _Ref:
    """A frontend's reference to a backend, for the cross-reference pass
    (frontend None: a fetch's, nbsrv(NAME), whatever the modes)."""

    frontend: Frontend | None
    path: tuple
    backend: str


@dataclass
class _Bind:
    """A parsed bind with where it was written, for the duplicate check."""

    address: Address
    path: tuple
    owner: str


class _Ctx:
    """Error collection and positions for one load."""

    def __init__(self, source: str, positions: dict, base_dir: str | None,
                 resolver: resolve.Resolver | None = None, tls_files: bool = False) -> None:
        self.source = source
        self.positions = positions
        self.base_dir = base_dir
        self.resolver = resolver      # None: server names are not resolved
        self.tls_files = tls_files    # read and check certificate, key and CA files
        self.errors: list[ConfigError] = []
        self.warnings: list[ConfigError] = []
        self.binds: list[_Bind] = []
        self.refs: list[_Ref] = []
        self.acme_refs: list[tuple[tuple, str]] = []    # (path, name) of acme = "NAME"
        self.acme_names: set[str] = set()                # the [acme.NAME] tables
        # backend name -> per stick rule, (its path, the path naming its
        # table), for the errors of _check_stick_refs
        self.stick_paths: dict[str, list[tuple]] = {}

    def line(self, path: tuple) -> int:
        return tomlpos.line_of(self.positions, path)

    def error(self, path: tuple, message: str) -> None:
        self.errors.append(ConfigError(self.source, self.line(path), _format_path(path), message))

    def warning(self, path: tuple, message: str) -> None:
        """Something that works but is probably not what was meant (an
        expired certificate): reported by `farm check`, never fatal."""
        self.warnings.append(ConfigError(self.source, self.line(path), _format_path(path), message))

    def unknown_key(self, path: tuple, key: str, valid, value: Any = None) -> None:
        """Report `key` unknown in the table at `path`: with a pointer for an
        HAProxy habit (farm.confhints) when there is one, else did-you-mean."""
        hint = confhints.unknown_key(path, key, value, valid)
        self.error(path + (key,), f"unknown key {key!r}" + (f": {hint}" if hint else _suggest(key, valid)))

    def require(self, path: tuple, table: Any, keys: tuple[str, ...]) -> bool:
        """Report each key of `keys` absent from `table`; True if none is."""
        if not isinstance(table, dict):
            return False
        missing = [k for k in keys if k not in table]
        for key in missing:
            self.error(path, f"missing required key {key!r}")
        return not missing


def _format_path(path: tuple) -> str:
    """("backends","app","servers",0,"address") -> backends.app.servers[0].address"""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _fields(ctx: _Ctx, path: tuple, table: Any, schema: dict, scope: _Scope | None = None) -> dict:
    """Validate `table` against `schema` (key -> parser or _Nested).

    Reports a non-table, unknown keys (with did-you-mean) and bad values;
    returns {key: parsed value} for the keys that are present and valid.
    Keys are parsed in schema order (so 'acl' precedes the rules).
    """
    if not isinstance(table, dict):
        hint = confhints.not_a_table(path, table)
        ctx.error(path, f"expected a table, got {_describe(table)}" + (f"; {hint}" if hint else ""))
        return {}
    for key in table:
        if key not in schema:
            ctx.unknown_key(path, key, schema, table[key])
    out = {}
    for key, parser in schema.items():
        if key not in table:
            continue
        kpath = path + (key,)
        if isinstance(parser, _Nested):
            result = parser.fn(ctx, kpath, table[key], scope or _Scope())
            if result is not _SKIP:
                out[key] = result
            continue
        try:
            out[key] = parser(table[key])
        except _Invalid as e:
            hint = confhints.repeated_key_in_value(key, table[key])
            ctx.error(kpath, str(e) + (f"; {hint}" if hint else ""))
    return out


def _table_list(ctx: _Ctx, path: tuple, value: Any, what: str) -> list[tuple[tuple, Any]]:
    """An array of tables -> [(element path, element)], errors for the rest."""
    if not isinstance(value, list):
        ctx.error(path, f"expected an array of tables ([[{_format_path(path)}]]), got {_describe(value)}")
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            out.append((path + (i,), item))
        else:
            ctx.error(path + (i,), f"expected a table for each {what}, got {_describe(item)}")
    return out


# ----------------------------------------------------- nested structures

_TIMEOUT_SCHEMA = {name: _duration for name in (
    "connect", "client", "server", "http_request", "http_keep_alive", "queue", "tunnel", "check")}


def _timeouts(ctx, path, value, scope) -> dict:
    return _fields(ctx, path, value, _TIMEOUT_SCHEMA)


_CHECK_SCHEMA = {
    "type": _choice(model.CHECK_TYPES, "check type"),
    "method": _token,
    "path": _path,
    "host": lambda v: _header_value(_str(v)),
    "expect_status": _expect_status,
    "expect_body": _str,
    "interval": _positive_duration,
    "fastinter": _duration,
    "downinter": _duration,
    "timeout": _duration,
    "rise": _int(1, 1000),
    "fall": _int(1, 1000),
    "port": _int(1, 65535),
    "observe": _bool,
    "error_limit": _int(1, MAX_INT32),
    "tls": _bool,
    "send_proxy": _bool,
    "proto": _choice(model.SERVER_PROTOS, "check protocol"),
}


def _check(ctx, path, value, scope) -> dict:
    return _fields(ctx, path, value, _CHECK_SCHEMA)


_COOKIE_SCHEMA = {
    "name": _token,
    "mode": _choice(model.COOKIE_MODES, "cookie mode"),
    "indirect": _bool,
    "nocache": _bool,
    "httponly": _bool,
    "secure": _bool,
    "domain": lambda v: _header_value(_str(v)),
    "maxidle": _duration,
}


def _cookie(ctx, path, value, scope) -> Cookie | _Skip:
    fields = _fields(ctx, path, value, _COOKIE_SCHEMA)
    if not ctx.require(path, value, ("name",)) or "name" not in fields:
        return _SKIP
    return Cookie(**fields)


def _errorfiles(ctx, path, value, scope) -> dict | _Skip:
    """{"503": "path"} -> {503: absolute-or-as-written path}; each file must
    be a readable regular file (the only I/O besides reading the config)."""
    if not isinstance(value, dict):
        ctx.error(path, f"expected a table of status code -> file, got {_describe(value)}")
        return _SKIP
    out = {}
    codes = [str(c) for c in ERRORFILE_CODES]
    for code, file in value.items():
        kpath = path + (code,)
        if code not in codes:
            ctx.error(kpath, f"unsupported status code {code!r} for an errorfile"
                             f" (expected one of: {', '.join(codes)})")
            continue
        try:
            out[int(code)] = _readable_file(ctx.base_dir, _str(file))
        except _Invalid as e:
            ctx.error(kpath, str(e))
    return out


def _readable_file(base_dir: str | None, file: str) -> str:
    full = file
    if base_dir is not None and not os.path.isabs(file):
        full = os.path.normpath(os.path.join(base_dir, file))
    if not os.path.exists(full):
        raise _Invalid(f"cannot read errorfile {file!r}: no such file")
    if not os.path.isfile(full):
        raise _Invalid(f"cannot read errorfile {file!r}: not a regular file")
    if not os.access(full, os.R_OK):
        raise _Invalid(f"cannot read errorfile {file!r}: permission denied")
    return full


def _acls(ctx, path, value, scope) -> tuple[Acl, ...] | _Skip:
    """acl table: name -> "fetch args" or a list of such lines (OR-ed)."""
    if not isinstance(value, dict):
        ctx.error(path, f"expected a table of ACL name -> condition, got {_describe(value)}")
        return _SKIP
    acls = []
    for name, lines in value.items():
        apath = path + (name,)
        try:
            _name(name)
        except _Invalid as e:
            ctx.error(apath, f"ACL {e}")
        # Known even when its lines are bad, so that conditions using it do
        # not add "unknown ACL" errors on top.
        scope.acl_names.add(name)
        if isinstance(lines, str):
            items = [(apath, lines)]
        elif isinstance(lines, list):
            items = [(apath + (i,), x) for i, x in enumerate(lines)]
        else:
            ctx.error(apath, f"expected a string or an array of strings, got {_describe(lines)}")
            continue
        if not items:
            ctx.error(apath, "an ACL needs at least one line")
            continue
        good = []
        for lpath, text in items:
            if not isinstance(text, str) or not text.strip():
                ctx.error(lpath, f"expected a non-empty string, got {_describe(text)}")
                continue
            for message in conditions.check_acl(text):
                ctx.error(lpath, message)
            _fetched_backends(ctx, lpath, text, acl_line=True)
            good.append(text)
        acls.append(Acl(name, tuple(good)))
    return tuple(acls)


def _condition(ctx: _Ctx, path: tuple, table: dict, scope: _Scope) -> Condition | None:
    """The optional if/unless of a rule table -> Condition (or None)."""
    if "if" in table and "unless" in table:
        ctx.error(path + ("unless",), "use either 'if' or 'unless', not both")
    for key, negate in (("if", False), ("unless", True)):
        if key not in table:
            continue
        try:
            text = _str(table[key])
        except _Invalid as e:
            ctx.error(path + (key,), str(e))
            return None
        for message in conditions.check_condition(text, set(scope.acl_names)):
            ctx.error(path + (key,), message)
        _fetched_backends(ctx, path + (key,), text)
        return Condition(text, negate)
    return None


def _monitor_fail(ctx, path, value, scope) -> Condition | _Skip:
    """monitor_fail: a condition (HAProxy's `monitor fail if COND`)."""
    try:
        text = _str(value)
    except _Invalid as e:
        ctx.error(path, str(e))
        return _SKIP
    for message in conditions.check_condition(text, set(scope.acl_names)):
        ctx.error(path, message)
    _fetched_backends(ctx, path, text)
    return Condition(text)


def _fetched_backends(ctx: _Ctx, path: tuple, text: str, acl_line: bool = False) -> None:
    """Remember the backends that fetches name (nbsrv(NAME)) in a condition
    or an ACL line, for the check that they exist."""
    for name in sorted(conditions.backends_fetched(text, acl_line)):
        ctx.refs.append(_Ref(None, path, name))


def _use_backends(ctx, path, value, scope) -> tuple[tuple[UseBackend, tuple], ...]:
    """use_backend array -> ((UseBackend, path of its 'backend' key), ...);
    the paths let the cross-reference pass point at the right line."""
    out = []
    as_is = lambda v: v  # noqa: E731 - if/unless are validated by _condition
    for epath, table in _table_list(ctx, path, value, "use_backend"):
        fields = _fields(ctx, epath, table, {"backend": _name, "if": as_is, "unless": as_is})
        cond = _condition(ctx, epath, table, scope)
        if ctx.require(epath, table, ("backend",)) and "backend" in fields:
            out.append((UseBackend(fields["backend"], cond, ctx.line(epath)), epath + ("backend",)))
    return tuple(out)


# --------------------------------------------------------------- rules

_REQUIRED = object()  # marks a rule param without a default
_OPTIONAL = None      # an optional param that is left out when absent

_HEADER_PARAMS = {"name": (_token, _REQUIRED), "value": (_format, _REQUIRED)}
# 'replace' is also checked against 'match' (group numbers) in _rule.
_REPLACE_HEADER = {"name": (_token, _REQUIRED), "match": (_regex, _REQUIRED),
                   "replace": (_header_value, _REQUIRED)}
_COMMON_RULES = {
    "set-header": _HEADER_PARAMS,
    "add-header": _HEADER_PARAMS,
    "del-header": {"name": (_token, _REQUIRED)},
    "replace-header": _REPLACE_HEADER,
}
# action -> {param: (parser, default)}
_REQUEST_RULES = {
    "allow": {},
    "deny": {"status": (_status(), 403), "content_type": (_header_value, _OPTIONAL),
             "body": (_any_str, _OPTIONAL)},
    "redirect": {"location": (_format, _OPTIONAL), "prefix": (_format, _OPTIONAL),
                 "scheme": (_choice(("http", "https"), "scheme"), _OPTIONAL),
                 "code": (lambda v: _one_of_int(v, REDIRECT_CODES), 302),
                 "drop_query": (_bool, _OPTIONAL)},
    "return": {"status": (_status(), 200), "content_type": (_header_value, _OPTIONAL),
               "body": (_any_str, _OPTIONAL)},
    **_COMMON_RULES,
    "replace-path": {"match": (_regex, _REQUIRED), "replace": (_header_value, _REQUIRED)},
    "set-path": {"value": (_path_format, _REQUIRED)},
    "set-query": {"value": (_format, _REQUIRED)},
}
def _key_sample(value: Any) -> str:
    """A tracking key: a sample fetch ("src", "req.hdr(x-api-key)")."""
    text = _str(value)
    try:
        conditions.parse_key_sample(text)
    except conditions.ConditionError as e:
        raise _Invalid(str(e)) from None
    return text


def _sc_number(value: Any) -> int:
    return _one_of_int(value, (0, 1, 2))


# stick tables: actions shared by http_request and tcp_request rules
_TRACK = {"key": (_key_sample, _REQUIRED), "table": (_name, _OPTIONAL)}
_STICK_RULES = {
    "track-sc0": _TRACK, "track-sc1": _TRACK, "track-sc2": _TRACK,
    "sc-inc-gpc0": {"sc": (_sc_number, 0)},
    "sc-inc-gpc1": {"sc": (_sc_number, 0)},
    "sc-set-gpt0": {"sc": (_sc_number, 0), "value": (_int(-(1 << 63), (1 << 63) - 1), _REQUIRED)},
    "reject": {},
}
_REQUEST_RULES.update(_STICK_RULES)
_REQUEST_RULES["tarpit"] = {"status": (_status(), 500), "timeout": (_duration, 5.0)}
_REQUEST_RULES["deny"] = {**_REQUEST_RULES["deny"], "retry_after": (_duration, _OPTIONAL)}
_TCP_RULES = {
    "accept": {},
    **_STICK_RULES,
}
TCP_RULE_PHASES = ("connection", "content")
_TCP_RULES = {action: {**params, "on": (_choice(TCP_RULE_PHASES, "rule phase"), _REQUIRED)}
              for action, params in _TCP_RULES.items()}
_RESPONSE_RULES = {
    **_COMMON_RULES,
    "set-status": {"status": (_status(), _REQUIRED), "reason": (_header_value, _OPTIONAL)},
}


def _one_of_int(value: Any, allowed: tuple[int, ...]) -> int:
    number = _int()(value)
    if number not in allowed:
        raise _Invalid(f"must be one of {', '.join(map(str, allowed))}, got {_number(number)}")
    return number


def _rule(ctx: _Ctx, path: tuple, table: dict, actions: dict, scope: _Scope) -> Rule | None:
    """One rule table -> model.Rule, or None when its action is unusable."""
    cond = _condition(ctx, path, table, scope)
    if not ctx.require(path, table, ("action",)):
        return None
    try:
        action = _str(table["action"])
    except _Invalid as e:
        ctx.error(path + ("action",), str(e))
        return None
    if action not in actions:
        hint = _suggest(action, actions) or f" (expected one of: {', '.join(actions)})"
        ctx.error(path + ("action",), f"unknown action {action!r}{hint}")
        return None
    spec = actions[action]
    params = {}
    for key, value in table.items():
        if key in ("action", "if", "unless"):
            continue
        if key not in spec:
            valid = list(spec) + ["action", "if", "unless"]
            ctx.error(path + (key,), f"unknown key {key!r} for action {action!r}{_suggest(key, valid)}")
            continue
        try:
            params[key] = spec[key][0](value)
        except _Invalid as e:
            ctx.error(path + (key,), str(e))
    for key, (_, default) in spec.items():
        if key in table:
            continue
        if default is _REQUIRED:
            ctx.error(path, f"action {action!r} needs {key!r}")
        elif default is not _OPTIONAL:
            params[key] = default
    if "match" in params and "replace" in params:
        for message in conditions.check_replacement(params["replace"], params["match"]):
            ctx.error(path + ("replace",), message)
    if action == "redirect":
        given = [k for k in ("location", "prefix", "scheme") if k in table]
        if len(given) != 1:
            ctx.error(path, "redirect needs exactly one of 'location', 'prefix' or 'scheme'"
                            + (f", got {', '.join(given)}" if given else ""))
    return Rule(action, tuple(sorted(params.items())), cond, ctx.line(path))


def _rules(actions: dict) -> Callable:
    def parse(ctx, path, value, scope) -> tuple[Rule, ...]:
        rules = (_rule(ctx, epath, t, actions, scope) for epath, t in _table_list(ctx, path, value, "rule"))
        return tuple(r for r in rules if r is not None)
    return parse


# ---------------------------------------------------- binds and servers

_BIND_SCHEMA = {
    "address": _bind_address,
    "tls": _bool,
    "name": _name,
    "accept_proxy": _bool,
    "transparent": _bool,
}


def _binds(ctx, path, value, scope) -> tuple[tuple[Bind, tuple], ...] | _Skip:
    """bind: "addr", a table { address = "addr", tls = true, name = "NAME" },
    or an array of either -> ((Bind, path), ...). Names are "" here (the
    frontend numbers them)."""
    if isinstance(value, (str, dict)):
        items = [(path, value)]
    elif isinstance(value, list):
        items = [(path + (i,), v) for i, v in enumerate(value)]
        if not items:
            ctx.error(path, "needs at least one address")
    else:
        ctx.error(path, "expected an address string, a table { address = \"...\", tls = true } "
                        f"or an array of them, got {_describe(value)}")
        return _SKIP
    out = []
    for ipath, item in items:
        if isinstance(item, dict):
            fields = _fields(ctx, ipath, item, _BIND_SCHEMA)
            if ctx.require(ipath, item, ("address",)) and "address" in fields:
                out.append((Bind(fields["address"], fields.get("tls", False),
                                 fields.get("name", ""), fields.get("accept_proxy", False),
                                 fields.get("transparent", False)), ipath))
            continue
        try:
            out.append((Bind(_bind_address(item)), ipath))
        except _Invalid as e:
            ctx.error(ipath, str(e))
    return tuple(out)


# ------------------------------------------------------------------ TLS

def _tls_path(ctx: _Ctx, path: tuple, value: Any, what: str) -> str | None:
    """A file or directory path of a TLS table, absolute (relative ones are
    against the config's directory); checked for existence when the
    loader reads TLS files. None (reported) when unusable."""
    try:
        text = _str(value)
    except _Invalid as e:
        ctx.error(path, str(e))
        return None
    full = text
    if ctx.base_dir is not None and not os.path.isabs(text):
        full = os.path.normpath(os.path.join(ctx.base_dir, text))
    return full


def _alpn(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _Invalid(f"expected an array of protocol names, got {_describe(value)}")
    out = []
    for v in value:
        text = _str(v)
        if not text.isascii() or not text.isprintable() or len(text) > 255:
            raise _Invalid(f"invalid ALPN protocol name {text!r}")
        out.append(text)
    return tuple(out)


def _ciphers(value: Any) -> str:
    from farm import tlsconf
    text = _str(value)
    try:
        tlsconf.check_ciphers(text)
    except tlsconf.TlsError as e:
        raise _Invalid(str(e)) from None
    return text


def _ciphersuites(value: Any) -> str:
    from farm import tlsconf
    text = _str(value)
    try:
        tlsconf.check_ciphersuites(text)
    except tlsconf.TlsError as e:
        raise _Invalid(str(e)) from None
    return text


def _sni(value: Any) -> tuple[str, bool]:
    """A backend's sni: a fixed host name, or a sample fetch such as
    req.hdr(host) (what has parentheses or is a fetch name) -> (text,
    is_fetch)."""
    text = _str(value).strip()
    if "(" in text or text.split(",")[0] in conditions.FETCHES:
        messages = conditions.check_format("%[" + text + "]")
        if messages:
            raise _Invalid("; ".join(messages))
        return text, True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        raise _Invalid(f"an IP address is not a server name (SNI): {text!r}")
    if not _HOSTNAME_RE.fullmatch(text):
        raise _Invalid(f"expected a host name or a fetch such as req.hdr(host), got {text!r}")
    return text, False


_FRONTEND_TLS_SCHEMA = {
    "certificates": lambda v: v,          # checked by _frontend_tls (paths, files)
    "alpn": _alpn,
    "min_version": _choice(model.TLS_VERSIONS, "TLS version"),
    "ciphers": _ciphers,
    "ciphersuites": _ciphersuites,
    "client_ca": lambda v: v,
    "verify": _choice(model.CLIENT_VERIFY, "verify mode"),
    "session_tickets": _bool,
    "acme": _name,                        # checked against [acme.NAME] by _check_acme_refs
    "domains": lambda v: v,               # checked by _frontend_tls
}


# [frontends.NAME.h2]: the bounds are RFC 9113's (section 6.5.2) where it
# sets them, else what a client could turn into memory held by farm.
_FRONTEND_H2_SCHEMA = {
    "max_concurrent_streams": _int(1, 1000),
    "initial_window_size": _int(1, 2**31 - 1),
    "max_frame_size": _int(16384, 16777215),
    "header_table_size": _int(0, 65536),
    "max_header_fields": _int(1, 1000),
}


def _frontend_h2(ctx, path, value) -> model.FrontendH2 | _Skip:
    """[frontends.NAME.h2] -> FrontendH2 (the defaults for what is left out)."""
    fields = _fields(ctx, path, value, _FRONTEND_H2_SCHEMA)
    if not isinstance(value, dict):
        return _SKIP
    return model.FrontendH2(**fields)


def _frontend_tls(ctx, path, value, scope) -> FrontendTls | _Skip:
    """[frontends.NAME.tls] -> FrontendTls; with ctx.tls_files, every
    certificate and the client CA are read and checked (errors at their
    key, an expired certificate as a warning)."""
    fields = _fields(ctx, path, value, _FRONTEND_TLS_SCHEMA)
    if not isinstance(value, dict):
        return _SKIP
    ok = _acme_domains(ctx, path, value, fields)
    if "acme" not in value:
        ok = ctx.require(path, value, ("certificates",)) and ok
    certs: list[str] = []
    raw = fields.get("certificates")
    if raw is not None:
        cpath = path + ("certificates",)
        items = [(cpath, raw)] if isinstance(raw, str) else \
            [(cpath + (i,), v) for i, v in enumerate(raw)] if isinstance(raw, list) else None
        if items is None:
            ctx.error(cpath, f"expected an array of certificate files or directories, got {_describe(raw)}")
            ok = False
        elif not items:
            ctx.error(cpath, "needs at least one certificate file or directory")
            ok = False
        for ipath, item in items or ():
            full = _tls_path(ctx, ipath, item, "certificate")
            if full is None:
                ok = False
                continue
            certs.append(full)
            if ctx.tls_files:
                _check_certificates(ctx, ipath, full)
    for version in ("TLSv1.0", "TLSv1.1"):
        if fields.get("min_version") == version:
            ctx.warning(path + ("min_version",), f"{version} is obsolete (RFC 8996); OpenSSL also "
                        "needs '@SECLEVEL=0' in ciphers to offer it")
    verify = fields.get("verify", "none")
    client_ca = None
    if "client_ca" in value:
        client_ca = _tls_path(ctx, path + ("client_ca",), value["client_ca"], "CA file")
        if client_ca is not None and ctx.tls_files:
            _check_ca(ctx, path + ("client_ca",), client_ca)
    if verify != "none" and "client_ca" not in value:
        ctx.error(path + ("verify",), f'verify = "{verify}" needs client_ca (the CA file that '
                  "signs the client certificates)")
    if not ok:
        return _SKIP
    fields["certificates"] = tuple(certs)
    fields["client_ca"] = client_ca
    if fields.get("acme"):
        ctx.acme_refs.append((path + ("acme",), fields["acme"]))
    return FrontendTls(**fields)


def _domain_problem(name: str, shown: str) -> str | None:
    """Why `name` (lowercased, without a final dot) cannot be a domain of
    an ACME certificate, or None; shown is the name as written."""
    if name.startswith("*."):
        return f"{shown!r}: a wildcard needs the DNS-01 challenge, which farm does not do"
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return f"{shown!r}: an IP address, not a host name"
    if not _HOSTNAME_RE.fullmatch(name) or "." not in name and name != "localhost":
        return f"{shown!r} is not a host name (such as www.example.com)"
    return None


def _acme_domains(ctx: _Ctx, path: tuple, value: dict, fields: dict) -> bool:
    """A tls table's domains: host names (no IP address, no wildcard:
    HTTP-01 and TLS-ALPN-01 cannot prove those), only with acme. Without
    them, acme takes the names from the frontend's routing rules
    (_derive_acme_domains). Sets fields["domains"] to the tuple; False
    when something is wrong."""
    raw = value.get("domains")
    if "acme" not in value:
        if raw is not None:
            ctx.error(path + ("domains",), "domains names the certificate of acme = \"NAME\": "
                      "set acme too (or remove domains)")
            return False
        return True
    if raw is None:
        fields["domains"] = ()
        return True
    if not isinstance(raw, list) or not raw:
        got = "an empty array" if raw == [] else _describe(raw)
        ctx.error(path + ("domains",), f"expected a non-empty array of host names, got {got} "
                  "(or leave domains out: the host names of the routing rules)")
        return False
    out: list[str] = []
    for i, item in enumerate(raw):
        ipath = path + ("domains", i)
        if not isinstance(item, str) or not item:
            ctx.error(ipath, f"expected a host name, got {_describe(item)}")
            return False
        name = item.lower().rstrip(".")
        problem = _domain_problem(name, item)
        if problem:
            ctx.error(ipath, problem)
            return False
        if name in out:
            ctx.error(ipath, f"{item!r} is listed twice")
            return False
        out.append(name)
    fields["domains"] = tuple(out)
    return True


def route_domains(fe: Frontend) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The host names fe routes by literally: in the `if` conditions of
    its use_backend rules, the terms (not negated) that compare the Host
    header or the TLS server name with exact strings
    (conditions.literal_hosts), as anonymous ACLs or named ones.
    Returns (names that can be a certificate's domains, other values seen
    there, such as an IP address). Conditions are valid (the loader
    checked them)."""
    acls: dict[str, list[str]] = {}
    for acl in fe.acl:
        acls.setdefault(acl.name, []).extend(acl.lines)
    names: list[str] = []
    others: list[str] = []
    for ub in fe.use_backend:
        if ub.cond is None or ub.cond.negate:
            continue                   # unless: the names it lists are the ones not routed
        try:
            spec = conditions.parse_condition(ub.cond.text)
        except conditions.ConditionError:
            continue
        for group in spec.groups:
            for term in group:
                if term.negate:
                    continue
                try:
                    specs = [term.acl] if term.acl is not None else \
                        [conditions.parse_acl(line) for line in acls.get(term.name or "", ())]
                except conditions.ConditionError:
                    continue
                for acl_spec in specs:
                    for name in conditions.literal_hosts(acl_spec):
                        seen = names if _domain_problem(name, name) is None else others
                        if name not in seen:
                            seen.append(name)
    return tuple(names), tuple(others)


def _derive_acme_domains(ctx: _Ctx, frontends: list[Frontend]) -> list[Frontend]:
    """A frontend with acme and no domains gets the host names of its
    routing rules (route_domains), or an error saying how to name them."""
    out = []
    for fe in frontends:
        if fe.tls is not None and fe.tls.acme and not fe.tls.domains:
            names, others = route_domains(fe)
            path = ("frontends", fe.name, "tls")
            if not names:
                skipped = f" ({', '.join(others)} cannot be)" if others else ""
                ctx.error(path, "acme without domains takes the host names of the routing rules, "
                          f"and this frontend's use_backend rules name none{skipped}: set "
                          "domains = [\"www.example.com\", ...], or route with literal host names "
                          "({ hdr(host) -i www.example.com } or { ssl_fc_sni www.example.com })")
            else:
                fe = dataclasses.replace(fe, tls=dataclasses.replace(
                    fe.tls, domains=names, domains_from_rules=True))
        out.append(fe)
    return out


# -------------------------------------------------------------- [acme]

def _https_url(value: Any) -> str:
    text = _header_value(_str(value))
    parts = urllib.parse.urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise _Invalid(f"expected the https:// URL of an ACME directory, got {text!r}")
    return text


def _contacts(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _Invalid(f"expected \"mailto:you@example.com\" or an array of them, got {_describe(value)}")
    out = []
    for item in items:
        text = _header_value(_str(item))
        if not text.startswith("mailto:") or "@" not in text:
            raise _Invalid(f"expected a mailto: URL such as \"mailto:ops@example.com\", got {text!r}")
        out.append(text)
    return tuple(out)


def _long_duration(value: Any) -> float:
    """A duration of days ("30d", "720h"): like timeouts, without HAProxy's
    24-day ceiling."""
    if isinstance(value, str) and _DURATION_RE.fullmatch(value.strip()) and not value.strip().isdigit():
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(value.strip()))
        if seconds <= 0:
            raise _Invalid(f"must be greater than 0, got {_shown(value)}")
        return seconds
    return parse_duration(value, positive=True)


def _acme_challenge(value: Any) -> str:
    return _choice(model.ACME_CHALLENGES, "challenge")(_str(value))


_ACME_SCHEMA = {
    "directory": _https_url,
    "directory_ca": lambda v: v,          # paths: checked by _acme
    "contact": _contacts,
    "account_key": lambda v: v,
    "key_type": _choice(model.ACME_KEY_TYPES, "key type"),
    "storage": lambda v: v,
    "challenge": _acme_challenge,
    "renew_before": _long_duration,
}


def _acme_sections(ctx: _Ctx, data: dict) -> list[model.Acme]:
    """[acme.NAME] tables -> Acme; with ctx.tls_files, directory_ca is read
    and checked (never the ACME server: `farm check` stays offline)."""
    out = []
    for name, table in _sections(ctx, data, "acme"):
        path = ("acme", name)
        ctx.acme_names.add(name)          # known even when invalid (one error, not two)
        _check_name(ctx, path, name, "acme section")
        fields = _fields(ctx, path, table, _ACME_SCHEMA)
        if not isinstance(table, dict) or not ctx.require(path, table, ("directory",)):
            continue
        for key, what in (("directory_ca", "CA file"), ("account_key", "account key"),
                          ("storage", "storage directory")):
            if key in table:
                fields[key] = _tls_path(ctx, path + (key,), table[key], what)
                if fields[key] is None:
                    del fields[key]
        if fields.get("directory_ca") and ctx.tls_files:
            _check_ca(ctx, path + ("directory_ca",), fields["directory_ca"])
        if "directory" not in fields:
            continue
        out.append(model.Acme(name=name, **fields, line=ctx.line(path)))
    return out


def _check_acme_refs(ctx: _Ctx, frontends: list[Frontend], accounts: list[model.Acme]) -> None:
    """Each acme = "NAME" names an [acme.NAME]; a frontend that gets its
    certificate by HTTP-01 needs an HTTP bind (the server connects to port
    80 of the domains: farm answers on every HTTP bind, warn if none).
    TLS-ALPN-01 is answered on the frontend's own tls binds, which a tls
    table without one is warned about already."""
    names = ctx.acme_names
    for path, name in ctx.acme_refs:
        if name not in names:
            ctx.error(path, f"unknown acme section {name!r}{_suggest(name, names)} "
                      f"(define [acme.{name}] with its directory)")
    challenge = {a.name: a.challenge for a in accounts}
    users = [fe for fe in frontends if fe.tls is not None and fe.tls.acme]
    if any(challenge.get(fe.tls.acme) == "http-01" for fe in users) and \
            not any(not b.tls for fe in frontends if fe.mode == "http" for b in fe.binds):
        ctx.warning(("acme",), "no HTTP bind without tls: the HTTP-01 challenge needs one "
                    "(the ACME server connects to port 80 of each domain)")


def _check_certificates(ctx: _Ctx, path: tuple, full: str) -> None:
    from farm import tlsconf
    try:
        files = tlsconf.certificate_files(full)
    except tlsconf.TlsError as e:
        ctx.error(path, str(e))
        return
    for f in files:
        try:
            _, warnings = tlsconf.check_certificate(f)
        except tlsconf.TlsError as e:
            ctx.error(path, str(e))
            continue
        for w in warnings:
            ctx.warning(path, w)


def _check_ca(ctx: _Ctx, path: tuple, full: str) -> None:
    from farm import tlsconf
    try:
        tlsconf.read_ca(full)
    except tlsconf.TlsError as e:
        ctx.error(path, str(e))


_BACKEND_TLS_SCHEMA = {
    "verify": _choice(model.SERVER_VERIFY, "verify mode"),
    "ca": lambda v: v,
    "sni": _sni,
    "alpn": _alpn,
    "min_version": _choice(model.TLS_VERSIONS, "TLS version"),
    "certificate": lambda v: v,
    "key": lambda v: v,
}


def _backend_tls(ctx, path, value, scope) -> BackendTls | _Skip:
    """[backends.NAME.tls] -> BackendTls (files checked with ctx.tls_files)."""
    fields = _fields(ctx, path, value, _BACKEND_TLS_SCHEMA)
    if not isinstance(value, dict):
        return _SKIP
    for key, what in (("ca", "CA file"), ("certificate", "certificate"), ("key", "private key")):
        if key in value:
            fields[key] = _tls_path(ctx, path + (key,), value[key], what)
    if fields.get("ca") and ctx.tls_files:
        _check_ca(ctx, path + ("ca",), fields["ca"])
    if "key" in value and "certificate" not in value:
        ctx.error(path + ("key",), "key goes with certificate (the client certificate)")
    if fields.get("certificate") and ctx.tls_files:
        from farm import tlsconf
        try:
            _, warnings = tlsconf.check_certificate(fields["certificate"], key_path=fields.get("key"))
        except tlsconf.TlsError as e:
            ctx.error(path + ("certificate",), str(e))
        else:
            for w in warnings:
                ctx.warning(path + ("certificate",), w)
    if "certificate" in fields:
        fields["cert"] = fields.pop("certificate")
    if "sni" in fields:
        fields["sni"], fields["sni_fetch"] = fields["sni"]
    return BackendTls(**{k: v for k, v in fields.items() if v is not None})


_SERVER_SCHEMA = {
    "name": _name,
    "address": _server_address,
    "weight": _int(0, 256),
    "backup": _bool,
    "maxconn": _int(0, MAX_INT32),
    "check": _bool,
    "cookie": _token,
    "disabled": _bool,
    "slowstart": _duration,
    "init_addr": _init_addr,
    "tls": _bool,
    "send_proxy": _choice(model.SEND_PROXY_VERSIONS, "PROXY protocol version"),
    "send_proxy_tlvs": lambda v: _str_list(v, _choice(model.SEND_PROXY_TLVS, "PROXY v2 TLV")),
    "proto": _choice(model.SERVER_PROTOS, "server protocol"),
    "id": _int(1, MAX_INT32),
}


def _str_list(value: Any, item: Callable[[Any], Any]) -> tuple:
    """An array whose every element passes item(); the first bad one is named."""
    if not isinstance(value, list):
        raise _Invalid(f"expected an array, got {_describe(value)}")
    out = []
    for i, v in enumerate(value):
        try:
            out.append(item(v))
        except _Invalid as e:
            raise _Invalid(f"element {i + 1}: {e}") from None
    return tuple(out)


def _cidr(value: Any):
    """An address or network ("10.0.0.0/8", "::1") -> an ipaddress network."""
    text = _str(value)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise _Invalid(f"{text!r} is not an IP address or CIDR network") from None


def _servers(ctx, path, value, scope) -> tuple[Server, ...]:
    """servers: array of tables -> Servers. A server's id is its `id`
    (HAProxy's: unique in the backend), else the lowest id no server
    before it took and no server sets, from 1 (so without any `id`, its
    1-based position). A server without a usable name or address is
    reported and dropped; duplicate names and ids are reported at the
    later one."""
    servers: list[Server] = []
    seen: dict[str, int] = {}
    ids: dict[int, str] = {}
    for spath, table in _table_list(ctx, path, value, "server"):
        fields = _fields(ctx, spath, table, _SERVER_SCHEMA)
        present = ctx.require(spath, table, ("name", "address"))
        if not present or "name" not in fields or "address" not in fields:
            continue
        name = fields["name"]
        if name in seen:
            ctx.error(spath + ("name",),
                      f"duplicate server name {name!r} (first defined at line {seen[name]})")
        else:
            seen[name] = ctx.line(spath + ("name",))
        fields.setdefault("init_addr", ())     # () = not set here: [defaults] or "libc"
        fields.setdefault("proto", "")         # "" = not set here: the backend's, [defaults]' or h1
        if fields.get("send_proxy_tlvs") and fields.get("send_proxy") != "v2":
            ctx.error(spath + ("send_proxy_tlvs",), 'TLVs exist in PROXY protocol v2 only: '
                      'set send_proxy = "v2"')
        if "id" in fields:
            if fields["id"] in ids:
                ctx.error(spath + ("id",), f"id {fields['id']} is already the id of server "
                          f"{ids[fields['id']]!r}")
            ids.setdefault(fields["id"], name)
        servers.append(Server(**fields, line=ctx.line(spath)))
    next_id = 1
    for i, srv in enumerate(servers):
        if srv.id == 0:
            while next_id in ids:
                next_id += 1
            ids[next_id] = srv.name
            servers[i] = dataclasses.replace(srv, id=next_id)
    return tuple(servers)


def _check_resolution(ctx: _Ctx, backends: list[Backend]) -> None:
    """Resolve every server host name now (the `farm check` promise: what
    passes here starts). A name that does not resolve is an error unless
    the server's init_addr allows starting without an address ("none")."""
    todo = [(be, s) for be in backends for s in be.servers
            if resolve.literal_ip(s.address.host) is None and "libc" in s.init_addr]
    ctx.resolver.prefetch((s.address.host, s.address.port, s.address.family) for _, s in todo)
    for be, s in todo:
        try:
            ctx.resolver.resolve(s.address.host, s.address.port, s.address.family)
        except resolve.ResolveError as e:
            if "none" in s.init_addr:
                continue        # starts in maintenance until `set server ... addr`
            ctx.error(("backends", be.name, "servers", be.servers.index(s), "address"),
                      f"cannot resolve {s.address.host!r} ({e}); init_addr = \"libc,none\" "
                      "would start this server in maintenance instead")


def _check_limits(ctx: _Ctx, global_: Global, defaults: dict, frontends: list[Frontend],
                  backends: list[Backend]) -> None:
    """maxconn values against what the configured workers can hold."""
    ceiling = global_.workers * MAXCONN_PER_WORKER
    why = f"{MAXCONN_PER_WORKER} per worker, {global_.workers} worker(s)"
    found = [(("global", "maxconn"), global_.maxconn), (("defaults", "maxconn"), defaults.get("maxconn", 0))]
    found += [(("frontends", fe.name, "maxconn"), fe.maxconn) for fe in frontends
              if fe.maxconn != defaults.get("maxconn", 0)]     # else reported at [defaults]
    found += [(("backends", be.name, "servers", i, "maxconn"), s.maxconn)
              for be in backends for i, s in enumerate(be.servers)]
    for path, value in found:
        if value > ceiling:
            ctx.error(path, f"must be at most {ceiling} ({why}), got {_number(value)}")


# ------------------------------------------------------------- sections

def _system_user(value: Any) -> str:
    """A user name that exists on this machine (workers switch to it)."""
    import pwd
    name = _str(value)
    try:
        pwd.getpwnam(name)
    except (KeyError, ValueError):
        raise _Invalid(f"unknown user {name!r} (not in the passwd database of this machine)") from None
    return name


def _system_group(value: Any) -> str:
    import grp
    name = _str(value)
    try:
        grp.getgrnam(name)
    except (KeyError, ValueError):
        raise _Invalid(f"unknown group {name!r} (not in the group database of this machine)") from None
    return name


_GLOBAL_SCHEMA = {
    "workers": _workers,
    "maxconn": _int(1, MAX_INT32),
    "user": _system_user,
    "group": _system_group,
    "admin_socket": _str,
    "hard_stop_after": _duration,
    "pidfile": _str,
    "state_file": _str,
    "node": _any_str,
}
# -- [log] access targets and syslog options (issue 5, Logs) --
def _log_check(name: str) -> Callable:
    """A value checked by farm.logs (looked up at call time): parse_target,
    check_tag, check_hostname; their ValueError becomes the error message."""
    def parse(value: Any) -> str:
        text = _str(value) if name != "check_hostname" else _any_str(value)
        from farm import logs
        try:
            getattr(logs, name)(text)
        except ValueError as e:
            raise _Invalid(str(e)) from None
        return text
    return parse


_LOG_SCHEMA = {
    "events": _str,
    "access": _log_check("parse_target"),
    "format": _choice(model.LOG_FORMATS, "log format"),
    "level": _choice(LOG_LEVELS, "log level"),
    "syslog_format": _choice(model.SYSLOG_FORMATS, "syslog format"),
    "facility": _choice(model.SYSLOG_FACILITIES, "syslog facility"),
    "tag": _log_check("check_tag"),
    "hostname": _log_check("check_hostname"),
}
# -- end [log] --
_STATS_SCHEMA = {
    "bind": _bind_address,
    "uri": _path,
    "refresh": _positive_duration,
    "auth": _auth,
    "admin": _bool,
}
_DEFAULTS_SCHEMA = {
    "mode": _choice(model.MODES, "mode"),
    "retries": _int(0, 100),
    "redispatch": _bool,
    "balance": _balance,
    "hash_type": _choice(model.HASH_TYPES, "hash type"),
    "maxconn": _int(0, MAX_INT32),
    "timeout": _Nested(_timeouts),
    "option_forwardfor": _bool,
    "forwarded": _bool,
    "http_reuse": _choice(HTTP_REUSE, "http_reuse value"),
    "max_header_size": _header_size,
    "errorfiles": _Nested(_errorfiles),
    "check": _Nested(_check),
    "init_addr": _init_addr,
    "proto": _choice(model.SERVER_PROTOS, "server protocol"),
}
# 'acl' comes first: the rules and use_backend conditions need its names.
_FRONTEND_SCHEMA = {
    "acl": _Nested(_acls),
    "bind": _Nested(_binds),
    "mode": _choice(model.MODES, "mode"),
    "default_backend": _name,
    "maxconn": _int(0, MAX_INT32),
    "timeout": _Nested(_timeouts),
    "http_request": _Nested(_rules(_REQUEST_RULES)),
    "http_response": _Nested(_rules(_RESPONSE_RULES)),
    "tcp_request": _Nested(_rules(_TCP_RULES)),
    "use_backend": _Nested(_use_backends),
    "option_forwardfor": _bool,
    "forwarded": _bool,
    "xff_header": _token,
    "max_header_size": _header_size,
    "errorfiles": _Nested(_errorfiles),
    "tls": _Nested(_frontend_tls),
    "h2": _Nested(lambda ctx, path, value, scope: _frontend_h2(ctx, path, value)),
    "proxy_trusted": lambda v: _str_list(v, _cidr),
    "monitor_uri": _monitor_uri,
    "monitor_fail": _Nested(_monitor_fail),
}
# fetches that read the server's response (no value before it)
_RESPONSE_FETCHES = frozenset(("res.hdr", "res.fhdr", "res.hdr_cnt", "res.cook", "status"))

# stick rule keys -> the rules each one makes (stick on = match + store-request)
_STICK_KEYS = {"stick_on": ("match", "store-request"), "stick_match": ("match",),
               "stick_store_request": ("store-request",),
               "stick_store_response": ("store-response",)}


def _stick_rules(name: str) -> Callable:
    """A stick_* key: a fetch ("src"), a table { key = FETCH, table = NAME,
    if|unless = COND }, or an array of either (HAProxy's several stick
    lines: the first match that finds a usable server wins) -> ((StickRule,
    path of the rule, path of its key), ...)."""
    kinds = _STICK_KEYS[name]
    as_is = lambda v: v  # noqa: E731 - key, if and unless are checked below

    def parse(ctx, path, value, scope):
        if isinstance(value, list):
            if not value:
                ctx.error(path, "expected at least one fetch")
            items = [(path + (i,), v) for i, v in enumerate(value)]
        else:
            items = [(path, value)]
        out = []
        for ipath, item in items:
            table, cond, kpath = "", None, ipath
            if isinstance(item, dict):
                fields = _fields(ctx, ipath, item, {"key": as_is, "table": _name, "if": as_is,
                                                    "unless": as_is})
                cond = _condition(ctx, ipath, item, scope)
                if not ctx.require(ipath, item, ("key",)):
                    continue
                table, kpath, item = fields.get("table", ""), ipath + ("key",), item["key"]
            elif not isinstance(item, str):
                ctx.error(ipath, f"expected a fetch (\"src\"), a table {{ key = \"FETCH\", "
                          f"table = \"NAME\", if = \"COND\" }} or an array of them, got "
                          f"{_describe(item)}")
                continue
            try:
                key = _key_sample(item)
            except _Invalid as e:
                ctx.error(kpath, str(e))
                continue
            for kind in kinds:
                out.append((model.StickRule(kind, key, table, cond, ctx.line(ipath)), ipath, kpath))
        return tuple(out)
    return parse


_BACKEND_SCHEMA = {
    "acl": _Nested(_acls),
    "mode": _choice(model.MODES, "mode"),
    "balance": _balance,
    "hash_type": _choice(model.HASH_TYPES, "hash type"),
    "retries": _int(0, 100),
    "redispatch": _bool,
    "timeout": _Nested(_timeouts),
    "check": _Nested(_check),
    "cookie": _Nested(_cookie),
    "http_request": _Nested(_rules(_REQUEST_RULES)),
    "http_response": _Nested(_rules(_RESPONSE_RULES)),
    "option_forwardfor": _bool,
    "forwarded": _bool,
    "http_reuse": _choice(HTTP_REUSE, "http_reuse value"),
    "errorfiles": _Nested(_errorfiles),
    "tls": _Nested(_backend_tls),
    "servers": _Nested(_servers),
    "proto": _choice(model.SERVER_PROTOS, "server protocol"),
    "stick_on": _Nested(_stick_rules("stick_on")),
    "stick_match": _Nested(_stick_rules("stick_match")),
    "stick_store_request": _Nested(_stick_rules("stick_store_request")),
    "stick_store_response": _Nested(_stick_rules("stick_store_response")),
    "stick_table": _name,
}
_TOP_LEVEL = ("global", "log", "defaults", "stats", "frontends", "backends", "tables", "acme",
              "peers")


def _inherit(own: dict, defaults: dict, key: str, fallback: Any) -> Any:
    """A section's own value, else the [defaults] one, else the model's."""
    return own.get(key, defaults.get(key, fallback))


def _merged(own: dict, defaults: dict, key: str) -> dict:
    """Key-by-key merge of a sub-table (timeout, check, errorfiles)."""
    return {**defaults.get(key, {}), **own.get(key, {})}


def _check_name(ctx: _Ctx, path: tuple, name: str, what: str) -> None:
    try:
        _name(name)
    except _Invalid as e:
        ctx.error(path, f"{what} {e}")


def _need_http(ctx: _Ctx, path: tuple, mode: str, fields: dict, keys: tuple[str, ...]) -> None:
    """Report HTTP-only settings in a tcp section (HAProxy refuses them)."""
    if mode != "tcp":
        return
    for key in keys:
        if fields.get(key):
            ctx.error(path + (key,), f"{key} needs mode http (this section is mode tcp)")


def _frontend(ctx: _Ctx, name: str, table: Any, index: int, defaults: dict) -> Frontend:
    path = ("frontends", name)
    _check_name(ctx, path, name, "frontend")
    own = _fields(ctx, path, table, _FRONTEND_SCHEMA, _Scope())
    ctx.require(path, table, ("bind",))
    binds = _number_binds(ctx, own.get("bind", ()))
    for bind, bpath in binds:
        ctx.binds.append(_Bind(bind.address, bpath, f"frontend {name!r}"))
    mode = _inherit(own, defaults, "mode", "http")
    _need_http(ctx, path, mode, own, ("http_request", "http_response", "monitor_uri", "h2"))
    if "monitor_fail" in own and "monitor_uri" not in own:
        ctx.warning(path + ("monitor_fail",), "without monitor_uri, monitor_fail does nothing")
    use_backend = own.get("use_backend", ())
    frontend = Frontend(
        name=name,
        binds=tuple(b for b, _ in binds),
        mode=mode,
        default_backend=own.get("default_backend"),
        maxconn=_inherit(own, defaults, "maxconn", 0),
        timeouts=Timeouts(**_merged(own, defaults, "timeout")),
        acl=own.get("acl", ()),
        http_request=own.get("http_request", ()),
        http_response=own.get("http_response", ()),
        tcp_request=own.get("tcp_request", ()),
        use_backend=tuple(ub for ub, _ in use_backend),
        option_forwardfor=_inherit(own, defaults, "option_forwardfor", False),
        forwarded=_inherit(own, defaults, "forwarded", False),
        xff_header=own.get("xff_header", "X-Forwarded-For"),
        max_header_size=_inherit(own, defaults, "max_header_size", 16384),
        errorfiles=tuple(sorted(_merged(own, defaults, "errorfiles").items())),
        tls=own.get("tls"),
        h2=own.get("h2", model.FrontendH2()),
        proxy_trusted=own.get("proxy_trusted", ()),
        monitor_uri=own.get("monitor_uri"),
        monitor_fail=own.get("monitor_fail"),
        id=index + 1,
        line=ctx.line(path),
    )
    _check_frontend_tls(ctx, path, frontend, binds, table)
    if "proxy_trusted" in own and not any(b.accept_proxy for b in frontend.binds):
        ctx.warning(path + ("proxy_trusted",), "no bind of this frontend has accept_proxy = true: "
                    "proxy_trusted does nothing")
    if "default_backend" in own:
        ctx.refs.append(_Ref(frontend, path + ("default_backend",), own["default_backend"]))
    elif mode == "tcp" and "default_backend" not in (table if isinstance(table, dict) else {}):
        ctx.error(path, "a tcp frontend needs a default_backend")
    for ub, upath in use_backend:
        ctx.refs.append(_Ref(frontend, upath, ub.backend))
    if mode == "tcp":
        _need_layer4(ctx, path, frontend, use_backend)
    return frontend


def _number_binds(ctx: _Ctx, binds) -> tuple[tuple[Bind, tuple], ...]:
    """Name each unnamed bind by its 1-based position in the frontend
    (HAProxy's listener id, what its logs show); names must be unique."""
    out = []
    seen: dict[str, tuple] = {}
    for i, (bind, bpath) in enumerate(binds):
        if not bind.name:
            bind = dataclasses.replace(bind, name=str(i + 1))
        if bind.name in seen:
            ctx.error(bpath + ("name",), f"bind name {bind.name!r} is already used by another bind "
                      f"of this frontend (line {ctx.line(seen[bind.name])})")
        seen.setdefault(bind.name, bpath)
        out.append((bind, bpath))
    return tuple(out)


def _check_frontend_tls(ctx: _Ctx, path: tuple, fe: Frontend, binds, table: Any) -> None:
    """tls binds need a [tls] table with certificates; a [tls] table
    without a tls bind does nothing."""
    tls_binds = [bpath for b, bpath in binds if b.tls]
    has_table = isinstance(table, dict) and "tls" in table
    if tls_binds and not has_table:
        ctx.error(tls_binds[0], f"a tls bind needs certificates: add [frontends.{fe.name}.tls] "
                  "with certificates = [\"/path/to/cert.pem\"]")
    if has_table and not tls_binds and binds:
        ctx.warning(path + ("tls",), "no bind of this frontend has tls = true: these settings "
                    "are unused")


# Fetches a TCP session can answer: it has a client address and a frontend
# port, no request. (HAProxy: layer-4 samples for tcp-request/use_backend.)
LAYER4_FETCHES = frozenset(("src", "src_port", "dst", "dst_port", "always_true", "always_false"))


def _layer4_spec(spec) -> bool:
    """Whether an ACL line can be answered without a request: layer-4
    fetches, stick counters, and table lookups keyed on a layer-4 fetch."""
    if spec.key is not None:
        return spec.key.fetch in LAYER4_FETCHES
    return spec.base in LAYER4_FETCHES or conditions.is_stick_fetch(spec.base)


def _need_layer4(ctx: _Ctx, path: tuple, fe: Frontend, use_backend) -> None:
    """In a tcp frontend, ACLs and use_backend conditions may only use
    layer-4 fetches; report the others at their line."""
    def bad_fetch(spec) -> str | None:
        return None if _layer4_spec(spec) else spec.fetch
    for acl in fe.acl:
        for line in acl.lines:
            try:
                fetch = bad_fetch(conditions.parse_acl(line))
            except conditions.ConditionError:
                continue       # already reported by check_acl
            if fetch:
                ctx.error(path + ("acl", acl.name), f"fetch {fetch!r} needs mode http "
                          "(a tcp frontend can use src, src_port, dst and dst_port)")
    named = {a.name for a in fe.acl}
    for ub, upath in use_backend:
        if ub.cond is None:
            continue
        try:
            spec = conditions.parse_condition(ub.cond.text)
        except conditions.ConditionError:
            continue
        for group in spec.groups:
            for term in group:
                if term.acl is not None:
                    fetch = bad_fetch(term.acl)
                elif term.name not in named and term.name in conditions.PREDEFINED_ACLS:
                    fetch = bad_fetch(conditions.parse_acl(conditions.PREDEFINED_ACLS[term.name]))
                else:
                    fetch = None
                if fetch:
                    ctx.error(upath, f"fetch {fetch!r} needs mode http "
                              "(a tcp frontend can use src, src_port, dst and dst_port)")


def _backend(ctx: _Ctx, name: str, table: Any, index: int, defaults: dict) -> Backend:
    path = ("backends", name)
    _check_name(ctx, path, name, "backend")
    own = _fields(ctx, path, table, _BACKEND_SCHEMA, _Scope())
    mode = _inherit(own, defaults, "mode", "http")
    _need_http(ctx, path, mode, own, ("http_request", "http_response", "cookie",
                                      "stick_store_response"))
    algorithm, arg, options = _inherit(own, defaults, "balance", ("roundrobin", None, ()))
    if mode == "tcp" and algorithm in model.BALANCE_HTTP_ONLY:
        where = path + ("balance",) if "balance" in own else path
        origin = "" if "balance" in own else " (inherited from [defaults])"
        ctx.error(where, f"balance {algorithm}{origin} needs mode http (this backend is mode tcp)")
    check = _merged(own, defaults, "check")
    if isinstance(table, dict) and isinstance(table.get("check"), dict) and table["check"] \
            and "type" not in check and "type" not in table["check"]:
        ctx.error(path + ("check",), "missing required key 'type' (tcp or http)")
    cookie = own.get("cookie")
    init_addr = defaults.get("init_addr", ("libc",))
    servers = tuple(s if s.init_addr else dataclasses.replace(s, init_addr=init_addr)
                    for s in own.get("servers", ()))
    servers, tls = _server_protos(ctx, path, own, defaults, mode, servers)
    if cookie is not None:
        # Cookie persistence needs a value per server; HAProxy users expect
        # the server name when none is given.
        servers = tuple(s if s.cookie else dataclasses.replace(s, cookie=s.name) for s in servers)
    return Backend(
        name=name,
        mode=mode,
        balance=Balance(algorithm, arg, options, _inherit(own, defaults, "hash_type", "map-based")),
        servers=servers,
        retries=_inherit(own, defaults, "retries", 3),
        redispatch=_inherit(own, defaults, "redispatch", True),
        timeouts=Timeouts(**_merged(own, defaults, "timeout")),
        check=Check(**check),
        cookie=cookie,
        http_request=own.get("http_request", ()),
        http_response=own.get("http_response", ()),
        acl=own.get("acl", ()),
        option_forwardfor=_inherit(own, defaults, "option_forwardfor", False),
        forwarded=_inherit(own, defaults, "forwarded", False),
        http_reuse=_inherit(own, defaults, "http_reuse", "safe"),
        errorfiles=tuple(sorted(_merged(own, defaults, "errorfiles").items())),
        tls=tls,
        stick=_stick(ctx, path, own, mode),
        id=index + 1,
        line=ctx.line(path),
    )


def _server_protos(ctx: _Ctx, path: tuple, own: dict, defaults: dict, mode: str,
                   servers: tuple) -> tuple[tuple, BackendTls]:
    """Each server's proto (its own, else the backend's, else [defaults]',
    else "h1"), and the backend's TLS settings with the ALPN its tls
    servers need: one TLS context serves the backend's servers, so its
    ALPN offers "h2" when they speak HTTP/2 (the default then) and never
    when one of them speaks HTTP/1.1 (a server picking h2 would get
    HTTP/1.1 bytes)."""
    proto = _inherit(own, defaults, "proto", "h1")
    servers = tuple(s if s.proto else dataclasses.replace(s, proto=proto) for s in servers)
    tls = own.get("tls", BackendTls())
    if mode == "tcp":
        for i, s in enumerate(servers):
            if s.proto == "h2":
                ctx.error(path + ("servers", i), f"server {s.name}: proto h2 needs "
                          "mode http (this backend is mode tcp)")
        return servers, tls
    for i, s in enumerate(servers):
        if s.proto == "h2" and s.send_proxy is not None:
            # a PROXY header names one client: it cannot head a connection
            # whose streams come from many
            ctx.error(path + ("servers", i), f"server {s.name}: send_proxy with proto "
                      "h2 is not supported (its connections carry the streams of many clients)")
    protos = {s.proto for s in servers if s.tls}
    if "h2" in tls.alpn and "h1" in (protos or {s.proto for s in servers}):
        where = path + ("tls", "alpn")
        ctx.error(where, 'alpn offers h2 to servers that speak HTTP/1.1: set proto = "h2" '
                  'on them (or on the backend), or offer only "http/1.1"')
    elif "h2" in protos:
        if "h1" in protos:
            ctx.error(path + ("servers",), 'tls servers of proto h1 and h2 in one backend '
                      '(one TLS context, one ALPN): put the h2 servers in a backend of their own')
        elif not tls.alpn:
            tls = dataclasses.replace(tls, alpn=("h2",))
        elif "h2" not in tls.alpn:
            ctx.error(path + ("tls", "alpn"), 'proto h2 servers over TLS: alpn must offer "h2"')
    return servers, tls


def _stick(ctx: _Ctx, path: tuple, own: dict, mode: str) -> tuple[model.StickRule, ...]:
    """The backend's stick rules (parsed by _stick_rules) in file order,
    each without a table of its own given stick_table (the table itself is
    checked, and defaulted, with the others in _check_stick_refs). In a
    tcp backend, keys and conditions are layer-4 fetches (and
    stick_store_response, reported by _need_http, has no response to read)."""
    found = [f for key in _STICK_KEYS for f in own.get(key, ())]
    if not found:
        if "stick_table" in own:
            ctx.error(path + ("stick_table",), "stick_table needs stick_on, stick_match, "
                      "stick_store_request or stick_store_response")
        return ()
    found.sort(key=lambda rp: rp[0].line)      # stable: an array keeps its order
    default = own.get("stick_table", "")
    table_paths = []
    out = []
    checked = set()
    for rule, rpath, kpath in found:
        if rule.table:
            table_paths.append((rpath, rpath + ("table",)))
        else:
            rule = dataclasses.replace(rule, table=default)
            table_paths.append((rpath, path + ("stick_table",) if default else path))
        if mode != "tcp" and rule.kind != "store-response" and rpath not in checked:
            checked.add(rpath)
            fetch = conditions.parse_key_sample(rule.key).fetch
            if fetch in _RESPONSE_FETCHES:
                ctx.error(kpath, f"{fetch!r} reads the response, which is not there yet when "
                          "stick_on/stick_match/stick_store_request run (stick_store_response "
                          "reads it)")
        if mode == "tcp" and rule.kind != "store-response" and rpath not in checked:
            checked.add(rpath)          # (stick_on: two rules, one line to report)
            sample = conditions.parse_key_sample(rule.key)
            if sample.fetch not in LAYER4_FETCHES:
                ctx.error(kpath, f"{sample.fetch!r} is not known in a tcp backend (it has no "
                          "request: use src, src_port, dst or dst_port)")
            if rule.cond is not None:
                _check_layer4_cond(ctx, rpath, rule.cond.text, own.get("acl", ()))
        out.append(rule)
    ctx.stick_paths[path[-1]] = table_paths
    return tuple(out)


def _check_server_tls(ctx: _Ctx, backends: list[Backend], tables: dict) -> None:
    """[backends.NAME.tls] settings without any tls server (nor TLS check)
    do nothing: say so. A fetch as sni needs an HTTP request to read."""
    for be in backends:
        table = tables.get(be.name)
        has_table = isinstance(table, dict) and "tls" in table
        uses_tls = any(s.tls or be.check_tls(s) for s in be.servers)
        if has_table and not uses_tls and be.servers:
            ctx.warning(("backends", be.name, "tls"), "no server of this backend has tls = true "
                        "(nor check.tls): these settings are not used")
        if be.tls.sni_fetch and be.mode == "tcp" and any(s.tls for s in be.servers):
            ctx.error(("backends", be.name, "tls", "sni"), "a fetch as sni needs an HTTP request "
                      "(mode http); a tcp backend takes a fixed name")


def _sections(ctx: _Ctx, data: dict, key: str) -> list[tuple[str, Any]]:
    """[frontends] / [backends] -> [(name, table)] in file order."""
    value = data.get(key, {})
    if not isinstance(value, dict):
        ctx.error((key,), f"expected a table of named sections ([{key}.NAME]), got {_describe(value)}")
        return []
    return list(value.items())


def _cross_check(ctx: _Ctx, backends: list[Backend]) -> None:
    """References between sections: backends named by frontends exist and
    have the frontend's mode; no bind address is used twice."""
    by_name = {b.name: b for b in backends}
    for ref in ctx.refs:
        backend, fe = by_name.get(ref.backend), ref.frontend
        if backend is None:
            ctx.error(ref.path, f"unknown backend {ref.backend!r}{_suggest(ref.backend, by_name)}")
        elif fe is not None and backend.mode != fe.mode:
            ctx.error(ref.path, f"backend {backend.name!r} is mode {backend.mode} but frontend"
                                f" {fe.name!r} is mode {fe.mode} (http and tcp cannot be mixed)")
    first: dict[Address, _Bind] = {}
    for bind in ctx.binds:
        other = first.setdefault(bind.address, bind)
        if other is not bind:
            ctx.error(bind.path, f"bind address {bind.address} is already used by {other.owner}"
                                 f" (line {ctx.line(other.path)})")


# ------------------------------------------------------------ stick tables

def _table_size(value: Any) -> int:
    """Entries: an integer, or "100k" / "1m" (HAProxy's size suffixes)."""
    if isinstance(value, str) and re.fullmatch(r"\d+[kmg]?", value.strip().lower()):
        text = value.strip().lower()
        mult = {"k": 1024, "m": 1 << 20, "g": 1 << 30}.get(text[-1], 1)
        value = int(text.rstrip("kmg")) * mult
    n = _int(1, 1 << 26)(value)
    return n


def _store(value: Any) -> tuple[tuple[str, int], ...]:
    from farm import tables
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise _Invalid(f"expected a list of data types, got {_describe(value)}")
    out: dict[str, int] = {}
    for item in value:
        try:
            name, period = tables.parse_store(_str(item))
        except tables.TableError as e:
            raise _Invalid(str(e)) from None
        if name in out:
            raise _Invalid(f"data type {name!r} is stored twice")
        out[name] = period
    return tuple(out.items())


_TABLE_SCHEMA = {
    "type": _choice(model.STICK_KEY_TYPES, "table type"),
    "len": _int(1, 1024),
    "size": _table_size,
    "expire": _duration,
    "store": _store,
    "peers": _bool,
}


def _tables(ctx: _Ctx, data: dict) -> list[model.StickTable]:
    out = []
    for name, table in _sections(ctx, data, "tables"):
        path = ("tables", name)
        _check_name(ctx, path, name, "table")
        own = _fields(ctx, path, table, _TABLE_SCHEMA)
        ctx.require(path, table, ("size",))
        type_ = own.get("type", "ip")
        if "len" in own and type_ not in ("string", "binary"):
            ctx.error(path + ("len",), f"len applies to string and binary tables, not {type_}")
        if own.get("peers") and "peers" not in data:
            ctx.error(path + ("peers",), "peers = true replicates the table to the nodes of "
                                         "[peers], and there is no [peers] section")
        out.append(model.StickTable(name, type_, own.get("len", 32), own.get("size", 1),
                                    int(round(own.get("expire", 0) * 1000)),
                                    own.get("store", ()), ctx.line(path),
                                    peers=bool(own.get("peers", False))))
    return out


# ------------------------------------------------------------------ peers

def _peer_address(value: Any) -> Address:
    a = parse_address(value, bind=True)
    if ipaddress.ip_address(a.host).is_unspecified:
        raise _Invalid(f"a peer address must be the node's own IP (the other nodes connect to it "
                       f"and accept it only from there), got {_str(value)!r}")
    return a


_PEERS_SCHEMA = {"local": _name, "nodes": lambda v: v}
_PEER_NODE_SCHEMA = {"name": _name, "address": _peer_address}


def _peers(ctx: _Ctx, data: dict, tables: list[model.StickTable]) -> model.Peers | None:
    """[peers]: local (this node's name) and [[peers.nodes]] (name,
    address) for every node, this one included."""
    if "peers" not in data:
        return None
    path = ("peers",)
    own = _fields(ctx, path, data["peers"], _PEERS_SCHEMA)
    if not isinstance(data["peers"], dict) or not ctx.require(path, data["peers"], ("local", "nodes")):
        return None
    nodes: list[model.PeerNode] = []
    names: dict[str, int] = {}
    addrs: dict[Address, int] = {}
    for npath, item in _table_list(ctx, path + ("nodes",), data["peers"]["nodes"], "peer node"):
        f = _fields(ctx, npath, item, _PEER_NODE_SCHEMA)
        if not ctx.require(npath, item, ("name", "address")) or len(f) < 2:
            continue
        line = ctx.line(npath)
        if f["name"] in names:
            ctx.error(npath + ("name",), f"duplicate peer node {f['name']!r} "
                                         f"(first defined at line {names[f['name']]})")
            continue
        if f["address"] in addrs:
            ctx.error(npath + ("address",), f"address {f['address']} is already the address of "
                                            f"another node (line {addrs[f['address']]})")
            continue
        names[f["name"]] = line
        addrs[f["address"]] = line
        nodes.append(model.PeerNode(f["name"], f["address"], line))
    local = own.get("local")
    if local is None:
        return None
    me = next((n for n in nodes if n.name == local), None)
    if me is None:
        ctx.error(path + ("local",), f"local node {local!r} is not one of [[peers.nodes]]"
                                     + _suggest(local, [n.name for n in nodes]))
        return None
    i = next(i for i, n in enumerate(nodes) if n.name == local)
    ctx.binds.append(_Bind(me.address, path + ("nodes", i, "address"), f"peers node {local!r}"))
    if len(nodes) == 1:
        ctx.warning(path + ("nodes",), "no node but this one: nothing is replicated")
    if not any(t.peers for t in tables):
        ctx.warning(path, "no [tables.NAME] has peers = true: nothing is replicated")
    return model.Peers(local, tuple(nodes))


_TRACK_ACTIONS = ("track-sc0", "track-sc1", "track-sc2")


def _check_stick_refs(ctx: _Ctx, tables: list[model.StickTable], sections: list) -> list:
    """Tables named by rules and fetches exist; a track rule without a
    table gets the only table there is. Returns the sections with their
    rules completed."""
    names = [t.name for t in tables]
    default = names[0] if len(names) == 1 else None
    out = []
    for kind, sec in sections:
        base = (kind, sec.name)

        def fix(rules, key):
            fixed = []
            for i, r in enumerate(rules):
                path = base + (key, i)
                if r.action in _TRACK_ACTIONS:
                    table = r.param("table")
                    if table is None:
                        if default is None:
                            ctx.error(path, f"{r.action} needs 'table' ("
                                      + ("no [tables.NAME] is defined)" if not names
                                         else "there are several tables)"))
                        else:
                            r = dataclasses.replace(r, params=tuple(sorted(r.params + (("table", default),))))
                    elif table not in names:
                        ctx.error(path + ("table",), f"unknown table {table!r}{_suggest(table, names)}")
                    if key == "tcp_request":
                        sample = conditions.parse_key_sample(r.param("key"))
                        if sample.fetch not in LAYER4_FETCHES:
                            ctx.error(path + ("key",), f"{sample.fetch!r} is not known before a "
                                      "request arrives (tcp_request rules can use src, src_port "
                                      "or dst_port; track request fields in http_request rules)")
                fixed.append(r)
                if r.cond is not None and key == "tcp_request":
                    _check_layer4_cond(ctx, path, r.cond.text, sec.acl)
                if r.cond is not None:
                    _check_cond_tables(ctx, path, r.cond.text, sec.acl, names, default)
            return tuple(fixed)
        changes = {}
        sticks = getattr(sec, "stick", ())
        if sticks:
            changes["stick"] = _check_stick_rules(ctx, base, sticks, tables, default, sec.acl)
        for key in ("http_request", "http_response", "tcp_request"):
            rules = getattr(sec, key, ())
            if rules:
                changes[key] = fix(rules, key)
        for acl in sec.acl:
            for line in acl.lines:
                _check_spec_table(ctx, base + ("acl", acl.name), line, names, default)
        out.append(dataclasses.replace(sec, **changes) if changes else sec)
    return out


def _check_stick_rules(ctx: _Ctx, base: tuple, rules: tuple, tables: list, default,
                       acls) -> tuple:
    """A backend's stick rules name tables that exist and store server_id,
    and their conditions tables that exist; a rule without a table gets
    the only table there is."""
    names = [t.name for t in tables]
    paths = ctx.stick_paths.get(base[-1], [(base, base)] * len(rules))
    out = []
    reported = set()
    conds = set()          # (stick_on: two rules, one condition to check)
    for rule, (rpath, path) in zip(rules, paths):
        if rule.cond is not None and rpath not in conds:
            conds.add(rpath)
            _check_cond_tables(ctx, rpath, rule.cond.text, acls, names, default)
        if not rule.table:
            if default is None:
                if path not in reported:
                    ctx.error(path, "stick rules need stick_table or a table of their own ("
                              + ("no [tables.NAME] is defined)" if not names
                                 else "there are several tables)"))
                reported.add(path)
                out.append(rule)
                continue
            rule = dataclasses.replace(rule, table=default)
        t = next((t for t in tables if t.name == rule.table), None)
        if path in reported:
            pass
        elif t is None:
            ctx.error(path, f"unknown table {rule.table!r}{_suggest(rule.table, names)}")
        elif "server_id" not in dict(t.store):
            ctx.error(path, f"table {rule.table!r} must store server_id for persistence "
                      "(store = [\"server_id\", ...])")
        reported.add(path)
        out.append(rule)
    return tuple(out)


def _check_layer4_cond(ctx: _Ctx, path: tuple, text: str, acls) -> None:
    """tcp_request rules run before any request: layer-4 fetches only."""
    try:
        cond = conditions.parse_condition(text)
    except conditions.ConditionError:
        return
    named = {a.name: a for a in acls}
    for group in cond.groups:
        for term in group:
            specs = []
            if term.acl is not None:
                specs = [term.acl]
            elif term.name in named:
                try:
                    specs = [conditions.parse_acl(l) for l in named[term.name].lines]
                except conditions.ConditionError:
                    specs = []
            for spec in specs:
                if not _layer4_spec(spec):
                    ctx.error(path + ("if",), f"fetch {spec.fetch!r} is not known before a request "
                              "arrives (tcp_request rules and tcp backends can use src, "
                              "src_port, dst_port and the stick counters)")


def _check_spec_table(ctx: _Ctx, path: tuple, line: str, names: list, default) -> None:
    try:
        spec = conditions.parse_acl(line)
    except conditions.ConditionError:
        return
    _check_one_spec(ctx, path, spec, names, default)


def _check_one_spec(ctx: _Ctx, path: tuple, spec, names: list, default) -> None:
    table = conditions.stick_table_of(spec)
    if table is not None and table not in names:
        ctx.error(path, f"{spec.fetch}: unknown table {table!r}{_suggest(table, names)}")
    elif table is None and conditions.is_stick_fetch(spec.base) and spec.base.startswith("src_") \
            and default is None:
        ctx.error(path, f"{spec.fetch} needs a table name: {spec.fetch}(NAME)"
                  + ("" if names else " (no [tables.NAME] is defined)"))


def _check_cond_tables(ctx: _Ctx, path: tuple, text: str, acls, names: list, default) -> None:
    try:
        cond = conditions.parse_condition(text)
    except conditions.ConditionError:
        return
    for group in cond.groups:
        for term in group:
            if term.acl is not None:
                _check_one_spec(ctx, path, term.acl, names, default)


def _build(ctx: _Ctx, data: dict) -> Config:
    for key in data:
        if key not in _TOP_LEVEL:
            ctx.unknown_key((), key, _TOP_LEVEL, data[key])
    global_ = Global(**_fields(ctx, ("global",), data.get("global", {}), _GLOBAL_SCHEMA))
    log = LogConfig(**_fields(ctx, ("log",), data.get("log", {}), _LOG_SCHEMA))
    defaults = _fields(ctx, ("defaults",), data.get("defaults", {}), _DEFAULTS_SCHEMA)
    frontends = [_frontend(ctx, name, table, i, defaults)
                 for i, (name, table) in enumerate(_sections(ctx, data, "frontends"))]
    backends = [_backend(ctx, name, table, i, defaults)
                for i, (name, table) in enumerate(_sections(ctx, data, "backends"))]
    tables = _tables(ctx, data)
    peers = _peers(ctx, data, tables)
    secs = _check_stick_refs(ctx, tables, [("frontends", f) for f in frontends]
                             + [("backends", b) for b in backends])
    frontends, backends = secs[:len(frontends)], secs[len(frontends):]
    stats = Stats(**_fields(ctx, ("stats",), data.get("stats", {}), _STATS_SCHEMA))
    accounts = _acme_sections(ctx, data)
    _check_acme_refs(ctx, frontends, accounts)
    frontends = _derive_acme_domains(ctx, frontends)
    if stats.bind is not None:
        ctx.binds.append(_Bind(stats.bind, ("stats", "bind"), "stats.bind"))
    if not frontends and stats.bind is None and isinstance(data.get("frontends", {}), dict) \
            and isinstance(data.get("stats", {}), dict):
        ctx.error((), "nothing to listen on: define a [frontends.NAME] section (or stats.bind)")
    if global_.group is not None and global_.user is None:
        ctx.error(("global", "group"), "group is applied with user: set global.user too")
    _cross_check(ctx, backends)
    raw_backends = data.get("backends")
    _check_server_tls(ctx, backends, raw_backends if isinstance(raw_backends, dict) else {})
    _check_limits(ctx, global_, defaults, frontends, backends)
    if ctx.resolver is not None:
        _check_resolution(ctx, backends)
    return Config(ctx.source, global_, log, stats, tuple(frontends), tuple(backends),
                  tuple(tables), tuple(accounts), peers)


# ------------------------------------------------------------------ API

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
_TOML_END = re.compile(r"\s*\(at end of document\)")


def _syntax_error(source: str, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """tomllib's "msg (at line N, column M)" -> a ConfigError at line N,
    with a pointer when the line looks like an HAProxy habit."""
    message = str(exc)
    m = _TOML_POSITION.search(message)
    hint = ""
    if m:
        line = int(m.group(1))
        lines = text.split("\n")
        hint = confhints.syntax(message[:m.start()], lines[line - 1] if line <= len(lines) else "")
        message = f"{message[:m.start()]} (column {m.group(2)})"
    elif _TOML_END.search(message):
        line = text.count("\n") + (0 if text.endswith("\n") else 1)
        message = _TOML_END.sub("", message) + " (at end of file)"
    else:
        line = 0
    return ConfigError(source, line, "", f"TOML syntax error: {message}" + (f"; {hint}" if hint else ""))


# Arrays and inline tables nested deeper than this are refused before
# parsing: no farm key needs more than a few levels, and tomllib (a
# recursive parser) would end in a RecursionError on a few thousand.
MAX_NESTING = 64
_NEST_TOKENS = re.compile(r'"""|\'\'\'|"|\'|#|[\[\]{}]')
_BASIC_REST = re.compile(r'(?:[^"\\\n]|\\.)*"?')
_HUGE_NUMBER = re.compile(r"[0-9A-Fa-f_]{4300,}")


def _too_deep(text: str, limit: int = MAX_NESTING) -> int:
    """The 1-based line where brackets and braces outside strings and
    comments first nest deeper than `limit`, or 0. Approximate on strange
    strings (it only has to find absurd nesting)."""
    depth, i, n = 0, 0, len(text)
    while i < n:
        m = _NEST_TOKENS.search(text, i)
        if m is None:
            return 0
        token, i = m.group(), m.end()
        if token in ('"""', "'''"):
            end = text.find(token, i)
            i = n if end < 0 else end + 3
        elif token == '"':
            i = _BASIC_REST.match(text, i).end()
        elif token in ("'", "#"):
            end = text.find("\n" if token == "#" else "'", i)
            i = n if end < 0 else end + (token == "'")
        elif token in "[{":
            depth += 1
            if depth > limit:
                return text.count("\n", 0, m.start()) + 1
        else:
            depth = max(0, depth - 1)
    return 0


def _parse_toml(text: str, source: str) -> dict:
    """tomllib.loads, with every failure as ConfigErrors (never a traceback):
    syntax errors, absurd nesting, numbers Python will not convert."""
    line = _too_deep(text)
    if line:
        raise ConfigErrors([ConfigError(source, line, "", f"arrays or inline tables nested more "
                                        f"than {MAX_NESTING} deep")])
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigErrors([_syntax_error(source, text, e)]) from None
    except RecursionError:
        raise ConfigErrors([ConfigError(source, 0, "", "TOML nested too deep to parse")]) from None
    except ValueError as e:
        # int() of more than 4300 digits (tomllib calls it as is)
        m = _HUGE_NUMBER.search(text)
        line = text.count("\n", 0, m.start()) + 1 if m else 0
        raise ConfigErrors([ConfigError(source, line, "", f"number too large to read ({e})")]) from None


def load_text(text: str, source: str = "<string>", *, base_dir: str | None = None,
              resolver: resolve.Resolver | None = None, tls_files: bool = False,
              warnings: list[ConfigError] | None = None) -> Config:
    """Parse and validate config `text`; `source` names it in messages.

    Relative errorfile paths are resolved against `base_dir` (None: as
    written, i.e. against the current directory). With a `resolver`, every
    server host name is resolved through it and a name that does not
    resolve is an error (unless the server's init_addr has "none"); the
    resolver keeps the answers for the master. Without one, names are only
    checked for syntax (no I/O: what `farm ctl` and the tests use). Also
    looks up global.user and global.group in the system's databases.
    With tls_files (`farm check`, `farm run`, reloads), every certificate,
    key and CA file of the TLS tables is read and checked (farm.tlsconf):
    unreadable, not PEM, a key that does not match. Warnings (an expired
    certificate) are appended to `warnings` when given, sorted by line.
    Returns a Config or raises ConfigErrors with every error, sorted by line.
    """
    data = _parse_toml(text, source)
    ctx = _Ctx(source, tomlpos.locate(text), base_dir, resolver, tls_files)
    config = _build(ctx, data)
    if warnings is not None:
        warnings.extend(sorted(ctx.warnings, key=lambda e: e.line))
    if ctx.errors:
        raise ConfigErrors(sorted(ctx.errors, key=lambda e: e.line))
    return config


def load(path: str, *, resolver: resolve.Resolver | None = None, tls_files: bool = False,
         warnings: list[ConfigError] | None = None) -> Config:
    """Read, parse and validate the config file at `path` (UTF-8 TOML);
    `resolver`, `tls_files` and `warnings` as in load_text (`farm check`,
    `farm run` and reloads pass them). An unreadable or non-UTF-8 file is
    reported as one ConfigError.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8")
    except OSError as e:
        raise ConfigErrors([ConfigError(path, 0, "", f"cannot read config: {e.strerror or e}")]) from None
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigErrors([ConfigError(path, line, "", "config is not valid UTF-8")]) from None
    return load_text(text, path, base_dir=os.path.dirname(os.path.abspath(path)), resolver=resolver,
                     tls_files=tls_files, warnings=warnings)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def notes(cfg: Config) -> list[str]:
    """What `farm check` tells beside the summary: what the loader took
    from elsewhere than a key of its own (acme domains from the routing
    rules)."""
    out = []
    for fe in cfg.frontends:
        if fe.tls is not None and fe.tls.domains_from_rules:
            out.append(f"{cfg.source}: frontends.{fe.name}.tls: acme domains from the routing rules: "
                       + ", ".join(fe.tls.domains))
    return out


def summary(cfg: Config) -> str:
    """One line: "farm.toml: valid: 2 frontends, 3 backends, 7 servers, 2 workers"."""
    servers = sum(len(b.servers) for b in cfg.backends)
    return (f"{cfg.source}: valid: {_plural(len(cfg.frontends), 'frontend')}, "
            f"{_plural(len(cfg.backends), 'backend')}, {_plural(servers, 'server')}, "
            f"{_plural(cfg.global_.workers, 'worker')}")
