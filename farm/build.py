"""How farm is built: which modules are compiled, and which build runs.

The modules on the per-request path (COMPILED) are compiled by setup.py
with Cython in pure-Python mode: the .py stays the source, the types live
in a .pxd beside it, and the extension module (.so) is built next to the
.py, where Python's import takes it before the .py (docs/building.md).

This module decides, before any of them is imported, which of the two
runs (install(), called by farm/__init__.py):
- with FARM_PURE=1 in the environment, the .py of every compiled module
  (profiling, the pure unit-test run, and a fallback to try);
- the .py of a module whose .so was built from another version of its
  .py or .pxd than the one on disk now (setup.py records the sources'
  SHA-256 in farm/compiled.json): an edited module runs as edited, never
  as a stale build;
- else the .so where there is one.

describe() says which build runs ("compiled", "pure", "partly compiled"),
for `farm --version`, `show info` (Build info) and the master's start log.
No I/O but reading the sources and farm/compiled.json once, at import.
"""

from __future__ import annotations

import hashlib
import importlib.machinery as machinery
import json
import os
import sys

# The per-request modules, compiled when a compiler is there (setup.py).
COMPILED = (
    "workers.http1",
    "workers.loop",
    "workers.transport",
    "workers.clientconn",
    "workers.h1conn",
    "workers.accept",
    "workers.linger",
    "workers.serverside",
    "workers.stream",
    "workers.server",
    "workers.runtime",
    "workers.counting",
    "workers.lb.base",
    "workers.lb.pool",
    "workers.lb.roundrobin",
    "workers.lb.leastconn",
    "workers.h2.events",
    "workers.h2.frames",
    "workers.h2.hpack",
    "workers.h2.messages",
    "workers.h2.conn",
    "workers.h2.relay",
    "workers.h2conn",
    "workers.h2server",
    "farm.tables",
    "workers.tables",
    "workers.lazyhead",
    "workers.rules",
    "farm.conditions",
    "farm.logs",
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD = os.path.join(ROOT, "farm", "compiled.json")
PURE_ENV = "FARM_PURE"


def source_paths(module: str) -> list[str]:
    """The files a compiled module is built from: its .py, and its .pxd if any."""
    base = os.path.join(ROOT, *module.split("."))
    return [p for p in (base + ".py", base + ".pxd") if os.path.exists(p)]


def fingerprint(module: str) -> str:
    """SHA-256 over the module's sources (what setup.py records)."""
    h = hashlib.sha256()
    for path in source_paths(module):
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def extension_path(module: str) -> str | None:
    """The compiled file of module beside its .py, or None."""
    base = os.path.join(ROOT, *module.split("."))
    for suffix in machinery.EXTENSION_SUFFIXES:
        if os.path.exists(base + suffix):
            return base + suffix
    return None


def decide() -> dict[str, str]:
    """module -> "compiled", or why it runs from its .py: "FARM_PURE",
    "not built", "stale" (edited since it was built)."""
    pure_env = bool(os.environ.get(PURE_ENV))
    try:
        with open(RECORD) as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        recorded = {}
    out = {}
    for module in COMPILED:
        if pure_env:
            out[module] = "FARM_PURE"
        elif extension_path(module) is None:
            out[module] = "not built"
        elif recorded.get(module) != fingerprint(module):
            out[module] = "stale"
        else:
            out[module] = "compiled"
    return out


class SourceFinder:
    """A meta path finder that loads the listed modules from their .py even
    where a compiled extension sits beside it."""

    def __init__(self, modules: set[str]):
        self.modules = modules

    def find_spec(self, name, path=None, target=None):
        if name not in self.modules:
            return None
        for entry in (path if path is not None else sys.path):
            finder = machinery.FileFinder(entry or ".", (machinery.SourceFileLoader,
                                                         machinery.SOURCE_SUFFIXES))
            spec = finder.find_spec(name, target)
            if spec is not None:
                return spec
        return None


STATE: dict[str, str] = {}


def install() -> None:
    """Decide (once) and put the finder in front for the modules that must
    run from their .py."""
    if STATE:
        return
    STATE.update(decide())
    pure = {m for m, why in STATE.items() if why != "compiled"}
    if pure and not any(isinstance(f, SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, SourceFinder(pure))


def describe() -> str:
    """"compiled", "pure" or "partly compiled" (with what runs pure, why)."""
    install()
    pure = {m: why for m, why in STATE.items() if why != "compiled"}
    if not pure:
        return "compiled"
    if len(pure) == len(STATE):
        reasons = sorted(set(pure.values()))
        return "pure" + ("" if reasons == ["not built"] else f" ({', '.join(reasons)})")
    listed = ", ".join(f"{m.rpartition('.')[2]} {why}" for m, why in sorted(pure.items()))
    return f"partly compiled (pure: {listed})"
