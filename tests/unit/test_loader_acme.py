"""farm.loader, ACME: [acme.NAME] and a tls table's acme/domains; errors
at their file, line and key; `farm check` (tls_files) stays offline."""

from __future__ import annotations

import textwrap

import pytest

from farm import cli, conditions, model
from farm.loader import ConfigErrors, load_text, notes
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


def config(acme: str = 'directory = "https://acme.example/dir"',
           tls: str = 'acme = "le"\ndomains = ["www.example.com"]',
           bind: str = '["127.0.0.1:8080", { address = "127.0.0.1:8443", tls = true }]') -> str:
    return T(f"""
        [frontends.www]
        bind = {bind}
        default_backend = "app"
        [frontends.www.tls]
        """) + tls + "\n\n" + T("""
        [backends.app]
        [[backends.app.servers]]
        name = "s1"
        address = "127.0.0.1:9000"

        [acme.le]
        """) + acme + "\n"


def test_minimal_acme_config_and_defaults():
    cfg = load_text(config(), "t.toml", base_dir="/etc/farm")
    (acct,) = cfg.acme
    assert acct == model.Acme(name="le", directory="https://acme.example/dir", line=acct.line)
    assert acct.line == line_of(config(), "[acme.le]")
    assert acct.key_type == "ecdsa-p256" and acct.storage == "/var/lib/farm/acme"
    assert acct.challenge == "http-01" and acct.renew_before is None
    assert acct.account_key_path() == "/var/lib/farm/acme/le.account.key"
    assert acct.certificate_path("www") == "/var/lib/farm/acme/www.pem"
    tls = cfg.frontends[0].tls
    assert tls.acme == "le" and tls.domains == ("www.example.com",) and tls.certificates == ()
    assert cfg.acme_account("le") is acct


def test_every_acme_key(tmp_path):
    ca = CA(tmp_path)
    text = config(T(f"""
        directory = "https://127.0.0.1:14000/dir"
        directory_ca = "{ca.cert}"
        contact = ["mailto:ops@example.com", "mailto:oncall@example.com"]
        account_key = "keys/account.pem"
        key_type = "rsa-2048"
        storage = "state/acme"
        challenge = "http-01"
        renew_before = "30d"
        """), tls='acme = "le"\ndomains = ["WWW.example.com", "example.com."]\n'
                  'certificates = ["extra.pem"]')
    cfg = load_text(text, "t.toml", base_dir="/etc/farm")
    acct = cfg.acme[0]
    assert acct.directory_ca == str(ca.cert)
    assert acct.contact == ("mailto:ops@example.com", "mailto:oncall@example.com")
    assert acct.account_key == "/etc/farm/keys/account.pem" and acct.storage == "/etc/farm/state/acme"
    assert acct.key_type == "rsa-2048" and acct.renew_before == 30 * 86400
    tls = cfg.frontends[0].tls
    assert tls.domains == ("www.example.com", "example.com")
    assert tls.certificates == ("/etc/farm/extra.pem",)


@pytest.mark.parametrize("acme_text,key,message", [
    ('directory = "http://acme.example/dir"', "acme.le.directory",
     "expected the https:// URL of an ACME directory, got 'http://acme.example/dir'"),
    ('directory = "https://a.example/d"\ncontact = "ops@example.com"', "acme.le.contact",
     'expected a mailto: URL such as "mailto:ops@example.com", got \'ops@example.com\''),
    ('directory = "https://a.example/d"\nkey_type = "rsa-1024"', "acme.le.key_type",
     "unknown key type 'rsa-1024'"),
    ('directory = "https://a.example/d"\nchallenge = "dns-01"', "acme.le.challenge",
     "unknown challenge 'dns-01'"),
    ('directory = "https://a.example/d"\nrenew_before = "0d"', "acme.le.renew_before",
     "must be greater than 0, got '0d'"),
    ('directory = "https://a.example/d"\nemail = "x"', "acme.le.email", "unknown key 'email'"),
])
def test_acme_key_errors_at_their_line(acme_text, key, message):
    text = config(acme_text)
    (err,) = errors(text)
    assert err.path == key
    assert err.message.startswith(message)
    assert err.line == line_of(text, key.rsplit(".", 1)[1] + " =")


