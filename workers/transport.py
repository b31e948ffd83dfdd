"""Transports: the layer that owns a connection's socket.

Everything above a transport (the client connections, the server side)
deals in plaintext bytes and never touches the socket object itself: it
calls recv(), send(), shutdown_write() and close() here. A plain transport
is a thin wrapper over a non-blocking socket; the TLS transport (added with
TLS termination) keeps the same four calls and hides the handshake and the
record layer behind them, so HTTP/1.1, HTTP/2 and the TCP relay run over
either without knowing which.

Conventions of every transport:
- recv() returns the bytes available now (up to RECV_SIZE), b"" at the
  peer's end of stream, or None when nothing can be read yet; a reset or
  another socket error raises OSError.
- send(data) returns how many bytes of data were taken (0 when the socket
  cannot take any now); a broken connection raises OSError. A caller keeps
  what was not taken and offers it again later, the same bytes first.
- wants_write is True when the transport itself needs EPOLLOUT to make
  progress (TLS: a record half written); a plain socket never does.
- shutdown_write() returns True when the connection turned out to be
  gone already (reset by the peer: shutdown(2) says ENOTCONN), so that
  a lingering close has nothing to wait for.
- secure says whether the connection is TLS (what ssl_fc reads).
- proxy is the PROXY protocol header the connection started with
  (workers/proxyproto.py ProxyHeader; what the fc_pp_* fetches read), or
  None.

A TLS transport adds a handshake step before any of that: handshake()
returns True once done, False while it waits (wants_write says for which
event), and raises HandshakeError, whose text is HAProxy's log message
for the failure.
"""

from __future__ import annotations

import _socket
import hashlib
import os
import socket
import ssl
from errno import ENOTCONN as _ENOTCONN    # (the name errno is libc's, transport.pxd)

from farm.tlsconf import dn_oneline, failure_reason

try:
    import cython               # the compiled build: cython.compiled is True
except ImportError:             # pure Python without Cython installed
    from farm import nocython as cython

RECV_SIZE = 65536
_AF_INET, _SOCK_STREAM, _SHUT_WR = int(socket.AF_INET), int(socket.SOCK_STREAM), int(socket.SHUT_WR)
_sock_shutdown = _socket.socket.shutdown     # the plain socket's, past ssl.SSLSocket's

_CLOSED_SOCKET = socket.socket()     # what a closed transport without its own socket shows
_CLOSED_SOCKET.close()


class Transport:
    """What every transport offers (see the module docstring); the base of
    the plain and the TLS transports, so that the layers above call either
    through one interface."""

    __slots__ = ("_sock", "fd", "wants_write", "secure", "established", "bind_name", "proxy")

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self.fd = sock.fileno()
        self.wants_write = False
        self.secure = False         # what ssl_fc reads: TLS or not
        self.established = True     # the handshake is done (a plain one has none)
        self.bind_name = ""         # the listener it came through, for a log line
        self.proxy = None           # the PROXY header received first (workers/ppaccept.py)

    def handshake(self) -> bool:
        """Advance the handshake (TLS); True once done."""
        return True

    def recv(self) -> bytes | None:
        raise NotImplementedError

    def send(self, data: bytes) -> int:
        raise NotImplementedError

    def shutdown_write(self) -> bool:
        raise NotImplementedError

    @property
    def sock(self) -> socket.socket:
        """The socket object. A transport that gave its own up (drop_socket)
        makes it again from the descriptor when something asks (the local
        address of a PROXY header or a dst fetch), and keeps it."""
        sock = self._sock
        if sock is None:
            sock = self._sock = socket.socket(fileno=self.fd)
        return sock

    def drop_socket(self) -> None:
        """Keep the descriptor only (an accepted client's plain transport):
        the socket object is about 90 bytes that an idle keep-alive
        connection would hold for nothing; recv and send use the fd."""
        sock = self._sock
        if sock is not None and sock.fileno() >= 0:
            sock.detach()
            self._sock = None

    def close(self) -> None:
        sock = self._sock
        if sock is None:
            # the descriptor is ours alone (drop_socket); a closed socket
            # object stands in from now on, so a second close is harmless
            self._sock = _CLOSED_SOCKET
            os.close(self.fd)
        else:
            sock.close()

    def local_port(self) -> int:
        return self.sock.getsockname()[1]


