"""The PROXY protocol, versions 1 (text) and 2 (binary): parse and build.

Pure: no sockets. The receiving side (workers/ppaccept.py) hands parse()
the bytes at the start of a connection; the sending side (the server
connections, the TCP relay, the health checks) writes what build_v1() or
build_v2() returns before anything else.

Facts from the protocol's specification (HAProxy's doc/proxy-protocol.txt):

- v1 is one US-ASCII line, "PROXY TCP4|TCP6|UNKNOWN src dst sport dport"
  ended by CRLF, at most 107 bytes with the CRLF. Single spaces, no leading
  zeros in IPv4 numbers or ports; with UNKNOWN everything up to the CRLF is
  ignored and the real connection's addresses apply.
- v2 is a 16-byte header (a 12-byte signature, version 2 and a command,
  family and transport, the length of what follows) and that many bytes:
  the addresses, then TLVs (type, 16-bit length, value). LOCAL (health
  checks) and unspecified families mean "use the real connection's
  addresses"; so do the families this proxy does not forward (UDP, unix
  sockets), as the specification allows.
- Detection: the v2 signature, else "PROXY"; anything else is refused
  (the receiver never guesses whether a header is there: the bind says).

parse() is incremental in the simplest way: it is given everything received
so far (from the first byte) and returns NEED_MORE until the header is
complete, a ProxyHeader when it is, or raises ProxyError as soon as the
bytes cannot become a valid header. It never asks for more than
V1_MAX bytes (v1) or max_v2 bytes (v2, bounded below 16 + 65535 so that a
peer cannot make the receiver hold 64 KiB per connection).
"""

from __future__ import annotations

import re
import socket
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX = 107                  # the longest line with its CRLF (UNKNOWN with two IPv6)
V2_HEADER = 16                # signature, ver_cmd, family, length
V2_MAX_DEFAULT = 4096         # whole v2 header accepted by default (HAProxy's buffer bounds it too)
V2_MAX_ABSOLUTE = V2_HEADER + 0xFFFF

# v2 commands and families (ver_cmd low nibble, fam high and low nibbles)
CMD_LOCAL, CMD_PROXY = 0x0, 0x1
AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX = 0x0, 0x1, 0x2, 0x3
PROTO_UNSPEC, PROTO_STREAM, PROTO_DGRAM = 0x0, 0x1, 0x2
_ADDR_LEN = {AF_INET: 12, AF_INET6: 36, AF_UNIX: 216}

# TLV types
PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
PP2_SUBTYPE_SSL_VERSION = 0x21
PP2_SUBTYPE_SSL_CN = 0x22
PP2_SUBTYPE_SSL_CIPHER = 0x23
PP2_SUBTYPE_SSL_SIG_ALG = 0x24
PP2_SUBTYPE_SSL_KEY_ALG = 0x25
PP2_TYPE_NETNS = 0x30
# bits of the SSL TLV's client field
PP2_CLIENT_SSL = 0x01
PP2_CLIENT_CERT_CONN = 0x02
PP2_CLIENT_CERT_SESS = 0x04

UNIQUE_ID_MAX = 128           # the specification's bound on PP2_TYPE_UNIQUE_ID

# HAProxy's log messages for these failures (conn_err_code_str), which the
# receiving side logs as "<frontend>/<bind>: <message>".
PRX_EMPTY = "Connection closed while waiting for PROXY protocol header"
PRX_ABORT = "Connection error while waiting for PROXY protocol header"
PRX_TIMEOUT = "Timeout while waiting for PROXY protocol header"
PRX_TRUNCATED = "Truncated PROXY protocol header received"
PRX_NOT_HDR = "Received something which does not look like a PROXY protocol header"
PRX_BAD_HDR = "Received an invalid PROXY protocol header"
PRX_BAD_PROTO = "Received an unhandled protocol in the PROXY protocol header"
PRX_UNTRUSTED = "PROXY protocol header from a source outside proxy_trusted"

NEED_MORE = None              # what parse() returns until the header is complete


