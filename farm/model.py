"""The configuration model: frozen dataclasses, types only, no I/O.

farm/loader.py builds these from TOML; everything else (master, workers,
stats) reads them. Every value is already validated and normalised:
durations are float seconds, sizes are int bytes, addresses are parsed.
Names the loader validates against (balance algorithms, modes, log formats)
live here so that farm/ never has to import workers/.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

MODES = ("http", "tcp")
LOG_FORMATS = ("json", "httplog", "tcplog")
# -- [log] syslog targets (issue 5, Logs) --
SYSLOG_FORMATS = ("rfc3164", "rfc5424")
# Facility names as HAProxy spells them; the syslog code is the index (local0 = 16).
SYSLOG_FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
    "uucp", "cron", "auth2", "ftp", "ntp", "audit", "alert", "cron2",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)
# -- end [log] syslog targets --
HASH_TYPES = ("map-based", "consistent")
# Balance algorithms by config name. The hashing ones (source, uri,
# url_param, hdr) share one hashing balancer and differ by key extraction.
BALANCE_ALGORITHMS = (
    "roundrobin", "static-rr", "leastconn", "first", "random",
    "source", "uri", "url_param", "hdr",
)
# Algorithms that take an argument in parentheses: hdr(Host), url_param(id).
BALANCE_WITH_ARG = ("url_param", "hdr")
# Algorithms that need an HTTP request for their key.
BALANCE_HTTP_ONLY = ("uri", "url_param", "hdr")
HASHING_ALGORITHMS = ("source", "uri", "url_param", "hdr")
CHECK_TYPES = ("tcp", "http")
# PROXY protocol to servers: the versions, and the v2 TLVs a server may get
# (HAProxy's proxy-v2-options): authority (the client's SNI, or the one
# received), unique_id (the one received), ssl (how the client spoke TLS),
# ssl_cn (with ssl: the client certificate's CN), crc32c (a checksum)
SEND_PROXY_VERSIONS = ("v1", "v2")
SEND_PROXY_TLVS = ("authority", "unique_id", "ssl", "ssl_cn", "crc32c")
# How a server's host name becomes an address at start and reload
# (HAProxy's init-addr methods, tried in order): "libc" asks the system
# resolver, "none" starts the server without an address, in maintenance
# until the runtime API sets one.
INIT_ADDR_METHODS = ("libc", "none")
COOKIE_MODES = ("insert", "rewrite", "prefix")
# -- TLS (issue 14) --
# Protocol versions as HAProxy's ssl-min-ver and ssl_fc_protocol spell them.
TLS_VERSIONS = ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
CLIENT_VERIFY = ("none", "optional", "required")    # client certificates on a bind
SERVER_VERIFY = ("none", "required")                # a server's certificate
# TLS 1.2 and below: ECDHE key exchange and AEAD ciphers only (OpenSSL
# syntax). TLS 1.3 suites: None keeps OpenSSL's default, which is already
# AEAD only (TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256,
# TLS_AES_128_GCM_SHA256).
DEFAULT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
DEFAULT_ALPN = ("h2", "http/1.1")
# -- end TLS --


@dataclass(frozen=True)
class Address:
    """A host:port to bind or connect to. host is a literal IP or a name."""

    host: str
    port: int
    family: int = socket.AF_INET

    def sockaddr(self) -> tuple:
        """The tuple socket.bind/connect expect for this family."""
        if self.family == socket.AF_INET6:
            return (self.host, self.port, 0, 0)
        return (self.host, self.port)

    def __str__(self) -> str:
        if self.family == socket.AF_INET6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Bind:
    """One listening address of a frontend and how it listens.

    name is HAProxy's bind name as the logs show it ("<frontend>/<name>");
    the loader sets it to the bind's 1-based position in its frontend
    (HAProxy's listener id) unless the config names it. accept_proxy:
    every connection starts with a PROXY protocol header (v1 or v2),
    whose addresses replace the socket's (HAProxy's accept-proxy).
    transparent: the socket binds even where the address is not (yet) the
    node's own, as the backup node of an HA pair does with the virtual
    address (IP_FREEBIND, plus IP_TRANSPARENT where permitted: HAProxy's
    transparent).
    """

    address: Address
    tls: bool = False
    name: str = ""
    accept_proxy: bool = False
    transparent: bool = False

    def __str__(self) -> str:
        return str(self.address)


@dataclass(frozen=True)
class FrontendH2:
    """[frontends.NAME.h2]: what farm advertises to HTTP/2 clients and
    holds them to (HAProxy's tune.h2.fe.* and tune.http.maxhdr)."""
    max_concurrent_streams: int = 100
    initial_window_size: int = 65535     # per stream, as SETTINGS_INITIAL_WINDOW_SIZE
    max_frame_size: int = 16384          # SETTINGS_MAX_FRAME_SIZE
    header_table_size: int = 4096        # our HPACK decoder's table (SETTINGS_HEADER_TABLE_SIZE)
    max_header_fields: int = 100         # fields in one request's header list


@dataclass(frozen=True)
class FrontendTls:
    """[frontends.NAME.tls]: TLS termination on the frontend's tls binds.

    certificates are absolute paths of PEM files (certificate, chain and
    key; a key may also sit in FILE.key) or directories of them, in the
    config's order: SNI picks among them, the first is the default.
    ciphersuites None = OpenSSL's TLS 1.3 default. client_ca is required
    when verify is not "none".
    """

    certificates: tuple[str, ...]
    alpn: tuple[str, ...] = DEFAULT_ALPN
    min_version: str = "TLSv1.2"           # see TLS_VERSIONS
    ciphers: str = DEFAULT_CIPHERS
    ciphersuites: str | None = None
    client_ca: str | None = None
    verify: str = "none"                   # see CLIENT_VERIFY
    session_tickets: bool = True
    acme: str | None = None                # the [acme.NAME] that gets this frontend a certificate
    domains: tuple[str, ...] = ()          # the names of that certificate (with acme)
    domains_from_rules: bool = False       # domains came from the routing rules (not written)


ACME_KEY_TYPES = ("ecdsa-p256", "rsa-2048")
ACME_CHALLENGES = ("http-01", "tls-alpn-01")
ACME_STORAGE = "/var/lib/farm/acme"


@dataclass(frozen=True)
class Acme:
    """[acme.NAME]: an account on an ACME server (RFC 8555) that gets
    certificates for the frontends whose tls table says acme = "NAME".

    directory_ca None = the system's trust store verifies the ACME server.
    account_key None = STORAGE/NAME.account.key (created if missing).
    renew_before None = when a third of the certificate's lifetime is left.
    Certificates are kept in storage as FRONTEND.pem (0600).
    """

    name: str
    directory: str
    directory_ca: str | None = None
    contact: tuple[str, ...] = ()
    account_key: str | None = None
    key_type: str = "ecdsa-p256"           # see ACME_KEY_TYPES
    storage: str = ACME_STORAGE
    challenge: str = "http-01"             # see ACME_CHALLENGES
    renew_before: float | None = None      # seconds
    line: int = 0

    def account_key_path(self) -> str:
        return self.account_key or f"{self.storage}/{self.name}.account.key"

    def certificate_path(self, frontend: str) -> str:
        """Where the certificate (chain and key) of `frontend` is kept."""
        return f"{self.storage}/{frontend}.pem"

    def waiting_path(self, frontend: str) -> str:
        """The self-signed certificate served until the first one arrives."""
        return f"{self.storage}/{frontend}.self-signed.pem"


@dataclass(frozen=True)
class BackendTls:
    """[backends.NAME.tls]: TLS to the backend's servers with tls = true.

    ca None = the system's trust store. sni is a fixed host name, or a
    sample fetch (sni_fetch True) evaluated per connection, such as
    req.hdr(host); None sends no SNI. cert (and key, unless the key is in
    cert's file) is a client certificate for mutual TLS.
    """

    verify: str = "required"               # see SERVER_VERIFY
    ca: str | None = None
    sni: str | None = None
    sni_fetch: bool = False
    alpn: tuple[str, ...] = ()
    min_version: str = "TLSv1.2"
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class Timeouts:
    """All timeouts in seconds; 0 means no timeout."""

    connect: float = 5.0
    client: float = 30.0
    server: float = 30.0
    http_request: float = 10.0
    http_keep_alive: float = 10.0
    queue: float = 5.0
    tunnel: float = 0.0   # 0 = unset: client/server timeouts apply (HAProxy)
    check: float = 0.0  # 0: health checks use min(connect, interval)


@dataclass(frozen=True)
class Global:
    workers: int = 1                 # "auto" is resolved by the loader
    maxconn: int = 100000
    user: str | None = None
    group: str | None = None
    admin_socket: str | None = None
    hard_stop_after: float = 30.0
    pidfile: str | None = None
    state_file: str | None = None
    node: str = ""                   # "" = the host name


@dataclass(frozen=True)
class LogConfig:
    events: str = "stderr"           # "stderr" | file path
    access: str = "off"              # "off" | "stdout" | file path | "udp://H:P" | "unix:///PATH"
    format: str = "json"             # see LOG_FORMATS
    level: str = "info"
    # -- syslog targets (issue 5, Logs): used when access is udp:// or unix:// --
    syslog_format: str = "rfc3164"   # see SYSLOG_FORMATS
    facility: str = "local0"         # see SYSLOG_FACILITIES
    tag: str = "farm"                # the syslog tag / APP-NAME
    hostname: str = ""               # "": none in rfc3164, the system's in rfc5424
    # -- end syslog targets --


@dataclass(frozen=True)
class Stats:
    bind: Address | None = None
    uri: str = "/"
    refresh: float = 10.0
    auth: tuple[str, str] | None = None   # (user, password) for basic auth
    admin: bool = False


@dataclass(frozen=True)
class Condition:
    """An `if`/`unless` guard as written; validated by the loader through
    farm/conditions.py and compiled by workers/rules.py.

    text is the condition source, negate is True for `unless`.
    """

    text: str
    negate: bool = False


@dataclass(frozen=True)
class Rule:
    """One http_request / http_response entry.

    action is the verb ("deny", "set-header", ...); params holds the other
    keys of the TOML table, validated per action by the loader.
    """

    action: str
    params: tuple[tuple[str, object], ...] = ()
    cond: Condition | None = None
    line: int = 0

    def param(self, key: str, default: object = None) -> object:
        for k, v in self.params:
            if k == key:
                return v
        return default


@dataclass(frozen=True)
class UseBackend:
    backend: str
    cond: Condition | None = None
    line: int = 0


@dataclass(frozen=True)
class Acl:
    """A named ACL: one or more `fetch [flags] values` lines OR-ed together."""

    name: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Balance:
    algorithm: str = "roundrobin"    # see BALANCE_ALGORITHMS
    arg: str | None = None           # hdr(NAME) / url_param(NAME)
    options: tuple[str, ...] = ()    # e.g. ("path-only",) or ("whole",) for uri
    hash_type: str = "map-based"     # see HASH_TYPES

    def __str__(self) -> str:
        text = self.algorithm + (f"({self.arg})" if self.arg else "")
        return " ".join((text,) + self.options)


@dataclass(frozen=True)
class Check:
    """Health check settings of a backend (applied to each server with check)."""

    type: str | None = None          # None: no checks; "tcp" | "http"
    method: str = "GET"
    path: str = "/"
    host: str | None = None
    expect_status: tuple[int, int] = (200, 399)
    expect_body: str | None = None
    interval: float = 2.0
    fastinter: float = 0.0           # 0 = interval
    downinter: float = 0.0           # 0 = interval
    timeout: float = 0.0             # 0 = min(connect timeout, interval)
    rise: int = 2
    fall: int = 3
    port: int | None = None
    observe: bool = False            # passive health from live traffic
    error_limit: int = 10            # consecutive live errors counted as a failed check
    tls: bool | None = None          # None: TLS for a tls server unless port is set (Backend.check_tls)
    send_proxy: bool | None = None   # None: as the server's send_proxy unless port is set (Backend.check_send_proxy)
    proto: str | None = None         # "h1" | "h2" (SERVER_PROTOS) of an http check; None: the server's (Backend.check_proto)


@dataclass(frozen=True)
class Cookie:
    name: str
    mode: str = "insert"             # see COOKIE_MODES
    indirect: bool = False
    nocache: bool = False
    httponly: bool = False
    secure: bool = False
    domain: str | None = None
    maxidle: float = 0.0


@dataclass(frozen=True)
class Server:
    name: str
    address: Address
    weight: int = 1
    backup: bool = False
    maxconn: int = 0                 # 0 = unlimited
    check: bool = True               # checked when the backend has a check type
    cookie: str | None = None        # value for cookie persistence; default = name
    disabled: bool = False           # starts in maintenance
    slowstart: float = 0.0
    init_addr: tuple[str, ...] = ("libc",)   # see INIT_ADDR_METHODS; unused for an IP literal
    tls: bool = False                # speak TLS to it ([backends.NAME.tls] settings)
    send_proxy: str | None = None    # "v1" | "v2": a PROXY header first on each connection
    send_proxy_tlvs: tuple[str, ...] = ()   # v2 TLVs to add (SEND_PROXY_TLVS)
    proto: str = "h1"                # "h1" | "h2" (SERVER_PROTOS): HTTP/2 to it, streams multiplexed
    id: int = 0                      # HAProxy's sid: `id`, else the lowest free from 1 (the position)
    line: int = 0


# What a server speaks (HAProxy's `server ... proto h2`): HTTP/1.1, or
# HTTP/2 with prior knowledge (over TLS, ALPN offers h2).
SERVER_PROTOS = ("h1", "h2")


# HAProxy's stick rules: stick match, stick store-request, stick
# store-response (stick on is a match and a store-request)
STICK_KINDS = ("match", "store-request", "store-response")


@dataclass(frozen=True)
class StickRule:
    """One persistence rule of a backend (HAProxy's `stick match|on|
    store-request|store-response KEY [table T] [if|unless COND]`): kind is
    one of STICK_KINDS, key the sample fetch, table the table's name (its
    store has server_id), cond the optional guard (a store-response's is
    evaluated on the response)."""

    kind: str
    key: str
    table: str = ""
    cond: Condition | None = None
    line: int = 0


@dataclass(frozen=True)
class Backend:
    name: str
    mode: str = "http"
    balance: Balance = field(default_factory=Balance)
    servers: tuple[Server, ...] = ()
    retries: int = 3
    redispatch: bool = True
    timeouts: Timeouts = field(default_factory=Timeouts)
    check: Check = field(default_factory=Check)
    cookie: Cookie | None = None
    http_request: tuple[Rule, ...] = ()
    http_response: tuple[Rule, ...] = ()
    acl: tuple[Acl, ...] = ()
    option_forwardfor: bool = False
    forwarded: bool = False
    http_reuse: str = "safe"         # "never" | "safe" | "always"
    errorfiles: tuple[tuple[int, str], ...] = ()
    tls: BackendTls = field(default_factory=BackendTls)
    stick: tuple[StickRule, ...] = ()   # stick-table persistence, in file order
    id: int = 0                      # 1-based (HAProxy's iid)
    line: int = 0

    def server(self, name: str) -> Server | None:
        for s in self.servers:
            if s.name == name:
                return s
        return None

    def check_tls(self, server: Server) -> bool:
        """Whether server's health checks speak TLS: check.tls when set,
        else yes for a tls server checked on its own port (no check.port)."""
        if self.check.tls is not None:
            return self.check.tls
        return server.tls and self.check.port is None

    def check_proto(self, server: Server) -> str:
        """The protocol of server's HTTP checks ("h1" or "h2"): check.proto
        when set, else the server's own proto (HAProxy's check-proto, which
        follows the server's proto)."""
        return self.check.proto or server.proto

    def check_send_proxy(self, server: Server) -> str | None:
        """The PROXY protocol version server's health checks send, or None:
        with check.send_proxy = true the server's version (v1 if it sends
        none), false none; unset, HAProxy's default: the server's own
        send_proxy when checks go to its own port (no check.port)."""
        sp = self.check.send_proxy
        if sp is None:
            return server.send_proxy if self.check.port is None else None
        return (server.send_proxy or "v1") if sp else None


@dataclass(frozen=True)
class Frontend:
    name: str
    binds: tuple[Bind, ...]
    mode: str = "http"
    default_backend: str | None = None
    maxconn: int = 0                 # 0 = global maxconn
    timeouts: Timeouts = field(default_factory=Timeouts)
    acl: tuple[Acl, ...] = ()
    http_request: tuple[Rule, ...] = ()
    http_response: tuple[Rule, ...] = ()
    tcp_request: tuple[Rule, ...] = ()    # each with an "on" param: connection | content
    use_backend: tuple[UseBackend, ...] = ()
    option_forwardfor: bool = False
    forwarded: bool = False
    xff_header: str = "X-Forwarded-For"
    max_header_size: int = 16384
    errorfiles: tuple[tuple[int, str], ...] = ()
    tls: FrontendTls | None = None   # settings of the tls binds; None without any
    h2: FrontendH2 = field(default_factory=FrontendH2)
    proxy_trusted: tuple = ()        # ipaddress networks allowed to send a PROXY header; () = any
    monitor_uri: str | None = None   # answered by farm: 200, or 503 (draining, monitor_fail)
    monitor_fail: Condition | None = None
    id: int = 0
    line: int = 0


@dataclass(frozen=True)
class StickTable:
    """A [tables.NAME] section (farm/tables.py maps it in shared memory).

    type is one of STICK_KEY_TYPES; key_len the width of string and binary
    keys; size the number of entries; expire_ms 0 for never; store the
    data types as (name, period ms; 0 for what is not a rate). Two equal
    definitions (line aside) share one table over a reload.
    """

    name: str
    type: str = "ip"
    key_len: int = 32
    size: int = 0
    expire_ms: int = 0
    store: tuple[tuple[str, int], ...] = ()
    line: int = field(default=0, compare=False)
    # replicated to the nodes of [peers]; not part of the definition that
    # decides whether a reload keeps the table's memory
    peers: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class PeerNode:
    """One node of [peers]: its name (HAProxy's peer name) and the
    address where its peers process listens."""

    name: str
    address: Address
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Peers:
    """[peers]: this node's name and every node, this one included."""

    local: str
    nodes: tuple[PeerNode, ...] = ()

    def node(self, name: str) -> PeerNode | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None


STICK_KEY_TYPES = ("ip", "ipv6", "integer", "string", "binary")


@dataclass(frozen=True)
class Config:
    """A whole validated configuration (one generation)."""

    source: str = "<memory>"
    global_: Global = field(default_factory=Global)
    log: LogConfig = field(default_factory=LogConfig)
    stats: Stats = field(default_factory=Stats)
    frontends: tuple[Frontend, ...] = ()
    backends: tuple[Backend, ...] = ()
    tables: tuple[StickTable, ...] = ()
    acme: tuple[Acme, ...] = ()
    peers: Peers | None = None

    def table(self, name: str) -> StickTable | None:
        for t in self.tables:
            if t.name == name:
                return t
        return None

    def acme_account(self, name: str) -> Acme | None:
        for a in self.acme:
            if a.name == name:
                return a
        return None

    def backend(self, name: str) -> Backend | None:
        for b in self.backends:
            if b.name == name:
                return b
        return None

    def frontend(self, name: str) -> Frontend | None:
        for f in self.frontends:
            if f.name == name:
                return f
        return None

    def all_binds(self) -> tuple[Address, ...]:
        """Every listening address, frontends first, then stats; no repeats."""
        seen: dict[Address, None] = {}
        for fe in self.frontends:
            for b in fe.binds:
                seen.setdefault(b.address, None)
        if self.stats.bind is not None:
            seen.setdefault(self.stats.bind, None)
        return tuple(seen)

    def transparent_binds(self) -> frozenset[Address]:
        """The listening addresses that some bind marks transparent."""
        return frozenset(b.address for fe in self.frontends for b in fe.binds if b.transparent)
