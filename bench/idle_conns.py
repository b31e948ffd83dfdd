#!/usr/bin/env python3
"""Open COUNT keep-alive connections to 127.0.0.1:PORT, one request each,
and hold them idle. Run by bench/compare.py as a separate process, so that
its file descriptors and CPU are not the harness's.

    idle_conns.py PORT COUNT [PATH] [CONCURRENCY]

Protocol on stdin/stdout (one JSON line per answer):
  - when every connection has been tried: {"open": n, "errors": e, ...}
  - on a line "check": how many are still open (the proxy did not close them)
  - on end of stdin: close everything and exit.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time


async def one(port: int, req: bytes, sem: asyncio.Semaphore, held: list, errors: list) -> None:
    async with sem:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            w.write(req)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
            if not head.startswith(b"HTTP/1.1 200"):
                raise ValueError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await asyncio.wait_for(r.readexactly(length), 10)
            held.append((r, w))
        except Exception as e:            # noqa: BLE001 (counted and reported)
            errors.append(f"{type(e).__name__}: {e}")


async def main() -> None:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else "/"
    concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard > 0 else want, hard))
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    sem = asyncio.Semaphore(concurrency)
    held: list = []
    errors: list = []
    t0 = time.monotonic()
    await asyncio.gather(*(one(port, req, sem, held, errors) for _ in range(count)))
    out = {"open": len(held), "errors": len(errors), "first_errors": sorted(set(errors))[:3],
           "seconds": round(time.monotonic() - t0, 2)}
    print(json.dumps(out), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        if line.strip() == "check":
            await asyncio.sleep(0.2)       # let EOFs that arrived be noticed
            still = sum(1 for r, _ in held if not r.at_eof())
            print(json.dumps({"still_open": still}), flush=True)
    for _, w in held:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
