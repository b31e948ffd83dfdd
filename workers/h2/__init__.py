"""Sans-IO HTTP/2 for farm (RFC 9113, RFC 7541): no sockets, no event loop.

* frames.py    the frame layer: header, every frame type, padding, checks
* hpack.py     HPACK: static and dynamic tables, Huffman, limits (tables.py: the RFC's data)
* messages.py  RFC 9113 section 8 field rules; HTTP/2 <-> http1.Request/Response
* conn.py      the connection state machine (server and client roles)
* events.py    what conn.H2Connection.receive_data() returns
* errors.py    error codes and exceptions

workers/h2conn.py (client side) and workers/server.py (HTTP/2 servers) put
it on transports; see conn.py's docstring for the calling convention.
"""
