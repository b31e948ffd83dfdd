"""The `farm` command (also `python3 master.py ...` from a checkout).

  farm run   -c FILE      run in the foreground (the master and its workers)
  farm check -c FILE      validate; print every error and exit 1, or a summary and exit 0
  farm ctl   CMD...       send a runtime API command to the admin socket
  farm logs  [-f] [...]   read, filter and follow the access log (farm/logtail.py)
  farm top   [-s SOCKET]  live terminal view over the admin socket (farm/top.py)
  farm demo               farm in front of built-in demo backends
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

from farm import __version__, loader

DEFAULT_CONFIG = os.environ.get("FARM_CONFIG", "/etc/farm/farm.toml")


def cmd_run(args) -> int:
    import master  # top-level module: the arbiter
    return master.run(args.config)


def cmd_check(args) -> int:
    """Validate as `farm run` would: server names are resolved too."""
    from farm import resolve
    try:
        cfg = loader.load(args.config, resolver=resolve.Resolver())
    except loader.ConfigErrors as e:
        for err in e.errors:
            print(err, file=sys.stderr)
        n = len(e.errors)
        print(f"{args.config}: {n} error{'s' if n != 1 else ''}", file=sys.stderr)
        return 1
    except Exception as e:    # a loader bug must still end in one line, not a traceback
        print(f"{args.config}: cannot check: internal error {type(e).__name__}: {e} "
              "(please report this)", file=sys.stderr)
        return 1
    if not args.quiet:
        print(loader.summary(cfg))
    return 0


def admin_socket_path(args) -> str | None:
    if args.socket:
        return args.socket
    try:
        cfg = loader.load(args.config)
    except loader.ConfigErrors as e:
        print(e, file=sys.stderr)
        return None
    return cfg.global_.admin_socket


def require_admin_socket(args, prog: str) -> str | None:
    """The admin socket path, or None after telling the user how to set it."""
    path = admin_socket_path(args)
    if not path:
        print(f"{prog}: no admin socket: set global.admin_socket in the config or pass -s PATH",
              file=sys.stderr)
    return path


def cmd_ctl(args) -> int:
    path = require_admin_socket(args, "farm ctl")
    if not path:
        return 2
    command = " ".join(args.command)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(args.timeout)
            s.connect(path)
            s.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except OSError as e:
        print(f"farm ctl: {path}: {e.strerror or e}", file=sys.stderr)
        return 2
    sys.stdout.write(b"".join(chunks).decode("utf-8", "replace"))
    return 0


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


def cmd_demo(args) -> int:
    from farm import demo
    return demo.run(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="farm", description="farm: a TCP/HTTP load balancer and reverse proxy")
    p.add_argument("--version", action="version", version=f"farm {__version__}")
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
    sp = sub.add_parser("demo", help="run farm in front of built-in demo backends")
    sp.add_argument("--port", type=int, default=8080, help="port of the demo frontend (default 8080)")
    sp.add_argument("--workers", type=int, default=2)
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
