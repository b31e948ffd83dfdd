"""The client of the HA failover test, run inside the client's network
namespace: `python -m tests.integration.ha_client URL SECONDS OUT`.

A bounded loop (SECONDS, at most 2000 requests): one GET to URL every
20 ms on a fresh connection with a 0.5 s timeout, each recorded as a JSON
line in OUT as it ends: {"t0": start, "t1": end (time.monotonic(), the
same clock as the test's), "ok": a 200 came back, "node": the response's
X-Farm-Node, "error": what failed}.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from urllib.parse import urlsplit

MAX_REQUESTS = 2000
PAUSE = 0.02
TIMEOUT = 0.5


def one(host: str, port: int, path: str) -> dict:
    t0 = time.monotonic()
    rec = {"t0": t0, "ok": False, "node": None, "error": None}
    c = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        rec["ok"] = r.status == 200
        rec["node"] = r.getheader("X-Farm-Node")
        if r.status != 200:
            rec["error"] = f"status {r.status}"
    except (OSError, http.client.HTTPException) as e:
        rec["error"] = f"{type(e).__name__}: {e}"
    finally:
        c.close()
    rec["t1"] = time.monotonic()
    return rec


def main(url: str, seconds: float, out: str) -> None:
    u = urlsplit(url)
    end = time.monotonic() + seconds
    with open(out, "w") as f:
        for _ in range(MAX_REQUESTS):
            if time.monotonic() >= end:
                break
            f.write(json.dumps(one(u.hostname, u.port or 80, u.path or "/")) + "\n")
            f.flush()
            time.sleep(PAUSE)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3])
