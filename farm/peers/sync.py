"""Between the peers protocol and farm's shared stick tables.

TableSync wraps one replicated farm.tables.StickTable:

- definition(): the table as a definition message describes it (HAProxy's
  key types and sizes, data type ids, rate periods);
- changed(): the entries that changed since the last call. Found by
  comparing the table's mapping with a private snapshot (one memcmp when
  nothing changed, halves compared down to the entries that did), so
  the workers pay nothing for replication: no dirty flag, no ring, no
  extra atomic on the request path. An entry changes when a worker counts
  on it, touches it (its expiry moves) or creates it;
- update(e): an entry as an Update message;
- server_key: HAProxy's persistence names the server (a dictionary entry)
  besides its id; with the server names of the backend that sticks on
  the table, farm sends and reads it too;
- apply(d, u): what a peer sent, written into the table (values replace
  ours, as in HAProxy: a table is replicated, not summed; conn_cur, the
  connections open on the node itself, is never taken from a peer), then
  copied into the snapshot so that it is not sent back to anyone.

Rates: farm counts a rate in periods numbered from the clock's origin;
HAProxy sends (ms since the current period started, current period's
count, previous period's count). Sent: the age within our period and our
two counts; received: the two counts placed in our current and previous
periods (rolled over first when the sender's period is over), so the rate
read is the sender's, weighted by our position in the period.
"""

from __future__ import annotations

from farm import tables as T
from farm.peers import codec as C

CHUNK = 256                 # entries compared at once by changed()
KEY_TYPES = {"ip": C.KT_IPV4, "ipv6": C.KT_IPV6, "integer": C.KT_SINT, "string": C.KT_STR,
             "binary": C.KT_BIN}


def key_size(t: T.StickTable) -> int:
    """HAProxy's key size for t (strings count their terminating NUL;
    integer keys are 32 bits in HAProxy)."""
    return {"ip": 4, "ipv6": 16, "integer": 4, "string": t.key_len + 1}.get(t.type, t.key_len)


SERVER_KEY = C.TYPE_ID["server_key"]