class ProxyError(Exception):
    """The bytes are not a valid PROXY header; str() is the message to log
    (one of the PRX_* texts), detail says what exactly was wrong."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


class SslInfo:
    """The PP2_TYPE_SSL TLV: how the client spoke TLS to the sender."""

    __slots__ = ("client", "verify", "version", "cn", "cipher", "sig_alg", "key_alg")

    def __init__(self, client: int = 0, verify: int = 0, version: str | None = None,
                 cn: str | None = None, cipher: str | None = None, sig_alg: str | None = None,
                 key_alg: str | None = None):
        self.client = client          # PP2_CLIENT_* bits
        self.verify = verify          # 0: the client certificate was verified
        self.version = version        # "TLSv1.3"
        self.cn = cn                  # the client certificate's subject CN
        self.cipher = cipher
        self.sig_alg = sig_alg
        self.key_alg = key_alg

    def __eq__(self, other) -> bool:
        return isinstance(other, SslInfo) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "SslInfo(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


class ProxyHeader:
    """A parsed header.

    version is 1 or 2; length the number of bytes it took on the wire.
    src/dst are address texts ("192.0.2.1", "2001:db8::1") and the ports
    ints, or all None when the real connection's addresses apply (v1
    UNKNOWN, v2 LOCAL, an unspecified or unforwarded family): `local`
    says so. tlvs is every TLV as (type, value) in wire order (v2);
    authority, unique_id, alpn, netns and ssl are the decoded known ones.
    """

    __slots__ = ("version", "length", "local", "src", "src_port", "dst", "dst_port",
                 "tlvs", "authority", "unique_id", "alpn", "netns", "ssl")

    def __init__(self, version: int, length: int, src: str | None = None, src_port: int | None = None,
                 dst: str | None = None, dst_port: int | None = None):
        self.version = version
        self.length = length
        self.local = src is None
        self.src = src
        self.src_port = src_port
        self.dst = dst
        self.dst_port = dst_port
        self.tlvs: list[tuple[int, bytes]] = []
        self.authority: bytes | None = None
        self.unique_id: bytes | None = None
        self.alpn: bytes | None = None
        self.netns: bytes | None = None
        self.ssl: SslInfo | None = None

    def __repr__(self) -> str:
        return (f"ProxyHeader(v{self.version}, {self.src}:{self.src_port} -> "
                f"{self.dst}:{self.dst_port}, {len(self.tlvs)} TLVs)")


# ------------------------------------------------------------------ parsing

def parse(buf: bytes, max_v2: int = V2_MAX_DEFAULT) -> ProxyHeader | None:
    """The header at the start of buf (everything received so far): a
    ProxyHeader once complete (its length says where the payload begins),
    NEED_MORE while a prefix of a valid header, ProxyError otherwise.
    max_v2 bounds a v2 header's total size (16 + its length field)."""
    n = len(buf)
    if n == 0:
        return NEED_MORE
    if buf[0] == 0x0D:
        k = min(n, 12)
        if buf[:k] != V2_SIGNATURE[:k]:
            raise ProxyError(PRX_NOT_HDR, "bad v2 signature")
        return _parse_v2(buf, max_v2)
    if buf[0] == 0x50:            # "P"
        k = min(n, 6)
        if buf[:k] != V1_PREFIX[:k]:
            raise ProxyError(PRX_NOT_HDR, "not 'PROXY '")
        return _parse_v1(buf)
    raise ProxyError(PRX_NOT_HDR, "neither a v1 nor a v2 signature")


_V4_RE = re.compile(rb"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")
_PORT_RE = re.compile(rb"0|[1-9][0-9]{0,4}")
_V6_CHARS = re.compile(rb"[0-9A-Fa-f:.]{2,45}")


def _v1_ipv4(word: bytes) -> str:
    if not _V4_RE.fullmatch(word) or any(int(p) > 255 for p in word.split(b".")):
        raise ProxyError(PRX_BAD_HDR, f"bad IPv4 address {word!r}")
    return word.decode("ascii")


