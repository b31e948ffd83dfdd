"""Handing a running farm over to new code (a package upgrade), in place.

When the code on disk has changed since the master started, a reload
re-executes the master (same pid, so systemd keeps tracking it) instead of
forking new workers from old code. What the new image needs travels in a
small JSON file named by the FARM_HANDOFF environment variable:

- the listening sockets, as inherited file descriptors per address and slot
  (the very same sockets: nothing queued in a backlog is lost);
- the pids and generation of the running workers, which the new master
  adopts as a draining generation once its own workers are ready;
- server state (health, admin state, runtime weights) and counter totals,
  carried by backend and server name as on any reload.

This module is pure apart from reading and writing that file and stat()ing
the code; master.py does the exec and the adoption.
"""

from __future__ import annotations

import json
import os
import tempfile

ENV = "FARM_HANDOFF"
VERSION = 1


def code_fingerprint(roots: list[str]) -> dict[str, tuple[int, int]]:
    """path -> (mtime_ns, size) of every .py file under roots (files or
    directories): what a package upgrade changes."""
    out: dict[str, tuple[int, int]] = {}
    for root in roots:
        if os.path.isfile(root):
            files = [root]
        else:
            files = [os.path.join(d, f) for d, _, names in os.walk(root)
                     for f in names if f.endswith(".py")]
        for path in files:
            try:
                st = os.stat(path)
            except OSError:
                continue
            out[path] = (st.st_mtime_ns, st.st_size)
    return out


def write(data: dict) -> str:
    """Write the handoff file (mode 0600); returns its path."""
    fd, path = tempfile.mkstemp(prefix="farm-handoff-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({"version": VERSION, **data}, f)
    return path


def take() -> dict | None:
    """Read and delete the handoff file named in the environment, if any
    (and remove the variable, so that workers and later execs do not see it)."""
    path = os.environ.pop(ENV, None)
    if not path:
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    return data if data.get("version") == VERSION else None