def test_acme_without_directory():
    text = config('contact = "mailto:a@example.com"')
    (err,) = errors(text)
    assert (err.path, err.line, err.message) == ("acme.le", line_of(text, "[acme.le]"),
                                                 "missing required key 'directory'")


def test_unknown_acme_name_suggests():
    text = config(tls='acme = "l"\ndomains = ["www.example.com"]')
    (err,) = errors(text)
    assert err.path == "frontends.www.tls.acme" and err.line == line_of(text, 'acme = "l"')
    assert err.message == "unknown acme section 'l' (did you mean 'le'?) (define [acme.l] with its directory)"


@pytest.mark.parametrize("domains,message", [
    ('[]', "expected a non-empty array of host names, got an empty array"),
    ('["*.example.com"]', "'*.example.com': a wildcard needs the DNS-01 challenge, which farm does not do"),
    ('["192.0.2.1"]', "'192.0.2.1': an IP address, not a host name"),
    ('["bad name.example"]', "'bad name.example' is not a host name (such as www.example.com)"),
    ('["a.example", "A.example"]', "'A.example' is listed twice"),
])
def test_domain_errors(domains, message):
    text = config(tls=f'acme = "le"\ndomains = {domains}')
    (err,) = errors(text)
    assert err.message.startswith(message) and err.line == line_of(text, "domains =")


def test_domains_and_acme_go_together():
    (err,) = errors(config(tls='acme = "le"'))
    assert err.path == "frontends.www.tls" and err.message.startswith(
        "acme without domains takes the host names of the routing rules, and this frontend's "
        "use_backend rules name none: set domains")
    text = config(tls='certificates = ["a.pem"]\ndomains = ["www.example.com"]')
    (err,) = errors(text)
    assert err.path == "frontends.www.tls.domains" and "set acme too" in err.message


def test_without_an_http_bind_warns():
    warnings: list = []
    load_text(config(bind='[{ address = "127.0.0.1:8443", tls = true }]'), "t.toml", warnings=warnings)
    assert [w.path for w in warnings] == ["acme"]
    assert "HTTP-01 challenge needs one" in warnings[0].message


def test_tls_alpn_01_needs_no_http_bind():
    warnings: list = []
    cfg = load_text(config('directory = "https://a.example/d"\nchallenge = "tls-alpn-01"',
                           bind='[{ address = "127.0.0.1:8443", tls = true }]'), "t.toml",
                    warnings=warnings)
    assert cfg.acme[0].challenge == "tls-alpn-01" and warnings == []


