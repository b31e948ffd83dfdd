"""TCP mode end to end: real master, real workers, real backends on 127.0.0.1."""

from __future__ import annotations

import collections
import hashlib
import re
import resource
import signal
import socket
import subprocess
import threading
import time

import psutil
import pytest

from tests.integration.backends import DigestServer, EchoServer, TagServer, free_port, pattern


def tcp_config(port: int, servers: str, workers: int = 2, extra_global: str = "",
               extra_frontend: str = "", extra_backend: str = "", timeouts: str = "",
               connect: str = "1s") -> str:
    return f"""
[global]
workers = {workers}
hard_stop_after = "5s"
{extra_global}

[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "tcplog"

[defaults]
mode = "tcp"
retries = 3

[defaults.timeout]
connect = "{connect}"
client = "10s"
server = "10s"
{timeouts}

[frontends.fe]
bind = "127.0.0.1:{port}"
default_backend = "be"
{extra_frontend}

[backends.be]
balance = "roundrobin"
{extra_backend}
{servers}
"""


def server_entries(servers, weights=None) -> str:
    out = []
    for i, s in enumerate(servers):
        w = weights[i] if weights else 1
        out.append(f'[[backends.be.servers]]\nname = "s{i + 1}"\naddress = "{s.address}"\nweight = {w}\n')
    return "\n".join(out)


def connect(port: int, timeout: float = 5) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        d = sock.recv(65536)
        if not d:
            return b"".join(chunks)
        chunks.append(d)


def fetch_tag(port: int) -> str:
    with connect(port) as s:
        return read_all(s).decode()


@pytest.fixture
def tags():
    servers = [TagServer(f"s{i}") for i in (1, 2, 3)]
    yield servers
    for s in servers:
        s.close()


def test_relay_10mb_byte_exact_both_ways(farm_factory):
    echo = EchoServer()
    port = free_port()
    farm_factory(tcp_config(port, server_entries([echo])))
    payload = pattern(10 * 1024 * 1024)
    received = bytearray()
    with connect(port, timeout=20) as s:
        def reader():
            while True:
                d = s.recv(1 << 20)
                if not d:
                    return
                received.extend(d)
        t = threading.Thread(target=reader)
        t.start()
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        t.join(30)
    assert len(received) == len(payload)
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    echo.close()


def test_half_close_is_forwarded(farm_factory):
    digest = DigestServer()
    port = free_port()
    farm_factory(tcp_config(port, server_entries([digest])))
    body = pattern(300_000)
    with connect(port) as s:
        s.sendall(body)
        s.shutdown(socket.SHUT_WR)   # the server answers only after seeing EOF
        answer = read_all(s).decode()
    assert answer == f"{len(body)} {hashlib.sha256(body).hexdigest()}"
    digest.close()


def test_weighted_split_1200_connections(farm_factory, tags):
    port = free_port()
    farm = farm_factory(tcp_config(port, server_entries(tags, [1, 2, 3]), workers=2))
    counts = collections.Counter(fetch_tag(port) for _ in range(1200))
    assert sum(counts.values()) == 1200
    for name, expected in (("s1", 200), ("s2", 400), ("s3", 600)):
        assert abs(counts[name] - expected) <= expected * 0.10, counts
    # one tcplog line per session
    deadline = time.monotonic() + 3
    while len(farm.access_lines()) < 1200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(farm.access_lines()) == 1200


def test_tcplog_line_format(farm_factory, tags):
    port = free_port()
    farm = farm_factory(tcp_config(port, server_entries(tags[:1]), workers=1))
    assert fetch_tag(port) == "s1"
    time.sleep(0.3)
    line = farm.access_lines()[-1]
    # %ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq
    assert re.fullmatch(
        r"127\.0\.0\.1:\d+ \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] fe be/s1 "
        r"0/\d+/\d+ 2 -- 1/1/1/1/0 0/0", line), line


def test_connect_failure_retried_on_another_server(farm_factory, tags):
    dead = free_port()   # nothing listens there
    port = free_port()
    servers = (f'[[backends.be.servers]]\nname = "dead"\naddress = "127.0.0.1:{dead}"\n\n'
               + server_entries(tags[:2]))
    farm = farm_factory(tcp_config(port, servers, workers=1))
    got = [fetch_tag(port) for _ in range(30)]
    assert set(got) == {"s1", "s2"}
    time.sleep(0.3)
    lines = farm.access_lines()
    assert len(lines) == 30
    # the sessions that first hit the dead server show a retry, redispatched
    assert any(" +1 " in l or "/+1 " in l for l in lines), lines[:5]


