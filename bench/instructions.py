#!/usr/bin/env python3
"""Instructions per request of one farm worker, counted by callgrind.

    .venv/bin/python bench/instructions.py [--scenario ka1] [--seconds 8] [--pure] [DIR...]

A wall-clock A/B on a shared 2-core machine moves by 10 % from one round to
the next; callgrind's instruction counts do not (the same build and load
give the same count to within half a percent). So a change on the hot path
is judged here first, then confirmed in time with bench/ab.py and make
bench. For each DIR (a farm checkout; default this one) farm runs with
one worker under valgrind --tool=callgrind in front of the bench's nginx,
twice: once with a short warm-up load only, once with the warm-up plus
`--seconds` of wrk -t1 -c16; the difference of the worker's user-space
instruction counts, divided by the difference of requests, is the cost
of a request (syscalls are not counted: they are the kernel's; nor is the
start, which both runs pay). --keep DIR saves both runs' callgrind files
and a per-function table of the difference per request (where the
instructions of a request go), from callgrind_annotate.
--pure runs each DIR with FARM_PURE=1 as well (the pure-Python import of
the same sources), so one checkout gives both numbers.
"""

from __future__ import annotations

import argparse
import glob
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402
import configs  # noqa: E402
import load  # noqa: E402
import proxies  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def farm_under_callgrind(checkout: Path, label: str, pure: bool, out: str):
    class Counted(proxies.Farm):
        name = label

        def command(self) -> list[str]:
            env = ["/usr/bin/env", "FARM_PURE=1"] if pure else []
            return [*env, "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
                    str(ROOT / ".venv/bin/python"), str(checkout / "master.py"),
                    "run", "-c", self.config_path]

        def wait_ready(self, path: str, timeout: float = 20.0) -> None:
            super().wait_ready(path, timeout=240.0)     # valgrind starts slowly
    return Counted


def worker_file(out: str, pid: int) -> str:
    return sorted(glob.glob(f"{out}.{pid}*"))[-1]


def total(path: str) -> int:
    text = Path(path).read_text(errors="replace")
    return int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))


def per_function(path: str) -> dict[str, int]:
    """function -> self instructions, from callgrind_annotate."""
    text = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", "--inclusive=no",
                           path],
                          capture_output=True, text=True).stdout
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line and "=>" not in line:
            out[m.group(2)] = out.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return out


def difference_table(idle: str, loaded: str, requests: int, top: int = 60) -> str:
    a, b = per_function(idle), per_function(loaded)
    rows = sorted(((b.get(k, 0) - a.get(k, 0)) / requests, k) for k in set(a) | set(b))
    rows = [r for r in reversed(rows)][:top]
    return "\n".join(f"{v:10,.0f}  {k}" for v, k in rows)


def run_load(sc, spec: configs.Spec, seconds: int, conns: int, script: str) -> int:
    """Requests served by `seconds` of the scenario's load: wrk (plain or
    https), or h2load over TLS (ALPN h2) for the HTTP/2 scenarios, whose
    connections and streams are the scenario's own."""
    if sc.kind == "h2":
        r = load.h2load(f"https://127.0.0.1:{spec.tls_port}/", seconds, sc.conns, sc.streams,
                        timeout=120)
        return r["requests"]
    return load.wrk(spec.port, sc.path, seconds, conns, script, timeout=60 if seconds <= 2 else 120,
                    scheme="https" if sc.tls else "http")["requests"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="*", type=Path, default=[ROOT])
    ap.add_argument("--scenario", default="ka1", choices=("ka1", "rules", "close", "ratelimit", "tls_ka", "h2_ka", "h2_many",
                             "h2_backend"))
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--pure", action="store_true", help="also each DIR with FARM_PURE=1")
    ap.add_argument("--keep", metavar="DIR", help="copy the loaded run's callgrind file there "
                    "(callgrind_annotate reads it)")
    a = ap.parse_args()
    sc = compare.SCENARIOS[a.scenario]
    configs.set_fd_budget(compare.raise_nofile())
    workdir = tempfile.mkdtemp(prefix="farm-ir-", dir="/dev/shm")
    backend = proxies.Backend(workdir, processes=1)
    backend.start_backend()
    certs = configs.make_certificates(workdir) if (sc.tls or sc.kind == "h2") else {}
    variants = [(d.resolve(), False) for d in a.dirs]
    if a.pure:
        variants += [(d.resolve(), True) for d in a.dirs]
    print(f"scenario {a.scenario}: user-space instructions per request of one worker "
          f"(callgrind; wrk -t1 -c{a.conns}, {a.seconds} s)")
    try:
        script = load.write_script(f"{workdir}/ir.lua", sc.headers)
        for i, (d, pure) in enumerate(variants):
            label = f"{d.name}{' pure' if pure else ''}"
            runs = []
            for seconds in (0, a.seconds):
                out = f"{workdir}/cg-{i}-{seconds}"
                p = farm_under_callgrind(d, label, pure, out)(workdir)
                access = f"{workdir}/access-{i}.log" if sc.access_log else None
                spec = configs.Spec(port=proxies.free_port(), servers=backend.servers(),
                                    workdir=workdir, processes=1, mode="http", rules=sc.rules,
                                    ratelimit=sc.ratelimit, access_log=access,
                                    tls=certs[sc.tls] if sc.tls else None)
                if sc.kind == "h2":
                    spec.tls_port, spec.cert = proxies.free_port(), certs["ec"]
                if sc.h2_servers:
                    spec.servers, spec.server_proto = backend.h2_servers(), "h2"
                p.start(spec, probe_path=sc.path)
                worker = [q.pid for q in p.processes() if q.pid != p.popen.pid][0]
                try:
                    n = run_load(sc, spec, 2, a.conns, script)
                    if seconds:
                        n += run_load(sc, spec, seconds, a.conns, script)
                finally:
                    p.stop(grace=60)
                time.sleep(0.5)
                runs.append((worker_file(out, worker), n))
            (f0, n0), (f1, n1) = runs
            n = max(1, n1 - n0)
            print(f"{label:24} {(total(f1) - total(f0)) / n:10,.0f} instructions/request "
                  f"({n:,} requests)", flush=True)
            if a.keep:
                keep = Path(a.keep)
                keep.mkdir(parents=True, exist_ok=True)
                tag = label.replace(" ", "-")
                subprocess.run(["cp", f0, keep / f"callgrind.{tag}.idle"])
                subprocess.run(["cp", f1, keep / f"callgrind.{tag}.loaded"])
                (keep / f"per-request.{tag}.txt").write_text(difference_table(f0, f1, n) + "\n")
    finally:
        backend.stop()
        subprocess.run(["rm", "-rf", workdir])
    return 0


if __name__ == "__main__":
    sys.exit(main())