class PlainTransport(Transport):
    """A non-blocking TCP socket (client or server side)."""

    __slots__ = ()

    # read(2)/write(2) on the descriptor: the same system calls as the
    # socket's recv/send without their argument parsing, on every request.
    # The pure build calls os.read/os.write. The compiled one calls libc
    # itself (transport.pxd): os.read allocates RECV_SIZE bytes to shrink
    # them after, and both let go of the GIL, which a worker's one thread
    # shares with nobody; a fifth of the cost of a small request was there.
    def recv(self) -> bytes | None:
        if not cython.compiled:
            try:
                return os.read(self.fd, RECV_SIZE)
            except BlockingIOError:
                return None
        while True:
            n = read(self.fd, _RECV_BUF, cython.sizeof(_RECV_BUF))
            if n >= 0:
                p = _RECV_BUF
                return p[0:n]
            if errno == EAGAIN:
                return None
            if errno != EINTR:
                raise OSError(errno, os.strerror(errno))

    def send(self, data: bytes) -> int:
        if not cython.compiled or type(data) is not bytes:
            try:
                return os.write(self.fd, data)
            except BlockingIOError:
                return 0
        p = data
        while True:
            n = write(self.fd, p, len(data))
            if n >= 0:
                return n
            if errno == EAGAIN:
                return 0
            if errno != EINTR:
                raise OSError(errno, os.strerror(errno))

    def shutdown_write(self) -> bool:
        """Send our FIN (half-close); errors mean the peer is gone already.
        True when the connection is reset (ENOTCONN): nothing to linger for."""
        sock = self._sock
        if sock is None:
            # shutdown(2) on the bare descriptor, through a socket object
            # made for the call alone: the family given does not matter to
            # shutdown, and giving it spares the three system calls that
            # finding it out would cost on every lingering close. The C
            # type (_socket.socket): socket.socket adds Python frames to
            # its creation and detach, on every close.
            sock = _socket.socket(_AF_INET, _SOCK_STREAM, 0, self.fd)
            try:
                sock.shutdown(_SHUT_WR)
            except OSError as e:
                return e.errno == _ENOTCONN
            finally:
                sock.detach()
            return False
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            return e.errno == _ENOTCONN
        return False


# HAProxy's messages for connections that failed before a request
# (conn_err_code_str), as its logs print them after "<frontend>/<bind>: ".
SSL_EMPTY = "Connection closed during SSL handshake"
SSL_ABORT = "Connection error during SSL handshake"
SSL_TIMEOUT = "Timeout during SSL handshake"
SSL_CRT_FAIL = "SSL client certificate not trusted"
SSL_HANDSHAKE = "SSL handshake failure"


class HandshakeError(Exception):
    """The TLS handshake failed; str() is HAProxy's message for why."""


class TlsSocket(_socket.socket):
    """An accepted socket that a TLS connection is made over. ssl's C
    layer keeps a weak reference to the socket it reads and writes, which
    the C socket type does not take: the acceptor of a tls bind makes
    this one at once (workers/accept.py), so that one socket object, made
    with one system call (CPython checks a descriptor with getsockname),
    serves both layers."""

    __slots__ = ("__weakref__",)


