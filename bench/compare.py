#!/usr/bin/env python3
"""farm against HAProxy and nginx, with equal resources, in the same run.

    bench/run [--quick] [SCENARIO...]        (make bench = bench/run)
    bench/run --list | --show-configs SCENARIO

For each scenario the three proxies (and "direct", the client talking to the
backend itself: the limit) are started side by side in front of the same
backend and measured interleaved, round after round (direct farm haproxy
nginx, direct farm haproxy nginx, ...), so that the noise of a shared
machine falls on all of them alike. Medians over the rounds are reported,
with the ratios farm/HAProxy and farm/nginx. Output: a table on stdout, JSON
and a PNG chart in bench/results/. How and why: bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import configs  # noqa: E402
import load  # noqa: E402
import proxies  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PROXIES = ["farm", "haproxy", "nginx"]
LABEL = {"direct": "direct", "farm": "farm", "haproxy": "HAProxy", "nginx": "nginx"}
NCPU = len(os.sched_getaffinity(0))


@dataclass
class Scenario:
    name: str
    number: int
    title: str
    kind: str = "load"               # load | idle | fixed
    processes: int = 1
    mode: str = "http"
    path: str = "/"
    headers: dict = field(default_factory=dict)
    rules: bool = False
    access_log: bool = False
    ratelimit: bool = False
    conns: int = 64
    metric: str = "rps"              # rps | mbps
    server_maxconn: int = 0          # kind "queue": the one slow server's maxconn
    streams: int = 1                 # h2: concurrent streams per connection (h2load -m)
    tls: str | None = None           # "ec" | "rsa": HTTPS on the proxy's bind with that key
    keys: tuple = ("ec",)            # handshake scenarios: the key types measured
    reuse: bool = False              # handshake scenarios: resumed sessions
    h2_servers: bool = False         # the servers speak HTTP/2 (cleartext, prior knowledge)


SCENARIOS = {s.name: s for s in [
    Scenario("ka1", 1, "HTTP keep-alive, small responses, 1 process"),
    Scenario("ka2", 2, f"HTTP keep-alive, small responses, {NCPU} processes (= cores)",
             processes=NCPU),
    Scenario("close", 3, "HTTP, a new connection per request, 1 process",
             headers={"Connection": "close"}),
    Scenario("rules", 4, "HTTP keep-alive + ACLs, use_backend, set-header, XFF, access log, 1 process",
             rules=True, access_log=True, path=configs.RULES_PATH),
    Scenario("tcp1m", 5, "TCP mode, 1 MiB responses (throughput), 1 process",
             mode="tcp", path="/1m", conns=8, metric="mbps"),
    Scenario("idle", 6, "idle keep-alive client connections: memory per connection, 1 process",
             kind="idle"),
    Scenario("latency", 7, "latency at a fixed request rate, keep-alive, 1 process", kind="fixed",
             conns=32),
    Scenario("cpu", 8, "CPU per request (user+sys of all the proxy's processes), 1 process",
             kind="fixed", conns=32),
    Scenario("maxconn", 9, "server maxconn 4, 10 ms backend, 64 clients, 2 processes: "
             "peak at the server, queue order", kind="queue", processes=2, server_maxconn=4),
    # TLS on the client side (farm and HAProxy, the same certificate files)
    Scenario("tls_new", 10, "HTTPS, a new full TLS handshake per request (openssl s_time -new), 1 process",
             kind="handshake", tls="ec", keys=("ec", "rsa")),
    Scenario("tls_ka", 11, "HTTPS keep-alive, small responses, 1 process", tls="ec"),
    Scenario("tls_bulk", 12, "HTTPS, 1 MiB responses (throughput), 1 process",
             tls="ec", path="/1m", conns=8, metric="mbps"),
    Scenario("tls_resume", 13, "HTTPS, a resumed TLS session per request (openssl s_time -reuse), 1 process",
             kind="handshake", tls="ec", reuse=True),
    Scenario("h2_ka", 14, "HTTP/2 over TLS (ALPN h2), h2load -c 10 -m 10, small responses, 1 process",
             kind="h2", conns=10, streams=10),
    Scenario("h2_many", 15, "HTTP/2 over TLS, 10 connections x 100 concurrent streams, 1 process",
             kind="h2", conns=10, streams=100),
    Scenario("ratelimit", 16, "HTTP keep-alive + per-source request rate limit (stick table), 1 process",
             ratelimit=True),
    Scenario("h2_backend", 17, "HTTP/2 end to end (gRPC's shape): h2load -c 10 -m 10 over TLS, "
             "HTTP/2 (h2c) to the servers, small responses, 1 process",
             kind="h2", conns=10, streams=10, h2_servers=True),
]}
H2_TARGETS = ["farm", "haproxy"]     # nginx proxies HTTP/2 too, but the issue compares these

# The maxconn scenario's backend: bench/slow_backend.py answers after this.
SLOW_DELAY_MS = 10


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values):
    """Half the range over the median: how much the rounds disagree."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    m = statistics.median(values)
    return (max(values) - min(values)) / 2 / m if m else None