def test_all_servers_down_closes_with_SC(farm_factory):
    port = free_port()
    servers = f'[[backends.be.servers]]\nname = "dead"\naddress = "127.0.0.1:{free_port()}"\n'
    farm = farm_factory(tcp_config(port, servers, workers=1))
    with connect(port) as s:
        assert read_all(s) == b""
    time.sleep(0.3)
    assert " SC " in farm.access_lines()[-1]


def test_worker_killed_is_respawned_and_traffic_continues(farm_factory, tags):
    port = free_port()
    farm = farm_factory(tcp_config(port, server_entries(tags), workers=2))
    before = {w.pid for w in farm.workers()}
    assert len(before) == 2
    victim = sorted(before)[0]
    t0 = time.monotonic()
    psutil.Process(victim).kill()
    while time.monotonic() - t0 < 3:
        now = {w.pid for w in farm.workers() if w.status() != psutil.STATUS_ZOMBIE}
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("worker not respawned within 3 s")
    farm.wait_event("worker_ready", count=3)
    for _ in range(50):
        assert fetch_tag(port) in ("s1", "s2", "s3")


def test_workers_die_with_the_master(farm_factory, tags):
    port = free_port()
    farm = farm_factory(tcp_config(port, server_entries(tags), workers=2))
    kids = farm.workers()
    assert len(kids) == 2
    farm.proc.kill()
    farm.proc.wait()
    gone, alive = psutil.wait_procs(kids, timeout=2)
    assert not alive, alive


def test_process_titles(farm_factory, tags):
    port = free_port()
    farm = farm_factory(tcp_config(port, server_entries(tags), workers=2))
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "-p", ",".join(
        str(p) for p in [farm.proc.pid] + [w.pid for w in farm.workers()])],
        capture_output=True, text=True).stdout
    assert f"farm: master [gen 1] -c {farm.config_path}" in out
    assert "farm: worker 0 [gen 1]" in out
    assert "farm: worker 1 [gen 1]" in out


def test_sigterm_lets_open_sessions_complete(farm_factory):
    echo = EchoServer()
    port = free_port()
    farm = farm_factory(tcp_config(port, server_entries([echo]), workers=2))
    s = connect(port)
    s.sendall(b"before")
    assert s.recv(100) == b"before"
    farm.signal(signal.SIGTERM)
    farm.wait_event("worker_draining", count=2)
    # the established session still works after the stop began ...
    s.sendall(b"after")
    assert s.recv(100) == b"after"
    # ... and new connections are refused
    with pytest.raises(OSError):
        connect(port, timeout=1).recv(1)
    assert farm.proc.poll() is None
    s.shutdown(socket.SHUT_WR)
    assert s.recv(100) == b""
    s.close()
    assert farm.proc.wait(5) == 0
    echo.close()


def test_hard_stop_after_ends_stuck_sessions(farm_factory):
    echo = EchoServer()
    port = free_port()
    farm = farm_factory(tcp_config(port, server_entries([echo]), workers=1,
                                   extra_global='hard_stop_after = "1s"').replace(
                                       'hard_stop_after = "5s"\n', ""))
    s = connect(port)
    s.sendall(b"x")
    assert s.recv(10) == b"x"
    t0 = time.monotonic()
    farm.signal(signal.SIGTERM)
    assert farm.proc.wait(5) == 0
    assert time.monotonic() - t0 < 3
    s.close()
    echo.close()


def test_client_timeout_closes_idle_session(farm_factory):
    echo = EchoServer()
    port = free_port()
    farm = farm_factory(tcp_config(port, server_entries([echo]), workers=1).replace(
        'client = "10s"', 'client = "300ms"'))
    with connect(port) as s:
        t0 = time.monotonic()
        assert read_all(s) == b""
        assert 0.2 < time.monotonic() - t0 < 2
    time.sleep(0.2)
    assert " cD " in farm.access_lines()[-1]
    echo.close()


