"""farm.loader, TLS: bind tables, [frontends.NAME.tls], [backends.NAME.tls],
server and check tls; every error at its file, line and key path."""

from __future__ import annotations

import textwrap

import pytest

from farm import model
from farm.loader import ConfigErrors, load, load_text
from farm.model import Address, Bind
from tests.tlscerts import CA


def T(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def line_of(text: str, fragment: str) -> int:
    found = [i + 1 for i, ln in enumerate(text.splitlines()) if fragment in ln]
    assert len(found) == 1, found
    return found[0]


def errors(text: str, **kw) -> list:
    with pytest.raises(ConfigErrors) as e:
        load_text(text, "t.toml", **kw)
    return e.value.errors


BACKEND = T("""
    [backends.app]
    [[backends.app.servers]]
    name = "s1"
    address = "127.0.0.1:9000"
""")


def https(tls: str = 'certificates = ["site.pem"]', bind: str | None = None) -> str:
    bind = bind or '["127.0.0.1:8080", { address = "127.0.0.1:8443", tls = true }]'
    return T(f"""
        [frontends.www]
        bind = {bind}
        default_backend = "app"
        [frontends.www.tls]
        """) + tls + "\n\n" + BACKEND


def test_bind_strings_and_tables_with_default_names():
    cfg = load_text(https(bind='["127.0.0.1:80", { address = "127.0.0.1:443", tls = true }, '
                               '{ address = "127.0.0.1:8443", tls = true, name = "alt" }]'),
                    base_dir="/etc/farm")
    fe = cfg.frontends[0]
    assert fe.binds == (Bind(Address("127.0.0.1", 80), False, "1"),
                        Bind(Address("127.0.0.1", 443), True, "2"),
                        Bind(Address("127.0.0.1", 8443), True, "alt"))
    assert fe.tls == model.FrontendTls(certificates=("/etc/farm/site.pem",))
    assert fe.tls.alpn == ("h2", "http/1.1") and fe.tls.min_version == "TLSv1.2"
    assert fe.tls.session_tickets and fe.tls.verify == "none"
    assert [str(a) for a in cfg.all_binds()] == ["127.0.0.1:80", "127.0.0.1:443", "127.0.0.1:8443"]


def test_one_table_alone_is_a_bind():
    cfg = load_text(https(bind='{ address = "127.0.0.1:443", tls = true }'))
    assert cfg.frontends[0].binds == (Bind(Address("127.0.0.1", 443), True, "1"),)


def test_bind_table_errors():
    text = https(bind='[{ tls = true }, { address = "127.0.0.1:1", tls = "yes", port = 1 },'
                      ' { address = "127.0.0.1:2", accept_proxy = 1 }]')
    got = {(e.path, e.message) for e in errors(text)}
    assert ("frontends.www.bind[0]", "missing required key 'address'") in got
    assert ("frontends.www.bind[1].tls", "expected a boolean (true or false), got string 'yes'") in got
    assert any(p == "frontends.www.bind[1].port" and m.startswith("unknown key 'port'") for p, m in got)
    assert ("frontends.www.bind[2].accept_proxy",
            "expected a boolean (true or false), got integer 1") in got


def test_duplicate_bind_names():
    text = https(bind='[{ address = "127.0.0.1:1", name = "x" }, { address = "127.0.0.1:2", '
                      'tls = true, name = "x" }]')
    (e,) = errors(text)
    assert e.path == "frontends.www.bind[1].name" and "already used" in e.message


def test_tls_bind_needs_certificates_and_http():
    text = T("""
        [frontends.www]
        bind = { address = "127.0.0.1:443", tls = true }
        default_backend = "app"
        """) + BACKEND
    (e,) = errors(text)
    assert (e.line, e.path) == (2, "frontends.www.bind")
    assert "[frontends.www.tls]" in e.message
    text = https().replace('default_backend = "app"', 'default_backend = "app"\nmode = "tcp"')
    text = text.replace("[backends.app]", '[backends.app]\nmode = "tcp"')
    fe = load_text(text).frontends[0]           # TLS termination in tcp mode
    assert fe.mode == "tcp" and fe.binds[1].tls and fe.tls is not None


def test_tls_table_without_tls_bind_is_a_warning():
    warnings: list = []
    load_text(https(bind='"127.0.0.1:80"'), "t.toml", warnings=warnings)
    (w,) = warnings
    assert w.path == "frontends.www.tls" and "unused" in w.message
    assert w.as_warning().startswith("t.toml:4: warning: frontends.www.tls: ")


@pytest.mark.parametrize("tls, path, message", [
    ('certificates = []', "frontends.www.tls.certificates", "needs at least one"),
    ('certificates = 3', "frontends.www.tls.certificates", "expected an array"),
    ('alpn = ["http/1.1"]', "frontends.www.tls", "missing required key 'certificates'"),
    ('certificates = ["a"]\nmin_version = "TLSv1.4"', "frontends.www.tls.min_version",
     "unknown TLS version 'TLSv1.4'"),
    ('certificates = ["a"]\nverify = "sometimes"', "frontends.www.tls.verify", "unknown verify mode"),
    ('certificates = ["a"]\nverify = "required"', "frontends.www.tls.verify", "needs client_ca"),
    ('certificates = ["a"]\nciphers = "NOT-A-CIPHER"', "frontends.www.tls.ciphers",
     "OpenSSL accepts no cipher"),
    ('certificates = ["a"]\nciphersuites = "TLS_NOPE"', "frontends.www.tls.ciphersuites",
     "no TLS 1.3 cipher suite"),
    ('certificates = ["a"]\nsession_tickets = "on"', "frontends.www.tls.session_tickets",
     "expected a boolean"),
    ('certificates = ["a"]\ncrt = "x"', "frontends.www.tls.crt", "unknown key 'crt'"),
])
def test_frontend_tls_errors(tls, path, message):
    text = https(tls)
    errs = errors(text)
    assert len(errs) == 1, errs
    assert errs[0].path == path and message in errs[0].message
    key = path.rsplit(".", 1)[-1]
    if key != "tls":
        assert errs[0].line == line_of(text, key + " =")


def test_backend_tls_and_server_keys():
    text = BACKEND.replace('address = "127.0.0.1:9000"', 'address = "127.0.0.1:9000"\ncheck = true') \
        + T("""
        [backends.app.tls]
        verify = "none"
        sni = "req.hdr(host)"
        alpn = ["http/1.1"]
        ca = "ca.pem"
        [frontends.www]
        bind = "127.0.0.1:80"
        default_backend = "app"
        """)
    be = load_text(text, base_dir="/etc/farm").backends[0]
    assert be.tls == model.BackendTls(verify="none", ca="/etc/farm/ca.pem", sni="req.hdr(host)",
                                      sni_fetch=True, alpn=("http/1.1",))
    assert model.Backend("x").tls.verify == "required"
    fixed = load_text(text.replace('"req.hdr(host)"', '"api.example.com"')).backends[0].tls
    assert (fixed.sni, fixed.sni_fetch) == ("api.example.com", False)
    (e,) = errors(text.replace('"req.hdr(host)"', '"10.0.0.1"'))
    assert e.path == "backends.app.tls.sni" and "IP address" in e.message
    (e,) = errors(text.replace('"req.hdr(host)"', '"req.hdr(host"'))
    assert e.path == "backends.app.tls.sni"
    (e,) = errors(text.replace('verify = "none"', 'verify = "optional"'))
    assert e.path == "backends.app.tls.verify"
    (e,) = errors(text.replace('alpn = ["http/1.1"]', 'alpn = ["h2", "http/1.1"]'))
    assert e.path == "backends.app.tls.alpn" and "h2" in e.message


def test_server_tls_and_check_tls_load():
    text = BACKEND.replace('address = "127.0.0.1:9000"', 'address = "127.0.0.1:9000"\ntls = true') \
        + '\n[backends.app.check]\ntype = "tcp"\n' \
        + '\n[frontends.www]\nbind = "127.0.0.1:80"\ndefault_backend = "app"\n'
    be = load_text(text).backends[0]
    assert be.servers[0].tls and be.check_tls(be.servers[0])
    assert be.tls == model.BackendTls()


def test_backend_tls_table_without_tls_server_is_a_warning():
    text = BACKEND + '\n[backends.app.tls]\nverify = "none"\n' \
        '\n[frontends.www]\nbind = "127.0.0.1:80"\ndefault_backend = "app"\n'
    warnings: list = []
    load_text(text, warnings=warnings)
    (w,) = warnings
    assert w.path == "backends.app.tls" and "no server of this backend has tls = true" in w.message


def test_check_tls_default_follows_the_server():
    be = model.Backend("b", servers=(model.Server("s", Address("h", 1), tls=True),
                                     model.Server("p", Address("h", 2))))
    assert be.check_tls(be.servers[0]) and not be.check_tls(be.servers[1])
    on_port = model.Backend("b", servers=be.servers, check=model.Check(type="tcp", port=8080))
    assert not on_port.check_tls(on_port.servers[0])
    forced = model.Backend("b", servers=be.servers, check=model.Check(type="tcp", tls=False))
    assert not forced.check_tls(forced.servers[0])


# ---------------------------------------------------- files (tls_files=True)

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = CA(d)
    return {"dir": d, "ca": ca, "good": ca.issue("good", "www.example.com"),
            "expired": ca.issue("expired", "old.example.com", days=-1)}


def test_files_are_checked_at_their_key(pki, tmp_path):
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    tls = (f'certificates = ["{pki["good"].pem}", "garbage.pem", "missing.pem"]\n'
           f'client_ca = "nope-ca.pem"\nverify = "optional"')
    text = https(tls)
    path = tmp_path / "farm.toml"
    path.write_text(text)
    with pytest.raises(ConfigErrors) as e:
        load(str(path), tls_files=True)
    got = [(err.line, err.path, err.message) for err in e.value.errors]
    line = line_of(text, "certificates =")
    assert got[0][:2] == (line, "frontends.www.tls.certificates[1]")
    assert f"certificate {tmp_path}/garbage.pem: no PEM certificate found" in got[0][2]
    assert got[1][:2] == (line, "frontends.www.tls.certificates[2]")
    assert f"cannot read certificate {tmp_path}/missing.pem: No such file" in got[1][2]
    assert got[2][1] == "frontends.www.tls.client_ca" and "nope-ca.pem" in got[2][2]
    assert len(got) == 3
    load(str(path))                                # without tls_files: nothing is read


def test_expired_certificate_is_a_warning_not_an_error(pki, tmp_path):
    text = https(f'certificates = ["{pki["expired"].pem}"]')
    path = tmp_path / "farm.toml"
    path.write_text(text)
    warnings: list = []
    cfg = load(str(path), tls_files=True, warnings=warnings)
    assert cfg.frontends[0].tls.certificates == (str(pki["expired"].pem),)
    (w,) = warnings
    assert w.path == "frontends.www.tls.certificates[0]" and "expired on" in w.message


def test_directory_of_certificates_and_backend_files(pki, tmp_path):
    text = https(f'certificates = ["{pki["dir"]}"]') + T(f"""
        [backends.app.tls]
        ca = "{pki['ca'].cert}"
        certificate = "{pki['good'].crt}"
        key = "{pki['expired'].key}"
        """)
    path = tmp_path / "farm.toml"
    path.write_text(text)
    with pytest.raises(ConfigErrors) as e:
        load(str(path), tls_files=True)
    paths = [err.path for err in e.value.errors]
    # the CA's own file in the directory has no key; the client key does not match
    assert "frontends.www.tls.certificates[0]" in paths
    assert "backends.app.tls.certificate" in paths
