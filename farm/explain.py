"""`farm explain`: a dry run of the routing of one request.

    farm explain -c FILE [--src IP] [--frontend NAME] [--socket PATH]
                 'GET /path HTTP/1.1' [-H 'Name: value']...

It prints each ACL a condition evaluated (its fetched values and result),
each http_request rule that fired, the backend chosen and why, and the
server the balance algorithm would pick with the current weights (the
config's, or with --socket the live ones: `show servers state` and
`show stat` on the admin socket). Exit 0; 1 when the request would be
refused (a deny, a return or parse error with an error status, no backend
or no server: 503), saying by what; 2 on a usage error.

The work is done by the workers' own code, never a copy of it:
workers/http1.py parses the request line and headers into a Request,
workers/rules.py compiles the ACLs, rules and use_backend entries (with a
tracer that reports what they evaluate), workers/lb/ picks the server,
workers/runtime.balance_key extracts the hash key, workers/cookie.py reads
the persistence cookie. This module only calls them in the order in which
a worker's stream does (workers/stream.py: Stream.start, then connect_server)
and writes down what they did. It is the one place where farm/ imports
workers/ (DESIGN.md).
"""

from __future__ import annotations

import csv
import ipaddress
import math
import sys
from dataclasses import dataclass, field

from farm import admincli, loader, model
from workers import http1, rules
from workers.cookie import CookiePersistence
from workers.lb.pool import ServerPool
from workers.runtime import balance_key

MAX_LISTED_VALUES = 5


# ------------------------------------------------------------------ the transaction

class ExplainTxn:
    """What rules, cookie persistence and balance keys read of a request
    (the attributes of a workers/stream.py Stream they use)."""

    __slots__ = ("req", "resp", "src", "src_port", "dst_port", "_rules_src", "cc",
                 "forced_server", "key")

    def __init__(self, req, src: str, src_port: int, dst_port: int):
        self.req = req
        self.resp = None
        self.src = src
        self.src_port = src_port
        self.dst_port = dst_port
        self._rules_src = None
        self.cc = "-"
        self.forced_server = None
        self.key = None


def parse_request(line: str, headers: list[str], max_head: int):
    """The request line and 'Name: value' headers -> a Request parsed by
    the workers' parser, or raises http1.HttpError as a worker would."""
    words = line.split()
    if len(words) == 2:                 # 'GET /path': HTTP/1.1 is meant
        line = f"{line.strip()} HTTP/1.1"
    head = "".join(x + "\r\n" for x in [line.strip(), *headers]) + "\r\n"
    try:
        data = head.encode("latin-1")
    except UnicodeEncodeError:
        raise http1.HttpError(400, "a character outside Latin-1 in the request") from None
    p = http1.RequestParser(max_head)
    p.feed(data)
    ev = p.next_event()
    if not isinstance(ev, http1.Request):
        raise http1.HttpError(400, "incomplete request head")
    return ev


# ------------------------------------------------------------------ the trace

@dataclass
class Step:
    """One traced decision: a rule or a use_backend entry, with the ACLs
    its condition evaluated (in order)."""

    kind: str                       # "rule" | "use_backend"
    item: object                    # model.Rule | model.UseBackend
    acls: list = field(default_factory=list)   # (label, negated, samples, result)
    fired: bool = False
    outcome: object = None


class Trace(rules.Tracer):
    """Collects what the traced compiled code reports."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.pending: list = []

    def acl(self, label, negated, samples, result) -> None:
        self.pending.append((label, negated, samples, result))

    def rule(self, rule, fired, outcome) -> None:
        self.steps.append(Step("rule", rule, self.pending, fired, outcome))
        self.pending = []

    def use_backend(self, entry, matched) -> None:
        self.steps.append(Step("use_backend", entry, self.pending, matched))
        self.pending = []

    def take(self) -> list[Step]:
        steps, self.steps = self.steps, []
        return steps


# ------------------------------------------------------------------ live server states

@dataclass(frozen=True)
class LiveServer:
    up: bool          # may get traffic: running and not in maintenance
    weight: int       # effective weight (0 when draining)
    conns: int        # current connections (show stat scur)
    state: str        # "up", "down", "maint" or "drain", for the reader


def parse_servers_state(text: str) -> dict[tuple[str, str], LiveServer]:
    """`show servers state` (version 1) -> (backend, server) -> LiveServer
    (conns 0). The admin state is HAProxy's bit field: maintenance bits
    0x01 0x02 0x04 0x20 0x40, drain bits 0x08 0x10; running is op state 2.
    Mirrors farm/shm.Table.usable: up = running and not in maintenance,
    weight 0 while draining."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 9 or line.startswith("#") or not f[0].isdigit():
            continue
        op, admin, weight = int(f[5]), int(f[6]), int(f[7])
        maint, drain = admin & 0x67, admin & 0x18
        up = op == 2 and not maint
        state = "maint" if maint else "down" if op != 2 else "drain" if drain else "up"
        out[(f[1], f[3])] = LiveServer(up, 0 if drain else weight, 0, state)
    return out


