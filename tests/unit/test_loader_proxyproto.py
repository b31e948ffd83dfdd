"""farm.loader, PROXY protocol: accept_proxy on binds, proxy_trusted,
send_proxy / send_proxy_tlvs on servers, check.send_proxy; every error at
its file, line and key path."""

from __future__ import annotations

import ipaddress
import textwrap

import pytest

from farm.loader import ConfigErrors, load_text


def T(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def config(frontend: str = "", server: str = "", check: str = "") -> str:
    return T("""
        [frontends.www]
        bind = ["127.0.0.1:80", { address = "127.0.0.1:81", accept_proxy = true }]
        default_backend = "app"
        """) + textwrap.dedent(frontend) + T("""
        [backends.app]
        """) + textwrap.dedent(check) + T("""
        [[backends.app.servers]]
        name = "s1"
        address = "127.0.0.1:9000"
        """) + textwrap.dedent(server)


def errors(text: str) -> list:
    with pytest.raises(ConfigErrors) as e:
        load_text(text, "t.toml")
    return e.value.errors


def line_of(text: str, fragment: str) -> int:
    found = [i + 1 for i, ln in enumerate(text.splitlines()) if fragment in ln]
    assert len(found) == 1, found
    return found[0]


def test_defaults_nothing_proxied():
    cfg = load_text(config())
    fe = cfg.frontends[0]
    assert [b.accept_proxy for b in fe.binds] == [False, True]
    assert fe.proxy_trusted == ()
    s = cfg.backends[0].servers[0]
    assert s.send_proxy is None and s.send_proxy_tlvs == ()
    assert cfg.backends[0].check_send_proxy(s) is None


def test_all_keys():
    cfg = load_text(config(frontend='proxy_trusted = ["10.0.0.0/8", "::1", "192.168.1.7"]\n',
                           server='send_proxy = "v2"\nsend_proxy_tlvs = ["authority", "ssl", "crc32c"]\n'))
    fe = cfg.frontends[0]
    assert fe.proxy_trusted == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"),
                                ipaddress.ip_network("192.168.1.7/32"))
    s = cfg.backends[0].servers[0]
    assert s.send_proxy == "v2" and s.send_proxy_tlvs == ("authority", "ssl", "crc32c")


@pytest.mark.parametrize("check, server, expected", [
    ("", 'send_proxy = "v2"\n', "v2"),                                  # follows the server
    ("[backends.app.check]\ntype = \"tcp\"\nport = 9001\n", 'send_proxy = "v2"\n', None),
    ("[backends.app.check]\ntype = \"tcp\"\nsend_proxy = true\n", "", "v1"),
    ("[backends.app.check]\ntype = \"tcp\"\nsend_proxy = true\n", 'send_proxy = "v2"\n', "v2"),
    ("[backends.app.check]\ntype = \"tcp\"\nsend_proxy = false\n", 'send_proxy = "v1"\n', None),
])
def test_check_send_proxy(check, server, expected):
    cfg = load_text(config(check=check, server=server))
    be = cfg.backends[0]
    assert be.check_send_proxy(be.servers[0]) == expected


def test_errors_name_file_line_and_key():
    text = config(frontend='proxy_trusted = ["10.0.0.0/8", "10.0.0.300"]\n',
                  server='send_proxy = "v3"\nsend_proxy_tlvs = ["authority", "nope"]\n',
                  check='[backends.app.check]\ntype = "tcp"\nsend_proxy = "yes"\n')
    got = {(e.path, e.line, e.message) for e in errors(text)}
    assert ("frontends.www.proxy_trusted", line_of(text, "proxy_trusted"),
            "element 2: '10.0.0.300' is not an IP address or CIDR network") in got
    assert any(p == "backends.app.servers[0].send_proxy" and line == line_of(text, '"v3"')
               and m.startswith("unknown PROXY protocol version 'v3'") for p, line, m in got)
    assert any(p == "backends.app.servers[0].send_proxy_tlvs" and m.startswith("element 2: unknown PROXY v2 TLV 'nope'")
               for p, _, m in got)
    assert ("backends.app.check.send_proxy", line_of(text, '"yes"'),
            "expected a boolean (true or false), got string 'yes'") in got
    for e in errors(text):
        assert str(e).startswith("t.toml:")


def test_tlvs_need_v2():
    text = config(server='send_proxy = "v1"\nsend_proxy_tlvs = ["authority"]\n')
    (e,) = errors(text)
    assert e.path == "backends.app.servers[0].send_proxy_tlvs" and "v2" in e.message
    assert e.line == line_of(text, "send_proxy_tlvs")


def test_proxy_trusted_without_accept_proxy_warns():
    text = T("""
        [frontends.www]
        bind = "127.0.0.1:80"
        default_backend = "app"
        proxy_trusted = ["10.0.0.0/8"]
        [backends.app]
        [[backends.app.servers]]
        name = "s1"
        address = "127.0.0.1:9000"
        """)
    warnings: list = []
    load_text(text, "t.toml", warnings=warnings)
    (w,) = warnings
    assert w.path == "frontends.www.proxy_trusted" and "accept_proxy" in w.message


def test_accept_proxy_in_tcp_mode():
    text = T("""
        [frontends.db]
        mode = "tcp"
        bind = { address = "127.0.0.1:5432", accept_proxy = true }
        default_backend = "db"
        [backends.db]
        mode = "tcp"
        [[backends.db.servers]]
        name = "s1"
        address = "127.0.0.1:15432"
        send_proxy = "v1"
        """)
    cfg = load_text(text)
    assert cfg.frontends[0].binds[0].accept_proxy
    assert cfg.backends[0].servers[0].send_proxy == "v1"
