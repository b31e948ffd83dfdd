"""The load generators: wrk (throughput, and paced for latency) and the idle
connection client (bench/idle_conns.py, a separate process).

wrk runs with one thread (-t1): on this 2-core machine wrk needs a core of
its own, and it is the same client for every proxy. A generated Lua script
reports wrk's own counters and latency percentiles as one JSON line from
done(). For the fixed-rate scenario the same script paces requests with
wrk's delay() hook against a schedule on CLOCK_MONOTONIC (LuaJIT ffi): the
n-th request of the thread is due at start + n/rate, whichever connection is
free sends it, and a schedule more than one second behind is reset (the
achieved rate is then checked against the target). Latency is wrk's own:
from the write of a request to the end of its response; it is not corrected
for coordinated omission (wrk2 is not in Debian), which matters only when a
proxy does not keep up with the rate, and that run is flagged.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

WRK = "/usr/bin/wrk"

_LUA_COMMON = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,' ..
    '"lat_mean_us":%.1f,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
"""

_LUA_PACED = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
int clock_gettime(int clk, bench_timespec_t *tp);
]]
local ts = ffi.new("bench_timespec_t")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval = 1000 / RATE
local due = nil
function delay()
  local now = now_ms()
  if due == nil or due < now - 1000 then due = now end
  due = due + interval
  local d = due - now
  if d <= 0 then return 0 end
  return math.floor(d + 0.5)
end
"""


def write_script(path: str, headers: dict[str, str] | None = None, rate: float = 0) -> str:
    parts = []
    for k, v in (headers or {}).items():
        parts.append(f'wrk.headers["{k}"] = "{v}"\n')
    if rate:
        parts.append(_LUA_PACED.replace("RATE", repr(float(rate))))
    parts.append(_LUA_COMMON)
    Path(path).write_text("".join(parts))
    return path


def wrk(port: int, path: str, seconds: float, conns: int, script: str,
        timeout: float = 5.0, scheme: str = "http") -> dict:
    """Run wrk once; its counters as a dict (plus the wall time)."""
    url = f"{scheme}://127.0.0.1:{port}{path}"
    cmd = [WRK, "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", f"--timeout={timeout:g}s",
           "-s", script, url]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    wall = time.monotonic() - t0
    for line in p.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            r = json.loads(line[len("BENCH_RESULT "):])
            r["wall_s"] = wall
            secs = r["duration_us"] / 1e6
            r["rps"] = r["requests"] / secs if secs else 0.0
            r["mbps"] = r["bytes"] / secs / 1e6 if secs else 0.0
            r["errors"] = sum(r[k] for k in ("err_connect", "err_read", "err_write",
                                             "err_status", "err_timeout"))
            return r
    raise RuntimeError(f"wrk gave no result (exit {p.returncode}): {p.stdout[-800:]} {p.stderr[-800:]}")


def interleaved(targets: dict, path: str, rounds: int, seconds: float, script: str,
                conns: int = 64) -> dict:
    """Load each target in turn, round after round (after a 1 s warm-up
    each), with wrk on path (a str, or a dict name -> path when the
    targets serve different scenarios). targets: name -> proxies.Proc. Returns name ->
    {"rps": [...], "cpu": [...], "user": [...]}, one value per round, CPU
    in microseconds per request (user + system, and user alone) of the
    target's processes. Progress goes to stderr."""
    paths = path if isinstance(path, dict) else {name: path for name in targets}
    for name, p in targets.items():
        wrk(p.port, paths[name], 1, conns, script)
    out = {name: {"rps": [], "cpu": [], "user": []} for name in targets}
    for rnd in range(rounds):
        for name, p in targets.items():
            c0, u0 = p.cpu_seconds(), p.cpu_seconds(user_only=True)
            r = wrk(p.port, paths[name], seconds, conns, script)
            c1, u1 = p.cpu_seconds(), p.cpu_seconds(user_only=True)
            n = r["requests"] or 1
            m = out[name]
            m["rps"].append(r["rps"])
            m["cpu"].append((c1 - c0) / n * 1e6)
            m["user"].append((u1 - u0) / n * 1e6)
            print(f"  round {rnd + 1}/{rounds} {name:10} {r['rps']:10,.0f} req/s"
                  f"  cpu {m['cpu'][-1]:5.1f} us/req  errors {r['errors']}", file=sys.stderr)
    return out


class IdleClient:
    """bench/idle_conns.py in its own process (its own fd limit and CPU)."""

    def __init__(self, port: int, count: int, path: str = "/", concurrency: int = 200):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("idle_conns.py")), str(port), str(count),
             path, str(concurrency)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)

    def opened(self, timeout: float = 120.0) -> dict:
        return self._read(timeout)

    def check(self, timeout: float = 30.0) -> dict:
        self.proc.stdin.write("check\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def _read(self, timeout: float) -> dict:
        import select
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    break
                return json.loads(line)
        err = ""
        if self.proc.poll() is not None:
            err = self.proc.stderr.read()[-800:]
        raise RuntimeError(f"idle client gave no answer in {timeout}s {err}")

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(5)


H2LOAD = "/usr/bin/h2load"       # nghttp2-client


def h2load(url: str, seconds: float, clients: int, streams: int, timeout: float = 60) -> dict:
    """Run h2load once (one thread) for `seconds` on url with `clients`
    connections and `streams` concurrent streams each; its counters as a
    dict: requests (succeeded), errors (failed + errored + non-2xx), rps,
    mbps (of the whole traffic h2load counts)."""
    cmd = [H2LOAD, "-t1", f"-c{clients}", f"-m{streams}", f"-D{max(1, round(seconds))}", url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + timeout)
    out = p.stdout
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s, ([\d.]+)([KMG]?B)/s", out)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored", out)
    st = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (m and r and st):
        raise RuntimeError(f"h2load gave no result (exit {p.returncode}): {out[-800:]} {p.stderr[-800:]}")
    scale = {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}[m.group(5)]
    ok = int(r.group(4))
    errors = int(r.group(5)) + int(r.group(6)) + int(st.group(3)) + int(st.group(4))
    return {"requests": ok, "errors": errors, "rps": float(m.group(3)),
            "mbps": float(m.group(4)) * scale,
            "protocol_h2": "Application protocol: h2" in out}


def s_time(port: int, seconds: float, reuse: bool = False, clients: int = 2) -> dict:
    """TLS handshakes per second with `openssl s_time` (OpenSSL's own
    client, in C): `clients` processes side by side, each opening new
    connections for `seconds`, each sending GET / and reading the answer
    (-www): full handshakes (-new), or resumed ones (-reuse: the session
    of the first connection, again and again). Returns {"connections",
    "seconds", "hps"} summed over the clients."""
    mode = "-reuse" if reuse else "-new"
    cmd = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", mode, "-time",
           str(max(1, round(seconds))), "-www", "/"]
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(clients)]
    total = 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 60)
        # "N connections in T real seconds, B bytes read per connection"
        m = re.findall(r"(\d+) connections in \d+ real seconds", out)
        if not m:
            raise RuntimeError(f"openssl s_time gave no result: {out[-400:]}")
        total += int(m[-1])
    # wall time of the whole (s_time prints whole seconds only)
    real = time.monotonic() - t0
    return {"connections": total, "seconds": real, "hps": total / real if real else 0.0}
