"""Test certificates made at test time with the openssl command line tool:
a CA, server certificates (ECDSA P-256 or RSA 2048, SAN names, wildcards,
expired), client certificates. Nothing here is a fixture; tests build
what they need in a temporary directory.

A server certificate file holds what farm loads: the certificate, the
CA's certificate (its chain) and the private key, in that order.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

_serial = itertools.count(0x1000)


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _key(path: Path, kind: str) -> None:
    if kind == "rsa":
        _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path),
             cwd=path.parent)
    else:
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path),
             cwd=path.parent)


class CA:
    """A self-signed CA in `directory` that signs certificates there."""

    def __init__(self, directory: Path, name: str = "Farm Test CA"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        slug = name.lower().replace(" ", "-")
        self.key = self.dir / f"{slug}.key"
        self.cert = self.dir / f"{slug}.pem"
        _key(self.key, "ec")
        _run("req", "-x509", "-new", "-key", str(self.key), "-out", str(self.cert), "-days", "3650",
             "-subj", f"/O=Farm Tests/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)

    def issue(self, name: str, cn: str, sans: list[str] = (), kind: str = "ec", days: int = 30,
              client: bool = False, subject: str | None = None) -> "Issued":
        """A certificate for cn (and SAN DNS names `sans`; cn is added to
        them for a server certificate). days < 0 makes one that expired.
        Writes NAME.crt (certificate), NAME.key, and NAME.pem (certificate,
        CA certificate, key: what a farm certificates entry takes)."""
        crt, key, csr = self.dir / f"{name}.crt", self.dir / f"{name}.key", self.dir / f"{name}.csr"
        ext = self.dir / f"{name}.ext"
        _key(key, kind)
        _run("req", "-new", "-key", str(key), "-out", str(csr),
             "-subj", subject or f"/O=Farm Tests/CN={cn}", cwd=self.dir)
        names = list(sans) if client else [cn, *[s for s in sans if s != cn]]
        lines = ["basicConstraints=CA:FALSE",
                 "extendedKeyUsage=" + ("clientAuth" if client else "serverAuth")]
        if names:
            lines.append("subjectAltName=" + ",".join(f"DNS:{n}" for n in names))
        ext.write_text("\n".join(lines) + "\n")
        _run("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
             "-set_serial", str(next(_serial)), "-days", str(days), "-extfile", str(ext),
             "-out", str(crt), cwd=self.dir)
        pem = self.dir / f"{name}.pem"
        pem.write_bytes(crt.read_bytes() + self.cert.read_bytes() + key.read_bytes())
        return Issued(name, cn, crt, key, pem)


class Issued:
    """Paths of an issued certificate: crt (certificate only), key, and pem
    (certificate, chain and key)."""

    def __init__(self, name: str, cn: str, crt: Path, key: Path, pem: Path):
        self.name, self.cn, self.crt, self.key, self.pem = name, cn, crt, key, pem

    def fingerprint(self) -> str:
        """SHA-1 fingerprint, upper-case hex without colons."""
        out = subprocess.run(["openssl", "x509", "-in", str(self.crt), "-noout", "-fingerprint",
                              "-sha1"], capture_output=True, text=True, check=True).stdout
        return out.strip().split("=", 1)[1].replace(":", "")

    def serial(self) -> str:
        out = subprocess.run(["openssl", "x509", "-in", str(self.crt), "-noout", "-serial"],
                             capture_output=True, text=True, check=True).stdout
        return out.strip().split("=", 1)[1]
