"""Stick-table tracking in a worker: track-sc, the sc_*/src_*/table_*
fetches, and the accounting of connections and requests on the entries
they track (HAProxy's stick counters).

The tables themselves are farm/tables.py (shared memory, one for all
workers). install() gives this module the worker's tables and slot before
the rules are compiled; without it (farm explain, unit tests of rules)
every table is absent: tracking does nothing and stick fetches have no
value.

Trackers hold the three stick counters (sc0, sc1, sc2) of one holder: a
client connection (tcp_request rules: held until the connection closes)
or a stream (http_request rules: held until the request ends). A stream's
Trackers see the connection's as their parent: sc0 reads the stream's
own counter if it tracks one, else the connection's; a track-scN rule is
skipped when either already tracks counter N.

Accounting, as in HAProxy: starting to track counts conn_cnt, conn_cur
and conn_rate (and, for connections, sess_cnt and sess_rate); each HTTP
request counts http_req_cnt/rate on every tracked entry, a 4xx response
http_err_cnt/rate, and the bytes bytes_in/out; the end of the holder
gives conn_cur back.
"""

from __future__ import annotations

from farm.conditions import STICK_SUFFIXES, TABLE_CONVERTERS
from farm.tables import encode_key, held_index, now_ms

TABLES: dict = {}          # name -> farm.tables.StickTable (install())
SLOT = [0]                 # this worker's E_HELD cell (farm.tables.held_index)
DEFAULT = [None]           # the table used when a fetch names none (a single table)


def install(tables: dict, slot: int, generation: int = 0) -> None:
    """The worker's stick tables (name -> StickTable), its slot and
    generation (which give its E_HELD cell: farm.tables.held_index)."""
    TABLES.clear()
    TABLES.update(tables)
    workers = next(iter(tables.values())).workers if tables else 0
    SLOT[0] = held_index(slot, generation, workers)
    DEFAULT[0] = next(iter(tables)) if len(tables) == 1 else None


class Trackers:
    """Stick counters sc0..sc2 of a connection or a stream: per counter,
    (table, entry) or None."""

    __slots__ = ("sc", "parent", "conn", "store", "persist", "stuck")

    def __init__(self, parent: "Trackers | None" = None, conn: bool = False):
        self.sc = [None, None, None]
        self.parent = parent
        self.conn = conn
        self.store = None       # [(table, key)]: what store-request rules extracted
        self.persist = None     # the Persistence whose stores wait for the response head
        self.stuck = False      # a stick match chose the server (retries treat it as persistent)

    def get(self, n: int):
        t = self.sc[n]
        if t is None and self.parent is not None:
            return self.parent.sc[n]
        return t

    def track(self, n: int, table, key: bytes | None, now: int, request: bool = False) -> None:
        """Start tracking key in table as counter n (when n is free);
        request: count an HTTP request on it too."""
        if key is None or self.get(n) is not None:
            return
        e = table.track(key, SLOT[0], now, request)
        if e < 0:
            return        # the table is full of entries in use
        self.sc[n] = (table, e)
        if self.conn:
            table.on_session(e, now)

    def each(self):
        """(table, entry) of every counter this holder or its parent tracks,
        each entry once."""
        seen = []
        for holder in (self, self.parent):
            if holder is None:
                continue
            for t in holder.sc:
                if t is not None and t not in seen:
                    seen.append(t)
        return seen

    def release(self, now: int = 0) -> None:
        """The holder ends: give back what its own counters hold."""
        now = now or now_ms()
        slot = SLOT[0]
        sc = self.sc
        for n in range(3):
            t = sc[n]
            if t is not None:
                sc[n] = None
                t[0].untrack(t[1], slot, now)


# -- tracking from rules -------------------------------------------------------

def key_encoder(table_name: str, get_sample):
    """txn -> the key bytes of the sample get_sample(txn) for table_name's
    type, or None (no such table, or no usable sample)."""
    known = TABLES.get(table_name)        # install() ran before the rules were compiled
    if known is not None:
        type_, key_len = known.type, known.key_len
        last = [None, None]       # the last sample and its key

        def key_of_known(txn):
            v = get_sample(txn)
            if v is None:
                return known, None
            if v == last[0]:      # the same sample as last time (one client on many requests)
                return known, last[1]
            k = encode_key(type_, key_len, v)
            last[0] = v
            last[1] = k
            return known, k
        return key_of_known

    def key(txn):
        table = TABLES.get(table_name)
        if table is None:
            return None, None
        v = get_sample(txn)
        if v is None:
            return table, None
        return table, encode_key(table.type, table.key_len, v)
    return key


