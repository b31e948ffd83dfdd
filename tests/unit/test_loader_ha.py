"""farm.loader, high availability: bind transparent; errors at file, line
and key path."""

from __future__ import annotations

import textwrap

import pytest

from farm.loader import ConfigErrors, load_text
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
