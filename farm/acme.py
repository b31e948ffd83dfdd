"""The ACME protocol (RFC 8555), as a client: no sockets here.

What is here:
- keys: the account key and certificate keys (ECDSA P-256 with ES256,
  RSA 2048 with RS256), read from and written as PEM;
- JWS in the flattened JSON serialization (RFC 7515), the JWK of a public
  key and its thumbprint (RFC 7638), the key authorization of a challenge;
- a CSR for a list of domains, and the self-signed certificate farm serves
  until the first real one arrives;
- AcmeClient: directory, nonces, account, order, authorizations,
  challenges, finalization and download, over a `http` callable given by
  the caller (farm/acmehttp.py does HTTPS for the master; the unit tests
  give an in-process server);
- when a certificate is due (renewal) and the back-off after failures.

The flow of AcmeClient.issue is blocking (it polls the server): the master
runs it in a child process (farm/acmerun.py), never in its event loop.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

__all__ = ["AcmeError", "KEY_TYPES", "Key", "b64u", "jws", "key_authorization", "make_csr",
           "self_signed", "Response", "AcmeClient", "renewal_due", "backoff_delay"]

KEY_TYPES = ("ecdsa-p256", "rsa-2048")
CHALLENGE_PATH = "/.well-known/acme-challenge/"
POLL_INTERVAL = 1.0
POLL_TIMEOUT = 120.0


class AcmeError(Exception):
    """The ACME server refused something, or answered what the protocol does
    not allow. `problem` is the server's problem document (RFC 7807) when
    there was one; str() says what was being done and why it failed."""

    def __init__(self, message: str, problem: dict | None = None, status: int = 0):
        super().__init__(message)
        self.problem = problem or {}
        self.status = status

    @property
    def type(self) -> str:
        return str(self.problem.get("type", ""))


def b64u(data: bytes) -> str:
    """base64url without padding (RFC 8555 section 6.1)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(n: int, size: int | None = None) -> bytes:
    return n.to_bytes(size or max(1, (n.bit_length() + 7) // 8), "big")


# ------------------------------------------------------------------ keys

class Key:
    """A private key and what ACME needs of it: its JWK, thumbprint and JWS
    signatures. ECDSA P-256 signs with ES256, RSA with RS256."""

    def __init__(self, private):
        if isinstance(private, ec.EllipticCurvePrivateKey):
            if not isinstance(private.curve, ec.SECP256R1):
                raise ValueError("only the P-256 curve is supported for ECDSA keys")
            self.alg = "ES256"
        elif isinstance(private, rsa.RSAPrivateKey):
            if private.key_size < 2048:
                raise ValueError("an RSA key needs at least 2048 bits")
            self.alg = "RS256"
        else:
            raise ValueError("expected an ECDSA P-256 or RSA private key")
        self.private = private

    @classmethod
    def generate(cls, key_type: str = "ecdsa-p256") -> "Key":
        """A new key of `key_type` (one of KEY_TYPES)."""
        if key_type == "ecdsa-p256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        if key_type == "rsa-2048":
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        raise ValueError(f"unknown key type {key_type!r} (expected one of {', '.join(KEY_TYPES)})")

    @classmethod
    def from_pem(cls, pem: bytes) -> "Key":
        """The key of an unencrypted PEM private key; ValueError otherwise."""
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (TypeError, ValueError) as e:
            raise ValueError(f"not an unencrypted PEM private key ({e})") from None
        return cls(private)

    def pem(self) -> bytes:
        return self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())

    @property
    def key_type(self) -> str:
        return "ecdsa-p256" if self.alg == "ES256" else "rsa-2048"

    def jwk(self) -> dict:
        """The public JWK (RFC 7517), members as RFC 7638 requires them."""
        pub = self.private.public_key()
        if self.alg == "ES256":
            nums = pub.public_numbers()
            return {"crv": "P-256", "kty": "EC", "x": b64u(_int_bytes(nums.x, 32)),
                    "y": b64u(_int_bytes(nums.y, 32))}
        nums = pub.public_numbers()
        return {"e": b64u(_int_bytes(nums.e)), "kty": "RSA", "n": b64u(_int_bytes(nums.n))}

    def thumbprint(self) -> str:
        """The JWK thumbprint (RFC 7638): SHA-256 of the required members,
        sorted, without whitespace; base64url."""
        canonical = json.dumps(self.jwk(), sort_keys=True, separators=(",", ":"))
        return b64u(hashlib.sha256(canonical.encode()).digest())

    def sign(self, data: bytes) -> bytes:
        """The JWS signature of data: ES256 is R || S (32 bytes each, not
        DER); RS256 is PKCS#1 v1.5 with SHA-256."""
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
            return _int_bytes(r, 32) + _int_bytes(s, 32)
        return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())


