"""HPACK (RFC 7541): header block decoder and encoder, Huffman coding.

One ``Decoder`` per connection for the peer's header blocks and one
``Encoder`` for ours; each keeps its dynamic table across blocks, so every
block of a connection must go through the same instance, in order.

Decoder::

    d = Decoder(max_table_size=4096, max_header_list_size=65536, max_fields=100)
    fields = d.decode(block)     # [(name, value), ...] bytes pairs, in order

``decode()`` raises ``HPACKError`` (a connection error COMPRESSION_ERROR)
for any malformed block: truncated integers or strings, an index outside
the tables, a bad Huffman string (EOS inside, padding over 7 bits or not
all ones), a table size update above the allowed maximum or after the
first field. It raises ``HeaderListTooLarge`` when the block decoded
cleanly but its header list is over ``max_header_list_size`` (sum of
name + value + 32 per field, RFC 9113 section 6.5.2) or holds more than
``max_fields`` fields: the whole block is still decoded, so the dynamic
table stays in step with the peer's and the connection can go on.

HPACK bombs are bounded here: the dynamic table never exceeds the size we
advertised (``max_table_size``; a size update above it is an error); the
decoded list is checked against ``max_header_list_size`` and one-byte
references to a large table entry cannot inflate memory (fields past the
limit are not kept, and a block made only of one-byte indexes, decoded
without a loop, holds references to existing entries, at most one per
byte of the block, which the connection bounds); a Huffman string decodes
to at most 8/5 of its encoded length (the shortest code is 5 bits) and a
literal longer than the list limit is refused before it is decoded;
integers are limited to 2**32.

Encoder::

    e = Encoder()
    block = e.encode([(b":status", b"200"), (b"content-type", b"text/html")])

Names must be lowercase (HTTP/2 requires it; the encoder does not check).
Every field whose exact value is in the static or dynamic table is sent as
one index; other fields are literals, added to the dynamic table unless
their name is in ``NOT_INDEXED`` (values that change every message, where
an entry would only evict useful ones) or ``NEVER_INDEXED`` (secrets: sent
with the never-indexed representation so that no intermediary indexes them
either, which defeats compression-ratio attacks such as CRIME). Strings are
Huffman-coded when that is shorter. ``set_max_table_size()`` applies the
peer's SETTINGS_HEADER_TABLE_SIZE; the required size update is emitted at
the start of the next block.

``encode(fields, key)``: the caller vouches that equal keys mean equal
field lists (a response head's raw bytes, say). A block whose encoding
left the dynamic table as it was (every field indexed, or a literal not
added) is then remembered under key and handed back for the same key
while the table stays unchanged: the same bytes the full encoding would
give, since the indexes depend only on the table. Any insertion, eviction
or size change forgets every remembered block.

Huffman decoding walks a byte-at-a-time state machine: the states are the
256 internal nodes of the code tree, and a table indexed by (state, input
byte) gives the next state and the 0-2 symbols completed on the way. The
table (257 x 256 entries) is derived once from tables.HUFFMAN_CODES.
"""

from workers.h2.errors import HeaderListTooLarge, HPACKError
from workers.h2.tables import HUFFMAN_CODES, STATIC_TABLE
from workers.http1 import only_table

__all__ = ["Decoder", "Encoder", "huffman_encode", "huffman_decode", "huffman_length",
           "encode_integer", "NOT_INDEXED", "NEVER_INDEXED", "DEFAULT_TABLE_SIZE"]

DEFAULT_TABLE_SIZE = 4096
_ENTRY_OVERHEAD = 32            # RFC 7541 section 4.1
_MAX_INT = 1 << 32              # larger integers are refused (no real use)
_STATIC_LEN = len(STATIC_TABLE)  # 61

