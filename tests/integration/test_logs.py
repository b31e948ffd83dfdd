"""The access log end to end: the real master with 2 workers, real backends,
127.0.0.1 only. Rotation under load (rename + SIGUSR1, and the real
logrotate), `farm logs` (filters, -f across rotations), syslog targets
(UDP and unix datagram sockets)."""

from __future__ import annotations

import collections
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from farm.logtail import parse_line
from tests.integration.backends import free_port
from tests.integration.conftest import ROOT
from tests.integration.http_backend import HttpBackend
from tests.integration.load import Load
from tests.integration.tools import debian_tool


def config(port: int, servers: list, access: str = "@ACCESS@", fmt: str = "httplog",
           log_extra: str = "", workers: int = 2) -> str:
    entries = "".join(f'[[backends.be.servers]]\nname = "{s.name}"\naddress = "{s.address}"\n'
                      for s in servers)
    return f"""
[global]
workers = {workers}
hard_stop_after = "2s"

[log]
events = "@EVENTS@"
access = "{access}"
format = "{fmt}"
{log_extra}

[defaults]
mode = "http"
retries = 3

[defaults.timeout]
connect = "1s"
client = "10s"
server = "10s"

[frontends.fe]
bind = "127.0.0.1:{port}"
default_backend = "be"

[backends.be]
balance = "roundrobin"
{entries}
"""


@pytest.fixture
def backends():
    bs = [HttpBackend("s1"), HttpBackend("s2")]
    yield bs
    for b in bs:
        b.close()


def start(farm_factory, backends, **kw):
    port = free_port()
    farm = farm_factory(config(port, backends, **kw))
    return farm, port


def get(port: int, path: str, conn: http.client.HTTPConnection | None = None) -> int:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    if conn is None:
        c.close()
    return r.status


def log_files(farm) -> list[Path]:
    return sorted(farm.tmp.glob("access.log*"))


def all_lines(farm) -> list[str]:
    out = []
    for p in log_files(farm):
        out.extend(p.read_text().splitlines())
    return out


def wait_count(farm, n: int, timeout: float = 5.0) -> list[str]:
    """All access-log lines of every file once there are at least n."""
    deadline = time.monotonic() + timeout
    while True:
        lines = all_lines(farm)
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def farm_logs(*args, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "master.py"), "logs", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


# ------------------------------------------------------------------ rotation under load

def test_rename_and_usr1_under_load_lose_and_tear_nothing(farm_factory, backends):
    """logrotate's dance, twice, while clients keep sending: rename the
    file, SIGUSR1 to the master (forwarded to the workers, which reopen).
    Every answered request has exactly one whole line in one of the files."""
    farm, port = start(farm_factory, backends)
    path = farm.access_path
    load = Load(port, keepalive=3, newconn=1, seconds=3.0).start()
    for n in (1, 2):
        time.sleep(1.0)
        os.rename(path, f"{path}.{n}")
        time.sleep(0.05)                 # lines keep landing in the renamed file...
        farm.signal(signal.SIGUSR1)      # ...until the workers reopen
    load.join()
    assert not load.failures, load.failures[:5]
    answered = sum(load.statuses.values())
    assert answered > 100
    lines = wait_count(farm, answered)
    time.sleep(0.3)
    lines = all_lines(farm)
    assert len(lines) == answered
    for line in lines:
        e = parse_line(line)
        assert e is not None and e.format == "httplog", f"torn or bad line: {line!r}"
        assert e.status == 200 and e.fields["request"] == "GET / HTTP/1.1"
    counts = {p.name: len(p.read_text().splitlines()) for p in log_files(farm)}
    assert set(counts) == {"access.log", "access.log.1", "access.log.2"}
    assert all(counts.values()), counts          # the traffic really spanned both rotations
    # Both workers wrote (one write per turn on O_APPEND: no interleaving).
    pids_seen = {int(p.pid) for p in farm.workers()}
    assert len(pids_seen) == 2