class Bench:
    def __init__(self, args):
        self.args = args
        self.workdir = tempfile.mkdtemp(prefix="farm-bench-",
                                        dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        os.chmod(self.workdir, 0o755)
        self.backend = proxies.Backend(self.workdir, processes=NCPU)
        self.results: dict = {}
        self.configs_used: dict[str, str] = {}
        self.stream = configs.have_nginx_stream()
        self.slow: subprocess.Popen | None = None     # the maxconn scenario's backend
        self.slow_port = 0
        self.certs: dict[str, str] | None = None     # TLS scenarios: key type -> PEM

    # -- helpers --
    def spec(self, sc: Scenario, port: int, tag: str, key: str | None = None) -> configs.Spec:
        access = f"{self.workdir}/{tag}-{port}-access.log" if sc.access_log else None
        if sc.kind == "queue":
            return configs.Spec(port=port, servers=[("127.0.0.1", self.slow_port)],
                                workdir=self.workdir, processes=sc.processes,
                                extra={"server_maxconn": sc.server_maxconn})
        tls = None
        if sc.tls:
            if self.certs is None:
                self.certs = configs.make_certificates(self.workdir)
            tls = self.certs[key or sc.tls]
        spec = configs.Spec(port=port, servers=self.backend.servers(), workdir=self.workdir,
                            processes=sc.processes, mode=sc.mode, rules=sc.rules, access_log=access,
                            ratelimit=sc.ratelimit, tls=tls)
        if sc.h2_servers:
            spec.servers = self.backend.h2_servers()
            spec.server_proto = "h2"
        if sc.kind == "h2":
            spec.tls_port = proxies.free_port()
            spec.cert = self.certificate()
        return spec

    def certificate(self) -> str:
        """A self-signed ECDSA P-256 certificate and its key in one PEM
        (what both farm and HAProxy read), made once per run."""
        pem = Path(self.workdir) / "bench-cert.pem"
        if not pem.exists():
            key, crt = Path(self.workdir) / "k.pem", Path(self.workdir) / "c.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
                            str(crt), "-subj", "/CN=localhost", "-days", "2"],
                           check=True, capture_output=True)
            pem.write_bytes(crt.read_bytes() + key.read_bytes())
        return str(pem)

    def start_slow_backend(self) -> None:
        """bench/slow_backend.py on a free port, once per run."""
        if self.slow is not None:
            return
        self.slow_port = proxies.free_port()
        self.slow = subprocess.Popen([sys.executable, str(ROOT / "bench" / "slow_backend.py"),
                                      str(self.slow_port), str(SLOW_DELAY_MS)],
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while self.slow_counts() is None:
            if time.monotonic() > deadline or self.slow.poll() is not None:
                raise RuntimeError("bench/slow_backend.py did not start")
            time.sleep(0.05)

    def slow_counts(self) -> tuple[int, int] | None:
        """(the most requests the slow backend held at once since the last
        call, the number it holds now)."""
        import http.client
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.slow_port, timeout=5)
            c.request("GET", "/_peak")
            peak, now = c.getresponse().read().split()
            return int(peak), int(now)
        except (OSError, ValueError):
            return None

    def slow_peak(self) -> int | None:
        counts = self.slow_counts()
        return counts[0] if counts else None

    def slow_settle(self) -> None:
        """Wait (10 s at most) until the slow backend has held no request for
        half a second: the requests of the last run's closed connections
        (still in the server's socket buffers, read one by one) would count
        in the next run's peak."""
        deadline = time.monotonic() + 10
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            counts = self.slow_counts()
            if counts is None:
                return
            if counts != (0, 0):
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 0.5:
                return
            time.sleep(0.05)

    def targets(self, sc: Scenario) -> list[str]:
        if sc.kind == "h2":
            return list(H2_TARGETS)
        if sc.tls:
            return ["farm", "haproxy"]     # the backend speaks plain HTTP: no direct
        names = ["direct"] + PROXIES
        if sc.mode == "tcp" and not self.stream:
            names.remove("nginx")
        if sc.kind == "idle":
            names.remove("direct")
        if sc.kind == "queue":
            # nginx's open-source upstream has max_conns but no queue: above
            # the limit it answers 502, so it has nothing to compare here.
            # Nor has direct (the server with 64 clients and no limit), and
            # the connections it leaves in the slow server's accept queue
            # would be served during the next target's run.
            names.remove("nginx")
            names.remove("direct")
        return names

    def start(self, sc: Scenario, name: str, key: str | None = None) -> proxies.Proc:
        p = proxies.make(name, self.workdir)
        spec = self.spec(sc, proxies.free_port(), name, key)
        p.spec_tls_port = spec.tls_port
        p.start(spec, probe_path=sc.path)
        if p.config_text:
            self.configs_used[f"{sc.name}/{name}{Path(p.config_path).suffix}"] = p.config_text
        return p

    def script(self, sc: Scenario, rate: float = 0) -> str:
        return load.write_script(f"{self.workdir}/{sc.name}-{int(rate)}.lua", sc.headers, rate)

    def one_load(self, sc: Scenario, p: proxies.Proc, seconds: float, script: str) -> dict:
        cpu0 = p.cpu_seconds() if p.name != "direct" else None
        pids0 = set(p.pids())
        peak: list = []
        if sc.kind == "queue":
            # The peak is read just before wrk stops: when wrk closes its
            # connections, the proxy gives up the requests they were waiting
            # for while the server still sleeps on them, which is an abort,
            # not a maxconn excess.
            self.slow_settle()
            self.slow_peak()                    # start counting afresh
            timer = threading.Timer(max(0.5, round(seconds) - 0.3), lambda: peak.append(self.slow_peak()))
            timer.start()
        r = load.wrk(p.port, sc.path, seconds, sc.conns, script,
                     scheme="https" if sc.tls else "http")
        if sc.kind == "queue":
            timer.join()
            r["server_peak"] = peak[0] if peak else None
        if cpu0 is not None:
            pids1 = set(p.pids())
            r["cpu_s"] = p.cpu_seconds() - cpu0
            r["cpu_us_per_req"] = r["cpu_s"] / r["requests"] * 1e6 if r["requests"] else None
            r["rss_mib_after"] = round(p.rss_bytes() / 2**20, 1)
            if pids1 != pids0:
                # A process left or came (farm's master respawning a worker):
                # the CPU of the one that left is lost, so no CPU figure.
                r["processes_changed"] = {"gone": sorted(pids0 - pids1), "new": sorted(pids1 - pids0)}
                r["cpu_s"] = r["cpu_us_per_req"] = None
        if r.get("lat_p50_us") is not None:
            r["lat_p50_ms"] = r["lat_p50_us"] / 1000
            r["lat_p99_ms"] = r["lat_p99_us"] / 1000
            r["lat_p999_ms"] = r["lat_p999_us"] / 1000
        return r

    def record_death(self, sc: Scenario, t: dict, p: proxies.Proc, rnd: int, when: str) -> None:
        ev = p.evidence()
        ev.update(round=rnd + 1, when=when)
        t.setdefault("deaths", []).append(ev)
        log(f"  [{sc.name}] round {rnd + 1} {p.name} DIED {when}: exit status {ev['returncode']}")
        for line in (ev.get("stderr_tail", "") + "\n" + ev.get("events_tail", "")).strip().splitlines()[-6:]:
            log(f"      {line[:200]}")

    # -- scenario kinds --
    def run_load(self, sc: Scenario, rate: float = 0) -> dict:
        a = self.args
        names = self.targets(sc)
        procs: dict[str, proxies.Proc] = {}
        out: dict = {"targets": {}}
        try:
            for n in names:
                try:
                    procs[n] = self.start(sc, n)
                except Exception as e:          # noqa: BLE001 (reported, the others go on)
                    log(f"  {n}: failed to start: {e}")
                    out["targets"][n] = {"error": f"start: {e}", "runs": []}
            script = self.script(sc, rate)
            scheme = "https" if sc.tls else "http"
            for n, p in procs.items():           # warm-up, not measured
                load.wrk(p.port, sc.path, a.warmup, sc.conns, script, scheme=scheme)
            for rnd in range(a.rounds):
                for n in list(procs):
                    p = procs[n]
                    t = out["targets"].setdefault(n, {"runs": []})
                    if p.died() is not None:
                        # Died since its last run (or during the warm-up):
                        # keep the evidence, start a fresh one, go on.
                        self.record_death(sc, t, p, rnd, "between runs")
                        try:
                            procs[n] = p = self.start(sc, n)
                            load.wrk(p.port, sc.path, a.warmup, sc.conns, script, scheme=scheme)
                        except Exception as e:  # noqa: BLE001
                            t.setdefault("failures", []).append(f"restart: {e}")
                            del procs[n]
                            continue
                    try:
                        r = self.one_load(sc, p, a.duration, script)
                    except Exception as e:      # noqa: BLE001
                        t.setdefault("failures", []).append(str(e))
                        log(f"  [{sc.name}] round {rnd + 1} {n}: {e}")
                        continue
                    if p.died() is not None:    # died during the run: not a measurement
                        self.record_death(sc, t, p, rnd, f"during the run ({r['requests']} requests, "
                                                         f"{r['errors']} errors)")
                        continue
                    t["runs"].append(r)
                    if r.get("processes_changed"):
                        t.setdefault("respawns", []).append(dict(r["processes_changed"], round=rnd + 1,
                                                                 **p.evidence()))
                        log(f"  [{sc.name}] round {rnd + 1} {n}: processes changed during the run: "
                            f"{r['processes_changed']}")
                    cpu = r.get("cpu_us_per_req")
                    log(f"  [{sc.name}] round {rnd + 1}/{a.rounds} {n:8} {r['rps']:10,.0f} req/s"
                        f" {r['mbps']:8,.1f} MB/s  p50 {r['lat_p50_us'] / 1000:6.2f} ms"
                        f"  p99 {r['lat_p99_us'] / 1000:6.2f} ms"
                        + (f"  cpu {cpu:7.1f} us/req" if cpu else "")
                        + (f"  rss {r['rss_mib_after']:.0f} MiB" if "rss_mib_after" in r else "")
                        + (f"  ERRORS {r['errors']}" if r["errors"] else ""))
        finally:
            for p in procs.values():
                p.stop()
        for n, t in out["targets"].items():
            runs = t["runs"]
            t["median"] = {k: median([r.get(k) for r in runs]) for k in
                           ("rps", "mbps", "cpu_us_per_req", "lat_p50_ms", "lat_p99_ms",
                            "lat_p999_ms")}
            t["spread"] = {k: spread([r.get(k) for r in runs]) for k in ("rps", "mbps", "cpu_us_per_req")}
            t["errors"] = sum(r["errors"] for r in runs)
            if sc.kind == "queue":
                # the highest over the rounds, not a median: one excess is a fault
                peaks = [r["server_peak"] for r in runs if r.get("server_peak") is not None]
                t["median"]["server_peak"] = max(peaks) if peaks else None
                if t["median"]["lat_p99_ms"] is not None and t["median"]["lat_p50_ms"] is not None:
                    t["median"]["queue_spread_ms"] = t["median"]["lat_p99_ms"] - t["median"]["lat_p50_ms"]
        if rate:
            out["rate"] = rate
            for n, t in out["targets"].items():
                got = t["median"]["rps"]
                t["sustained"] = bool(got and got >= 0.95 * rate)
        return out

    def run_h2(self, sc: Scenario) -> dict:
        """h2load over TLS (ALPN h2) against farm and HAProxy, interleaved
        round after round; CPU per request and RSS as for the wrk runs."""
        a = self.args
        out: dict = {"targets": {}}
        procs: dict[str, proxies.Proc] = {}
        try:
            for n in self.targets(sc):
                try:
                    p = procs[n] = self.start(sc, n)
                    p.url = f"https://127.0.0.1:{p.spec_tls_port}/"
                except Exception as e:          # noqa: BLE001
                    log(f"  {n}: failed to start: {e}")
                    out["targets"][n] = {"error": f"start: {e}", "runs": []}
            for p in procs.values():
                load.h2load(p.url, a.warmup, sc.conns, sc.streams)
            for rnd in range(a.rounds):
                for n, p in procs.items():
                    t = out["targets"].setdefault(n, {"runs": []})
                    cpu0 = p.cpu_seconds()
                    try:
                        r = load.h2load(p.url, a.duration, sc.conns, sc.streams)
                    except Exception as e:      # noqa: BLE001
                        t.setdefault("failures", []).append(str(e))
                        log(f"  [{sc.name}] round {rnd + 1} {n}: {e}")
                        continue
                    r["cpu_s"] = p.cpu_seconds() - cpu0
                    r["cpu_us_per_req"] = r["cpu_s"] / r["requests"] * 1e6 if r["requests"] else None
                    r["rss_mib_after"] = round(p.rss_bytes() / 2**20, 1)
                    t["runs"].append(r)
                    log(f"  [{sc.name}] round {rnd + 1}/{a.rounds} {n:8} {r['rps']:10,.0f} req/s"
                        f"  cpu {r['cpu_us_per_req'] or 0:7.1f} us/req  rss {r['rss_mib_after']:.0f} MiB"
                        + ("" if r["protocol_h2"] else "  NOT h2!")
                        + (f"  ERRORS {r['errors']}" if r["errors"] else ""))
        finally:
            for p in procs.values():
                p.stop()
        for t in out["targets"].values():
            runs = t["runs"]
            t["median"] = {k: median([r.get(k) for r in runs])
                           for k in ("rps", "cpu_us_per_req", "rss_mib_after")}
            t["spread"] = {k: spread([r.get(k) for r in runs]) for k in ("rps", "cpu_us_per_req")}
            t["errors"] = sum(r["errors"] for r in runs)
        return out

    def run_handshakes(self, sc: Scenario) -> dict:
        """TLS handshakes per second (and proxy CPU per handshake), per key
        type of sc.keys: farm and HAProxy side by side, interleaved rounds,
        openssl s_time as the client (load.s_time)."""
        a = self.args
        out: dict = {"targets": {}, "keys": list(sc.keys)}
        for key in sc.keys:
            procs: dict[str, proxies.Proc] = {}
            try:
                for n in self.targets(sc):
                    try:
                        procs[n] = self.start(sc, n, key)
                    except Exception as e:      # noqa: BLE001 (reported, the others go on)
                        log(f"  {n}: failed to start: {e}")
                        out["targets"].setdefault(n, {"runs": []})["error"] = f"start: {e}"
                for p in procs.values():        # warm-up, not measured
                    load.s_time(p.port, a.warmup, sc.reuse)
                for rnd in range(a.rounds):
                    for n, p in procs.items():
                        t = out["targets"].setdefault(n, {"runs": []})
                        cpu0 = p.cpu_seconds()
                        try:
                            r = load.s_time(p.port, a.duration, sc.reuse)
                        except Exception as e:  # noqa: BLE001
                            t.setdefault("failures", []).append(str(e))
                            continue
                        cpu = p.cpu_seconds() - cpu0
                        r["key"] = key
                        r["cpu_us_per_hs"] = cpu / r["connections"] * 1e6 if r["connections"] else None
                        t["runs"].append(r)
                        log(f"  [{sc.name}] {key} round {rnd + 1}/{a.rounds} {n:8} {r['hps']:10,.0f} handshakes/s"
                            f"  cpu {r['cpu_us_per_hs'] or 0:7.0f} us/handshake")
            finally:
                for p in procs.values():
                    p.stop()
        for n, t in out["targets"].items():
            t["median"], t["spread"] = {}, {}
            for key in sc.keys:
                runs = [r for r in t["runs"] if r["key"] == key]
                for m in ("hps", "cpu_us_per_hs"):
                    t["median"][f"{m}_{key}"] = median([r.get(m) for r in runs])
                    t["spread"][f"{m}_{key}"] = spread([r.get(m) for r in runs])
            t["errors"] = 0
        return out

    def run_idle(self, sc: Scenario) -> dict:
        a = self.args
        out: dict = {"targets": {}, "connections": a.idle_conns}
        warm = self.script(sc)
        for rnd in range(a.idle_rounds):
            for n in self.targets(sc):
                t = out["targets"].setdefault(n, {"runs": []})
                try:
                    p = self.start(sc, n)
                except Exception as e:          # noqa: BLE001
                    t["error"] = f"start: {e}"
                    log(f"  {n}: failed to start: {e}")
                    continue
                client = None
                try:
                    load.wrk(p.port, sc.path, a.warmup, 64, warm)
                    time.sleep(0.5)
                    rss0, fds0 = p.rss_bytes(), p.num_fds()
                    client = load.IdleClient(p.port, a.idle_conns)
                    opened = client.opened()
                    time.sleep(1.0)
                    rss1, fds1 = p.rss_bytes(), p.num_fds()
                    still = client.check()["still_open"]
                    if p.died() is not None:
                        self.record_death(sc, t, p, rnd, "while holding the idle connections")
                        continue
                    r = {"rss_before": rss0, "rss_after": rss1, "fds_before": fds0, "fds_after": fds1,
                         "open": opened["open"], "open_errors": opened["errors"],
                         "first_errors": opened["first_errors"], "open_seconds": opened["seconds"],
                         "still_open": still,
                         "kib_per_conn": (rss1 - rss0) / 1024 / opened["open"] if opened["open"] else None}
                    t["runs"].append(r)
                    log(f"  [idle] round {rnd + 1}/{a.idle_rounds} {n:8} {opened['open']} open"
                        f" ({opened['errors']} errors) in {opened['seconds']} s,"
                        f" RSS {rss0 / 2**20:.1f} -> {rss1 / 2**20:.1f} MiB,"
                        f" {r['kib_per_conn'] or 0:.2f} KiB/conn, fds {fds0} -> {fds1},"
                        f" still open {still}")
                except Exception as e:          # noqa: BLE001
                    t.setdefault("failures", []).append(str(e))
                    log(f"  [idle] {n}: {e}")
                finally:
                    if client:
                        client.close()
                    p.stop()
        for t in out["targets"].values():
            t["median"] = {"kib_per_conn": median([r["kib_per_conn"] for r in t["runs"]]),
                           "rss_before_mib": median([r["rss_before"] / 2**20 for r in t["runs"]])}
            t["spread"] = {"kib_per_conn": spread([r["kib_per_conn"] for r in t["runs"]])}
            t["errors"] = sum(r["open_errors"] + (r["open"] - r["still_open"]) for r in t["runs"])
        return out

    # -- the whole run --
    def run(self, names: list[str]) -> dict:
        a = self.args
        self.backend.start_backend()
        started = dt.datetime.now()
        meta = {
            "started": started.isoformat(timespec="seconds"),
            "quick": a.quick, "rounds": a.rounds, "seconds_per_run": a.duration,
            "warmup_s": a.warmup, "idle_connections": a.idle_conns, "idle_rounds": a.idle_rounds,
            "fixed_rate": a.rate, "cpus": NCPU, "rlimit_nofile": configs.FD_BUDGET,
            "maxconn": configs.MAXCONN, "loadavg_start": os.getloadavg(),
            "versions": versions(), "nginx_stream_module": self.stream,
            "backend": {"servers": self.backend.ports, "nginx_workers": NCPU,
                        "response_body_bytes": len(configs.RESPONSE_BODY)},
        }
        fixed_done = None
        for name in names:
            sc = SCENARIOS[name]
            log(f"== {sc.number}. {sc.name}: {sc.title}")
            t0 = time.monotonic()
            try:
                if sc.kind == "load":
                    res = self.run_load(sc)
                elif sc.kind == "queue":
                    self.start_slow_backend()
                    res = self.run_load(sc)
                elif sc.kind == "h2":
                    res = self.run_h2(sc)
                elif sc.kind == "handshake":
                    res = self.run_handshakes(sc)
                elif sc.kind == "idle":
                    res = self.run_idle(sc)
                else:                     # latency and cpu share one set of fixed-rate runs
                    if fixed_done is None:
                        fixed_done = self.run_load(sc, rate=a.rate)
                    res = fixed_done
            except Exception:             # noqa: BLE001 (one broken scenario must not lose the run)
                log(f"  [{sc.name}] FAILED:\n{traceback.format_exc()}")
                res = {"targets": {}, "failed": True}
            res = dict(res, title=sc.title, number=sc.number, seconds=round(time.monotonic() - t0, 1))
            self.results[name] = res
        meta["loadavg_end"] = os.getloadavg()
        meta["elapsed_s"] = round((dt.datetime.now() - started).total_seconds(), 1)
        return {"meta": meta, "scenarios": self.results}

    def close(self) -> None:
        if self.slow is not None:
            self.slow.kill()
            self.slow.wait()
        self.backend.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def versions() -> dict:
    def first_line(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return None
    farm = re.search(r'__version__\s*=\s*"([^"]+)"', (ROOT / "farm/__init__.py").read_text())
    commit = None
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"farm": farm.group(1) if farm else None, "farm_commit": commit,
            "python": sys.version.split()[0],
            "haproxy": first_line([proxies.HAPROXY, "-v"]), "nginx": first_line([proxies.NGINX, "-v"]),
            "wrk": first_line([load.WRK, "--version"]), "kernel": os.uname().release}


