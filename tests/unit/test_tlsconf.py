"""farm.tlsconf: certificates read and checked, their facts, SNI selection,
contexts kept across reloads. Certificates are made by the openssl tool
(tests/tlscerts.py)."""

from __future__ import annotations

import dataclasses
import ssl
import time

import pytest

from farm import model, tlsconf
from tests.tlscerts import CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = CA(d)
    return {
        "ca": ca,
        "ec": ca.issue("ec", "www.example.com", ["example.com"]),
        "rsa": ca.issue("rsa", "rsa.example.com", kind="rsa"),
        "wild": ca.issue("wild", "*.example.org"),
        "expired": ca.issue("expired", "old.example.com", days=-1),
        "other_ca": CA(d / "other", "Other CA"),
    }


def test_reads_certificate_chain_and_key(pki):
    c = tlsconf.read_certificate(str(pki["ec"].pem))
    info = c.info
    assert info.algorithm == "EC256"
    assert info.names == ("www.example.com", "example.com")
    assert info.dns_names == ("www.example.com", "example.com")
    assert info.subject == "/O=Farm Tests/CN=www.example.com"
    assert info.issuer == "/O=Farm Tests/CN=Farm Test CA"
    assert info.chain == (("/O=Farm Tests/CN=Farm Test CA", "/O=Farm Tests/CN=Farm Test CA"),)
    assert info.sha1 == pki["ec"].fingerprint()
    assert info.serial == pki["ec"].serial()
    assert 29 < info.days_left() <= 30
    assert info.key_path == str(pki["ec"].pem)
    assert c.pem.count(b"BEGIN CERTIFICATE") == 2 and b"PRIVATE KEY" in c.key


def test_rsa_algorithm_and_key_beside_the_certificate(pki, tmp_path):
    assert tlsconf.read_certificate(str(pki["rsa"].pem)).info.algorithm == "RSA2048"
    # HAProxy's layout: the certificate in FILE, the key in FILE.key
    crt = tmp_path / "site.pem"
    crt.write_bytes(pki["rsa"].crt.read_bytes())
    (tmp_path / "site.pem.key").write_bytes(pki["rsa"].key.read_bytes())
    info = tlsconf.read_certificate(str(crt)).info
    assert info.key_path == str(crt) + ".key"


def test_describe_is_show_ssl_cert(pki):
    text = tlsconf.read_certificate(str(pki["wild"].pem)).info.describe()
    lines = text.splitlines()
    assert [l.split(":")[0] for l in lines] == [
        "Filename", "Status", "Serial", "notBefore", "notAfter", "Subject Alternative Name",
        "Algorithm", "SHA1 FingerPrint", "Subject", "Issuer", "Chain Subject", "Chain Issuer"]
    assert "Subject Alternative Name: DNS:*.example.org" in lines
    assert lines[0] == f"Filename: {pki['wild'].pem}"
    assert text.endswith("\n")


@pytest.mark.parametrize("content, message", [
    (b"", "no PEM certificate found"),
    (b"hello, world\n", "no PEM certificate found"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "invalid certificate"),
])
def test_garbage_is_an_error_naming_the_file(tmp_path, content, message):
    f = tmp_path / "bad.pem"
    f.write_bytes(content)
    with pytest.raises(tlsconf.TlsError) as e:
        tlsconf.read_certificate(str(f))
    assert str(f) in str(e.value) and message in str(e.value)


def test_missing_key_unreadable_file_and_mismatch(pki, tmp_path):
    only_cert = tmp_path / "only.pem"
    only_cert.write_bytes(pki["ec"].crt.read_bytes())
    with pytest.raises(tlsconf.TlsError, match="no private key"):
        tlsconf.read_certificate(str(only_cert))
    with pytest.raises(tlsconf.TlsError, match="No such file"):
        tlsconf.read_certificate(str(tmp_path / "nope.pem"))
    for other in ("rsa", "wild"):      # another key type, then the same type
        mixed = tmp_path / f"mixed-{other}.pem"
        mixed.write_bytes(pki["ec"].crt.read_bytes() + pki[other].key.read_bytes())
        with pytest.raises(tlsconf.TlsError, match="does not match the certificate"):
            tlsconf.read_certificate(str(mixed))


def test_encrypted_key_is_refused_without_prompting(pki, tmp_path):
    import subprocess
    enc = tmp_path / "enc.key"
    subprocess.run(["openssl", "pkey", "-in", str(pki["ec"].key), "-aes256", "-passout", "pass:x",
                    "-out", str(enc)], check=True, capture_output=True)
    f = tmp_path / "enc.pem"
    f.write_bytes(pki["ec"].crt.read_bytes() + enc.read_bytes())
    with pytest.raises(tlsconf.TlsError, match="encrypted"):
        tlsconf.read_certificate(str(f))


def test_expired_loads_with_a_warning(pki):
    info, warnings = tlsconf.check_certificate(str(pki["expired"].pem))
    assert info.days_left() < 0
    assert warnings == [f"certificate {pki['expired'].pem} expired on {info.not_after}"]
    assert tlsconf.check_certificate(str(pki["ec"].pem))[1] == []