# index -> (name, value); index 0 is invalid
_STATIC = (None,) + STATIC_TABLE
_STATIC_LUT = list(_STATIC)
_STATIC_MAX = max(len(n) + len(v) + _ENTRY_OVERHEAD for n, v in STATIC_TABLE)
# bytes that are, alone, a whole indexed field representation (6.1)
_ONE_BYTE_INDEXES = bytes(range(0x81, 0xFF))
# its translate() table: block.translate(table) == block exactly when every
# byte of block is in _ONE_BYTE_INDEXES
_ONE_BYTE_INDEXES_T = only_table(_ONE_BYTE_INDEXES)
_LOW7 = bytes(b & 0x7F for b in range(256))
_STATIC_BY_FIELD = {}
_STATIC_BY_NAME = {}
for _i, _f in enumerate(STATIC_TABLE, 1):
    _STATIC_BY_FIELD.setdefault(_f, _i)
    _STATIC_BY_NAME.setdefault(_f[0], _i)

# Values that differ from one message to the next: indexing them would
# evict entries that are reused.
NOT_INDEXED = frozenset((b":path", b"content-length", b"date", b"etag", b"last-modified",
                         b"expires", b"age", b"if-modified-since", b"if-none-match",
                         b"content-range", b"range", b"location", b"x-request-id",
                         b"grpc-status", b"grpc-message", b"grpc-timeout"))
# Secrets: never indexed, here or by any intermediary (RFC 7541 section 7.1).
NEVER_INDEXED = frozenset((b"authorization", b"proxy-authorization", b"cookie",
                           b"set-cookie"))


# --------------------------------------------------------------------------
# Huffman

def _build_huffman():
    """The decoding state machine and the encoding strings (see the module
    docstring). Returns (next, emit, accept, bits, lengths)."""
    # code tree: children[node] = [child0, child1]; a leaf is ~symbol (< 0)
    children = [[None, None]]
    for sym, (code, length) in enumerate(HUFFMAN_CODES):
        node = 0
        for i in range(length - 1, 0, -1):
            bit = (code >> i) & 1
            nxt = children[node][bit]
            if nxt is None:
                nxt = children[node][bit] = len(children)
                children.append([None, None])
            node = nxt
        children[node][code & 1] = ~sym
    nodes = len(children)            # 256 internal nodes for 257 leaves
    fail = nodes                     # sink state: EOS decoded or invalid
    # accepting states: the remaining bits are a prefix of EOS (all ones)
    # no longer than 7 bits (section 5.2)
    accept = [False] * (nodes + 1)
    node = 0
    accept[0] = True
    for _ in range(7):
        node = children[node][1]
        accept[node] = True
    # 4-bit steps first, then composed into 8-bit steps
    step4 = []
    for state in range(nodes):
        row = []
        for nibble in range(16):
            node, sym, bad = state, -1, False
            for i in (3, 2, 1, 0):
                c = children[node][(nibble >> i) & 1]
                if c < 0:
                    if ~c == 256:
                        bad = True
                    sym = ~c
                    node = 0
                else:
                    node = c
            row.append((node, sym, bad))
        step4.append(row)
    one = [bytes((b,)) for b in range(256)]
    pairs = {}
    nxt = [fail << 8] * ((nodes + 1) << 8)
    emit = [b""] * ((nodes + 1) << 8)
    for state in range(nodes):
        base = state << 8
        for hi in range(16):
            s1, e1, bad1 = step4[state][hi]
            row = step4[s1]
            for lo in range(16):
                s2, e2, bad2 = row[lo]
                i = base | (hi << 4) | lo
                if bad1 or bad2:
                    continue                     # stays on the fail state
                nxt[i] = s2 << 8
                if e1 >= 0:
                    if e2 >= 0:
                        key = (e1 << 8) | e2
                        out = pairs.get(key)
                        if out is None:
                            out = pairs[key] = one[e1] + one[e2]
                        emit[i] = out
                    else:
                        emit[i] = one[e1]
                elif e2 >= 0:
                    emit[i] = one[e2]
    accept_shifted = [False] * ((nodes + 1) << 8)
    for state in range(nodes):
        if accept[state]:
            accept_shifted[state << 8] = True
    bits = [format(code, "0%db" % length) for code, length in HUFFMAN_CODES[:256]]
    lengths = [length for _, length in HUFFMAN_CODES[:256]]
    return nxt, emit, accept_shifted, bits, lengths


