"""The stats page: the HTML dashboard of the [stats] listener and the JSON
history that its graphs poll. Pure functions over farm/stats.py's rows and
the shm table's history ring; the CSS and JavaScript are in
farm/stats_assets.py.

    html(rows, info, refresh, admin, uri, message=None)   # GET {uri}
    history_json(table, since=0)                           # GET {uri};history

Without JavaScript the page is whole: a table per frontend and backend,
rows coloured by state, one admin form per backend (a checkbox per server
and an action to apply to the checked ones, as HAProxy's page), and a
<noscript> meta refresh. The script adds:
  * in-place refresh of the tables every `refresh` seconds (the page is
    fetched again; checked servers, filter and choices are kept);
  * a filter box (frontend, backend or server name) and a "hide DOWN
    servers" toggle, remembered in the browser's localStorage;
  * small graphs per frontend and backend (request or session rate,
    response times, responses by class) over the last 1, 5 or 10 minutes,
    drawn as inline SVG from {uri};history, polled every 2 s.
Nothing is loaded from anywhere else: no CDN, no external file.
"""

from __future__ import annotations

import html as _html
import json as _json
import time

from farm import shm
from farm.stats import TYPE_BACKEND, TYPE_FRONTEND, TYPE_SERVER
from farm.stats_assets import CSS, JS

# ;st=CODE after an admin action (HAProxy's codes, plus FAIL for a master
# that refused or could not be reached)
ADMIN_MESSAGES = {
    "DONE": ("ok", "Action processed successfully."),
    "NONE": ("ok", "Nothing has changed."),
    "PART": ("warn", "Action not processed for every server."),
    "ERRP": ("err", "Action not processed because of invalid parameters."),
    "DENY": ("err", "Action denied."),
    "FAIL": ("err", "Action not processed: the master did not accept it (see the event log)."),
}

# The bulk actions of a backend's form (HAProxy's action values), in the
# order of its select. workers/stats.py turns each into a runtime-API line.
BULK_ACTIONS = (
    ("ready", "Set state to READY"),
    ("drain", "Set state to DRAIN"),
    ("maint", "Set state to MAINT"),
    ("shutdown", "Kill sessions"),
)

# (row class, legend text) in the order of the legend
ROW_STATES = (("up", "UP"), ("going-down", "going down"), ("going-up", "going up"),
              ("down", "DOWN"), ("drain", "DRAIN"), ("maint", "MAINT"), ("nocheck", "no check"))

GRAPH_SPANS = ((60, "1 min"), (300, "5 min"), (600, "10 min"))
DEFAULT_SPAN = 300


def _e(v) -> str:
    return _html.escape("" if v is None else str(v), quote=True)


