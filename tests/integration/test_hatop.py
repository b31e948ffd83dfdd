"""Debian's hatop (an ncurses client of HAProxy's stats socket) in tmux
against farm's admin socket: it starts, shows farm's servers, and its
hotkeys (F10 disable / F9 enable on one backend) and its embedded CLI
(mode 5) change server state, which farm applies."""

from __future__ import annotations

import re
import time

import pytest

from tests.integration.backends import free_port
from tests.integration.test_top import Tmux, admin_states, cli, farm_config, get, wait_for
from tests.integration.simple_http import NamedServer
from tests.integration.tools import debian_tool

SGR = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def hatop_tmux():
    hatop, tmux = debian_tool("hatop"), debian_tool("tmux")
    if hatop is None or tmux is None:
        pytest.skip("hatop or tmux is not installable here")
    t = Tmux(tmux, width=130, height=40)
    t.hatop = hatop
    yield t
    t.close()


@pytest.fixture
def two():
    a, b = NamedServer("a"), NamedServer("b")
    yield a, b
    a.close()
    b.close()


def hatop_server(name: str, status: str) -> re.Pattern:
    """A server line of hatop's STATUS mode: NAME W STATUS CHECK ..."""
    return re.compile(rf"^{re.escape(name)}\s+\d+\s+{re.escape(status)}\s", re.M)


def cursor_row(t: Tmux) -> tuple[int, str]:
    """(row, text) of hatop's cursor line: drawn in reverse video (the
    footer, also reversed, is the last line and is not a cursor)."""
    lines = t.screen(escapes=True).splitlines()
    for i, line in enumerate(lines[:t.height - 1]):
        if "\x1b[7m" in line:
            return i, SGR.sub("", line.split("\x1b[7m", 1)[1])
    return -1, ""


def select(t: Tmux, name: str) -> None:
    """Move hatop's cursor (Up/Down, one screen line per key) onto the line of
    server `name`, after any "updating..." of a previous hotkey is gone."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row, text = cursor_row(t)
        if text.split()[:1] == [name]:
            return
        target = next((i for i, line in enumerate(t.screen().splitlines())
                       if line.split()[:1] == [name]), None)
        if row < 0:
            t.keys("Down")          # hatop shows no cursor before the first move
        elif target is not None and "updating..." not in text:
            t.keys(*(["Down"] * (target - row) if target > row else ["Up"] * (row - target)))
        time.sleep(0.2)
    raise AssertionError(f"cannot put the cursor on {name}:\n{t.screen()}")


def test_hatop_shows_farm_and_changes_server_state(farm_factory, two, tmp_path, hatop_tmux):
    t = hatop_tmux
    sock = tmp_path / "admin.sock"
    port = free_port()
    farm = farm_factory(farm_config(port, sock, two))
    wait_for(lambda: "L7OK" in cli(sock, "show stat"), what="a first check")
    t.start([t.hatop, "-s", str(sock), "-i", "1"])
    screen = t.wait(lambda s: hatop_server("a", "UP").search(s) and hatop_server("b", "UP").search(s),
                    what="both servers UP")
    # its header comes from `show info`, its table from `show stat`
    assert "farm Version: 0.1.0" in screen or re.search(r"farm\s+Version", screen), screen
    assert f"PID: {farm.proc.pid}" in screen
    assert re.search(r"^>>> fe$", screen, re.M) and re.search(r"^>>> be$", screen, re.M)
    assert re.search(r"^FRONTEND\s+\d+\s+OPEN", screen, re.M)
    assert re.search(r"^BACKEND\s+2\s+UP", screen, re.M)
    assert "EXITED" not in screen

    # F10: disable the server on this backend (maintenance); F9: enable it
    select(t, "a")
    t.keys("F10")
    wait_for(lambda: admin_states(sock).get("a") == 1, what="a in maintenance")
    t.wait(hatop_server("a", "MAINT"))
    assert {get(port) for _ in range(4)} == {"b"}
    select(t, "a")
    t.keys("F9")
    wait_for(lambda: admin_states(sock).get("a") == 0, what="a ready")
    t.wait(hatop_server("a", "UP"))
    # F7 / F6: weight +1 / -1 (set weight)
    select(t, "a")
    t.keys("F7")
    wait_for(lambda: cli(sock, "get weight be/a") == "2 (initial 1)\n\n", what="weight 2")
    select(t, "a")
    t.keys("F6")
    wait_for(lambda: cli(sock, "get weight be/a") == "1 (initial 1)\n\n", what="weight 1")

    # the embedded CLI (mode 5): commands typed as on the socket, answers shown
    t.keys("5")
    t.wait("haproxy command line")
    t.text("disable server be/b")
    t.keys("Enter")
    wait_for(lambda: admin_states(sock).get("b") == 1, what="b in maintenance")
    assert {get(port) for _ in range(4)} == {"a"}
    t.text("get weight be/b")
    t.keys("Enter")
    t.wait("1 (initial 1)")
    t.text("enable server be/b")
    t.keys("Enter")
    wait_for(lambda: admin_states(sock).get("b") == 0, what="b ready")
    t.text("show backend")
    t.keys("Enter")
    t.wait(re.compile(r"^# name\n+be$", re.M))

    # back to the status view (ESC 1), both UP again, then quit cleanly
    t.keys("Escape", "1")
    t.wait(lambda s: hatop_server("a", "UP").search(s) and hatop_server("b", "UP").search(s),
           what="both servers UP again")
    t.keys("q")
    screen = t.wait("EXITED=")
    assert "EXITED=0" in screen, screen