def _v1_ipv6(word: bytes) -> str:
    if not _V6_CHARS.fullmatch(word):
        raise ProxyError(PRX_BAD_HDR, f"bad IPv6 address {word!r}")
    try:
        packed = socket.inet_pton(socket.AF_INET6, word.decode("ascii"))
    except OSError:
        raise ProxyError(PRX_BAD_HDR, f"bad IPv6 address {word!r}") from None
    return socket.inet_ntop(socket.AF_INET6, packed)


def _v1_port(word: bytes) -> int:
    if not _PORT_RE.fullmatch(word) or int(word) > 65535:
        raise ProxyError(PRX_BAD_HDR, f"bad port {word!r}")
    return int(word)


def _parse_v1(buf: bytes) -> ProxyHeader | None:
    lf = buf.find(b"\n", 0, V1_MAX)
    if lf < 0:
        if len(buf) >= V1_MAX:
            raise ProxyError(PRX_BAD_HDR, "no CRLF in the first 107 bytes")
        if buf.find(b"\r", 0, len(buf) - 1) >= 0:
            raise ProxyError(PRX_BAD_HDR, "a CR not followed by LF")
        return NEED_MORE
    if lf == 0 or buf[lf - 1] != 0x0D:
        raise ProxyError(PRX_BAD_HDR, "line ended by a bare LF")
    line = buf[:lf - 1]
    if b"\r" in line:
        raise ProxyError(PRX_BAD_HDR, "a CR inside the line")
    words = line.split(b" ")
    proto = words[1] if len(words) > 1 else b""
    if proto == b"UNKNOWN":
        return ProxyHeader(1, lf + 1)       # the rest of the line is ignored
    if proto not in (b"TCP4", b"TCP6"):
        raise ProxyError(PRX_BAD_PROTO, f"protocol {proto!r}")
    if len(words) != 6:
        raise ProxyError(PRX_BAD_HDR, "not 'PROXY proto src dst sport dport'")
    addr = _v1_ipv4 if proto == b"TCP4" else _v1_ipv6
    return ProxyHeader(1, lf + 1, addr(words[2]), _v1_port(words[4]),
                       addr(words[3]), _v1_port(words[5]))


def _parse_v2(buf: bytes, max_v2: int) -> ProxyHeader | None:
    n = len(buf)
    if n < V2_HEADER:
        if n > 12:
            _v2_check_ver_cmd(buf[12])
        if n > 13:
            _v2_check_family(buf[13])
        return NEED_MORE
    cmd = _v2_check_ver_cmd(buf[12])
    fam = buf[13]
    _v2_check_family(fam)
    total = V2_HEADER + ((buf[14] << 8) | buf[15])
    if total > min(max_v2, V2_MAX_ABSOLUTE):
        raise ProxyError(PRX_BAD_HDR, f"v2 header of {total} bytes, more than the {max_v2} accepted")
    if n < total:
        return NEED_MORE
    family, proto = fam >> 4, fam & 0x0F
    if cmd == CMD_LOCAL:
        # the block (addresses, TLVs) is skipped whatever it holds
        return ProxyHeader(2, total)
    pos = V2_HEADER
    alen = _ADDR_LEN.get(family, 0)
    if total - pos < alen:
        raise ProxyError(PRX_BAD_HDR, f"address block of {total - pos} bytes, {alen} needed")
    if proto == PROTO_STREAM and family in (AF_INET, AF_INET6):
        if family == AF_INET:
            src = socket.inet_ntop(socket.AF_INET, buf[16:20])
            dst = socket.inet_ntop(socket.AF_INET, buf[20:24])
        else:
            src = socket.inet_ntop(socket.AF_INET6, buf[16:32])
            dst = socket.inet_ntop(socket.AF_INET6, buf[32:48])
        sport, dport = struct.unpack_from("!HH", buf, pos + alen - 4)
        hdr = ProxyHeader(2, total, src, sport, dst, dport)
    else:
        # unspecified, UDP or unix sockets: this proxy forwards TCP only, so
        # the real connection's addresses apply (the specification's fallback)
        hdr = ProxyHeader(2, total)
    _parse_tlvs(buf, pos + alen, total, hdr)
    return hdr