def jws(key: Key, url: str, nonce: str, payload: dict | None, kid: str | None = None) -> bytes:
    """The body of an ACME POST: a flattened JWS over `payload` (None: a
    POST-as-GET, an empty payload) with the protected header RFC 8555
    section 6.2 requires: alg, nonce, url, and kid (an account URL) or jwk
    (newAccount, before there is an account)."""
    protected: dict = {"alg": key.alg, "nonce": nonce, "url": url}
    if kid:
        protected["kid"] = kid
    else:
        protected["jwk"] = key.jwk()
    p64 = b64u(json.dumps(protected, separators=(",", ":")).encode())
    body64 = "" if payload is None else b64u(json.dumps(payload, separators=(",", ":")).encode())
    sig = key.sign(f"{p64}.{body64}".encode("ascii"))
    return json.dumps({"protected": p64, "payload": body64, "signature": b64u(sig)}).encode()


def key_authorization(token: str, account: Key) -> str:
    """What an HTTP-01 challenge serves at /.well-known/acme-challenge/TOKEN
    (RFC 8555 section 8.1), and what a TLS-ALPN-01 certificate holds the
    SHA-256 of."""
    return f"{token}.{account.thumbprint()}"


ACME_TLS_ALPN = "acme-tls/1"                       # the ALPN protocol of RFC 8737
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")    # id-pe-acmeIdentifier


def alpn_certificate(domain: str, keyauth: str, key: Key | None = None, now: float | None = None) -> bytes:
    """The certificate that answers a TLS-ALPN-01 validation of domain
    (RFC 8737 section 3): self-signed, domain its only SAN, and the
    critical acmeIdentifier extension holding the SHA-256 of keyauth (a
    DER OCTET STRING). PEM of the certificate, then of its key (a new
    P-256 key unless given): a file farm loads."""
    key = key or Key.generate("ecdsa-p256")
    digest = hashlib.sha256(keyauth.encode("ascii")).digest()
    start = datetime.datetime.fromtimestamp(now if now is not None else time.time(),
                                            datetime.timezone.utc) - datetime.timedelta(minutes=5)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "farm ACME TLS-ALPN-01")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
            .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, b"\x04\x20" + digest),
                           critical=True)
            .sign(key.private, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM) + key.pem()


# --------------------------------------------------------- certificates

def make_csr(domains: list[str], key: Key) -> bytes:
    """A DER CSR for `domains` (every one a SAN DNS name; the first is the
    CN too), signed by key."""
    if not domains:
        raise ValueError("a certificate needs at least one domain")
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]))
    builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]),
                                    critical=False)
    csr = builder.sign(key.private, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def self_signed(domains: list[str], key: Key, days: int = 90, now: float | None = None) -> bytes:
    """A self-signed PEM certificate for domains (what farm serves until the
    ACME server gives one), followed by key's PEM: a file farm loads."""
    start = datetime.datetime.fromtimestamp(now if now is not None else time.time(),
                                            datetime.timezone.utc) - datetime.timedelta(minutes=5)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "farm (waiting for ACME)"),
                      x509.NameAttribute(NameOID.COMMON_NAME, domains[0] if domains else "localhost")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key.private, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM) + key.pem()


def certificate_dates(pem: bytes) -> tuple[float, float]:
    """(notBefore, notAfter) of the first certificate of a PEM, as epoch
    seconds."""
    cert = x509.load_pem_x509_certificate(pem)
    if hasattr(cert, "not_valid_after_utc"):          # cryptography >= 42
        return cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
    utc = datetime.timezone.utc                        # Debian bookworm's 38
    return (cert.not_valid_before.replace(tzinfo=utc).timestamp(),
            cert.not_valid_after.replace(tzinfo=utc).timestamp())


