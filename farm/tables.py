"""Stick tables in shared memory: one table for all workers.

A `[tables.NAME]` section becomes one MAP_SHARED mapping, created by the
master before it forks and inherited by every worker, so that a rate or
a count is one number for the whole farm (HAProxy's removed nbproc mode
kept one table per process; farm does not). The mapping is separate from
the generation's shm table (farm/shm.py): the master keeps it over a
reload while the table's definition does not change, so the workers of
the old and the new generation share it during the drain, and it lives
as long as the master (a worker crash loses nothing).

The pure half (no mapping): the data types and their parsing
(parse_store), key encoding and display (encode_key, format_key), and the
rate arithmetic (rate_pack, rate_read). The StickTable class is the
mapped structure.

Layout: int64 cells (farm/atomics.py for the atomic ones)

  header     HEADER_CELLS: magic, size, entry stride, buckets, used, ...
  buckets    2 cells each: a lock (0, or the pid holding it) and the
             chain head (entry index + 1, 0 = empty)
  entries    `size` entries of `stride` cells:
               E_NEXT    next entry of the chain (index + 1, 0 = end)
               E_BUCKET  bucket + 1 while in use, 0 while free
               E_TOUCH   last update (monotonic ms): the oldest is evicted
               E_EXPIRE  when it expires (monotonic ms, 0 = never)
               E_HELD..  per holder (held_index()), how many of its sessions
                         track it
               key       fixed width, ceil(key width / 8) cells
               data      one cell per counter, two per rate

Concurrency. Counters change with atomic adds; a rate is two cells, one
per parity of the period number, each holding (period number << 32 |
count) changed by compare-and-swap, so a period rolls over without a lock.
The chain of a bucket changes only under the bucket's lock (a CAS of the
pid into the lock cell); a lookup takes it too, for a few steps of Python.
A lock whose holder died (a worker killed in it) is taken over. An entry
in use by a session (its E_HELD cells) is never evicted, expired or
cleared: a tracking session keeps the entry index without a lock.

Memory is fixed at start: size x stride x 8 bytes (+ the buckets), shown
by `show table`. A full table evicts the entry updated longest ago among
the next EVICT_SCAN entries of a rotating hand (exactly the oldest when
size <= EVICT_SCAN); expired entries go first. Expired entries are removed
by the master's sweep (sweep()) and ignored by lookups meanwhile.
"""

from __future__ import annotations

import ipaddress
import mmap
import os
import re
import socket
import time

from farm.atomics import Cells

MAGIC = 0x6661726D5354_01          # "farmST" v1

# -- data types (HAProxy's names) ------------------------------------------

# name -> kind: "cnt" a counter (one cell), "rate" a rate over a period
# (two cells), "val" a value that is set (one cell)
DATA_TYPES = {
    "server_id": "val",
    "gpt0": "val",
    "gpc0": "cnt",
    "gpc0_rate": "rate",
    "gpc1": "cnt",
    "gpc1_rate": "rate",
    "conn_cnt": "cnt",
    "conn_cur": "cnt",
    "conn_rate": "rate",
    "sess_cnt": "cnt",
    "sess_rate": "rate",
    "http_req_cnt": "cnt",
    "http_req_rate": "rate",
    "http_err_cnt": "cnt",
    "http_err_rate": "rate",
    "bytes_in_cnt": "cnt",
    "bytes_in_rate": "rate",
    "bytes_out_cnt": "cnt",
    "bytes_out_rate": "rate",
}
KEY_TYPES = ("ip", "ipv6", "integer", "string", "binary")
KEY_LEN_DEFAULT = 32               # string and binary keys (HAProxy's default)
KEY_LEN_MAX = 1024

_STORE_RE = re.compile(r"([a-z0-9_]+)(?:\(([^()]*)\))?")


class TableError(ValueError):
    """A bad table definition or runtime argument; str() is the message."""


