"""The renewal state of ACME certificates, shared by the master with the
workers (for the stats page and Prometheus).

The master's scheduler (farm/acmerun.py) is the only writer: it publishes
one Renewal per ACME-managed frontend certificate whenever a job's state
changes (an order starts, fails, succeeds, a reload, `acme renew`). The
workers read it when they render the stats page or /metrics. It is a
separate mapping from the challenge board (farm/challenges.py) because
that one is written by the ACME child process and a seqlock wants one
writer.

The mapping is anonymous and MAP_SHARED, made by the master before it
forks the workers of the first generation that has an [acme] section, and
kept across reloads. Layout: a sequence number (odd while a write is in
progress), the length of the data, then the data, compact JSON (names and
paths may hold any character). Readers copy the data and retry when
the sequence was odd or changed under them (a seqlock: the master never
waits for a reader, and a reader that dies holds nothing).

Sizes are bounded: the last error is cut to ERROR_MAX characters, and the
records that do not fit in the mapping are left out (the stats then show
"-" for them, as for a certificate without ACME).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from farm.seqlock import SharedBlob

SIZE = 256 * 1024                 # ~700 records with a full error: more frontends than anyone has
ERROR_MAX = 200                   # characters of the last error kept (a table cell, not a log)

STATES = ("scheduled", "running", "failed")   # as `acme status` names them

BOARD: "Board | None" = None      # set in the master by create(), inherited by fork


@dataclass(frozen=True)
class Renewal:
    """The renewal state of one ACME-managed frontend certificate.

    state: "scheduled" (the last order succeeded or none failed yet; the
    next one is planned), "running" (an order is in progress) or "failed"
    (the last order failed; the current certificate is kept).
    failures: consecutive failed orders, 0 after a success.
    next_try: epoch seconds of the next order (0 while one is running).
    error: the reason of the last failure, at most ERROR_MAX characters
    ("" after a success).
    files: the certificate files this job manages (the issued one and the
    self-signed one served until it exists): how a stats row is matched."""

    frontend: str
    acme: str
    state: str
    failures: int
    next_try: float
    error: str
    files: tuple[str, ...]


def short_error(text: str) -> str:
    """text on one line, at most ERROR_MAX characters: a longer one loses
    its middle (an ellipsis there), because an error names what failed at
    its start and why at its end ("authorization of NAME is invalid: ...
    connect: connection refused")."""
    one = " ".join(text.split())
    if len(one) <= ERROR_MAX:
        return one
    head = ERROR_MAX * 2 // 5
    return one[:head] + "\u2026" + one[len(one) - (ERROR_MAX - head - 1):]


def encode(records: list[Renewal], limit: int) -> bytes:
    """The data for records: as many of them (in order) as fit in limit
    bytes; each error already cut by short_error."""
    parts: list[bytes] = []
    used = 2                                     # the brackets
    for r in records:
        item = json.dumps([r.frontend, r.acme, r.state, r.failures, r.next_try,
                           short_error(r.error), list(r.files)],
                          separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if used + len(item) + (1 if parts else 0) > limit:
            break
        used += len(item) + (1 if parts else 0)
        parts.append(item)
    return b"[" + b",".join(parts) + b"]"


def decode(data: bytes) -> list[Renewal]:
    """The records of data (as encode made it); [] for anything else."""
    try:
        items = json.loads(data.decode("utf-8")) if data else []
        return [Renewal(str(fe), str(acct), str(state), int(failures), float(next_try), str(error),
                        tuple(str(f) for f in files))
                for fe, acct, state, failures, next_try, error, files in items]
    except (ValueError, TypeError):
        return []


class Board(SharedBlob):
    """Renewal records in shared memory (farm/seqlock.py): one writer (the
    master), any number of readers (the workers)."""

    def __init__(self, size: int = SIZE):
        SharedBlob.__init__(self, size)
        self.written: bytes | None = None        # the writer's last data (skip writes that change nothing)

    def write(self, records: list[Renewal]) -> None:
        """Publish records (replacing what was there). Called by the
        master only; never waits."""
        data = encode(records, self.capacity)
        if data == self.written:
            return
        self.store(data)
        self.written = data

    def read(self) -> list[Renewal]:
        """A consistent copy of the records ([] if the writer kept
        changing them for the whole of a bounded number of tries)."""
        data = self.load()
        return decode(data) if data is not None else []

    def by_file(self) -> dict[str, Renewal]:
        """Certificate file -> the renewal that manages it."""
        return {f: r for r in self.read() for f in r.files}


def create() -> Board:
    """The board of this master (made once, before a fork; kept across
    reloads)."""
    global BOARD
    if BOARD is None:
        BOARD = Board()
    return BOARD


def by_file() -> dict[str, Renewal]:
    """For the workers: certificate file -> its renewal state; empty when
    no configuration of this master had an [acme] section."""
    board = BOARD
    return board.by_file() if board is not None else {}
