"""The runtime API on a unix socket, in HAProxy's CLI language.

Served by the master on its event loop (global.admin_socket, mode 660), so
that hatop, socat scripts and prometheus-haproxy-exporter work unchanged.

Framing, as HAProxy 2.6 does it:
- one-shot: the client sends a line of `;`-separated commands; each answer
  ends with an empty line; then the connection closes;
- interactive: after `prompt`, every answer is followed by the prompt
  "> " and the connection stays open until `quit` or the CLI timeout
  (`set timeout cli N`, default 10 s).

The command list, `help`, the answer to an unknown command and the marks
of error answers (`set severity-output`) are in farm/admincli.py; an answer
is an error when its command raised CliError. Commands are parsed here;
what they change goes through the Master
(set_server_admin, set_server_weight, reload), the only writer of server
state. The loop API used is the same as farm.health's (add/remove/modify,
timers), so farm/ never imports workers/.
"""

from __future__ import annotations

import os
import select
import socket
import time

from farm import admincli, build, resolve, shm

DEFAULT_CLI_TIMEOUT = 10.0
MAX_LINE = 16384

class CliError(Exception):
    """A command's error answer (the text HAProxy would print). Every
    answer given through CliError is an error: marked as such for a session
    that asked for it (`set severity-output`, see farm/admincli.py)."""

    severity = admincli.LOG_ERR


class Client:
    """One admin socket connection."""

    __slots__ = ("sock", "fd", "inbuf", "outbuf", "interactive", "timeout", "timer",
                 "closing", "waiting", "severity_output")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = b""
        self.outbuf = b""
        self.interactive = False
        self.timeout = DEFAULT_CLI_TIMEOUT
        self.timer = None
        self.closing = False
        self.waiting = False        # an answer is pending (reload)
        self.severity_output = "none"   # set severity-output (admincli)