def parse_period(text: str) -> int:
    """A duration ("10s", "500ms", "1m", or ms as digits) -> milliseconds > 0."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d)?\s*", text)
    if m is None:
        raise TableError(f"bad period {text!r} (e.g. 10s, 500ms, 1m)")
    n = int(m.group(1)) * {"ms": 1, None: 1, "s": 1000, "m": 60000, "h": 3600000,
                           "d": 86400000}[m.group(2)]
    if n <= 0:
        raise TableError(f"the period must be positive, got {text!r}")
    return n


def parse_store(item: str) -> tuple[str, int]:
    """One `store` entry ("conn_cur", "http_req_rate(10s)") -> (name,
    period ms; 0 for what is not a rate). Raises TableError."""
    m = _STORE_RE.fullmatch(item.strip())
    if m is None or m.group(1) not in DATA_TYPES:
        name = m.group(1) if m else item
        raise TableError(f"unknown data type {name!r} (known: {', '.join(DATA_TYPES)})")
    name, arg = m.group(1), m.group(2)
    if DATA_TYPES[name] == "rate":
        if not arg:
            raise TableError(f"{name} needs a period: {name}(10s)")
        return name, parse_period(arg)
    if arg is not None:
        raise TableError(f"{name} takes no period")
    return name, 0


_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


def key_width(type_: str, length: int) -> int:
    """Bytes of a key of this type in an entry."""
    return {"ip": 4, "ipv6": 16, "integer": 8}.get(type_, length)


def encode_key(type_: str, length: int, value) -> bytes | None:
    """A sample (str for addresses, bytes for strings, int) -> the fixed-width
    key bytes of a table of type_, or None when it cannot be a key (an
    IPv6 address in an ip table, a non-numeric integer...)."""
    if type_ == "ip" or type_ == "ipv6":
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        try:                                   # the usual case, fast: a dotted IPv4
            raw = socket.inet_pton(socket.AF_INET, value)
            return raw if type_ == "ip" else _V4_MAPPED + raw
        except (OSError, TypeError):
            pass
        try:
            ip = ipaddress.ip_address(str(value).partition("%")[0])
        except ValueError:
            return None
        if type_ == "ip":
            if ip.version == 6:
                ip = ip.ipv4_mapped
                if ip is None:
                    return None
            return ip.packed
        if ip.version == 4:
            return b"\0" * 10 + b"\xff\xff" + ip.packed
        return ip.packed
    if type_ == "integer":
        try:
            n = int(value)
        except (TypeError, ValueError):
            return None
        if not -(1 << 63) <= n < (1 << 63):
            return None
        return n.to_bytes(8, "big", signed=True)
    if isinstance(value, str):
        value = value.encode("latin-1", "replace")
    elif isinstance(value, int):
        value = str(value).encode()
    if not value and type_ == "string":
        return None
    return bytes(value[:length]).ljust(length, b"\0")


def parse_key(type_: str, length: int, text: str) -> bytes:
    """A key as typed on the runtime API -> key bytes (binary keys in hex).
    Raises TableError."""
    value: object = text
    if type_ == "binary":
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise TableError(f"binary key {text!r} is not hexadecimal") from None
    elif type_ == "string":
        value = text.encode("latin-1", "replace")
    key = encode_key(type_, length, value)
    if key is None:
        raise TableError(f"invalid key {text!r} for a table of type {type_}")
    return key


def format_key(type_: str, key: bytes) -> str:
    """Key bytes -> the text `show table` prints."""
    if type_ == "ip":
        return socket.inet_ntop(socket.AF_INET, key)
    if type_ == "ipv6":
        return socket.inet_ntop(socket.AF_INET6, key)
    if type_ == "integer":
        return str(int.from_bytes(key, "big", signed=True))
    if type_ == "string":
        return key.rstrip(b"\0").decode("latin-1")
    return key.rstrip(b"\0").hex().upper()


# -- rates --------------------------------------------------------------------
#
# A rate over period P counts events per period; as in HAProxy, the value
# read is the count of the current period plus the previous period's count
# weighted by the part of it the sliding window still covers:
#     cur + prev * (P - elapsed) / P
# Periods are numbered from the clock's origin (n = now // P); a cell holds
# (n mod 2^31) << 32 | count and is the one of n's parity.

RATE_IDX_MASK = 0x7FFFFFFF
RATE_CNT_MAX = 0xFFFFFFFF


def rate_pack(period_no: int, count: int) -> int:
    return ((period_no & RATE_IDX_MASK) << 32) | min(count, RATE_CNT_MAX)


def rate_bump(cell: int, period_no: int, d: int) -> int:
    """The new value of a rate cell after adding d events in period period_no
    (the cell's count restarts when it held an older period)."""
    if cell >> 32 == period_no & RATE_IDX_MASK:
        return rate_pack(period_no, (cell & RATE_CNT_MAX) + d)
    return rate_pack(period_no, d)


def rate_read(c0: int, c1: int, now_ms: int, period: int) -> int:
    """The rate held by the two cells of a rate (c0 even periods, c1 odd)."""
    n = now_ms // period
    cur_cell, prev_cell = (c0, c1) if n % 2 == 0 else (c1, c0)
    cur = cur_cell & _CNT_MAX if cur_cell >> 32 == n & _IDX_MASK else 0
    prev = prev_cell & _CNT_MAX if prev_cell >> 32 == (n - 1) & _IDX_MASK else 0
    if prev:
        cur += prev * (period - now_ms % period) // period
    return cur


_PID = [os.getpid()]          # this process's pid (the owner written into locks)
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def now_ms() -> int:
    """The tables' clock: CLOCK_MONOTONIC in ms, the same in every process."""
    return _monotonic_ns() // 1_000_000


_monotonic_ns = time.monotonic_ns


# -- the mapped table -------------------------------------------------------------

(H_MAGIC, H_SIZE, H_STRIDE, H_BUCKETS, H_USED, H_ALLOC, H_FREELOCK, H_FREEHEAD,
 H_HAND, H_WORKERS) = range(10)
HEADER_CELLS = 16
E_NEXT, E_BUCKET, E_TOUCH, E_EXPIRE, E_HELD = range(5)

# The same numbers as C constants of the compiled build (tables.pxd: a
# module global of Python is a dict lookup and a Python integer in every
# expression of the request path); the names above stay importable.
_HDR, _NEXT, _TOUCH, _EXPIRE, _HELD = HEADER_CELLS, E_NEXT, E_TOUCH, E_EXPIRE, E_HELD
_IDX_MASK, _CNT_MAX = RATE_IDX_MASK, RATE_CNT_MAX


def held_index(slot: int, generation: int, workers: int) -> int:
    """The E_HELD cell of the worker of slot in generation: one per slot
    and generation parity, so that the workers of a generation draining
    after a reload and those of the new one (which share a table kept
    over the reload) never share a cell, and the master can take back the
    references of a worker that died holding some (forget_worker)."""
    return slot + workers * (generation & 1)
EVICT_SCAN = 64
LOCK_SPINS = 200                   # CAS tries before yielding the CPU
LOCK_STALE = 0.5                   # seconds of waiting before checking the holder is alive


class StickTable:
    """One stick table mapped in shared memory.

    defn is a farm.model.StickTable (name, type, key_len, size, expire_ms,
    store); workers is the number of worker slots (two E_HELD cells each:
    see held_index).
    The master creates it before forking; every method works in any
    process that inherited the mapping. Entry handles are ints (entry
    indices)."""

    def __init__(self, defn, workers: int):
        self.defn = defn
        self.name = defn.name
        self.type = defn.type
        self.key_len = defn.key_len
        self.size = defn.size
        self.expire = defn.expire_ms
        self.workers = workers
        self.kwidth = key_width(defn.type, defn.key_len)
        kcells = (self.kwidth + 7) // 8
        self.holders = 2 * workers
        self.key_off = E_HELD + self.holders
        off = self.key_off + kcells
        self.off: dict[str, int] = {}
        self.period: dict[str, int] = {}
        for name, period in defn.store:
            self.off[name] = off
            self.period[name] = period
            off += 2 if period else 1
        self.stride = off
        nb = 1
        while nb < self.size:
            nb <<= 1
        self.nbuckets = nb
        self.mask = nb - 1
        self.entries_at = HEADER_CELLS + 2 * nb
        self.nbytes = (self.entries_at + self.size * self.stride) * 8
        self.mm = mmap.mmap(-1, self.nbytes, flags=mmap.MAP_SHARED,
                            prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.q = memoryview(self.mm).cast("q")
        self.qc = self.q        # the same cells, typed in the compiled build (tables.pxd)
        self.b = memoryview(self.mm)
        self.cells = Cells(self.mm)
        q = self.q
        q[H_MAGIC] = MAGIC
        q[H_SIZE] = self.size
        q[H_STRIDE] = self.stride
        q[H_BUCKETS] = nb
        q[H_WORKERS] = workers
        # offsets of the data each event touches (-1: not stored)
        o = self.off.get
        self.o_conn_cnt, self.o_conn_cur, self.o_conn_rate = o("conn_cnt", -1), o("conn_cur", -1), o("conn_rate", -1)
        self.o_sess_cnt, self.o_sess_rate = o("sess_cnt", -1), o("sess_rate", -1)
        self.o_req_cnt, self.o_req_rate = o("http_req_cnt", -1), o("http_req_rate", -1)
        self.o_err_cnt, self.o_err_rate = o("http_err_cnt", -1), o("http_err_rate", -1)
        self.o_bin_cnt, self.o_bin_rate = o("bytes_in_cnt", -1), o("bytes_in_rate", -1)
        self.o_bout_cnt, self.o_bout_rate = o("bytes_out_cnt", -1), o("bytes_out_rate", -1)
        self.p_conn_rate = self.period.get("conn_rate", 0)
        self.p_req_rate = self.period.get("http_req_rate", 0)
        self.counts_bytes = any(n.startswith("bytes_") for n in self.off)
        self.counts_errors = "http_err_cnt" in self.off or "http_err_rate" in self.off
        self.pid = os.getpid()
        self._sweep_at = 0          # where the next sweep() starts

    # -- sizes and bookkeeping ------------------------------------------------

    @property
    def used(self) -> int:
        return self.q[H_USED]

    def base(self, e: int) -> int:
        return self.entries_at + e * self.stride

    def key_of(self, e: int) -> bytes:
        o = (self.base(e) + self.key_off) * 8
        return bytes(self.b[o:o + self.kwidth])

    def held(self, e: int) -> int:
        b = self.base(e) + E_HELD
        return sum(self.q[b:b + self.holders])

    def bucket_of(self, key: bytes) -> int:
        return hash(key) & self.mask

    # -- locks ----------------------------------------------------------------

    def _lock(self, cell: int) -> None:
        cells = self.cells
        pid = _PID[0]
        if cells.cas(cell, 0, pid):
            return
        spins = 0
        since = time.monotonic()
        while True:
            spins += 1
            if cells.cas(cell, 0, pid):
                return
            if spins % LOCK_SPINS == 0:
                os.sched_yield()
                if time.monotonic() - since > LOCK_STALE:
                    holder = cells.load(cell)
                    if holder and not _alive(holder) and cells.cas(cell, holder, pid):
                        return        # its holder died in it: take it over
                    since = time.monotonic()

    def _unlock(self, cell: int) -> None:
        self.cells.store(cell, 0)

    # -- lookup, insert, remove -----------------------------------------------

    def _find(self, bucket: int, key: bytes) -> int:
        """The entry of key in bucket's chain, or -1 (bucket lock held)."""
        q, b = self.q, self.b
        w = self.kwidth
        e1 = q[_HDR + 2 * bucket + 1]
        while e1:
            e = e1 - 1
            base = self.entries_at + e * self.stride
            o = (base + self.key_off) * 8
            if b[o:o + w] == key:
                return e
            e1 = q[base + _NEXT]
        return -1

    def _expired(self, e: int, now: int) -> bool:
        exp = self.q[self.base(e) + E_EXPIRE]
        return exp != 0 and exp <= now

    def lookup(self, key: bytes, now: int | None = None) -> int:
        """The live entry of key, or -1. Takes no reference: for reading."""
        now = now_ms() if now is None else now
        bucket = self.bucket_of(key)
        lock = HEADER_CELLS + 2 * bucket
        self._lock(lock)
        try:
            e = self._find(bucket, key)
        finally:
            self._unlock(lock)
        if e >= 0 and self._expired(e, now) and self.held(e) == 0:
            return -1
        return e

    def get_or_create(self, key: bytes, slot: int = -1, now: int | None = None) -> int:
        """The entry of key, created when missing (evicting the oldest
        unused one when the table is full); -1 when the table is full of
        entries in use. slot >= 0 takes a reference for that worker slot
        (release() gives it back); -1 takes none (runtime API, sc-set on a
        lookup). An expired entry found here starts afresh."""
        now = now_ms() if now is None else now
        bucket = self.bucket_of(key)
        lock = HEADER_CELLS + 2 * bucket
        q = self.q
        self._lock(lock)
        try:
            e = self._find(bucket, key)
            if e >= 0:
                base = self.base(e)
                exp = q[base + E_EXPIRE]
                if exp != 0 and exp <= now and self.held(e) == 0:
                    self._zero_data(e)
                self._hold(e, slot, now)
                return e
        finally:
            self._unlock(lock)
        new = self._allocate(now)
        if new < 0:
            return -1
        base = self.base(new)
        o = (base + self.key_off) * 8
        self.b[o:o + self.kwidth] = key
        self._zero_data(new)
        q[base + E_BUCKET] = bucket + 1
        b0 = base + E_HELD
        q[b0:b0 + self.holders] = _zeros(self.holders)
        self._lock(lock)
        try:
            e = self._find(bucket, key)
            if e < 0:                  # still missing: link the new entry
                q[base + E_NEXT] = q[lock + 1]
                q[lock + 1] = new + 1
                self.cells.add(H_USED, 1)
                self._hold(new, slot, now)
                return new
            self._hold(e, slot, now)   # another process inserted it meanwhile
        finally:
            self._unlock(lock)
        q[base + E_BUCKET] = 0
        self._free(new)
        return e

    def track(self, key: bytes, slot: int, now: int, request: bool) -> int:
        """The hot path of track-sc: the entry of key (created when
        missing), held for worker slot, with conn_cnt, conn_cur and
        conn_rate counted, and the HTTP request too when request is true.
        -1 when the table is full of entries in use. (get_or_create plus
        on_track and on_request in one call.)"""
        bucket = hash(key) & self.mask
        lock = _HDR + 2 * bucket
        cells = self.cells
        q = self.qc
        e = -1
        if not cells.cas(lock, 0, _PID[0]):
            self._lock(lock)
        try:
            e1 = q[lock + 1]
            b, w, stride, at, koff = self.b, self.kwidth, self.stride, self.entries_at, self.key_off
            while e1:
                base = at + (e1 - 1) * stride
                o = (base + koff) * 8
                if b[o:o + w] == key:
                    e = e1 - 1
                    exp = q[base + _EXPIRE]
                    if exp != 0 and exp <= now and self.held(e) == 0:
                        self._zero_data(e)
                    cells.add(base + _HELD + slot, 1)
                    break
                e1 = q[base + _NEXT]
        finally:
            cells.store(lock, 0)
        if e < 0:
            e = self.get_or_create(key, slot, now)
            if e < 0:
                return -1
            base = at + e * stride
        if self.o_conn_cnt >= 0:
            cells.add(base + self.o_conn_cnt, 1)
        if self.o_conn_cur >= 0:
            cells.add(base + self.o_conn_cur, 1)
        if self.o_conn_rate >= 0:
            self._rate_add(base + self.o_conn_rate, self.p_conn_rate, 1, now)
        if request:
            if self.o_req_cnt >= 0:
                cells.add(base + self.o_req_cnt, 1)
            if self.o_req_rate >= 0:
                self._rate_add(base + self.o_req_rate, self.p_req_rate, 1, now)
        return e

    def untrack(self, e: int, slot: int, now: int) -> None:
        """A session of worker slot stops tracking e: conn_cur given back,
        the reference dropped, the entry touched (on_untrack + release)."""
        base = self.entries_at + e * self.stride
        cells = self.cells
        if self.o_conn_cur >= 0:
            c = base + self.o_conn_cur
            if cells.add(c, -1) < 0:
                cells.add(c, 1)
        cells.add(base + _HELD + slot, -1)
        q = self.qc
        q[base + _TOUCH] = now
        if self.expire:
            q[base + _EXPIRE] = now + self.expire

    def _hold(self, e: int, slot: int, now: int) -> None:
        base = self.base(e)
        q = self.q
        q[base + _TOUCH] = now
        if self.expire:
            q[base + _EXPIRE] = now + self.expire
        if slot >= 0:
            self.cells.add(base + _HELD + slot, 1)

    def _zero_data(self, e: int) -> None:
        a = self.base(e) + self.key_off + (self.kwidth + 7) // 8
        b = self.base(e) + self.stride
        self.q[a:b] = _zeros(b - a)

    def _allocate(self, now: int) -> int:
        """A free entry (not linked): from the free list, a never-used one,
        or an evicted one; -1 if every entry is in use by a session."""
        q, cells = self.q, self.cells
        if q[H_FREEHEAD]:
            self._lock(H_FREELOCK)
            try:
                head = q[H_FREEHEAD]
                if head:
                    q[H_FREEHEAD] = q[self.base(head - 1) + E_NEXT]
                    return head - 1
            finally:
                self._unlock(H_FREELOCK)
        if q[H_ALLOC] < self.size:
            n = cells.add(H_ALLOC, 1)
            if n <= self.size:
                return n - 1
        for _ in range(4):
            e = self._evict_one(now)
            if e >= 0:
                return e
        return -1

    def _free(self, e: int) -> None:
        q = self.q
        self._lock(H_FREELOCK)
        try:
            q[self.base(e) + E_NEXT] = q[H_FREEHEAD]
            q[H_FREEHEAD] = e + 1
        finally:
            self._unlock(H_FREELOCK)

    def _evict_one(self, now: int) -> int:
        """Unlink the oldest unused entry among the next EVICT_SCAN (an
        expired one at once) and return it, not on the free list; -1."""
        q = self.q
        n = min(self.size, EVICT_SCAN)
        start = self.cells.add(H_HAND, n) - n
        best, best_touch = -1, None
        for k in range(n):
            e = (start + k) % self.size
            base = self.base(e)
            if not q[base + E_BUCKET] or self.held(e):
                continue
            exp = q[base + E_EXPIRE]
            if exp and exp <= now:
                best = e
                break
            t = q[base + E_TOUCH]
            if best_touch is None or t < best_touch:
                best, best_touch = e, t
        if best < 0:
            return -1
        return best if self._unlink(best, require_unused=True) else -1

    def _unlink(self, e: int, require_unused: bool, only_expired_at: int = 0) -> bool:
        """Take entry e out of its chain (under its bucket's lock); False
        when it is no longer in use, is held (require_unused), or is not
        expired at only_expired_at (when given)."""
        q = self.q
        base = self.base(e)
        b1 = q[base + E_BUCKET]
        if not b1:
            return False
        lock = HEADER_CELLS + 2 * (b1 - 1)
        self._lock(lock)
        try:
            if q[base + E_BUCKET] != b1:
                return False
            if require_unused and self.held(e):
                return False
            if only_expired_at:
                exp = q[base + E_EXPIRE]
                if not exp or exp > only_expired_at:
                    return False
            prev = lock + 1                   # the cell pointing at the current entry
            cur = q[prev]
            while cur and cur != e + 1:
                prev = self.base(cur - 1) + E_NEXT
                cur = q[prev]
            if not cur:
                return False
            q[prev] = q[base + E_NEXT]
            q[base + E_BUCKET] = 0
            self.cells.add(H_USED, -1)
            return True
        finally:
            self._unlock(lock)

    def remove(self, e: int) -> bool:
        """Remove an unused entry (runtime `clear table`); False if it is in
        use by a session or already gone."""
        if self._unlink(e, require_unused=True):
            self._free(e)
            return True
        return False

    def release(self, e: int, slot: int, now: int | None = None) -> None:
        """A session of worker slot stops tracking entry e."""
        now = now_ms() if now is None else now
        base = self.base(e)
        q = self.q
        self.cells.add(base + E_HELD + slot, -1)
        q[base + E_TOUCH] = now
        if self.expire:
            q[base + E_EXPIRE] = now + self.expire

    def touch(self, e: int, now: int | None = None) -> None:
        now = now_ms() if now is None else now
        base = self.base(e)
        self.q[base + E_TOUCH] = now
        if self.expire:
            self.q[base + E_EXPIRE] = now + self.expire

    # -- data -----------------------------------------------------------------

    def get(self, e: int, name: str, now: int | None = None) -> int | None:
        """The value of data type name of entry e (a rate as read now), or
        None when the table does not store it."""
        off = self.off.get(name)
        if off is None:
            return None
        c = self.entries_at + e * self.stride + off
        period = self.period[name]
        qc = self.qc
        if period:
            return rate_read(qc[c], qc[c + 1], now_ms() if now is None else now, period)
        return qc[c]

    def add(self, e: int, name: str, d: int, now: int | None = None) -> int | None:
        """Add d to a counter, or d events to a rate; the new value of a
        counter. None when not stored."""
        off = self.off.get(name)
        if off is None:
            return None
        if self.period[name]:
            self._rate_add(self.base(e) + off, self.period[name], d,
                           now_ms() if now is None else now)
            return None
        return self.cells.add(self.base(e) + off, d)

    def set(self, e: int, name: str, v: int, now: int | None = None) -> bool:
        """Set a data type's value (a rate: as if v events came in the
        current period, as HAProxy's `set table` does). False if not stored."""
        off = self.off.get(name)
        if off is None:
            return False
        c = self.base(e) + off
        period = self.period[name]
        if period:
            n = (now_ms() if now is None else now) // period
            self.cells.store(c + (n & 1), rate_pack(n, max(0, v)))
            self.cells.store(c + 1 - (n & 1), 0)
        else:
            self.cells.store(c, v)
        return True

    def _rate_add(self, c: int, period: int, d: int, now: int) -> None:
        n = now // period
        c += n & 1
        idx = n & _IDX_MASK
        cells = self.cells
        qc = self.qc
        while True:
            v = qc[c]               # a plain aligned 8-byte load is atomic on x86-64
            # rate_bump, inlined (the request path)
            cnt = (v & _CNT_MAX) + d if v >> 32 == idx else d
            if cells.cas(c, v, (idx << 32) | (cnt if cnt < _CNT_MAX else _CNT_MAX)):
                return

    def _cnt(self, off: int, base: int, d: int) -> None:
        if off >= 0:
            self.cells.add(base + off, d)

    # What events do to the data (HAProxy's accounting): called by the
    # tracking code in workers/track.py.

    def on_track(self, e: int, now: int) -> None:
        """A session starts tracking e: conn_cnt, conn_cur, conn_rate."""
        base = self.base(e)
        if self.o_conn_cnt >= 0:
            self.cells.add(base + self.o_conn_cnt, 1)
        if self.o_conn_cur >= 0:
            self.cells.add(base + self.o_conn_cur, 1)
        if self.o_conn_rate >= 0:
            self._rate_add(base + self.o_conn_rate, self.period["conn_rate"], 1, now)

    def on_untrack(self, e: int) -> None:
        if self.o_conn_cur >= 0:
            c = self.base(e) + self.o_conn_cur
            if self.cells.add(c, -1) < 0:
                self.cells.add(c, 1)    # cleared by `set table` meanwhile: stay at 0

    def on_session(self, e: int, now: int) -> None:
        base = self.base(e)
        if self.o_sess_cnt >= 0:
            self.cells.add(base + self.o_sess_cnt, 1)
        if self.o_sess_rate >= 0:
            self._rate_add(base + self.o_sess_rate, self.period["sess_rate"], 1, now)

    def on_request(self, e: int, now: int) -> None:
        base = self.base(e)
        if self.o_req_cnt >= 0:
            self.cells.add(base + self.o_req_cnt, 1)
        if self.o_req_rate >= 0:
            self._rate_add(base + self.o_req_rate, self.period["http_req_rate"], 1, now)

    def on_error(self, e: int, now: int) -> None:
        base = self.base(e)
        if self.o_err_cnt >= 0:
            self.cells.add(base + self.o_err_cnt, 1)
        if self.o_err_rate >= 0:
            self._rate_add(base + self.o_err_rate, self.period["http_err_rate"], 1, now)

    def on_bytes(self, e: int, bytes_in: int, bytes_out: int, now: int) -> None:
        base = self.base(e)
        if bytes_in:
            if self.o_bin_cnt >= 0:
                self.cells.add(base + self.o_bin_cnt, bytes_in)
            if self.o_bin_rate >= 0:
                self._rate_add(base + self.o_bin_rate, self.period["bytes_in_rate"], bytes_in, now)
        if bytes_out:
            if self.o_bout_cnt >= 0:
                self.cells.add(base + self.o_bout_cnt, bytes_out)
            if self.o_bout_rate >= 0:
                self._rate_add(base + self.o_bout_rate, self.period["bytes_out_rate"], bytes_out, now)

    def inc_gpc(self, e: int, which: int, now: int) -> int:
        """sc-inc-gpc0/1: +1 to gpcN (and its rate); the new gpcN, 0 when
        not stored."""
        name = "gpc1" if which else "gpc0"
        rate = name + "_rate"
        base = self.base(e)
        if rate in self.off:
            self._rate_add(base + self.off[rate], self.period[rate], 1, now)
        off = self.off.get(name)
        return self.cells.add(base + off, 1) if off is not None else 0

    # -- walking, expiry, workers -----------------------------------------------

    def entries(self):
        """Every entry in use now: yields entry indices (a snapshot without
        locks: an entry may change or go while the caller reads it)."""
        q = self.q
        limit = min(self.size, q[H_ALLOC])
        for e in range(limit):
            if q[self.base(e) + E_BUCKET]:
                yield e

    def expires_in(self, e: int, now: int | None = None) -> int | None:
        """ms until e expires (0 at least), None when it never does."""
        exp = self.q[self.base(e) + E_EXPIRE]
        if not exp:
            return None
        return max(0, exp - (now_ms() if now is None else now))

    def sweep(self, now: int | None = None, budget: int = 50000) -> int:
        """Master: remove up to the expired unused entries among the next
        budget entries (resuming where the last sweep stopped). Returns
        how many were removed."""
        now = now_ms() if now is None else now
        if not self.expire:
            return 0
        q = self.q
        limit = min(self.size, q[H_ALLOC])
        if not limit:
            return 0
        start = self._sweep_at % limit
        removed = 0
        for k in range(min(budget, limit)):
            e = (start + k) % limit
            base = self.base(e)
            exp = q[base + E_EXPIRE]
            if q[base + E_BUCKET] and exp and exp <= now and not self.held(e):
                if self._unlink(e, require_unused=True, only_expired_at=now):
                    self._free(e)
                    removed += 1
        self._sweep_at = start + min(budget, limit)
        return removed

    def forget_worker(self, slot: int) -> None:
        """Master, after the worker holding E_HELD cell `slot` (held_index)
        died: its sessions are gone, so are their references and their part
        of conn_cur."""
        q = self.q
        for e in self.entries():
            c = self.base(e) + E_HELD + slot
            h = q[c]
            if h:
                self.cells.add(c, -h)
                if self.o_conn_cur >= 0:
                    cur = self.base(e) + self.o_conn_cur
                    if self.cells.add(cur, -h) < 0:
                        self.cells.store(cur, 0)

    def carry_from(self, old: "StickTable") -> None:
        """Master, on a reload that changed this table's definition: copy
        old's entries by key where the key types allow (ip <-> ipv6 through
        mapped addresses, strings re-padded), with the data types both
        store (rates only when their period is the same)."""
        now = now_ms()
        common = [n for n in self.off if n in old.off and self.period[n] == old.period[n]]
        for e in list(old.entries()):
            if old._expired(e, now):
                continue
            key = _convert_key(old.type, self.type, self.key_len, old.key_of(e))
            if key is None:
                continue
            ne = self.get_or_create(key, -1, now)
            if ne < 0:
                return
            ob, nb = old.base(e), self.base(ne)
            self.q[nb + E_TOUCH] = old.q[ob + E_TOUCH]
            if self.expire:
                left = old.expires_in(e, now)
                self.q[nb + E_EXPIRE] = now + (self.expire if left is None else min(left, self.expire))
            for n in common:
                w = 2 if self.period[n] else 1
                self.q[nb + self.off[n]:nb + self.off[n] + w] = old.q[ob + old.off[n]:ob + old.off[n] + w]
            if "conn_cur" in common:
                self.q[nb + self.off["conn_cur"]] = 0   # old sessions count in the old table

    def close(self) -> None:
        self.qc = None          # the typed view holds an export of q
        self.cells.release()
        self.q.release()
        self.b.release()
        self.mm.close()


def _zeros(n: int):
    return memoryview(bytes(8 * n)).cast("q")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _convert_key(old_type: str, new_type: str, new_len: int, key: bytes) -> bytes | None:
    if old_type == new_type and old_type in ("ip", "ipv6", "integer"):
        return key
    if old_type in ("ip", "ipv6") and new_type in ("ip", "ipv6"):
        return encode_key(new_type, new_len, format_key(old_type, key))
    if old_type in ("string", "binary") and new_type in ("string", "binary"):
        raw = key.rstrip(b"\0")
        return encode_key(new_type, new_len, raw) if raw else None
    return None


class TableSet:
    """The master's stick tables: name -> StickTable, kept over reloads
    while a definition is unchanged (farm.model.StickTable equality)."""

    def __init__(self) -> None:
        self.tables: dict[str, StickTable] = {}

    def build(self, defs, workers: int) -> dict[str, StickTable]:
        """The tables of a config: the current ones whose definition and
        worker count are the same, new ones (carrying entries by key from
        a changed one of the same name) for the others. Does not change
        self.tables: call adopt() once the generation is in service."""
        out = {}
        for d in defs:
            cur = self.tables.get(d.name)
            if cur is not None and cur.defn == d and cur.workers == workers:
                out[d.name] = cur
                continue
            t = StickTable(d, workers)
            if cur is not None:
                t.carry_from(cur)
            out[d.name] = t
        return out

    def adopt(self, tables: dict[str, StickTable]) -> None:
        """tables is in service now: unmap (in the master) those that are
        not part of it (the workers keep their own mappings)."""
        keep = {id(t) for t in tables.values()}
        for t in self.tables.values():
            if id(t) not in keep:
                t.close()
        self.tables = dict(tables)

    def discard(self, tables: dict[str, StickTable]) -> None:
        """A reload failed: unmap the tables it created."""
        keep = {id(t) for t in self.tables.values()}
        for t in tables.values():
            if id(t) not in keep:
                t.close()


# -- the runtime API (farm/admin.py): show / clear / set table ----------------------

# the order in which HAProxy prints an entry's data
SHOW_ORDER = ("server_id", "gpt0", "gpc0", "gpc0_rate", "conn_cnt", "conn_rate", "conn_cur",
              "sess_cnt", "sess_rate", "http_req_cnt", "http_req_rate", "http_err_cnt",
              "http_err_rate", "bytes_in_cnt", "bytes_in_rate", "bytes_out_cnt",
              "bytes_out_rate", "gpc1", "gpc1_rate")
_OPS = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "le": lambda a, b: a <= b,
        "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "gt": lambda a, b: a > b}


def table_header(t: StickTable) -> str:
    return (f"# table: {t.name}, type: {t.type}, size:{t.size}, used:{t.used}, "
            f"memory:{t.nbytes}\n")


def entry_line(t: StickTable, e: int, now: int) -> str:
    """One entry as `show table` prints it (the address is the entry's
    offset in the table's mapping)."""
    exp = t.expires_in(e, now)
    parts = [f"0x{t.base(e) * 8:x}: key={format_key(t.type, t.key_of(e))} use={t.held(e)} "
             f"exp={0 if exp is None else exp}"]
    for name in SHOW_ORDER:
        if name in t.off:
            v = t.get(e, name, now)
            parts.append(f"{name}({t.period[name]})={v}" if t.period[name] else f"{name}={v}")
    return " ".join(parts) + "\n"


def _parse_filters(t: StickTable, args: list[str]) -> tuple[list, bytes | None]:
    """show/clear table arguments after the name -> ([(type, op, value)], key)."""
    filters, key, i = [], None, 0
    while i < len(args):
        w = args[i]
        if w == "key":
            if i + 1 >= len(args):
                raise TableError("Key value expected\n")
            key = parse_key(t.type, t.key_len, args[i + 1]) if t else None
            i += 2
            continue
        if w.startswith("data."):
            n = len(filters) + 1
            name = w[5:]
            if name not in DATA_TYPES:
                raise TableError(f"Filter entry #{n}: Unknown data type\n")
            if i + 1 >= len(args) or args[i + 1] not in _OPS:
                raise TableError(f'Filter entry #{n}: Require and operator among "eq", "ne", '
                                 '"le", "ge", "lt", "gt"\n')
            if i + 2 >= len(args) or not re.fullmatch(r"-?\d+", args[i + 2]):
                raise TableError(f"Filter entry #{n}: Require a valid integer value to compare against\n")
            if name not in t.off:
                raise TableError(f"Filter entry #{n}: Data type not stored in this table\n")
            filters.append((name, _OPS[args[i + 1]], int(args[i + 2])))
            i += 3
            continue
        raise TableError("Optional argument only supports \"data.<store_data_type>\" "
                         "<operator> <value> and key <key>\n")
    return filters, key


def _selected(t: StickTable, filters: list, key: bytes | None, now: int):
    if key is not None:
        e = t.lookup(key, now)
        candidates = [e] if e >= 0 else []
    else:
        candidates = [e for e in t.entries() if not t._expired(e, now)]
    for e in candidates:
        if all(op(t.get(e, name, now), v) for name, op, v in filters):
            yield e


def cli(sticks: dict, words: list[str]) -> str:
    """`show table [NAME [data.TYPE OP VALUE]... [key K]]`, `clear table
    NAME [data.TYPE OP VALUE]... | [key K]` and `set table NAME key K
    data.TYPE VALUE...` with HAProxy's answers; errors raise TableError
    (the text HAProxy prints)."""
    verb, args = words[0], words[2:]
    now = now_ms()
    if verb == "show" and not args:
        return "".join(table_header(t) for t in sticks.values())
    if not args:
        if verb == "clear":
            raise TableError('Required arguments: <table> "data.<store_data_type>" <operator> '
                             "<value> or <table> key <key>\n")
        raise TableError("Required arguments: <table> key <key> [data.<store_data_type> <value>]*\n")
    t = sticks.get(args[0])
    if t is None:
        raise TableError("No such table\n")
    if verb == "show":
        filters, key = _parse_filters(t, args[1:])
        return table_header(t) + "".join(entry_line(t, e, now) for e in _selected(t, filters, key, now))
    if verb == "clear":
        filters, key = _parse_filters(t, args[1:])
        for e in list(_selected(t, filters, key, now)):
            t.remove(e)
        return ""
    # set table NAME key K data.TYPE V ...
    if len(args) < 3 or args[1] != "key":
        raise TableError("Key value expected\n")
    key = parse_key(t.type, t.key_len, args[2])
    rest = args[3:]
    updates = []
    for i in range(0, len(rest), 2):
        w = rest[i]
        if not w.startswith("data.") or w[5:] not in DATA_TYPES:
            raise TableError("Unknown data type\n")
        if w[5:] not in t.off:
            raise TableError("Data type not stored in this table\n")
        if i + 1 >= len(rest) or not re.fullmatch(r"-?\d+", rest[i + 1]):
            raise TableError("Require a valid integer value to store\n")
        updates.append((w[5:], int(rest[i + 1])))
    e = t.get_or_create(key, -1, now)
    if e < 0:
        raise TableError("Unable to allocate a new entry\n")
    for name, v in updates:
        t.set(e, name, v, now)
    return ""