def _trackers_of(txn, create: bool) -> "Trackers | None":
    try:
        stk = txn.stk
    except AttributeError:
        stk = None
    if stk is None and create:
        stk = Trackers()
        try:
            txn.stk = stk
        except AttributeError:       # a txn that cannot track (farm explain)
            return None
    return stk


def track_action(n: int, key, http: bool):
    """The action of track-scN: key is key_encoder(...); http: an
    http_request rule, which counts the request at once (HAProxy counts
    the current request when a stream starts tracking)."""
    def track(txn):
        table, k = key(txn)
        if k is None:
            return None
        try:
            stk = txn.stk
        except AttributeError:          # a txn that cannot track (farm explain)
            return None
        if stk is None:
            stk = txn.stk = Trackers()
        elif stk.get(n) is not None:
            return None
        e = table.track(k, SLOT[0], now_ms(), http)
        if e >= 0:
            stk.sc[n] = (table, e)
            if stk.conn:
                table.on_session(e, now_ms())
        return None
    return track


def gpc_action(n: int, which: int):
    """sc-inc-gpc0/1 on counter n."""
    def inc(txn):
        stk = getattr(txn, "stk", None)
        t = stk.get(n) if stk is not None else None
        if t is not None:
            now = now_ms()
            t[0].inc_gpc(t[1], which, now)
            t[0].touch(t[1], now)
    return inc


def gpt_action(n: int, value: int):
    """sc-set-gpt0 on counter n."""
    def set_gpt(txn):
        stk = getattr(txn, "stk", None)
        t = stk.get(n) if stk is not None else None
        if t is not None:
            t[0].set(t[1], "gpt0", value)
    return set_gpt


# -- fetches ---------------------------------------------------------------------

def _read(table, e: int, dt: str, op: str):
    """The value of a stick fetch on entry e (see STICK_SUFFIXES)."""
    if op == "trackers":
        return table.held(e)
    if op == "inc":
        if dt not in table.off:
            return None
        v = table.inc_gpc(e, 1 if dt == "gpc1" else 0, now_ms())
        table.touch(e)
        return v
    if op == "clr":
        if dt not in table.off:
            return None
        v = table.get(e, dt)
        table.set(e, dt, 0)
        return v
    v = table.get(e, dt)
    if v is None:
        return None
    return v >> 10 if op == "kb" else v


def stick_getter(base: str, arg: str | None, key_get=None):
    """An integer (or, for sc_tracked, boolean) stick fetch -> txn -> value
    or None. base: "sc_<suffix>", "src_<suffix>" or "table_<suffix>"; arg
    as farm.conditions normalised it; key_get: for table_*, txn -> the
    key sample."""
    if base.startswith("sc_"):
        dt, op = STICK_SUFFIXES[base[3:]]
        ctr, _, tname = (arg or "0").partition(",")
        n = int(ctr)
        if op == "tracked":
            def tracked(txn):
                stk = getattr(txn, "stk", None)
                return stk is not None and stk.get(n) is not None
            return tracked

        def sc(txn):
            stk = getattr(txn, "stk", None)
            t = stk.get(n) if stk is not None else None
            if t is None:
                return None
            table, e = t
            if tname and table.name != tname:
                other = TABLES.get(tname)        # the same key, looked up in another table
                if other is None:
                    return None
                e = other.lookup(table.key_of(e)) if other.type == table.type else -1
                if e < 0:
                    return None
                table = other
            return _read(table, e, dt, op)
        return sc
    if base.startswith("src_"):
        dt, op = STICK_SUFFIXES[base[4:]]
        return _lookup_getter(arg, lambda txn: txn.src, dt, op, create=op == "inc")
    dt, op = TABLE_CONVERTERS[base]
    return _lookup_getter(arg, key_get, dt, op, create=False)