class AdminServer:
    """Listens on the admin socket and answers commands for `master`."""

    def __init__(self, loop, master, path: str):
        self.loop = loop
        self.master = master
        self.path = path
        self.clients: dict[int, Client] = {}
        try:
            if os.path.exists(path) and not os.path.isdir(path):
                os.unlink(path)      # a stale socket from an earlier run
        except OSError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o117)  # the socket is created 0660
        try:
            self.sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o660)
        self.sock.listen(64)
        self.sock.setblocking(False)
        loop.add(self.sock.fileno(), select.EPOLLIN, self.on_accept)

    def close(self) -> None:
        for c in list(self.clients.values()):
            self.drop(c)
        self.loop.remove(self.sock.fileno())
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    # -- connections -------------------------------------------------------------

    def on_accept(self, events: int) -> None:
        for _ in range(16):
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            c = Client(sock)
            self.clients[c.fd] = c
            self.loop.add(c.fd, select.EPOLLIN, lambda ev, c=c: self.on_client(c, ev))
            c.timer = self.loop.call_later(c.timeout, lambda c=c: self.drop(c))

    def on_client(self, c: Client, events: int) -> None:
        if events & select.EPOLLOUT and c.outbuf:
            self.flush(c)
            if c.fd not in self.clients:
                return
        if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                if not c.outbuf and not c.waiting:
                    self.drop(c)
                    return
                c.closing = True
            elif data:
                c.inbuf += data
                if len(c.inbuf) > MAX_LINE and b"\n" not in c.inbuf:
                    self.drop(c)
                    return
                self.loop.set_timer(c.timer, self.loop.now + c.timeout)
                self.process(c)
        self.update(c)

    def process(self, c: Client) -> None:
        while b"\n" in c.inbuf and not c.closing and not c.waiting:
            line, c.inbuf = c.inbuf.split(b"\n", 1)
            self.run_line(c, line.decode("utf-8", "replace").strip("\r"))
            if not c.interactive and not c.waiting:
                c.closing = True    # one-shot: one line, then close

    def run_line(self, c: Client, line: str) -> None:
        for cmd in split_commands(line):
            if not cmd:
                continue
            words = cmd.split()
            if words == ["quit"]:
                c.closing = True
                c.interactive = False
                return
            if words == ["prompt"]:
                c.interactive = not c.interactive
                if c.interactive:
                    c.outbuf += b"\n"
                continue
            if words == ["reload"]:
                self.start_reload(c)
                return
            try:
                if words[:3] == ["set", "timeout", "cli"]:
                    answer = self.set_cli_timeout(c, words[3:])
                elif words[:2] == ["set", "severity-output"]:
                    answer = self.set_severity_output(c, words[2:])
                else:
                    answer = self.execute(words)
            except CliError as e:
                answer = admincli.mark(str(e), e.severity, c.severity_output)
            if answer and not answer.endswith("\n"):
                answer += "\n"
            c.outbuf += (answer + "\n").encode()
        if c.interactive:
            c.outbuf += b"> "

    def start_reload(self, c: Client) -> None:
        """Answer when the reload has finished: Success=1 once the new
        workers are ready, Success=0 with the errors otherwise."""
        c.waiting = True

        def done(ok: bool, messages: list[str]) -> None:
            if c.fd not in self.clients:
                return
            c.waiting = False
            answer = f"Success={1 if ok else 0}\n--\n" + "".join(m + "\n" for m in messages)
            if not ok:      # a failed reload is an error answer (farm ctl reload exits 1)
                answer = admincli.mark(answer, admincli.LOG_ERR, c.severity_output)
            c.outbuf += (answer + "\n").encode()
            if c.interactive:
                c.outbuf += b"> "
            else:
                c.closing = True
            self.process(c)
            self.update(c)
        self.master.reload(on_done=done)

    def flush(self, c: Client) -> None:
        try:
            n = c.sock.send(c.outbuf)
        except BlockingIOError:
            return
        except OSError:
            self.drop(c)
            return
        c.outbuf = c.outbuf[n:]

    def update(self, c: Client) -> None:
        if c.fd not in self.clients:
            return
        if c.outbuf:
            self.flush(c)
            if c.fd not in self.clients:
                return
        if c.closing and not c.outbuf and not c.waiting:
            self.drop(c)
            return
        mask = (0 if c.closing else select.EPOLLIN) | (select.EPOLLOUT if c.outbuf else 0)
        self.loop.modify(c.fd, mask or select.EPOLLIN)

    def drop(self, c: Client) -> None:
        if self.clients.pop(c.fd, None) is None:
            return
        if c.timer is not None:
            c.timer.release()
        self.loop.remove(c.fd)
        c.sock.close()

    # -- commands ----------------------------------------------------------------

    def execute(self, words: list[str]) -> str:
        """Run one command (not prompt/quit/reload nor the session settings)
        and return its answer; an error answer is raised as CliError."""
        m = self.master
        if words[:1] == ["help"]:
            return admincli.usage(words[1:], help_asked=True)
        if words[:2] == ["show", "info"]:
            from farm import stats
            pairs = stats.info(self.proc_info(), self.rows())
            if words[2:] == ["typed"]:
                return stats.info_typed(pairs)
            if words[2:] == ["json"]:
                return stats.info_json(pairs)
            return "".join(f"{k}: {v}\n" for k, v in pairs)
        if words[:2] == ["show", "stat"]:
            return self.show_stat(words[2:])
        if words[:3] == ["show", "servers", "state"]:
            return self.show_servers_state(words[3:])
        if words[:2] == ["show", "backend"]:
            return "# name\n" + "".join(b.name + "\n" for b in m.config.backends)
        if words[:2] == ["show", "sess"]:
            return self.show_sess()
        if words[:3] == ["show", "ssl", "cert"]:
            return self.show_ssl_cert(words[3:])
        if words[1:2] == ["table"] and words[0] in ("show", "clear", "set"):
            from farm import tables
            try:
                return tables.cli(m.table.sticks, words)
            except tables.TableError as e:
                raise CliError(str(e)) from None
        if words[:2] == ["show", "peers"]:
            return m.peers.show()
        if words[:2] == ["acme", "status"]:
            return m.acme.status()
        if words[:2] == ["acme", "renew"]:
            if not m.acme.renew(arg(words, 2)):
                raise CliError(f"No ACME certificate for frontend '{arg(words, 2)}'.\n")
            return f"Renewing the certificate of frontend '{arg(words, 2)}'.\n"
        if words[:2] == ["get", "weight"]:
            be, srv, sidx = self.server(arg(words, 2))
            t = m.table
            cur = round(t.srv_get(sidx, "eff_weight") / shm.WEIGHT_SCALE)
            return f"{cur} (initial {srv.weight})\n"
        if words[:2] == ["set", "weight"]:
            return self.set_weight(arg(words, 2), arg(words, 3))
        if words[:2] == ["set", "server"]:
            what = arg(words, 3)
            if what == "state":
                return self.set_state(arg(words, 2), arg(words, 4))
            if what == "weight":
                return self.set_weight(arg(words, 2), arg(words, 4))
            if what == "addr":
                return self.set_addr(arg(words, 2), words[4:])
            self.server(arg(words, 2))      # a wrong server is reported first, as HAProxy does
            raise CliError("'set server <srv>' only supports 'addr', 'state' and 'weight' here.\n")
        if words[:2] == ["disable", "server"]:
            return self.set_state(arg(words, 2), "maint")
        if words[:2] == ["enable", "server"]:
            return self.set_state(arg(words, 2), "ready")
        if words[:3] == ["shutdown", "sessions", "server"]:
            be, srv, sidx = self.server(arg(words, 3))
            t = m.table
            t.srv_set(sidx, "shutdown_seq", t.srv_get(sidx, "shutdown_seq") + 1)
            t.bump_state_version()
            return ""
        raise CliError(admincli.usage(words))

    def set_cli_timeout(self, c: Client, args: list[str]) -> str:
        try:
            seconds = float(args[0]) if len(args) == 1 else 0.0
        except ValueError:
            seconds = 0.0
        if not 0 < seconds < 2**31 / 1000:
            raise CliError("Invalid timeout value.\n")
        c.timeout = max(1.0, seconds)
        return ""

    def set_severity_output(self, c: Client, args: list[str]) -> str:
        if len(args) != 1 or args[0] not in admincli.SEVERITY_MODES:
            raise CliError("one of 'none', 'number', 'string' is a required argument\n")
        c.severity_output = args[0]
        return ""

    def server(self, ref: str):
        """'backend/server' -> (Backend, Server, shm row), or CliError
        (also for "": the argument is missing)."""
        be_name, sep, srv_name = ref.partition("/")
        if not sep:
            raise CliError("Require 'backend/server'.\n")
        cfg = self.master.config
        be = cfg.backend(be_name)
        if be is None:
            raise CliError("No such backend.\n")
        srv = be.server(srv_name)
        if srv is None:
            raise CliError("No such server.\n")
        return be, srv, self.master.table.server_row(be_name, srv_name)

    def set_weight(self, ref: str, value: str) -> str:
        be, srv, sidx = self.server(ref)
        try:
            if value.endswith("%"):
                weight = int(srv.weight * float(value[:-1]) / 100 + 0.5)
            else:
                weight = int(value)
        except ValueError:
            raise CliError("Require <weight> or <weight%>.\n") from None
        if not 0 <= weight <= 256:
            raise CliError("Absolute weight can only be between 0 and 256 inclusive.\n")
        self.master.set_server_weight(be.name, srv.name, weight)
        return ""

    def set_state(self, ref: str, state: str) -> str:
        be, srv, sidx = self.server(ref)
        if state not in shm.ADMIN_NAMES:
            raise CliError("'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n")
        self.master.set_server_admin(be.name, srv.name, shm.ADMIN_NAMES.index(state))
        return ""

    def set_addr(self, ref: str, args: list[str]) -> str:
        """`set server B/S addr IP [port N]`, answered in HAProxy 2.6's words
        ("IP changed from 'A' to 'B', port changed from 'P' to 'Q' by 'stats
        socket command'"). Only IP literals: farm resolves names when it
        loads the config, never on the runtime API's behalf."""
        be, srv, sidx = self.server(ref)
        if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "port"):
            raise CliError("set server <b>/<s> addr requires an address and optionally a port.\n")
        by = " by 'stats socket command'\n"
        family = resolve.literal_ip(args[0])
        if family is None:
            raise CliError(f"Invalid addr '{args[0]}'{by}")
        _, current = self.master.table.address(sidx)
        old_ip, old_port = (current[1][0], current[1][1]) if current else ("-", srv.address.port)
        port = old_port
        if len(args) == 3:
            text = args[2]
            if not (text.isascii() and text.isdigit() and len(text) <= 5):
                raise CliError(f"problem converting port '{text}' to an int{by}")
            port = int(text)
            if not 1 <= port <= 65535:
                raise CliError(f"port '{text}' is out of range 1..65535{by}")
        address = resolve.lookup(args[0], port, family)
        ip = address[1][0]
        parts = ["no need to change the addr" if ip == old_ip else f"IP changed from '{old_ip}' to '{ip}'"]
        if len(args) == 3:
            parts.append("no need to change the port" if port == old_port
                         else f"port changed from '{old_port}' to '{port}'")
        if (ip, port) != (old_ip, old_port) or self.master.table.srv_get(sidx, "rmaint"):
            self.master.set_server_addr(be.name, srv.name, address)
        return ", ".join(parts) + by

    def rows(self) -> list[dict]:
        from farm import stats   # rendering lives with the stats page
        return stats.snapshot(self.master.config, self.master.table, self.proc_info())

    def proc_info(self) -> dict:
        from farm import stats
        m = self.master
        cfg = m.config
        process = m.table.read_row(shm.PROCESS_ROW)
        return {
            "pid": os.getpid(), "start_time": m.started, "workers": cfg.global_.workers,
            "maxconn": cfg.global_.maxconn, "node": cfg.global_.node or socket.gethostname(),
            "version": m.version, "release_date": m.release_date, "build": build.describe(),
            "stopping": 1 if m.stopping else 0,
            "dropped_logs": process["dropped_logs"],
            "listeners": sum(len(s) for s in m.current.listeners.values()),
            "generation": m.generation,
            **stats.process_rates(process),
        }

    def show_stat(self, args: list[str]) -> str:
        if args == ["json"]:
            from farm import stats
            return stats.json_stats(self.rows())
        typed = bool(args) and args[0] == "typed"
        if typed:
            args = args[1:]
        rows = self.rows()
        if len(args) >= 3:
            try:
                iid, typ, sid = int(args[0]), int(args[1]), int(args[2])
            except ValueError:
                raise CliError("Invalid arguments.\n") from None
            rows = [r for r in rows if (iid == -1 or r["iid"] == iid)
                    and (typ & (1 << r["type"]))
                    and (sid == -1 or r["sid"] == sid)]
        from farm import stats
        return stats.csv(rows, typed=typed)

    def show_servers_state(self, args: list[str]) -> str:
        """HAProxy's `show servers state` (version 1), what hatop and the
        server-state-file readers parse."""
        m = self.master
        t = m.table
        now = int(time.time())
        out = ["1", "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state "
               "srv_uweight srv_iweight srv_time_since_last_change srv_check_status "
               "srv_check_result srv_check_health srv_check_state srv_agent_state "
               "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl "
               "srv_check_port srv_check_addr srv_agent_addr srv_agent_port"]
        if args and m.config.backend(args[0]) is None:
            raise CliError("Can't find backend.\n")
        for be in m.config.backends:
            if args and be.name != args[0]:
                continue
            for srv in be.servers:
                st = t.srv_state(t.server_row(be.name, srv.name))
                rmaint = bool(st["rmaint"])
                op = 2 if st["op_up"] and not rmaint else 0   # SRV_ST_RUNNING / STOPPED
                admin = {0: 0, 1: 8, 2: 1}[st["admin"]]       # SRV_ADMF_FDRAIN=8, FMAINT=1
                admin |= 0x20 if rmaint else 0                # SRV_ADMF_RMAINT
                # CHK_ST_CONFIGURED|ENABLED, | PAUSED in resolution maintenance
                check_state = (14 if rmaint else 6) if st["has_check"] else 0
                status = shm.CHECK_STATUSES[st["check_status"]]
                result = check_result(status, bool(st["has_check"]))
                address = shm.state_address(st)
                ip, port = address[1][:2] if address else ("-" if rmaint else srv.address.host,
                                                           srv.address.port)
                fqdn = "-" if resolve.literal_ip(srv.address.host) else srv.address.host
                out.append(" ".join(str(x) for x in (
                    be.id, be.name, srv.id, srv.name, ip, op, admin,
                    round(st["eff_weight"] / shm.WEIGHT_SCALE), srv.weight,
                    now - st["last_change"], HCHK_STATUS.get(status, 0), result, st["health"],
                    check_state, 0, 0, 0, fqdn, port, "-", 0,
                    m.config.backend(be.name).check.port or 0, "-", "-", 0)))
        return "\n".join(out) + "\n"

    def show_ssl_cert(self, args: list[str]) -> str:
        """`show ssl cert [FILE]` as HAProxy 2.6 answers it: the certificate
        files in use (each once), or one file's details. FILE is the path as
        farm loaded it (absolute). HAProxy's "*FILE" names an uncommitted
        transaction; farm has none (certificates change on reload)."""
        certs = self.master.current.tls.certificates()
        if not args:
            paths = list(dict.fromkeys(c.path for _, c in certs))
            return "# filename\n" + "".join(p + "\n" for p in paths)
        cert = self.master.current.tls.cert(args[0])
        if cert is None:
            raise CliError("Can't display the certificate: Not found or the certificate is a bundle!\n")
        return cert.describe()

    def show_sess(self) -> str:
        """A summary (sessions live in the workers, which the master does not
        enumerate): current sessions per frontend, backend and server."""
        t = self.master.table
        lines = []
        for key in t.layout.rows:
            if key == shm.PROCESS_ROW:
                continue
            row = t.read_row(key)
            name = "/".join(key[1:])
            kind = {"fe": "frontend", "be": "backend", "srv": "server"}[key[0]]
            lines.append(f"{kind} {name}: scur={row['scur']} stot={row['stot']}")
        return "\n".join(lines) + "\n"


