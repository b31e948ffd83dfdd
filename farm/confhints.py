"""Pointers for HAProxy habits in a farm config.

An HAProxy operator writes `option httpchk`, `inter 2s` on a server or
`balance roundrobin` without quotes by reflex. The loader's plain message
("unknown key", "TOML syntax error") is true but does not say where farm
wants it; these functions add the pointer. Pure: paths, keys, values and
message texts in, a short hint (or "") out; farm/loader.py appends it.

Paths are the loader's key paths: ("backends", "app", "servers", 0) is a
server table, ("frontends", "www") a frontend, ("defaults", "timeout") a
timeout table.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["unknown_key", "not_a_table", "repeated_key_in_value", "syntax"]


def _section(path: tuple) -> str:
    """The kind of table a path names: global, defaults, frontend, backend,
    server, check, timeout, stats, log, top, or "" for anything else."""
    n = len(path)
    if n == 0:
        return "top"
    head = path[0]
    if n == 1:
        return {"global": "global", "defaults": "defaults", "stats": "stats", "log": "log"}.get(head, "")
    if head in ("frontends", "backends") and n == 2:
        return head[:-1]
    if head == "backends" and n == 4 and path[2] == "servers":
        return "server"
    if path[-1] in ("check", "timeout"):
        return path[-1]
    return ""


def _backend_name(path: tuple) -> str:
    return path[1] if len(path) > 1 and path[0] == "backends" else "NAME"


def _check_table(path: tuple) -> str:
    if path and path[0] == "defaults":
        return "[defaults.check]"
    return f"[backends.{_backend_name(path)}.check]"


_CHECK_KEYS = {"inter": "interval", "fastinter": "fastinter", "downinter": "downinter",
               "rise": "rise", "fall": "fall"}


def _option(path: tuple, value: Any) -> str:
    """HAProxy's `option X` lines: each is a key of its own in farm."""
    text = value.strip() if isinstance(value, str) else ""
    word = text.split()[0] if text.split() else ""
    if word == "httpchk":
        return (f"HAProxy's 'option httpchk' is the {_check_table(path)} table in farm: "
                'type = "http", method, path, host, expect_status')
    if word == "forwardfor":
        return "HAProxy's 'option forwardfor' is option_forwardfor = true in farm"
    if word == "redispatch":
        return "HAProxy's 'option redispatch' is redispatch = true in farm"
    if word in ("httplog", "tcplog"):
        return f'log formats are set in [log]: format = "{word}"'
    if word in ("http-server-close", "httpclose", "http-keep-alive"):
        return ("farm keeps client and server connections alive by default; "
                'http_reuse = "never" closes server connections after each request')
    return ("farm has no 'option' key: each HAProxy option is a key of its own "
            f"(option_forwardfor = true, redispatch = true, {_check_table(path)} for httpchk)")


def unknown_key(path: tuple, key: str, value: Any, valid) -> str:
    """A pointer for `key` (with its value) that the table at `path` does
    not know, or "". `valid` are the keys that table accepts."""
    section = _section(path)
    be = _backend_name(path)
    underscored = key.replace("-", "_")
    if underscored != key and underscored in valid:
        return f"did you mean {underscored!r}? (farm's keys use '_' where HAProxy's use '-')"
    if key == "option":
        return _option(path, value)
    if underscored == "check_proto" and section in ("server", "backend", "defaults"):
        table = "[defaults.check]" if section == "defaults" else f"[backends.{be}.check]"
        return (f'HAProxy\'s check-proto is proto = "h2" in {table} '
                '(the default for a proto = "h2" server)')
    if section == "server":
        if key in _CHECK_KEYS:
            return (f"health check settings are per backend: {_CHECK_KEYS[key]} in "
                    f"[backends.{be}.check]")
        if key == "port":
            return (f"a server's port is part of its address; the check port is port in "
                    f"[backends.{be}.check]")
        if key == "balance":
            return f"balance is a backend key: set it in [backends.{be}]"
        if key == "timeout":
            return f"timeouts are per backend: [backends.{be}.timeout] (connect, server, queue...)"
        if key in ("addr", "ip", "host", "hostname"):
            return 'a server has one address = "host:port" (the checks use it too)'
        if key in ("ssl", "verify", "ca_file", "ca-file", "sni", "crt"):
            return (f"TLS to a server is tls = true here; verify, ca, sni, cert go in "
                    f"[backends.{be}.tls]")
    if section in ("frontend", "backend", "defaults") and key in _CHECK_KEYS:
        table = "[defaults.check]" if section == "defaults" else f"[backends.{be}.check]"
        return f"health check settings go in {table}: {_CHECK_KEYS[key]}"
    if section == "backend":
        if key == "maxconn":
            return (f"maxconn limits a frontend ([frontends.NAME] maxconn) or each server "
                    f"([[backends.{be}.servers]] maxconn), not a backend")
        if key in ("server", "default_server", "default-server"):
            return f"servers are [[backends.{be}.servers]] tables with a name and an address"
        if key in ("bind", "default_backend", "use_backend"):
            return f"{key} is a frontend key: set it in [frontends.NAME]"
    if section == "frontend":
        if key in ("balance", "retries", "redispatch", "check", "cookie", "hash_type", "http_reuse"):
            return f"{key} is a backend key: set it in [backends.NAME]"
        if key in ("server", "servers"):
            return ("servers belong to a backend: [[backends.NAME.servers]], with "
                    'default_backend = "NAME" here')
        if key in ("ssl", "crt", "alpn", "certificates", "ssl_min_ver", "ciphers"):
            return ("TLS settings go in [frontends.NAME.tls] (certificates = [...], alpn...); "
                    'a TLS bind is bind = { address = "0.0.0.0:443", tls = true }')
    if section == "defaults":
        if key in ("connect", "client", "server", "queue", "tunnel", "http_request",
                   "http_keep_alive"):
            return f"timeouts go in [defaults.timeout]: {key} = \"...\""
        if key in ("default_server", "default-server"):
            return "init_addr is the server default farm takes in [defaults]; set the rest on each server"
    if section == "global":
        if key in ("nbthread", "nbproc", "nbthreads", "threads"):
            return 'farm runs one worker process per core: workers = "auto" or a number'
        if key == "daemon":
            return "farm runs in the foreground (systemd starts it); there is no daemon mode"
        if key == "stats":
            return "the stats page is the [stats] section; the runtime API socket is admin_socket"
        if key in ("uid", "gid"):
            return "workers switch to user = \"NAME\" and group = \"NAME\" (names, not numbers)"
        if key == "timeout":
            return "timeouts go in [defaults.timeout] (or a frontend's or backend's timeout table)"
    if section in ("global", "defaults", "frontend", "backend") and key == "log":
        return "logging is set in the [log] section"
    if section in ("global", "top") and key == "mode":
        return "mode is set per frontend and backend, or in [defaults]"
    if section == "check":
        if key == "uri":
            return "the check's request path is path = \"/...\""
        if key in ("expect", "status"):
            return "expect_status = \"200-399\" or expect_body = \"text\""
    if section == "top":
        if key in ("frontend", "backend"):
            return f"sections are named tables: [{key}s.NAME]"
        if key == "listen":
            return "a HAProxy listen section is a [frontends.NAME] plus a [backends.NAME] in farm"
        if key == "resolvers":
            return ("farm resolves server names with the system resolver at start and reload "
                    "(see init_addr); there is no resolvers section")
    return ""


