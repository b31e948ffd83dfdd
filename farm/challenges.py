"""HTTP-01 challenge answers shared by the ACME client and the workers.

The master creates the board (an anonymous shared mapping) once, before it
forks anything: the ACME child process (farm/acmerun.py) writes the
tokens it is asked to prove, every worker of every generation reads them
and answers GET /.well-known/acme-challenge/TOKEN itself, before any rule
(workers/stream.py). Without an [acme] section there is no board and the
workers never look.

Layout: a sequence number (odd while a write is in progress), the length
of the data, then the data: "TOKEN KEYAUTH\\n" lines. One writer at a time
(the master runs one ACME child at a time); readers retry while the
sequence is odd or changed under them (a seqlock: no lock a reader could
die holding).
"""

from __future__ import annotations

import mmap
import struct

SIZE = 64 * 1024                 # a few hundred tokens: far more than one order needs
PREFIX = b"/.well-known/acme-challenge/"
_HEAD = struct.Struct("=II")

BOARD: "Board | None" = None     # set in the master by create(), inherited by fork


class Board:
    """Tokens and their key authorizations in a MAP_SHARED mapping."""

    def __init__(self, size: int = SIZE):
        self.map = mmap.mmap(-1, size, flags=mmap.MAP_SHARED)
        self.size = size

    # -- the writer (the ACME child) -------------------------------------

    def _write(self, entries: dict[str, str]) -> None:
        data = b"".join(f"{t} {k}\n".encode("ascii") for t, k in entries.items())
        if len(data) > self.size - _HEAD.size:
            raise ValueError("too many challenge tokens at once")
        seq, _ = _HEAD.unpack_from(self.map, 0)
        _HEAD.pack_into(self.map, 0, seq + 1, 0)                  # odd: writing
        self.map[_HEAD.size:_HEAD.size + len(data)] = data
        _HEAD.pack_into(self.map, 0, seq + 2, len(data))          # even: done

    def entries(self) -> dict[str, str]:
        """Every token -> key authorization (a consistent snapshot)."""
        for _ in range(1000):
            seq, length = _HEAD.unpack_from(self.map, 0)
            if seq & 1:
                continue
            data = self.map[_HEAD.size:_HEAD.size + length]
            if _HEAD.unpack_from(self.map, 0)[0] == seq:
                out = {}
                for line in data.decode("ascii", "replace").splitlines():
                    token, _, keyauth = line.partition(" ")
                    out[token] = keyauth
                return out
        return {}

    def publish(self, token: str, keyauth: str) -> None:
        """Answer GET PREFIX+token with keyauth from now on. token and
        keyauth are base64url (checked by the ACME client)."""
        entries = self.entries()
        entries[token] = keyauth
        self._write(entries)

    def withdraw(self, token: str) -> None:
        entries = self.entries()
        if entries.pop(token, None) is not None:
            self._write(entries)

    # -- the readers (workers) -------------------------------------------

    def answer(self, token: bytes) -> bytes | None:
        """The body for GET PREFIX+token, or None when it is not ours."""
        try:
            keyauth = self.entries().get(token.decode("ascii"))
        except UnicodeDecodeError:
            return None
        return keyauth.encode("ascii") if keyauth else None


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
