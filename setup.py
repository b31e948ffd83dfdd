"""Builds farm's compiled modules; everything else is in pyproject.toml.

farm runs from its .py sources alone; the compiled modules are optional
and only make it faster (docs/building.md):
- farm._atomics (farm/_atomics.c): lock-free atomic operations on shared
  memory; without it farm/atomics.py serializes them with a lock.

A missing compiler (or a build error) is reported and skipped: farm then
runs pure and says so at start (`farm --version`, `show info`).
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that skips, with a warning, what cannot be compiled here."""

    def run(self):
        try:
            super().run()
        except Exception as e:   # no compiler at all
            print(f"farm: compiled modules not built ({e}); farm runs pure", file=sys.stderr)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            print(f"farm: {ext.name} not built ({e}); its pure-Python form is used",
                  file=sys.stderr)


setup(
    ext_modules=[Extension("farm._atomics", ["farm/_atomics.c"], extra_compile_args=["-O2"])],
    cmdclass={"build_ext": OptionalBuildExt},
)
