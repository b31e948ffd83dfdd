#!/usr/bin/env python3
"""Where a farm worker spends its time under one benchmark load: farm (one
worker) runs with its worker loop under cProfile, wrk drives it, and the
hottest functions are printed. A tool for farm's developers; it changes
nothing in farm (the profiler is wrapped around Worker.run in this process
before the master forks).

    bench/run must have run once (it installs wrk and nginx); then:
    .venv/bin/python bench/profile_farm.py [ka1|close|rules|h2_ka|h2_many|h2_backend|ratelimit|tls_ka|tls_bulk|tls_new|tls_resume] [--seconds 5] [--top 25]

Only 127.0.0.1, bounded in time. cProfile roughly doubles the cost of each
Python call, so read the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def worker_main(cfg_path: str, prof_path: str) -> None:
    """The child: farm's master, with Worker.run profiled in each worker."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    from workers import worker as worker_mod
    import master

    orig = worker_mod.Worker.run

    def run(self, ready_fd):
        prof = cProfile.Profile()
        prof.enable()
        try:
            orig(self, ready_fd)
        finally:
            prof.disable()
            prof.dump_stats(f"{prof_path}.{os.getpid()}")

    worker_mod.Worker.run = run
    sys.exit(master.run(cfg_path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", nargs="?", default="ka1", choices=["ka1", "close", "rules", "h2_ka", "h2_many", "h2_backend", "ratelimit", "tls_ka", "tls_bulk", "tls_new", "tls_resume"])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--sort", default="tottime", choices=["tottime", "cumulative", "ncalls"])
    ap.add_argument("--save", metavar="FILE", help="also write the merged profile here (for pstats)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        worker_main(*a.child)
        return 0
    sys.path.insert(0, str(HERE))
    import compare
    import configs
    import load
    import proxies

    sc = compare.SCENARIOS[a.scenario]
    configs.set_fd_budget(compare.raise_nofile())
    workdir = tempfile.mkdtemp(prefix="farm-profile-", dir="/dev/shm")
    backend = proxies.Backend(workdir, processes=compare.NCPU)
    backend.start_backend()
    farm = None
    try:
        port = proxies.free_port()
        access = f"{workdir}/access.log" if sc.access_log else None
        tls = configs.make_certificates(workdir)[sc.tls] if sc.tls else None
        spec = configs.Spec(port=port, servers=backend.servers(), workdir=workdir, mode=sc.mode,
                            rules=sc.rules, access_log=access, ratelimit=sc.ratelimit, tls=tls)
        if sc.h2_servers:
            spec.servers = backend.h2_servers()
            spec.server_proto = "h2"
        cfg = f"{workdir}/farm.toml"
        Path(cfg).write_text(configs.farm_config(spec))
        prof = f"{workdir}/worker.prof"
        farm = subprocess.Popen([sys.executable, __file__, "--child", cfg, prof], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=open(f"{workdir}/farm.stderr", "wb"))
        deadline = time.monotonic() + 20
        while True:
            try:
                if proxies.http_get(port, sc.path, tls=bool(tls)).startswith(b"HTTP/1.1 200"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or farm.poll() is not None:
                sys.exit("farm did not start: " + Path(f"{workdir}/farm.stderr").read_text()[-2000:])
            time.sleep(0.1)
        if sc.kind == "h2":
            # cleartext HTTP/2 (prior knowledge): the HTTP/2 layer without TLS
            r = load.h2load(f"http://127.0.0.1:{port}{sc.path}", a.seconds, sc.conns, sc.streams)
            print(f"{a.scenario}: {r['rps']:,.0f} req/s under cProfile, {r['errors']} errors")
        elif sc.kind == "handshake":
            r = load.s_time(port, a.seconds, sc.reuse)
            print(f"{a.scenario}: {r['hps']:,.0f} handshakes/s under cProfile")
        else:
            script = load.write_script(f"{workdir}/p.lua", sc.headers)
            r = load.wrk(port, sc.path, a.seconds, sc.conns, script, scheme="https" if tls else "http")
            print(f"{a.scenario}: {r['rps']:,.0f} req/s under cProfile, {r['errors']} errors")
        os.kill(farm.pid, signal.SIGTERM)
        farm.wait(20)
        profs = [p for p in Path(workdir).glob("worker.prof.*")]
        if not profs:
            sys.exit("no profile written")
        stats = pstats.Stats(str(profs[0]))
        for p in profs[1:]:
            stats.add(str(p))
        if a.save:
            stats.dump_stats(a.save)
        stats.strip_dirs().sort_stats(a.sort).print_stats(a.top)
        stats.print_stats("epoll|socket.socket|posix")
    finally:
        if farm and farm.poll() is None:
            os.killpg(farm.pid, signal.SIGKILL)
        backend.stop()
        subprocess.run(["rm", "-rf", workdir])
    return 0


if __name__ == "__main__":
    sys.exit(main())