def test_check_reads_directory_ca_and_never_the_server(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    text = config(f'directory = "https://127.0.0.1:1/dir"\ndirectory_ca = "{bad}"')
    (err,) = errors(text, tls_files=True)
    assert err.path == "acme.le.directory_ca" and "no PEM certificate found" in err.message
    # without tls_files (farm ctl, tests) files are not read
    load_text(text, "t.toml")


# ------------------------------------------------ domains from the rules

def routed(rules: str, tls: str = 'acme = "le"') -> str:
    """A frontend with backends app and api, `rules` (acl table and
    use_backend rules) in it, and acme without domains."""
    return T("""
        [frontends.www]
        bind = ["127.0.0.1:8080", { address = "127.0.0.1:8443", tls = true }]
        default_backend = "app"
        """) + T(rules) + "\n[frontends.www.tls]\n" + tls + "\n\n" + T("""
        [backends.app]
        [[backends.app.servers]]
        name = "s1"
        address = "127.0.0.1:9000"
        [backends.api]
        [[backends.api.servers]]
        name = "s1"
        address = "127.0.0.1:9001"

        [acme.le]
        directory = "https://acme.example/dir"
        """)


@pytest.mark.parametrize("acl,hosts", [
    ("hdr(host) -i www.example.com example.com", ("www.example.com", "example.com")),
    ("req.hdr(host) -m str API.example.com:8443 api.example.com.", ("api.example.com",)),
    ("fhdr(host) a.test", ("a.test",)),
    ("ssl_fc_sni -i sni.example.com", ("sni.example.com",)),
    ("hdr(host) -i [::1]:8443", ("[::1]:8443",)),
    ("hdr_beg(host) -i www.", ()),
    ("hdr_dom(host) -i example.com", ()),
    ("hdr(host) -m reg ^www\\.example\\.com$", ()),
    ("ssl_fc_sni_end .example.com", ()),
    ("hdr(x-host) -i www.example.com", ()),
    ("path_beg /api/", ()),
])
def test_literal_hosts_of_an_acl(acl, hosts):
    assert conditions.literal_hosts(conditions.parse_acl(acl)) == hosts


def test_domains_from_named_and_anonymous_host_acls():
    text = routed("""
        [frontends.www.acl]
        api_host = ["hdr(host) -i api.example.com", "hdr(host) -i API.example.com:443"]
        is_api = "path_beg /api/"
        internal = "src 10.0.0.0/8"
        [[frontends.www.use_backend]]
        backend = "api"
        if = "api_host || { ssl_fc_sni api2.example.com } is_api"
        [[frontends.www.use_backend]]
        backend = "app"
        if = "{ req.hdr(host) -i www.example.com example.com } !{ hdr(host) -i not.example.com }"
        [[frontends.www.use_backend]]
        backend = "app"
        unless = "{ hdr(host) -i unless.example.com }"
        [[frontends.www.use_backend]]
        backend = "app"
        if = "{ hdr_end(host) -i .example.org } || { hdr(host) -i 192.0.2.1 }"
        """)
    cfg = load_text(text, "t.toml")
    tls = cfg.frontends[0].tls
    assert tls.domains == ("api.example.com", "api2.example.com", "www.example.com", "example.com")
    assert tls.domains_from_rules
    assert notes(cfg) == ["t.toml: frontends.www.tls: acme domains from the routing rules: "
                          "api.example.com, api2.example.com, www.example.com, example.com"]
    # written domains win, and nothing is said of them
    cfg = load_text(routed("""
        [[frontends.www.use_backend]]
        backend = "api"
        if = "{ hdr(host) -i api.example.com }"
        """, tls='acme = "le"\ndomains = ["www.example.com"]'), "t.toml")
    assert cfg.frontends[0].tls.domains == ("www.example.com",) and notes(cfg) == []


def test_no_literal_host_in_the_rules_is_an_error_that_says_what():
    text = routed("""
        [[frontends.www.use_backend]]
        backend = "api"
        if = "{ hdr_beg(host) -i api. } || { hdr(host) -i 192.0.2.1 }"
        """)
    (err,) = errors(text)
    assert err.path == "frontends.www.tls" and err.line == line_of(text, "[frontends.www.tls]")
    assert "use_backend rules name none (192.0.2.1 cannot be)" in err.message
    assert "{ hdr(host) -i www.example.com }" in err.message


def test_farm_check_says_which_domains_it_derived(tmp_path, capsys):
    path = tmp_path / "farm.toml"
    path.write_text(routed("""
        [[frontends.www.use_backend]]
        backend = "api"
        if = "{ hdr(host) -i api.example.com }"
        """).replace(
        'directory = "https://acme.example/dir"',
        f'directory = "https://acme.example/dir"\nstorage = "{tmp_path}"'))
    assert cli.main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: valid: 1 frontend")
    assert out[1] == f"{path}: frontends.www.tls: acme domains from the routing rules: api.example.com"