def not_a_table(path: tuple, value: Any) -> str:
    """A pointer when a table was expected at `path` and `value` came,
    e.g. `timeout = "client 30s"` or `check = "httpchk GET /"`; or ""."""
    if not isinstance(value, str):
        return ""
    words = value.split()
    last = path[-1] if path else ""
    if last == "timeout" and len(words) == 2:
        return f"timeout is a table: timeout.{words[0].replace('-', '_')} = \"{words[1]}\""
    if last == "timeout":
        return 'timeout is a table: timeout.client = "30s", timeout.server = "30s"...'
    if last == "check":
        return (f"check is a table: {_check_table(path)} with type = \"tcp\" or \"http\" "
                "(and path, interval, rise, fall...)")
    return ""


def repeated_key_in_value(key: str, value: Any) -> str:
    """`mode = "mode tcp"`, `balance = "balance roundrobin"`: the HAProxy
    keyword repeated inside the value. A pointer, or ""."""
    if isinstance(value, str):
        words = value.split(None, 1)
        if len(words) == 2 and words[0].replace("-", "_") == key:
            return f'the key is already {key}: write {key} = "{words[1].strip()}"'
    return ""


# tomllib's messages and the lines that cause them in an HAProxy hand.
_KEY_VALUE = re.compile(r"\s*([A-Za-z0-9_.\"'-]+)\s*=\s*(.*?)\s*(?:#.*)?$")
_KEYWORD_LINE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_.-]*)\s+([^=]*?)\s*(?:#.*)?$")


def syntax(message: str, line: str) -> str:
    """A pointer for a TOML syntax error `message` (tomllib's words) at the
    text `line`, or ""."""
    if message.startswith(("Invalid value", "Expected newline or end of document after a statement")):
        m = _KEY_VALUE.fullmatch(line)
        if m and m.group(2) and m.group(2)[0] not in "\"'[{":
            value = m.group(2).replace("\\", "\\\\").replace('"', '\\"')
            return f'strings are quoted in TOML: {m.group(1)} = "{value}"'
        if message.startswith("Invalid value"):
            return 'strings are quoted in TOML: key = "value"'
    if message.startswith("Expected '=' after a key"):
        m = _KEYWORD_LINE.fullmatch(line)
        if m and m.group(2):
            key, rest = m.group(1), m.group(2)
            if key == "server":
                return ("TOML writes key = value; a server is a [[backends.NAME.servers]] table "
                        'with name = "..." and address = "host:port"')
            if key in ("frontend", "backend", "listen"):
                return f"TOML writes sections as [{key}s.NAME] tables" if key != "listen" else \
                    "a listen section is a [frontends.NAME] plus a [backends.NAME] in farm"
            value = rest.replace("\\", "\\\\").replace('"', '\\"')
            return f'TOML writes key = value: {key.replace("-", "_")} = "{value}"'
    return ""
