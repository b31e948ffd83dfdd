"""Certificates and SSL contexts, read and built in the master (no sockets).

The master builds every server-side ssl.SSLContext before it forks the
workers. A worker gets a copy of the very same OpenSSL SSL_CTX objects,
session-ticket keys included (OpenSSL draws them when a context is
created), so a TLS session resumed on any worker decrypts there: clients
resume whichever worker the kernel hands their connection to. On a reload,
a frontend whose certificate files (contents) and TLS settings did not
change keeps its context objects (TlsStore), so the new workers have the
old keys and sessions survive the reload too.

What is here:
- reading certificates: PEM files holding the certificate, its chain and
  the private key (or the key in FILE.key beside it, as HAProxy loads
  it), or directories of such files; every failure is a TlsError naming
  the file; an expired certificate loads (a warning for `farm check`);
- what a certificate says (CertInfo: names for SNI, dates, DNs in
  HAProxy's one-line format, serial, key algorithm, SHA-1 fingerprint),
  for `show ssl cert`, the stats page and Prometheus;
- SNI selection (SniIndex: the exact name, then a wildcard, then the
  first certificate) through the contexts' sni_callback;
- the contexts themselves (server_context), and the store that keeps them
  across reloads.

Only Python's ssl module is used. Decoding a certificate without a
handshake uses ssl._ssl._test_decode_cert, which reads a PEM file by path:
certificates held in memory are handed to it (and to load_cert_chain) as
/proc/self/fd/N of a memfd, so that what is decoded, fingerprinted and
loaded is the same bytes read once. Two facts the ssl module does not
give are read here directly: the public key algorithm and size ("EC256",
"RSA2048", from the certificate's DER), and TLS 1.3 cipher suites, which
have no setter in the ssl module (SSL_CTX_set_ciphersuites through
ctypes, checked against the context's options first). The `cryptography`
package would give the first, but it is not a dependency of farm (and
Debian's version lacks the APIs that would make it worth one).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import os
import re
import ssl
import stat
import time
from dataclasses import dataclass, field

from farm import model

__all__ = [
    "TlsError", "CertInfo", "CertFile", "SniIndex", "FrontendContexts", "TlsSet",
    "TlsStore", "certificate_files", "read_certificate", "check_certificate",
    "read_ca", "check_ciphers", "check_ciphersuites", "dn_oneline", "server_context",
    "BackendContexts", "client_context", "failure_reason", "challenge_context",
]

EXPIRY_WARNING_DAYS = 0        # `farm check` warns for certificates expired (or not yet valid)
_VERSIONS = {"TLSv1.0": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
             "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
# Files of a certificate directory that are not certificates (HAProxy's
# extra files beside a certificate), and hidden files.
_NOT_CERTIFICATES = (".key", ".ocsp", ".issuer", ".sctl")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----\r?\n?", re.S)
_KEY_LABELS = (b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"DSA PRIVATE KEY")
MAX_FILE = 1 << 20             # a PEM file larger than this is not a certificate


class TlsError(Exception):
    """A certificate, key or CA file that cannot be used, or a TLS setting
    OpenSSL refuses; str() names the file (or the setting) and the reason."""


# --------------------------------------------------------- reading files

def _read(path: str, what: str) -> bytes:
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise TlsError(f"{what} {path}: not a regular file")
        if st.st_size > MAX_FILE:
            raise TlsError(f"{what} {path}: too large for a PEM file ({st.st_size} bytes)")
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TlsError(f"cannot read {what} {path}: {e.strerror or e}") from None


def certificate_files(path: str) -> list[str]:
    """The certificate files that `path` names: itself, or the regular
    files of a directory in name order (hidden files and HAProxy's extra
    files .key .ocsp .issuer .sctl left out). Raises TlsError when it
    cannot be read or a directory holds no certificate file."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise TlsError(f"cannot read certificate {path}: {e.strerror or e}") from None
    if not stat.S_ISDIR(st.st_mode):
        return [path]
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise TlsError(f"cannot read certificate directory {path}: {e.strerror or e}") from None
    files = []
    for name in names:
        full = os.path.join(path, name)
        if name.startswith(".") or name.endswith(_NOT_CERTIFICATES) or not os.path.isfile(full):
            continue
        files.append(full)
    if not files:
        raise TlsError(f"certificate directory {path} holds no certificate file")
    return files


