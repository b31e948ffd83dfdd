"""The farm command as a user runs it: check (the demo: test_demo.py)."""

from __future__ import annotations

import http.client
import subprocess
import sys
from pathlib import Path

from tests.integration.backends import free_port
from tests.integration.conftest import Farm
from tests.integration.simple_http import NamedServer

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
        if path.name in ("https.toml", "h2.toml"):
            continue        # needs a certificate: test_tls.py / test_h2.py run it with one
        r = subprocess.run(FARM + ["check", "-q", "-c", str(path)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, (path, r.stderr)


# ------------------------------------------------------------------ farm explain

EXPLAIN_CONFIG = """
[global]
workers = 2
admin_socket = "{sock}"
hard_stop_after = "2s"
[log]
events = "@EVENTS@"
[defaults]
mode = "http"
[frontends.www]
bind = "127.0.0.1:{port}"
default_backend = "users"
[frontends.www.acl]
internal = "src 127.0.0.0/8"
[[frontends.www.http_request]]
action = "deny"
status = 403
if = "{{ path_beg /admin }} !internal || {{ hdr(x-block) -m found }}"
[backends.users]
balance = "hdr(x-user)"
{servers}
"""


def explain(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(FARM + ["explain", "-c", str(cfg), *args], capture_output=True, text=True,
                          timeout=30)


def ask(port: int, path: str = "/", **headers: str) -> tuple[int, str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def test_explain_without_a_running_farm(tmp_path):
    cfg = tmp_path / "farm.toml"
    servers = "".join(f'[[backends.users.servers]]\nname = "{n}"\naddress = "127.0.0.1:{9000 + i}"\n'
                      for i, n in enumerate("abc"))
    cfg.write_text(EXPLAIN_CONFIG.format(sock=tmp_path / "admin.sock", port=free_port(), servers=servers)
                   .replace("@EVENTS@", "stderr"))
    r = explain(cfg, "GET /hello HTTP/1.1", "-H", "Host: example.com", "-H", "X-User: carol")
    assert r.returncode == 0, r.stderr
    assert "backend users (chosen by default_backend)" in r.stdout
    assert 'balance hdr(x-user) of the key "carol"' in r.stdout
    assert "result: forwarded to users/" in r.stdout
    r = explain(cfg, "--src", "203.0.113.9", "GET /admin/x HTTP/1.1", "-H", "Host: example.com")
    assert r.returncode == 1
    assert "-> fired: deny with status 403" in r.stdout
    assert r.stdout.rstrip().endswith("result: refused: deny 403 by an http_request rule of frontend www")
    r = explain(cfg, "GET / HTTP/1.1")
    assert r.returncode == 1 and "without Host" in r.stdout
    assert explain(cfg, "--src", "nowhere", "GET / HTTP/1.1").returncode == 2
    r = explain(cfg, "--frontend", "nope", "GET / HTTP/1.1", "-H", "Host: a")
    assert r.returncode == 2 and "no frontend 'nope'" in r.stderr
    r = explain(cfg, "--socket", str(tmp_path / "nope.sock"), "GET / HTTP/1.1", "-H", "Host: a")
    assert r.returncode == 2 and "nope.sock" in r.stderr


def test_explain_predicts_what_the_running_farm_does(farm_factory, tmp_path):
    """The server explain names is the one that answers, before and after
    a server goes to maintenance (--socket: the live states)."""
    named = {n: NamedServer(n) for n in "abc"}
    try:
        sock = tmp_path / "admin.sock"
        port = free_port()
        servers = "".join(f'[[backends.users.servers]]\nname = "{n}"\naddress = "{s.address}"\n'
                          for n, s in named.items())
        farm: Farm = farm_factory(EXPLAIN_CONFIG.format(sock=sock, port=port, servers=servers))
        cfg = farm.config_path

        def predicted(*extra: str) -> str:
            r = explain(cfg, *extra, "GET /x HTTP/1.1", "-H", "Host: example.com", "-H", "X-User: dave")
            assert r.returncode == 0, (r.stdout, r.stderr)
            line = r.stdout.rstrip().splitlines()[-1]
            assert line.startswith("result: forwarded to users/"), r.stdout
            return line.split("users/")[1].split()[0]

        first = predicted()
        assert predicted("--socket", str(sock)) == first
        assert ask(port, "/x", X_User="dave") == (200, first)
        r = subprocess.run(FARM + ["ctl", "-s", str(sock), "disable", "server", f"users/{first}"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        live = explain(cfg, "--socket", str(sock), "GET /x HTTP/1.1", "-H", "Host: example.com",
                       "-H", "X-User: dave")
        assert f"{first:<16} maint" in live.stdout
        second = predicted("--socket", str(sock))
        assert second != first
        assert ask(port, "/x", X_User="dave") == (200, second)
        assert predicted() == first                 # without --socket: the config's states
        # a refusal is what the farm answers too
        r = explain(cfg, "--socket", str(sock), "GET / HTTP/1.1", "-H", "Host: a", "-H", "X-Block: 1")
        assert r.returncode == 1 and ask(port, "/", X_Block="1")[0] == 403
    finally:
        for s in named.values():
            s.close()