def _lookup_getter(tname: str | None, key_get, dt: str, op: str, create: bool):
    def lookup(txn):
        table = TABLES.get(tname) if tname else TABLES.get(DEFAULT[0])
        if table is None:
            return None
        v = key_get(txn)
        if v is None:
            return None
        k = encode_key(table.type, table.key_len, v)
        if k is None:
            return None
        e = table.get_or_create(k, -1) if create else table.lookup(k)
        if e < 0:
            return None if op != "trackers" else 0
        return _read(table, e, dt, op)
    return lookup


# -- streams and connections ---------------------------------------------------------

def stream_started(stream, conn_stk: "Trackers") -> None:
    """A request on a connection that tracks counters: count it there, and
    give the stream Trackers whose parent is the connection's."""
    stk = stream.stk = Trackers(conn_stk)
    now = now_ms()
    for t in conn_stk.sc:
        if t is not None:
            t[0].on_request(t[1], now)
    return None


def stream_finished(stream) -> None:
    """The stream's transaction is over: errors and bytes on every entry
    it or its connection tracks, then its own counters are released."""
    stk = stream.stk
    stream.stk = None
    err = 400 <= stream.status < 500
    now = now_ms()
    if stk.parent is None and stk.sc[1] is None and stk.sc[2] is None:
        t = stk.sc[0]              # the usual case: one counter, the stream's own
        if t is not None:
            table, e = t
            if err and table.counts_errors:
                table.on_error(e, now)
            if table.counts_bytes:
                table.on_bytes(e, stream.bytes_in, stream.bytes_out, now)
            stk.sc[0] = None
            table.untrack(e, SLOT[0], now)
        return
    for table, e in stk.each():
        if err and table.counts_errors:
            table.on_error(e, now)
        if table.counts_bytes:
            table.on_bytes(e, stream.bytes_in, stream.bytes_out, now)
    stk.release(now)


def connection_ended(session, stk: "Trackers") -> None:
    """A connection whose tcp_request rules tracked counters closed: a TCP
    session's bytes go to its entries, then the counters are released."""
    c2s = getattr(session, "c2s", None)
    if c2s is not None:
        now = now_ms()
        for table, e in stk.each():
            table.on_bytes(e, c2s.moved, session.s2c.moved, now)
    stk.release()


# -- persistence (stick match / on / store-request / store-response) ------------------

MAX_STORES = 8               # HAProxy's limit of entries one request and its response store