class TableSync:
    def __init__(self, table: T.StickTable, table_id: int, server_names=()):
        """server_names: (server id, name) of the servers of the backend
        whose stick rules use this table; given, entries also carry
        HAProxy's server_key (the server's name), and a received name
        chooses the server over a received id, as in HAProxy, so nodes
        that number their servers differently agree."""
        self.t = table
        self.table_id = table_id
        self.types = tuple(sorted(C.TYPE_ID[n] for n in table.off if n in C.TYPE_ID))
        pairs = tuple(server_names) if "server_id" in table.off else ()
        self.name_of = dict(pairs)                   # server id -> name
        self.id_of = {name: sid for sid, name in pairs}
        if self.name_of:
            self.types = tuple(sorted(self.types + (SERVER_KEY,)))
        self.snap = b""                    # the entries as last seen (changed())
        self.fixed: dict[int, bytes] = {}  # entries written from a peer since: as written
        self.next_update = 1
        self._seg = ((T.E_BUCKET * 8, T.E_HELD * 8), (table.key_off * 8, table.stride * 8))

    def definition(self) -> C.TableDef:
        t = self.t
        periods = {C.TYPE_ID[n]: p for n, p in t.period.items() if p and n in C.TYPE_ID}
        return C.TableDef(self.table_id, t.name, KEY_TYPES[t.type], key_size(t), self.types,
                          periods, {}, t.expire)

    def matches(self, d: C.TableDef) -> str:
        """Why the remote table d cannot be applied to ours ("" when it can)."""
        if d.key_type != KEY_TYPES[self.t.type] or d.key_size != key_size(self.t):
            return (f"key type {d.key_type}/size {d.key_size} differs from ours "
                    f"({KEY_TYPES[self.t.type]}/{key_size(self.t)})")
        if d.unknown_types:
            return f"stores data types unknown here: {d.unknown_types}"
        return ""

    # -- what changed ---------------------------------------------------------

    def changed(self) -> list[int]:
        """Entries in use whose key, data or expiry changed since the last
        call (each reported once per change; the snapshot follows).

        One copy of the entries allocated so far and one memcmp with the
        snapshot when nothing changed; else a memcmp per CHUNK entries, and
        in a chunk that differs, halves compared down to the entries that
        do."""
        t = self.t
        n = min(t.size, t.q[T.H_ALLOC])
        if not n:
            return []
        stride8 = t.stride * 8
        base = t.entries_at * 8
        size = n * stride8
        live = bytes(t.b[base:base + size])
        snap = self.snap
        if len(snap) < size:                     # entries allocated since: all new
            snap += bytes(size - len(snap))
        if self.fixed:                           # written from a peer: as written
            patched = bytearray(snap)
            for e, raw in self.fixed.items():
                patched[e * stride8:(e + 1) * stride8] = raw
            snap = bytes(patched)
            self.fixed = {}
        self.snap = live
        if live == snap:
            return []
        out: list[int] = []
        (a0, a1), (b0, b1) = self._seg
        bucket = T.E_BUCKET * 8
        zero = bytes(8)
        todo = []                                # entry ranges that differ somewhere
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            if live[lo * stride8:hi * stride8] != snap[lo * stride8:hi * stride8]:
                todo.append((lo, hi))
        todo.reverse()
        while todo:
            lo, hi = todo.pop()
            if live[lo * stride8:hi * stride8] == snap[lo * stride8:hi * stride8]:
                continue
            if hi - lo > 1:
                mid = (lo + hi) // 2
                todo += ((mid, hi), (lo, mid))
                continue
            o = lo * stride8
            cur, old = live[o:o + stride8], snap[o:o + stride8]
            if (cur[a0:a1] != old[a0:a1] or cur[b0:b1] != old[b0:b1]) and cur[bucket:bucket + 8] != zero:
                out.append(lo)
        return out

    def refresh(self, e: int) -> None:
        """Entry e as it is now is known to the peers: not a change."""
        t = self.t
        stride8 = t.stride * 8
        a = (t.entries_at + e * t.stride) * 8
        self.fixed[e] = bytes(t.b[a:a + stride8])

    def live_entries(self, now: int) -> list[int]:
        return [e for e in self.t.entries() if not self.t._expired(e, now)]

    # -- to the wire ----------------------------------------------------------

    def wire_key(self, key: bytes) -> bytes:
        ty = self.t.type
        if ty == "integer":
            return (int.from_bytes(key, "big", signed=True) & 0xFFFFFFFF).to_bytes(4, "big")
        if ty == "string":
            return key.rstrip(b"\0")
        return key

    def update(self, e: int, now: int, timed: bool = True) -> C.Update | None:
        """Entry e as an update (with a new update id), None when it is no
        longer in use or has expired."""
        t = self.t
        base = t.base(e)
        q = t.q
        if not q[base + T.E_BUCKET] or t._expired(e, now):
            return None
        key = t.key_of(e)
        values = {}
        for tid in self.types:
            if tid == SERVER_KEY:
                values[tid] = self.name_of.get(q[base + t.off["server_id"]])
                continue
            name = C.DATA_TYPES[tid][0]
            c = base + t.off[name]
            period = t.period[name]
            if period:
                values[tid] = _rate_out(q[c], q[c + 1], now, period)
            else:
                v = q[c]
                std = C.DATA_TYPES[tid][1]
                values[tid] = v & 0xFFFFFFFF if std == C.UINT else v
        exp = t.expires_in(e, now) if timed else None
        uid = self.next_update
        self.next_update = (uid + 1) & 0xFFFFFFFF or 1
        return C.Update(self.wire_key(key), values, uid, exp)

    # -- from the wire --------------------------------------------------------

    def apply(self, d: C.TableDef, u: C.Update, now: int) -> int:
        """Write the update u of the remote table d (matches() said yes)
        into our table: the entry (created when missing), its expiry and the
        values both tables store. Returns the entry, or -1 when the key is
        not usable or the table is full of entries in use."""
        t = self.t
        key = self._local_key(u.key)
        if key is None:
            return -1
        e = t.get_or_create(key, -1, now)
        if e < 0:
            return -1
        base = t.base(e)
        q = t.q
        if u.expire is not None:
            q[base + T.E_EXPIRE] = now + u.expire if t.expire else 0
        values = u.values
        sid = self.id_of.get(values.get(SERVER_KEY))
        if sid is not None:
            values = dict(values)
            values[C.TYPE_ID["server_id"]] = sid
        for tid, v in values.items():
            name = C.DATA_TYPES[tid][0]
            off = t.off.get(name)
            if off is None or name == "conn_cur":
                continue
            c = base + off
            period = t.period[name]
            if period:
                c0, c1 = _rate_in(v, now, period)
                t.cells.store(c, c0)
                t.cells.store(c + 1, c1)
            elif isinstance(v, int):
                t.cells.store(c, v)
        self.refresh(e)
        return e

    def _local_key(self, wire: bytes) -> bytes | None:
        ty = self.t.type
        if ty == "integer":
            if len(wire) != 4:
                return None
            return int.from_bytes(wire, "big", signed=True).to_bytes(8, "big", signed=True)
        if ty == "string":
            return T.encode_key(ty, self.t.key_len, wire.split(b"\0", 1)[0])
        if len(wire) != self.t.kwidth:
            return None
        return bytes(wire)


def _rate_out(c0: int, c1: int, now: int, period: int) -> tuple[int, int, int]:
    """A rate's two cells -> (ms since our current period began, its count,
    the previous period's count)."""
    n = now // period
    cur_cell, prev_cell = (c0, c1) if n % 2 == 0 else (c1, c0)
    cur = cur_cell & T.RATE_CNT_MAX if cur_cell >> 32 == n & T.RATE_IDX_MASK else 0
    prev = prev_cell & T.RATE_CNT_MAX if prev_cell >> 32 == (n - 1) & T.RATE_IDX_MASK else 0
    return now - n * period, cur, prev


def _rate_in(v, now: int, period: int) -> tuple[int, int]:
    """A received (age, current, previous) -> our two cells (even, odd)."""
    age, cur, prev = v
    if age >= 2 * period:
        cur = prev = 0
    elif age >= period:
        cur, prev = 0, cur
    n = now // period
    cells = [0, 0]
    cells[n & 1] = T.rate_pack(n, cur) if cur else 0
    cells[(n - 1) & 1] = T.rate_pack(n - 1, prev) if prev else 0
    return cells[0], cells[1]
