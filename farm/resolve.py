"""Server address resolution: a host name -> the address to connect to.

farm resolves server names once, when a configuration is loaded (`farm
check`, start, reload), as HAProxy does with init-addr libc: connect() on
a worker's hot path never waits for DNS. The master writes the result into
the shared-memory table (farm/shm.py), where the workers and the health
checks read it; the runtime API can replace it (`set server ... addr`).

Names under the reserved top-level domain "invalid" fail at once without
asking a resolver, as RFC 6761 section 6.4 asks of name resolution
libraries (glibc sends them to the DNS like any other name).
"""

from __future__ import annotations

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor

__all__ = ["ResolveError", "Resolver", "lookup", "literal_ip", "is_reserved_invalid"]

# getaddrinfo's own words for EAI_NONAME, so that a reserved name reads
# like any other unknown name.
NOT_FOUND = "Name or service not known"
PARALLEL = 8     # concurrent lookups when a config names many hosts


class ResolveError(Exception):
    """A name did not resolve; str() is the resolver's reason."""


def literal_ip(host: str) -> int | None:
    """AF_INET or AF_INET6 when host is an IP literal, else None."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def is_reserved_invalid(host: str) -> bool:
    """True for "invalid" and any name under it (case-insensitive)."""
    name = host.rstrip(".").lower()
    return name == "invalid" or name.endswith(".invalid")


def lookup(host: str, port: int, family: int = socket.AF_INET) -> tuple[int, tuple]:
    """host, port -> (family, sockaddr) for socket.connect().

    An IP literal is returned as is (no resolver call). A name is resolved
    with getaddrinfo (the libc resolver: /etc/hosts, then DNS, as
    nsswitch.conf says); an address of `family` is preferred when there
    are several. Raises ResolveError with the resolver's reason.
    """
    if literal_ip(host) is not None:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_NUMERICHOST)
        return infos[0][0], infos[0][4]
    if is_reserved_invalid(host):
        raise ResolveError(NOT_FOUND)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ResolveError(getattr(e, "strerror", None) or str(e)) from None
    if not infos:
        raise ResolveError(NOT_FOUND)
    preferred = [i for i in infos if i[0] == family] or infos
    return preferred[0][0], preferred[0][4]


class Resolver:
    """Resolves and remembers: one load of a config asks the resolver once
    per (host, port, family), however many servers share a name, and the
    master's table gets the very addresses that `farm check` saw."""

    def __init__(self) -> None:
        self.results: dict[tuple, tuple[int, tuple] | ResolveError] = {}

    def prefetch(self, keys) -> None:
        """Resolve the (host, port, family) keys not known yet, several at
        a time (a slow DNS server then costs one timeout, not one per
        server). Threads end before this returns."""
        todo = sorted({k for k in keys if k not in self.results})
        if len(todo) <= 1:
            for key in todo:
                self.results[key] = self._attempt(key)
            return
        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(todo))) as pool:
            for key, result in zip(todo, pool.map(self._attempt, todo)):
                self.results[key] = result

    @staticmethod
    def _attempt(key: tuple) -> tuple[int, tuple] | ResolveError:
        try:
            return lookup(*key)
        except ResolveError as e:
            return e

    def resolve(self, host: str, port: int, family: int = socket.AF_INET) -> tuple[int, tuple]:
        """As lookup(), remembered. Raises ResolveError."""
        key = (host, port, family)
        result = self.results.get(key)
        if result is None:
            result = self.results[key] = self._attempt(key)
        if isinstance(result, ResolveError):
            raise result
        return result


def server_addresses(config, resolver: Resolver, pinned: dict | None = None,
                     earlier=None) -> tuple[dict, list[str]]:
    """The address each server of `config` (a model.Config) starts with in
    a new generation: ({(backend, server): (family, sockaddr) or None},
    notes). None means no address: the server starts in resolution
    maintenance; each note says which server and why, for the log.

    In order: an address the runtime API set (`pinned`, by (backend,
    server); the caller keeps only those whose configured address did not
    change), an IP literal, the resolver when init_addr has "libc", the
    address the running generation has (`earlier(backend, server)`, or
    None; HAProxy's "last"), and "none" in init_addr. A server with none of
    them raises ResolveError naming backend and server.
    """
    out: dict = {}
    notes: list[str] = []
    for be in config.backends:
        for s in be.servers:
            key = (be.name, s.name)
            if pinned and key in pinned:
                out[key] = pinned[key]
                continue
            host = s.address.host
            if literal_ip(host) is not None or "libc" in s.init_addr:
                try:
                    out[key] = resolver.resolve(host, s.address.port, s.address.family)
                    continue
                except ResolveError as e:
                    reason = f"cannot resolve {host!r}: {e}"
            else:
                reason = 'init_addr is "none"'
            last = earlier(be.name, s.name) if earlier is not None else None
            if last is not None:
                out[key] = last
                notes.append(f"Server {be.name}/{s.name} keeps its address {last[1][0]} ({reason})")
            elif "none" in s.init_addr:
                out[key] = None
                notes.append(f"Server {be.name}/{s.name} has no address ({reason}): in maintenance "
                             f"until `set server {be.name}/{s.name} addr IP`")
            else:
                raise ResolveError(f"backend {be.name}, server {s.name}: {reason}")
    return out, notes
