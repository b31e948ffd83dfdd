"""farm.loader, high availability: bind transparent; errors at file, line
and key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from farm.loader import ConfigErrors, load, load_text
from farm.model import Address


def T(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def config(bind: str, frontend: str = "") -> str:
    return T(f"""
        [frontends.www]
        bind = {bind}
        default_backend = "app"
        """) + textwrap.dedent(frontend) + T("""
        [backends.app]
        [[backends.app.servers]]
        name = "s1"
        address = "127.0.0.1:9000"
        """)


def errors(text: str) -> list:
    with pytest.raises(ConfigErrors) as e:
        load_text(text, "t.toml")
    return e.value.errors


def test_transparent_bind():
    cfg = load_text(config('["127.0.0.1:80", { address = "10.0.0.100:80", transparent = true }]'))
    assert [b.transparent for b in cfg.frontends[0].binds] == [False, True]
    assert cfg.transparent_binds() == {Address("10.0.0.100", 80)}
    cfg = load_text(config('{ address = "[2001:db8::100]:80", transparent = true, tls = false }'))
    assert cfg.frontends[0].binds[0].transparent
    assert load_text(config('"10.0.0.100:80"')).transparent_binds() == frozenset()


def test_transparent_must_be_a_boolean():
    (e,) = errors(config('[ "127.0.0.1:80", { address = "10.0.0.100:80", transparent = "yes" } ]'))
    assert (e.file, e.line, e.path) == ("t.toml", 2, "frontends.www.bind[1].transparent")
    assert "boolean" in e.message


MONITOR = 'monitor_uri = "/healthz"\nmonitor_fail = "{ nbsrv(app) lt 1 } || { path_beg /x } lowapp"\n' \
          '[frontends.www.acl]\nlowapp = "nbsrv(app) lt 2"\n'


def test_monitor_uri_and_monitor_fail():
    cfg = load_text(config('"127.0.0.1:80"', MONITOR))
    fe = cfg.frontends[0]
    assert fe.monitor_uri == "/healthz"
    assert fe.monitor_fail.text == "{ nbsrv(app) lt 1 } || { path_beg /x } lowapp"
    assert not fe.monitor_fail.negate
    plain = load_text(config('"127.0.0.1:80"')).frontends[0]
    assert plain.monitor_uri is None and plain.monitor_fail is None


def test_monitor_errors_name_file_line_and_key():
    text = config('"127.0.0.1:80"', 'monitor_uri = "healthz"\nmonitor_fail = "{ nbsrv(nope) lt 1 }"\n'
                  '[frontends.www.acl]\nx = "nbsrv(other) eq 0"\n[[frontends.www.http_request]]\n'
                  'action = "deny"\nif = "{ nbsrv(third) eq 0 }"\n')
    found = {(e.line, e.path): e.message for e in errors(text)}
    assert "must start with '/'" in found[(4, "frontends.www.monitor_uri")]
    assert "unknown backend 'nope'" in found[(5, "frontends.www.monitor_fail")]
    assert "unknown backend 'other'" in found[(7, "frontends.www.acl.x")]
    assert "unknown backend 'third'" in found[(10, "frontends.www.http_request[0].if")]
    assert len(found) == 4
    (e,) = errors(config('"127.0.0.1:80"', 'monitor_uri = "/a b"\n'))
    assert e.path == "frontends.www.monitor_uri" and "without spaces" in e.message
    (e,) = errors(config('"127.0.0.1:80"', 'monitor_uri = "/h"\nmonitor_fail = "{ nbsrv lt 1 }"\n'))
    assert e.path == "frontends.www.monitor_fail" and "needs a backend name" in e.message
    (e,) = errors(config('"127.0.0.1:80"', 'monitor_uri = "/h"\nmonitor_fail = "nbsrv(app) lt 1"\n'))
    assert e.path == "frontends.www.monitor_fail" and "anonymous ACLs go in '{ }'" in e.message


def test_monitor_uri_needs_http_and_monitor_fail_needs_monitor_uri():
    text = config('"127.0.0.1:80"', 'mode = "tcp"\nmonitor_uri = "/healthz"\n').replace(
        "[backends.app]", '[backends.app]\nmode = "tcp"')
    (e,) = errors(text)
    assert e.path == "frontends.www.monitor_uri" and "needs mode http" in e.message
    warnings: list = []
    load_text(config('"127.0.0.1:80"', 'monitor_fail = "{ nbsrv(app) lt 1 }"\n'), warnings=warnings)
    assert [(w.path, "does nothing" in w.message) for w in warnings] == [
        ("frontends.www.monitor_fail", True)]


@pytest.mark.parametrize("node", ["lb1", "lb2"])
def test_the_ha_examples_load(node):
    path = Path(__file__).resolve().parents[2] / "config" / "examples" / "ha" / f"farm-{node}.toml"
    cfg = load(str(path))
    fe = cfg.frontend("www")
    assert cfg.transparent_binds() == {Address("10.0.0.100", 80)}
    assert fe.monitor_uri == "/healthz" and fe.monitor_fail.text == "{ nbsrv(app) lt 1 }"
