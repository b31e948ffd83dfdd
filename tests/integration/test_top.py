"""`farm top` in a real terminal (tmux) against a real farm: the screen
shows the servers and their state, the keys change the state through the
admin socket (checked through the socket and with traffic), a resize, a
lost socket and a terminal without colours are handled; `--once` prints a
screen without a terminal.

Tmux is also used by test_hatop.py (imported from here)."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from farm import top
from tests.integration.backends import free_port
from tests.integration.simple_http import NamedServer
from tests.integration.tools import debian_tool

ROOT = Path(__file__).resolve().parents[2]


class Tmux:
    """One detached tmux server of our own (its socket in a private
    directory, no user config) running one command in one pane."""

    def __init__(self, binary: str, width: int = 130, height: int = 32):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="farmtmux")      # short: unix socket path limit
        self.sock = os.path.join(self.dir, "s")
        self.width, self.height = width, height

    def tmux(self, *args: str, check: bool = True) -> str:
        # pytest exports COLUMNS/LINES (80x24), which curses programs would take
        # as the terminal size: the pane's size is what counts here
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        p = subprocess.run([self.binary, "-S", self.sock, "-f", "/dev/null", *args],
                           capture_output=True, text=True, timeout=10, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {p.stderr}")
        return p.stdout

    def start(self, argv: list[str], env: dict | None = None) -> None:
        """Run argv in the pane; when it exits the pane shows EXITED=<code>
        (and its stderr) instead of disappearing."""
        envs = " ".join(f"{k}={shlex_quote(v)}" for k, v in (env or {}).items())
        cmd = " ".join(shlex_quote(a) for a in argv)
        script = f"env {envs} {cmd} 2>{self.dir}/stderr; echo EXITED=$?; cat {self.dir}/stderr; sleep 60"
        self.tmux("new-session", "-d", "-s", "t", "-x", str(self.width), "-y", str(self.height),
                  "sh", "-c", script)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def text(self, text: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", text)

    def screen(self, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "t")

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", "t", "-x", str(width), "-y", str(height))

    def wait(self, pred, timeout: float = 10, what: str = "") -> str:
        """Wait until pred(screen) (or a substring / compiled regex) holds."""
        if isinstance(pred, str):
            needle = pred
            pred = lambda s: needle in s                     # noqa: E731
            what = what or repr(needle)
        elif isinstance(pred, re.Pattern):
            rx = pred
            pred = lambda s: rx.search(s) is not None        # noqa: E731
            what = what or rx.pattern
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if pred(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"screen never showed {what}:\n{screen}")

    def close(self) -> None:
        self.tmux("kill-server", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def shlex_quote(s: str) -> str:
    import shlex
    return shlex.quote(str(s))


@pytest.fixture
def tmux():
    binary = debian_tool("tmux")
    if binary is None:
        pytest.skip("tmux is not installable here")
    t = Tmux(binary)
    yield t
    t.close()


# -- farm and the admin socket ---------------------------------------------------------


def farm_config(port: int, sock: Path, servers: list) -> str:
    entries = "".join(f'[[backends.be.servers]]\nname = "{s.name}"\naddress = "{s.address}"\n'
                      for s in servers)
    return f"""
