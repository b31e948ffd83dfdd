"""farm/acme.py: JWS/JWK, CSR, and the whole order flow against an
in-process ACME server (TinyAcme, below) that checks what a real one
checks: signatures, nonces, kid vs jwk, the key authorization served."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from farm import acme

BASE = "https://acme.test"


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_of(jwk: dict):
    if jwk["kty"] == "EC":
        return ec.EllipticCurvePublicNumbers(int.from_bytes(unb64(jwk["x"]), "big"),
                                             int.from_bytes(unb64(jwk["y"]), "big"),
                                             ec.SECP256R1()).public_key()
    return rsa.RSAPublicNumbers(int.from_bytes(unb64(jwk["e"]), "big"),
                                int.from_bytes(unb64(jwk["n"]), "big")).public_key()


def verify(jwk: dict, alg: str, signed: bytes, sig: bytes) -> None:
    pub = public_of(jwk)
    if alg == "ES256":
        assert len(sig) == 64
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        pub.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    else:
        pub.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())


class TinyAcme:
    """An ACME server in a dict: enough of RFC 8555 for one order. `served`
    is what the client published (token -> key authorization), which the
    server 'fetches' when a challenge is answered. fail_challenge makes
    validation fail; bad_nonces refuses that many first nonces."""

    def __init__(self, fail_challenge: bool = False, bad_nonces: int = 0):
        self.nonce_seq = 0
        self.issued: set[str] = set()
        self.accounts: dict[str, dict] = {}          # kid -> jwk
        self.orders: dict[str, dict] = {}
        self.authzs: dict[str, dict] = {}
        self.served: dict[str, str] = {}
        self.fail_challenge = fail_challenge
        self.bad_nonces = bad_nonces
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.log: list[str] = []

    def fresh_nonce(self) -> str:
        self.nonce_seq += 1
        n = f"nonce{self.nonce_seq}"
        self.issued.add(n)
        return n

    def reply(self, status: int, obj=None, headers=None, body: bytes | None = None) -> acme.Response:
        h = {"replay-nonce": self.fresh_nonce(), **(headers or {})}
        if obj is not None:
            body = json.dumps(obj).encode()
        return acme.Response(status, h, body or b"")

    def problem(self, status: int, kind: str, detail: str) -> acme.Response:
        return self.reply(status, {"type": f"urn:ietf:params:acme:error:{kind}", "detail": detail},
                          {"content-type": "application/problem+json"})

    def __call__(self, method: str, url: str, body: bytes | None, headers: dict) -> acme.Response:
        self.log.append(f"{method} {url[len(BASE):]}")
        if url == BASE + "/dir":
            return acme.Response(200, {}, json.dumps({
                "newNonce": BASE + "/nonce", "newAccount": BASE + "/acct",
                "newOrder": BASE + "/order"}).encode())
        if url == BASE + "/nonce":
            return self.reply(200)
        assert method == "POST" and headers["Content-Type"] == "application/jose+json"
        msg = json.loads(body)
        protected = json.loads(unb64(msg["protected"]))
        assert protected["url"] == url
        if protected["nonce"] not in self.issued:
            return self.problem(400, "badNonce", "unknown nonce")
        self.issued.discard(protected["nonce"])
        if self.bad_nonces:
            self.bad_nonces -= 1
            return self.problem(400, "badNonce", "try again")
        if url == BASE + "/acct":
            assert "kid" not in protected
            jwk = protected["jwk"]
        else:
            assert "jwk" not in protected
            jwk = self.accounts[protected["kid"]]
        verify(jwk, protected["alg"], f"{msg['protected']}.{msg['payload']}".encode(),
               unb64(msg["signature"]))
        payload = json.loads(unb64(msg["payload"])) if msg["payload"] else None
        return self.route(url, payload, jwk)

    def route(self, url: str, payload, jwk) -> acme.Response:
        path = url[len(BASE):]
        if path == "/acct":
            assert payload["termsOfServiceAgreed"] is True
            kid = BASE + "/acct/1"
            self.accounts[kid] = jwk
            self.account_payload = payload
            return self.reply(201, {"status": "valid"}, {"location": kid})
        if path == "/order":
            n = len(self.orders) + 1
            authz = []
            for i, ident in enumerate(payload["identifiers"]):
                a = f"/authz/{n}/{i}"
                self.authzs[a] = {"status": "pending", "identifier": ident, "challenges": [
                    {"type": "dns-01", "url": BASE + a + "/dns", "token": "dnstok"},
                    {"type": "http-01", "url": BASE + a + "/http", "token": f"tok{n}x{i}"}]}
                authz.append(BASE + a)
            self.orders[f"/order/{n}"] = {"status": "pending", "authorizations": authz,
                                          "identifiers": payload["identifiers"],
                                          "finalize": BASE + f"/order/{n}/finalize"}
            return self.reply(201, self.orders[f"/order/{n}"], {"location": BASE + f"/order/{n}"})
        if path in self.authzs:
            assert payload is None
            return self.reply(200, self.authzs[path])
        if path.endswith("/http"):
            a = self.authzs[path[:-5]]
            token = a["challenges"][1]["token"]
            thumb = base64.urlsafe_b64encode(hashlib.sha256(json.dumps(
                jwk, sort_keys=True, separators=(",", ":")).encode()).digest()).rstrip(b"=").decode()
            ok = self.served.get(token) == f"{token}.{thumb}" and not self.fail_challenge
            a["status"] = "valid" if ok else "invalid"
            if not ok:
                a["challenges"][1]["error"] = {"type": "urn:ietf:params:acme:error:unauthorized",
                                               "detail": "wrong key authorization"}
            order = next(o for o in self.orders.values() if BASE + path[:-5] in o["authorizations"])
            if all(self.authzs[u[len(BASE):]]["status"] == "valid" for u in order["authorizations"]):
                order["status"] = "ready"
            elif not ok:
                order["status"] = "invalid"
            return self.reply(200, {"status": "processing"})
        if path.endswith("/finalize"):
            order = self.orders[path[:-9]]
            assert order["status"] == "ready"
            csr = x509.load_der_x509_csr(unb64(payload["csr"]))
            assert csr.is_signature_valid
            names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert sorted(names.get_values_for_type(x509.DNSName)) == \
                sorted(i["value"] for i in order["identifiers"])
            order["status"] = "processing"
            self.csr = csr
            return self.reply(200, order)
        if path.startswith("/order/") and path.count("/") == 2:
            order = self.orders[path]
            if order["status"] == "processing":
                order["status"] = "valid"
                order["certificate"] = BASE + path + "/cert"
                return self.reply(200, {**order, "status": "processing"}, {"retry-after": "0"})
            return self.reply(200, order)
        if path.endswith("/cert"):
            return self.reply(200, body=self.sign(self.csr))
        return self.problem(404, "malformed", "no such resource")

    def sign(self, csr) -> bytes:
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tiny ACME CA")])
        cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(name)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=90))
                .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                               critical=False)
                .sign(self.ca_key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM)


def client(server: TinyAcme, key_type: str = "ecdsa-p256") -> acme.AcmeClient:
    return acme.AcmeClient(BASE + "/dir", acme.Key.generate(key_type), server,
                           contact=("mailto:ops@example.com",), sleep=lambda s: None)


def test_rfc7638_thumbprint_example():
    # RFC 7638 section 3.1: this RSA key's thumbprint
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRX"
         "jBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaS"
         "qzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksIN"
         "HaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
    key = acme.Key.generate("rsa-2048")
    jwk = {"e": "AQAB", "kty": "RSA", "n": n}
    key.jwk = lambda: jwk
    assert key.thumbprint() == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("key_type,alg", [("ecdsa-p256", "ES256"), ("rsa-2048", "RS256")])
def test_jws_verifies_with_its_jwk(key_type, alg):
    key = acme.Key.generate(key_type)
    body = json.loads(acme.jws(key, BASE + "/x", "n1", {"a": 1}))
    protected = json.loads(unb64(body["protected"]))
    assert protected == {"alg": alg, "nonce": "n1", "url": BASE + "/x", "jwk": key.jwk()}
    assert json.loads(unb64(body["payload"])) == {"a": 1}
    verify(key.jwk(), alg, f"{body['protected']}.{body['payload']}".encode(), unb64(body["signature"]))
    # POST-as-GET: an empty payload; with a kid, no jwk
    body = json.loads(acme.jws(key, BASE + "/x", "n2", None, kid=BASE + "/acct/1"))
    assert body["payload"] == ""
    assert "jwk" not in json.loads(unb64(body["protected"]))


def test_key_pem_round_trip_and_refusals():
    key = acme.Key.generate()
    again = acme.Key.from_pem(key.pem())
    assert again.thumbprint() == key.thumbprint() and again.key_type == "ecdsa-p256"
    with pytest.raises(ValueError, match="not an unencrypted PEM"):
        acme.Key.from_pem(b"junk")
    with pytest.raises(ValueError, match="P-256"):
        acme.Key(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError, match="unknown key type"):
        acme.Key.generate("dsa")


def test_csr_and_self_signed_name_the_domains():
    key = acme.Key.generate()
    csr = x509.load_der_x509_csr(acme.make_csr(["a.test", "b.test"], key))
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "a.test"
    pem = acme.self_signed(["a.test", "b.test"], key)
    assert acme.certificate_names(pem) == {"a.test", "b.test"}
    start, end = acme.certificate_dates(pem)
    assert 89 * 86400 < end - start < 91 * 86400


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048"])
def test_issue_whole_flow(key_type):
    server = TinyAcme()
    c = client(server, key_type)
    published = []

    def publish(token, keyauth, domain):
        server.served[token] = keyauth
        published.append(token)
        domains.append(domain)

    domains = []

    withdrawn = []
    cert_key = acme.Key.generate(key_type)
    pem = c.issue(["a.test", "b.test"], cert_key, publish, withdrawn.append)
    assert acme.certificate_names(pem) == {"a.test", "b.test"}
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.public_key().public_numbers() == cert_key.private.public_key().public_numbers()
    assert published == ["tok1x0", "tok1x1"] and withdrawn == published
    assert domains == ["a.test", "b.test"]
    assert c.kid == BASE + "/acct/1"
    assert server.account_payload["contact"] == ["mailto:ops@example.com"]
    assert server.log[:3] == ["GET /dir", "HEAD /nonce", "POST /acct"]
    # nonces came from the answers: newNonce was asked only once
    assert server.log.count("HEAD /nonce") == 1


def test_failed_challenge_says_why_and_withdraws():
    server = TinyAcme(fail_challenge=True)
    withdrawn = []
    with pytest.raises(acme.AcmeError, match="authorization of a.test is invalid: wrong key authorization"):
        client(server).issue(["a.test"], acme.Key.generate(),
                             lambda t, k, d: server.served.__setitem__(t, k), withdrawn.append)
    assert withdrawn == ["tok1x0"]


def test_bad_nonce_is_retried():
    server = TinyAcme(bad_nonces=2)
    c = client(server)
    assert c.register() == BASE + "/acct/1"


def test_problem_document_in_the_error():
    server = TinyAcme(bad_nonces=5)
    with pytest.raises(acme.AcmeError, match="newAccount: 400 badNonce: try again") as e:
        client(server).register()
    assert e.value.status == 400


def test_not_a_directory():
    def http(method, url, body, headers):
        return acme.Response(200, {}, b'{"hello": 1}')
    with pytest.raises(acme.AcmeError, match="no newNonce URL"):
        acme.AcmeClient(BASE + "/dir", acme.Key.generate(), http).directory()


def test_renewal_and_backoff():
    # default: a third of the lifetime left
    assert acme.renewal_due(0, 90 * 86400) == 60 * 86400
    assert acme.renewal_due(0, 90 * 86400, renew_before=7 * 86400) == 83 * 86400
    assert [acme.backoff_delay(n, base=10, cap=100) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 80, 100]


def test_alpn_certificate_carries_the_critical_acme_identifier():
    """RFC 8737 section 3: the domain as the only SAN, and the critical
    id-pe-acmeIdentifier extension holding a DER OCTET STRING of the
    SHA-256 of the key authorization."""
    import hashlib
    pem = acme.alpn_certificate("a.test", "tok.thumb")
    cert = x509.load_pem_x509_certificate(pem)
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"))
    assert ext.critical
    assert ext.value.value == b"\x04\x20" + hashlib.sha256(b"tok.thumb").digest()
    assert acme.certificate_names(pem) == {"a.test"}
    # it loads as a certificate file farm serves (certificate, then key)
    key = acme.Key.from_pem(pem[pem.index(b"-----BEGIN PRIVATE KEY"):])
    assert key.private.public_key().public_numbers() == cert.public_key().public_numbers()
