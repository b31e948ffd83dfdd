"""farm/build.py (which build runs) and the .pxd files of the compiled
modules (docs/building.md).

A compiled class has exactly the attributes its .pxd declares: an
attribute set in the .py but missing from the .pxd works pure and fails
compiled (AttributeError at run time), so the two are compared here for
every class a .pxd declares, before any build runs."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from farm import build

ROOT = Path(__file__).resolve().parents[2]


def pxd_classes(path: Path) -> dict[str, set[str]]:
    """cdef class name -> the attributes it declares (cdef [public] ...)."""
    out: dict[str, set[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        m = re.match(r"cdef class (\w+)", line)
        if m:
            current = out.setdefault(m.group(1), set())
            continue
        if current is None or not line.startswith("    cdef "):
            continue
        decl = re.sub(r"\s+#.*$", "", line.strip())
        decl = re.sub(r"^cdef\s+(public\s+|readonly\s+)?", "", decl)
        # "TYPE name, name" (the type may be a dotted or two-word C type)
        words = decl.replace(",", " , ").split()
        names, i = [], 0
        while i < len(words) and words[i] not in (",",) and i + 1 < len(words) and words[i + 1] != ",":
            i += 1          # skip the type's words
        names = [w for w in words[i:] if w != ","]
        current.update(n for n in names if n.isidentifier())
    return out


def py_attributes(path: Path) -> dict[str, set[str]]:
    """class name -> the attributes its methods assign on self."""
    tree = ast.parse(path.read_text())
    out: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            attrs = out.setdefault(node.name, set())
            for n in ast.walk(node):
                if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                        and n.value.id == "self" and isinstance(n.ctx, ast.Store)):
                    attrs.add(n.attr)
    return out


PXDS = sorted(p for p in (ROOT / "workers").rglob("*.pxd") if "cdef class" in p.read_text())


def test_every_compiled_module_is_a_source_file():
    for module in build.COMPILED:
        assert build.source_paths(module)[0].endswith(".py"), module


ALL_DECLARED = {cls: names for pxd in PXDS for cls, names in pxd_classes(pxd).items()}


def declared_with_bases(cls: str, source: str, own: set[str]) -> set[str]:
    """What cls declares (own: its .pxd's declarations; two modules may
    have classes of the same name), with what its base classes (any .pxd,
    and theirs in turn) declare."""
    names = set(own)
    for base in ALL_DECLARED:
        if base != cls and re.search(rf"class {cls}\({base}\)", source):
            names |= declared_with_bases(base, source, ALL_DECLARED[base])
    return names


@pytest.mark.parametrize("pxd", PXDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_pxd_declares_every_attribute_the_class_sets(pxd):
    declared = pxd_classes(pxd)
    py = pxd.with_suffix(".py")
    assigned = py_attributes(py)
    assert declared, f"{pxd}: no cdef class"
    source = py.read_text() + "".join(p.with_suffix(".py").read_text() for p in PXDS)
    for cls in declared:
        missing = assigned.get(cls, set()) - declared_with_bases(cls, source, declared[cls])
        assert not missing, f"{pxd.name}: {cls} sets {sorted(missing)} but the .pxd does not declare them"


def run_python(code: str, **env) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=ROOT, env={**os.environ, **env}).stdout.strip()


def test_farm_pure_loads_every_compiled_module_from_its_source():
    code = ("import importlib, farm.build as b\n"
            "print(b.describe())\n"
            "print(all(importlib.import_module(m).__file__.endswith('.py') for m in b.COMPILED))")
    out = run_python(code, FARM_PURE="1").splitlines()
    assert out == ["pure (FARM_PURE)", "True"]


def test_describe_says_which_modules_run_pure_and_why():
    build.STATE.clear()
    try:
        build.STATE.update({m: "compiled" for m in build.COMPILED})
        assert build.describe() == "compiled"
        build.STATE["workers.http1"] = "stale"
        assert build.describe() == "partly compiled (pure: http1 stale)"
        build.STATE.update({m: "not built" for m in build.COMPILED})
        assert build.describe() == "pure"
    finally:
        build.STATE.clear()
        build.install()


def test_a_module_edited_since_its_build_runs_from_its_source(tmp_path, monkeypatch):
    """decide() compares the sources with what setup.py recorded."""
    monkeypatch.delenv(build.PURE_ENV, raising=False)
    module = build.COMPILED[0]
    if build.extension_path(module) is None:
        pytest.skip("no compiled build here (make build)")
    record = tmp_path / "compiled.json"
    record.write_text('{"%s": "0000"}' % module)
    saved = build.RECORD
    build.RECORD = str(record)
    try:
        assert build.decide()[module] == "stale"
    finally:
        build.RECORD = saved