# -- the report ---------------------------------------------------------------

def rows(results: dict) -> list[dict]:
    """One row per (scenario, metric): values per target and the ratios."""
    out = []

    def add(name, metric, key, fmt, better, targets=None, note=""):
        res = results[name]
        row = {"scenario": name, "number": res["number"], "metric": metric, "key": key,
               "better": better, "fmt": fmt, "values": {}, "spread": {}, "flags": {}, "note": note}
        for n, t in (targets or res["targets"]).items():
            row["values"][n] = t.get("median", {}).get(key)
            row["spread"][n] = t.get("spread", {}).get(key)
            flags = []
            if t.get("error"):
                flags.append(t["error"].splitlines()[0][:160])
            elif t.get("failures") and not t.get("runs"):
                flags.append(t["failures"][0].splitlines()[0][:160])
            if t.get("respawns"):
                flags.append(f"a process died and was replaced during {len(t['respawns'])} run(s)")
            if t.get("deaths"):
                flags.append(f"died {len(t['deaths'])}x (exit status "
                             f"{', '.join(str(d['returncode']) for d in t['deaths'])}; runs discarded, "
                             f"restarted; evidence in the JSON)")
            if t.get("errors"):
                flags.append(f"{t['errors']} errors")
            if "sustained" in t and not t["sustained"]:
                flags.append("rate not sustained")
            row["flags"][n] = flags
        f = row["values"].get("farm")
        for other in ("haproxy", "nginx"):
            o = row["values"].get(other)
            row[f"farm/{other}"] = f / o if f and o else None
        out.append(row)

    for name in results:
        res = results[name]
        if name in ("ka1", "ka2", "close", "rules", "ratelimit"):
            add(name, "req/s", "rps", "{:,.0f}", "higher")
            add(name, "CPU us/req", "cpu_us_per_req", "{:,.1f}", "lower")
            if name == "close":     # at saturation; shows pauses (GC...) under connection churn
                add(name, "p99 ms (saturated)", "lat_p99_ms", "{:,.1f}", "lower")
        elif name in ("h2_ka", "h2_many", "h2_backend"):
            add(name, "req/s", "rps", "{:,.0f}", "higher")
            add(name, "CPU us/req", "cpu_us_per_req", "{:,.1f}", "lower")
            add(name, "RSS MiB (loaded)", "rss_mib_after", "{:,.0f}", "lower")
        elif name in ("tcp1m", "tls_bulk"):
            add(name, "MB/s", "mbps", "{:,.0f}", "higher")
            add(name, "CPU us/MiB", "cpu_us_per_req", "{:,.0f}", "lower")
        elif name == "maxconn":
            add(name, "req/s", "rps", "{:,.0f}", "higher")
            add(name, "server peak (max)", "server_peak", "{:,.0f}", "lower",
                note=f"at most {SCENARIOS[name].server_maxconn} is right")
            add(name, "p99 - p50 ms", "queue_spread_ms", "{:,.1f}", "lower")
        elif name == "tls_ka":
            add(name, "req/s", "rps", "{:,.0f}", "higher")
            add(name, "CPU us/req", "cpu_us_per_req", "{:,.1f}", "lower")
        elif name in ("tls_new", "tls_resume"):
            for key in res.get("keys", ["ec"]):
                label = {"ec": "ECDSA P-256", "rsa": "RSA 2048"}.get(key, key)
                add(name, f"handshakes/s {label}", f"hps_{key}", "{:,.0f}", "higher")
                add(name, f"CPU us/hs {label}", f"cpu_us_per_hs_{key}", "{:,.0f}", "lower")
        elif name == "idle":
            add(name, f"KiB/conn ({res['connections']:,})", "kib_per_conn", "{:,.2f}", "lower")
        elif name == "latency":
            add(name, f"p50 ms @{res['rate']:,.0f}/s", "lat_p50_ms", "{:,.3f}", "lower")
            add(name, f"p99 ms @{res['rate']:,.0f}/s", "lat_p99_ms", "{:,.3f}", "lower")
        elif name == "cpu":
            add(name, f"CPU us/req @{res['rate']:,.0f}/s", "cpu_us_per_req", "{:,.1f}", "lower")
            if "ka1" in results:
                add("ka1", "CPU us/req saturated", "cpu_us_per_req", "{:,.1f}", "lower",
                    note="from scenario 1")
                out[-1]["scenario"] = "cpu"
                out[-1]["number"] = 8
    return out


