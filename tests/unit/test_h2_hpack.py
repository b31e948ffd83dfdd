"""workers/h2/hpack.py: RFC 7541's examples (Appendix C), the Huffman code,
errors, limits against HPACK bombs, and property tests against python-hyper's
hpack as an oracle (encode with one, decode with the other, both ways)."""

import time

import hpack as oracle
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.h2.errors import HeaderListTooLarge, HPACKError
from workers.h2.hpack import (Decoder, Encoder, NEVER_INDEXED, NOT_INDEXED, encode_integer,
                              huffman_decode, huffman_encode, huffman_length)


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", "").replace("\n", ""))


# --------------------------------------------------------------------------
# RFC 7541 Appendix C

def test_c1_integers():
    assert encode_integer(10, 5) == b"\x0a"
    assert encode_integer(1337, 5) == b"\x1f\x9a\x0a"
    assert encode_integer(42, 8) == b"\x2a"


def test_c1_integers_decoded():
    # a table size update carries a 5-bit prefix integer: 1337 then 42
    d = Decoder(max_table_size=4096)
    d.decode(b"\x3f\x9a\x0a" + b"\x20" + b"\x82")
    assert d.max_table_size == 0
    d.max_allowed = 2000
    d.decode(b"\x3f\x9a\x0a\x82")
    assert d.max_table_size == 1337


def test_c2_representations():
    d = Decoder()
    assert d.decode(h("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")) == [
        (b"custom-key", b"custom-header")]
    assert d.table_size == 55
    d = Decoder()
    assert d.decode(h("040c 2f73 616d 706c 652f 7061 7468")) == [(b":path", b"/sample/path")]
    assert d.table_size == 0
    d = Decoder()
    assert d.decode(h("1008 7061 7373 776f 7264 0673 6563 7265 74")) == [
        (b"password", b"secret")]
    assert d.table_size == 0
    assert Decoder().decode(b"\x82") == [(b":method", b"GET")]