[global]
workers = 1
admin_socket = "{sock}"
hard_stop_after = "2s"
[log]
events = "@EVENTS@"
[defaults]
mode = "http"
[frontends.fe]
bind = "127.0.0.1:{port}"
default_backend = "be"
[backends.be.check]
type = "http"
path = "/healthz"
interval = "200ms"
rise = 1
fall = 2
[backends.be]
{entries}
"""


def cli(sock: Path, line: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(line.encode() + b"\n")
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out.decode()
            out += d


def admin_states(sock: Path) -> dict:
    """server name -> srv_admin_state from `show servers state`."""
    out = {}
    for line in cli(sock, "show servers state be").splitlines()[2:]:
        f = line.split()
        if len(f) > 6:
            out[f[3]] = int(f[6])
    return out


def statuses(sock: Path) -> dict:
    """server name -> status column of `show stat`."""
    rows = top.parse_stat(cli(sock, "show stat"))
    return {r["svname"]: r["status"] for r in rows if r["type"] == "2"}


def wait_for(pred, timeout: float = 5, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or pred}")


def get(port: int) -> str:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/")
        return c.getresponse().read().decode()
    finally:
        c.close()


def server_line(name: str, status: str) -> re.Pattern:
    """A table line of server `name` (maybe selected: "> name") in `status`."""
    return re.compile(rf"^[> ] {re.escape(name)}\s+{re.escape(status)}\s", re.M)


@pytest.fixture
def two():
    a, b = NamedServer("a"), NamedServer("b")
    yield a, b
    a.close()
    b.close()


def top_argv(sock: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "master.py"), "top", "-s", str(sock), "-i", "0.5", *extra]


# -- tests -----------------------------------------------------------------------------


def test_top_shows_the_servers_and_its_keys_change_their_state(farm_factory, two, tmp_path, tmux):
    sock = tmp_path / "admin.sock"
    port = free_port()
    farm = farm_factory(farm_config(port, sock, two))
    for _ in range(4):
        get(port)
    # a stale exported size must not win over the terminal's own
    tmux.start(top_argv(sock), env={"COLUMNS": "80", "LINES": "24"})
    screen = tmux.wait(lambda s: server_line("a", "UP").search(s) and server_line("b", "UP").search(s),
                       what="both servers UP")
    assert "LASTCHG" in screen and len(screen.splitlines()) == tmux.height, screen
    header = screen.splitlines()[0]
    assert header.startswith("farm ") and f"pid {farm.proc.pid}" in header, screen
    assert re.search(r"^FRONTEND\s+OPEN", screen, re.M) and re.search(r"^BACKEND\s+UP", screen, re.M)
    assert "frontend fe (http)" in screen and "backend be (http, roundrobin)" in screen
    assert re.search(r"^> a\s", screen, re.M), "the first server is selected"
    # UP is drawn in green (SGR 32) on this colour terminal
    assert re.search(r"\x1b\[[0-9;]*32m(\x1b\[[0-9;]*m)*UP", tmux.screen(escapes=True))
    # requests show up in the counters (and the rate column is a number)
    tmux.wait(re.compile(r"^> a\s+UP\s+1\s+\d+\s+\d+\s+2\s+[\d.]+\s", re.M), what="a's 2 sessions")

    # m: maintenance, through the admin socket
    tmux.keys("m")
    wait_for(lambda: admin_states(sock).get("a") == 1, what="a in maintenance")
    tmux.wait(server_line("a", "MAINT"))
    assert {get(port) for _ in range(4)} == {"b"}
    tmux.wait("set server be/a state maint: done")
    # r: ready again
    tmux.keys("r")
    wait_for(lambda: admin_states(sock).get("a") == 0, what="a ready")
    tmux.wait(server_line("a", "UP"))
    assert {get(port) for _ in range(4)} == {"a", "b"}

    # j then d: b drains (no new sessions), then r
    tmux.keys("j")
    tmux.wait(re.compile(r"^> b\s", re.M))
    tmux.keys("d")
    wait_for(lambda: admin_states(sock).get("b", 0) & 0x18, what="b draining")
    tmux.wait(server_line("b", "DRAIN"))
    assert {get(port) for _ in range(4)} == {"a"}
    tmux.keys("r")
    wait_for(lambda: admin_states(sock).get("b") == 0, what="b ready")

    # + and -: the weight
    tmux.keys("+")
    wait_for(lambda: cli(sock, "get weight be/b") == "2 (initial 1)\n\n", what="weight 2")
    tmux.wait(re.compile(r"^> b\s+UP\s+2\s", re.M))
    tmux.keys("-")
    tmux.keys("-")
    wait_for(lambda: cli(sock, "get weight be/b") == "0 (initial 1)\n\n", what="weight 0")
    tmux.keys("+")
    wait_for(lambda: cli(sock, "get weight be/b") == "1 (initial 1)\n\n", what="weight 1")

    # ?: help, any key back, q: quit
    tmux.keys("?")
    tmux.wait("Keys")
    tmux.keys("x")
    tmux.wait(server_line("a", "UP"))
    tmux.keys("q")
    tmux.wait("EXITED=0")


def test_top_survives_a_resize_a_lost_socket_and_a_terminal_without_colours(
        farm_factory, two, tmp_path, tmux):
    sock = tmp_path / "admin.sock"
    port = free_port()
    farm = farm_factory(farm_config(port, sock, two))
    tmux.start(top_argv(sock), env={"TERM": "vt100"})     # vt100: no colours
    screen = tmux.wait(server_line("b", "UP"))
    colours = re.findall(r"\x1b\[[0-9;]*3[0-7]m", tmux.screen(escapes=True))
    assert not colours, f"colours on a vt100: {colours}"
    assert re.search(r"^> a\s+UP", screen, re.M)

    # resize: narrower and shorter, columns are dropped, nothing wraps
    tmux.resize(64, 16)
    screen = tmux.wait(lambda s: len(s.splitlines()[3].rstrip()) <= 64 and "CHECK" in s
                       and "LASTCHG" not in s, what="the narrow layout")
    assert all(len(line) <= 64 for line in screen.splitlines())
    assert server_line("a", "UP").search(screen) and server_line("b", "UP").search(screen)
    assert screen.splitlines()[-1].startswith("j/k")   # the key reminder on the last line
    tmux.resize(130, 32)
    tmux.wait("LASTCHG")

    # the socket goes away: the last data stays, "reconnecting" is shown
    old_pid = farm.proc.pid
    farm.stop()
    screen = tmux.wait("reconnecting")
    assert server_line("a", "UP").search(screen)
    time.sleep(1.5)                                      # a few failed retries
    assert "EXITED" not in tmux.screen()
    # farm is back: new pid in the header, message gone, keys work again
    farm.start()
    screen = tmux.wait(lambda s: f"pid {old_pid}" not in s.splitlines()[0]
                       and "reconnecting" not in s and server_line("a", "UP").search(s),
                       timeout=15, what="the new farm")
    assert f"pid {farm.proc.pid}" in screen.splitlines()[0]
    tmux.keys("m")
    wait_for(lambda: admin_states(sock).get("a") == 1, what="a in maintenance")
    tmux.wait(server_line("a", "MAINT"))
    tmux.keys("r")
    wait_for(lambda: admin_states(sock).get("a") == 0, what="a ready")
    tmux.keys("q")
    tmux.wait("EXITED=0")


def test_top_starts_before_farm(farm_factory, two, tmp_path, tmux):
    sock = tmp_path / "admin.sock"
    port = free_port()
    farm = farm_factory(farm_config(port, sock, two), start=False)
    tmux.start(top_argv(sock))
    tmux.wait("reconnecting")
    tmux.wait("waiting for data")
    farm.start()
    tmux.wait(server_line("a", "UP"), timeout=15)
    # the weight stays within farm's 0..256
    cli(sock, "set weight be/a 256")
    tmux.wait(re.compile(r"^> a\s+UP\s+256\s", re.M))
    tmux.keys("+")
    tmux.wait("set weight be/a 256: done")                # clamped at 256 by farm top
    cli(sock, "set weight be/a 1")
    tmux.keys("q")
    tmux.wait("EXITED=0")


def test_top_once_and_without_a_terminal(farm_factory, two, tmp_path):
    sock = tmp_path / "admin.sock"
    farm_factory(farm_config(free_port(), sock, two))
    wait_for(lambda: statuses(sock) == {"a": "UP", "b": "UP"}, what="both UP")
    p = subprocess.run(top_argv(sock, "--once"), capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("farm ")
    assert re.search(r"^  a\s+(UP|DOWN)", p.stdout, re.M) and re.search(r"^  b\s", p.stdout, re.M)
    assert not any(line.startswith("j/k") for line in lines)
    # interactive without a terminal: a clear error
    p = subprocess.run(top_argv(sock), capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "needs a terminal" in p.stderr
    # no socket there
    p = subprocess.run(top_argv(tmp_path / "nope.sock", "--once"), capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 2 and "nope.sock" in p.stderr


def test_model_polls_and_reports_farms_answers(farm_factory, two, tmp_path):
    """The data side of farm top (no curses) against the real admin socket:
    samples, client-side rates, commands and farm's error answers."""
    sock = tmp_path / "admin.sock"
    port = free_port()
    farm_factory(farm_config(port, sock, two))
    m = top.Model(str(sock), 0.5)
    try:
        assert m.poll() and m.view.connected
        assert m.view.info["Name"] == "farm"
        assert top.servers(m.view.rows) == [("be", "a"), ("be", "b")]
        assert m.view.selected == ("be", "a")
        for _ in range(10):
            get(port)
        time.sleep(0.6)                    # the workers publish their counters every 0.25 s
        assert m.poll()
        rate = m.view.rates[(0, "fe", "FRONTEND")]
        assert rate is not None and rate > 0
        assert m.view.rates["requests"] > 0
        m.command("set server be/b state maint")
        assert m.view.message == "set server be/b state maint: done" and not m.view.error
        assert statuses(sock)["b"] == "MAINT"
        m.command("set server be/zz state ready")
        assert m.view.message == "set server be/zz state ready: No such server." and m.view.error
        m.command("set server be/b state ready")
        assert statuses(sock)["b"] != "MAINT"
    finally:
        m.close()