def test_real_logrotate_under_load(farm_factory, backends, tmp_path):
    logrotate = shutil.which("logrotate") or ("/usr/sbin/logrotate" if os.path.exists("/usr/sbin/logrotate") else None)
    if logrotate is None:
        pytest.skip("logrotate is not installed (apt-get install logrotate)")
    farm, port = start(farm_factory, backends, fmt="json")
    conf = tmp_path / "logrotate.conf"
    conf.write_text(f"""
{farm.access_path} {{
    rotate 5
    create 0640
    missingok
    nocompress
    sharedscripts
    postrotate
        kill -USR1 {farm.proc.pid}
    endscript
}}
""")
    state = tmp_path / "logrotate.state"
    load = Load(port, keepalive=3, newconn=1, seconds=3.0).start()
    for _ in range(2):
        time.sleep(1.0)
        r = subprocess.run([logrotate, "-f", "-s", str(state), str(conf)],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
    load.join()
    assert not load.failures, load.failures[:5]
    answered = sum(load.statuses.values())
    wait_count(farm, answered)
    time.sleep(0.3)
    lines = all_lines(farm)
    assert len(lines) == answered
    for line in lines:
        e = parse_line(line)
        assert e is not None and e.format == "json" and e.status == 200, f"bad line: {line!r}"
    counts = {p.name: len(p.read_text().splitlines()) for p in log_files(farm)}
    assert set(counts) == {"access.log", "access.log.1", "access.log.2"}
    assert all(counts.values()), counts
    assert oct(farm.access_path.stat().st_mode & 0o777) == oct(0o640)


# ------------------------------------------------------------------ farm logs -f

class Tail:
    """`farm logs -f` as a subprocess; a thread collects its output lines."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "master.py"), "logs", "-f", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        self.lines: list[str] = []
        self.err: list[str] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, args=(self.proc.stdout, self.lines),
                                       daemon=True)
        self.thread.start()
        self.err_thread = threading.Thread(target=self._read, args=(self.proc.stderr, self.err),
                                           daemon=True)
        self.err_thread.start()

    def _read(self, stream, into: list) -> None:
        for raw in stream:
            with self.lock:
                into.append(raw.decode().rstrip("\n"))

    def wait_open(self, path, timeout: float = 10.0) -> bool:
        """True once the command has path open (it is reading it)."""
        import psutil
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if any(f.path == str(path) for f in psutil.Process(self.proc.pid).open_files()):
                    return True
            except psutil.Error:
                pass
            time.sleep(0.05)
        return False

    def wait_err(self, text: str, timeout: float = 10.0) -> bool:
        """True once a line of stderr contains text (the command started)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if any(text in line for line in self.err):
                    return True
            time.sleep(0.05)
        return False

    def wait(self, n: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.lines) >= n:
                    break
            time.sleep(0.05)
        with self.lock:
            return list(self.lines)

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.thread.join(2)
        self.err_thread.join(2)
        with self.lock:
            return rc, "".join(line + "\n" for line in self.err)


def test_farm_logs_follows_across_rotations_exactly_once(farm_factory, backends):
    farm, port = start(farm_factory, backends)
    path = farm.access_path
    get(port, "/name?id=before")                 # already in the file: -n 0 skips it
    wait_count(farm, 1)
    tail = Tail("--file", str(path), "-n", "0")
    assert tail.wait_open(path)                  # (the interpreter may take a second to start)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ids = iter(range(10_000))

    def batch(k: int = 40) -> None:
        for _ in range(k):
            assert get(port, f"/name?id={next(ids)}", conn) == 200
        get(port, f"/name?id={next(ids)}")       # a new connection: maybe the other worker

    batch()                                      # A
    os.rename(path, f"{path}.1")                 # rotation 1: rename, no create
    batch()                                      # B: still into access.log.1
    farm.signal(signal.SIGUSR1)
    time.sleep(0.2)
    batch()                                      # C: the new access.log
    os.rename(path, f"{path}.2")                 # rotation 2: rename + create (logrotate's create)
    path.touch()
    batch()                                      # D: into access.log.2 while access.log exists
    farm.signal(signal.SIGUSR1)
    time.sleep(0.2)
    batch()                                      # E
    conn.close()
    total = next(ids)
    lines = tail.wait(total, timeout=15)
    time.sleep(0.5)                              # anything printed twice would show up now
    rc, err = tail.stop()
    lines = tail.lines
    assert rc == 0, err
    seen = collections.Counter()
    for line in lines:
        e = parse_line(line)
        assert e is not None, f"torn line printed: {line!r}"
        m = re.fullmatch(r"GET /name\?id=(\w+) HTTP/1.1", e.fields["request"])
        seen[m.group(1)] += 1
    assert "before" not in seen
    assert sorted(seen) == sorted(str(i) for i in range(total)), (len(seen), total, err)
    assert set(seen.values()) == {1}, [k for k, v in seen.items() if v > 1]
    assert "rotated" in err
    assert len(all_lines(farm)) == total + 1


def test_farm_logs_follow_waits_for_a_missing_file(tmp_path):
    path = tmp_path / "later.log"
    tail = Tail("--file", str(path))
    assert tail.wait_err("does not exist yet")   # (the interpreter may take a second to start)
    assert tail.proc.poll() is None              # -f: a missing file is waited for
    line = ('127.0.0.1:1 [20/Nov/2026:22:19:17.568] fe be/s1 0/0/0/1/1 200 10 - - ---- '
            '1/1/0/0/0 0/0 "GET / HTTP/1.1"')
    path.write_text(line + "\n")
    assert tail.wait(1) == [line]
    rc, err = tail.stop()
    assert rc == 0 and "does not exist yet" in err


# ------------------------------------------------------------------ farm logs filters

def test_farm_logs_filters(farm_factory, backends, tmp_path):
    farm, port = start(farm_factory, backends)
    paths = ["/name", "/status/404", "/status/500", "/status/503", "/slow?ms=300"]
    expected = collections.Counter()
    for _ in range(3):
        for p in paths:
            expected[get(port, p)] += 1
    assert expected == {200: 6, 404: 3, 500: 3, 503: 3}
    lines = wait_count(farm, 15)
    assert len(lines) == 15
    f = str(farm.access_path)

    def out(*args) -> list[str]:
        r = farm_logs("--file", f, *args)
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()

    assert out() == lines
    five = out("--status", "5xx")
    assert len(five) == 6 and all(parse_line(x).status in (500, 503) for x in five)
    assert [parse_line(x).status for x in out("--status", "404")] == [404] * 3
    assert len(out("--status", "4xx,5xx")) == 9
    slow = out("--slow", "250ms")
    assert len(slow) == 3 and all("/slow?ms=300" in x and parse_line(x).total_ms >= 300 for x in slow)
    s2 = [x for x in lines if parse_line(x).fields["server"] == "s2"]
    assert 0 < len(s2) < 15 and out("--server", "s2") == s2
    assert out("--backend", "be") == lines and out("--backend", "nope") == []
    assert out("--frontend", "fe", "--status", "503", "--server", "s1,s2") == \
        [x for x in lines if parse_line(x).status == 503]
    js = [json.loads(x) for x in out("--json", "--status", "503")]
    assert [j["status"] for j in js] == [503] * 3
    assert all(j["backend"] == "be" and j["request"] == "GET /status/503 HTTP/1.1" for j in js)
    assert out("-n", "2", "--status", "5xx") == five[-2:]
    assert out("--lines", "4") == lines[-4:]
    # -c: the path comes from the config's [log] access.
    r = farm_logs("-c", str(farm.config_path), "--status", "404")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3
    # Exit codes.
    assert farm_logs("--file", str(tmp_path / "nope.log")).returncode == 1
    assert farm_logs("--file", f, "--status", "6xx").returncode == 2
    assert farm_logs("--file", f, "--slow", "soon").returncode == 2
    off = tmp_path / "off.toml"
    off.write_text(config(free_port(), backends, access="off").replace("@EVENTS@", "stderr"))
    r = farm_logs("-c", str(off))
    assert r.returncode == 2 and "not a file" in r.stderr


# ------------------------------------------------------------------ syslog targets

SYSLOG_3164 = re.compile(r"<134>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d farm\[(\d+)\]: (.*)\n")


def recv_all(sock: socket.socket, n: int, timeout: float = 5.0) -> list[bytes]:
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            out.append(sock.recv(65536))
        except socket.timeout:
            break
    return out


def test_access_log_to_syslog_udp(farm_factory, backends):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    farm, port = start(farm_factory, backends, access=f"udp://127.0.0.1:{rx.getsockname()[1]}")
    for i in range(20):
        assert get(port, f"/name?n={i}") == 200
    msgs = recv_all(rx, 20)
    rx.close()
    assert len(msgs) == 20
    pids = {p.pid for p in farm.workers()}
    requests = set()
    for m in msgs:
        hit = SYSLOG_3164.fullmatch(m.decode())
        assert hit, m
        assert int(hit.group(1)) in pids
        e = parse_line(hit.group(2))
        assert e is not None and e.status == 200
        requests.add(e.fields["request"])
        assert parse_line(m.decode()).fields == e.fields        # farm logs reads it with the header too
    assert requests == {f"GET /name?n={i} HTTP/1.1" for i in range(20)}
    assert not farm.access_path.exists()


def test_access_log_to_syslog_unix_datagram_rfc5424(farm_factory, backends, tmp_path):
    path = tmp_path / "log.sock"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    farm, port = start(farm_factory, backends, access=f"unix://{path}", fmt="json",
                       log_extra='syslog_format = "rfc5424"\nfacility = "local3"\ntag = "lb"\nhostname = "lb1"')
    for i in range(10):
        assert get(port, f"/status/{500 + i}") == 500 + i
    msgs = recv_all(rx, 10)
    rx.close()
    assert len(msgs) == 10
    pids = {p.pid for p in farm.workers()}
    statuses = set()
    assert not msgs[0].startswith(b"<134>"), \
        "the [log] syslog options do not reach the workers: workers/runtime.py must build AccessLog(config.log)"
    for m in msgs:
        hit = re.fullmatch(r"<158>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d lb1 lb (\d+) - - (\{.*\})\n",
                           m.decode())
        assert hit, m
        assert int(hit.group(1)) in pids
        statuses.add(json.loads(hit.group(2))["status"])
    assert statuses == set(range(500, 510))


def test_unix_syslog_without_a_listener_drops_and_keeps_serving(farm_factory, backends, tmp_path):
    path = tmp_path / "nobody.sock"
    farm, port = start(farm_factory, backends, access=f"unix://{path}")
    for _ in range(5):
        assert get(port, "/name") == 200
    # The daemon shows up: lines flow (reconnect at most once a second).
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    deadline = time.monotonic() + 5
    got = []
    while not got and time.monotonic() < deadline:
        get(port, "/name")
        rx.settimeout(0.2)
        try:
            got.append(rx.recv(65536))
        except socket.timeout:
            pass
    rx.close()
    assert got and SYSLOG_3164.fullmatch(got[0].decode())


# ------------------------------------------------------------------ farm logs --summary

def test_farm_logs_summary_agrees_with_halog(farm_factory, backends, tmp_path):
    """The same httplog file through `farm logs --summary --json` and the
    real halog (-st, -srv, -pct): the same numbers."""
    halog = debian_tool("halog", "haproxy")
    if halog is None:
        pytest.skip("halog (Debian's haproxy package) is not available")
    port = free_port()
    dead = free_port()                                   # nothing listens there
    farm = farm_factory(config(port, backends).replace('default_backend = "be"', f'''\
default_backend = "be"
[frontends.fe.acl]
dead = "path_beg /dead"
[[frontends.fe.use_backend]]
backend = "dead"
if = "dead"
[backends.dead]
retries = 1
[[backends.dead.servers]]
name = "gone"
address = "127.0.0.1:{dead}"
'''))
    paths = ([f"/slow?ms={ms}" for ms in (5, 10, 20, 40, 60, 80, 120)] + ["/name"] * 12
             + ["/status/404"] * 3 + ["/status/500"] * 2 + ["/dead"] * 3)
    statuses = collections.Counter(get(port, p) for p in paths)
    assert statuses[503] == 3
    lines = wait_count(farm, len(paths))
    assert len(lines) == len(paths)
    log = farm.access_path.read_bytes()

    def run_halog(flag: str) -> list[list[str]]:
        out = subprocess.run([halog, "-s", "-4", flag], input=log, capture_output=True, timeout=10)
        return [l.split() for l in out.stdout.decode().splitlines() if l and not l.startswith("#")]

    r = farm_logs("--file", str(farm.access_path), "--summary", "--json")
    assert r.returncode == 0, r.stderr
    mine = json.loads(r.stdout)
    assert mine["requests"] == len(paths)
    assert {int(k): v for k, v in mine["status_codes"].items()} == statuses
    assert {int(s): int(n) for s, n in run_halog("-st")} == statuses
    halog_srv = {f[0]: [float(x) if "." in x else int(x) for x in f[1:]] for f in run_halog("-srv")}
    cols = ("1xx", "2xx", "3xx", "4xx", "5xx", "other", "tot_req", "req_ok", "pct_ok", "avg_ct", "avg_rt")
    assert {name: [row[c] for c in cols] for name, row in mine["servers"].items()} == halog_srv
    assert halog_srv["dead/gone"][7] == 0                 # the failed ones are not "ok"
    assert any(row[10] > 0 for row in halog_srv.values())  # the slow requests weigh in
    pct = {f[0]: f for f in run_halog("-pct")}
    # halog: <pct> <count> <TR> <Tc> <Tr> <data>
    assert int(pct["100.0"][1]) == mine["percentiles"]["requests"] == len(paths) - 3
    for p in ("50.0", "75.0", "90.0", "95.0", "99.0", "99.9", "100.0"):
        assert mine["percentiles"][p]["Tc"] == int(pct[p][3]), p
        assert mine["percentiles"][p]["Tr"] == int(pct[p][4]), p
    assert mine["percentiles"]["100.0"]["Tr"] >= 120
    # the text form says the same
    text = farm_logs("--file", str(farm.access_path), "--summary").stdout
    assert "dead/gone" in text and "percentiles in ms" in text
    # filters apply before counting
    r = farm_logs("--file", str(farm.access_path), "--summary", "--json", "--status", "5xx")
    assert json.loads(r.stdout)["status_codes"] == {"500": 2, "503": 3}
    assert farm_logs("--file", str(farm.access_path), "--summary", "-f").returncode == 2


def test_farm_logs_names_a_backend_the_config_lacks(farm_factory, backends):
    farm, port = start(farm_factory, backends)
    get(port, "/name")
    wait_count(farm, 1)
    c = str(farm.config_path)
    r = farm_logs("-c", c, "--backend", "nosuch")
    assert r.returncode == 2 and r.stdout == ""
    assert "--backend: no backend 'nosuch'" in r.stderr and "it has: be, fe" in r.stderr
    r = farm_logs("-c", c, "--server", "s1,s9")
    assert r.returncode == 2 and "no server 's9'" in r.stderr and "'s1'" not in r.stderr
    assert farm_logs("-c", c, "--frontend", "nope").returncode == 2
    # the names it has (a frontend name is a backend name too, in a log line)
    assert farm_logs("-c", c, "--backend", "be").returncode == 0
    assert farm_logs("-c", c, "--backend", "fe", "--server", "<NOSRV>").returncode == 0
    # --file with -c: checked as well; --file alone: no config to check against
    assert farm_logs("--file", str(farm.access_path), "-c", c, "--backend", "nosuch").returncode == 2
    r = farm_logs("--file", str(farm.access_path), "--backend", "nosuch")
    assert r.returncode == 0 and r.stdout == ""