_H_NEXT, _H_EMIT, _H_ACCEPT, _H_BITS, _H_LEN = _build_huffman()


def huffman_decode(data: bytes) -> bytes:
    """Decode a Huffman-coded string (RFC 7541 section 5.2). Raises
    HPACKError for EOS inside the string or invalid padding."""
    nxt = _H_NEXT
    emit = _H_EMIT
    state = 0
    out = []
    append = out.append
    for b in data:
        i = state | b
        state = nxt[i]
        append(emit[i])
    if not _H_ACCEPT[state]:
        raise HPACKError("invalid Huffman string")
    return b"".join(out)


def huffman_length(data: bytes) -> int:
    """Length in bytes of data once Huffman-coded (with its padding)."""
    return (sum(map(_H_LEN.__getitem__, data)) + 7) >> 3


def huffman_encode(data: bytes) -> bytes:
    """Huffman-code data, padded with the most significant bits of EOS."""
    if not data:
        return b""
    bits = "".join(map(_H_BITS.__getitem__, data))
    n = len(bits)
    pad = -n & 7
    if pad:
        bits += "1111111"[:pad]
    return int(bits, 2).to_bytes((n + pad) >> 3, "big")


# --------------------------------------------------------------------------
# integers (section 5.1)

def encode_integer(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """``value`` on a prefix of prefix_bits bits, the high bits of the first
    byte taken from ``first`` (the representation's pattern)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _integer_tail(block, pos, value):
    """Continue an integer whose prefix was full (value = the prefix max)
    from block[pos]. Returns (value, pos after it)."""
    shift = 0
    n = len(block)
    while True:
        if pos >= n:
            raise HPACKError("truncated integer")
        b = block[pos]
        pos += 1
        value += (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 28:
            raise HPACKError("integer too large")
    if value > _MAX_INT:
        raise HPACKError("integer too large")
    return value, pos


# --------------------------------------------------------------------------
# decoder

class Decoder:
    """Decodes the header blocks of one direction of one connection."""

    __slots__ = ("_table", "_size", "max_table_size", "max_allowed", "max_header_list_size",
                 "max_fields", "_need_update", "_lut", "_max_entry", "generation")

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE,
                 max_header_list_size: int = 65536, max_fields: int = 100):
        # newest first: index 62 is _table[0] (a list: at most a few hundred
        # entries, and an empty list costs far less than an empty deque)
        self._table = []
        self._size = 0
        # the table size the peer set with its last update; what it may set
        self.max_table_size = max_table_size
        self.max_allowed = max_table_size
        self.max_header_list_size = max_header_list_size
        self.max_fields = max_fields
        self._need_update = False
        self._lut = None                 # index -> field, both tables (None: to rebuild)
        self._max_entry = _STATIC_MAX    # no entry of either table is larger
        # bumped by every change of the dynamic table: while it is the same,
        # a block decodes to the same fields (a caller may remember them)
        self.generation = 0

    def set_max_allowed(self, size: int) -> None:
        """Our SETTINGS_HEADER_TABLE_SIZE changed (and was acknowledged): the
        peer may not use more. If its table is larger, its next block must
        start with a size update (section 4.2)."""
        self.max_allowed = size
        if self.max_table_size > size:
            self._need_update = True

    @property
    def table_size(self) -> int:
        """The dynamic table's current size (section 4.1 accounting)."""
        return self._size

    def _add(self, name, value):
        size = len(name) + len(value) + _ENTRY_OVERHEAD
        table = self._table
        limit = self.max_table_size
        self._lut = None
        self.generation += 1
        if size > limit:
            # an entry larger than the table empties it (section 4.4)
            table.clear()
            self._size = 0
            return
        total = self._size + size
        while total > limit:
            n, v = table.pop()
            total -= len(n) + len(v) + _ENTRY_OVERHEAD
        table.insert(0, (name, value))
        self._size = total
        if size > self._max_entry:
            self._max_entry = size

    def _resize(self, size):
        if size > self.max_allowed:
            raise HPACKError("table size update %d above %d" % (size, self.max_allowed))
        self.max_table_size = size
        self.generation += 1
        table = self._table
        total = self._size
        while total > size:
            n, v = table.pop()
            total -= len(n) + len(v) + _ENTRY_OVERHEAD
            self._lut = None
        self._size = total

    def _field(self, index):
        if index <= _STATIC_LEN:
            if not index:
                raise HPACKError("index 0")
            return _STATIC[index]
        k = index - _STATIC_LEN - 1
        if k >= len(self._table):
            raise HPACKError("index %d outside the tables" % index)
        return self._table[k]

    def decode(self, block: bytes) -> list:
        """The header list of one complete header block (see the module
        docstring for the errors)."""
        if self._need_update:
            if not block or block[0] & 0xE0 != 0x20:
                raise HPACKError("missing dynamic table size update")
            self._need_update = False
        if block and block.translate(_ONE_BYTE_INDEXES_T) == block:
            # every field is a one-byte index (a warm connection): no loop
            lut = self._lut
            if lut is None:
                lut = self._lut = _STATIC_LUT + self._table
            try:
                fields = [lut[i] for i in block.translate(_LOW7)]
            except IndexError:
                raise HPACKError("index outside the tables") from None
            n = len(fields)
            if n > self.max_fields:
                raise HeaderListTooLarge("more than %d header fields" % self.max_fields)
            # the list size is at most n times the largest entry: only a
            # block near the limit needs the exact sum
            if n * self._max_entry > self.max_header_list_size:
                total = 0
                for name, value in fields:
                    total += len(name) + len(value) + _ENTRY_OVERHEAD
                if total > self.max_header_list_size:
                    raise HeaderListTooLarge("header list over %d bytes"
                                             % self.max_header_list_size)
            return fields
        return self._decode(block)

    def _decode(self, block):
        fields = []
        append = fields.append
        pos = 0
        n = len(block)
        total = 0               # header list size (RFC 9113 6.5.2 accounting)
        limit = self.max_header_list_size
        over = False
        table = self._table
        static = _STATIC
        while pos < n:
            b = block[pos]
            pos += 1
            if b & 0x80:
                # indexed field (6.1)
                index = b & 0x7F
                if index == 0x7F:
                    index, pos = _integer_tail(block, pos, index)
                if index <= _STATIC_LEN:
                    if not index:
                        raise HPACKError("index 0")
                    field = static[index]
                else:
                    k = index - _STATIC_LEN - 1
                    if k >= len(table):
                        raise HPACKError("index %d outside the tables" % index)
                    field = table[k]
                total += len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
                if total > limit:
                    over = True
                elif not over:
                    append(field)
                continue
            if b & 0x40:
                # literal with incremental indexing (6.2.1)
                index = b & 0x3F
                if index == 0x3F:
                    index, pos = _integer_tail(block, pos, index)
                indexing = True
            elif b & 0x20:
                # dynamic table size update (6.3): only before the first field
                if fields or total:
                    raise HPACKError("table size update after a field")
                size = b & 0x1F
                if size == 0x1F:
                    size, pos = _integer_tail(block, pos, size)
                self._resize(size)
                continue
            else:
                # literal without indexing (0000) or never indexed (0001) (6.2.2-3)
                index = b & 0x0F
                if index == 0x0F:
                    index, pos = _integer_tail(block, pos, index)
                indexing = False
            if index:
                name = self._field(index)[0]
            else:
                name, pos = _string(block, pos, limit)
            value, pos = _string(block, pos, limit)
            if indexing:
                self._add(name, value)
            total += len(name) + len(value) + _ENTRY_OVERHEAD
            if total > limit:
                over = True
            elif not over:
                append((name, value))
        if over:
            raise HeaderListTooLarge("header list over %d bytes" % limit)
        if len(fields) > self.max_fields:
            raise HeaderListTooLarge("more than %d header fields" % self.max_fields)
        return fields


def _string(block, pos, limit):
    """The string literal at block[pos] (section 5.2). Returns (bytes,
    position after it)."""
    if pos >= len(block):
        raise HPACKError("truncated string")
    b = block[pos]
    pos += 1
    length = b & 0x7F
    if length == 0x7F:
        length, pos = _integer_tail(block, pos, length)
    end = pos + length
    if end > len(block):
        raise HPACKError("truncated string")
    if b & 0x80:
        # decoded length is at most 8/5 of the encoded one: refuse what
        # cannot fit in the header list before spending time on it
        if length > limit:
            raise HPACKError("Huffman string of %d bytes" % length)
        return huffman_decode(block[pos:end]), end
    return block[pos:end], end


# --------------------------------------------------------------------------
# encoder

class Encoder:
    """Encodes our header blocks for one direction of one connection."""

    __slots__ = ("_table", "_size", "max_table_size", "_cap", "_inserted", "_by_field",
                 "_by_name", "_pending_updates", "huffman", "_memo")

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE, huffman: bool = True):
        # our own cap on the table, whatever the peer allows (memory per
        # connection); the peer's SETTINGS can only lower the table size
        self._cap = max_table_size
        self.max_table_size = min(max_table_size, DEFAULT_TABLE_SIZE)
        self._table = []                 # (name, value, insertion number), newest first
        self._size = 0
        self._inserted = 0               # insertion number of the next entry
        self._by_field = {}              # (name, value) -> insertion number
        self._by_name = {}               # name -> insertion number
        self._pending_updates = []
        self.huffman = huffman
        self._memo = {}                  # key -> block, while the table is unchanged
        if self.max_table_size != DEFAULT_TABLE_SIZE:
            self._pending_updates.append(self.max_table_size)

    def set_max_table_size(self, size: int) -> None:
        """The peer's SETTINGS_HEADER_TABLE_SIZE: use min(size, our cap) and
        signal it at the start of the next block (with the smallest size
        reached in between, section 4.2)."""
        size = min(size, self._cap)
        if size == self.max_table_size and not self._pending_updates:
            return
        if self._pending_updates:
            low = min(self._pending_updates[0], size)
            self._pending_updates = [low] if low == size else [low, size]
        else:
            self._pending_updates = [size]
        self.max_table_size = size
        self._memo.clear()
        self._evict(size)

    def _evict(self, limit):
        table = self._table
        total = self._size
        while total > limit:
            n, v, seq = table.pop()
            total -= len(n) + len(v) + _ENTRY_OVERHEAD
            if self._by_field.get((n, v)) == seq:
                del self._by_field[(n, v)]
            if self._by_name.get(n) == seq:
                del self._by_name[n]
        self._size = total

    def _add(self, name, value):
        if self._memo:
            self._memo.clear()          # the indexes of every entry move
        size = len(name) + len(value) + _ENTRY_OVERHEAD
        if size > self.max_table_size:
            self._evict(0)
            return
        self._evict(self.max_table_size - size)
        seq = self._inserted
        self._inserted = seq + 1
        self._table.insert(0, (name, value, seq))
        self._size += size
        self._by_field[(name, value)] = seq
        self._by_name[name] = seq

    def encode(self, fields, key=None) -> bytes:
        """The header block of an iterable of (name, value) bytes pairs;
        with a key, remembered (see the module docstring)."""
        memo = self._memo
        if self._pending_updates:
            key = None                  # a block that also resizes: not reusable
            out = []
            for size in self._pending_updates:
                out.append(encode_integer(size, 5, 0x20))
            self._pending_updates = []
        else:
            if key is not None:
                block = memo.get(key)
                if block is not None:
                    return block
            out = []
        inserted = self._inserted
        by_field = self._by_field
        static = _STATIC_BY_FIELD
        for field in fields:
            i = static.get(field)
            if i is None:
                i = by_field.get(field)
                if i is None:
                    self._literal(field, out)
                    continue
                i = self._inserted - i + _STATIC_LEN
            out.append(_INDEXED[i] if i < 256 else encode_integer(i, 7, 0x80))
        block = b"".join(out)
        if key is not None and self._inserted == inserted:
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            memo[key] = block
        return block

    def _literal(self, field, out):
        name, value = field
        huffman = self.huffman
        if name in NOT_INDEXED:
            # never added to the table, so always the same bytes: cached
            rep = _NOT_INDEXED_FIELDS.get(field) if huffman else None
            if rep is None:
                i = _STATIC_BY_NAME.get(name, 0)
                rep = _PREFIX_NOT_INDEXED[i] + (b"" if i else _string_literal(name, huffman)) \
                    + _string_literal(value, huffman)
                if huffman and len(value) <= 64:
                    if len(_NOT_INDEXED_FIELDS) >= _LITERALS_MAX:
                        _NOT_INDEXED_FIELDS.clear()
                    _NOT_INDEXED_FIELDS[field] = rep
            out.append(rep)
            return
        i = _STATIC_BY_NAME.get(name)
        if i is None:
            seq = self._by_name.get(name)
            i = 0 if seq is None else self._inserted - seq + _STATIC_LEN
        if name in NEVER_INDEXED:
            out.append(encode_integer(i, 4, 0x10))
            if not i:
                out.append(_string_literal(name, huffman))
            # not cached: a secret stays out of any shared structure
            out.append(_encode_string(value, huffman))
            return
        if len(name) + len(value) > self.max_table_size >> 2:
            out.append(_PREFIX_NOT_INDEXED[i] if i < 256 else encode_integer(i, 4, 0x00))
        else:
            out.append(_PREFIX_INDEXING[i] if i < 256 else encode_integer(i, 6, 0x40))
            self._add(name, value)
        if not i:
            out.append(_string_literal(name, huffman))
        out.append(_string_literal(value, huffman))