class TlsTransport(Transport):
    """A server-side TLS connection over a non-blocking socket, with the
    context the master made (farm/tlsconf.py): the same calls as
    PlainTransport once handshake() has returned True.

    - recv() returns the plaintext available now. OpenSSL reads one record
      at a time from the socket (no read-ahead), and anything decrypted
      but not returned yet (pending()) is drained before returning, so
      nothing waits inside OpenSSL for an epoll event that will not come:
      what is not returned is still in the kernel, where level-triggered
      epoll sees it.
    - send() returns 0 while OpenSSL wants to write (the caller keeps its
      bytes and offers the same ones again, with more appended perhaps:
      Python sets SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, and OpenSSL goes on
      from what it had already taken).
    - a peer closing without close_notify (a ragged EOF) reads as EOF.
    - renegotiation is refused by the context (OP_NO_RENEGOTIATION; TLS
      1.3 has none).
    - shutdown_write() sends close_notify, then the TCP FIN.

    The connection is ssl's C object (_ssl._SSLSocket, what
    SSLContext._wrap_socket makes) over the socket itself, without the
    ssl.SSLSocket Python class around them: that class costs, per
    connection, a second socket object over the same descriptor and five
    system calls (getsockopt, getsockname, getpeername and two ioctls
    that set the blocking mode again) plus a dozen Python frames, and its
    do_handshake two more system calls per call. The transport is the
    connection's owner for ssl: the SNI callback gets it (sni is set
    there, and `context` switches the certificate; FrontendContexts).

    The TLS facts the fetches read (protocol, cipher, alpn,
    session_reused, the client certificate) are computed when asked.
    bind_name is the listener it was accepted on, for the log.
    """

    __slots__ = ("_cert", "_ssl", "sni", "__weakref__")

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, bind_name: str = ""):
        if type(sock) is not TlsSocket:
            # not from a tls bind's acceptor: the same descriptor in a
            # socket object ssl can refer to, non-blocking as it was
            family, kind, proto = sock.family, sock.type, sock.proto
            sock = TlsSocket(family, kind, proto, sock.detach())
            sock.setblocking(False)
        Transport.__init__(self, sock)
        self.sni = None             # the SNI callback sets it (ssl_fc_sni)
        self._ssl = context._wrap_socket(sock, True, None, owner=self)
        self.secure = True
        self.established = False
        self.bind_name = bind_name
        self._cert = None

    @property
    def context(self) -> ssl.SSLContext:
        return self._ssl.context

    @context.setter
    def context(self, ctx: ssl.SSLContext) -> None:
        # the SNI callback's certificate choice (SSL_set_SSL_CTX)
        self._ssl.context = ctx

    def handshake(self) -> bool:
        """Advance the handshake: True once done, False while waiting for
        the socket (EPOLLOUT if wants_write, else EPOLLIN). Raises
        HandshakeError."""
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            self.wants_write = False
            return False
        except ssl.SSLWantWriteError:
            self.wants_write = True
            return False
        except OSError as e:      # SSLError (verification too) is an OSError
            raise HandshakeError(self.failure(e)) from None
        self.established = True
        self.wants_write = False
        return True

    def failure(self, e: OSError) -> str:
        """What the log says of a failed client handshake: HAProxy's words."""
        if isinstance(e, ssl.SSLCertVerificationError):
            return SSL_CRT_FAIL
        if isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return SSL_EMPTY
        if isinstance(e, ssl.SSLError):
            return SSL_HANDSHAKE
        return SSL_ABORT

    def recv(self) -> bytes | None:
        conn = self._ssl
        try:
            data = conn.read(RECV_SIZE)
            if data and conn.pending():
                parts = [data]
                while conn.pending():
                    parts.append(conn.read(conn.pending()))
                data = b"".join(parts)
        except ssl.SSLWantReadError:
            return None
        except ssl.SSLWantWriteError:
            self.wants_write = True      # a key update to answer: retried on EPOLLOUT
            return None
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return b""
        self.wants_write = False
        return data

    def send(self, data: bytes) -> int:
        try:
            return self._ssl.write(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0

    def shutdown_write(self) -> bool:
        """close_notify, then FIN; errors mean the peer is gone already.
        True when the connection is reset (ENOTCONN): nothing to linger for."""
        try:
            self._ssl.shutdown()
        except ConnectionError:
            return True     # reset (reading the peer's close_notify): no FIN to send
        except (OSError, ValueError):
            pass        # SSLWantReadError: ours is sent, the peer's not read yet
        try:
            # the plain socket's (ssl.SSLSocket.shutdown would drop the TLS layer)
            _sock_shutdown(self._sock, _SHUT_WR)
        except OSError as e:
            return e.errno == _ENOTCONN
        return False

    # -- what the ssl_fc* / ssl_c_* fetches read -------------------------------

    @property
    def protocol(self) -> str | None:
        return self._ssl.version()

    @property
    def cipher(self) -> str | None:
        c = self._ssl.cipher()
        return c[0] if c else None

    @property
    def alpn(self) -> str | None:
        return self._ssl.selected_alpn_protocol()

    @property
    def session_reused(self) -> bool:
        return self._ssl.session_reused

    def _peer(self) -> tuple[dict, bytes]:
        if self._cert is None:
            der = self._ssl.getpeercert(True) or b""
            self._cert = ((self._ssl.getpeercert(False) or {}) if der else {}, der)
        return self._cert

    @property
    def client_cert(self) -> bool:
        """Whether the client presented a certificate (ssl_c_used)."""
        return bool(self._peer()[1])

    @property
    def verify_result(self) -> int:
        """X509 verify result of the client certificate (ssl_c_verify): a
        certificate that fails verification fails the handshake (verify
        optional or required), so a connection that got this far has 0."""
        return 0

    def subject_dn(self, entry: str | None = None) -> str | None:
        cert = self._peer()[0]
        return dn_oneline(cert["subject"], entry) if cert else None

    def issuer_dn(self, entry: str | None = None) -> str | None:
        cert = self._peer()[0]
        return dn_oneline(cert["issuer"], entry) if cert else None

    @property
    def serial(self) -> bytes | None:
        cert = self._peer()[0]
        if not cert:
            return None
        text = cert.get("serialNumber", "")
        return bytes.fromhex(text if len(text) % 2 == 0 else "0" + text)

    @property
    def sha1(self) -> bytes | None:
        der = self._peer()[1]
        return hashlib.sha1(der).digest() if der else None


class ServerTlsTransport(TlsTransport):
    """A client-side TLS connection to a server (TLS to servers), over a
    socket whose TCP connect has completed: the same calls as TlsTransport.

    server_name is sent as SNI (None: none) and, with verify "required",
    checked against the certificate (the context says). session is a TLS
    session of an earlier connection to the same server to resume (None:
    a full handshake). A failed handshake raises HandshakeError whose
    text says why ("certificate verify failed: ..."), for the log.
    The session to keep for the next connection (new_session()) is ready
    once the server has sent its ticket: right after the handshake in TLS
    1.2, with the first response bytes in TLS 1.3.
    """

    __slots__ = ("server_name", "session_taken")

    def __init__(self, sock: socket.socket, context: ssl.SSLContext,
                 server_name: str | None = None, session=None):
        Transport.__init__(self, context.wrap_socket(sock, server_side=False,
                                                     server_hostname=server_name,
                                                     do_handshake_on_connect=False,
                                                     suppress_ragged_eofs=True,
                                                     session=session))
        self._ssl = self._sock._sslobj
        self.sni = None
        self.secure = True
        self.established = False
        self.server_name = server_name
        self.session_taken = False
        self._cert = None

    def failure(self, e: OSError) -> str:
        """A failed handshake to a server: why, for the log (the
        certificate's fault, the name, the peer's alert)."""
        return failure_reason(e)

    def new_session(self):
        """The session to resume next time, once (None until the server
        sent one, and after it was taken)."""
        if self.session_taken:
            return None
        sess = self._sock.session
        if sess is None or not (sess.has_ticket or self._sock.version() != "TLSv1.3"):
            return None
        self.session_taken = True
        return sess
