"""Builds farm's compiled modules; everything else is in pyproject.toml.

farm runs from its .py sources alone; the compiled modules are optional
and only make it faster (docs/building.md):
- the per-request modules of farm/build.py COMPILED, compiled by Cython 3
  in pure-Python mode (the .py is the source; types in the .pxd beside it);
- farm._atomics (farm/_atomics.c): lock-free atomic operations on shared
  memory; without it farm/atomics.py serializes them with a lock.

What cannot be built here (no C compiler, no Cython >= 3, a build error)
is reported and skipped: that module runs from its .py, and farm says so
at start (`farm --version`, `show info`). The SHA-256 of each compiled
module's sources goes to farm/compiled.json, so that a module edited since
(and not rebuilt) runs from its .py instead of a stale build
(farm/build.py).
"""

from __future__ import annotations

import json
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from farm import build  # noqa: E402  (the module list and the fingerprints)

CYTHON_DIRECTIVES = {
    "language_level": 3,
    # types come from the .pxd files only; annotations stay documentation
    # (a "bytes" annotation would otherwise refuse a bytearray)
    "annotation_typing": False,
    "boundscheck": False,
    "wraparound": True,
}


def warn(msg: str) -> None:
    print(f"farm build: {msg}", file=sys.stderr)


def cython_extensions() -> list:
    if os.environ.get("FARM_PURE_BUILD"):
        warn("FARM_PURE_BUILD set: the per-request modules stay pure Python")
        return []
    try:
        import Cython
        from Cython.Build import cythonize
    except ImportError:
        warn("Cython is not installed: the per-request modules stay pure Python")
        return []
    if int(Cython.__version__.split(".")[0]) < 3:
        warn(f"Cython {Cython.__version__} is older than 3: the per-request modules stay pure Python")
        return []
    out = []
    for m in build.COMPILED:    # one at a time: a module Cython refuses stays pure alone
        ext = Extension(m, [m.replace(".", "/") + ".py"], extra_compile_args=["-O2"])
        try:
            out += cythonize([ext], compiler_directives=CYTHON_DIRECTIVES,
                             build_dir="build/cython", quiet=True)
        except Exception as e:
            warn(f"{m} not translated by Cython ({e}); its pure-Python form is used")
    return out


class OptionalBuildExt(build_ext):
    """build_ext that skips, with a warning, what cannot be compiled here,
    and records the sources of what was."""

    def run(self):
        self.built: list[str] = []
        try:
            super().run()
        except Exception as e:   # no compiler at all
            warn(f"compiled modules not built ({e}); farm runs pure")
        record = {m: build.fingerprint(m) for m in self.built if m in build.COMPILED}
        with open(build.RECORD, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            warn(f"{ext.name} not built ({e}); its pure-Python form is used")
            return
        self.built.append(ext.name)


def extensions() -> list:
    # FARM_NO_EXTENSIONS: the Makefile's `pip install -e`, which would
    # otherwise compile everything once in a temporary directory before
    # `make build` compiles it again in place.
    if os.environ.get("FARM_NO_EXTENSIONS"):
        return []
    return [Extension("farm._atomics", ["farm/_atomics.c"], extra_compile_args=["-O2"]),
            *cython_extensions()]


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
)