def test_directories_list_certificates_in_order(pki, tmp_path):
    d = tmp_path / "certs"
    d.mkdir()
    for name in ("b.pem", "a.pem", ".hidden.pem", "a.pem.key", "a.pem.ocsp"):
        (d / name).write_bytes(b"x")
    assert tlsconf.certificate_files(str(d)) == [str(d / "a.pem"), str(d / "b.pem")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(tlsconf.TlsError, match="holds no certificate"):
        tlsconf.certificate_files(str(tmp_path / "empty"))
    assert tlsconf.certificate_files(str(pki["ec"].pem)) == [str(pki["ec"].pem)]


def test_ca_files(pki, tmp_path):
    assert b"BEGIN CERTIFICATE" in tlsconf.read_ca(str(pki["ca"].cert))
    bad = tmp_path / "ca.pem"
    bad.write_text("nothing here")
    with pytest.raises(tlsconf.TlsError, match=f"CA file {bad}: no PEM certificate"):
        tlsconf.read_ca(str(bad))


def test_sni_index_exact_then_wildcard_then_default():
    idx = tlsconf.SniIndex([("default.example.com",), ("www.example.com", "*.example.com"),
                            ("*.example.org", "www.example.com")])
    assert idx.select("www.example.com") == 1          # first claim wins
    assert idx.select("WWW.Example.COM.") == 1         # case and a final dot
    assert idx.select("api.example.com") == 1          # wildcard
    assert idx.select("a.b.example.com") == 0          # a wildcard covers one label
    assert idx.select("example.com") == 0
    assert idx.select("x.example.org") == 2
    assert idx.select("unknown.test") == 0


def test_dn_oneline_and_entries():
    name = ((("countryName", "US"),), (("organizationName", "Example"),),
            (("commonName", "a"),), (("commonName", "b"),), (("1.2.3.4", "x"),))
    assert tlsconf.dn_oneline(name) == "/C=US/O=Example/CN=a/CN=b/1.2.3.4=x"
    assert tlsconf.dn_oneline(name, "cn") == "b"               # the last occurrence
    assert tlsconf.dn_oneline(name, "organizationName") == "Example"
    assert tlsconf.dn_oneline(name, "OU") == ""


def test_cipher_settings_are_checked():
    tlsconf.check_ciphers("ECDHE+AESGCM")
    with pytest.raises(tlsconf.TlsError):
        tlsconf.check_ciphers("NOPE-CIPHER")
    tlsconf.check_ciphersuites("TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256")
    with pytest.raises(tlsconf.TlsError):
        tlsconf.check_ciphersuites("TLS_NOPE")


def config_with(certs: list[str], **tls) -> model.Config:
    fe = model.Frontend(
        "www", (model.Bind(model.Address("127.0.0.1", 8443), tls=True),),
        tls=model.FrontendTls(certificates=tuple(certs), **tls))
    return model.Config(frontends=(fe,))


def test_store_keeps_contexts_while_files_and_settings_are_unchanged(pki, tmp_path):
    cert = tmp_path / "site.pem"
    cert.write_bytes(pki["ec"].pem.read_bytes())
    store = tlsconf.TlsStore()
    first = store.build(config_with([str(cert), str(pki["rsa"].pem)]))
    fc = first.frontends["www"]
    assert [c.path for c in fc.certs] == [str(cert), str(pki["rsa"].pem)]
    assert isinstance(fc.default, ssl.SSLContext) and fc.default.sni_callback == fc.on_sni
    again = store.build(config_with([str(cert), str(pki["rsa"].pem)]))
    assert again.frontends["www"] is fc                        # same objects: same ticket keys
    other = store.build(config_with([str(cert), str(pki["rsa"].pem)], alpn=("http/1.0",)))
    assert other.frontends["www"] is not fc                    # settings changed
    cert.write_bytes(pki["wild"].pem.read_bytes())             # a certificate replaced on disk
    changed = store.build(config_with([str(cert), str(pki["rsa"].pem)]))
    assert changed.frontends["www"] is not fc
    assert changed.frontends["www"].certs[0].names == ("*.example.org",)
    store.retain(changed)
    assert list(store.kept) == [changed.keys["www"]]


def test_store_build_error_names_the_file(pki, tmp_path):
    bad = tmp_path / "broken.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    store = tlsconf.TlsStore()
    with pytest.raises(tlsconf.TlsError, match=str(bad)):
        store.build(config_with([str(pki["ec"].pem), str(bad)]))
    assert store.kept == {}


def test_frontends_without_a_tls_bind_get_no_context(pki):
    fe = model.Frontend("www", (model.Bind(model.Address("127.0.0.1", 8080)),),
                        tls=model.FrontendTls(certificates=(str(pki["ec"].pem),)))
    assert tlsconf.TlsStore().build(model.Config(frontends=(fe,))).frontends == {}


def test_server_context_settings(pki):
    cert = tlsconf.read_certificate(str(pki["ec"].pem))
    tls = model.FrontendTls(certificates=(str(pki["ec"].pem),), min_version="TLSv1.3",
                            verify="required", session_tickets=False)
    ctx = tlsconf.server_context(tls, cert, pki["ca"].cert.read_bytes())
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.options & ssl.OP_NO_RENEGOTIATION and ctx.options & ssl.OP_NO_TICKET
    assert ctx.cert_store_stats()["x509_ca"] == 1
    tls = dataclasses.replace(tls, ciphersuites="TLS_CHACHA20_POLY1305_SHA256", verify="none")
    ctx = tlsconf.server_context(tls, cert, None)
    assert ctx.verify_mode == ssl.CERT_NONE


def test_days_left_counts_from_now(pki):
    info = tlsconf.read_certificate(str(pki["ec"].pem)).info
    assert info.days_left(info.not_after_ts - 86400 * 2) == pytest.approx(2.0)
    assert info.days_left(time.time()) == pytest.approx(info.days_left(), abs=0.01)