class Persistence:
    """A backend's stick rules, compiled (HAProxy's stick match, stick on,
    stick store-request and stick store-response).

    Each rule is (table name, key getter txn -> sample or None, condition
    txn -> bool or None). Before the balance picks a server, the match
    rules run in order: the first whose key has an entry naming a usable
    server (up or draining) sends the request there (a server that is down
    or in maintenance does not count: the balance picks another, and the
    stores below then name it). Once the server has answered (HTTP: the
    response head; TCP: the connection established), the entries of the
    store rules get its id: server_id is the server's `id`, its position
    in the backend unless set. Per table, only the first store-request and
    the first store-response rule that yields a key store (HAProxy's
    rule), 8 entries at most in all."""

    __slots__ = ("pool", "index_of", "matches", "req_stores", "resp_stores")

    def __init__(self, backend, matches=(), req_stores=(), resp_stores=()):
        self.pool = backend.pool
        self.index_of = {s.cfg.id: s.index for s in backend.servers}
        self.matches = tuple(matches)
        self.req_stores = tuple(req_stores)
        self.resp_stores = tuple(resp_stores)

    def match(self, txn) -> int | None:
        """The index of the usable server the first match rule finds for
        txn, or None (no rule applies, no entry, or its server is not
        usable). A found entry is refreshed (its expiry starts again)."""
        for tname, get, cond in self.matches:
            table = TABLES.get(tname)
            if table is None or (cond is not None and not cond(txn)):
                continue
            v = get(txn)
            k = encode_key(table.type, table.key_len, v) if v is not None else None
            if k is None:
                continue
            e = table.lookup(k)
            if e < 0:
                continue
            table.touch(e)
            idx = self.index_of.get(table.get(e, "server_id") or 0)
            if idx is not None and self.pool.is_up(idx):
                return idx
        return None

    def keys(self, rules, txn, out: list | None = None) -> list | None:
        """[(table, key)]: what rules extract from txn, the first per table,
        appended to out (a list, or None for a new one when there is any);
        MAX_STORES in all."""
        room = MAX_STORES - (len(out) if out else 0)
        mine = []
        for tname, get, cond in rules:
            if len(mine) >= room:
                break
            table = TABLES.get(tname)
            if table is None or any(t is table for t, _ in mine):
                continue
            if cond is not None and not cond(txn):
                continue
            v = get(txn)
            k = encode_key(table.type, table.key_len, v) if v is not None else None
            if k is None:
                continue
            mine.append((table, k))
        if not mine:
            return out
        if out is None:
            return mine
        out.extend(mine)
        return out

    def store(self, keys, srv) -> None:
        """The entries of keys name srv (created when missing)."""
        sid = srv.cfg.id
        now = now_ms()
        for table, key in keys:
            e = table.get_or_create(key, -1, now)
            if e >= 0:
                table.set(e, "server_id", sid, now)
                table.touch(e, now)

    # -- HTTP streams (workers/stream.py) --

    def on_request(self, stream) -> None:
        """Before the server is picked: the match rules (unless a cookie
        already chose the server), then the store-request keys, kept until
        the response head (on_response)."""
        if self.matches and stream.forced_server is None:
            idx = self.match(stream)
            if idx is not None:
                stream.forced_server = idx
                if stream.stk is None:
                    stream.stk = Trackers()
                stream.stk.stuck = True
        if self.req_stores or self.resp_stores:
            stk = stream.stk
            if stk is None:
                stk = stream.stk = Trackers()
            stk.store = self.keys(self.req_stores, stream) if self.req_stores else None
            stk.persist = self

    def on_response(self, stream) -> None:
        """The server's response head arrived (before the http_response
        rules, as HAProxy stores): the request's keys and the response's
        name the server that answered."""
        stk = stream.stk
        stk.persist = None
        keys = stk.store
        stk.store = None
        if self.resp_stores:
            keys = self.keys(self.resp_stores, stream, keys)
        if keys and stream.srv is not None:
            self.store(keys, stream.srv)

    # -- TCP sessions (workers/tcp.py) --

    def on_connection(self, txn) -> tuple:
        """A TCP session before its server is picked: (the index of the
        server the match rules found or None, the store-request keys or
        None), txn a workers.runtime.Layer4Txn."""
        idx = self.match(txn) if self.matches else None
        return idx, (self.keys(self.req_stores, txn) if self.req_stores else None)


class ConnTxn:
    """What tcp_request rules read: the client's address, the local port,
    and the connection's stick counters."""

    __slots__ = ("src", "src_port", "dst_port", "stk", "req", "resp", "_rules_src")

    def __init__(self, caddr: tuple, dst_port: int):
        self.src = caddr[0]
        self.src_port = caddr[1]
        self.dst_port = dst_port
        self.stk = Trackers(conn=True)
        self.req = self.resp = self._rules_src = None


REJECTED = object()     # what a gated session class returns for a refused connection


def connection_gate(rules, session_class, conn_trackers: dict):
    """Wrap a session class (workers/worker.py) with a frontend's tcp_request
    rules (compiled by workers.rules.compile_tcp_rules): a rejected
    connection is closed at once (REJECTED is returned); an accepted
    one keeps the counters its rules tracked in conn_trackers[session],
    released by WorkerContext.session_ended."""
    def accepted(ctx, fe, csock, caddr):
        try:
            port = csock.getsockname()[1]
        except OSError:
            port = 0
        txn = ConnTxn(caddr, port)
        verdict = rules(txn)
        stk = txn.stk
        if verdict == "reject":
            stk.release()
            csock.close()
            return REJECTED
        session = session_class(ctx, fe, csock, caddr)
        if stk.sc != [None, None, None]:
            if session in ctx.sessions:
                conn_trackers[session] = stk
            else:                  # it ended already (a failed handshake...)
                stk.release()
        return session
    return accepted
