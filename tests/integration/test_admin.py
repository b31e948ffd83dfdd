"""The admin socket, spoken as HAProxy's runtime API: framing both ways,
server state and weight changes, reload, and admin state across reloads."""

from __future__ import annotations

import collections
import http.client
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.backends import EchoServer, free_port
from tests.integration.simple_http import NamedServer

ROOT = Path(__file__).resolve().parents[2]


def config(port: int, sock: Path, servers: list, workers: int = 1, mode: str = "http") -> str:
    entries = "".join(f'[[backends.be.servers]]\nname = "{s.name}"\naddress = "{s.address}"\n'
                      for s in servers)
    return f"""
[global]
workers = {workers}
admin_socket = "{sock}"
hard_stop_after = "2s"
[log]
events = "@EVENTS@"
[defaults]
mode = "{mode}"
[frontends.fe]
bind = "127.0.0.1:{port}"
default_backend = "be"
[backends.be]
{entries}
"""


def cli(sock: Path, line: str, timeout: float = 5) -> bytes:
    """One-shot: send a line, read until the server closes."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(line.encode() + b"\n")
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out
            out += d


def get(port: int) -> str:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/")
        return c.getresponse().read().decode()
    finally:
        c.close()


@pytest.fixture
def two():
    a, b = NamedServer("a"), NamedServer("b")
    yield a, b
    a.close()
    b.close()


def test_one_shot_framing_and_answers(farm_factory, two, tmp_path):
    sock = tmp_path / "admin.sock"
    port = free_port()
    farm_factory(config(port, sock, two))
    assert oct(sock.stat().st_mode & 0o777) == "0o660"
    assert cli(sock, "get weight be/b") == b"1 (initial 1)\n\n"
    assert cli(sock, "set weight be/b 3") == b"\n"
    assert cli(sock, "get weight be/b;get weight be/a") == b"3 (initial 1)\n\n1 (initial 1)\n\n"
    assert cli(sock, "get weight be/zz") == b"No such server.\n\n"
    assert cli(sock, "get weight nope/zz") == b"No such backend.\n\n"
    assert cli(sock, "frobnicate").startswith(b"Unknown command, but maybe")
    assert cli(sock, "show backend") == b"# name\nbe\n\n"
    state = cli(sock, "show servers state").decode().splitlines()
    assert state[0] == "1" and state[1].startswith("# be_id be_name srv_id srv_name srv_addr")
    assert state[2].split()[:4] == ["1", "be", "1", "a"]


def test_interactive_prompt_framing(farm_factory, two, tmp_path):
    sock = tmp_path / "admin.sock"
    farm_factory(config(free_port(), sock, two))
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))

        def ask(line: str) -> bytes:
            s.sendall(line.encode() + b"\n")
            out = b""
            while not out.endswith(b"> "):
                d = s.recv(65536)
                assert d, "closed before the prompt"
                out += d
            return out
        assert ask("prompt") == b"\n> "
        assert ask("set timeout cli 30") == b"\n> "
        assert ask("get weight be/a") == b"1 (initial 1)\n\n> "
        assert ask("get weight be/a;get weight be/b") == b"1 (initial 1)\n\n1 (initial 1)\n\n> "
        s.sendall(b"quit\n")
        assert s.recv(100) == b""


def test_disable_enable_drain_and_weight_change_traffic(farm_factory, two, tmp_path):
    a, b = two
    sock = tmp_path / "admin.sock"
    port = free_port()
    farm_factory(config(port, sock, two))
    assert {get(port) for _ in range(6)} == {"a", "b"}
    cli(sock, "disable server be/a")
    assert {get(port) for _ in range(6)} == {"b"}
    cli(sock, "enable server be/a")
    assert {get(port) for _ in range(6)} == {"a", "b"}
    cli(sock, "set server be/b state drain")
    assert {get(port) for _ in range(6)} == {"a"}
    cli(sock, "set server be/b state ready")
    cli(sock, "set weight be/b 3")
    split = collections.Counter(get(port) for _ in range(40))
    assert split == {"a": 10, "b": 30}


def test_admin_changes_survive_a_reload(farm_factory, two, tmp_path):
    sock = tmp_path / "admin.sock"
    port = free_port()
    farm = farm_factory(config(port, sock, two))
    cli(sock, "set server be/a state maint")
    cli(sock, "set weight be/b 7")
    assert cli(sock, "reload", timeout=15).startswith(b"Success=1\n--\n")
    assert {get(port) for _ in range(6)} == {"b"}
    assert cli(sock, "get weight be/b") == b"7 (initial 1)\n\n"
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_done", count=2)
    assert {get(port) for _ in range(6)} == {"b"}
    assert cli(sock, "get weight be/b") == b"7 (initial 1)\n\n"


def test_reload_with_a_broken_config_answers_success_0(farm_factory, two, tmp_path):
    sock = tmp_path / "admin.sock"
    port = free_port()
    farm = farm_factory(config(port, sock, two))
    farm.config_path.write_text(farm.config_path.read_text().replace('mode = "http"', 'mode = "htp"'))
    answer = cli(sock, "reload").decode()
    assert answer.startswith("Success=0\n--\n")
    assert "mode" in answer and "htp" in answer
    assert get(port) in ("a", "b")


def test_shutdown_sessions_server(farm_factory, tmp_path):
    echo = EchoServer()

    class S:
        name = "e"
        address = echo.address
    sock = tmp_path / "admin.sock"
    port = free_port()
    farm_factory(config(port, sock, [S], mode="tcp"))
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"x")
    assert c.recv(1) == b"x"
    cli(sock, "shutdown sessions server be/e")
    time.sleep(0.1)
    c.sendall(b"y")                  # wakes the worker's loop for this session ...
    deadline = time.monotonic() + 3
    got = None
    while time.monotonic() < deadline:
        try:
            got = c.recv(10)
        except ConnectionResetError:
            got = b""
        if got == b"":
            break
    assert got == b""                # ... which the admin command has killed
    c.close()
    echo.close()


def test_farm_ctl_talks_to_the_socket(farm_factory, two, tmp_path):
    sock = tmp_path / "admin.sock"
    farm = farm_factory(config(free_port(), sock, two))

    def ctl(*words):
        return subprocess.run([sys.executable, str(ROOT / "master.py"), "ctl", "-c",
                               str(farm.config_path), *words], capture_output=True, text=True,
                              timeout=20)
    out = ctl("get", "weight", "be/a")
    assert (out.returncode, out.stdout, out.stderr) == (0, "1 (initial 1)\n\n", "")
    # every kind of error answer exits 1, its text on stderr
    for words, text in [(["disable", "server", "be/zz"], "No such server."),
                        (["get", "weight", "nope/a"], "No such backend."),
                        (["show", "servers", "state", "nosuch"], "Can't find backend."),
                        (["set", "weight", "be/a", "999"], "Absolute weight can only be"),
                        (["set", "weight", "be/a"], "Require <weight> or <weight%>."),
                        (["set", "server", "be/a", "state", "up"], "'set server <srv> state' expects"),
                        (["set", "timeout", "cli", "soon"], "Invalid timeout value."),
                        (["shwo", "stat"], "Unknown command, but maybe")]:
        out = ctl(*words)
        assert out.returncode == 1 and out.stderr.startswith(text), (words, out)
        assert out.stdout == "" and "[3]" not in out.stderr
    # several commands: the answers in order, 1 if any failed
    out = ctl("get weight be/a; disable server be/zz; get weight be/b")
    assert out.returncode == 1
    assert out.stdout == "1 (initial 1)\n\n1 (initial 1)\n\n" and out.stderr == "No such server.\n"
    out = ctl("reload")
    assert out.returncode == 0 and out.stdout.startswith("Success=1\n--\n")
    farm.config_path.write_text(farm.config_path.read_text().replace('mode = "http"', 'mode = "htp"'))
    out = ctl("-s", str(sock), "reload")
    assert out.returncode == 1 and out.stderr.startswith("Success=0\n--\n") and "htp" in out.stderr
    out = ctl("-s", str(tmp_path / "nope.sock"), "show", "info")
    assert out.returncode == 2 and "nope.sock" in out.stderr


def test_error_answers_are_marked_for_who_asks(farm_factory, two, tmp_path):
    sock = tmp_path / "admin.sock"
    farm_factory(config(free_port(), sock, two))
    assert cli(sock, "show servers state nosuch") == b"Can't find backend.\n\n"
    assert cli(sock, "set severity-output number;get weight be/zz;get weight be/a") == (
        b"\n[3]: No such server.\n\n1 (initial 1)\n\n")
    assert cli(sock, "set severity-output string;relaod").startswith(
        b"\n[err]: Unknown command, but maybe one of the following ones is a better match:\n"
        b"  reload ")
    assert cli(sock, "set severity-output loud") == (
        b"one of 'none', 'number', 'string' is a required argument\n\n")
    helped = cli(sock, "help show servers").decode().splitlines()
    assert helped[0] == "The following commands are valid at this level:"
    assert helped[1].startswith("  show servers state [<backend>]") and len(helped) == 6


def test_show_info_and_stat_in_their_other_formats(farm_factory, two, tmp_path):
    import json
    sock = tmp_path / "admin.sock"
    farm_factory(config(free_port(), sock, two))
    info = cli(sock, "show info").decode().splitlines()
    assert info[0] == "Name: farm" and any(l.startswith("Pid: ") for l in info)
    typed = cli(sock, "show info typed").decode().splitlines()
    assert typed[0].startswith("0.Name.1:") and typed[0].endswith(":str:farm")
    assert json.loads(cli(sock, "show info json"))[0]["field"]["name"] == "Name"
    rows = json.loads(cli(sock, "show stat json"))
    names = [[f for f in row if f["field"]["name"] == "svname"][0]["value"]["value"] for row in rows]
    assert names == ["FRONTEND", "a", "b", "BACKEND"]
    csv_lines = cli(sock, "show stat").decode().splitlines()
    assert csv_lines[0].startswith("# pxname,svname,qcur,qmax,scur,smax,slim,stot,")
    assert len({line.count(",") for line in csv_lines if line}) == 1


def stat_rows(sock: Path) -> dict:
    """show stat as {(pxname, svname): {column: value}}."""
    lines = cli(sock, "show stat").decode().splitlines()
    head = lines[0][2:].split(",")
    return {(r[0], r[1]): dict(zip(head, r)) for r in (l.split(",") for l in lines[1:] if l)}


def info_map(sock: Path) -> dict:
    return dict(l.split(": ", 1) for l in cli(sock, "show info").decode().splitlines() if ": " in l)


def test_rates_follow_the_load_and_maxima_stay(farm_factory, two, tmp_path):
    import threading
    sock = tmp_path / "admin.sock"
    port = free_port()
    farm_factory(config(port, sock, two, workers=2))
    done = []

    def load():
        # a new connection per request: sessions and requests alike
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 3.0 and n < 20000:
            get(port)
            n += 1
        done.append(n / (time.monotonic() - t0))

    th = threading.Thread(target=load)
    th.start()
    time.sleep(2.3)                       # two rate samples into the load
    during = stat_rows(sock)
    info = info_map(sock)
    th.join(10)
    client_rate = done[0]
    fe = during[("fe", "FRONTEND")]
    for col in ("rate", "req_rate", "conn_rate"):
        assert 0.5 * client_rate <= int(fe[col]) <= 1.5 * client_rate, (col, fe[col], client_rate)
    be = during[("be", "BACKEND")]
    assert 0.5 * client_rate <= int(be["rate"]) <= 1.5 * client_rate
    servers = int(during[("be", "a")]["rate"]) + int(during[("be", "b")]["rate"])
    assert abs(servers - int(be["rate"])) <= 0.2 * int(be["rate"]) + 2
    assert 0.5 * client_rate <= int(info["SessRate"]) <= 1.5 * client_rate
    assert int(info["ConnRate"]) == int(info["SessRate"])
    time.sleep(2.5)                       # the load is over: two idle samples
    after = stat_rows(sock)
    fe2 = after[("fe", "FRONTEND")]
    assert fe2["rate"] == "0" and fe2["req_rate"] == "0"
    assert int(fe2["rate_max"]) >= int(fe["rate"]) and int(fe2["req_rate_max"]) >= int(fe["req_rate"])
    info2 = info_map(sock)
    assert info2["SessRate"] == "0" and int(info2["MaxSessRate"]) >= int(info["SessRate"])


def test_response_time_averages_reach_show_stat(farm_factory, tmp_path):
    from tests.integration.http_backend import HttpBackend
    b = HttpBackend("a")
    try:
        sock = tmp_path / "admin.sock"
        port = free_port()
        farm_factory(config(port, sock, [b]))
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for _ in range(20):
            c.request("GET", "/slow?ms=50")
            assert c.getresponse().read() == b"a"
        c.close()
        time.sleep(2.2)                      # the master samples once a second
        rows = stat_rows(sock)
        for key in (("be", "a"), ("be", "BACKEND")):
            r = rows[key]
            assert 45 <= int(r["rtime"]) <= 150, (key, r["rtime"])
            assert int(r["ttime"]) >= int(r["rtime"]) and int(r["ctime"]) <= 10, r
        assert info_map(sock)["CumReq"] == "20"
    finally:
        b.close()


def test_a_second_farm_on_the_same_config_refuses_to_start(farm_factory, two, tmp_path):
    """The same config started twice: the second master sees the first's
    admin socket answer and exits before binding anything (with
    SO_REUSEPORT it would silently take half of the connections)."""
    port, sock = free_port(), tmp_path / "admin.sock"
    first = farm_factory(config(port, sock, two))
    second = subprocess.run([sys.executable, str(ROOT / "master.py"), "run", "-c", str(first.config_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert "another farm is running" in second.stderr
    assert str(sock) in second.stderr
    assert b"Name: " in cli(sock, "show info")           # the first keeps its admin socket
    assert {get(port) for _ in range(6)} <= {"a", "b"}    # and serves


def test_a_socket_left_by_a_dead_farm_is_no_obstacle(farm_factory, two, tmp_path):
    port, sock = free_port(), tmp_path / "admin.sock"
    first = farm_factory(config(port, sock, two))
    first.proc.kill()                  # the master dies without removing its socket
    first.proc.wait(timeout=10)
    for w in first.workers():
        w.kill()
    assert sock.exists()
    again = farm_factory(config(port, sock, two), start=False).start(wait_ready=False)
    deadline = time.monotonic() + 15
    while True:                        # (the events file holds the first one's farm_ready)
        try:
            assert b"Name: " in cli(sock, "show info")
            break
        except OSError:
            assert again.proc.poll() is None, again.output()
            assert time.monotonic() < deadline, "the new farm's admin socket never answered"
            time.sleep(0.1)
    assert "another farm" not in again.output()
