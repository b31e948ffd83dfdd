"""`farm logs --summary`: what halog -st, -srv and -pct tell, from farm's
access log (httplog, tcplog or JSON lines: farm/logtail.py parses them).

Pure: Summary.add(entry) for each parsed line, then as_dict() or render().
The numbers follow halog's definitions, so that they can be checked
against halog on the same httplog file:

- status codes (-st): requests per exact status (-1 included);
- per server (-srv), keyed "backend/server": requests per status class
  (1xx..5xx, "other" for the rest), tot_req, req_ok (requests with no
  negative timer: nothing failed or was aborted), pct_ok, avg_ct and avg_rt
  (the integer mean of Tc and of Tr over the requests where each is >= 0);
- percentiles (-pct) over the requests with no negative timer: for p, the
  smallest value v such that at least floor(n * p) requests took <= v
  (halog's rule). halog reports TR, Tc, Tr and the data time; farm reports
  Tc, Tr and Ta (the total), which is what one asks for first.

TCP sessions (tcplog, or JSON lines without a status) have no status and no
Tr: they are counted apart and are not in the tables.
"""

from __future__ import annotations

import json
from collections import Counter

from farm.logtail import Entry, _as_int

# per-mille steps reported (halog's -pct prints these among others)
PERCENTILES = (500, 750, 900, 950, 990, 999, 1000)
TIMERS = ("tc", "tr_server", "ta")               # Entry.fields names
TIMER_LABELS = {"tc": "Tc", "tr_server": "Tr", "ta": "Ta"}
_HTTP_TIMERS = ("tr", "tw", "tc", "tr_server", "ta")
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")


class _Server:
    __slots__ = ("classes", "ok", "ct_sum", "ct_n", "rt_sum", "rt_n")

    def __init__(self) -> None:
        self.classes = [0] * 6          # 1xx..5xx, other
        self.ok = 0
        self.ct_sum = self.ct_n = self.rt_sum = self.rt_n = 0


def status_class(status: int | None) -> int:
    """0..4 for 1xx..5xx, 5 for anything else (halog's first-digit rule)."""
    if status is not None and 100 <= status <= 599:
        return status // 100 - 1
    return 5


def percentile(counts: Counter, total: int, permille: int) -> int | None:
    """halog's percentile: the smallest value v of the histogram counts
    (value -> occurrences, total occurrences in all) such that at least
    floor(total * permille / 1000) occurrences are <= v; None if empty."""
    if not counts:
        return None
    threshold = int(total * (permille / 1000.0))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= threshold:
            return value
    return max(counts)


class Summary:
    """Totals of the entries added; see the module docstring."""

    def __init__(self) -> None:
        self.requests = 0
        self.tcp_sessions = 0
        self.unparsed = 0               # lines that are no access-log line (count_unparsed)
        self.statuses: Counter = Counter()
        self.servers: dict[str, _Server] = {}
        self.clean = 0                  # requests with no negative timer
        self.timers: dict[str, Counter] = {name: Counter() for name in TIMERS}

    def count_unparsed(self) -> None:
        self.unparsed += 1

    def add(self, e: Entry) -> None:
        f = e.fields
        if e.mode != "http":
            self.tcp_sessions += 1
            return
        self.requests += 1
        status = e.status
        self.statuses[status if status is not None else -1] += 1
        key = f"{f.get('backend', '-')}/{f.get('server', '-')}"
        srv = self.servers.get(key)
        if srv is None:
            srv = self.servers[key] = _Server()
        srv.classes[status_class(status)] += 1
        times = {name: _as_int(f.get(name)) for name in _HTTP_TIMERS}
        clean = all(t is not None and t >= 0 for t in times.values())
        if clean:
            srv.ok += 1
            self.clean += 1
            for name in TIMERS:
                self.timers[name][times[name]] += 1
        tc, tr = times["tc"], times["tr_server"]
        if tc is not None and tc >= 0:
            srv.ct_sum += tc
            srv.ct_n += 1
        if tr is not None and tr >= 0:
            srv.rt_sum += tr
            srv.rt_n += 1

    def as_dict(self) -> dict:
        servers = {}
        for name in sorted(self.servers):
            s = self.servers[name]
            total = sum(s.classes)
            servers[name] = {
                **dict(zip(CLASSES, s.classes)),
                "tot_req": total, "req_ok": s.ok,
                "pct_ok": round(s.ok * 100.0 / (total or 1), 1),
                "avg_ct": s.ct_sum // (s.ct_n or 1), "avg_rt": s.rt_sum // (s.rt_n or 1),
            }
        classes = Counter()
        for status, n in self.statuses.items():
            classes[CLASSES[status_class(status)]] += n
        return {
            "requests": self.requests,
            "tcp_sessions": self.tcp_sessions,
            "unparsed_lines": self.unparsed,
            "status_codes": {str(k): self.statuses[k] for k in sorted(self.statuses)},
            "status_classes": {c: classes[c] for c in CLASSES},
            "servers": servers,
            "percentiles": {
                "requests": self.clean,
                **{f"{p / 10:.1f}": {TIMER_LABELS[name]: percentile(self.timers[name], self.clean, p)
                                     for name in TIMERS}
                   for p in PERCENTILES}},
        }

    def render_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2) + "\n"

    def render(self) -> str:
        """The summary as text tables (what a person reads in a terminal)."""
        d = self.as_dict()
        out = [f"requests: {d['requests']}"
               + (f"   tcp sessions: {d['tcp_sessions']} (not in the tables)" if d["tcp_sessions"] else "")
               + (f"   lines not understood: {d['unparsed_lines']}" if d["unparsed_lines"] else ""),
               ""]
        if not d["requests"]:
            return "\n".join(out)
        out.append("status classes: " + "  ".join(f"{c} {n}" for c, n in d["status_classes"].items()))
        out.append("")
        out.append("status  requests")
        out.extend(f"{s:>6}  {n:>8}" for s, n in d["status_codes"].items())
        out.append("")
        cols = CLASSES + ("tot_req", "req_ok", "pct_ok", "avg_ct", "avg_rt")
        width = max([len("backend/server")] + [len(n) for n in d["servers"]])
        out.append(f"{'backend/server':<{width}}  " + " ".join(f"{c:>7}" for c in cols))
        for name, row in d["servers"].items():
            out.append(f"{name:<{width}}  " + " ".join(
                f"{row[c]:>7.1f}" if c == "pct_ok" else f"{row[c]:>7}" for c in cols))
        out.append("")
        pct = d["percentiles"]
        out.append(f"percentiles in ms, over the {pct['requests']} requests without a failed phase")
        out.append("    pct " + " ".join(f"{TIMER_LABELS[n]:>7}" for n in TIMERS))
        for p in PERCENTILES:
            row = pct[f"{p / 10:.1f}"]
            out.append(f"{p / 10:>7.1f}" + " " + " ".join(
                f"{'-' if row[TIMER_LABELS[n]] is None else row[TIMER_LABELS[n]]:>7}" for n in TIMERS))
        out.append("")
        return "\n".join(out)