# representation prefixes of the indexes below 256, precomputed
_INDEXED = [encode_integer(i, 7, 0x80) for i in range(256)]
_PREFIX_NOT_INDEXED = [encode_integer(i, 4, 0x00) for i in range(256)]
_PREFIX_INDEXING = [encode_integer(i, 6, 0x40) for i in range(256)]
_LITERALS = {}                  # (string, huffman) -> its encoding, for short strings
_NOT_INDEXED_FIELDS = {}        # (name, value) -> its whole representation (Huffman)
_LITERALS_MAX = 4096            # entries; a cache is emptied when full
_MEMO_MAX = 16                  # blocks an Encoder remembers (emptied when full)


def _encode_string(s, huffman):
    """A string literal (section 5.2): Huffman-coded when that is shorter."""
    n = len(s)
    if huffman and n:
        h = huffman_encode(s)
        if len(h) < n:
            return encode_integer(len(h), 7, 0x80) + h
    return (bytes((n,)) if n < 127 else encode_integer(n, 7)) + s


def _string_literal(s, huffman):
    """_encode_string() through a process-wide cache: what we send repeats
    (dates within a second, content lengths, names), and Huffman coding
    costs about 0.1 us per byte in CPython. Only our own output goes in
    (never a secret: NEVER_INDEXED values bypass it)."""
    key = (s, huffman)
    out = _LITERALS.get(key)
    if out is None:
        out = _encode_string(s, huffman)
        if len(s) <= 64:
            if len(_LITERALS) >= _LITERALS_MAX:
                _LITERALS.clear()
            _LITERALS[key] = out
    return out
