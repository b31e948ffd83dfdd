#!/usr/bin/env python3
"""What each part of scenario 4's rule set costs farm: one farm worker per
variant (nothing, the access log alone, option_forwardfor alone, the ACLs
with their deny rule and use_backend entries alone, the set-header alone,
everything), measured interleaved under scenario 4's load (wrk -t1 -c64,
keep-alive, the scenario's request path) against the same nginx backend. A
tool for farm's developers: it says where scenario 4's distance from
scenario 1 comes from.

    bench/run must have run once (it installs wrk and nginx); then:
    .venv/bin/python bench/features.py [--rounds 3] [--seconds 4]

CPU is user + system of farm's processes over each load divided by its
requests; "user" is the user part alone (the Python), which moves less
with the machine's scheduling than the system part. Only 127.0.0.1,
bounded in time; every process started here is stopped.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare  # noqa: E402
import configs  # noqa: E402
import load  # noqa: E402
import proxies  # noqa: E402

# name -> (rule features on, access log on)
VARIANTS = {
    "nothing": ((), False),
    "log": ((), True),
    "forwardfor": (("forwardfor",), False),
    "acl": (("acl",), False),
    "set_header": (("set_header",), False),
    "all": (configs.RULE_FEATURES, True),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    a = ap.parse_args()
    configs.set_fd_budget(compare.raise_nofile())
    workdir = tempfile.mkdtemp(prefix="farm-features-", dir="/dev/shm")
    backend = proxies.Backend(workdir, processes=compare.NCPU)
    backend.start_backend()
    farms: dict[str, proxies.Proc] = {}
    path = configs.RULES_PATH
    try:
        for name, (features, log) in VARIANTS.items():
            port = proxies.free_port()
            spec = configs.Spec(port=port, servers=backend.servers(), workdir=workdir,
                                rules=bool(features), rule_features=features,
                                access_log=f"{workdir}/{name}-access.log" if log else None)
            p = proxies.make("farm", workdir)
            p.start(spec, probe_path=path)
            farms[name] = p
        script = load.write_script(f"{workdir}/f.lua")
        res = load.interleaved(farms, path, a.rounds, a.seconds, script)
        base_cpu = statistics.median(res["nothing"]["cpu"])
        base_user = statistics.median(res["nothing"]["user"])
        print(f"{'variant':11} {'req/s':>8} {'CPU us/req':>11} {'+CPU':>6} {'user us/req':>12} {'+user':>6}")
        for name, m in res.items():
            c, u = statistics.median(m["cpu"]), statistics.median(m["user"])
            print(f"{name:11} {statistics.median(m['rps']):8,.0f} {c:11.1f} {c - base_cpu:+6.1f}"
                  f" {u:12.1f} {u - base_user:+6.1f}")
        print(f"medians of {a.rounds} rounds x {a.seconds} s; one farm worker each; wrk -t1 -c64 {path}")
    finally:
        for p in farms.values():
            p.stop()
        backend.stop()
        subprocess.run(["rm", "-rf", workdir])
    return 0


if __name__ == "__main__":
    sys.exit(main())
