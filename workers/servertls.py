"""TLS to servers, as one worker sees it: per tls server, the contexts to
connect with, the name to send as SNI, and the sessions to resume.

The contexts are the master's (farm/tlsconf.py BackendContexts, made
before the fork); sessions are this worker's own: each keeps, per server
and per server name, the last session the server gave it, and the next
connection there resumes it (an abbreviated handshake: no certificate,
no key exchange with RSA/ECDSA signatures). The connection layers
(workers/server.py for HTTP, workers/tcp.py for TCP) call wrap() once the
TCP connect has completed, drive the transport's handshake(), and hand
the connection back through keep_session() once it may hold a session.

A server whose handshake fails (its certificate does not verify, a name
mismatch, no common protocol) is a failed connection attempt: the
caller retries or answers 503 (termination state SC), and failed() writes
why to the access log, in the shape of HAProxy's connection errors:
"<client>:<port> [<date>] <backend>/<server>: SSL handshake failure (<why>)".
"""

from __future__ import annotations

import re

from farm.logs import connection_error_line
from workers.rules import compile_format
from workers.transport import SSL_HANDSHAKE, ServerTlsTransport


# What SNI may carry (RFC 6066: a DNS host name, ASCII): anything else a
# Host header holds is not sent (and could not be encoded).
_HOSTNAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*")


class ServerTls:
    """The TLS side of one tls server in this worker.

    contexts: the backend's tlsconf.BackendContexts. The SNI is fixed (a
    name, or None for none) unless the backend's sni is a fetch: then
    name_of(stream) evaluates it on each new connection, and idle
    connections are pooled per (server, name) (pool_key) so that a
    request never reuses a connection opened for another name.
    """

    __slots__ = ("contexts", "fixed_name", "fetch", "sessions")

    def __init__(self, contexts) -> None:
        self.contexts = contexts
        settings = contexts.settings
        self.fetch = None
        self.fixed_name = None
        if settings.sni_fetch:
            self.fetch = compile_format("%[" + settings.sni + "]")
        elif settings.sni:
            self.fixed_name = settings.sni
        self.sessions: dict = {}       # server name (None: no SNI) -> ssl.SSLSession

    def name_of(self, stream) -> str | None:
        """The server name to send for stream's request: the fetch's value
        without a port (a Host header's "example.com:8443"), lowercased;
        None when it is empty, an IP address or not a host name (no SNI
        then: verification checks the chain only)."""
        if self.fetch is None:
            return self.fixed_name
        value = self.fetch if self.fetch.__class__ is bytes else self.fetch(stream)
        name = value.decode("latin-1").strip().lower()
        if name.startswith("["):
            return None                      # an IPv6 literal
        name = name.rsplit(":", 1)[0] if ":" in name else name
        name = name.rstrip(".")
        if not name or name.replace(".", "").isdigit() or not _HOSTNAME.fullmatch(name):
            return None                      # an IPv4 address, or not a host name at all
        return name

    def wrap(self, sock, server_name: str | None) -> ServerTlsTransport:
        """A TLS transport over sock (connected), resuming the session kept
        for server_name when there is one."""
        return ServerTlsTransport(sock, self.contexts.context(server_name), server_name,
                                  self.sessions.get(server_name))

    def keep_session(self, t: ServerTlsTransport, data_read: bool = False) -> bool:
        """Keep t's session for the next connection, once the server has
        sent one; True once done (nothing more to keep from t). With
        data_read (application data has been read), this is the last try:
        a TLS 1.3 server sends its tickets right after the handshake,
        before any data, so one that has not sent any by then sends none."""
        sess = t.new_session()
        if sess is not None:
            self.sessions[t.server_name] = sess
        elif data_read:
            t.session_taken = True
        return t.session_taken

    def failed(self, ctx, src: str, src_port: int, accept_time: float, srv, why: str) -> None:
        """A handshake with srv failed: say why in the access log."""
        access = ctx.access
        if access.enabled:
            access.write(connection_error_line(ctx.log_format, src, src_port, accept_time,
                                               srv.backend.name, srv.name,
                                               f"{SSL_HANDSHAKE} ({why})"))


def attach(backends, tls_set) -> None:
    """Give every tls server of backends (BackendRuntime by name) its
    ServerTls, from tls_set's contexts (the master made them)."""
    for be in backends.values():
        contexts = tls_set.backends.get(be.name)
        for srv in be.servers:
            srv.tls = ServerTls(contexts) if srv.cfg.tls and contexts is not None else None
