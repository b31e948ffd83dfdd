#!/usr/bin/env python3
"""A/B: two or more checkouts of farm on one scenario, side by side.

    .venv/bin/python bench/ab.py [--scenario ka1] [--rounds 5] [--seconds 4] DIR [DIR...]

Each DIR is a farm checkout (a `git worktree add /tmp/base HEAD~1` makes
one); each runs with this checkout's .venv python, one worker, in front of
the same nginx backend, and wrk -t1 loads them in interleaved rounds (the
machine's drift hits every DIR alike). Prints req/s and CPU microseconds
per request (user + system of the farm processes), medians over the
rounds: the tool for deciding whether a change to the hot path pays.
`--env NAME=VALUE` sets an environment variable for every farm (e.g.
FARM_PURE=1 to run the pure-Python import of a compiled checkout);
`--env-b` only for the second DIR (so one DIR twice compares two builds).

    .venv/bin/python bench/ab.py --scenarios ka1,rules,ratelimit [DIR]

runs one checkout (default this one) in several scenarios instead,
interleaved the same way: the tool for targets stated against ka1
("rules within 20 % of ka1", "ratelimit within 15 %"), which rounds run
minutes apart by bench/run would blur on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402
import configs  # noqa: E402
import load  # noqa: E402
import proxies  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("ka1", "rules", "close", "ratelimit")


def farm_at(checkout: Path, label: str, env: dict):
    """A proxies.Farm running the master.py of checkout."""

    class Checkout(proxies.Farm):
        def __init__(self, workdir: str):
            super().__init__(workdir)
            self.name = label

        def command(self) -> list[str]:
            return ["/usr/bin/env", *(f"{k}={v}" for k, v in env.items()),
                    str(ROOT / ".venv/bin/python"), str(checkout / "master.py"),
                    "run", "-c", self.config_path]
    return Checkout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="*", type=Path)
    ap.add_argument("--scenario", default="ka1", choices=SCENARIOS)
    ap.add_argument("--scenarios", help="comma-separated scenarios of one checkout, interleaved")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for every farm")
    ap.add_argument("--env-b", action="append", default=[], help="NAME=VALUE for the second DIR")
    a = ap.parse_args()
    common = dict(e.split("=", 1) for e in a.env)
    configs.set_fd_budget(compare.raise_nofile())
    workdir = tempfile.mkdtemp(prefix="farm-ab-", dir="/dev/shm")
    backend = proxies.Backend(workdir, processes=compare.NCPU)
    backend.start_backend()
    if a.scenarios:
        names = a.scenarios.split(",")
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown or len(a.dirs) > 1:
            ap.error(f"--scenarios takes {', '.join(SCENARIOS)} and at most one DIR")
        runs = [(a.dirs[0] if a.dirs else ROOT, n) for n in names]
    elif a.dirs:
        runs = [(d, a.scenario) for d in a.dirs]
    else:
        ap.error("give DIRs to compare, or --scenarios")
    if a.scenario == "close" or (a.scenarios and "close" in names):
        if len({n for _, n in runs}) > 1:
            ap.error("close uses its own request headers: compare it alone")
    targets = {}
    paths = {}
    try:
        for i, (d, name) in enumerate(runs):
            env = dict(common)
            if i == 1:
                env.update(e.split("=", 1) for e in a.env_b)
            label = (name if a.scenarios else f"{i}:{d.resolve().name}")[:10]
            p = farm_at(d.resolve(), label, env)(workdir)
            rules = name == "rules"
            spec = configs.Spec(port=proxies.free_port(), servers=backend.servers(), workdir=workdir,
                                processes=1, mode="http", rules=rules, ratelimit=name == "ratelimit",
                                access_log=f"{workdir}/access-{i}.log" if rules else None)
            p.start(spec)
            targets[label] = p
            paths[label] = configs.RULES_PATH if rules else "/"
        headers = {"Connection": "close"} if runs[0][1] == "close" else None
        script = load.write_script(f"{workdir}/ab.lua", headers)
        res = load.interleaved(targets, paths, a.rounds, a.seconds, script)
        base = base_rps = None
        print(f"{'target':10} {'req/s':>10} {'vs first':>9} {'CPU us/req':>11} {'user us':>8} "
              f"{'vs first':>9}")
        for name, m in res.items():
            cpu = statistics.median(m["cpu"])
            rps = statistics.median(m["rps"])
            base = base or cpu
            base_rps = base_rps or rps
            print(f"{name:10} {rps:10,.0f} {rps / base_rps:9.2f} {cpu:11.1f} "
                  f"{statistics.median(m['user']):8.1f} {cpu / base:9.2f}")
        what = f"scenarios {a.scenarios}" if a.scenarios else f"scenario {a.scenario}"
        print(f"medians of {a.rounds} rounds x {a.seconds} s; {what}; one worker each")
    finally:
        for t in targets.values():
            t.stop()
        backend.stop()
        subprocess.run(["rm", "-rf", workdir])
    return 0


if __name__ == "__main__":
    sys.exit(main())
