"""`farm check` as a user runs it on the inputs of issue 12: each bad value
exits 1 with file, line and key, and nothing ever prints a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
[frontends.www]
bind = "127.0.0.1:8080"
default_backend = "app"

[backends.app]
[[backends.app.servers]]
name = "s1"
address = "127.0.0.1:9000"
"""


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "farm.toml"
    cfg.write_text(text)
    return subprocess.run([sys.executable, str(ROOT / "master.py"), "check", "-c", str(cfg)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("text, where", [
    ("[global]\nworkers = 99999999999999999999\n" + BASE, ":2: global.workers: must be between 1 and "),
    ("[global]\nmaxconn = 9223372036854775807\n" + BASE, ":2: global.maxconn: must be between 1 and "),
    ('[defaults.timeout]\nclient = "99999999999999999d"\n' + BASE,
     ":2: defaults.timeout.client: duration '99999999999999999d' is too long"),
    ('[global]\nuser = "no-such-user"\n' + BASE, ":2: global.user: unknown user 'no-such-user'"),
    (BASE.replace("127.0.0.1:9000", "app1.internal.invalid:8080"),
     ":8: backends.app.servers[0].address: cannot resolve 'app1.internal.invalid'"),
    ("x = " + "[" * 3000 + "]" * 3000 + "\n" + BASE, ":1: arrays or inline tables nested more than 64 deep"),
    ("frontends = [1, 2]\n", ":1: frontends: expected a table of named sections ([frontends.NAME]), "
                             "got an array"),
    (BASE.replace("[backends.app]\n", '[backends.app]\noption = "httpchk GET /"\n'),
     ":6: backends.app.option: unknown key 'option': HAProxy's 'option httpchk' is the "
     "[backends.app.check] table in farm"),
    (BASE + 'inter = "2s"\n', ":9: backends.app.servers[0].inter: unknown key 'inter': health check "
                              "settings are per backend: interval in [backends.app.check]"),
    (BASE.replace('[backends.app]\n', "[backends.app]\nbalance = roundrobin\n"),
     ':6: TOML syntax error: Invalid value (column 11); strings are quoted in TOML: '
     'balance = "roundrobin"'),
])
def test_check_names_file_line_and_key(tmp_path, text, where):
    r = check(tmp_path, text)
    assert r.returncode == 1
    assert any(line.startswith(f"{tmp_path / 'farm.toml'}{where}") for line in r.stderr.splitlines()), \
        r.stderr
    assert "Traceback" not in r.stderr + r.stdout