def certificate_names(pem: bytes) -> set[str]:
    """The SAN DNS names of the first certificate of a PEM, lowercased."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {n.lower() for n in san.get_values_for_type(x509.DNSName)}


# -------------------------------------------------------- scheduling

def renewal_due(not_before: float, not_after: float, renew_before: float | None = None) -> float:
    """When a certificate valid from not_before to not_after should be
    renewed (epoch seconds): renew_before seconds before it expires, by
    default when a third of its lifetime is left (60 days into a 90-day
    certificate)."""
    if renew_before is None:
        renew_before = (not_after - not_before) / 3.0
    return not_after - renew_before


def backoff_delay(failures: int, base: float = 60.0, cap: float = 86400.0) -> float:
    """Seconds to wait after `failures` failed attempts in a row (>= 1):
    base doubled each time, at most cap (ACME servers rate-limit clients
    that retry fast)."""
    return min(cap, base * (2 ** max(0, failures - 1)))


# ------------------------------------------------------------ client

@dataclass
class Response:
    """What the `http` callable returns: the status, the headers (names
    lowercased) and the body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> dict:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            raise AcmeError(f"the ACME server answered {self.status} with a body that is not JSON",
                            status=self.status) from None
        if not isinstance(value, dict):
            raise AcmeError("the ACME server answered JSON that is not an object", status=self.status)
        return value


# http(method, url, body or None, headers) -> Response; raises OSError when
# the server cannot be reached.
Http = Callable[[str, str, "bytes | None", dict], Response]


def _problem_message(what: str, resp: Response) -> AcmeError:
    problem: dict = {}
    if resp.headers.get("content-type", "").startswith("application/problem+json") or resp.body[:1] == b"{":
        try:
            problem = json.loads(resp.body)
        except ValueError:
            problem = {}
    detail = problem.get("detail") or resp.body[:200].decode("utf-8", "replace") or "no detail"
    kind = str(problem.get("type", "")).rsplit(":", 1)[-1]
    return AcmeError(f"{what}: {resp.status} {kind + ': ' if kind else ''}{detail}", problem, resp.status)


