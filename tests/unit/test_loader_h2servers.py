"""farm.loader, HTTP/2 to servers: `proto` on a server, on a backend and in
[defaults] (servers inherit it), the ALPN of the backend's TLS context
that follows from it, and every error at its file, line and key."""

from __future__ import annotations

import textwrap

import pytest

from farm.loader import ConfigErrors, load_text


def T(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def config(defaults: str = "", backend: str = "", s1: str = "", s2: str = "",
           tls: str = "") -> str:
    return T("""
        [defaults]
        """) + textwrap.dedent(defaults) + T("""
        [frontends.www]
        bind = ["127.0.0.1:80"]
        default_backend = "app"
        [backends.app]
        """) + textwrap.dedent(backend) + T("""
        [[backends.app.servers]]
        name = "s1"
        address = "127.0.0.1:9000"
        """) + textwrap.dedent(s1) + T("""
        [[backends.app.servers]]
        name = "s2"
        address = "127.0.0.1:9001"
        """) + textwrap.dedent(s2) + (T("[backends.app.tls]\n") + textwrap.dedent(tls)
                                      if tls else "")


def errors(text: str) -> list:
    with pytest.raises(ConfigErrors) as e:
        load_text(text, "t.toml")
    return e.value.errors


def protos(text: str) -> list:
    return [s.proto for s in load_text(text).backends[0].servers]


def test_default_is_h1():
    assert protos(config()) == ["h1", "h1"]


@pytest.mark.parametrize("kw, expected", [
    ({"s1": 'proto = "h2"\n'}, ["h2", "h1"]),
    ({"backend": 'proto = "h2"\n'}, ["h2", "h2"]),
    ({"backend": 'proto = "h2"\n', "s2": 'proto = "h1"\n'}, ["h2", "h1"]),
    ({"defaults": 'proto = "h2"\n'}, ["h2", "h2"]),
    ({"defaults": 'proto = "h2"\n', "backend": 'proto = "h1"\n'}, ["h1", "h1"]),
])
def test_inheritance(kw, expected):
    assert protos(config(**kw)) == expected


def test_unknown_proto_names_its_line():
    text = config(s1='proto = "h3"\n')
    (e,) = errors(text)
    assert e.path == "backends.app.servers[0].proto"
    assert e.line == text.splitlines().index('proto = "h3"') + 1
    assert "server protocol" in e.message and "h2" in e.message


def test_tls_alpn_follows_the_protocol():
    cfg = load_text(config(backend='proto = "h2"\n', s1="tls = true\n", s2="tls = true\n",
                           tls='verify = "none"\n'))
    assert cfg.backends[0].tls.alpn == ("h2",)
    # h1 tls servers: no ALPN unless asked, as before
    cfg = load_text(config(s1="tls = true\n", tls='verify = "none"\n'))
    assert cfg.backends[0].tls.alpn == ()
    # an explicit alpn with h2 for h2 servers is kept
    cfg = load_text(config(backend='proto = "h2"\n', s1="tls = true\n",
                           tls='verify = "none"\nalpn = ["h2", "http/1.1"]\n'))
    assert cfg.backends[0].tls.alpn == ("h2", "http/1.1")


@pytest.mark.parametrize("kw, where, words", [
    # alpn h2 offered to an HTTP/1.1 server
    ({"s1": "tls = true\n", "tls": 'alpn = ["h2"]\n'}, "tls.alpn", "HTTP/1.1"),
    # tls servers of both protocols share one context
    ({"s1": 'tls = true\nproto = "h2"\n', "s2": "tls = true\n"}, "servers", "own"),
    # h2 servers over TLS but alpn without h2
    ({"backend": 'proto = "h2"\n', "s1": "tls = true\n", "tls": 'alpn = ["http/1.1"]\n'},
     "tls.alpn", 'offer "h2"'),
    # a PROXY header per client on shared connections
    ({"s1": 'proto = "h2"\nsend_proxy = "v2"\n'}, "servers[0]", "send_proxy"),
    # proto h2 in a tcp backend
    ({"backend": 'mode = "tcp"\n', "s1": 'proto = "h2"\n'}, "servers[0]", "mode http"),
])
def test_errors(kw, where, words):
    text = config(**kw)
    errs = errors(text)
    assert any(e.path == "backends.app." + where and words in e.message for e in errs), \
        [(e.path, e.message) for e in errs]


# -- health checks in HTTP/2: check.proto (HAProxy's check-proto) ----------------------

CHECK = '[backends.app.check]\ntype = "http"\n'


def check_protos(text: str) -> list:
    be = load_text(text).backends[0]
    return [be.check_proto(s) for s in be.servers]


@pytest.mark.parametrize("kw, expected", [
    ({"backend": CHECK}, ["h1", "h1"]),
    # the server's own proto, however it got it
    ({"backend": CHECK, "s1": 'proto = "h2"\n'}, ["h2", "h1"]),
    ({"backend": 'proto = "h2"\n' + CHECK}, ["h2", "h2"]),
    ({"defaults": 'proto = "h2"\n', "backend": CHECK}, ["h2", "h2"]),
    # check.proto wins over the server's, both ways
    ({"backend": 'proto = "h2"\n' + CHECK + 'proto = "h1"\n'}, ["h1", "h1"]),
    ({"backend": CHECK + 'proto = "h2"\n'}, ["h2", "h2"]),
    # [defaults.check] too, merged key by key
    ({"defaults": '[defaults.check]\nproto = "h2"\n', "backend": CHECK}, ["h2", "h2"]),
    # a tcp check keeps the key (it is not used: no request is sent)
    ({"backend": '[backends.app.check]\ntype = "tcp"\nproto = "h2"\n'}, ["h2", "h2"]),
])
def test_check_proto(kw, expected):
    assert check_protos(config(**kw)) == expected


def test_check_proto_unset_is_none():
    assert load_text(config(backend=CHECK)).backends[0].check.proto is None


@pytest.mark.parametrize("kw, where, words", [
    ({"backend": CHECK + 'proto = "h2c"\n'}, "backends.app.check.proto",
     "unknown check protocol 'h2c' (did you mean 'h2'?)"),
    ({"defaults": '[defaults.check]\ntype = "http"\nproto = "grpc"\n'}, "defaults.check.proto",
     "unknown check protocol 'grpc' (expected one of: h1, h2)"),
])
def test_bad_check_proto_names_file_line_and_key(kw, where, words):
    text = config(**kw)
    (e,) = errors(text)
    assert (e.file, e.path, e.message) == ("t.toml", where, words)
    bad = [ln for ln in text.splitlines() if ln.startswith("proto = ")][0]
    assert e.line == text.splitlines().index(bad) + 1