def _v2_check_ver_cmd(b: int) -> int:
    if b >> 4 != 2:
        raise ProxyError(PRX_NOT_HDR, f"v2 signature with version {b >> 4}")
    if b & 0x0F not in (CMD_LOCAL, CMD_PROXY):
        raise ProxyError(PRX_BAD_HDR, f"v2 command {b & 0x0F}")
    return b & 0x0F


def _v2_check_family(b: int) -> None:
    if b >> 4 > AF_UNIX or b & 0x0F > PROTO_DGRAM:
        raise ProxyError(PRX_BAD_PROTO, f"v2 family/transport 0x{b:02x}")


def _parse_tlvs(buf: bytes, pos: int, end: int, hdr: ProxyHeader) -> None:
    crc_at = -1
    while pos < end:
        if end - pos < 3:
            raise ProxyError(PRX_BAD_HDR, "truncated TLV")
        t = buf[pos]
        ln = (buf[pos + 1] << 8) | buf[pos + 2]
        start = pos + 3
        pos = start + ln
        if pos > end:
            raise ProxyError(PRX_BAD_HDR, f"TLV 0x{t:02x} longer than the header")
        value = bytes(buf[start:pos])
        hdr.tlvs.append((t, value))
        if t == PP2_TYPE_AUTHORITY:
            hdr.authority = value
        elif t == PP2_TYPE_UNIQUE_ID:
            if ln > UNIQUE_ID_MAX:
                raise ProxyError(PRX_BAD_HDR, f"unique id of {ln} bytes")
            hdr.unique_id = value
        elif t == PP2_TYPE_ALPN:
            hdr.alpn = value
        elif t == PP2_TYPE_NETNS:
            hdr.netns = value
        elif t == PP2_TYPE_SSL:
            hdr.ssl = _parse_ssl(value)
        elif t == PP2_TYPE_CRC32C:
            if ln != 4:
                raise ProxyError(PRX_BAD_HDR, "CRC32C TLV not 4 bytes")
            crc_at = start
    if crc_at >= 0:
        whole = bytearray(buf[:end])
        wanted = int.from_bytes(whole[crc_at:crc_at + 4], "big")
        whole[crc_at:crc_at + 4] = b"\0\0\0\0"
        if crc32c(bytes(whole)) != wanted:
            raise ProxyError(PRX_BAD_HDR, "CRC32C mismatch")


def _parse_ssl(value: bytes) -> SslInfo:
    if len(value) < 5:
        raise ProxyError(PRX_BAD_HDR, "SSL TLV shorter than 5 bytes")
    info = SslInfo(value[0], int.from_bytes(value[1:5], "big"))
    pos, end = 5, len(value)
    while pos < end:
        if end - pos < 3:
            raise ProxyError(PRX_BAD_HDR, "truncated SSL sub-TLV")
        t = value[pos]
        ln = (value[pos + 1] << 8) | value[pos + 2]
        start = pos + 3
        pos = start + ln
        if pos > end:
            raise ProxyError(PRX_BAD_HDR, f"SSL sub-TLV 0x{t:02x} longer than its TLV")
        text = value[start:pos].decode("utf-8", "replace")
        attr = _SSL_SUBTYPES.get(t)
        if attr is not None:
            setattr(info, attr, text)
    return info


_SSL_SUBTYPES = {PP2_SUBTYPE_SSL_VERSION: "version", PP2_SUBTYPE_SSL_CN: "cn",
                 PP2_SUBTYPE_SSL_CIPHER: "cipher", PP2_SUBTYPE_SSL_SIG_ALG: "sig_alg",
                 PP2_SUBTYPE_SSL_KEY_ALG: "key_alg"}


# ----------------------------------------------------------------- building