def human_duration(seconds) -> str:
    """Compact age: 42s, 5m12s, 2h13m, 3d4h."""
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def human_bytes(n) -> str:
    if n is None:
        return ""
    n = int(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _n(v) -> str:
    """A number cell (thousands separated, empty for None)."""
    if v is None:
        return ""
    return f"{v:,}" if isinstance(v, int) else _e(v)


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def status_class(status: str | None) -> str:
    """CSS class of a status badge: up, down, maint, drain, going
    (transitional, either way), nocheck, open."""
    s = status or ""
    if s == "OPEN":
        return "open"
    if s.startswith("MAINT"):
        return "maint"
    if s.startswith("DRAIN"):
        return "drain" if "/" not in s else "going"
    if s == "no check":
        return "nocheck"
    if "/" in s:                  # "UP 1/3" going down, "DOWN 1/2" going up
        return "going"
    if s.startswith("UP"):
        return "up"
    return "down"


def row_state(status: str | None) -> str:
    """The state that colours a whole row (one of ROW_STATES' classes):
    a transitional status says which way it goes ("UP 1/3" and "DRAIN 1/3"
    are going down, "DOWN 1/2" going up); OPEN is up."""
    cls = status_class(status)
    if cls == "going":
        return "going-up" if (status or "").startswith("DOWN") else "going-down"
    return "up" if cls == "open" else cls


def _check_cell(r: dict) -> str:
    cs = r.get("check_status")
    if cs is None:
        return '<td class="l dim">' + ("paused" if r["status"] == "MAINT" and r["chkfail"] is not None
                                        else "no check") + "</td>"
    desc = r.get("check_desc") or cs
    if r.get("check_duration") is not None:
        desc += f", {r['check_duration']} ms"
    code = r.get("check_code")
    cls = "l" if cs in ("L4OK", "L7OK", "L6OK", "INI") else "l err"
    return f'<td class="{cls}" title="{_e(desc)}">{_e(cs)}' + (
        f' <span class="dim">{_e(code)}</span>' if code is not None else "") + "</td>"


def _responses(r: dict) -> str:
    if r.get("hrsp_2xx") is None:
        return '<td class="s dim" colspan="4">tcp</td>'
    return (f'<td class="s">{_n(r["hrsp_2xx"])}</td><td>{_n(r["hrsp_3xx"])}</td>'
            f'<td>{_n(r["hrsp_4xx"])}</td><td{" class=err" if r["hrsp_5xx"] else ""}>'
            f'{_n(r["hrsp_5xx"])}</td>')


def _badge(status) -> str:
    return f'<span class="st {status_class(status)}">{_e(status)}</span>'


def _group_head(groups: list[tuple[str, tuple]]) -> tuple[str, str]:
    """The two header rows of grouped columns: groups of (title, ((label,
    field name for the tooltip), ...)); a group of one column without a
    label spans both rows."""
    top, sub = [], []
    for title, cols in groups:
        if len(cols) == 1 and not cols[0][0]:
            top.append(f'<th class="g" rowspan="2" title="{_e(cols[0][1])}">{_e(title)}</th>')
            continue
        top.append(f'<th class="g" colspan="{len(cols)}">{_e(title)}</th>')
        sub.extend(f'<th class="{"s" if i == 0 else ""}" title="{_e(field)}">{_e(label)}</th>'
                   for i, (label, field) in enumerate(cols))
    return "".join(top), "".join(sub)


def html(rows: list[dict], info_pairs: list[tuple[str, str]], refresh: float, admin: bool,
         uri: str, message: str | None = None, certs: list[dict] = ()) -> str:
    """The dashboard: process summary, one section per frontend and one per
    backend (its servers then the BACKEND total), whole rows coloured by
    state, refresh every `refresh` seconds (0: none), a form per backend
    with a checkbox per server when `admin`. `message` is an
    ADMIN_MESSAGES code to show as a banner; `uri` is the stats uri (the
    page's own address, of the admin form and of the history). `certs`
    (farm.stats.cert_rows) adds a table of the TLS certificates, the
    days each has left and, for those ACME manages, the renewal state."""
    inf = dict(info_pairs)
    refresh_s = max(1, int(round(refresh))) if refresh and refresh > 0 else 0
    out = ['<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
           f"<title>farm statistics - {_e(inf.get('node', ''))}</title>",
           '<meta name="viewport" content="width=device-width, initial-scale=1">']
    if refresh_s:
        out.append(f'<noscript><meta http-equiv="refresh" content="{refresh_s};url={_e(uri)}">'
                   "</noscript>")
    out.append(f"<style>{CSS}</style></head>")
    out.append(f'<body class="nojs" data-uri="{_e(uri)}" data-refresh="{refresh_s}">')
    out.append(
        f"<header><h1>farm statistics</h1>"
        f"<span>node <b>{_e(inf.get('node', ''))}</b></span>"
        f"<span>version <b>{_e(inf.get('Version', ''))}</b></span>"
        f"<span>master pid <b>{_e(inf.get('Pid', ''))}</b></span>"
        f"<span>workers <b>{_e(inf.get('Nbproc', ''))}</b></span>"
        f"<span>uptime <b>{_e(inf.get('Uptime', ''))}</b></span>"
        f"<span>connections <b>{_e(inf.get('CurrConns', '0'))}</b> / {_e(inf.get('Maxconn', ''))}</span>"
        f"<span>session rate <b>{_e(inf.get('SessRate', '0'))}</b>/s</span>"
        f"<span>total conns <b>{_n(_int(inf.get('CumConns', '0')))}</b></span>"
        f"<span>total requests <b>{_n(_int(inf.get('CumReq', '0')))}</b></span>"
        + ("<span><b>stopping</b></span>" if inf.get("Stopping") == "1" else "")
        + "</header>")
    spans = "".join(f'<option value="{s}"{" selected" if s == DEFAULT_SPAN else ""}>{label}</option>'
                    for s, label in GRAPH_SPANS)
    legend = "".join(f'<span class="r-{cls}">{text}</span>' for cls, text in ROW_STATES)
    out.append(
        f'<nav><span class="links"><a href="{_e(uri)}">refresh now</a>'
        f'<a href="{_e(uri)};norefresh">stop auto-refresh</a>'
        f'<a href="{_e(uri)};csv">CSV</a><a href="{_e(uri)};json">JSON</a>'
        f'<a href="/metrics">Prometheus</a>'
        + (f'<span class="dim">refresh {_e(human_duration(refresh_s))}</span>' if refresh_s else "")
        + '</span><span class="ctl js">'
        '<input type="search" id="filter" placeholder="filter by name" aria-label="filter by name">'
        '<label title="servers DOWN and not going up, or in maintenance (as HAProxy hides them)">'
        '<input type="checkbox" id="hidedown"> hide DOWN servers</label>'
        '<label><input type="checkbox" id="showgraphs" checked> graphs</label>'
        f'<select id="span" aria-label="graph span">{spans}</select></span>'
        f'<span class="legend">{legend}</span></nav><main>')
    if message in ADMIN_MESSAGES:
        cls, text = ADMIN_MESSAGES[message]
        out.append(f'<div class="msg {cls}">{_e(text)}</div>')
    for r in rows:
        if r["type"] == TYPE_FRONTEND:
            out.append(_frontend_section(r))
    group: list[dict] = []
    for r in rows:
        if r["type"] == TYPE_SERVER:
            group.append(r)
        elif r["type"] == TYPE_BACKEND:
            out.append(_backend_section(r, group, admin, uri))
            group = []
    if certs:
        out.append(_certificates_section(certs))
    out.append(f"</main><script>{JS}</script></body></html>\n")
    return "".join(out)


CERT_SOON_DAYS = 14          # a certificate this close to its end is shown as going down


def _utc_minute(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def renewal_text(r) -> str:
    """The renewal cell of a certificate managed by ACME (r: a
    farm/renewals.py Renewal, read duck-typed), or "-" for r None:
    "ACME: ok, next DATE", "ACME: failed N× (REASON), next try DATE",
    "ACME: renewing now" (with the failures so far, if any)."""
    if r is None:
        return "-"
    failed = f"failed {r.failures}\u00d7 ({r.error or 'no reason given'})"
    if r.state == "running":
        return "ACME: renewing now" + (f", {failed} before" if r.failures else "")
    if r.failures:
        return f"ACME: {failed}, next try {_utc_minute(r.next_try)}"
    return f"ACME: ok, next {_utc_minute(r.next_try)}"


def _certificates_section(certs: list[dict]) -> str:
    """The TLS certificates, with the days each has left: expired rows
    are shown DOWN, those within CERT_SOON_DAYS as going down; the renewal
    state of those ACME manages, in the warning colour (class acme-failed)
    while their last order failed."""
    rows = []
    for c in certs:
        days = c["days"]
        state = "down" if days < 0 else "going-down" if days < CERT_SOON_DAYS else "up"
        r = c.get("acme")
        cls = "l acme-failed" if r is not None and r.failures else "l"
        rows.append(f'<tr class="r-{state}"><td class="l">{_e(c["frontend"])}</td>'
                    f'<td class="l">{_e(c["file"])}</td><td class="l">{_e(c["names"])}</td>'
                    f'<td class="l">{_e(c["not_after"])}</td><td>{days:.1f}</td>'
                    f'<td class="{cls}">{_e(renewal_text(r))}</td></tr>')
    return ('<section class="certs" id="certificates"><h2><span class="nm">TLS certificates</span>'
            '<small>days left until notAfter</small></h2><div class="tbl"><table><thead><tr>'
            '<th class="l">Frontend</th><th class="l">File</th><th class="l">Names</th>'
            '<th class="l">Expires</th><th>Days left</th><th class="l">Renewal</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div></section>")


def _section_open(kind: str, r: dict) -> str:
    name = _e(r["pxname"])
    return (f'<section class="px" id="{kind}-{name}" data-kind="{kind}" data-name="{name}" '
            f'data-mode="{_e(r["mode"])}">')


def _graphs(kind: str, r: dict) -> str:
    """The graphs' place, filled by the page's script."""
    return f'<div class="graphs" data-key="{kind}/{_e(r["pxname"])}" data-mode="{_e(r["mode"])}"></div>'


_FE_GROUPS = [
    ("Status", (("", "status"),)),
    ("Session rate", (("cur", "rate"), ("max", "rate_max"))),
    ("Sessions", (("cur", "scur"), ("max", "smax"), ("limit", "slim"), ("total", "stot"))),
    ("Bytes", (("in", "bin"), ("out", "bout"))),
    ("Requests", (("rate", "req_rate"), ("max", "req_rate_max"), ("total", "req_tot"))),
    ("Responses", (("2xx", "hrsp_2xx"), ("3xx", "hrsp_3xx"), ("4xx", "hrsp_4xx"), ("5xx", "hrsp_5xx"))),
    ("Denied", (("req", "dreq"), ("resp", "dresp"))),
    ("Errors", (("req", "ereq"),)),
]


def _frontend_section(r: dict) -> str:
    http = r["mode"] == "http"
    top, sub = _group_head(_FE_GROUPS)
    dash = "-"
    return (
        _section_open("fe", r)
        + f'<h2><span class="nm">{_e(r["pxname"])}</span><small>frontend, {_e(r["mode"])}</small></h2>'
        + _graphs("fe", r)
        + '<div class="tbl"><table><thead>'
        f'<tr><th class="l name" rowspan="2">Frontend</th>{top}</tr><tr>{sub}</tr></thead><tbody>'
        f'<tr class="r-{row_state(r["status"])} total"><td class="l name">FRONTEND</td>'
        f'<td>{_badge(r["status"])}</td>'
        f'<td class="s">{_n(r["rate"])}</td><td>{_n(r["rate_max"])}</td>'
        f'<td class="s">{_n(r["scur"])}</td><td>{_n(r["smax"])}</td><td>{_n(r["slim"])}</td>'
        f'<td>{_n(r["stot"])}</td>'
        f'<td class="s" title="{_n(r["bin"])}">{human_bytes(r["bin"])}</td>'
        f'<td title="{_n(r["bout"])}">{human_bytes(r["bout"])}</td>'
        + (f'<td class="s">{_n(r["req_rate"])}</td><td>{_n(r["req_rate_max"])}</td>'
           f'<td>{_n(r["req_tot"])}</td>' if http
           else f'<td class="s">{dash}</td><td>{dash}</td><td>{dash}</td>')
        + _responses(r)
        + f'<td class="s">{_n(r["dreq"])}</td><td>{_n(r["dresp"])}</td>'
        f'<td class="s{" err" if r["ereq"] else ""}">{_n(r["ereq"])}</td></tr>'
        "</tbody></table></div></section>")


_BE_GROUPS = [
    ("Status", (("", "status"),)),
    ("Last check", (("", "check_status"),)),
    ("Weight", (("", "weight"),)),
    ("Changed", (("", "lastchg"),)),
    ("Queue", (("cur", "qcur"), ("max", "qmax"))),
    ("Session rate", (("cur", "rate"), ("max", "rate_max"))),
    ("Sessions", (("cur", "scur"), ("max", "smax"), ("limit", "slim"), ("total", "stot"),
                  ("LB", "lbtot"), ("last", "lastsess"))),
    ("Bytes", (("in", "bin"), ("out", "bout"))),
    ("Responses", (("2xx", "hrsp_2xx"), ("3xx", "hrsp_3xx"), ("4xx", "hrsp_4xx"), ("5xx", "hrsp_5xx"))),
    ("Errors", (("conn", "econ"), ("resp", "eresp"))),
    ("Warnings", (("retry", "wretr"), ("redisp", "wredis"))),
    ("Checks", (("fail", "chkfail"), ("down", "chkdown"), ("downtime", "downtime"))),
]


def _backend_section(be: dict, servers: list[dict], admin: bool, uri: str) -> str:
    name = _e(be["pxname"])
    form = admin and bool(servers)
    top, sub = _group_head(_BE_GROUPS)
    out = [_section_open("be", be)]
    if form:
        out.append(f'<form method="post" action="{_e(uri)}"><input type="hidden" name="b" value="{name}">')
    out.append(f'<h2><span class="nm">{name}</span><small>backend, {_e(be["mode"])}, {_e(be["algo"])}, '
               f'{be["act"]} active / {be["bck"]} backup usable</small>')
    if form:
        options = "".join(f'<option value="{a}">{_e(label)}</option>' for a, label in BULK_ACTIONS)
        out.append('<span class="bulk"><span class="count"></span>'
                   f'<select name="action" aria-label="action on the checked servers of {name}">'
                   f'<option value="" selected>Action on the checked servers...</option>{options}'
                   '</select><button type="submit">Apply</button></span>')
    out.append("</h2>" + _graphs("be", be))
    first = ('<label><input type="checkbox" class="all" aria-label="all servers of '
             f'{name}"> Server</label>' if form else "Server")
    out.append(f'<div class="tbl"><table><thead><tr><th class="l name" rowspan="2">{first}</th>'
               f"{top}</tr><tr>{sub}</tr></thead><tbody>")
    for r in servers + [be]:
        out.append(_backend_row(r, form))
    out.append("</tbody></table></div>" + ("</form>" if form else "") + "</section>")
    return "".join(out)


def _backend_row(r: dict, form: bool) -> str:
    total = r["type"] == TYPE_BACKEND
    state = row_state(r["status"])
    if total:
        name_cell = '<td class="l name">BACKEND</td>'
        attrs = f'class="r-{state} total"'
    else:
        sv = _e(r["svname"])
        label = f'<span class="nm">{sv}</span>' + (' <span class="tag">backup</span>' if r["bck"] else "")
        if form:
            label = (f'<label><input type="checkbox" class="sel" name="s" value="{sv}">'
                     f"{label}</label>")
        name_cell = f'<td class="l name" title="{_e(r["addr"])}">{label}</td>'
        attrs = f'class="r-{state} srv" data-name="{sv}" data-state="{state}"'
    lastsess = "-" if r["lastsess"] is None or r["lastsess"] < 0 else human_duration(r["lastsess"])
    dash = "-"
    return (
        f"<tr {attrs}>{name_cell}<td>{_badge(r['status'])}</td>"
        + ("<td></td>" if total else _check_cell(r))
        + f'<td>{_n(r["weight"])}</td><td>{human_duration(r["lastchg"])}</td>'
        f'<td class="s">{_n(r["qcur"])}</td><td>{_n(r["qmax"])}</td>'
        f'<td class="s">{_n(r["rate"])}</td><td>{_n(r["rate_max"])}</td>'
        f'<td class="s">{_n(r["scur"])}</td><td>{_n(r["smax"])}</td>'
        f'<td>{_n(r["slim"]) if r["slim"] is not None else dash}</td><td>{_n(r["stot"])}</td>'
        f'<td>{_n(r["lbtot"])}</td><td>{lastsess}</td>'
        f'<td class="s" title="{_n(r["bin"])}">{human_bytes(r["bin"])}</td>'
        f'<td title="{_n(r["bout"])}">{human_bytes(r["bout"])}</td>'
        + _responses(r)
        + f'<td class="s{" err" if r["econ"] else ""}">{_n(r["econ"])}</td>'
        f'<td{" class=err" if r["eresp"] else ""}>{_n(r["eresp"])}</td>'
        f'<td class="s">{_n(r["wretr"])}</td><td>{_n(r["wredis"])}</td>'
        f'<td class="s">{_n(r["chkfail"]) if r["chkfail"] is not None else dash}</td>'
        f'<td>{_n(r["chkdown"]) if r["chkdown"] is not None else dash}</td>'
        f'<td>{human_duration(r["downtime"]) if r["downtime"] is not None else dash}</td>'
        "</tr>")


# -- the graphs' data ------------------------------------------------------------------


def history_since(opts: set) -> int:
    """The sample number of a ";since=N" option (0, everything, when absent
    or not a number)."""
    for o in opts:
        if o.startswith("since="):
            n = _int(o[6:])
            return n if n is not None and n > 0 else 0
    return 0


def history_json(table: shm.Table, since: int = 0) -> str:
    """The samples of the table's history after number `since` (shm.py,
    Table.hist_read), as the page's script reads them:

        {"seq": latest sample number, "slots": samples kept,
         "rate_scale": divisor of the rates, "fields": shm.HIST_FIELDS,
         "t": [epoch ms, ...],
         "fe": {name: {field: [int, ...]}}, "be": {name: {...}}}

    Rates (sess, req, 1xx..5xx, other) are per second x rate_scale; timed
    is the sessions that ended in the sample, rtime and ttime the sums of
    their response and total times in ms (average = sum / timed). A
    client polls with since=seq of its previous answer; a seq lower than
    that means a new history (farm restarted): start again."""
    seq, times, series = table.hist_read(since)
    out: dict = {"seq": seq, "slots": shm.HIST_SLOTS, "rate_scale": shm.HIST_RATE_SCALE,
                 "fields": list(shm.HIST_FIELDS), "t": times, "fe": {}, "be": {}}
    for (kind, name), fields in series.items():
        out[kind][name] = fields
    return _json.dumps(out, separators=(",", ":")) + "\n"