@contextlib.contextmanager
def _bytes_path(data: bytes):
    """A path that reads as `data` (a memfd), for the ssl functions that
    only take file names."""
    fd = os.memfd_create("farm-pem", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _no_password() -> bytes:
    # An encrypted key must never make OpenSSL prompt on the terminal.
    return b""


# ------------------------------------------------------ certificate facts

_short_names: dict[str, str] = {}


def _short_name(long_name: str) -> str:
    """OpenSSL's short name of a DN attribute ("countryName" -> "C")."""
    short = _short_names.get(long_name)
    if short is None:
        try:
            short = ssl._ASN1Object.fromname(long_name).shortname or long_name
        except ValueError:
            short = long_name         # an OID without a name: its dotted form
        _short_names[long_name] = short
    return short


def dn_oneline(name, entry: str | None = None) -> str:
    """A decoded DN (the ((attr, value),) tuples of ssl's certificate dicts)
    in HAProxy's one-line format, "/C=US/O=Example/CN=www.example.com".
    With entry (a short or long attribute name, any case), only the value
    of its last occurrence ("" when absent), as ssl_c_s_dn(CN) gives."""
    if entry is None:
        return "".join(f"/{_short_name(k)}={v}" for rdn in name for k, v in rdn)
    want = entry.lower()
    found = ""
    for rdn in name:
        for k, v in rdn:
            if k.lower() == want or _short_name(k).lower() == want:
                found = v
    return found


def _der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """The DER element at pos: (tag, start of its content, end)."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    return tag, pos, pos + length


def _der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        item = _der_item(data, start)
        out.append(item)
        start = item[2]
    return out


_RSA = bytes.fromhex("2a864886f70d010101")
_EC = bytes.fromhex("2a8648ce3d0201")
_DSA = bytes.fromhex("2a8648ce380401")
_CURVE_BITS = {bytes.fromhex("2a8648ce3d030107"): 256, bytes.fromhex("2b81040022"): 384,
               bytes.fromhex("2b81040023"): 521, bytes.fromhex("2b81040021"): 224,
               bytes.fromhex("2b8104000a"): 256}
_EDWARDS = {bytes.fromhex("2b6570"): "ED25519", bytes.fromhex("2b6571"): "ED448"}


def key_algorithm(der: bytes) -> str:
    """The public key of a DER certificate as HAProxy's `show ssl cert`
    names it: "RSA2048", "EC256", "DSA2048" ("ED25519"/"ED448" for keys
    HAProxy does not name; "unknown" for anything else)."""
    try:
        _, s, e = _der_item(der, 0)                          # Certificate
        _, s, e = _der_children(der, s, e)[0]                # tbsCertificate
        fields = _der_children(der, s, e)
        if fields[0][0] == 0xA0:                             # [0] version
            fields = fields[1:]
        _, s, e = fields[5]                                  # subjectPublicKeyInfo
        algo, bits = _der_children(der, s, e)
        parts = _der_children(der, algo[1], algo[2])
        oid = der[parts[0][1]:parts[0][2]]
        if oid == _RSA or oid == _DSA:
            if oid == _DSA:
                params = _der_children(der, parts[1][1], parts[1][2])
                return "DSA%d" % int.from_bytes(der[params[0][1]:params[0][2]], "big").bit_length()
            _, s, e = _der_item(der, bits[1] + 1)           # BIT STRING: unused-bits byte, then SEQUENCE
            modulus = _der_children(der, s, e)[0]
            return "RSA%d" % int.from_bytes(der[modulus[1]:modulus[2]], "big").bit_length()
        if oid == _EC:
            curve = der[parts[1][1]:parts[1][2]]
            return "EC%d" % _CURVE_BITS[curve] if curve in _CURVE_BITS else "EC"
        return _EDWARDS.get(oid, "unknown")
    except (IndexError, KeyError, ValueError):
        return "unknown"


@dataclass(frozen=True)
class CertInfo:
    """What one certificate file says (its first certificate, the leaf).

    Dates are as OpenSSL prints them ("Sep 13 21:20:24 2019 GMT") and as
    epoch seconds; DNs in HAProxy's one-line format; serial and sha1 in
    upper-case hex; names are what SNI matches (the SAN DNS names and
    the subject CNs, lowercased; "*.example.com" for a wildcard)."""

    path: str
    key_path: str
    subject: str
    issuer: str
    serial: str
    not_before: str
    not_after: str
    not_before_ts: float
    not_after_ts: float
    dns_names: tuple[str, ...]
    names: tuple[str, ...]
    algorithm: str
    sha1: str
    chain: tuple[tuple[str, str], ...]       # (subject, issuer) of each chain certificate

    def days_left(self, now: float | None = None) -> float:
        """Days until notAfter (negative once expired)."""
        return (self.not_after_ts - (time.time() if now is None else now)) / 86400.0

    def describe(self) -> str:
        """HAProxy's `show ssl cert <file>` text for this certificate."""
        lines = [f"Filename: {self.path}", "Status: Used", f"Serial: {self.serial}",
                 f"notBefore: {self.not_before}", f"notAfter: {self.not_after}",
                 "Subject Alternative Name: " + ", ".join("DNS:" + n for n in self.dns_names),
                 f"Algorithm: {self.algorithm}", f"SHA1 FingerPrint: {self.sha1}",
                 f"Subject: {self.subject}", f"Issuer: {self.issuer}"]
        for subject, issuer in self.chain:
            lines += [f"Chain Subject: {subject}", f"Chain Issuer: {issuer}"]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CertFile:
    """A certificate file read and checked: its facts, the PEM of the
    certificate and its chain, and the PEM of its private key."""

    info: CertInfo
    pem: bytes
    key: bytes


def _decode(path: str, pem: bytes) -> dict:
    """ssl's decoded dict of one PEM certificate (TlsError if invalid)."""
    with _bytes_path(pem) as p:
        try:
            return ssl._ssl._test_decode_cert(p)
        except (ssl.SSLError, ValueError) as e:
            raise TlsError(f"certificate {path}: invalid certificate ({_reason(e)})") from None


def _reason(e: Exception) -> str:
    """A short reason from an ssl exception: OpenSSL's reason text."""
    reason = getattr(e, "reason", None)
    if reason:
        return reason.replace("_", " ").lower()
    if e.args and isinstance(e.args[-1], str):
        return e.args[-1]
    return str(e)


def _time(text: str) -> float:
    try:
        return float(ssl.cert_time_to_seconds(text))
    except ValueError:
        return 0.0


def _names_of(decoded: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    dns = tuple(v for k, v in decoded.get("subjectAltName", ()) if k == "DNS")
    cns = tuple(v for rdn in decoded.get("subject", ()) for k, v in rdn if k == "commonName")
    names: list[str] = []
    for n in dns + cns:
        n = n.lower().rstrip(".")
        if n and n not in names:
            names.append(n)
    return dns, tuple(names)


def read_certificate(path: str, key_path: str | None = None) -> CertFile:
    """Read and check one certificate file: the first CERTIFICATE block is
    the certificate, the following ones its chain; the private key is in
    key_path when given, else in the same file or in path + ".key". The key must match the certificate
    (checked by OpenSSL, as a context loads it). Raises TlsError naming
    the file for anything unusable; an expired certificate is not an error
    (see check_certificate)."""
    data = _read(path, "certificate")
    certs: list[bytes] = []
    keys: list[bytes] = []
    for m in _PEM_BLOCK.finditer(data):
        label = m.group(1)
        if label == b"CERTIFICATE":
            certs.append(m.group(0))
        elif label in _KEY_LABELS:
            if b"ENCRYPTED" in m.group(2)[:200]:
                raise TlsError(f"certificate {path}: the private key is encrypted "
                               "(farm needs it unencrypted)")
            keys.append(m.group(0))
        elif label == b"ENCRYPTED PRIVATE KEY":
            raise TlsError(f"certificate {path}: the private key is encrypted "
                           "(farm needs it unencrypted)")
    if not certs:
        raise TlsError(f"certificate {path}: no PEM certificate found (expected the "
                       "certificate, its chain and the private key, in PEM)")
    leaf = _decode(path, certs[0])
    chain = tuple((dn_oneline(d.get("subject", ())), dn_oneline(d.get("issuer", ())))
                  for d in (_decode(path, c) for c in certs[1:]))
    if key_path is not None and key_path != path:
        key_file = key_path                  # given apart (a backend's key)
    elif keys:
        key_file = path
    else:
        key_file = path + ".key"             # HAProxy's extra file beside the certificate
        if not os.path.exists(key_file):
            raise TlsError(f"certificate {path}: no private key (in the file, or in {key_file})")
    if key_file != path:
        key_data = _read(key_file, "private key")
        keys = [m.group(0) for m in _PEM_BLOCK.finditer(key_data) if m.group(1) in _KEY_LABELS]
        if not keys or b"ENCRYPTED" in key_data:
            raise TlsError(f"private key {key_file}: no unencrypted PEM private key found")
    key_path = key_file
    if len(keys) > 1:
        raise TlsError(f"certificate {key_path}: more than one private key")
    pem = b"".join(c if c.endswith(b"\n") else c + b"\n" for c in certs)
    key = keys[0] if keys[0].endswith(b"\n") else keys[0] + b"\n"
    # the key against the certificate, as a context will load them
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with _bytes_path(pem + key) as p:
        try:
            ctx.load_cert_chain(p, password=_no_password)
        except ssl.SSLError as e:
            # the same key type with another key, or another key type
            # (an RSA key for an EC certificate: no certificate in its slot)
            if getattr(e, "reason", None) in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
                raise TlsError(f"certificate {path}: the private key ({key_path}) does not "
                               "match the certificate") from None
            raise TlsError(f"certificate {path}: cannot load ({_reason(e)})") from None
    der = base64.b64decode(b"".join(certs[0].splitlines()[1:-1]))
    dns, names = _names_of(leaf)
    info = CertInfo(
        path=path, key_path=key_path,
        subject=dn_oneline(leaf.get("subject", ())), issuer=dn_oneline(leaf.get("issuer", ())),
        serial=leaf.get("serialNumber", ""),
        not_before=leaf.get("notBefore", ""), not_after=leaf.get("notAfter", ""),
        not_before_ts=_time(leaf.get("notBefore", "")), not_after_ts=_time(leaf.get("notAfter", "")),
        dns_names=dns, names=names, algorithm=key_algorithm(der),
        sha1=hashlib.sha1(der).hexdigest().upper(), chain=chain)
    return CertFile(info, pem, key)


def check_certificate(path: str, now: float | None = None,
                      key_path: str | None = None) -> tuple[CertInfo, list[str]]:
    """read_certificate(path, key_path) for `farm check`: (facts, warnings).
    Expired or not yet valid certificates are warnings (they load; clients
    will refuse them). Raises TlsError like read_certificate."""
    info = read_certificate(path, key_path).info
    now = time.time() if now is None else now
    warnings = []
    if info.not_after_ts and info.not_after_ts < now:
        warnings.append(f"certificate {path} expired on {info.not_after}")
    elif info.not_before_ts and info.not_before_ts > now:
        warnings.append(f"certificate {path} is not valid before {info.not_before}")
    return info, warnings


def read_ca(path: str) -> bytes:
    """A PEM file of trusted CA certificates (client_ca, a backend's ca):
    its bytes, checked by OpenSSL. Raises TlsError naming the file."""
    data = _read(path, "CA file")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise TlsError(f"CA file {path}: no PEM certificate found")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(
            cadata=data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as e:
        raise TlsError(f"CA file {path}: {_reason(e)}") from None
    return data


# ---------------------------------------------------------- settings

def check_ciphers(text: str) -> None:
    """Raise TlsError unless OpenSSL accepts `text` as a TLS <= 1.2 cipher
    list (no I/O)."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(text)
    except ssl.SSLError:
        raise TlsError(f"OpenSSL accepts no cipher in {text!r}") from None


_libssl = None


def _set_ciphersuites(ctx: ssl.SSLContext, text: str) -> None:
    """SSL_CTX_set_ciphersuites, which Python's ssl module does not offer:
    the SSL_CTX pointer is the first field of the context object after the
    object header; it is used only once SSL_CTX_get_options through it
    agrees with ctx.options (a different Python layout is refused)."""
    global _libssl
    if _libssl is None:
        lib = ctypes.CDLL(ssl._ssl.__file__)
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_set_ciphersuites.restype = ctypes.c_int
        lib.SSL_CTX_set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        _libssl = lib
    ptr = ctypes.c_void_p.from_address(id(ctx) + 2 * ctypes.sizeof(ctypes.c_void_p)).value
    if not ptr or _libssl.SSL_CTX_get_options(ptr) != ctx.options:
        raise TlsError("ciphersuites cannot be set with this Python build (leave the default)")
    if _libssl.SSL_CTX_set_ciphersuites(ptr, text.encode("ascii", "replace")) != 1:
        raise TlsError(f"OpenSSL accepts no TLS 1.3 cipher suite in {text!r}")


def check_ciphersuites(text: str) -> None:
    """Raise TlsError unless OpenSSL accepts `text` as TLS 1.3 suites."""
    _set_ciphersuites(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), text)


# ---------------------------------------------------------- SNI selection

class SniIndex:
    """Which certificate a server name gets: an exact name of one of them,
    else a wildcard ("*.example.com" covers one label: a.example.com, not
    example.com nor a.b.example.com), else the first certificate. When two
    certificates claim a name, the first in the config's order wins."""

    def __init__(self, names_per_cert: list[tuple[str, ...]]):
        self.exact: dict[str, int] = {}
        self.wildcard: dict[str, int] = {}
        for i, names in enumerate(names_per_cert):
            for n in names:
                if n.startswith("*."):
                    self.wildcard.setdefault(n[2:], i)
                else:
                    self.exact.setdefault(n, i)

    def select(self, server_name: str) -> int:
        """The index of the certificate for server_name (0: the default)."""
        name = server_name.lower().rstrip(".")
        i = self.exact.get(name)
        if i is not None:
            return i
        dot = name.find(".")
        if dot > 0:
            i = self.wildcard.get(name[dot + 1:])
            if i is not None:
                return i
        return 0


class FrontendContexts:
    """The server contexts of one frontend's tls binds: one per certificate,
    in the config's order. `default` is the one every connection starts
    with (and the one whose ticket keys seal its sessions); its
    sni_callback records the client's server name on the connection's
    owner (its `sni`, what ssl_fc_sni reads: the worker's TlsTransport, or
    an ssl.SSLSocket) and switches the connection to the certificate SNI
    selects (the owner's `context`)."""

    def __init__(self, name: str, contexts: list[ssl.SSLContext], certs: list[CertInfo]):
        self.name = name
        self.contexts = contexts
        self.certs = certs
        self.index = SniIndex([c.names for c in certs])
        self.default = contexts[0]
        self.default.sni_callback = self.on_sni

    def on_sni(self, conn, server_name, initial) -> None:
        conn.sni = server_name
        if server_name:
            ctx = self.contexts[self.index.select(server_name)]
            if ctx is not initial:
                conn.context = ctx


def server_context(tls: model.FrontendTls, cert: CertFile, client_ca: bytes | None) -> ssl.SSLContext:
    """A server-side context for one certificate with a frontend's TLS
    settings. Renegotiation is refused (TLS 1.2; TLS 1.3 has none); the
    server's cipher order wins. Raises TlsError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    if not tls.session_tickets:
        ctx.options |= ssl.OP_NO_TICKET
    try:
        ctx.set_ciphers(tls.ciphers)
    except ssl.SSLError:
        raise TlsError(f"OpenSSL accepts no cipher in {tls.ciphers!r}") from None
    if tls.ciphersuites:
        _set_ciphersuites(ctx, tls.ciphersuites)
    ctx.set_alpn_protocols(list(tls.alpn))
    if tls.verify != "none":
        ctx.verify_mode = ssl.CERT_REQUIRED if tls.verify == "required" else ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cadata=(client_ca or b"").decode("ascii", "replace"))
    _load_chain(ctx, cert)
    return ctx


def _load_chain(ctx: ssl.SSLContext, cert: CertFile) -> None:
    """cert's chain and key into ctx (through a private file: OpenSSL
    reads them from a path). Raises TlsError naming the file."""
    with _bytes_path(cert.pem + cert.key) as p:
        try:
            ctx.load_cert_chain(p, password=_no_password)
        except ssl.SSLError as e:
            raise TlsError(f"certificate {cert.info.path}: cannot load ({_reason(e)})") from None


def challenge_context(pem: bytes, alpn: str = "acme-tls/1") -> ssl.SSLContext:
    """The server context that answers a TLS-ALPN-01 validation (RFC
    8737): the challenge certificate and key in pem (farm/acme.py
    alpn_certificate), ALPN acme-tls/1 only, TLS 1.2 at least, no session
    tickets (the validation closes right after the handshake). Made in a
    worker when a validation comes. Raises TlsError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    ctx.set_alpn_protocols([alpn])
    with _bytes_path(pem) as p:
        try:
            ctx.load_cert_chain(p, password=_no_password)
        except ssl.SSLError as e:
            raise TlsError(f"TLS-ALPN-01 certificate: cannot load ({_reason(e)})") from None
    return ctx


# --------------------------------------------------- TLS to servers

def client_context(tls: model.BackendTls, ca: bytes | None, cert: CertFile | None,
                   check_hostname: bool) -> ssl.SSLContext:
    """A client-side context for a backend's tls servers (and their TLS
    health checks). verify "required" checks the chain against ca (None:
    the system's store) and, with check_hostname, the name sent as SNI
    against the certificate (as HAProxy does when sni is set and
    verifyhost is not); "none" checks nothing. cert is the client
    certificate for mutual TLS. Raises TlsError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    if tls.verify == "none":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.check_hostname = check_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
        if ca is not None:
            ctx.load_verify_locations(cadata=ca.decode("ascii", "replace"))
        else:
            ctx.set_default_verify_paths()
    if tls.alpn:
        ctx.set_alpn_protocols(list(tls.alpn))
    if cert is not None:
        _load_chain(ctx, cert)
    return ctx


class BackendContexts:
    """The client contexts of one backend's tls servers: `named` verifies
    the server's certificate against the SNI name sent, `unnamed` (no SNI)
    the chain only; they are the same object with verify "none". A TLS
    session can only be resumed through the context that made it, so a
    connection's name decides its context and the session cache slot."""

    def __init__(self, name: str, tls: model.BackendTls, ca: bytes | None, cert: CertFile | None):
        self.name = name
        self.settings = tls
        self.certs = [cert.info] if cert is not None else []    # the client certificate
        self.named = client_context(tls, ca, cert, check_hostname=True)
        self.unnamed = self.named if tls.verify == "none" else \
            client_context(tls, ca, cert, check_hostname=False)

    def context(self, server_name: str | None) -> ssl.SSLContext:
        return self.named if server_name else self.unnamed


def failure_reason(e: Exception) -> str:
    """Why a handshake with a server failed, in a few words for a log line
    or a check's info: the certificate verification message ("certificate
    verify failed: self-signed certificate", "Hostname mismatch..."), else
    OpenSSL's reason ("tlsv1 alert unknown ca"), else the OS error."""
    if isinstance(e, ssl.SSLCertVerificationError):
        detail = e.verify_message or _reason(e)
        return f"certificate verify failed: {detail}"
    if isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return "connection closed during the handshake"
    if isinstance(e, ssl.SSLError):
        return _reason(e)
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)


def _backend_uses_tls(be: model.Backend) -> bool:
    return any(s.tls or be.check_tls(s) for s in be.servers)


# ------------------------------------------------------ one generation

@dataclass
class TlsSet:
    """The TLS contexts of one config generation, by frontend name, and
    the certificates they serve (for the runtime API and the stats)."""

    frontends: dict[str, FrontendContexts]
    keys: dict[str, bytes]                 # frontend -> fingerprint (TlsStore)
    backends: dict[str, BackendContexts] = field(default_factory=dict)   # TLS to servers

    def certificates(self) -> list[tuple[str, CertInfo]]:
        """(proxy, certificate) pairs in config order: the frontends'
        certificates, then the backends' client certificates (mutual TLS
        to servers), for `show ssl cert`, the stats page and Prometheus."""
        return [(name, c) for name, fc in self.frontends.items() for c in fc.certs] + \
            [(name, c) for name, bc in self.backends.items() for c in bc.certs]

    def cert(self, path: str) -> CertInfo | None:
        for _, c in self.certificates():
            if c.path == path:
                return c
        return None


EMPTY = TlsSet({}, {})


def _fingerprint(fe: model.Frontend, files: list[CertFile], client_ca: bytes | None) -> bytes:
    h = hashlib.sha256()
    settings = (fe.name, fe.tls.alpn, fe.tls.min_version, fe.tls.ciphers, fe.tls.ciphersuites,
                fe.tls.verify, fe.tls.session_tickets)
    h.update(repr(settings).encode())
    for f in files:
        h.update(b"\0cert\0" + f.info.path.encode() + b"\0" + f.pem + b"\0" + f.key)
    h.update(b"\0ca\0" + (client_ca or b""))
    return h.digest()


class TlsStore:
    """The master's contexts, kept by fingerprint (the frontend's name, its
    TLS settings and the contents of its certificate, key and CA files)
    so that a reload that changes none of them reuses the same objects."""

    def __init__(self) -> None:
        self.kept: dict[bytes, FrontendContexts] = {}

    def build(self, config: model.Config, extra: dict[str, list[str]] | None = None) -> TlsSet:
        """The TlsSet of config (frontends with a tls bind). Reads every
        file again; raises TlsError (nothing kept changes then). extra:
        frontend -> certificate files served before its own (the ACME
        certificate, farm/acmerun.py)."""
        out: dict[str, FrontendContexts] = {}
        keys: dict[str, bytes] = {}
        made: dict[bytes, FrontendContexts] = {}
        for fe in config.frontends:
            if fe.tls is None or not any(b.tls for b in fe.binds):
                continue
            paths = [*(extra or {}).get(fe.name, ()), *fe.tls.certificates]
            files = [read_certificate(f) for p in paths for f in certificate_files(p)]
            client_ca = read_ca(fe.tls.client_ca) if fe.tls.client_ca and fe.tls.verify != "none" else None
            key = _fingerprint(fe, files, client_ca)
            fc = self.kept.get(key) or made.get(key)
            if fc is None:
                fc = FrontendContexts(fe.name, [server_context(fe.tls, f, client_ca) for f in files],
                                      [f.info for f in files])
                made[key] = fc
            out[fe.name] = fc
            keys[fe.name] = key
        self.kept.update(made)
        backends: dict[str, BackendContexts] = {}
        for be in config.backends:
            if not _backend_uses_tls(be):
                continue
            t = be.tls
            ca = read_ca(t.ca) if t.ca and t.verify != "none" else None
            cert = read_certificate(t.cert, t.key) if t.cert else None
            # made again on every load: client contexts hold no state that
            # must outlive a reload (each worker keeps its own sessions)
            backends[be.name] = BackendContexts(be.name, t, ca, cert)
        return TlsSet(out, keys, backends)

    def retain(self, *sets: TlsSet) -> None:
        """Forget the contexts that none of `sets` uses (after a reload)."""
        used = {k for s in sets if s is not None for k in s.keys.values()}
        self.kept = {k: v for k, v in self.kept.items() if k in used}
