"""farm's `show stat` against HAProxy 2.6's, side by side.

Both run the same configuration (HAProxy with nbthread 1, farm with one
worker, so that round robin and every count are deterministic) in front of
the same real backends, and get the same scripted traffic: each step is
sent to HAProxy and then to farm before the next step starts, so both see
the backends in the same state and their ages stay within a second. The
two `show stat` CSVs (HAProxy's stats socket, farm's admin socket) are then
compared column by column: farm/stats.py SAME_AS_HAPROXY must be equal,
CLOSE_TO_HAPROXY (times, ages, rate maxima) close; NOT_COMPARED says why
the rest differs. Then the Prometheus exporters: HAProxy's built-in one and
farm's /metrics must agree on haproxy_*_loadbalanced_total.

The traffic covers both servers up, one down (failed checks), one in
maintenance, a 404, a 500 and a 502 from a server, an invalid response, a
request denied in the frontend and one in the backend, a redirect and a
return, keep-alive, a request that does not parse, a client that leaves
before the answer, retries with and without redispatch, a backend without a
usable server, a queue and a queue timeout, and TCP sessions (one whose
server refuses).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from farm import stats
from tests.integration.backends import EchoServer, free_port
from tests.integration.haproxy_peer import Haproxy, cli, haproxy_binary, parse_show_stat
from tests.integration.http_backend import HttpBackend

CHECK = "100ms"          # health-check interval: the dead server is DOWN within it
SETTLE = 5.0             # farm's workers flush every 0.25 s, its sampler runs every second


def haproxy_config(p: dict, peers: dict) -> str:
    a, b, echo = peers["a"].address, peers["b"].address, peers["echo"].address
    dead, dead2 = peers["dead"], peers["dead2"]
    chk = f"check inter {CHECK} rise 1 fall 1"
    return f"""
    global
        nbthread 1
        maxconn 1000
        stats socket @SOCK@ mode 600 level admin
    defaults
        mode http
        timeout connect 1s
        timeout client 10s
        timeout server 10s
        timeout queue 5s
        retries 3
        option redispatch
    frontend fe
        bind 127.0.0.1:{p['fe']}
        http-request deny if {{ path_beg /deny }}
        http-request redirect location /elsewhere if {{ path_beg /redirect }}
        http-request return status 200 content-type text/plain string hello if {{ path_beg /return }}
        use_backend be_retry if {{ path_beg /retry/ }}
        use_backend be_fail if {{ path_beg /fail/ }}
        use_backend be_none if {{ path_beg /none/ }}
        use_backend be_queue if {{ path_beg /queue/ }}
        use_backend be_qto if {{ path_beg /qto/ }}
        default_backend be
    frontend ft
        mode tcp
        bind 127.0.0.1:{p['ft']}
        default_backend bt
    frontend ftf
        mode tcp
        bind 127.0.0.1:{p['ftf']}
        default_backend bt_fail
    frontend stats
        bind 127.0.0.1:{p['stats']}
        http-request use-service prometheus-exporter if {{ path /metrics }}
    backend be
        balance roundrobin
        http-request deny if {{ path_beg /bdeny }}
        server s1 {a} {chk}
        server s2 {b} {chk}
        server s3 {dead} {chk}
        server s4 {a} {chk} disabled
    backend be_retry
        balance roundrobin
        server dead {dead2}
        server live {b}
    backend be_fail
        timeout connect 100ms
        server dead {dead2}
    backend be_none
        server off {a} disabled
    backend be_queue
        server q1 {a} maxconn 1
    backend be_qto
        timeout queue 100ms
        server q1 {a} maxconn 1
    backend bt
        mode tcp
        balance roundrobin
        server e1 {echo}
    backend bt_fail
        mode tcp
        timeout connect 100ms
        server dead {dead2}
    """


def farm_config(p: dict, sock, peers: dict) -> str:
    a, b, echo = peers["a"].address, peers["b"].address, peers["echo"].address
    dead, dead2 = peers["dead"], peers["dead2"]

    def server(be: str, name: str, address: str, extra: str = "") -> str:
        return f'[[backends.{be}.servers]]\nname = "{name}"\naddress = "{address}"\n{extra}\n'

    def route(backend: str, prefix: str) -> str:
        return (f'[[frontends.fe.use_backend]]\nbackend = "{backend}"\n'
                f'if = "{{ path_beg {prefix} }}"\n')
    return f"""
[global]
workers = 1
maxconn = 1000
admin_socket = "{sock}"
hard_stop_after = "2s"
[log]
events = "@EVENTS@"
[stats]
bind = "127.0.0.1:{p['stats']}"
[defaults]
mode = "http"
retries = 3
redispatch = true
[defaults.timeout]
connect = "1s"
client = "10s"
server = "10s"
queue = "5s"

