"""Sending the PROXY protocol: the header a new server connection starts with.

A server with send_proxy = "v1" | "v2" gets, before anything else on each
new connection (before the TLS handshake too, on a TLS server), a header
that describes the client's connection: its source and destination as the
client connection knows them (those of a PROXY header it received, else
the socket's), and for v2 the TLVs the server's send_proxy_tlvs asks for:

  authority  the authority TLV received, else the client's TLS SNI
  unique_id  the unique id TLV received (farm makes none of its own)
  ssl        how the client spoke TLS to farm (version, cipher; ssl_cn adds
             its certificate's CN), or the SSL TLV received on a plain one
  crc32c     a checksum over the whole header

Pooling: such a connection says who its client is, so it can never carry
another client's requests (HAProxy makes these connections private). The
HTTP side keeps it as the client connection's own idle connection
(Stream.server_end, H1Connection.keep_own) instead of the worker's shared
pool: the next request of the same client reuses it, nobody else does.
"""

from __future__ import annotations

import socket

from workers import proxyproto as pp


def client_header(cfg, src: str, src_port: int, sock: socket.socket, proxy=None, tls=None) -> bytes:
    """The header for a connection to the server cfg (model.Server with
    send_proxy set) on behalf of the client src:src_port accepted on sock;
    proxy is the PROXY header that client connection sent (or None), tls
    its TLS transport (or None: plain)."""
    if proxy is not None and not proxy.local:
        dst, dst_port = proxy.dst, proxy.dst_port
    else:
        try:
            local = sock.getsockname()
            dst, dst_port = local[0], local[1]
        except OSError:
            dst = dst_port = None
    if cfg.send_proxy == "v1":
        return pp.build_v1(src, src_port, dst, dst_port)
    tlvs = []
    wanted = cfg.send_proxy_tlvs
    if "authority" in wanted:
        authority = proxy.authority if proxy is not None else None
        if authority is None and tls is not None and tls.sni:
            authority = tls.sni.encode("utf-8")
        if authority:
            tlvs.append((pp.PP2_TYPE_AUTHORITY, authority))
    if "unique_id" in wanted and proxy is not None and proxy.unique_id is not None:
        tlvs.append((pp.PP2_TYPE_UNIQUE_ID, proxy.unique_id))
    if "ssl" in wanted:
        info = _ssl_info(tls, "ssl_cn" in wanted) if tls is not None else (
            proxy.ssl if proxy is not None else None)
        if info is not None:
            tlvs.append((pp.PP2_TYPE_SSL, pp.ssl_tlv(info)[3:]))
    return pp.build_v2(src, src_port, dst, dst_port, tlvs, with_crc="crc32c" in wanted)


def _ssl_info(tls, with_cn: bool) -> pp.SslInfo:
    """The SSL TLV of a TLS client connection (workers/transport.py TlsTransport)."""
    client = pp.PP2_CLIENT_SSL
    cn = None
    if tls.client_cert:
        client |= pp.PP2_CLIENT_CERT_CONN | pp.PP2_CLIENT_CERT_SESS
        if with_cn:
            cn = tls.subject_dn("CN")
    # verify: 0 only for a client certificate that was verified (the spec)
    return pp.SslInfo(client, tls.verify_result if tls.client_cert else 1,
                      tls.protocol, cn, tls.cipher)