# HAProxy's numbering of check statuses (enum healthcheck_status) and
# results (CHK_RES_*), as `show servers state` and state files carry them.
HCHK_STATUS = {"": 0, "INI": 1, "SOCKERR": 5, "L4OK": 6, "L4TOUT": 7, "L4CON": 8, "L6OK": 9,
               "L6TOUT": 10, "L6RSP": 11, "L7TOUT": 12, "L7RSP": 13, "L7OK": 15, "L7STS": 17}
PASSED_STATUSES = ("L4OK", "L6OK", "L7OK")


def check_result(status: str, checked: bool) -> int:
    """CHK_RES_UNKNOWN 0, NEUTRAL 1 (not checked yet), FAILED 2, PASSED 3."""
    if not checked:
        return 0
    if status in ("", "INI"):
        return 1
    return 3 if status in PASSED_STATUSES else 2


def arg(words: list[str], i: int) -> str:
    """The i-th word, or "" when the command line is shorter."""
    return words[i] if i < len(words) else ""


def split_commands(line: str) -> list[str]:
    """Split a CLI line on unescaped ';' (HAProxy: '\\;' is a literal ';')."""
    out, cur, i = [], [], 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            cur.append(line[i + 1])
            i += 2
            continue
        if ch == ";":
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur).strip())
    return out
