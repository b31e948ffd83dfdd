#!/usr/bin/env python3
"""TCP relay throughput: farm (1 worker, TCP mode) against a direct
connection to the same server, in the same run.

A C-speed source (os.sendfile from a file in /dev/shm) sends SIZE bytes per
connection; the client reads them with recv_into and measures MB/s. With
--splice-after it also sweeps farm's splice threshold (FARM_SPLICE_AFTER) to
show where splice starts to pay.

    .venv/bin/python bench/tcp_relay.py              # 1 MiB and 64 MiB flows
    .venv/bin/python bench/tcp_relay.py --sweep      # splice threshold sweep

Only 127.0.0.1; every run is bounded in time and count.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Source:
    """Sends the first `size` bytes of a file to every connection (sendfile)."""

    def __init__(self, path: str):
        self.path = path
        self.size = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.send, args=(c,), daemon=True).start()

    def send(self, c: socket.socket) -> None:
        with c, open(self.path, "rb") as f:
            left, off = self.size, 0
            while left:
                n = os.sendfile(c.fileno(), f.fileno(), off, left)
                off += n
                left -= n


def fetch(port: int, size: int, buf: bytearray) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        got = 0
        while True:
            n = s.recv_into(buf)
            if not n:
                break
            got += n
    assert got == size, (got, size)


def measure(port: int, size: int, seconds: float, max_conns: int) -> float:
    """MB/s over sequential connections of `size` bytes, for ~seconds."""
    buf = bytearray(1 << 20)
    moved, t0 = 0, time.perf_counter()
    conns = 0
    while time.perf_counter() - t0 < seconds and conns < max_conns:
        fetch(port, size, buf)
        moved += size
        conns += 1
    return moved / (time.perf_counter() - t0) / 1e6


def start_farm(upstream: int, splice_after: int | None, tmp: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cfg = Path(tmp) / f"farm-{port}.toml"
    cfg.write_text(f"""
[global]
workers = 1
[log]
events = "{tmp}/events.log"
access = "off"
[defaults]
mode = "tcp"
[frontends.fe]
bind = "127.0.0.1:{port}"
default_backend = "be"
[backends.be]
[[backends.be.servers]]
name = "src"
address = "127.0.0.1:{upstream}"
""")
    env = dict(os.environ)
    if splice_after is not None:
        env["FARM_SPLICE_AFTER"] = str(splice_after)
    p = subprocess.Popen([sys.executable, str(ROOT / "master.py"), "run", "-c", str(cfg)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("farm did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", action="store_true", help="sweep the splice threshold")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        data = Path(tmp) / "payload"
        data.write_bytes(os.urandom(64 << 20))
        src = Source(str(data))
        if not args.sweep:
            farm, port = start_farm(src.port, None, tmp)
            try:
                print(f"{'flow':>8} {'direct MB/s':>12} {'farm MB/s':>10} {'ratio':>6}")
                for size in (1 << 20, 64 << 20):
                    src.size = size
                    direct = measure(src.port, size, args.seconds, 100000)
                    via = measure(port, size, args.seconds, 100000)
                    print(f"{size >> 20:>6}MiB {direct:>12.0f} {via:>10.0f} {via / direct:>6.2f}")
            finally:
                farm.terminate()
                farm.wait(10)
            return
        print("splice threshold sweep (MB/s through farm, 1 worker):")
        sizes = [16 << 10, 64 << 10, 256 << 10, 1 << 20, 16 << 20]
        thresholds = {"never": 1 << 62, "0": 0, "16k": 16 << 10, "64k": 64 << 10, "256k": 256 << 10}
        print(f"{'flow':>8} " + " ".join(f"{k:>8}" for k in thresholds))
        farms = {k: start_farm(src.port, v, tmp) for k, v in thresholds.items()}
        try:
            for size in sizes:
                src.size = size
                row = [measure(port, size, args.seconds, 100000) for _, port in farms.values()]
                label = f"{size >> 10}KiB" if size < (1 << 20) else f"{size >> 20}MiB"
                print(f"{label:>8} " + " ".join(f"{r:>8.0f}" for r in row))
        finally:
            for p, _ in farms.values():
                p.terminate()
                p.wait(10)


if __name__ == "__main__":
    main()