[frontends.fe]
bind = "127.0.0.1:{p['fe']}"
default_backend = "be"
[[frontends.fe.http_request]]
action = "deny"
if = "{{ path_beg /deny }}"
[[frontends.fe.http_request]]
action = "redirect"
location = "/elsewhere"
if = "{{ path_beg /redirect }}"
[[frontends.fe.http_request]]
action = "return"
status = 200
content_type = "text/plain"
body = "hello"
if = "{{ path_beg /return }}"
{route("be_retry", "/retry/")}
{route("be_fail", "/fail/")}
{route("be_none", "/none/")}
{route("be_queue", "/queue/")}
{route("be_qto", "/qto/")}

[frontends.ft]
mode = "tcp"
bind = "127.0.0.1:{p['ft']}"
default_backend = "bt"

[frontends.ftf]
mode = "tcp"
bind = "127.0.0.1:{p['ftf']}"
default_backend = "bt_fail"

[backends.be]
balance = "roundrobin"
[backends.be.check]
type = "tcp"
interval = "{CHECK}"
rise = 1
fall = 1
[[backends.be.http_request]]
action = "deny"
if = "{{ path_beg /bdeny }}"
{server("be", "s1", a)}
{server("be", "s2", b)}
{server("be", "s3", dead)}
{server("be", "s4", a, "disabled = true")}

[backends.be_retry]
balance = "roundrobin"
{server("be_retry", "dead", dead2)}
{server("be_retry", "live", b)}

[backends.be_fail]
[backends.be_fail.timeout]
connect = "100ms"
{server("be_fail", "dead", dead2)}

[backends.be_none]
{server("be_none", "off", a, "disabled = true")}

[backends.be_queue]
{server("be_queue", "q1", a, "maxconn = 1")}

[backends.be_qto]
[backends.be_qto.timeout]
queue = "100ms"
{server("be_qto", "q1", a, "maxconn = 1")}

[backends.bt]
mode = "tcp"
balance = "roundrobin"
{server("bt", "e1", echo)}

