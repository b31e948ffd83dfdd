"""What a reload changes, in one line for the log (pure, no I/O).

  reload gen 7: +frontend api, -backend old, app/s2 weight 10→20
"""

from __future__ import annotations

from farm import model


def describe(old: model.Config, new: model.Config) -> list[str]:
    """Human-readable changes from old to new, most visible first."""
    out: list[str] = []
    old_fe = {f.name: f for f in old.frontends}
    new_fe = {f.name: f for f in new.frontends}
    old_be = {b.name: b for b in old.backends}
    new_be = {b.name: b for b in new.backends}
    out += [f"+frontend {n}" for n in new_fe if n not in old_fe]
    out += [f"-frontend {n}" for n in old_fe if n not in new_fe]
    out += [f"+backend {n}" for n in new_be if n not in old_be]
    out += [f"-backend {n}" for n in old_be if n not in new_be]
    for name, fe in new_fe.items():
        prev = old_fe.get(name)
        if prev is None:
            continue
        for a in fe.binds:
            if a not in prev.binds:
                out.append(f"{name} +bind {a}")
        for a in prev.binds:
            if a not in fe.binds:
                out.append(f"{name} -bind {a}")
        if prev != fe and prev.binds == fe.binds:
            out.append(f"frontend {name} changed")
    for name, be in new_be.items():
        prev = old_be.get(name)
        if prev is None:
            continue
        old_srv = {s.name: s for s in prev.servers}
        new_srv = {s.name: s for s in be.servers}
        out += [f"+server {name}/{n}" for n in new_srv if n not in old_srv]
        out += [f"-server {name}/{n}" for n in old_srv if n not in new_srv]
        for sname, s in new_srv.items():
            p = old_srv.get(sname)
            if p is None:
                continue
            if p.weight != s.weight:
                out.append(f"{name}/{sname} weight {p.weight}\u2192{s.weight}")
            if p.address != s.address:
                out.append(f"{name}/{sname} address {p.address}\u2192{s.address}")
        if prev.balance != be.balance:
            out.append(f"{name} balance {prev.balance}\u2192{be.balance}")
    old_t = {t.name: t for t in old.tables}
    new_t = {t.name: t for t in new.tables}
    out += [f"+table {n}" for n in new_t if n not in old_t]
    out += [f"-table {n}" for n in old_t if n not in new_t]
    # a changed table is a new one, its entries carried over by key (farm/tables.py)
    out += [f"table {n} redefined" for n, t in new_t.items() if n in old_t and old_t[n] != t]
    out += [f"table {n} {'replicated' if t.peers else 'no longer replicated'}"
            for n, t in new_t.items() if n in old_t and old_t[n].peers != t.peers]
    if old.peers != new.peers:
        out.append("peers changed" if old.peers and new.peers else "+peers" if new.peers else "-peers")
    if old.global_.workers != new.global_.workers:
        out.append(f"workers {old.global_.workers}\u2192{new.global_.workers}")
    return out