def test_frontend_maxconn_holds_extra_clients_in_backlog(farm_factory):
    echo = EchoServer()
    port = free_port()
    farm_factory(tcp_config(port, server_entries([echo]), workers=1, extra_frontend="maxconn = 2"))
    a, b = connect(port), connect(port)
    for s in (a, b):
        s.sendall(b"hi")
        assert s.recv(10) == b"hi"
    c = connect(port)            # the kernel completes the handshake ...
    c.sendall(b"third")
    c.settimeout(0.5)
    with pytest.raises(socket.timeout):
        c.recv(10)               # ... but farm does not take it yet
    a.close()
    c.settimeout(5)
    assert c.recv(10) == b"third"
    for s in (b, c):
        s.close()
    echo.close()


def test_server_maxconn_queues_then_times_out(farm_factory):
    echo = EchoServer()
    port = free_port()
    servers = server_entries([echo]) + "maxconn = 1\n"
    farm = farm_factory(tcp_config(port, servers, workers=1, timeouts='queue = "500ms"'))
    a = connect(port)
    a.sendall(b"1")
    assert a.recv(10) == b"1"
    b = connect(port)            # queued behind a
    b.sendall(b"2")
    t0 = time.monotonic()
    try:                         # queue timeout: closed without a server
        assert read_all(b) == b""
    except ConnectionResetError:
        pass                     # (a reset, as "2" was never read)
    assert 0.4 < time.monotonic() - t0 < 2
    c = connect(port)            # queued, then served when a leaves
    c.sendall(b"3")
    time.sleep(0.1)
    a.close()
    assert c.recv(10) == b"3"
    c.close()
    b.close()
    time.sleep(0.3)
    assert any(" sQ " in l for l in farm.access_lines())
    echo.close()


def test_emfile_does_not_spin(farm_factory):
    """Out of descriptors, a worker pauses accepting instead of spinning, and
    says so once, then once per interval (not once per 0.1 s pause)."""
    echo = EchoServer()
    port = free_port()

    def low_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    farm = farm_factory(tcp_config(port, server_entries([echo]), workers=1), preexec=low_fd_limit)
    worker = farm.workers()[0]
    clients = []
    for _ in range(80):          # more than the worker has descriptors for
        try:
            clients.append(connect(port, timeout=1))
        except OSError:
            break

    def trickle(seconds: float) -> None:
        """New clients keep coming (20 a second): each one the worker
        accepts finds no descriptor left for its server connection."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                clients.append(connect(port, timeout=1))
            except OSError:
                pass
            time.sleep(0.05)
    trickle(0.3)
    cpu0 = sum(worker.cpu_times()[:2])
    trickle(1.5)
    cpu = sum(worker.cpu_times()[:2]) - cpu0
    assert cpu < 0.5, f"worker burnt {cpu:.2f}s of CPU in 1.5s while out of fds"
    first = farm.wait_event("accept_paused")
    # past one report interval (5 s) of pauses every 0.1 s: one more line, not ~50
    trickle(4.0)
    farm.wait_event("accept_still_paused", timeout=3)
    for c in clients:
        c.close()
    time.sleep(0.5)
    with connect(port) as s:     # and it serves again once fds are back
        s.sendall(b"ok")
        assert s.recv(10) == b"ok"
    resumed = farm.wait_event("accept_resumed")
    lines = [e for e in farm.events() if e.get("event", "").startswith("accept_")]
    assert [e["event"] for e in lines] == ["accept_paused", "accept_still_paused", "accept_resumed"], lines
    still = lines[1]
    assert 20 <= still["count"] <= 60 and still["for_s"] >= 5.0, still
    assert resumed["pauses"] > still["count"] and first["seconds"] == 0.1
    echo.close()


def test_use_backend_on_layer4_fetches(farm_factory, tags):
    port, port2 = free_port(), free_port()
    cfg = f"""
[global]
workers = 1
[log]
events = "@EVENTS@"
[defaults]
mode = "tcp"
[frontends.fe]
bind = ["127.0.0.1:{port}", "127.0.0.1:{port2}"]
default_backend = "a"
[frontends.fe.acl]
local = "src 127.0.0.0/8"
[[frontends.fe.use_backend]]
backend = "b"
if = "local {{ dst_port {port2} }}"
[backends.a]
[[backends.a.servers]]
name = "s1"
address = "{tags[0].address}"
[backends.b]
[[backends.b.servers]]
name = "s2"
address = "{tags[1].address}"
"""
    farm_factory(cfg)
    assert fetch_tag(port) == "s1"       # default backend
    assert fetch_tag(port2) == "s2"      # routed by dst_port