REQUESTS = [
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
     (b":authority", b"www.example.com")],
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
     (b":authority", b"www.example.com"), (b"cache-control", b"no-cache")],
    [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
     (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")],
]
C3 = [h("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
      h("8286 84be 5808 6e6f 2d63 6163 6865"),
      h("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65")]
C4 = [h("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
      h("8286 84be 5886 a8eb 1064 9cbf"),
      h("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")]
RESPONSES = [
    [(b":status", b"302"), (b"cache-control", b"private"),
     (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"), (b"location", b"https://www.example.com")],
    [(b":status", b"307"), (b"cache-control", b"private"),
     (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"), (b"location", b"https://www.example.com")],
    [(b":status", b"200"), (b"cache-control", b"private"),
     (b"date", b"Mon, 21 Oct 2013 20:13:22 GMT"), (b"location", b"https://www.example.com"),
     (b"content-encoding", b"gzip"),
     (b"set-cookie", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")],
]
C5 = [b"\x48\x03302\x58\x07private\x61\x1dMon, 21 Oct 2013 20:13:21 GMT"
      b"\x6e\x17https://www.example.com",
      h("4803 3330 37c1 c0bf"),
      h("88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d"
        "54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049"
        "5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e"
        "3d31")]
C6 = [h("4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6"
        "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"),
      h("4883 640e ffc1 c0bf"),
      h("88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab"
        "77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f"
        "9587 3160 65c0 03ed 4ee5 b106 3d50 07")]


@pytest.mark.parametrize("blocks", [C3, C4], ids=["C.3", "C.4-huffman"])
def test_c3_c4_requests(blocks):
    d = Decoder()
    sizes = []
    for block, expected in zip(blocks, REQUESTS):
        assert d.decode(block) == expected
        sizes.append(d.table_size)
    assert sizes == [57, 110, 164]


@pytest.mark.parametrize("blocks", [C5, C6], ids=["C.5", "C.6-huffman"])
def test_c5_c6_responses_with_eviction(blocks):
    d = Decoder(max_table_size=256)
    sizes = []
    for block, expected in zip(blocks, RESPONSES):
        assert d.decode(block) == expected
        sizes.append(d.table_size)
    assert sizes == [222, 222, 215]


def test_c4_huffman_strings():
    assert huffman_encode(b"www.example.com") == h("f1e3 c2e5 f23a 6ba0 ab90 f4ff")
    assert huffman_encode(b"no-cache") == h("a8eb 1064 9cbf")
    assert huffman_decode(h("25a8 49e9 5ba9 7d7f")) == b"custom-key"


# --------------------------------------------------------------------------
# Huffman

_OR = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def test_huffman_every_byte():
    data = bytes(range(256)) * 3
    assert huffman_decode(huffman_encode(data)) == data
    assert huffman_encode(data) == _OR.encode(data)
    assert huffman_length(data) == len(huffman_encode(data))
    assert huffman_encode(b"") == b"" and huffman_decode(b"") == b""


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_huffman_against_oracle(data):
    enc = huffman_encode(data)
    assert enc == _OR.encode(data)
    assert huffman_decode(enc) == data
    assert huffman_length(data) == len(enc)


@pytest.mark.parametrize("bad", [
    b"\xff\xff\xff\xff",            # EOS (30 ones) inside the string
    b"\xff",                        # 8 bits of padding
    b"\x18",                        # 'a' then padding 000 (not EOS's prefix)
    b"\x1f\xff",                    # 'a' then 11 bits of ones
], ids=["eos", "padding-8-bits", "padding-zeros", "padding-11-bits"])
def test_huffman_errors(bad):
    with pytest.raises(HPACKError):
        huffman_decode(bad)


# --------------------------------------------------------------------------
# decoder errors

@pytest.mark.parametrize("block", [
    b"\xff",                        # indexed, truncated integer
    b"\xff\x80\x80\x80\x80\x80\x80",  # integer over 2**32 / too long
    b"\x80",                        # index 0
    b"\xbe",                        # index 62, empty dynamic table
    b"\x40",                        # literal without its name length (h2spec 4.3)
    b"\x40\x05ab",                  # truncated name
    b"\x41\x8a\xff",                # truncated Huffman value
    b"\x41\x81\xff",                # value that is EOS padding only, over 7 bits
    b"\x3f\xe2\x1f",                # table size update above 4096
    b"\x82\x20",                    # table size update after a field
], ids=["truncated-int", "huge-int", "index-0", "index-out", "no-name-length",
        "truncated-name", "truncated-value", "bad-huffman", "size-over", "size-after-field"])
def test_decoder_errors(block):
    with pytest.raises(HPACKError):
        Decoder().decode(block)


def test_size_update_required_after_lowering():
    d = Decoder()
    d.decode(b"\x40\x01a\x01b")             # an entry in a 4096 table
    d.set_max_allowed(0)                     # our SETTINGS went down, acked
    with pytest.raises(HPACKError):
        d.decode(b"\x82")
    d = Decoder()
    d.decode(b"\x40\x01a\x01b")
    d.set_max_allowed(0)
    assert d.decode(b"\x20\x82") == [(b":method", b"GET")]
    assert d.table_size == 0


def test_size_update_evicts():
    d = Decoder()
    d.decode(b"\x40\x01a\x01b" + b"\x40\x01c\x01d")
    assert d.table_size == 68
    d.decode(b"\x3f\x06\x82")               # size 37: only the newest entry stays
    assert d.table_size == 34
    assert d.decode(b"\xbe") == [(b"c", b"d")]
    with pytest.raises(HPACKError):
        d.decode(b"\xbf")


def test_entry_larger_than_table_empties_it():
    d = Decoder(max_table_size=64)
    d.decode(b"\x40\x01a\x01b")
    d.decode(b"\x40\x01x" + bytes((100,)) + b"y" * 100)
    assert d.table_size == 0


# --------------------------------------------------------------------------
# limits (HPACK bombs)

def test_header_list_too_large_keeps_the_context():
    d = Decoder(max_header_list_size=1000)
    big = b"v" * 2000
    block = b"\x40\x03big" + encode_integer(len(big), 7) + big   # indexed: into the table
    with pytest.raises(HeaderListTooLarge):
        d.decode(block)
    # the entry was inserted all the same: the next block can refer to it
    d.max_header_list_size = 10000
    assert d.decode(b"\xbe") == [(b"big", big)]


def test_too_many_fields():
    d = Decoder(max_fields=10)
    with pytest.raises(HeaderListTooLarge):
        d.decode(b"\x82" * 11)              # fast path (one-byte indexes)
    with pytest.raises(HeaderListTooLarge):
        d.decode(b"\x82" * 10 + b"\x00\x01a\x01b")   # general path
    assert len(d.decode(b"\x82" * 10)) == 10


def test_bomb_of_references_is_bounded():
    """One 4 KB entry referenced by thousands of one-byte indexes: decoding
    stops growing the list at the limit and ends quickly."""
    d = Decoder(max_header_list_size=65536, max_fields=100000)
    value = b"x" * 4000
    d.decode(b"\x40\x01b" + encode_integer(len(value), 7) + value)
    for block in (b"\xbe" * 16000, b"\x82" + b"\xbe" * 16000):   # fast and general paths
        t = time.perf_counter()
        with pytest.raises(HeaderListTooLarge):
            d.decode(block)
        assert time.perf_counter() - t < 1.0


def test_huge_huffman_literal_refused():
    d = Decoder(max_header_list_size=100)
    block = b"\x00\x01a" + encode_integer(200, 7, 0x80) + b"\xa0" * 200
    with pytest.raises(HPACKError):
        d.decode(block)


def test_table_never_exceeds_the_allowed_size():
    d = Decoder(max_table_size=4096)
    for i in range(500):
        d.decode(b"\x40\x05k%04d" % i + b"\x20" + b"v" * 32)
        assert d.table_size <= 4096


# --------------------------------------------------------------------------
# encoder

def test_encoder_indexes_repeats():
    e = Encoder()
    fields = [(b":status", b"200"), (b"content-type", b"text/html"), (b"server", b"farm")]
    first = e.encode(fields)
    assert e.encode(fields) == b"\x88\xbf\xbe"   # static, then two dynamic references
    d = Decoder()
    assert d.decode(first) == fields and d.decode(b"\x88\xbf\xbe") == fields


def test_encoder_never_indexes_secrets_and_skips_volatile_fields():
    e = Encoder()
    for name in NEVER_INDEXED:
        block = e.encode([(name, b"secret-value")])
        assert block[0] & 0xF0 == 0x10, name
    for name in (b"content-length", b"date", b":path"):
        assert name in NOT_INDEXED
        block = e.encode([(name, b"12345")])
        assert block[0] & 0xF0 == 0x00, name
    assert e._size == 0
    d = oracle.Decoder()
    out = d.decode(Encoder().encode([(b"authorization", b"Basic xyz")]), raw=True)
    assert out == [(b"authorization", b"Basic xyz")]
    assert isinstance(out[0], oracle.NeverIndexedHeaderTuple)


def test_encoder_table_size_updates():
    e = Encoder()
    d = Decoder()
    e.encode([(b"x-a", b"1")])
    e.set_max_table_size(0)
    e.set_max_table_size(100)
    block = e.encode([(b"x-b", b"2")])
    assert block[:2] == b"\x20\x3f" and block[2] == 100 - 31     # 0 then 100
    d.decode(b"\x40\x03x-a\x011")
    assert d.decode(block) == [(b"x-b", b"2")]
    assert d.table_size == 36


def test_encoder_cap_below_default():
    e = Encoder(max_table_size=256)
    block = e.encode([(b":method", b"GET")])
    assert block[:1] == b"\x3f"                 # announces 256
    d = Decoder()
    assert d.decode(block) == [(b":method", b"GET")] and d.max_table_size == 256


def test_encoder_remembers_a_keyed_block_while_the_table_is_unchanged():
    """encode(fields, key): a block that left the table as it was comes
    back for the same key, the very bytes a fresh encoding gives; any
    insertion or size change forgets it."""
    e, d = Encoder(), Decoder()
    head = [(b":status", b"200"), (b"server", b"nginx"), (b"content-length", b"3")]
    first = e.encode(head, b"k")                 # adds server: not remembered
    assert d.decode(first) == head
    second = e.encode(head, b"k")                # all indexed or not-indexed literals
    assert d.decode(second) == head and len(second) < len(first)
    assert e.encode(head, b"k") is second        # remembered
    assert e.encode(head) == second              # what the full encoding gives
    e.encode([(b"x-new", b"1")])                 # an insertion moves the indexes
    assert d.decode(b"\x40\x05x-new\x011") == [(b"x-new", b"1")]
    third = e.encode(head, b"k")
    assert third is not second and d.decode(third) == head
    assert e.encode(head, b"k") is third
    e.set_max_table_size(2048)                   # a size update: never remembered
    block = e.encode(head, b"k")
    assert block[:1] != third[:1] and d.decode(block) == head
    assert e.encode(head, b"k") == e.encode(head)


# --------------------------------------------------------------------------
# against the oracle, both ways

NAMES = st.sampled_from([b":path", b":authority", b"accept", b"cookie", b"user-agent",
                         b"x-custom", b"content-length", b"date", b"set-cookie",
                         b"authorization", b"etag"]) | st.binary(min_size=1, max_size=20).map(
    lambda b: bytes(c % 26 + 97 for c in b))
VALUES = st.binary(max_size=100) | st.sampled_from([b"", b"gzip, deflate", b"/", b"200"])
LISTS = st.lists(st.lists(st.tuples(NAMES, VALUES), max_size=15), min_size=1, max_size=8)
SIZES = st.sampled_from([0, 64, 256, 4096])


@settings(max_examples=150, deadline=None, database=None)
@given(LISTS, st.booleans(), SIZES)
def test_oracle_encodes_we_decode(lists, huffman, size):
    enc = oracle.Encoder()
    dec = Decoder(max_header_list_size=1 << 20)
    if size != 4096:
        enc.header_table_size = size
    for fields in lists:
        block = enc.encode(fields, huffman=huffman)
        assert dec.decode(block) == fields
        assert dec.table_size == enc.header_table._current_size


@settings(max_examples=150, deadline=None, database=None)
@given(LISTS, st.booleans(), SIZES)
def test_we_encode_oracle_decodes(lists, huffman, size):
    enc = Encoder(huffman=huffman)
    dec = oracle.Decoder(max_header_list_size=1 << 20)
    if size != 4096:
        enc.set_max_table_size(size)
    for fields in lists:
        block = enc.encode(fields)
        assert [tuple(f) for f in dec.decode(block, raw=True)] == fields
        assert dec.header_table._current_size == enc._size


@settings(max_examples=100, deadline=None, database=None)
@given(LISTS, st.booleans())
def test_we_encode_we_decode(lists, huffman):
    enc = Encoder(huffman=huffman)
    dec = Decoder(max_header_list_size=1 << 20)
    for fields in lists:
        assert dec.decode(enc.encode(fields)) == fields
