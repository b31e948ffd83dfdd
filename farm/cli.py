"""The `farm` command (also `python3 master.py ...` from a checkout).

  farm run   -c FILE      run in the foreground (the master and its workers)
  farm check -c FILE      validate; print every error and exit 1, or a summary and exit 0
  farm ctl   CMD...       send a runtime API command to the admin socket
  farm logs  [-f] [...]   read, filter and follow the access log (farm/logtail.py)
  farm top   [-s SOCKET]  live terminal view over the admin socket (farm/top.py)
  farm explain -c FILE 'GET / HTTP/1.1' [-H 'Name: v']...
                          dry-run routing of one request (farm/explain.py)
  farm demo               farm in front of built-in demo backends
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

from farm import __version__, build, loader

DEFAULT_CONFIG = os.environ.get("FARM_CONFIG", "/etc/farm/farm.toml")


def cmd_run(args) -> int:
    import master  # top-level module: the arbiter
    return master.run(args.config)


def cmd_check(args) -> int:
    """Validate as `farm run` would: server names are resolved, and TLS
    certificates, keys and CA files read and checked, too. Warnings (an
    expired certificate) are printed and do not fail the check."""
    from farm import resolve
    warnings: list[loader.ConfigError] = []
    try:
        cfg = loader.load(args.config, resolver=resolve.Resolver(), tls_files=True, warnings=warnings)
    except loader.ConfigErrors as e:
        for w in warnings:
            print(w.as_warning(), file=sys.stderr)
        for err in e.errors:
            print(err, file=sys.stderr)
        n = len(e.errors)
        print(f"{args.config}: {n} error{'s' if n != 1 else ''}", file=sys.stderr)
        return 1
    except Exception as e:    # a loader bug must still end in one line, not a traceback
        print(f"{args.config}: cannot check: internal error {type(e).__name__}: {e} "
              "(please report this)", file=sys.stderr)
        return 1
    for w in warnings:
        print(w.as_warning(), file=sys.stderr)
    if not args.quiet:
        print(loader.summary(cfg))
        for line in loader.notes(cfg):
            print(line)
    return 0


def admin_socket_path(args) -> str | None:
    """The admin socket for `farm ctl` and `farm top`: -s, else the config's
    global.admin_socket. With neither -s nor -c and no default config file
    (a machine where farm is not installed), the socket of a running
    `farm demo` at its well-known path, so that the commands the demo prints
    work as they are. None when there is none (a config error is printed)."""
    if args.socket:
        return args.socket
    if args.config == DEFAULT_CONFIG and not os.path.exists(DEFAULT_CONFIG):
        from farm import demo
        path = demo.well_known_socket()
        return path if demo.is_own_socket(path) else None
    try:
        cfg = loader.load(args.config)
    except loader.ConfigErrors as e:
        print(e, file=sys.stderr)
        return None
    return cfg.global_.admin_socket


def finds_without_flags(path: str) -> bool:
    """True if `farm ctl` and `farm top` without -s or -c would use the admin
    socket `path` (see admin_socket_path), as `farm demo` asks to print its
    commands without -s."""
    from farm import demo
    return not os.path.exists(DEFAULT_CONFIG) and path == demo.well_known_socket()


def require_admin_socket(args, prog: str) -> str | None:
    """The admin socket path, or None after telling the user how to set it."""
    path = admin_socket_path(args)
    if path:
        return path
    if not args.socket and args.config == DEFAULT_CONFIG and not os.path.exists(DEFAULT_CONFIG):
        print(f"{prog}: no admin socket: {DEFAULT_CONFIG} does not exist and no `farm demo` "
              f"is running; pass -c FILE or -s PATH", file=sys.stderr)
    else:
        print(f"{prog}: no admin socket: set global.admin_socket in the config or pass -s PATH",
              file=sys.stderr)
    return None


def cmd_ctl(args) -> int:
    """Send the command(s) and print the answers. Exit 0, 1 when an answer
    is an error (farm/admincli.py decides: the server marks it), 2 when the
    socket cannot be reached."""
    from farm import admin, admincli
    path = require_admin_socket(args, "farm ctl")
    if not path:
        return 2
    failed = False
    # One connection per command: each answer then comes alone, its error
    # mark (if any) at its very start.
    for command in admin.split_commands(" ".join(args.command)):
        if not command:
            continue
        try:
            answer = ctl_ask(path, command, args.timeout)
        except OSError as e:
            print(f"farm ctl: {path}: {e.strerror or e}", file=sys.stderr)
            return 2
        severity, text = admincli.unmark(answer)
        if admincli.is_error(severity):
            failed = True
            sys.stderr.write(text.rstrip("\n") + "\n")
        else:
            sys.stdout.write(text)
        sys.stdout.flush()
    return 1 if failed else 0


def ctl_ask(path: str, command: str, timeout: float) -> str:
    """One one-shot session: ask for error marks, run command, return its
    answer (the mark included, the empty answer to the first command not)."""
    escaped = command.replace("\\", "\\\\").replace(";", "\\;")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(b"set severity-output number;" + escaped.encode() + b"\n")
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    text = b"".join(chunks).decode("utf-8", "replace")
    return text[1:] if text.startswith("\n") else text


# -- `farm logs` (issue 5, Logs): the work is in farm/logtail.py --
def cmd_logs(args) -> int:
    from farm import logtail
    return logtail.run(args)
# -- end `farm logs` --


# -- `farm top` (issue 5, live terminal view): the work is in farm/top.py --
def cmd_top(args) -> int:
    from farm import top
    return top.run(args)
# -- end `farm top` --


def cmd_explain(args) -> int:
    from farm import explain      # imports workers/: only for this command
    return explain.run(args)


def cmd_demo(args) -> int:
    from farm import demo
    return demo.run(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="farm", description="farm: a TCP/HTTP load balancer and reverse proxy")
    p.add_argument("--version", action="version",
                   version=f"farm {__version__} ({build.describe()})")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    def with_config(sp):
        sp.add_argument("-c", "--config", default=DEFAULT_CONFIG,
                        help=f"configuration file (default {DEFAULT_CONFIG})")
        return sp

    sp = with_config(sub.add_parser("run", help="run farm in the foreground"))
    sp.set_defaults(func=cmd_run)
    sp = with_config(sub.add_parser("check", help="validate a configuration file"))
    sp.add_argument("-q", "--quiet", action="store_true", help="print nothing when valid")
    sp.set_defaults(func=cmd_check)
    sp = with_config(sub.add_parser("ctl", help="send a command to the admin socket"))
    sp.add_argument("-s", "--socket", help="admin socket path (default: global.admin_socket)")
    sp.add_argument("-t", "--timeout", type=float, default=10.0)
    sp.add_argument("command", nargs="+", help='e.g. "show stat"')
    sp.set_defaults(func=cmd_ctl)
    # -- `farm logs` (issue 5, Logs) --
    from farm import logtail
    sp = with_config(sub.add_parser("logs", help="read, filter and follow the access log"))
    logtail.add_arguments(sp)
    sp.set_defaults(func=cmd_logs)
    # -- end `farm logs` --
    # -- `farm top` (issue 5, live terminal view) --
    from farm import top
    sp = with_config(sub.add_parser("top", help="live view of frontends, backends and servers"))
    top.add_arguments(sp)
    sp.set_defaults(func=cmd_top)
    # -- end `farm top` --
    sp = with_config(sub.add_parser(
        "explain", help="dry-run the routing of one request: ACLs, rules, backend, server",
        description="Route one request through the config without sending it: each ACL "
                    "evaluated with its values, the http_request rules that fire, the backend "
                    "and why, and the server the balance algorithm picks. Exit 1 when the "
                    "request would be refused."))
    sp.add_argument("request", nargs="?",
                    help="the request line, e.g. 'GET /api/users HTTP/1.1' (none for a tcp frontend)")
    sp.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                    help="a request header (repeat for more)")
    sp.add_argument("--src", default="127.0.0.1", metavar="IP",
                    help="the client's address (default 127.0.0.1)")
    sp.add_argument("--frontend", metavar="NAME",
                    help="the frontend that receives it (needed when there are several)")
    sp.add_argument("-s", "--socket", metavar="PATH",
                    help="a running farm's admin socket: use its live server states and connections")
    sp.set_defaults(func=cmd_explain)
    sp = sub.add_parser("demo", help="run farm in front of built-in demo backends")
    sp.add_argument("--port", type=int, default=8080, help="port of the demo frontend (default 8080)")
    sp.add_argument("--stats-port", type=int, default=None,
                    help="port of the stats page (default 8404, or a free one if 8404 is taken)")
    sp.add_argument("--admin-socket", default=None, metavar="PATH",
                    help="admin socket (default: $XDG_RUNTIME_DIR/farm-demo.sock, "
                         "else /tmp/farm-demo.UID.sock, so that `farm ctl` finds it)")
    sp.add_argument("--workers", type=int, default=2)
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
