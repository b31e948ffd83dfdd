"""Stick-table replication with real processes on 127.0.0.1: two farm
nodes, farm and HAProxy 2.6 (Debian's haproxy speaking its own peers
protocol), a node started late getting the entries (resync), persistence
following a client to the other node, and a peer sending garbage.

Clients come from distinct loopback addresses (127.0.0.4, ...) so that
each is its own stick-table key.
"""

from __future__ import annotations

import http.client
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.integration.backends import free_port
from tests.integration.conftest import Farm
from tests.integration.haproxy_peer import Haproxy, haproxy_binary
from tests.integration.haproxy_peer import cli as hcli
from tests.integration.http_backend import HttpBackend
from tests.integration.test_admin import cli


def entries(text: str) -> dict[str, dict]:
    """`show table NAME` (farm's or HAProxy's) -> key -> {field: value}
    (ints, but HAProxy's server_key stays text)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = dict(f.split("=", 1) for f in line.split()[1:])
        key = fields.pop("key")
        out[key] = {k: int(v) if v.lstrip("-").isdigit() else v for k, v in fields.items()}
    return out


def node_config(name: str, port: int, sock: Path, s1, s2, nodes: dict[str, int]) -> str:
    """A farm node: track-sc0 src in per_ip (http_req_rate, gpc0 raised by
    /flag), persistence on src in persist; nodes: name -> peer port (one
    worker: round robin then starts at s1 on a fresh node, which is what a
    node without the replicated persistence would do.)"""
    peers = "".join(f'\n[[peers.nodes]]\nname = "{n}"\naddress = "127.0.0.1:{p}"\n'
                    for n, p in nodes.items())
    return f"""
[global]
workers = 1
admin_socket = "{sock}"
hard_stop_after = "2s"

[log]
events = "@EVENTS@"
access = "@ACCESS@"

[defaults]
mode = "http"
[defaults.timeout]
connect = "1s"
client = "10s"
server = "10s"

[frontends.www]
bind = "127.0.0.1:{port}"
default_backend = "app"

[[frontends.www.http_request]]
action = "track-sc0"
key = "src"
table = "per_ip"

[[frontends.www.http_request]]
action = "sc-inc-gpc0"
if = "{{ path /flag }}"

[backends.app]
stick_on = "src"
stick_table = "persist"
[[backends.app.servers]]
name = "s1"
address = "{s1.address}"
[[backends.app.servers]]
name = "s2"
address = "{s2.address}"

[tables.per_ip]
type = "ip"
size = 1000
expire = "10m"
store = ["http_req_rate(10s)", "http_req_cnt", "gpc0"]
peers = true

[tables.persist]
type = "ip"
size = 1000
expire = "30m"
store = ["server_id"]
peers = true

