"""workers/alpnaccept.py: the challenge contexts a worker makes from the
board (one per domain, made again when the board changes), and the
handshake they answer: ALPN acme-tls/1 and the challenge certificate,
over memory BIOs (the socket side is tested against pebble in
tests/integration/test_acme_alpn.py)."""

from __future__ import annotations

import hashlib
import ssl

from cryptography import x509

from farm import acme, challenges
from workers.alpnaccept import _Contexts


def handshake(server_ctx: ssl.SSLContext, name: str, alpn: list[str]) -> tuple[str | None, bytes]:
    """A client handshake against server_ctx in memory: (ALPN, server's DER certificate)."""
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    cctx.set_alpn_protocols(alpn)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = cctx.wrap_bio(c_in, c_out, server_hostname=name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {client: False, server: False}
    for _ in range(10):                  # bounded: a handshake is a few flights
        for side in (client, server):
            if not done[side]:
                try:
                    side.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values())
    return client.selected_alpn_protocol(), client.getpeercert(binary_form=True)


def test_contexts_follow_the_board():
    board = challenges.Board(16384)
    contexts = _Contexts()
    assert contexts.get(board, "a.test") is None
    board.publish_alpn("a.test", acme.alpn_certificate("a.test", "tok.thumb"))
    ctx = contexts.get(board, "a.test")
    assert isinstance(ctx, ssl.SSLContext) and contexts.get(board, "a.test") is ctx
    assert contexts.get(board, "b.test") is None
    chosen, der = handshake(ctx, "a.test", ["acme-tls/1"])
    assert chosen == "acme-tls/1"
    ext = x509.load_der_x509_certificate(der).extensions.get_extension_for_oid(acme.ACME_IDENTIFIER_OID)
    assert ext.critical and ext.value.value == b"\x04\x20" + hashlib.sha256(b"tok.thumb").digest()
    # a new order for the same name: a new certificate, a new context
    board.publish_alpn("a.test", acme.alpn_certificate("a.test", "tok2.thumb"))
    ctx2 = contexts.get(board, "a.test")
    assert ctx2 is not ctx
    board.withdraw_alpn("a.test")
    assert contexts.get(board, "a.test") is None


def test_a_challenge_context_offers_acme_tls_only():
    board = challenges.Board(16384)
    board.publish_alpn("a.test", acme.alpn_certificate("a.test", "k"))
    ctx = _Contexts().get(board, "a.test")
    assert handshake(ctx, "a.test", ["h2", "http/1.1"])[0] is None