def table(result: dict) -> str:
    meta = result["meta"]
    rs = rows(result["scenarios"])
    cols = ["direct"] + PROXIES
    head = (f"{'#':>1} {'scenario':8} {'metric':22}" + "".join(f"{LABEL[c]:>15}" for c in cols)
            + f"{'farm/HAProxy':>14}{'farm/nginx':>12}")
    lines = [head, "-" * len(head)]
    notes = []
    for r in rs:
        cells = []
        for c in cols:
            v = r["values"].get(c)
            if v is None:
                if r["flags"].get(c):
                    cells.append(f"{'failed!':>15}")
                    notes.append(f"{r['scenario']} {LABEL[c]}: {', '.join(r['flags'][c])}")
                else:
                    cells.append(f"{'-':>15}")
                continue
            s = r["fmt"].format(v)
            sp = r["spread"].get(c)
            if sp is not None and sp >= 0.005:
                s += f" ±{sp * 100:.0f}%"
            if r["flags"].get(c):
                s += "!"
                notes.append(f"{r['scenario']} {r['metric']} {LABEL[c]}: {', '.join(r['flags'][c])}")
            cells.append(f"{s:>15}")
        ratios = "".join(f"{(format(r[k], '.2f') if r[k] else '-'):>{w}}"
                         for k, w in (("farm/haproxy", 14), ("farm/nginx", 12)))
        lines.append(f"{r['number']:>1} {r['scenario']:8} {r['metric']:22}" + "".join(cells) + ratios)
    lines.append("")
    lines.append(f"medians of {meta['rounds']} rounds x {meta['seconds_per_run']} s per target "
                 f"(idle: {meta['idle_rounds']} rounds); ±x% = half the range of the rounds; "
                 f"{meta['cpus']} CPUs, load average {meta['loadavg_start'][0]:.1f} at start, "
                 f"{meta['loadavg_end'][0]:.1f} at end; wrk -t1; {meta['elapsed_s']:.0f} s in all")
    lines.append("higher is better: req/s, MB/s; lower is better: CPU, KiB/conn, latency. "
                 "direct = the client on the backend itself (the limit).")
    if not meta["nginx_stream_module"] and "tcp1m" in result["scenarios"]:
        lines.append("nginx has no stream module here: the TCP scenario compares farm and HAProxy only.")
    for n in dict.fromkeys(notes):
        lines.append("! " + n)
    return "\n".join(lines)


