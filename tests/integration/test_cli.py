"""The farm command as a user runs it: check (the demo: test_demo.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FARM = [sys.executable, str(ROOT / "master.py")]

THREE_ERRORS = """\
[global]
workers = 2

[frontends.www]
bind = "0.0.0.0:80"
default_backend = "ap"

[backends.app]
balance = "roundrobni"
[backends.app.timeout]
connect = "5 parsecs"
[[backends.app.servers]]
name = "s1"
address = "10.0.0.1:8080"
"""


def test_check_prints_all_three_errors_with_lines(tmp_path):
    cfg = tmp_path / "farm.toml"
    cfg.write_text(THREE_ERRORS)
    r = subprocess.run(FARM + ["check", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert any(l.startswith(f"{cfg}:6: frontends.www.default_backend:") and "did you mean 'app'" in l
               for l in lines), lines
    assert any(l.startswith(f"{cfg}:9: backends.app.balance:") and "roundrobin" in l for l in lines), lines
    assert any(l.startswith(f"{cfg}:11: backends.app.timeout.connect:") for l in lines), lines
    assert lines[-1] == f"{cfg}: 3 errors"


def test_check_valid_config_prints_a_summary(tmp_path):
    r = subprocess.run(FARM + ["check", "-c", str(ROOT / "config/examples/tcp.toml")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert r.stdout.strip() == (f"{ROOT / 'config/examples/tcp.toml'}: valid: 1 frontend, 1 backend, "
                                "3 servers, 2 workers")


def test_shipped_configs_are_valid():
    for path in [ROOT / "config/farm.toml", *sorted((ROOT / "config/examples").glob("*.toml"))]:
        r = subprocess.run(FARM + ["check", "-q", "-c", str(path)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, (path, r.stderr)
