"""Stick tables with real processes: one table for all workers (a rate
allowed per source is that rate, not that rate times the workers), expiry,
eviction, survival over a reload and a worker crash, the runtime API
(show/clear/set table), and the rate-limit recipes of docs/configuration.md.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.integration.backends import free_port
from tests.integration.http_backend import HttpBackend
from tests.integration.test_admin import cli


def config(port: int, sock: Path, backend, rest: str, workers: int = 2) -> str:
    return f"""
[global]
workers = {workers}
admin_socket = "{sock}"
hard_stop_after = "2s"

[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "httplog"

[defaults]
mode = "http"
[defaults.timeout]
connect = "1s"
client = "10s"
server = "10s"

[frontends.fe]
bind = "127.0.0.1:{port}"
default_backend = "be"

[backends.be]
[[backends.be.servers]]
name = "s1"
address = "{backend.address}"

{rest}
"""


def request(port: int, path: str = "/", headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request on a new connection: (status, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def show(sock: Path, *words: str) -> str:
    return cli(sock, " ".join(("show", "table") + words)).decode()


def entries(text: str) -> dict[str, dict]:
    """`show table NAME` -> key -> {field: value} (use, exp and the data)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = dict(f.split("=", 1) for f in line.split()[1:])
        key = fields.pop("key")
        out[key] = {k: int(v) for k, v in fields.items()}
    return out


def worker_pids(farm) -> list[int]:
    return [p.pid for p in farm.workers()]


RATE_LIMIT = """
[tables.per_ip]
type = "ip"
size = 1000
expire = "30s"
store = ["http_req_rate(10s)", "http_req_cnt"]

[[frontends.fe.http_request]]
action = "track-sc0"
key = "src"
table = "per_ip"

[[frontends.fe.http_request]]
action = "deny"
status = 429
retry_after = "10s"
if = "{ sc_http_req_rate(0) gt 20 }"
"""


def test_rate_limit_is_global_across_two_workers(farm_factory, tmp_path):
    """Recipe: per-IP request rate with 429 and Retry-After. 60 requests on
    60 connections, spread over 2 workers by the kernel: 20 pass (a limit
    per worker would let about 40 through), the others get 429 with a
    Retry-After, and both workers counted into the one entry."""
    backend = HttpBackend("s1")
    port, sock = free_port(), tmp_path / "admin.sock"
    farm = farm_factory(config(port, sock, backend, RATE_LIMIT))
    got = [request(port) for _ in range(60)]
    ok = [s for s, _, _ in got if s == 200]
    limited = [(s, h) for s, h, _ in got if s == 429]
    assert 20 <= len(ok) <= 21, len(ok)          # 21: a 10 s period may roll over mid-burst
    assert len(ok) + len(limited) == 60
    assert all(h.get("retry-after") == "10" for _, h in limited)
    e = entries(show(sock, "per_ip"))["127.0.0.1"]
    assert e["http_req_cnt"] == 60 and e["http_req_rate(10000)"] >= 59
    lines = farm.access_lines()
    assert sum(" 429 " in l for l in lines) == len(limited)


def test_entries_expire_and_a_full_table_evicts_the_oldest(farm_factory, tmp_path):
    """A 3-entry table keyed on a header: the 4th key evicts the one
    updated longest ago; with expire 1s the entries go by themselves
    (the master's sweep), and `show table` never lists an expired one."""
    backend = HttpBackend("s1")
    port, sock = free_port(), tmp_path / "admin.sock"
    farm_factory(config(port, sock, backend, """
[tables.keys]
type = "string"
len = 16
size = 3
expire = "1s"
store = ["http_req_cnt"]

[[frontends.fe.http_request]]
action = "track-sc0"
key = "req.hdr(x-key)"
""", workers=1))
    for k in ("a", "b", "c"):
        assert request(port, headers={"X-Key": k})[0] == 200
        time.sleep(0.05)
    request(port, headers={"X-Key": "a"})          # a is fresh again: b is the oldest
    request(port, headers={"X-Key": "d"})
    got = entries(show(sock, "keys"))
    assert sorted(got) == ["a", "c", "d"] and got["a"]["http_req_cnt"] == 2
    assert "used:3" in show(sock)
    time.sleep(2.2)
    assert entries(show(sock, "keys")) == {}
    assert "used:0" in show(sock)                  # swept, not just hidden


def test_runtime_commands(farm_factory, tmp_path):
    """show table (list, one table, data filters, key), set table (a new
    entry, data of an existing one), clear table (a key, a filter, all),
    HAProxy's error answers, and the Prometheus families."""
    backend = HttpBackend("s1")
    port, sock, stats_port = free_port(), tmp_path / "admin.sock", free_port()
    farm_factory(config(port, sock, backend, """
[tables.per_ip]
type = "ip"
size = 100
expire = "1m"
store = ["gpc0", "http_req_cnt", "conn_cur"]

[tables.names]
type = "string"
size = 10
store = ["gpt0"]

[stats]
bind = "127.0.0.1:@STATS@"

[[frontends.fe.http_request]]
action = "track-sc0"
key = "src"
table = "per_ip"

[[frontends.fe.http_request]]
action = "deny"
if = "{ sc_get_gpc0(0) gt 0 }"
""".replace("@STATS@", str(stats_port)), workers=1))
    request(port)
    listing = show(sock)
    assert re.search(r"^# table: per_ip, type: ip, size:100, used:1, memory:\d+$", listing, re.M)
    assert "# table: names, type: string, size:10, used:0" in listing
    one = show(sock, "per_ip")
    assert re.search(r"^0x[0-9a-f]+: key=127\.0\.0\.1 use=0 exp=\d+ gpc0=0 conn_cur=0 "
                     r"http_req_cnt=1$", one, re.M), one
    assert cli(sock, "set table per_ip key 10.1.2.3 data.http_req_cnt 7 data.gpc0 1") == b"\n"
    assert entries(show(sock, "per_ip", "data.http_req_cnt", "gt", "5")).keys() == {"10.1.2.3"}
    assert entries(show(sock, "per_ip", "key", "127.0.0.1")).keys() == {"127.0.0.1"}
    # set table blocks the client through its gpc0; clear table key unblocks it
    cli(sock, "set table per_ip key 127.0.0.1 data.gpc0 1")
    assert request(port)[0] == 403
    cli(sock, "clear table per_ip key 127.0.0.1")
    assert request(port)[0] == 200
    cli(sock, "set table names key alice data.gpt0 5")
    assert entries(show(sock, "names")) == {"alice": {"use": 0, "exp": 0, "gpt0": 5}}
    cli(sock, "clear table per_ip data.gpc0 eq 1")
    assert entries(show(sock, "per_ip")).keys() == {"127.0.0.1"}
    cli(sock, "clear table names")
    assert entries(show(sock, "names")) == {}
    # HAProxy's words for mistakes
    assert cli(sock, "show table nope") == b"No such table\n\n"
    assert cli(sock, "set table names key x data.gpc0 1") == b"Data type not stored in this table\n\n"
    assert cli(sock, "set table names key x data.gpt0 x") == b"Require a valid integer value to store\n\n"
    assert cli(sock, "show table per_ip data.foo gt 1") == b"Filter entry #1: Unknown data type\n\n"
    assert cli(sock, "show table per_ip key") == b"Key value expected\n\n"
    assert cli(sock, "set table per_ip key not-an-ip data.gpc0 1").startswith(b"invalid key")
    # Prometheus: size and entries per table
    metrics = request(stats_port, "/metrics")[2].decode()
    assert 'haproxy_sticktable_size{name="per_ip",type="ip"} 100' in metrics
    assert 'haproxy_sticktable_used{name="per_ip",type="ip"} 1' in metrics
    assert 'haproxy_sticktable_used{name="names",type="string"} 0' in metrics


def test_tables_survive_a_reload_and_a_worker_crash(farm_factory, tmp_path):
    """An unchanged table keeps its entries over a reload (same mapping);
    a changed one gets them by key; a worker killed while its connections
    held entries gives their conn_cur back."""
    backend = HttpBackend("s1")
    port, sock = free_port(), tmp_path / "admin.sock"
    rest = """
[tables.per_ip]
type = "ip"
size = 100
store = ["gpc0", "conn_cur"]

[tables.other]
type = "integer"
size = 10
store = ["gpt0"]

[[frontends.fe.tcp_request]]
on = "connection"
action = "track-sc0"
key = "src"
table = "per_ip"
"""
    farm = farm_factory(config(port, sock, backend, rest, workers=1))
    cli(sock, "set table per_ip key 10.0.0.1 data.gpc0 3")
    cli(sock, "set table other key 42 data.gpt0 9")
    (farm.config_path).write_text(farm.config_path.read_text().replace(
        'size = 10\nstore = ["gpt0"]', 'size = 20\nstore = ["gpt0", "gpc0"]'))
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_done")
    assert entries(show(sock, "per_ip"))["10.0.0.1"]["gpc0"] == 3
    assert entries(show(sock, "other"))["42"] == {"use": 0, "exp": 0, "gpt0": 9, "gpc0": 0}
    assert "size:20" in show(sock, "other")
    # a connection held open tracks 127.0.0.1; its worker dies
    s = socket.create_connection(("127.0.0.1", port))
    deadline = time.monotonic() + 5
    while entries(show(sock, "per_ip")).get("127.0.0.1", {}).get("conn_cur") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for pid in worker_pids(farm):
        os.kill(pid, signal.SIGKILL)
    farm.wait_event("worker_died")
    s.close()
    deadline = time.monotonic() + 5
    while entries(show(sock, "per_ip"))["127.0.0.1"]["conn_cur"] != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert entries(show(sock, "per_ip"))["10.0.0.1"]["gpc0"] == 3
    assert entries(show(sock, "per_ip"))["127.0.0.1"]["use"] == 0


def test_recipe_concurrent_connection_cap(farm_factory, tmp_path):
    """Recipe: at most 3 connections at once per source, over both
    workers; the 4th is closed at once and counted as denied; once one
    closes, a new one gets in."""
    backend = HttpBackend("s1")
    port, sock = free_port(), tmp_path / "admin.sock"
    farm_factory(config(port, sock, backend, """
[tables.conns]
type = "ip"
size = 100
expire = "1m"
store = ["conn_cur", "conn_cnt"]

[[frontends.fe.tcp_request]]
on = "connection"
action = "track-sc0"
key = "src"
table = "conns"

[[frontends.fe.tcp_request]]
on = "connection"
action = "reject"
if = "{ sc0_conn_cur gt 3 }"
"""))
    held = []
    for _ in range(3):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/")
        assert c.getresponse().read() is not None
        held.append(c)
    assert entries(show(sock, "conns"))["127.0.0.1"]["conn_cur"] == 3
    for _ in range(4):                   # whichever worker takes it
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
            request(port)
    held.pop().close()
    deadline = time.monotonic() + 5
    while entries(show(sock, "conns"))["127.0.0.1"]["conn_cur"] != 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert request(port)[0] == 200
    for c in held:
        c.close()

    def denied() -> int:
        stat = cli(sock, "show stat").decode()
        fe_line = next(l for l in stat.splitlines() if l.startswith("fe,FRONTEND,"))
        header = stat.splitlines()[0].lstrip("# ").split(",")
        return int(fe_line.split(",")[header.index("dcon")])
    deadline = time.monotonic() + 3      # workers flush their counters every 0.25 s
    while denied() != 4:
        assert time.monotonic() < deadline
        time.sleep(0.1)


ABUSE = """
[tables.abuse]
type = "ip"
size = 1000
expire = "2s"                       # 10m in production
store = ["gpc0", "http_err_rate(10s)"]

[[frontends.fe.http_request]]
action = "track-sc0"
key = "src"
table = "abuse"

[[frontends.fe.http_request]]
action = "deny"
status = 403
if = "{ src_get_gpc0(abuse) gt 0 }"

[[frontends.fe.http_request]]
action = "sc-inc-gpc0"
sc = 0
if = "{ sc_http_err_rate(0) gt 5 }"
"""


def test_recipe_abuse_flag_blocks_until_expiry(farm_factory, tmp_path):
    """Recipe: a client that gets more than 5 errors (404) in 10 s is
    flagged (gpc0) and refused until its entry expires after a quiet
    spell of `expire`."""
    backend = HttpBackend("s1")
    port, sock = free_port(), tmp_path / "admin.sock"
    farm_factory(config(port, sock, backend, ABUSE))
    for _ in range(6):
        assert request(port, "/status/404")[0] == 404
    assert request(port)[0] == 200           # this one sets the flag
    assert entries(show(sock, "abuse"))["127.0.0.1"]["gpc0"] == 1
    assert request(port)[0] == 403
    assert request(port, "/other")[0] == 403
    time.sleep(2.6)
    assert request(port)[0] == 200
    assert entries(show(sock, "abuse"))["127.0.0.1"]["gpc0"] == 0


def test_recipe_per_api_key_limit(farm_factory, tmp_path):
    """Recipe: 5 requests per 10 s per API key (a string table keyed on a
    header, read through table_http_req_rate); keys are counted apart,
    and a request without a key is not tracked."""
    backend = HttpBackend("s1")
    port, sock = free_port(), tmp_path / "admin.sock"
    farm_factory(config(port, sock, backend, """
[tables.api]
type = "string"
len = 32
size = 1000
expire = "1m"
store = ["http_req_rate(10s)"]

[[frontends.fe.http_request]]
action = "track-sc1"
key = "req.hdr(x-api-key)"
table = "api"

[[frontends.fe.http_request]]
action = "deny"
status = 429
if = "{ req.hdr(x-api-key),table_http_req_rate(api) gt 5 }"
"""))
    a = [request(port, headers={"X-Api-Key": "key-a"})[0] for _ in range(8)]
    assert a.count(200) in (5, 6) and a[:5] == [200] * 5 and a[-1] == 429
    assert request(port, headers={"X-Api-Key": "key-b"})[0] == 200
    assert [request(port)[0] for _ in range(8)] == [200] * 8
    got = entries(show(sock, "api"))
    assert set(got) == {"key-a", "key-b"}


def test_reject_and_tarpit(farm_factory, tmp_path):
    backend = HttpBackend("s1")
    port, sock = free_port(), tmp_path / "admin.sock"
    farm_factory(config(port, sock, backend, """
[[frontends.fe.http_request]]
action = "reject"
if = "{ path_beg /reject }"

[[frontends.fe.http_request]]
action = "tarpit"
timeout = "300ms"
if = "{ path_beg /tarpit }"
""", workers=1))
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        request(port, "/reject")
    t0 = time.monotonic()
    assert request(port, "/tarpit")[0] == 500
    assert time.monotonic() - t0 >= 0.3
    assert request(port)[0] == 200


def test_stick_on_persistence_survives_a_reload(farm_factory, tmp_path):
    """stick_on = "src": every request of a client goes to the server its
    first one got (round robin would alternate), the table says which
    (server_id), a reload keeps it; when that server goes into maintenance
    the client moves and the table follows."""
    s1, s2 = HttpBackend("s1"), HttpBackend("s2")
    port, sock = free_port(), tmp_path / "admin.sock"
    text = config(port, sock, s1, """
[[backends.be.servers]]
name = "s2"
address = "@S2@"

[tables.persist]
type = "ip"
size = 100
expire = "30m"
store = ["server_id"]
""", workers=2).replace('default_backend = "be"\n', 'default_backend = "be"\n', 1)
    text = text.replace("[backends.be]\n", '[backends.be]\nstick_on = "src"\nstick_table = "persist"\n')
    farm = farm_factory(text.replace("@S2@", s2.address))
    first = request(port, "/name")[2]
    assert [request(port, "/name")[2] for _ in range(10)] == [first] * 10
    sid = {b"s1": 1, b"s2": 2}[first]
    assert entries(show(sock, "persist"))["127.0.0.1"]["server_id"] == sid
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_done")
    assert [request(port, "/name")[2] for _ in range(6)] == [first] * 6
    cli(sock, f"disable server be/{first.decode()}")
    other = b"s2" if first == b"s1" else b"s1"
    deadline = time.monotonic() + 5
    while request(port, "/name")[2] != other:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert entries(show(sock, "persist"))["127.0.0.1"]["server_id"] == 3 - sid


def test_tcp_mode_tracks_connections_and_bytes(farm_factory, tmp_path):
    """tcp_request rules in a TCP frontend: a connection cap per source
    (connection rules run before content rules, whatever the file order),
    and the bytes of a closed session counted on its entry."""
    from tests.integration.backends import EchoServer
    echo = EchoServer()
    port, sock = free_port(), tmp_path / "admin.sock"
    text = config(port, sock, echo, """
[tables.tcp]
type = "ip"
size = 10
store = ["conn_cur", "conn_cnt", "bytes_in_cnt", "bytes_out_cnt"]

[[frontends.fe.tcp_request]]
on = "content"
action = "reject"
if = "{ sc2_conn_cur gt 1 }"

[[frontends.fe.tcp_request]]
on = "connection"                         # connection rules run before content ones
action = "track-sc2"
key = "src"
""", workers=1).replace('mode = "http"', 'mode = "tcp"')
    farm_factory(text)
    a = socket.create_connection(("127.0.0.1", port), timeout=5)
    a.sendall(b"hello")
    assert a.recv(5) == b"hello"
    b = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert b.recv(5) == b""                    # the second one at once is refused
    b.close()
    a.close()
    deadline = time.monotonic() + 5
    while entries(show(sock, "tcp"))["127.0.0.1"]["conn_cur"] != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    e = entries(show(sock, "tcp"))["127.0.0.1"]
    assert (e["conn_cnt"], e["bytes_in_cnt"], e["bytes_out_cnt"]) == (2, 5, 5)


def test_a_drain_cut_short_gives_its_entries_back(farm_factory, tmp_path):
    """A reload while a tracked connection waits on a slow server: the old
    worker stops at hard_stop_after with the connection still open, and
    its reference and conn_cur are given back (by its own close, or by the
    master when it dies first); the table, kept over the reload, goes on
    counting for the new workers."""
    backend = HttpBackend("s1")
    port, sock = free_port(), tmp_path / "admin.sock"
    farm = farm_factory(config(port, sock, backend, """
[tables.conns]
type = "ip"
size = 10
store = ["conn_cur", "conn_cnt"]

[[frontends.fe.tcp_request]]
on = "connection"
action = "track-sc0"
key = "src"
""", workers=1))
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /slow?ms=8000 HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 5
    while entries(show(sock, "conns")).get("127.0.0.1", {}).get("conn_cur") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_done")
    farm.wait_event("generation_drained", timeout=10)      # hard_stop_after = 2s
    e = entries(show(sock, "conns"))["127.0.0.1"]
    assert (e["conn_cur"], e["use"]) == (0, 0)
    assert request(port)[0] == 200
    assert entries(show(sock, "conns"))["127.0.0.1"]["conn_cnt"] == 2
    s.close()


def test_store_response_keeps_a_session_on_the_server_that_made_it(farm_factory, tmp_path):
    """stick store-response res.cook(SID) + stick match req.cook(SID): the
    session id a server hands out (Set-Cookie) is stored with that server,
    and every later request carrying it goes there (round robin would
    alternate), from new connections and both workers; the table shows
    each session's server; an unknown id is balanced as usual."""
    s1, s2 = HttpBackend("s1"), HttpBackend("s2")
    port, sock = free_port(), tmp_path / "admin.sock"
    text = config(port, sock, s1, """
[[backends.be.servers]]
name = "s2"
address = "@S2@"

[tables.sessions]
type = "string"
len = 32
size = 100
expire = "30m"
store = ["server_id"]
""", workers=2)
    text = text.replace("[backends.be]\n", """[backends.be]
balance = "roundrobin"
stick_store_response = "res.cook(SID)"
stick_match = "req.cook(SID)"
""")
    farm_factory(text.replace("@S2@", s2.address))
    sessions: dict[str, str] = {}           # session id -> the server that made it
    deadline = time.monotonic() + 10
    while set(sessions.values()) != {"s1", "s2"}:
        assert time.monotonic() < deadline
        status, headers, body = request(port, "/session")
        assert status == 200
        sid = headers["x-session"]
        assert headers["set-cookie"].startswith(f"SID={sid};")
        sessions[sid] = body.decode()
    for sid, server in sessions.items():
        got = [request(port, "/name", {"Cookie": f"lang=en; SID={sid}"})[2].decode()
               for _ in range(8)]
        assert got == [server] * 8, (sid, server, got)
    table = entries(show(sock, "sessions"))
    assert {k: v["server_id"] for k, v in table.items()} == \
        {sid: {"s1": 1, "s2": 2}[server] for sid, server in sessions.items()}
    unknown = {request(port, "/name", {"Cookie": "SID=0000"})[2] for _ in range(8)}
    assert unknown == {b"s1", b"s2"}


TCP_STICK = """
[global]
workers = 2
admin_socket = "{sock}"
hard_stop_after = "2s"

[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "tcplog"

[defaults]
mode = "tcp"
[defaults.timeout]
connect = "1s"
client = "10s"
server = "10s"

[frontends.fe]
bind = "127.0.0.1:{port}"
default_backend = "be"

[tables.persist]
type = "ip"
size = 100
expire = "30m"
store = ["server_id"]

[backends.be]
balance = "roundrobin"
stick_on = "src"
[backends.be.check]
type = "tcp"
interval = "200ms"
rise = 1
fall = 1
[[backends.be.servers]]
name = "a"
address = "{a}"
id = 10
[[backends.be.servers]]
name = "b"
address = "{b}"
id = 20
"""


def tag(port: int) -> str:
    """The name of the TagServer a new connection reaches ("" if none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        out = b""
        while True:
            data = s.recv(100)
            if not data:
                return out.decode()
            out += data


def test_tcp_stick_on_src(farm_factory, tmp_path):
    """HAProxy's `stick on src` in mode tcp: every connection of a client
    reaches the server its first one did (round robin would alternate);
    the table names it by its id; a reload keeps it; when that server goes
    DOWN, the client's connections go to the other one and the entry
    follows it."""
    from tests.integration.backends import TagServer
    servers = {"a": TagServer("a"), "b": TagServer("b")}
    port, sock = free_port(), tmp_path / "admin.sock"
    farm = farm_factory(TCP_STICK.format(sock=sock, port=port, a=servers["a"].address,
                                         b=servers["b"].address))
    first = tag(port)
    assert first in servers
    assert [tag(port) for _ in range(10)] == [first] * 10
    ids = {"a": 10, "b": 20}
    assert entries(show(sock, "persist"))["127.0.0.1"]["server_id"] == ids[first]
    farm.signal(signal.SIGHUP)
    farm.wait_event("reload_done")
    assert [tag(port) for _ in range(6)] == [first] * 6
    other = "b" if first == "a" else "a"
    servers[first].close()                    # its check fails: DOWN
    farm.wait_event("server_down", timeout=5, server=first)
    assert [tag(port) for _ in range(6)] == [other] * 6
    assert entries(show(sock, "persist"))["127.0.0.1"]["server_id"] == ids[other]
    servers[other].close()