def parse_scur(text: str) -> dict[tuple[str, str], int]:
    """`show stat` CSV -> (proxy, server) -> scur, for server rows."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    rows = csv.reader([lines[0][2:], *[l for l in lines[1:] if l]])
    header = next(rows)
    try:
        px, sv, scur = header.index("pxname"), header.index("svname"), header.index("scur")
    except ValueError:
        return {}
    out = {}
    for row in rows:
        if len(row) > scur and row[sv] not in ("FRONTEND", "BACKEND") and row[scur].isdigit():
            out[(row[px], row[sv])] = int(row[scur])
    return out


def live_states(path: str, timeout: float = 5.0) -> dict[tuple[str, str], LiveServer]:
    """The running farm's server states from its admin socket. Raises
    OSError when it cannot be reached, ValueError on an error answer."""
    from farm.cli import ctl_ask
    answers = []
    for command in ("show servers state", "show stat"):
        severity, text = admincli.unmark(ctl_ask(path, command, timeout))
        if admincli.is_error(severity):
            raise ValueError(f"{command}: {text.strip()}")
        answers.append(text)
    states = parse_servers_state(answers[0])
    scur = parse_scur(answers[1])
    return {k: LiveServer(s.up, s.weight, scur.get(k, 0), s.state) for k, s in states.items()}


# ------------------------------------------------------------------ the explanation

@dataclass
class Explanation:
    """What explain() found: the lines to print and the outcome."""

    lines: list[str] = field(default_factory=list)
    backend: str | None = None
    server: str | None = None
    refused: str | None = None      # why the request is refused (exit 1)

    def say(self, text: str = "") -> None:
        self.lines.append(text)


def _show_value(v) -> str:
    if isinstance(v, bytes):
        return '"' + v.decode("latin-1").encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    return str(v)


def _show_values(values: list) -> str:
    if not values:
        return "(none)"
    shown = ", ".join(_show_value(v) for v in values[:MAX_LISTED_VALUES])
    more = len(values) - MAX_LISTED_VALUES
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _fetch_label(spec) -> str:
    """The sample fetch an ACL line reads: path for path_beg, hdr(host)..."""
    return spec.base + (f"({spec.arg})" if spec.arg is not None else "")


def _acl_lines(acls: list, indent: str) -> list[str]:
    out = []
    for label, negated, samples, result in acls:
        verdict = "true" if result else "false"
        if negated:
            verdict += f", negated: {'false' if result else 'true'}"
        if len(samples) == 1:
            spec, values = samples[0]
            text = label if label.startswith("{") else f"{label} ({spec.text})"
            out.append(f"{indent}{'!' if negated else ''}{text}: "
                       f"{_fetch_label(spec)} = {_show_values(values)} -> {verdict}")
        else:
            out.append(f"{indent}{'!' if negated else ''}{label} -> {verdict}")
            for spec, values in samples:
                out.append(f"{indent}    {spec.text}: {_fetch_label(spec)} = {_show_values(values)}")
    return out


def _condition_text(cond: model.Condition | None) -> str:
    if cond is None:
        return ""
    return f" {'unless' if cond.negate else 'if'} {cond.text}"


def _rule_text(rule: model.Rule) -> str:
    params = " ".join(f"{k}={_param(v)}" for k, v in rule.params)
    return f"{rule.action}{' ' + params if params else ''}{_condition_text(rule.cond)}"


def _param(v) -> str:
    s = str(v)
    return f'"{s}"' if (not s or " " in s) else s


def _verdict_text(v: rules.Verdict) -> str:
    location = dict(v.headers).get(b"Location")
    extra = f" to {location.decode('latin-1')}" if location else ""
    return f"{v.kind} with status {v.status}{extra}"


def _where(item, sep: str = "   ") -> str:
    return f"{sep}(line {item.line})" if getattr(item, "line", 0) else ""


class Explainer:
    """One config, compiled the way a worker compiles it, with a tracer."""

    def __init__(self, cfg: model.Config, states: dict | None = None, socket_path: str | None = None):
        self.cfg = cfg
        self.states = states
        self.socket_path = socket_path
        self.trace = Trace()

    # -- steps ------------------------------------------------------------------

    def _report_steps(self, ex: Explanation, indent: str = "  ") -> None:
        for step in self.trace.take():
            if step.kind == "rule":
                ex.say(f"{indent}http_request {_rule_text(step.item)}{_where(step.item)}")
                ex.lines.extend(_acl_lines(step.acls, indent + "    "))
                if not step.fired:
                    ex.say(f"{indent}    -> not fired")
                elif isinstance(step.outcome, rules.Verdict):
                    ex.say(f"{indent}    -> fired: {_verdict_text(step.outcome)}")
                elif step.outcome is None:
                    ex.say(f"{indent}    -> fired: allow (no further http_request rule runs)")
                else:
                    ex.say(f"{indent}    -> fired")
            else:
                entry = step.item
                ex.say(f"{indent}use_backend {entry.backend}{_condition_text(entry.cond)}{_where(entry)}")
                ex.lines.extend(_acl_lines(step.acls, indent + "    "))
                ex.say(f"{indent}    -> {'matched' if step.fired else 'no match'}")

    def _unused_acls(self, ex: Explanation, acls: rules.AclTable, txn, used: set[str]) -> None:
        names = [n for n in acls.specs if n not in used]
        if not names:
            return
        ex.say("  ACLs that no condition evaluated (their values on the request as routed):")
        for name in names:
            rules.compile_condition(name, acls, "request", self.trace)(txn)
        ex.lines.extend(_acl_lines(self.trace.pending, "    "))
        self.trace.pending = []

    def _local_answer(self, ex: Explanation, verdict: rules.Verdict, where: str) -> None:
        ex.say()
        if verdict.status >= 400:
            ex.refused = f"{verdict.kind} {verdict.status} by an http_request rule of {where}"
            ex.say(f"result: refused: {ex.refused}")
        else:
            ex.say(f"result: answered by {where} without a server: {_verdict_text(verdict)}")

    # -- the request's path -----------------------------------------------------

    def explain_http(self, fe: model.Frontend, txn: ExplainTxn) -> Explanation:
        """Mirrors workers/stream.py Stream.start and connect_server."""
        ex = Explanation()
        cfg = self.cfg
        req = txn.req
        ex.say(f"request: {req.method.decode('latin-1')} {req.target.decode('latin-1')} "
               f"{req.version.decode('latin-1')} from {txn.src} to frontend {fe.name} "
               f"(port {txn.dst_port})")
        for k, v in req.headers:
            ex.say(f"  {k.decode('latin-1')}: {v.decode('latin-1')}")
        original = (req.method, req.target, req.version, list(req.headers))
        ex.say()
        ex.say(f"frontend {fe.name}")
        if fe.option_forwardfor:
            _set_forwarded_proto(req)
        fe_acls = rules.compile_acls(fe.acl)
        used: set[str] = set()
        run = rules.compile_request_rules(fe.http_request, fe_acls, self.trace)
        verdict = run(txn) if run is not rules.no_rules else None
        used |= self._evaluated(self.trace.steps)
        self._report_steps(ex)
        if verdict is not None:
            self._unused_acls(ex, fe_acls, txn, used)
            self._local_answer(ex, verdict, f"frontend {fe.name}")
            return ex
        choose = rules.compile_use_backend(fe.use_backend, fe.default_backend, fe_acls, self.trace)
        name = choose(txn)
        steps = list(self.trace.steps)
        used |= self._evaluated(steps)
        self._report_steps(ex)
        matched = [s for s in steps if s.fired]
        if matched:
            why = f"use_backend{_condition_text(matched[0].item.cond)}{_where(matched[0].item, ' ')}"
        elif name is not None:
            why = "default_backend"
        else:
            why = ""
        self._unused_acls(ex, fe_acls, txn, used)
        be = cfg.backend(name) if name else None
        ex.say()
        if be is None:
            ex.refused = f"503: frontend {fe.name} has no backend for this request"
            ex.say("no use_backend entry matched and there is no default_backend")
            ex.say()
            ex.say(f"result: refused: {ex.refused}")
            return ex
        ex.backend = be.name
        ex.say(f"backend {be.name} (chosen by {why})")
        if be.option_forwardfor and not fe.option_forwardfor:
            _set_forwarded_proto(req)
        be_acls = rules.compile_acls(be.acl)
        run = rules.compile_request_rules(be.http_request, be_acls, self.trace)
        verdict = run(txn) if run is not rules.no_rules else None
        used_be = self._evaluated(self.trace.steps)
        self._report_steps(ex)
        if verdict is not None:
            self._unused_acls(ex, be_acls, txn, used_be)
            self._local_answer(ex, verdict, f"backend {be.name}")
            return ex
        self._unused_acls(ex, be_acls, txn, used_be)
        if (req.method, req.target, req.version, req.headers) != original:
            ex.say("  the request after the rules:")
            ex.say(f"    {req.method.decode('latin-1')} {req.target.decode('latin-1')} "
                   f"{req.version.decode('latin-1')}")
            for k, v in req.headers:
                ex.say(f"    {k.decode('latin-1')}: {v.decode('latin-1')}")
        self._pick(ex, be, txn, http=True)
        return ex

    def explain_tcp(self, fe: model.Frontend, txn: ExplainTxn) -> Explanation:
        """Mirrors workers/runtime.layer4_router and workers/tcp.py's pick."""
        ex = Explanation()
        ex.say(f"connection: from {txn.src} to tcp frontend {fe.name} (port {txn.dst_port})")
        ex.say()
        ex.say(f"frontend {fe.name}")
        fe_acls = rules.compile_acls(fe.acl)
        choose = rules.compile_use_backend(fe.use_backend, fe.default_backend, fe_acls, self.trace)
        name = choose(txn)
        steps = list(self.trace.steps)
        self._report_steps(ex)
        matched = [s for s in steps if s.fired]
        why = (f"use_backend{_condition_text(matched[0].item.cond)}{_where(matched[0].item, ' ')}"
               if matched else "default_backend")
        be = self.cfg.backend(name) if name else None
        ex.say()
        if be is None:
            ex.refused = f"frontend {fe.name} has no backend for this connection"
            ex.say(f"result: refused: {ex.refused}")
            return ex
        ex.backend = be.name
        ex.say(f"backend {be.name} (chosen by {why})")
        self._pick(ex, be, txn, http=False)
        return ex

    @staticmethod
    def _evaluated(steps: list[Step]) -> set[str]:
        return {label for s in steps for label, *_ in s.acls if not label.startswith("{")}

    # -- the server -------------------------------------------------------------

    def _pool(self, ex: Explanation, be: model.Backend) -> ServerPool:
        """The backend's ServerPool with the states a worker would have."""
        pool = ServerPool(be)
        if self.states is None:
            ex.say("  servers (states from the config: health checks not known without --socket):")
            for i, s in enumerate(be.servers):
                state = "maint (disabled)" if s.disabled else "up"
                ex.say(f"    {s.name:<16} {state:<16} weight {s.weight}"
                       f"{'  backup' if s.backup else ''}")
            return pool
        ex.say(f"  servers (live states from {self.socket_path}):")
        live = [self.states.get((be.name, s.name)) for s in be.servers]
        # as workers/runtime.SharedState.apply: weights reduced by their gcd
        g = math.gcd(*(x.weight for x in live if x is not None)) or 1
        for i, (s, st) in enumerate(zip(be.servers, live)):
            if st is None:
                ex.say(f"    {s.name:<16} {'(not in the running farm: config state)':<16}")
                continue
            pool.set_up(i, st.up)
            pool.set_weight(i, st.weight // g)
            for _ in range(st.conns):
                pool.acquired(i)
            ex.say(f"    {s.name:<16} {st.state:<16} weight {st.weight:<4} {st.conns} connections"
                   f"{'  backup' if s.backup else ''}")
        return pool

    def _pick(self, ex: Explanation, be: model.Backend, txn: ExplainTxn, http: bool) -> None:
        pool = self._pool(ex, be)
        alg = be.balance.algorithm
        key = None
        if http:
            if be.cookie is not None:
                cookie = CookiePersistence(be.cookie, _BackendView(be, pool))
                cookie.on_request(txn)
                ex.say(f"  cookie {be.cookie.name}: " + {
                    "N": "not in the request", "I": "names no server of this backend",
                    "D": "names a server that is not up: balanced instead",
                    "V": "names a usable server: the request sticks to it"}.get(txn.cc, txn.cc))
            get_key = balance_key(be.balance)
            key = get_key(txn) if get_key is not None else None
        elif alg == "source":
            key = txn.src.encode()          # as workers/tcp.py
        for r in be.stick:
            cond = f" {'unless' if r.cond.negate else 'if'} {r.cond.text}" if r.cond else ""
            ex.say(f"  stick {r.kind} {r.key} table {r.table}{cond}: not evaluated here (the "
                   "table's entries are in the running farm)")
        idx = txn.forced_server
        how = f"balance {alg}" + (f"({be.balance.arg})" if be.balance.arg else "")
        if idx is not None:
            how = f"cookie {be.cookie.name}"
        else:
            idx = pool.pick(key)
            how += _balance_note(be.balance, key, self.states is not None)
        ex.say()
        if idx is None:
            if pool.any_up():
                ex.say(f"result: queued in backend {be.name}: every usable server is at its maxconn")
                ex.server = None
                return
            ex.refused = f"503: no server of backend {be.name} is usable"
            ex.say(f"result: refused: {ex.refused}")
            return
        srv = be.servers[idx]
        ex.server = srv.name
        ex.say(f"result: forwarded to {be.name}/{srv.name} ({srv.address.host}:{srv.address.port}), "
               f"chosen by {how}")


class _BackendView:
    """What workers/cookie.CookiePersistence reads of a backend runtime."""

    def __init__(self, cfg: model.Backend, pool: ServerPool):
        self.cfg = cfg
        self.pool = pool


def _balance_note(balance: model.Balance, key, live: bool) -> str:
    alg = balance.algorithm
    if alg in model.HASHING_ALGORITHMS:
        if key is None:
            return " (no hash key in this request: round robin instead)"
        return f" of the key {_show_value(key)}"
    if alg in ("roundrobin", "static-rr"):
        return " (first turn of the rotation: each worker is somewhere in its own)"
    if alg == "leastconn":
        return " (fewest connections" + (", from show stat)" if live else ": none without --socket)")
    if alg == "random":
        return " (random: another run may pick another)"
    return ""


def _set_forwarded_proto(req) -> None:
    # the workers' function, so that rules see what they see
    from workers.stream import set_forwarded_proto
    set_forwarded_proto(req)


def explain(cfg: model.Config, frontend: str | None, request: str | None, headers: list[str],
            src: str = "127.0.0.1", states: dict | None = None,
            socket_path: str | None = None) -> Explanation:
    """Route one request (or, for a tcp frontend, one connection) through
    cfg; see the module docstring. Raises ValueError for a usage error
    (unknown or ambiguous frontend, no request line for an HTTP frontend)."""
    fe = _frontend(cfg, frontend)
    explainer = Explainer(cfg, states, socket_path)
    dst_port = fe.binds[0].address.port if fe.binds else 0
    if fe.mode == "tcp":
        return explainer.explain_tcp(fe, ExplainTxn(None, src, 0, dst_port))
    if not request:
        raise ValueError(f"frontend {fe.name} is an HTTP frontend: give the request line, "
                         f"e.g. 'GET / HTTP/1.1' -H 'Host: example.com'")
    try:
        req = parse_request(request, headers, fe.max_header_size)
    except http1.HttpError as e:
        ex = Explanation()
        ex.refused = f"{e.status} by the HTTP parser: {e.reason}"
        ex.say(f"request: {request}")
        ex.say()
        ex.say(f"result: refused: {ex.refused}")
        if "without Host" in e.reason:
            ex.say("(add -H 'Host: NAME')")
        return ex
    return explainer.explain_http(fe, ExplainTxn(req, src, 0, dst_port))


def _frontend(cfg: model.Config, name: str | None) -> model.Frontend:
    names = [f.name for f in cfg.frontends]
    if name is not None:
        for f in cfg.frontends:
            if f.name == name:
                return f
        raise ValueError(f"no frontend {name!r} (frontends: {', '.join(names) or 'none'})")
    if len(cfg.frontends) == 1:
        return cfg.frontends[0]
    if not cfg.frontends:
        raise ValueError("the config has no frontend")
    raise ValueError(f"the config has {len(names)} frontends: pass --frontend NAME "
                     f"(one of {', '.join(names)})")


# ------------------------------------------------------------------ the command

def run(args) -> int:
    """`farm explain` (its options are declared in farm/cli.py, so that the
    other commands do not import workers/)."""
    try:
        src = str(ipaddress.ip_address(args.src))
    except ValueError:
        print(f"farm explain: --src: {args.src!r} is not an IP address", file=sys.stderr)
        return 2
    try:
        cfg = loader.load(args.config)
    except loader.ConfigErrors as e:
        for err in e.errors:
            print(err, file=sys.stderr)
        return 2
    except OSError as e:
        print(f"farm explain: {args.config}: {e.strerror or e}", file=sys.stderr)
        return 2
    states = None
    if args.socket:
        try:
            states = live_states(args.socket)
        except (OSError, ValueError) as e:
            print(f"farm explain: {args.socket}: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
            return 2
    try:
        ex = explain(cfg, args.frontend, args.request, args.header, src, states, args.socket)
    except ValueError as e:
        print(f"farm explain: {e}", file=sys.stderr)
        return 2
    sys.stdout.write("\n".join(ex.lines) + "\n")
    return 1 if ex.refused else 0
