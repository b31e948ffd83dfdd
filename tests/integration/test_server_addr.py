"""Server addresses with the real master: init_addr none (resolution
maintenance), `set server B/S addr IP [port N]` reaching the workers and
the health checks, and a name that does not resolve at start or reload.

Unresolvable names are under the reserved TLD "invalid" (RFC 6761), which
farm refuses without a DNS query; "localhost" comes from /etc/hosts."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.backends import TagServer, free_port
from tests.integration.simple_http import NamedServer

ROOT = Path(__file__).resolve().parents[2]


def config(port: int, sock: Path, servers: str, mode: str = "http", check: str = "") -> str:
    return f"""
[global]
workers = 2
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
{check}
{servers}
"""


HTTP_CHECK = '[backends.be.check]\ntype = "http"\npath = "/healthz"\ninterval = "100ms"\n'


def server(name: str, address: str, extra: str = "") -> str:
    return f'[[backends.be.servers]]\nname = "{name}"\naddress = "{address}"\n{extra}'


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


def get(port: int) -> tuple[int, str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def tcp_get(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        out = b""
        while d := c.recv(100):
            out += d
        return out.decode()


def stat_row(sock: Path, name: str) -> dict:
    lines = cli(sock, "show stat").splitlines()
    head = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(head, line.split(",")))
        if row.get("svname") == name:
            return row
    raise AssertionError(f"no row {name}")


def servers_state(sock: Path) -> list[list[str]]:
    return [line.split() for line in cli(sock, "show servers state").splitlines()[2:] if line]


def wait_for(pred, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def named():
    made = []

    def make(name: str) -> NamedServer:
        made.append(NamedServer(name))
        return made[-1]
    yield make
    for s in made:
        s.close()


def test_init_addr_none_starts_in_resolution_maintenance_until_an_address_is_set(
        farm_factory, named, tmp_path):
    a = named("a")
    sock, port = tmp_path / "admin.sock", free_port()
    farm = farm_factory(config(port, sock, server("s1", f"app1.internal.invalid:{a.port}",
                                                  'init_addr = "libc,none"\n'), check=HTTP_CHECK))
    assert "Server be/s1 has no address (cannot resolve 'app1.internal.invalid'" in \
        farm.wait_event("server_address")["message"]
    row = stat_row(sock, "s1")
    assert (row["status"], row["addr"], row["check_status"]) == ("MAINT (resolution)", "", "")
    (state,) = servers_state(sock)
    # srv_addr, srv_op_state, srv_admin_state (RMAINT 0x20), srv_check_state (paused), fqdn, port
    assert (state[4], state[5], state[6], state[13], state[17], state[18]) == (
        "-", "0", "32", "14", "app1.internal.invalid", str(a.port))
    assert [get(port)[0] for _ in range(4)] == [503] * 4
    time.sleep(0.3)
    assert a.requests == 0 and a.health_checks == 0       # no traffic, check paused

    assert cli(sock, f"set server be/s1 addr 127.0.0.1 port {a.port}") == (
        "IP changed from '-' to '127.0.0.1', no need to change the port by 'stats socket command'\n\n")
    assert cli(sock, "set server be/s1 state ready") == "\n"
    assert [get(port) for _ in range(6)] == [(200, "a")] * 6   # both workers
    wait_for(lambda: a.health_checks > 0)                     # the check follows the address
    row = stat_row(sock, "s1")
    assert row["status"].startswith("UP") and row["addr"] == f"127.0.0.1:{a.port}"
    (state,) = servers_state(sock)
    assert (state[4], state[5], state[6], state[13]) == ("127.0.0.1", "2", "0", "6")


@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_set_server_addr_moves_a_resolvable_server(farm_factory, named, tmp_path, mode):
    """A name resolved at start (localhost) moved to another port at run
    time: new sessions of every worker go there at once (idle pooled
    connections to the old address are closed), the health check follows,
    and the address survives a reload of an unchanged config."""
    if mode == "http":
        a, b = named("a"), named("b")
        fetch = lambda port: get(port)[1]          # noqa: E731
        # "always": idle server connections are reused by any request, so a
        # pooled connection to the old address would be picked if kept
        check = 'http_reuse = "always"\n' + HTTP_CHECK
    else:
        a, b = TagServer("a"), TagServer("b")
        fetch = tcp_get
        check = ""
    sock, port = tmp_path / "admin.sock", free_port()
    farm = farm_factory(config(port, sock, server("s1", f"localhost:{a.port}"), mode=mode, check=check))
    assert {fetch(port) for _ in range(6)} == {"a"}
    assert stat_row(sock, "s1")["addr"] == f"127.0.0.1:{a.port}"
    assert cli(sock, f"set server be/s1 addr 127.0.0.1 port {b.port}") == (
        f"no need to change the addr, port changed from '{a.port}' to '{b.port}'"
        " by 'stats socket command'\n\n")
    assert [fetch(port) for _ in range(8)] == ["b"] * 8
    assert stat_row(sock, "s1")["addr"] == f"127.0.0.1:{b.port}"
    if mode == "http":
        seen = b.health_checks
        wait_for(lambda: b.health_checks > seen)
    assert cli(sock, "reload").startswith("Success=1")
    farm.wait_event("reload_done")
    assert [fetch(port) for _ in range(4)] == ["b"] * 4
    assert stat_row(sock, "s1")["addr"] == f"127.0.0.1:{b.port}"
    if mode == "tcp":
        a.close()
        b.close()


def test_set_server_addr_answers_in_haproxys_words(farm_factory, named, tmp_path):
    a = named("a")
    sock = tmp_path / "admin.sock"
    farm_factory(config(free_port(), sock, server("s1", a.address)))
    p = a.port
    answers = {
        "set server be/s1 addr 127.0.0.1": "no need to change the addr by 'stats socket command'\n",
        f"set server be/s1 addr 127.0.0.1 port {p}":
            "no need to change the addr, no need to change the port by 'stats socket command'\n",
        "set server be/s1 addr 127.0.0.2":
            "IP changed from '127.0.0.1' to '127.0.0.2' by 'stats socket command'\n",
        f"set server be/s1 addr ::1 port {p + 1}":
            f"IP changed from '127.0.0.2' to '::1', port changed from '{p}' to '{p + 1}'"
            " by 'stats socket command'\n",
        "set server be/s1 addr localhost": "Invalid addr 'localhost' by 'stats socket command'\n",
        "set server be/s1 addr 1.2.3": "Invalid addr '1.2.3' by 'stats socket command'\n",
        "set server be/s1 addr 127.0.0.1 port x":
            "problem converting port 'x' to an int by 'stats socket command'\n",
        "set server be/s1 addr 127.0.0.1 port 70000":
            "port '70000' is out of range 1..65535 by 'stats socket command'\n",
        "set server be/s1 addr": "set server <b>/<s> addr requires an address and optionally a port.\n",
        "set server be/s1 addr 127.0.0.1 foo 3":
            "set server <b>/<s> addr requires an address and optionally a port.\n",
        "set server be/nosuch addr 127.0.0.1": "No such server.\n",
        "set server nosuch/s1 addr 127.0.0.1": "No such backend.\n",
    }
    for line, answer in answers.items():
        assert cli(sock, line) == answer + "\n", line
    assert stat_row(sock, "s1")["addr"] == f"[::1]:{p + 1}"


def test_a_name_that_does_not_resolve_stops_farm_run_naming_the_server(farm_factory, tmp_path):
    farm = farm_factory(config(free_port(), tmp_path / "admin.sock",
                               server("s1", "app1.internal.invalid:8080")), start=False)
    farm.start(wait_ready=False)
    assert farm.proc.wait(15) == 1
    out = farm.output()
    assert (f"{farm.config_path}:17: backends.be.servers[0].address: cannot resolve "
            "'app1.internal.invalid' (Name or service not known)") in out
    assert "Traceback" not in out and "gaierror" not in out


def test_a_reload_to_a_name_that_does_not_resolve_is_refused(farm_factory, named, tmp_path):
    a = named("a")
    sock, port = tmp_path / "admin.sock", free_port()
    farm = farm_factory(config(port, sock, server("s1", a.address)))
    farm.config_path.write_text(farm.config_path.read_text().replace(
        a.address, "app1.internal.invalid:80"))
    answer = cli(sock, "reload")
    assert answer.startswith("Success=0\n--\n")
    assert "backends.be.servers[0].address: cannot resolve 'app1.internal.invalid'" in answer
    assert get(port) == (200, "a")


def test_farm_check_refuses_the_unresolvable_name(tmp_path):
    cfg = tmp_path / "farm.toml"
    cfg.write_text(config(free_port(), tmp_path / "admin.sock", server("s1", "app1.internal.invalid:80")))
    r = subprocess.run([sys.executable, str(ROOT / "master.py"), "check", "-c", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0].startswith(
        f"{cfg}:17: backends.be.servers[0].address: cannot resolve 'app1.internal.invalid'")


def test_an_address_set_at_run_time_survives_a_restart_with_the_state_file(
        farm_factory, named, tmp_path):
    """Like HAProxy's server-state-file with init-addr last: the address is
    restored while the configured address is the same."""
    a, b = named("a"), named("b")
    sock, port = tmp_path / "admin.sock", free_port()
    text = config(port, sock, server("s1", a.address)).replace(
        'hard_stop_after = "2s"', f'hard_stop_after = "2s"\nstate_file = "{tmp_path / "state.json"}"')
    farm = farm_factory(text)
    cli(sock, f"set server be/s1 addr 127.0.0.1 port {b.port}")
    assert get(port) == (200, "b")
    farm.stop()
    again = farm_factory(text, start=False).start(wait_ready=False)
    again.wait_event("farm_ready", count=2)      # the same events file: the second start
    assert get(port) == (200, "b")
    assert stat_row(sock, "s1")["addr"] == b.address
