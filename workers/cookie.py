"""Cookie persistence (HAProxy's `cookie NAME insert|rewrite|prefix`).

A client that carries the cookie of a usable server goes back to it; a
response from a server tells the client which server that was:
- insert: farm adds Set-Cookie NAME=<server cookie>; with `indirect` the
  cookie is removed from requests before the server sees them; with
  `nocache`, a response carrying it gets Cache-Control: private.
- rewrite: the server sets NAME itself; farm replaces the value with the
  server's cookie value.
- prefix: the server sets NAME=v; farm sends NAME=<server cookie>~v to the
  client and strips the prefix from requests.

The persistence status is logged as HAProxy's %tsc 3rd and 4th letters:
request N (none), V (valid), D (server down), I (invalid); response I
(inserted), R (rewritten/prefixed), D (the server's own cookie of that
name deleted, insert mode), - (nothing done).
"""

from __future__ import annotations

from farm import model


class CookiePersistence:
    """Compiled cookie settings of one backend."""

    def __init__(self, cfg: model.Cookie, backend):
        self.cfg = cfg
        self.name = cfg.name.encode("latin-1")
        self.mode = cfg.mode
        self.backend = backend
        # cookie value -> server index, and back
        self.by_value: dict[bytes, int] = {}
        self.value_of: list[bytes] = []
        for i, s in enumerate(backend.cfg.servers):
            v = (s.cookie or s.name).encode("latin-1")
            self.by_value[v] = i
            self.value_of.append(v)
        attrs = [b"path=/"]
        if cfg.domain:
            attrs.append(b"domain=" + cfg.domain.encode("latin-1"))
        if cfg.httponly:
            attrs.append(b"HttpOnly")
        if cfg.secure:
            attrs.append(b"Secure")
        self.attrs = b"; " + b"; ".join(attrs)

    def on_request(self, txn) -> None:
        """Find the persistence cookie; force its server when it is usable."""
        req = txn.req
        found = None
        for value in req.get_all(b"cookie"):
            for part in value.split(b";"):
                k, eq, v = part.strip().partition(b"=")
                if eq and k == self.name:
                    found = v
                    break
            if found is not None:
                break
        if found is None:
            txn.cc = "N"
            return
        server_value = found.split(b"~", 1)[0] if self.mode == "prefix" else found
        idx = self.by_value.get(server_value)
        if idx is None:
            txn.cc = "I"
        elif self.backend.pool.is_up(idx):
            # Up is enough, whatever the weight: a server at weight 0 (admin
            # drain, or the start of a slowstart ramp) takes no new clients
            # but keeps the ones that persist on it, as in HAProxy, where
            # DRAIN means "only persistent sessions". Maintenance and down
            # servers are not up: their clients are rebalanced (D).
            txn.cc = "V"
            txn.forced_server = idx
        else:
            txn.cc = "D"
        if (self.mode == "insert" and self.cfg.indirect) or self.mode == "prefix":
            self.strip_from_request(req)

    def strip_from_request(self, req) -> None:
        """Remove our cookie (insert+indirect) or its prefix (prefix mode)
        from the Cookie header(s) the server will see."""
        out = []
        for k, v in req.headers:
            if k.lower() != b"cookie":
                out.append((k, v))
                continue
            parts = []
            for part in v.split(b";"):
                name, eq, val = part.strip().partition(b"=")
                if eq and name == self.name:
                    if self.mode == "prefix" and b"~" in val:
                        parts.append(name + b"=" + val.split(b"~", 1)[1])
                    continue
                if part.strip():
                    parts.append(part.strip())
            if parts:
                out.append((k, b"; ".join(parts)))
        req.headers[:] = out

    def on_response(self, txn) -> None:
        resp = txn.resp
        srv = txn.srv
        if srv is None or resp is None:
            return
        value = self.value_of[srv.index]
        if self.mode == "insert":
            # The server's own Set-Cookie of our name goes (HAProxy deletes
            # it in insert mode): passed on, it would race ours in the
            # client, or replace a valid one, and break the persistence.
            deleted = self.drop_server_cookie(resp.headers)
            if txn.cc == "V" and not txn.redispatched:
                if deleted:
                    txn.cs = "D"
                return          # the client already points at this server
            resp.headers.append((b"Set-Cookie", self.name + b"=" + value + self.attrs))
            if self.cfg.nocache and not resp.get(b"cache-control"):
                resp.headers.append((b"Cache-Control", b"private"))
            txn.cs = "I"
            return
        changed = False
        headers = resp.headers
        for i, (k, v) in enumerate(headers):
            if k.lower() != b"set-cookie":
                continue
            first, sep, rest = v.partition(b";")
            name, eq, val = first.strip().partition(b"=")
            if not eq or name != self.name:
                continue
            new = value if self.mode == "rewrite" else value + b"~" + val
            headers[i] = (k, name + b"=" + new + sep + rest)
            changed = True
        txn.cs = "R" if changed else "-"

    def drop_server_cookie(self, headers: list) -> bool:
        """Remove the Set-Cookie fields that set our cookie; True if any."""
        name = self.name
        kept = [h for h in headers
                if not (len(h[0]) == 10 and h[0].lower() == b"set-cookie"
                        and h[1].partition(b"=")[0].strip() == name)]
        if len(kept) == len(headers):
            return False
        headers[:] = kept
        return True