[backends.bt_fail]
mode = "tcp"
[backends.bt_fail.timeout]
connect = "100ms"
{server("bt_fail", "dead", dead2)}
"""


# -- the scripted traffic -----------------------------------------------------------
#
# Each step takes the ports of one proxy and returns what the client saw.


def get(port: int, path: str) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def gets(*paths: str):
    return lambda p: [get(p["fe"], path) for path in paths]


def keep_alive(p: dict) -> list:
    """Four requests on one client connection."""
    c = http.client.HTTPConnection("127.0.0.1", p["fe"], timeout=10)
    out = []
    for _ in range(4):
        c.request("GET", "/name")
        r = c.getresponse()
        r.read()
        out.append(r.status)
    c.close()
    return out


def unparsable(p: dict) -> bytes:
    with socket.create_connection(("127.0.0.1", p["fe"]), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nBad header\r\n\r\n")
        return s.recv(100).split(b" ", 2)[1]


def client_abort(p: dict) -> str:
    """The client closes while the server is still thinking."""
    s = socket.create_connection(("127.0.0.1", p["fe"]))
    s.sendall(b"GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)
    s.close()
    time.sleep(0.4)             # the server answers meanwhile, to nobody
    return "left"


def two_at_once(prefix: str):
    """Two slow requests at once to a server of maxconn 1: one waits."""
    def step(p: dict) -> list:
        out = []
        t = threading.Thread(target=lambda: out.append(get(p["fe"], prefix + "slow?ms=300")))
        t.start()
        time.sleep(0.05)
        out.append(get(p["fe"], prefix + "slow?ms=300"))
        t.join()
        return sorted(out)
    return step


def tcp_echo(p: dict) -> list:
    """Two TCP sessions, one after the other: each ends (both sides closed)
    before the next one starts, so smax stays 1."""
    out = []
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", p["ft"]), timeout=5) as s:
            s.sendall(b"hello")
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(100):
                data += chunk
            out.append(data)
        time.sleep(0.05)        # the proxy closes its side of the session
    return out


def tcp_refused(p: dict) -> str:
    """A TCP session whose server refuses: retried, then closed."""
    with socket.create_connection(("127.0.0.1", p["ftf"]), timeout=5) as s:
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
    return "closed" if data == b"" else repr(data)


# (step, what the client sees: the same from both)
STEPS = (
    (gets(*["/name"] * 10), [200] * 10),                # both servers up
    (gets("/status/404", "/status/500", "/status/502"), [404, 500, 502]),   # the servers' own
    (gets("/badresponse"), [502]),                      # an invalid response
    (gets("/deny", "/bdeny", "/redirect", "/return"), [403, 403, 302, 200]),  # rules answer
    (keep_alive, [200] * 4),
    (unparsable, b"400"),
    (client_abort, "left"),
    (gets("/retry/name"), [200]),     # the dead server refuses, redispatched to the live one
    (gets("/fail/name"), [503]),      # one dead server: retried three times, then 503
    (gets("/none/name"), [503]),      # nothing usable
    (two_at_once("/queue/"), [200, 200]),   # one waits in the queue
    (two_at_once("/qto/"), [200, 503]),     # one waits too long
    (tcp_echo, [b"hello", b"hello"]),
    (tcp_refused, "closed"),          # TCP: retried three times, then closed
)


# -- comparing ----------------------------------------------------------------------


def close_enough(name: str, h: int, f: int) -> bool:
    """farm's value f of a CLOSE_TO_HAPROXY column against HAProxy's h."""
    if name in ("lastchg", "downtime", "lastsess"):
        return abs(h - f) <= 2          # seconds; farm started a little later
    if name.endswith("rate_max"):
        # a peak per second: HAProxy's window slides, farm samples seconds
        return (h > 0) == (f > 0) and abs(h - f) <= max(2, h)
    if name.endswith("_max") or name == "check_duration":
        return abs(h - f) <= 60 + h // 2     # ms, on a loaded machine
    # Averages: until a backend has seen a few hundred requests, HAProxy
    # divides the sum of the timed ones by all of them (the denied and
    # unanswered ones too); farm averages the timed ones.
    return abs(h - f) <= 60 + h


def differences(h: dict, f: dict) -> list[str]:
    """What differs between HAProxy's rows h and farm's rows f, as text."""
    out = []
    if list(h) != list(f):
        return [f"rows: haproxy {list(h)}\n      farm    {list(f)}"]
    for key, hrow in h.items():
        frow = f[key]
        tcp = hrow["mode"] == "tcp"
        for name in stats.SAME_AS_HAPROXY + tuple(stats.SAME_IN_TCP_ONLY):
            if name in stats.SAME_IN_TCP_ONLY and not tcp:
                continue
            hv = hrow[name]
            if name == "check_status":
                hv = hv.removeprefix("* ")      # HAProxy: a check is running right now
            if hv != frow[name]:
                out.append(f"{key[0]}/{key[1]} {name}: haproxy {hrow[name]!r}, farm {frow[name]!r}")
        for name in stats.CLOSE_TO_HAPROXY:
            hv, fv = hrow[name], frow[name]
            ok = hv == fv if "" in (hv, fv) else close_enough(name, int(hv), int(fv))
            if not ok:
                out.append(f"{key[0]}/{key[1]} {name} (close): haproxy {hv!r}, farm {fv!r}")
    return out


def metrics(port: int) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
    finally:
        c.close()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body) for s in fam.samples}


@pytest.fixture
def peers():
    a, b, echo = HttpBackend("a"), HttpBackend("b"), EchoServer()
    yield {"a": a, "b": b, "echo": echo,
           "dead": f"127.0.0.1:{free_port()}", "dead2": f"127.0.0.1:{free_port()}"}
    a.close()
    b.close()
    echo.close()


def test_show_stat_matches_haproxy(farm_factory, tmp_path, peers):
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("haproxy is not installable here")
    hp = {k: free_port() for k in ("fe", "ft", "ftf", "stats")}
    fp = {k: free_port() for k in ("fe", "ft", "ftf", "stats")}
    (tmp_path / "haproxy").mkdir()
    hap = Haproxy(binary, tmp_path / "haproxy", haproxy_config(hp, peers))
    try:
        fsock = tmp_path / "farm.sock"
        farm_factory(farm_config(fp, fsock, peers))

        def farm_stat() -> dict:
            return parse_show_stat(cli(fsock, "show stat"))

        for read in (hap.show_stat, farm_stat):      # s3 fails its first check
            deadline = time.monotonic() + 5
            while not read()[("be", "s3")]["status"].startswith("DOWN"):
                assert time.monotonic() < deadline, read()[("be", "s3")]
                time.sleep(0.05)
        for step, expected in STEPS:
            assert step(hp) == expected
            assert step(fp) == expected
        deadline = time.monotonic() + SETTLE
        while True:
            h, f = hap.show_stat(), farm_stat()
            diffs = differences(h, f)
            if not diffs or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert not diffs, "farm's show stat differs from HAProxy's:\n" + "\n".join(diffs)
        # the numbers are not all zero: the traffic did exercise the columns
        assert int(f[("be", "BACKEND")]["lbtot"]) > 0 and int(f[("be", "s1")]["smax"]) == 1
        assert int(f[("be_retry", "dead")]["wredis"]) == 1 and int(f[("be_fail", "dead")]["wretr"]) == 3
        assert int(f[("be_qto", "BACKEND")]["econ"]) == 1 and int(f[("be_queue", "BACKEND")]["qmax"]) == 1
        assert int(f[("bt_fail", "dead")]["wretr"]) == 3 and int(f[("bt_fail", "dead")]["econ"]) == 1

        # Prometheus: the same loadbalanced_total from both exporters
        hm, fm = metrics(hp["stats"]), metrics(fp["stats"])
        lb = {k: v for k, v in hm.items() if k[0] in ("haproxy_backend_loadbalanced_total",
                                                       "haproxy_server_loadbalanced_total")}
        assert lb and lb[("haproxy_backend_loadbalanced_total", (("proxy", "be"),))] > 0
        assert {k: fm.get(k) for k in lb} == lb
    finally:
        hap.stop()
