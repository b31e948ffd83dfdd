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
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--scenario", default="ka1", choices=("ka1", "rules", "close"))
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
    targets = {}
    try:
        for i, d in enumerate(a.dirs):
            env = dict(common)
            if i == 1:
                env.update(e.split("=", 1) for e in a.env_b)
            label = f"{i}:{d.resolve().name}"[:10]
            p = farm_at(d.resolve(), label, env)(workdir)
            rules = a.scenario == "rules"
            spec = configs.Spec(port=proxies.free_port(), servers=backend.servers(), workdir=workdir,
                                processes=1, mode="http", rules=rules,
                                access_log=f"{workdir}/access-{i}.log" if rules else None)
            p.start(spec)
            targets[label] = p
        headers = {"Connection": "close"} if a.scenario == "close" else None
        path = configs.RULES_PATH if a.scenario == "rules" else "/"
        script = load.write_script(f"{workdir}/ab.lua", headers)
        res = load.interleaved(targets, path, a.rounds, a.seconds, script)
        base = None
        print(f"{'target':10} {'req/s':>10} {'CPU us/req':>11} {'user us':>8} {'vs first':>9}")
        for name, m in res.items():
            cpu = statistics.median(m["cpu"])
            base = base or cpu
            print(f"{name:10} {statistics.median(m['rps']):10,.0f} {cpu:11.1f} "
                  f"{statistics.median(m['user']):8.1f} {cpu / base:9.2f}")
        print(f"medians of {a.rounds} rounds x {a.seconds} s; scenario {a.scenario}; one worker each")
    finally:
        for t in targets.values():
            t.stop()
        backend.stop()
        subprocess.run(["rm", "-rf", workdir])
    return 0


if __name__ == "__main__":
    sys.exit(main())