def _family(src: str, dst: str) -> tuple[int, bytes, bytes]:
    """(AF_INET|AF_INET6, packed src, packed dst); an IPv4 address meets an
    IPv6 one as its v4-mapped form (a dual-stack listener)."""
    v6 = ":" in src or ":" in dst
    if not v6:
        return AF_INET, socket.inet_pton(socket.AF_INET, src), socket.inet_pton(socket.AF_INET, dst)

    def six(a: str) -> bytes:
        if ":" in a:
            return socket.inet_pton(socket.AF_INET6, a.split("%", 1)[0])
        return b"\0" * 10 + b"\xff\xff" + socket.inet_pton(socket.AF_INET, a)
    return AF_INET6, six(src), six(dst)


def build_v1(src: str | None, src_port: int | None, dst: str | None, dst_port: int | None) -> bytes:
    """The v1 line for a TCP connection src:src_port -> dst:dst_port (address
    texts as the socket module gives them); "PROXY UNKNOWN" when either
    address is None."""
    if src is None or dst is None:
        return b"PROXY UNKNOWN\r\n"
    fam, s, d = _family(src, dst)
    if fam == AF_INET:
        return f"PROXY TCP4 {src} {dst} {src_port} {dst_port}\r\n".encode("ascii")
    s6 = socket.inet_ntop(socket.AF_INET6, s)
    d6 = socket.inet_ntop(socket.AF_INET6, d)
    return f"PROXY TCP6 {s6} {d6} {src_port} {dst_port}\r\n".encode("ascii")


def tlv(t: int, value: bytes) -> bytes:
    """One TLV (or SSL sub-TLV) on the wire."""
    if len(value) > 0xFFFF:
        raise ValueError(f"TLV 0x{t:02x} value of {len(value)} bytes")
    return bytes((t, len(value) >> 8, len(value) & 0xFF)) + value


def ssl_tlv(info: SslInfo) -> bytes:
    """The PP2_TYPE_SSL TLV for info (sub-TLVs for the texts that are set)."""
    body = [bytes((info.client,)), info.verify.to_bytes(4, "big")]
    for t, attr in _SSL_SUBTYPES.items():
        v = getattr(info, attr)
        if v is not None:
            body.append(tlv(t, v.encode("utf-8")))
    return tlv(PP2_TYPE_SSL, b"".join(body))


def build_v2(src: str | None, src_port: int | None, dst: str | None, dst_port: int | None,
             tlvs: list[tuple[int, bytes]] | tuple = (), local: bool = False,
             with_crc: bool = False) -> bytes:
    """A v2 header: PROXY TCP over IPv4/IPv6 for src:src_port -> dst:dst_port,
    or LOCAL (health checks: local=True) / PROXY UNSPEC when an address is
    None. tlvs are (type, value) pairs, in that order (a value of type
    PP2_TYPE_SSL is the ready-made body from ssl_tlv()[3:]); with_crc adds a
    CRC32C TLV over the whole header."""
    if local or src is None or dst is None:
        fam_byte, addr = 0x00, b""
    else:
        fam, s, d = _family(src, dst)
        fam_byte = (fam << 4) | PROTO_STREAM
        addr = s + d + struct.pack("!HH", src_port, dst_port)
    body = addr + b"".join(tlv(t, v) for t, v in tlvs)
    if with_crc:
        body += tlv(PP2_TYPE_CRC32C, b"\0\0\0\0")
    if len(body) > 0xFFFF:
        raise ValueError("PROXY v2 header too long")
    head = V2_SIGNATURE + bytes((0x20 | (CMD_LOCAL if local else CMD_PROXY), fam_byte)) \
        + struct.pack("!H", len(body))
    out = head + body
    if with_crc:
        out = out[:-4] + crc32c(out).to_bytes(4, "big")
    return out


# ------------------------------------------------------------------ CRC32c

def _crc32c_table() -> tuple[int, ...]:
    poly = 0x82F63B78             # Castagnoli, reflected (RFC 4960 appendix B)
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32c (Castagnoli) of data: a header's bytes, so a table is fast enough."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