class AcmeClient:
    """One account on one ACME server. `http` does the requests; `sleep`
    waits between polls (tests pass a no-op). Every method raises AcmeError
    on a refusal and OSError when the server cannot be reached."""

    def __init__(self, directory_url: str, account: Key, http: Http, contact: tuple[str, ...] = (),
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 poll_timeout: float = POLL_TIMEOUT):
        self.directory_url = directory_url
        self.account = account
        self.http = http
        self.contact = tuple(contact)
        self.sleep = sleep
        self.clock = clock
        self.poll_timeout = poll_timeout
        self.dir: dict | None = None
        self.nonces: list[str] = []
        self.kid: str | None = None

    # -- transport --------------------------------------------------------

    def directory(self) -> dict:
        """The directory (RFC 8555 section 7.1.1), fetched once."""
        if self.dir is None:
            resp = self.http("GET", self.directory_url, None, {})
            if resp.status != 200:
                raise _problem_message(f"directory {self.directory_url}", resp)
            d = resp.json()
            for need in ("newNonce", "newAccount", "newOrder"):
                if not isinstance(d.get(need), str):
                    raise AcmeError(f"directory {self.directory_url}: no {need} URL (is it an ACME directory?)")
            self.dir = d
        return self.dir

    def _keep_nonce(self, resp: Response) -> None:
        nonce = resp.headers.get("replay-nonce")
        if nonce:
            self.nonces.append(nonce)

    def nonce(self) -> str:
        """A fresh nonce: one the server sent with its last answer, else
        from newNonce."""
        if self.nonces:
            return self.nonces.pop()
        resp = self.http("HEAD", self.directory()["newNonce"], None, {})
        nonce = resp.headers.get("replay-nonce")
        if resp.status not in (200, 204) or not nonce:
            raise _problem_message("newNonce", resp)
        return nonce

    def post(self, url: str, payload: dict | None, what: str, accept: str | None = None,
             use_jwk: bool = False) -> Response:
        """A signed POST (payload None: POST-as-GET). A badNonce refusal is
        retried with the fresh nonce it carries (section 6.5). Raises
        AcmeError for any status >= 400."""
        for attempt in range(3):
            body = jws(self.account, url, self.nonce(), payload, None if use_jwk else self.kid)
            headers = {"Content-Type": "application/jose+json"}
            if accept:
                headers["Accept"] = accept
            resp = self.http("POST", url, body, headers)
            self._keep_nonce(resp)
            if resp.status < 400:
                return resp
            err = _problem_message(what, resp)
            if err.type != "urn:ietf:params:acme:error:badNonce" or attempt == 2:
                raise err
        raise AssertionError("unreachable")

    # -- account and order ------------------------------------------------

    def register(self) -> str:
        """Find or create the account of our key (newAccount agreeing to the
        terms of service): its URL, the kid of later requests."""
        payload: dict = {"termsOfServiceAgreed": True}
        if self.contact:
            payload["contact"] = list(self.contact)
        resp = self.post(self.directory()["newAccount"], payload, "newAccount", use_jwk=True)
        kid = resp.headers.get("location")
        if not kid:
            raise AcmeError("newAccount: the server gave no account URL (Location)")
        self.kid = kid
        return kid

    def _poll(self, url: str, what: str, done: tuple[str, ...], pending: tuple[str, ...]) -> dict:
        """POST-as-GET url until its status leaves `pending`; the object
        whose status is in `done`, else AcmeError."""
        deadline = self.clock() + self.poll_timeout
        while True:
            resp = self.post(url, None, what)
            obj = resp.json()
            status = obj.get("status")
            if status in done:
                return obj
            if status not in pending:
                raise AcmeError(f"{what} is {status}: {_detail(obj)}", obj.get("error"))
            if self.clock() >= deadline:
                raise AcmeError(f"{what} still {status} after {self.poll_timeout:.0f}s")
            self.sleep(_retry_after(resp.headers.get("retry-after"), POLL_INTERVAL))

    def issue(self, domains: list[str], cert_key: Key, publish: Callable[[str, str], None],
              withdraw: Callable[[str], None], challenge: str = "http-01") -> bytes:
        """Order a certificate for domains with cert_key and return its PEM
        chain, proving them with `challenge` ("http-01" or "tls-alpn-01").
        For each authorization still pending, publish(token,
        key_authorization, domain) is called before the server is told to
        validate, and withdraw(token) once it is over (even on failure)."""
        if self.kid is None:
            self.register()
        resp = self.post(self.directory()["newOrder"],
                         {"identifiers": [{"type": "dns", "value": d} for d in domains]}, "newOrder")
        order = resp.json()
        order_url = resp.headers.get("location")
        if not order_url:
            raise AcmeError("newOrder: the server gave no order URL (Location)")
        published: list[str] = []
        try:
            for authz_url in order.get("authorizations", []):
                self._authorize(authz_url, challenge, publish, published)
        finally:
            for token in published:
                withdraw(token)
        order = self._poll(order_url, "order", ("ready", "valid", "processing"), ("pending",))
        if order["status"] == "ready":
            self.post(order["finalize"], {"csr": b64u(make_csr(domains, cert_key))}, "finalize")
        order = self._poll(order_url, "order", ("valid",), ("ready", "processing"))
        cert_url = order.get("certificate")
        if not isinstance(cert_url, str):
            raise AcmeError("order is valid but names no certificate URL")
        resp = self.post(cert_url, None, "certificate download", accept="application/pem-certificate-chain")
        if b"-----BEGIN CERTIFICATE-----" not in resp.body:
            raise AcmeError("certificate download: not a PEM certificate chain")
        return resp.body

    def _authorize(self, url: str, challenge: str, publish, published: list[str]) -> None:
        authz = self.post(url, None, "authorization").json()
        name = authz.get("identifier", {}).get("value", "?")
        if authz.get("status") == "valid":
            return
        if authz.get("status") != "pending":
            raise AcmeError(f"authorization of {name} is {authz.get('status')}: {_detail(authz)}")
        chall = next((c for c in authz.get("challenges", []) if c.get("type") == challenge), None)
        if chall is None:
            offered = ", ".join(str(c.get("type")) for c in authz.get("challenges", []))
            raise AcmeError(f"authorization of {name}: the server offers no {challenge} challenge "
                            f"(offered: {offered or 'none'})")
        token = str(chall.get("token", ""))
        if not token or not all(c.isalnum() or c in "-_" for c in token):
            raise AcmeError(f"authorization of {name}: bad challenge token {token!r}")
        publish(token, key_authorization(token, self.account), name)
        published.append(token)
        self.post(chall["url"], {}, f"challenge {challenge} for {name}")
        self._poll(url, f"authorization of {name}", ("valid",), ("pending",))


def _detail(obj: dict) -> str:
    """The reason an ACME object gives for failing: its error, or the
    error of a failed challenge."""
    err = obj.get("error")
    if not err:
        for c in obj.get("challenges", []):
            if c.get("error"):
                err = c["error"]
                break
    if isinstance(err, dict):
        return str(err.get("detail") or err.get("type") or "no detail")
    return "no detail"


def _retry_after(value: str | None, default: float) -> float:
    """Retry-After in seconds (only the delay form), bounded to [0.1, 10]."""
    try:
        return min(10.0, max(0.1, float(value))) if value else default
    except ValueError:
        return default