[peers]
local = "{name}"
{peers}
"""


def get(port: int, path: str, client: str) -> bytes:
    """One request from source address client: the body (a server's name for /name)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(client, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        assert r.status == 200, r.status
        return r.read()
    finally:
        c.close()


def wait_for(fn, timeout: float = 5.0, what: str = ""):
    """fn() until it returns something true: that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def table_of(sock: Path, name: str) -> dict:
    return entries(cli(sock, f"show table {name}").decode())


@pytest.fixture
def nodes(tmp_path):
    made: list = []

    def make(name: str, config: str) -> Farm:
        d = tmp_path / name
        d.mkdir()
        f = Farm(d, config)
        made.append(f)
        return f.start()
    yield make
    for f in made:
        f.stop()


def test_two_farm_nodes_resync_push_and_persistence(nodes, tmp_path):
    """A serves clients first; B, started after, gets A's entries (resync),
    then A's new counts as they happen; clients stuck to a server on A are
    routed to that server by B, in the order that round robin alone would
    get wrong; B's counts come back to A."""
    s1, s2 = HttpBackend("s1"), HttpBackend("s2")
    pa, pb, qa, qb = free_port(), free_port(), free_port(), free_port()
    peers = {"a": qa, "b": qb}
    sa, sb = tmp_path / "a.sock", tmp_path / "b.sock"
    a = nodes("a", node_config("a", pa, sa, s1, s2, peers))
    stuck = {c: get(pa, "/name", c) for c in ("127.0.0.4", "127.0.0.5")}
    assert sorted(stuck.values()) == [b"s1", b"s2"]          # one client on each server
    for _ in range(3):
        get(pa, "/flag", "127.0.0.4")
    assert table_of(sa, "per_ip")["127.0.0.4"]["gpc0"] == 3

    b = nodes("b", node_config("b", pb, sb, s1, s2, peers))
    b.wait_event("peer_session_open", peer="a")
    got = wait_for(lambda: (lambda t: t if t.get("127.0.0.4", {}).get("gpc0") == 3 else None)(
        table_of(sb, "per_ip")), what="A's entries on B")
    # (a rate may read one less when the requests straddle a period: the
    # previous period counts in part)
    assert got["127.0.0.4"]["http_req_cnt"] == 4 and got["127.0.0.4"]["http_req_rate(10000)"] in (3, 4)
    persist = table_of(sb, "persist")
    assert {k: v["server_id"] for k, v in persist.items()} == \
        {c: int(s[1:]) for c, s in ((c, n.decode()) for c, n in stuck.items())}
    # B routes each client to its server (the second client first: round
    # robin would give it s1)
    for c in ("127.0.0.5", "127.0.0.4"):
        assert get(pb, "/name", c) == stuck[c]
    # live pushes, both ways
    for _ in range(5):
        get(pa, "/name", "127.0.0.6")
    wait_for(lambda: table_of(sb, "per_ip").get("127.0.0.6", {}).get("http_req_cnt") == 5,
             timeout=3, what="A's new entry on B")
    assert table_of(sb, "per_ip")["127.0.0.6"]["http_req_rate(10000)"] in (4, 5)
    get(pb, "/flag", "127.0.0.6")
    wait_for(lambda: table_of(sa, "per_ip").get("127.0.0.6", {}).get("gpc0") == 1,
             timeout=3, what="B's count on A")
    # (a session may be replaced when both nodes call each other at once,
    # never closed for an error)
    assert not [e for e in a.events() + b.events() if e.get("event") == "peer_session_closed"
                and "error" in e["reason"]]
    shown = wait_for(lambda: (lambda t: t if "status=ESTA" in t else None)(
        cli(sa, "show peers").decode()), timeout=3, what="show peers")
    line = next(l for l in shown.splitlines() if l.startswith("b "))
    assert f"addr=127.0.0.1:{qb} status=ESTA" in line, shown
    assert int(line.split(" sent=")[1].split()[0]) >= 3, shown
    assert shown.startswith(f"# local=a listen=127.0.0.1:{qa} listening=1"), shown
    # a reload that changes neither [peers] nor a replicated table keeps
    # the peers process and its sessions
    opened = len([e for e in b.events() if e.get("event") == "peer_session_open"])
    a.signal(signal.SIGHUP)
    a.wait_event("reload_done")
    get(pa, "/flag", "127.0.0.6")
    wait_for(lambda: table_of(sb, "per_ip").get("127.0.0.6", {}).get("gpc0") == 2,
             timeout=3, what="a push after A's reload")
    assert len([e for e in a.events() if e.get("event") == "peers_started"]) == 1
    assert len([e for e in b.events() if e.get("event") == "peer_session_open"]) == opened


HAPROXY_CFG = """
global
    stats socket @SOCK@ level admin
    localpeer hap

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

peers mesh
    peer hap 127.0.0.1:{hap_peer}
    peer farm 127.0.0.1:{farm_peer}

frontend www
    bind 127.0.0.1:{hap_port}
    http-request track-sc0 src table per_ip
    http-request sc-inc-gpc0(0) if {{ path /flag }}
    default_backend persist

backend per_ip
    stick-table type ip size 1000 expire 10m store http_req_rate(10s),http_req_cnt,gpc0 peers mesh

backend persist
    stick-table type ip size 1000 expire 30m peers mesh
    stick on src
    # listed in the other order than on farm: server ids differ (s2 is 1
    # here, 2 on farm), server names (HAProxy's server_key) agree
    server s2 {s2}
    server s1 {s1}
"""


@pytest.fixture
def haproxy():
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    started: list = []

    def make(tmp: Path, config: str) -> Haproxy:
        h = Haproxy(binary, tmp, config)
        started.append(h)
        return h
    yield make
    for h in started:
        h.stop()


def test_farm_and_haproxy_replicate_both_ways(nodes, haproxy, tmp_path):
    """farm's entries reach HAProxy (its resync when it starts, then live
    pushes), HAProxy's reach farm: a rate table and a stick-on-src table;
    a client stuck on one side is routed to the same server by the other."""
    s1, s2 = HttpBackend("s1"), HttpBackend("s2")
    pf, ph, qf, qh = free_port(), free_port(), free_port(), free_port()
    sock = tmp_path / "farm.sock"
    text = node_config("farm", pf, sock, s1, s2, {"farm": qf, "hap": qh})
    # HAProxy names a backend's table after the backend: same names here
    farm = nodes("farm", text)
    stuck = {c: get(pf, "/name", c) for c in ("127.0.0.4", "127.0.0.5")}
    for _ in range(2):
        get(pf, "/flag", "127.0.0.4")

    hdir = tmp_path / "hap"
    hdir.mkdir()
    hap = haproxy(hdir, HAPROXY_CFG.format(hap_peer=qh, farm_peer=qf, hap_port=ph,
                                           s1=s1.address, s2=s2.address))

    def hap_table(name):
        return entries(hcli(hap.sock, f"show table {name}"))

    got = wait_for(lambda: (lambda t: t if t.get("127.0.0.4", {}).get("gpc0") == 2 else None)(
        hap_table("per_ip")), what="farm's entries in HAProxy")
    assert got["127.0.0.4"]["http_req_cnt"] == 3
    assert got["127.0.0.4"]["http_req_rate(10000)"] in (2, 3)
    persisted = hap_table("persist")
    for c, name in stuck.items():
        assert persisted[c]["server_key"] == name.decode()
    for c in ("127.0.0.5", "127.0.0.4"):                    # HAProxy follows farm's persistence
        assert get(ph, "/name", c) == stuck[c]
    # live push farm -> HAProxy
    get(pf, "/flag", "127.0.0.5")
    wait_for(lambda: hap_table("per_ip").get("127.0.0.5", {}).get("gpc0") == 1, timeout=3,
             what="a live update in HAProxy")
    # HAProxy -> farm: counts and a client HAProxy stuck to a server
    hap_stuck = {c: get(ph, "/name", c) for c in ("127.0.0.7", "127.0.0.8")}
    for _ in range(3):
        get(ph, "/flag", "127.0.0.7")
    wait_for(lambda: table_of(sock, "per_ip").get("127.0.0.7", {}).get("gpc0") == 3, timeout=3,
             what="HAProxy's counts in farm")
    t = table_of(sock, "per_ip")["127.0.0.7"]
    assert t["http_req_cnt"] == 4 and t["http_req_rate(10000)"] in (3, 4)
    ids = wait_for(lambda: (lambda p: p if all(c in p for c in hap_stuck) else None)(
        table_of(sock, "persist")), timeout=3, what="HAProxy's persistence in farm")
    for c, name in hap_stuck.items():
        assert ids[c]["server_id"] == int(name.decode()[1:])     # farm's ids: s1 is 1, s2 is 2
    for c in ("127.0.0.8", "127.0.0.7"):
        assert get(pf, "/name", c) == hap_stuck[c]
    # idle longer than HAProxy's 5 s session timeout: heartbeats keep the
    # session open, and pushes go on
    opened = len([e for e in farm.events() if e.get("event") == "peer_session_open"])
    time.sleep(6)
    get(pf, "/flag", "127.0.0.5")
    wait_for(lambda: hap_table("per_ip").get("127.0.0.5", {}).get("gpc0") == 2, timeout=3,
             what="a push after an idle time")
    assert len([e for e in farm.events() if e.get("event") == "peer_session_open"]) == opened
    assert not [e for e in farm.events() if e.get("event") == "peer_table_ignored"
                or e.get("event") == "peer_session_closed" and "error" in e["reason"]]


def test_garbage_from_a_peer_closes_the_session_and_farm_serves_on(nodes, tmp_path):
    s1, s2 = HttpBackend("s1"), HttpBackend("s2")
    port, q1, q2 = free_port(), free_port(), free_port()
    sock = tmp_path / "a.sock"
    farm = nodes("a", node_config("lb1", port, sock, s1, s2, {"lb1": q1, "lb2": q2}))
    farm.wait_event("peers_listening")

    def session(data: bytes, source: str = "127.0.0.1") -> bytes:
        with socket.create_connection(("127.0.0.1", q1), timeout=5, source_address=(source, 0)) as c:
            c.sendall(data)
            out = b""
            while True:
                try:
                    d = c.recv(4096)
                except ConnectionResetError:
                    return out
                if not d:
                    return out
                out += d

    hello = b"HAProxyS 2.1\nlb1\nlb2 999 1\n"
    # garbage after a good handshake: 200, then a protocol error message, then the close
    assert session(hello + b"\xff\x00garbage") == b"200\n\x01\x00"
    farm.wait_event("peer_session_closed", peer="lb2")
    closed = [e for e in farm.events() if e.get("event") == "peer_session_closed"][-1]
    assert "protocol error" in closed["reason"]
    # garbage instead of a hello: 501; a wrong name: 503; an unknown peer: 504
    assert session(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == b"501\n"
    assert session(b"HAProxyS 2.1\nlb9\nlb2 999 1\n") == b"503\n"
    assert session(b"HAProxyS 2.1\nlb1\nlb7 999 1\n") == b"504\n"
    # a table that does not match ours (string keys, ours are ip): ignored, said once
    from farm.peers import codec as C
    with socket.create_connection(("127.0.0.1", q1), timeout=5) as c:
        d = C.TableDef(1, "per_ip", C.KT_STR, 33, (C.TYPE_ID["gpc0"],), expire=1000)
        c.sendall(hello + C.define_msg(d) + C.update_msg(d, C.Update(b"x", {2: 5}, 1, 1000)))
        assert c.recv(4) == b"200\n"
        ignored = farm.wait_event("peer_table_ignored", table="per_ip")
        assert "key type 6/size 33 differs" in ignored["reason"]
    # a source that is no configured node: closed at once
    assert session(hello, source="127.0.0.9") == b""
    farm.wait_event("peer_refused", source="127.0.0.9")
    assert get(port, "/name", "127.0.0.4") in (b"s1", b"s2")
    assert farm.proc.poll() is None
    # the peers process itself dies: the master starts another
    peers = [p for p in farm.workers() if "peers" in " ".join(p.cmdline())]
    assert len(peers) == 1
    peers[0].kill()
    farm.wait_event("peers_exited")
    farm.wait_event("peers_listening", count=2, timeout=10)
    assert get(port, "/name", "127.0.0.4") in (b"s1", b"s2")
