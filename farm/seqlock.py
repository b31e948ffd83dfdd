"""Bytes that one writer shares with readers in other processes, under a
sequence lock: the ACME challenge board (farm/challenges.py) and the
renewal board (farm/renewals.py).

The mapping (MAP_SHARED, made before the fork) starts with three native
4-byte words: the sequence number, the length of the data, and one word
the owner may use (the challenge board counts its TLS-ALPN-01 entries
there). The sequence is odd while a write is in progress; the even
number is stored after everything else, and each word is one aligned
4-byte load or store (a native memoryview: struct's "=I" would go a byte
at a time, and a reader could see a number half changed). So a reader
that sees the same even number before and after its copy has copied a
whole write. Readers never wait: after a bounded number of tries (a
writer that died mid-write, or one that never pauses) they get None.
"""

from __future__ import annotations

import mmap
import os

HEADER = 12                      # sequence, data length, the owner's word
READ_TRIES = 1000


class SharedBlob:
    """One writer, any number of readers (see the module docstring)."""

    def __init__(self, size: int):
        self.map = mmap.mmap(-1, size, flags=mmap.MAP_SHARED)
        self.words = memoryview(self.map).cast("I")
        self.size = size

    @property
    def capacity(self) -> int:
        """The most data bytes a write may carry."""
        return self.size - HEADER

    def store(self, data: bytes, extra: int = 0) -> None:
        """Replace the data (at most capacity bytes) and the owner's word.
        The writer only; never waits."""
        if len(data) > self.capacity:
            raise ValueError("the data does not fit in the shared mapping")
        words = self.words
        seq = words[0]
        words[0] = seq + 1                                  # odd: writing
        self.map[HEADER:HEADER + len(data)] = data
        words[1] = len(data)
        words[2] = extra
        words[0] = (seq + 2) & 0xFFFFFFFF                   # even: done

    def load(self) -> bytes | None:
        """A consistent copy of the data, or None when the writer kept
        changing it for the whole of READ_TRIES tries."""
        words = self.words
        for _ in range(READ_TRIES):
            seq = words[0]
            if not seq & 1:
                length = min(words[1], self.capacity)
                data = self.map[HEADER:HEADER + length]
                if words[0] == seq:
                    return data
            os.sched_yield()          # let a writer preempted mid-write finish
        return None

    def extra(self) -> int:
        """The owner's word as last stored (one load, no lock)."""
        return self.words[2]

    def sequence(self) -> int:
        """Changes with every write."""
        return self.words[0]
