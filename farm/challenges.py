"""Challenge answers shared by the ACME client and the workers.

The master creates the board (an anonymous shared mapping) once, before it
forks anything: the ACME child process (farm/acmerun.py) writes what it
is asked to prove, every worker of every generation reads it:
- HTTP-01: token -> key authorization; a worker answers GET
  /.well-known/acme-challenge/TOKEN itself, before any rule
  (workers/stream.py);
- TLS-ALPN-01: domain -> the PEM (certificate and key) of the challenge
  certificate (farm/acme.py alpn_certificate); a worker answers a
  ClientHello offering ALPN acme-tls/1 for that domain with it
  (workers/alpnaccept.py).
Without an [acme] section there is no board and the workers never look.

Layout: a sequence number (odd while a write is in progress), the length
of the data, the number of TLS-ALPN-01 entries (read alone, without the
seqlock: the hint that lets an ordinary TLS connection skip the peek at
its ClientHello), then the data: "TOKEN KEYAUTH\\n" lines and "@DOMAIN
BASE64-PEM\\n" lines (a token is base64url, never starting with "@").
One writer at a time (the master runs one ACME child at a time); readers
retry while the sequence is odd or changed under them (a seqlock: no lock
a reader could die holding).
"""

from __future__ import annotations

import base64

from farm.seqlock import SharedBlob

SIZE = 256 * 1024                # a few hundred tokens or ~150 certificates: more than one order needs
PREFIX = b"/.well-known/acme-challenge/"

BOARD: "Board | None" = None     # set in the master by create(), inherited by fork


class Board(SharedBlob):
    """HTTP-01 and TLS-ALPN-01 answers in shared memory (farm/seqlock.py);
    the owner's word counts the TLS-ALPN-01 entries."""

    def __init__(self, size: int = SIZE):
        SharedBlob.__init__(self, size)

    # -- the writer (the ACME child) -------------------------------------

    def _write(self, http: dict[str, str], alpn: dict[str, bytes]) -> None:
        data = b"".join(f"{t} {k}\n".encode("ascii") for t, k in http.items()) + \
            b"".join(b"@" + d.encode("ascii") + b" " + base64.b64encode(pem) + b"\n"
                     for d, pem in alpn.items())
        if len(data) > self.capacity:
            raise ValueError("too many challenges at once")
        self.store(data, len(alpn))

    def snapshot(self) -> tuple[dict[str, str], dict[str, bytes]]:
        """(token -> key authorization, domain -> challenge PEM): a
        consistent copy of the board (empty when the writer kept changing it)."""
        data = self.load()
        http: dict[str, str] = {}
        alpn: dict[str, bytes] = {}
        for line in (data or b"").splitlines():
            key, _, value = line.partition(b" ")
            if key.startswith(b"@"):
                alpn[key[1:].decode("ascii", "replace")] = base64.b64decode(value)
            else:
                http[key.decode("ascii", "replace")] = value.decode("ascii", "replace")
        return http, alpn

    def entries(self) -> dict[str, str]:
        """Every HTTP-01 token -> key authorization (a consistent snapshot)."""
        return self.snapshot()[0]

    def publish(self, token: str, keyauth: str) -> None:
        """Answer GET PREFIX+token with keyauth from now on. token and
        keyauth are base64url (checked by the ACME client)."""
        http, alpn = self.snapshot()
        http[token] = keyauth
        self._write(http, alpn)

    def withdraw(self, token: str) -> None:
        http, alpn = self.snapshot()
        if http.pop(token, None) is not None:
            self._write(http, alpn)

    def publish_alpn(self, domain: str, pem: bytes) -> None:
        """Answer a TLS-ALPN-01 validation of domain (an ASCII host name)
        with the certificate and key in pem from now on."""
        http, alpn = self.snapshot()
        alpn[domain.lower()] = pem
        self._write(http, alpn)

    def withdraw_alpn(self, domain: str) -> None:
        http, alpn = self.snapshot()
        if alpn.pop(domain.lower(), None) is not None:
            self._write(http, alpn)

    # -- the readers (workers) -------------------------------------------

    def answer(self, token: bytes) -> bytes | None:
        """The body for GET PREFIX+token, or None when it is not ours."""
        try:
            keyauth = self.entries().get(token.decode("ascii"))
        except UnicodeDecodeError:
            return None
        return keyauth.encode("ascii") if keyauth else None

    def alpn_pending(self) -> bool:
        """Whether any TLS-ALPN-01 validation may come now: one word read
        from the shared page, what every TLS connection of a frontend
        proving its domains by tls-alpn-01 pays while none is pending."""
        return self.extra() != 0



def create() -> Board:
    """The board of this master (made once; kept across reloads)."""
    global BOARD
    if BOARD is None:
        BOARD = Board()
    return BOARD


def answer(path: bytes) -> bytes | None:
    """The key authorization to serve for a request path, or None (no
    board, not a challenge path, or a token farm is not proving)."""
    board = BOARD
    if board is None or not path.startswith(PREFIX):
        return None
    return board.answer(path[len(PREFIX):])