def chart(result: dict, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        log("matplotlib is not installed: no chart (bench/run installs it into .venv)")
        return False
    rs = rows(result["scenarios"])
    groups = [[r for r in rs if r["better"] == "higher"], [r for r in rs if r["better"] == "lower"]]
    groups = [g for g in groups if g]
    if not groups:
        return False
    fig, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 5.5), squeeze=False)
    titles = {"higher": "throughput: farm ÷ other (above 1: farm is faster)",
              "lower": "cost: farm ÷ other (above 1: farm uses more / is slower)"}
    for ax, g in zip(axes[0], groups):
        labels = [f"{r['number']}. {r['scenario']}\n{r['metric']}" for r in g]
        xs = range(len(g))
        w = 0.38
        for i, (other, color) in enumerate((("haproxy", "#1f77b4"), ("nginx", "#2ca02c"))):
            vals = [r[f"farm/{other}"] or 0 for r in g]
            bars = ax.bar([x + (i - 0.5) * w for x in xs], vals, w, label=f"farm ÷ {LABEL[other]}",
                          color=color)
            for b, v in zip(bars, vals):
                if v:
                    ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, v), ha="center",
                                va="bottom", fontsize=7)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, fontsize=7, rotation=30, ha="right")
        ax.set_title(titles[g[0]["better"]], fontsize=10)
        if g[0]["better"] == "lower":
            ax.set_yscale("log")
            fmt = matplotlib.ticker.FormatStrFormatter("%g")
            ax.yaxis.set_major_formatter(fmt)
            ax.yaxis.set_minor_formatter(fmt)
            ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.legend(fontsize=8)
    m = result["meta"]
    fig.suptitle(f"farm vs HAProxy vs nginx, {m['started']}, {m['cpus']} CPUs, "
                 f"{m['rounds']}x{m['seconds_per_run']}s medians"
                 + (" (quick)" if m["quick"] else "") + " - shared machine, noisy", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# -- main ---------------------------------------------------------------------

def raise_nofile(want: int = 200000) -> int:
    """Raise RLIMIT_NOFILE (inherited by every process started here) as far
    as allowed: beyond the hard limit needs CAP_SYS_RESOURCE, which a
    container may not grant. Returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        if hard != resource.RLIM_INFINITY:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def show_configs(name: str) -> None:
    sc = SCENARIOS[name]
    queue = sc.kind == "queue"         # one slow server with a maxconn (Bench.spec)
    spec = configs.Spec(port=8000, servers=[("127.0.0.1", 8001)] + ([] if queue else [("127.0.0.1", 8002)]),
                        extra={"server_maxconn": sc.server_maxconn} if queue else {},
                        workdir="/dev/shm/farm-bench-XXXX", processes=sc.processes, mode=sc.mode,
                        rules=sc.rules, ratelimit=sc.ratelimit,
                        access_log="/dev/shm/farm-bench-XXXX/access.log" if sc.access_log else None,
                        tls=f"/dev/shm/farm-bench-XXXX/bench-{sc.tls}.pem" if sc.tls else None)
    files = [("farm.toml", configs.farm_config(spec)), ("haproxy.cfg", configs.haproxy_config(spec))]
    if not sc.tls:                     # the TLS scenarios compare farm and HAProxy
        files.append(("nginx.conf", configs.nginx_config(spec, "nginx-proxy")))
    for title, text in files:
        print(f"# ---- {title} ({name}) ----\n{text}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                    help=f"any of {', '.join(SCENARIOS)} (default: all)")
    ap.add_argument("--quick", action="store_true", help="about 2 minutes: 2 rounds x 2 s, 2,000 idle conns")
    ap.add_argument("--rounds", type=int, help="rounds per scenario (default 3, quick 2)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run (default 5, quick 2)")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured warm-up per target")
    ap.add_argument("--idle-conns", type=int,
                    help="idle connections (default 10000, or less when RLIMIT_NOFILE bites; quick 2000)")
    ap.add_argument("--idle-rounds", type=int, help="rounds of the idle scenario (default 2, quick 1)")
    ap.add_argument("--rate", type=float, default=1000, help="requests/s of the fixed-rate scenarios")
    ap.add_argument("--out", default=str(RESULTS), help="directory for the JSON and the chart")
    ap.add_argument("--list", action="store_true", help="list the scenarios")
    ap.add_argument("--show-configs", metavar="SCENARIO", help="print the three proxies' configs")
    a = ap.parse_args(argv)
    if a.list:
        for s in SCENARIOS.values():
            print(f"{s.number}. {s.name:8} {s.title}")
        return 0
    if a.show_configs:
        configs.set_fd_budget(raise_nofile())
        show_configs(a.show_configs)
        return 0
    unknown = [s for s in a.scenarios if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    names = [s for s in SCENARIOS if s in a.scenarios] if a.scenarios else list(SCENARIOS)
    a.rounds = a.rounds or (2 if a.quick else 3)
    a.duration = a.duration or (2 if a.quick else 5)
    a.idle_rounds = a.idle_rounds or (1 if a.quick else 2)
    tools = [proxies.HAPROXY, proxies.NGINX, load.WRK]
    if any(SCENARIOS[n].kind == "h2" for n in names):
        tools.append(load.H2LOAD)
    for tool in tools:
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing: run bench/run (it installs haproxy, nginx-light and wrk)")
    nofile = raise_nofile()
    configs.set_fd_budget(nofile)
    if not a.idle_conns:
        # 10,000 unless the fd budget bites: HAProxy holds at most MAXCONN
        # clients (it reserves a server fd for each), and the pool of server
        # connections needs a few hundred more.
        a.idle_conns = 2000 if a.quick else min(10000, (configs.MAXCONN - 500) // 1000 * 1000)
    bench = Bench(a)
    try:
        result = bench.run(names)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        bench.close()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    result["configs"] = bench.configs_used
    result["table"] = rows(result["scenarios"])
    text = table(result)
    (out / f"bench-{stamp}.json").write_text(json.dumps(result, indent=1, default=str))
    (out / f"bench-{stamp}.txt").write_text(text + "\n")
    png = out / f"bench-{stamp}.png"
    drew = chart(result, png)
    print(text)
    print(f"\nresults: {out / f'bench-{stamp}.json'}" + (f", chart: {png}" if drew else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
