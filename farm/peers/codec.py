"""HAProxy's peers protocol v2.1 on the wire (pure: no I/O).

Facts from HAProxy's doc/peers-v2.0.txt and what HAProxy 2.6 sends:

- a session starts with the connecting side's hello, three lines:
      "HAProxyS 2.1\\n<name of the peer it calls>\\n<its own name> <pid> 1\\n"
  answered by one status line ("200\\n" accepted; 300 try again later,
  501 protocol error, 502 bad version, 503 the called name is not the
  callee's, 504 the caller is not a known peer);
- then both sides send messages: two bytes (class, type), and for a type
  >= 128 an encoded length and that many bytes of payload. Classes:
  0 control (resync request/finished/partial/confirm, heartbeat),
  1 error (protocol, size limit), 10 stick-table messages (update,
  incremental update, table definition, table switch, ack, and the timed
  update variants that carry the entry's remaining lifetime);
- integers are HAProxy's "encoded integers": below 240 one byte; else the
  first byte holds 4 low bits over 0xF0, then 7 bits per byte with the
  high bit meaning "more follows".

Decoding errors raise PeerProtocolError (its str() says what was wrong);
the session answers with a protocol error message and closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROTO_NAME = "HAProxyS"
MAJOR, MINOR = 2, 1

# status codes of the handshake
ST_OK, ST_TRY_AGAIN = 200, 300
ST_ERR_PROTO, ST_ERR_VERSION, ST_ERR_HOST, ST_ERR_PEER = 501, 502, 503, 504
STATUS_TEXT = {
    ST_OK: "accepted", ST_TRY_AGAIN: "try again later", ST_ERR_PROTO: "protocol error",
    ST_ERR_VERSION: "unsupported version", ST_ERR_HOST: "wrong local peer name",
    ST_ERR_PEER: "unknown peer",
}

# message classes and types
CLASS_CONTROL, CLASS_ERROR, CLASS_TABLE, CLASS_RESERVED = 0, 1, 10, 255
CTRL_RESYNC_REQ, CTRL_RESYNC_FINISHED, CTRL_RESYNC_PARTIAL, CTRL_RESYNC_CONFIRM, CTRL_HEARTBEAT = range(5)
ERR_PROTOCOL, ERR_SIZE_LIMIT = 0, 1
T_UPDATE, T_INCUPDATE, T_DEFINE, T_SWITCH, T_ACK, T_UPDATE_TIMED, T_INCUPDATE_TIMED = range(0x80, 0x87)

MAX_MESSAGE = 65536            # payloads above this: size limit error (HAProxy's is its buffer size)
MAX_LINE = 512                 # a hello or status line

# key types on the wire (HAProxy's PEER_KT_*)
KT_SINT, KT_IPV4, KT_IPV6, KT_STR, KT_BIN = 2, 4, 5, 6, 7

# standard value types of the data types
SINT, UINT, ULL, FRQP, DICT = "sint", "uint", "ull", "frqp", "dict"

# HAProxy's data types: numeric id -> (name, standard type, array)
DATA_TYPES: dict[int, tuple[str, str, bool]] = {
    0: ("server_id", SINT, False), 1: ("gpt0", UINT, False), 2: ("gpc0", UINT, False),
    3: ("gpc0_rate", FRQP, False), 4: ("conn_cnt", UINT, False), 5: ("conn_rate", FRQP, False),
    6: ("conn_cur", UINT, False), 7: ("sess_cnt", UINT, False), 8: ("sess_rate", FRQP, False),
    9: ("http_req_cnt", UINT, False), 10: ("http_req_rate", FRQP, False),
    11: ("http_err_cnt", UINT, False), 12: ("http_err_rate", FRQP, False),
    13: ("bytes_in_cnt", ULL, False), 14: ("bytes_in_rate", FRQP, False),
    15: ("bytes_out_cnt", ULL, False), 16: ("bytes_out_rate", FRQP, False),
    17: ("gpc1", UINT, False), 18: ("gpc1_rate", FRQP, False), 19: ("server_key", DICT, False),
    20: ("http_fail_cnt", UINT, False), 21: ("http_fail_rate", FRQP, False),
    22: ("gpt", UINT, True), 23: ("gpc", UINT, True), 24: ("gpc_rate", FRQP, True),
}
TYPE_ID = {name: i for i, (name, _, _) in DATA_TYPES.items()}

U64 = (1 << 64) - 1


class PeerProtocolError(ValueError):
    """Bytes that are not the peers protocol; str() says what was wrong."""


class SizeLimitError(PeerProtocolError):
    """A message longer than MAX_MESSAGE."""


# -- encoded integers ----------------------------------------------------------

def enc_int(n: int) -> bytes:
    """An unsigned 64-bit integer (a negative int is taken modulo 2^64, as
    HAProxy's C conversion does) -> its encoded bytes."""
    n &= U64
    if n < 240:
        return bytes((n,))
    out = bytearray((n & 0xFF | 0xF0,))
    n = (n - 240) >> 4
    while n >= 128:
        out.append(n & 0xFF | 0x80)
        n = (n - 128) >> 7
    out.append(n)
    return bytes(out)


def dec_int(buf, pos: int, end: int) -> tuple[int, int]:
    """The encoded integer at buf[pos:end] -> (value, position after it).
    Raises PeerProtocolError when it is cut or longer than 64 bits."""
    if pos >= end:
        raise PeerProtocolError("encoded integer expected, message ends")
    n = buf[pos]
    pos += 1
    if n >= 240:
        shift = 4
        while True:
            if pos >= end:
                raise PeerProtocolError("encoded integer cut by the end of the message")
            if shift > 63:
                raise PeerProtocolError("encoded integer longer than 64 bits")
            b = buf[pos]
            pos += 1
            n += b << shift
            shift += 7
            if b < 128:
                break
    if n > U64:
        raise PeerProtocolError("encoded integer longer than 64 bits")
    return n, pos


# -- handshake -----------------------------------------------------------------

def hello(remote: str, local: str, pid: int, minor: int = MINOR) -> bytes:
    """The connecting side's hello to peer `remote`, from `local`."""
    return f"{PROTO_NAME} {MAJOR}.{minor}\n{remote}\n{local} {pid} 1\n".encode()


def status(code: int) -> bytes:
    return f"{code}\n".encode()


@dataclass(frozen=True)
class Hello:
    minor: int           # protocol minor version (0: no timed updates)
    called: str          # the name the caller gave us
    caller: str          # its own name


def parse_hello(lines: list[bytes]) -> Hello:
    """The three hello lines (without their LF) -> Hello. Raises
    HandshakeError with the status code to answer."""
    try:
        text = [l.rstrip(b"\r").decode("ascii") for l in lines]
    except UnicodeDecodeError:
        raise HandshakeError(ST_ERR_PROTO, "hello is not ASCII") from None
    proto, _, version = text[0].partition(" ")
    if proto != PROTO_NAME:
        raise HandshakeError(ST_ERR_PROTO, f"not the peers protocol: {text[0][:40]!r}")
    major, dot, minor = version.partition(".")
    if not (dot and major.isdigit() and minor.isdigit()) or int(major) != MAJOR or int(minor) > MINOR:
        raise HandshakeError(ST_ERR_VERSION, f"unsupported version {version[:20]!r}")
    caller = text[2].split(" ")
    if len(caller) < 2 or not caller[0]:
        raise HandshakeError(ST_ERR_PROTO, f"bad hello line {text[2][:60]!r}")
    return Hello(int(minor), text[1], caller[0])


class HandshakeError(PeerProtocolError):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def parse_status(line: bytes) -> int:
    text = line.rstrip(b"\r")
    if not (text.isdigit() and len(text) == 3):
        raise PeerProtocolError(f"bad status line {text[:20]!r}")
    return int(text)


# -- framing -------------------------------------------------------------------

def message(cls: int, typ: int, payload: bytes = b"") -> bytes:
    """One message: a type >= 128 carries a payload (its length encoded)."""
    if typ >= 0x80:
        return bytes((cls, typ)) + enc_int(len(payload)) + payload
    return bytes((cls, typ))


def control(typ: int) -> bytes:
    return bytes((CLASS_CONTROL, typ))


def error(typ: int) -> bytes:
    return bytes((CLASS_ERROR, typ))


def split_messages(buf: bytearray) -> list[tuple[int, int, bytes]]:
    """Take the complete messages at the start of buf (removed from it):
    [(class, type, payload)]. What is left is an incomplete message.
    Raises PeerProtocolError (SizeLimitError for a too long one)."""
    out = []
    pos, n = 0, len(buf)
    while n - pos >= 2:
        cls, typ = buf[pos], buf[pos + 1]
        if cls == CLASS_RESERVED:
            raise PeerProtocolError("message of the reserved class 255")
        if typ < 0x80:
            out.append((cls, typ, b""))
            pos += 2
            continue
        try:
            length, at = dec_int(buf, pos + 2, n)
        except PeerProtocolError:
            if n - pos - 2 >= 10:
                raise
            break                               # the length itself is not all here
        if length > MAX_MESSAGE:
            raise SizeLimitError(f"message of {length} bytes (limit {MAX_MESSAGE})")
        if n - at < length:
            break
        out.append((cls, typ, bytes(buf[at:at + length])))
        pos = at + length
    del buf[:pos]
    return out


# -- stick-table messages ------------------------------------------------------

@dataclass
class TableDef:
    """A table as a definition message describes it.

    table_id is the sender's id for it; key_type one of the KT_* values;
    key_size HAProxy's key size (4 for ipv4 and integer, 16 for ipv6,
    the string length + 1, the binary length); data_types the numeric ids
    stored, in increasing order; periods the rate period (ms) of each
    stored rate (and of gpc_rate arrays); nbelem the length of each stored
    array; expire the table's expire (ms)."""

    table_id: int
    name: str
    key_type: int
    key_size: int
    data_types: tuple[int, ...] = ()
    periods: dict = field(default_factory=dict)
    nbelem: dict = field(default_factory=dict)
    expire: int = 0
    last_update: int = field(default=0, compare=False)   # receiving side: the last update id seen
    refused: str | None = field(default=None, compare=False)  # receiving side: why not applied

    @property
    def unknown_types(self) -> list[int]:
        return [t for t in self.data_types if t not in DATA_TYPES]


def define_msg(d: TableDef) -> bytes:
    name = d.name.encode()
    bits = 0
    params = bytearray()
    for t in sorted(d.data_types):
        bits |= 1 << t
        _, std, array = DATA_TYPES[t]
        if array:
            params += enc_int(t) + enc_int(d.nbelem.get(t, 0))
            if std == FRQP:
                params += enc_int(d.periods.get(t, 0))
        elif std == FRQP:
            params += enc_int(t) + enc_int(d.periods.get(t, 0))
    payload = (enc_int(d.table_id) + enc_int(len(name)) + name + enc_int(d.key_type)
               + enc_int(d.key_size) + enc_int(bits) + enc_int(d.expire) + params)
    return message(CLASS_TABLE, T_DEFINE, payload)


def parse_define(p: bytes) -> TableDef:
    """A definition payload -> TableDef. The parameters after the bit field
    (expire, then per rate or array its id and parameters) are optional,
    as for HAProxy; an array without them is an error."""
    end = len(p)
    table_id, pos = dec_int(p, 0, end)
    nlen, pos = dec_int(p, pos, end)
    if not nlen or pos + nlen > end:
        raise PeerProtocolError("table definition: bad name length")
    try:
        name = p[pos:pos + nlen].decode()
    except UnicodeDecodeError:
        raise PeerProtocolError("table definition: name is not UTF-8") from None
    pos += nlen
    key_type, pos = dec_int(p, pos, end)
    key_size, pos = dec_int(p, pos, end)
    bits, pos = dec_int(p, pos, end)
    types = tuple(i for i in range(64) if bits >> i & 1)
    d = TableDef(table_id, name, key_type, key_size, types)
    if pos < end:
        d.expire, pos = dec_int(p, pos, end)
        for t in types:
            info = DATA_TYPES.get(t)
            if info is None:
                break                     # parameters of a type we do not know: cannot go on
            _, std, array = info
            if not array and std != FRQP:
                continue
            got, pos = dec_int(p, pos, end)
            if got != t:
                raise PeerProtocolError(f"table definition: parameters of data type {got}, expected {t}")
            if array:
                d.nbelem[t], pos = dec_int(p, pos, end)
            if std == FRQP:
                d.periods[t], pos = dec_int(p, pos, end)
    elif any(DATA_TYPES.get(t, ("", "", False))[2] for t in types):
        raise PeerProtocolError("table definition: an array data type without its size")
    return d


def switch_msg(table_id: int) -> bytes:
    return message(CLASS_TABLE, T_SWITCH, enc_int(table_id))


def parse_switch(p: bytes) -> int:
    return dec_int(p, 0, len(p))[0]


def ack_msg(remote_table_id: int, update_id: int) -> bytes:
    return message(CLASS_TABLE, T_ACK, enc_int(remote_table_id) + (update_id & 0xFFFFFFFF).to_bytes(4, "big"))


def parse_ack(p: bytes) -> tuple[int, int]:
    table_id, pos = dec_int(p, 0, len(p))
    if pos + 4 > len(p):
        raise PeerProtocolError("ack: update id missing")
    return table_id, int.from_bytes(p[pos:pos + 4], "big")


@dataclass
class Update:
    """An entry update: the wire key (bytes: raw for ip/ipv6/binary, the
    string's bytes, 4 bytes big-endian for an integer), values by data
    type id (an int; (age ms, current, previous) for a rate; str or None
    for a dictionary entry; a list for an array), update_id when the
    message carried one, expire (ms left) when timed."""

    key: bytes
    values: dict
    update_id: int | None = None
    expire: int | None = None


def update_msg(d: TableDef, u: Update) -> bytes:
    """An update of table d (our definition: the values follow its data
    types, every one present). Timed when u.expire is not None; with its
    id when u.update_id is not None (else incremental)."""
    out = bytearray()
    if u.update_id is not None:
        out += (u.update_id & 0xFFFFFFFF).to_bytes(4, "big")
    if u.expire is not None:
        out += (max(0, u.expire) & 0xFFFFFFFF).to_bytes(4, "big")
    out += _enc_key(d, u.key)
    for t in d.data_types:
        _, std, array = DATA_TYPES[t]
        v = u.values[t]
        for item in (v if array else (v,)):
            if std == FRQP:
                age, cur, prev = item
                out += enc_int(age & 0xFFFFFFFF) + enc_int(cur) + enc_int(prev)
            elif std == DICT:
                if item is None:
                    out += enc_int(0)
                else:                            # id 1, with its value every time
                    raw = item.encode()
                    body = enc_int(1) + enc_int(len(raw)) + raw
                    out += enc_int(len(body)) + body
            else:
                out += enc_int(item)
    typ = {(True, True): T_UPDATE_TIMED, (True, False): T_UPDATE,
           (False, True): T_INCUPDATE_TIMED, (False, False): T_INCUPDATE}[
        (u.update_id is not None, u.expire is not None)]
    return message(CLASS_TABLE, typ, bytes(out))


def _enc_key(d: TableDef, key: bytes) -> bytes:
    if d.key_type == KT_STR:
        return enc_int(len(key)) + key
    if d.key_type == KT_SINT:
        return key[-4:].rjust(4, b"\0")
    return key[:d.key_size].ljust(d.key_size, b"\0")


def parse_update(p: bytes, typ: int, d: TableDef, dict_cache: dict) -> Update:
    """An update payload of message type typ for the remote table d ->
    Update. dict_cache (id -> value) is the session's dictionary of
    server keys, updated here."""
    end = len(p)
    pos = 0
    u = Update(b"", {})
    if typ in (T_UPDATE, T_UPDATE_TIMED):
        if end < 4:
            raise PeerProtocolError("update: id missing")
        u.update_id = int.from_bytes(p[0:4], "big")
        pos = 4
    if typ in (T_UPDATE_TIMED, T_INCUPDATE_TIMED):
        if pos + 4 > end:
            raise PeerProtocolError("update: expire missing")
        u.expire = int.from_bytes(p[pos:pos + 4], "big")
        pos += 4
    if d.key_type == KT_STR:
        n, pos = dec_int(p, pos, end)
        if pos + n > end:
            raise PeerProtocolError("update: string key cut")
        u.key = p[pos:pos + n]
        pos += n
    else:
        n = 4 if d.key_type == KT_SINT else d.key_size
        if pos + n > end:
            raise PeerProtocolError("update: key cut")
        u.key = p[pos:pos + n]
        pos += n
    for t in d.data_types:
        info = DATA_TYPES.get(t)
        if info is None:
            raise PeerProtocolError(f"update: data type {t} unknown")
        _, std, array = info
        items = []
        for _ in range(d.nbelem.get(t, 0) if array else 1):
            if std == FRQP:
                age, pos = dec_int(p, pos, end)
                cur, pos = dec_int(p, pos, end)
                prev, pos = dec_int(p, pos, end)
                items.append((age & 0xFFFFFFFF, cur & 0xFFFFFFFF, prev & 0xFFFFFFFF))
            elif std == DICT:
                items.append(_dec_dict(p, pos, end, dict_cache))
                pos = items[-1][1]
                items[-1] = items[-1][0]
            else:
                v, pos = dec_int(p, pos, end)
                if std == SINT:
                    v &= 0xFFFFFFFF
                    v = v - (1 << 32) if v >= 1 << 31 else v
                elif std == UINT:
                    v &= 0xFFFFFFFF
                items.append(v)
        u.values[t] = items if array else items[0]
    return u


def _dec_dict(p: bytes, pos: int, end: int, cache: dict) -> tuple[str | None, int]:
    n, pos = dec_int(p, pos, end)
    if not n:
        return None, pos
    stop = pos + n
    if stop > end:
        raise PeerProtocolError("update: dictionary entry cut")
    ident, pos = dec_int(p, pos, stop)
    if not ident:
        raise PeerProtocolError("update: dictionary entry id 0")
    if pos == stop:
        return cache.get(ident), stop
    vlen, pos = dec_int(p, pos, stop)
    if pos + vlen > stop:
        raise PeerProtocolError("update: dictionary value cut")
    value = p[pos:pos + vlen].decode("latin-1")
    if len(cache) < 1024 or ident in cache:
        cache[ident] = value
    return value, stop
