"""Statistics rendering from the shared-memory table: pure functions, no I/O.

Used by the master's admin socket (`show stat`, `show info`) and by the
workers' stats listener (workers/stats.py: HTML, CSV, JSON, Prometheus).

    rows = snapshot(config, table, proc)     # one dict per show-stat row
    csv(rows)                                # HAProxy's `show stat` CSV
    csv(rows, typed=True)                    # `show stat typed`
    info(proc, rows)                         # `show info` (key, value) pairs
    prometheus(rows, info(proc, rows))       # HAProxy's native exporter names
    json_stats(rows)                         # `show stat json`

The HTML dashboard and its graphs' data are in farm/stats_page.py.

Formats follow HAProxy 2.6 (the captures in /work/shared/reference): the
same 128 CSV columns in the same order (tools read them by position), the
same rows (each frontend, then per backend its servers and the BACKEND row),
and empty fields where HAProxy leaves a field empty for that kind of row.

What farm does not measure is reported the way HAProxy reports a feature
that is not in use: 0 for counters of features farm lacks (SSL, HTTP/2,
compression, cache, agent checks, header rewrites), empty where HAProxy
prints nothing. In particular:
  * rates (rate, req_rate, conn_rate and their maxima) are sampled by the
    master once a second from the workers' totals (farm/sampler.py): the
    count of the last sampled window, about a second, not HAProxy's
    continuously sliding one;
  * qtime/ctime/rtime/ttime average the most recent samples (taken once a
    second) that hold 1024 sessions, not exactly HAProxy's last 1024; the
    *_max columns are the largest times of single sessions;
  * a backend's chkdown is 0 and its downtime only covers the current
    outage (backend-level transitions are not recorded); its lastchg is the
    time since the most recent server change when it is DOWN, since the
    table was created when it is UP;
  * last_chk (the check's textual detail) is empty: shm keeps the status and
    code, not the text.

Counter conventions read from shm (farm/shm.py CNT_NAMES): *_sum are
milliseconds, `timed` counts the sessions whose times were added to them,
`lastsess` is the epoch second of the last session (0 = never).
"""

from __future__ import annotations

import json as _json
import math
import time

from farm import model, shm

# -- the show-stat columns -------------------------------------------------------
#
# (name, type, tags) for each field, in HAProxy 2.6's order. type is HAProxy's
# typed-output type; tags are origin/nature/scope as `show stat typed` prints
# them (M metric, S status, K key, C config / G gauge, C counter, M max, L
# limit, A age, a average, D duration, N name, O output, R rate / P process,
# S service). Fields after STATIC_FIELDS come from HAProxy's stats modules
# (SSL, HTTP/2, HTTP/1); the CSV prints a "-" column between the two groups.

_u32, _u64, _s32, _str = "u32", "u64", "s32", "str"
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("pxname", _str, "KNS"), ("svname", _str, "KNS"),
    ("qcur", _u32, "MGP"), ("qmax", _u32, "MMP"),
    ("scur", _u32, "MGP"), ("smax", _u32, "MMP"), ("slim", _u32, "CLP"), ("stot", _u64, "MCP"),
    ("bin", _u64, "MCP"), ("bout", _u64, "MCP"),
    ("dreq", _u64, "MCP"), ("dresp", _u64, "MCP"),
    ("ereq", _u64, "MCP"), ("econ", _u64, "MCP"), ("eresp", _u64, "MCP"),
    ("wretr", _u64, "MCP"), ("wredis", _u64, "MCP"),
    ("status", _str, "SGP"), ("weight", _u32, "MaP"), ("act", _u32, "MGP"), ("bck", _u32, "MGP"),
    ("chkfail", _u64, "MCP"), ("chkdown", _u64, "MCP"), ("lastchg", _u32, "MAP"),
    ("downtime", _u32, "MCP"), ("qlimit", _u32, "CGS"),
    ("pid", _u32, "KGP"), ("iid", _u32, "KGS"), ("sid", _u32, "KGS"),
    ("throttle", _u32, "MaP"), ("lbtot", _u64, "MCP"), ("tracked", _str, "CNS"),
    ("type", _u32, "CGS"), ("rate", _u32, "MRP"), ("rate_lim", _u32, "CLP"), ("rate_max", _u32, "MMP"),
    ("check_status", _str, "MOP"), ("check_code", _u32, "MOP"), ("check_duration", _u64, "MDP"),
    ("hrsp_1xx", _u64, "MCP"), ("hrsp_2xx", _u64, "MCP"), ("hrsp_3xx", _u64, "MCP"),
    ("hrsp_4xx", _u64, "MCP"), ("hrsp_5xx", _u64, "MCP"), ("hrsp_other", _u64, "MCP"),
    ("hanafail", _u64, "MCP"),
    ("req_rate", _u32, "MRP"), ("req_rate_max", _u32, "MMP"), ("req_tot", _u64, "MCP"),
    ("cli_abrt", _u64, "MCP"), ("srv_abrt", _u64, "MCP"),
    ("comp_in", _u64, "MCP"), ("comp_out", _u64, "MCP"), ("comp_byp", _u64, "MCP"),
    ("comp_rsp", _u64, "MCP"),
    ("lastsess", _s32, "MAP"), ("last_chk", _str, "MOP"), ("last_agt", _str, "MOP"),
    ("qtime", _u32, "MaP"), ("ctime", _u32, "MaP"), ("rtime", _u32, "MaP"), ("ttime", _u32, "MaP"),
    ("agent_status", _str, "MOP"), ("agent_code", _u32, "MOP"), ("agent_duration", _u64, "MDP"),
    ("check_desc", _str, "MOP"), ("agent_desc", _str, "MOP"),
    ("check_rise", _u32, "CGS"), ("check_fall", _u32, "CGS"), ("check_health", _u32, "CGS"),
    ("agent_rise", _u32, "CGS"), ("agent_fall", _u32, "CGS"), ("agent_health", _u32, "CGS"),
    ("addr", _str, "CGS"), ("cookie", _str, "CNS"), ("mode", _str, "CGS"), ("algo", _str, "CGS"),
    ("conn_rate", _u32, "MRP"), ("conn_rate_max", _u32, "MMP"), ("conn_tot", _u64, "MCP"),
    ("intercepted", _u64, "MCP"), ("dcon", _u64, "MCP"), ("dses", _u64, "MCP"),
    ("wrew", _u64, "MCP"), ("connect", _u64, "MCP"), ("reuse", _u64, "MCP"),
    ("cache_lookups", _u64, "MCP"), ("cache_hits", _u64, "MCP"),
    ("srv_icur", _u32, "MGP"), ("src_ilim", _u32, "CLP"),
    ("qtime_max", _u32, "MMP"), ("ctime_max", _u32, "MMP"), ("rtime_max", _u32, "MMP"),
    ("ttime_max", _u32, "MMP"),
    ("eint", _u64, "MCP"),
    ("idle_conn_cur", _u32, "MGP"), ("safe_conn_cur", _u32, "MGP"), ("used_conn_cur", _u32, "MGP"),
    ("need_conn_est", _u32, "MGP"), ("uweight", _u32, "MaP"),
    ("agg_server_status", _u32, "MGP"), ("agg_server_check_status", _u32, "MGP"),
    ("agg_check_status", _u32, "MGP"),
    # -- stats modules (after the "-" column of the CSV) --
    ("ssl_sess", _u64, "MCP"), ("ssl_reused_sess", _u64, "MCP"), ("ssl_failed_handshake", _u64, "MCP"),
    ("h2_headers_rcvd", _u64, "MCP"), ("h2_data_rcvd", _u64, "MCP"), ("h2_settings_rcvd", _u64, "MCP"),
    ("h2_rst_stream_rcvd", _u64, "MCP"), ("h2_goaway_rcvd", _u64, "MCP"),
    ("h2_detected_conn_protocol_errors", _u64, "MCP"), ("h2_detected_strm_protocol_errors", _u64, "MCP"),
    ("h2_rst_stream_resp", _u64, "MCP"), ("h2_goaway_resp", _u64, "MCP"),
    ("h2_open_connections", _u64, "MGP"), ("h2_backend_open_streams", _u64, "MGP"),
    ("h2_total_connections", _u64, "MCP"), ("h2_backend_total_streams", _u64, "MCP"),
    ("h1_open_connections", _u64, "MGP"), ("h1_open_streams", _u64, "MGP"),
    ("h1_total_connections", _u64, "MCP"), ("h1_total_streams", _u64, "MCP"),
    ("h1_bytes_in", _u64, "MCP"), ("h1_bytes_out", _u64, "MCP"),
    ("h1_spliced_bytes_in", _u64, "MCP"), ("h1_spliced_bytes_out", _u64, "MCP"),
)
FIELD_NAMES = tuple(f[0] for f in FIELDS)
STATIC_FIELDS = FIELD_NAMES.index("agg_check_status") + 1    # HAProxy's ST_F_TOTAL_FIELDS
_SSL_FIELDS = FIELD_NAMES[STATIC_FIELDS:STATIC_FIELDS + 3]
_H2H1_FIELDS = FIELD_NAMES[STATIC_FIELDS + 3:]

# -- how far farm's columns follow HAProxy's ------------------------------------------
#
# Every column is in exactly one of the groups below, which say how it
# compares with HAProxy 2.6's for the same config and the same traffic
# (HAProxy with nbthread 1, farm with workers = 1). The integration test
# tests/integration/test_stats_vs_haproxy.py runs both side by side and
# holds farm to it; docs/operations.md lists the same.
#
# SAME_AS_HAPROXY: counts, limits, states and names: equal to HAProxy's
# (SAME_IN_TCP_ONLY: equal on the rows of TCP proxies, not compared on
# HTTP ones, for the reason given).
# CLOSE_TO_HAPROXY: times and rates, which depend on when sessions ran and
# when the stats were read: averages and maxima of times (ms), ages (s),
# and rate maxima, compared with a tolerance.
# NOT_COMPARED: what farm reports differently on purpose, with the reason.
SAME_IN_TCP_ONLY = {
    "bin": "HAProxy counts the bytes of its internal HTTP representation (HTX), farm the "
           "bytes on the wire (which HAProxy reports in h1_bytes_in and h1_bytes_out)",
    "bout": "as bin",
}
NOT_COMPARED = {
    "rate": "the current rate: HAProxy's slides continuously, farm's is the last sampled second",
    "req_rate": "as rate",
    "conn_rate": "as rate",
    "last_chk": "farm keeps the check's status and code, not its text (empty)",
    "srv_icur": "HAProxy's idle server connections; farm's pool is per worker and not reported (0)",
    "src_ilim": "as srv_icur",
    "idle_conn_cur": "as srv_icur",
    "safe_conn_cur": "as srv_icur",
    "need_conn_est": "HAProxy's estimate of the connections a server needs; farm reports scur",
    "h1_open_connections": "HAProxy's HTTP/1 multiplexer counters: not measured by farm (0)",
    "h1_open_streams": "as h1_open_connections",
    "h1_total_connections": "as h1_open_connections",
    "h1_total_streams": "as h1_open_connections",
    "h1_bytes_in": "as h1_open_connections",
    "h1_bytes_out": "as h1_open_connections",
    "h1_spliced_bytes_in": "as h1_open_connections",
    "h1_spliced_bytes_out": "as h1_open_connections",
}
CLOSE_TO_HAPROXY = ("qtime", "ctime", "rtime", "ttime", "qtime_max", "ctime_max", "rtime_max",
                    "ttime_max", "lastchg", "downtime", "lastsess", "check_duration",
                    "rate_max", "req_rate_max", "conn_rate_max")
SAME_AS_HAPROXY = tuple(n for n in FIELD_NAMES if n not in CLOSE_TO_HAPROXY
                        and n not in NOT_COMPARED and n not in SAME_IN_TCP_ONLY)

# `show stat` header: "# " + every name followed by a comma, "-" after the static fields
CSV_HEADER = "# " + "".join(
    n + "," + ("-," if i + 1 == STATIC_FIELDS else "") for i, n in enumerate(FIELD_NAMES))

TYPE_FRONTEND, TYPE_BACKEND, TYPE_SERVER = 0, 1, 2
STATS_PROXY = "stats"           # pxname of the stats listener's FRONTEND row (as in HAProxy)

# HAProxy's check status descriptions (get_check_status_description)
CHECK_DESC = {
    "": "", "UNK": "Unknown", "INI": "Initializing", "SOCKERR": "Socket error",
    "L4OK": "Layer4 check passed", "L4TOUT": "Layer4 timeout", "L4CON": "Layer4 connection problem",
    "L6OK": "Layer6 check passed", "L6TOUT": "Layer6 timeout", "L6RSP": "Layer6 invalid response",
    "L7TOUT": "Layer7 timeout", "L7RSP": "Layer7 invalid response", "L7OK": "Layer7 check passed",
    "L7OKC": "Layer7 check conditionally passed", "L7STS": "Layer7 wrong status",
}
# statuses with layer 5-7 data (HAProxy shows check_code only for these)
_L57_STATUSES = frozenset(("L7OK", "L7OKC", "L7STS"))
# statuses of a finished check (check_duration shown); INI/empty are not
_CHECKED_STATUSES = frozenset(CHECK_DESC) - {"", "UNK", "INI"}


# -- snapshot ------------------------------------------------------------------------


def proxy_ids(config: model.Config) -> dict:
    """HAProxy-style unique proxy ids (the iid column): the frontends in
    config order, then the stats listener, then the backends, from 1; from
    2 when there is an admin socket, since HAProxy gives id 1 to the
    internal proxy of its stats socket (so the same config numbers its
    proxies as HAProxy does). Keys: ("fe", name) and ("be", name)."""
    first = 2 if config.global_.admin_socket else 1
    ids = {}
    for fe in config.frontends:
        ids[("fe", fe.name)] = len(ids) + first
    if config.stats.bind is not None:
        ids[("fe", STATS_PROXY)] = len(ids) + first
    for be in config.backends:
        ids[("be", be.name)] = len(ids) + first
    return ids


def _backend_fullconn(config: model.Config, be: model.Backend) -> int:
    """HAProxy's default fullconn: 10% of the maxconn sum of the frontends
    that can use the backend (default_backend or a use_backend entry)."""
    total = 0
    for fe in config.frontends:
        if fe.default_backend == be.name or any(u.backend == be.name for u in fe.use_backend):
            total += fe.maxconn or config.global_.maxconn
    return (total + 9) // 10 or 1


def _eweight(w: int) -> int:
    """Effective weight for display (HAProxy rounds the scaled weight up)."""
    return -(-w // shm.WEIGHT_SCALE)


def _empty_row() -> dict:
    return dict.fromkeys(FIELD_NAMES)


def _lastsess(c: dict, now: int) -> int:
    t = c.get("lastsess", 0)
    return max(0, now - t) if t > 0 else -1


def _server_status(st: dict, rise: int, fall: int) -> str:
    """The status column as HAProxy words it (stats_fill_sv_stats)."""
    admin = st["admin"]
    checked = bool(st["has_check"])
    health = st["health"]
    if admin == shm.ADMIN_MAINT:
        return "MAINT"
    if st["rmaint"]:
        return "MAINT (resolution)"      # no address yet (init_addr none)
    if st["op_up"]:
        going_down = checked and health < rise + fall - 1
        if admin == shm.ADMIN_DRAIN:
            return f"DRAIN {health - rise + 1}/{fall}" if going_down else "DRAIN"
        if going_down:
            return f"UP {health - rise + 1}/{fall}"
        return "UP" if checked else "no check"
    if checked and health > 0:
        return f"DOWN {health}/{rise}"        # going up
    return "DOWN"


def server_state(status: str) -> str:
    """A row's status reduced to HAProxy exporter's server states
    (DOWN, UP, MAINT, DRAIN, NOLB)."""
    if status.startswith("MAINT"):
        return "MAINT"
    if status.startswith("DRAIN"):
        return "DRAIN"
    if status.startswith("NOLB"):
        return "NOLB"
    if status.startswith("UP") or status == "no check":
        return "UP"
    return "DOWN"


def snapshot(config: model.Config, table: shm.Table, proc: dict) -> list[dict]:
    """Every show-stat row, HAProxy's order: each frontend (the stats
    listener's after the configured ones), then each backend's servers
    followed by its BACKEND row. A row maps every FIELD_NAMES entry to an
    int, a str, or None (an empty CSV field).

    proc may carry "now" (epoch seconds) for reproducible ages and
    "process_num" (the pid column, 1 by default)."""
    now = int(proc.get("now") or time.time())
    pnum = proc.get("process_num", 1)
    ids = proxy_ids(config)
    rows: list[dict] = []

    fes = [(fe.name, fe.mode, fe.maxconn or config.global_.maxconn) for fe in config.frontends]
    if config.stats.bind is not None:
        fes.append((STATS_PROXY, "http", config.global_.maxconn))
    for name, mode, slim in fes:
        key = ("fe", name)
        if key not in table.layout.rows:
            continue
        rows.append(_frontend_row(table.read_row(key), name, mode, slim, ids[key], pnum))

    for be in config.backends:
        srows, sstates = [], []
        for s in be.servers:
            sidx = table.server_row(be.name, s.name)
            st = table.srv_state(sidx)
            c = table.read_row(("srv", be.name, s.name))
            r = _server_row(c, st, be, s, ids[("be", be.name)], pnum, now)
            srows.append(r)
            sstates.append(st)
        rows.extend(srows)
        rows.append(_backend_row(table.read_row(("be", be.name)), config, be, srows, sstates,
                                 ids[("be", be.name)], pnum, now, table.q[shm.H_START]))
    return rows


def _frontend_row(c: dict, name: str, mode: str, slim: int, iid: int, pnum: int) -> dict:
    r = _empty_row()
    http = mode == "http"
    r.update(
        pxname=name, svname="FRONTEND", scur=c["scur"], smax=c["smax"], slim=slim,
        stot=c["stot"], bin=c["bin"], bout=c["bout"], dreq=c["dreq"], dresp=c["dresp"],
        ereq=c["ereq"], status="OPEN", pid=pnum, iid=iid, sid=0, type=TYPE_FRONTEND,
        rate=c["rate"], rate_lim=0, rate_max=c["rate_max"],
        req_rate=c["req_rate"], req_rate_max=c["req_rate_max"], req_tot=c["req_tot"],
        comp_in=0, comp_out=0, comp_byp=0, comp_rsp=0,
        mode=mode, conn_rate=c["conn_rate"], conn_rate_max=c["conn_rate_max"], conn_tot=c["conn_tot"],
        dcon=c.get("denied_conn", 0), dses=0, wrew=0, eint=0,
    )
    if http:
        for k in ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"):
            r[k] = c[k]
        r.update(intercepted=c["intercepted"], cache_lookups=0, cache_hits=0)
    for k in _SSL_FIELDS + _H2H1_FIELDS:
        r[k] = 0
    return r


def _server_row(c: dict, st: dict, be: model.Backend, s: model.Server, iid: int, pnum: int,
                now: int) -> dict:
    r = _empty_row()
    http = be.mode == "http"
    rise, fall = be.check.rise, be.check.fall
    status = _server_status(st, rise, fall)
    checked = bool(st["has_check"])
    admin = st["admin"]
    eweight = _eweight(st["eff_weight"])      # HAProxy shows it even while draining
    r.update(
        pxname=be.name, svname=s.name, qcur=c["qcur"], qmax=c["qmax"],
        scur=c["scur"], smax=c["smax"], slim=s.maxconn or None,
        stot=c["stot"], bin=c["bin"], bout=c["bout"], dresp=c["dresp"],
        econ=c["econ"], eresp=c["eresp"], wretr=c["wretr"], wredis=c["wredis"],
        status=status, weight=eweight, act=0 if s.backup else 1, bck=1 if s.backup else 0,
        lastchg=max(0, now - st["last_change"]) if st["last_change"] else 0,
        pid=pnum, iid=iid, sid=s.id, lbtot=c["lbtot"], type=TYPE_SERVER,
        rate=c["rate"], rate_max=c["rate_max"],
        req_tot=c["req_tot"] if http else None,
        cli_abrt=c["cli_abrt"], srv_abrt=c["srv_abrt"], lastsess=_lastsess(c, now),
        # averages of the last sessions, kept by the master (farm/sampler.py)
        qtime=c["qtime_avg"], ctime=c["ctime_avg"], rtime=c["rtime_avg"], ttime=c["ttime_avg"],
        addr=_server_addr(st, s), mode=be.mode, wrew=0, connect=c["connect"], reuse=c["reuse"],
        srv_icur=0, qtime_max=c["qtime_max"], ctime_max=c["ctime_max"], rtime_max=c["rtime_max"],
        ttime_max=c["ttime_max"], eint=0,
        idle_conn_cur=0, safe_conn_cur=0, used_conn_cur=c["scur"], need_conn_est=c["scur"],
        uweight=st["weight"],
    )
    if be.cookie is not None:
        r["cookie"] = s.cookie or s.name
    if checked:
        code = shm.CHECK_STATUSES[st["check_status"]] if 0 <= st["check_status"] < len(
            shm.CHECK_STATUSES) else "UNK"
        if code in _CHECKED_STATUSES and st["check_duration"] >= 0:
            # not a show-stat field: the exporter reports the last check's
            # duration even while the check is paused (maintenance)
            r["_last_check_duration"] = st["check_duration"]
        down_for = max(0, now - st["down_since"]) if st["down_since"] else 0
        r.update(chkfail=st["chkfail"], chkdown=st["chkdown"], downtime=st["downtime"] + down_for)
        if admin != shm.ADMIN_MAINT and not st["rmaint"]:   # HAProxy pauses the check in maintenance
            r.update(check_status=code, check_desc=CHECK_DESC.get(code, code), last_chk="",
                     check_rise=rise, check_fall=fall, check_health=st["health"])
            if code in _L57_STATUSES:
                r["check_code"] = st["check_code"]
            if code in _CHECKED_STATUSES and st["check_duration"] >= 0:
                r["check_duration"] = st["check_duration"]
        if be.check.observe:
            r["hanafail"] = 0
    if s.slowstart > 0 and st["op_up"] and admin == shm.ADMIN_READY:
        full = st["weight"] * shm.WEIGHT_SCALE
        if 0 < st["eff_weight"] < full:
            r["throttle"] = st["eff_weight"] * 100 // full
    if http:
        for k in ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"):
            r[k] = c[k]
    for k in _SSL_FIELDS:
        r[k] = 0
    return r


def _server_addr(st: dict, s: model.Server) -> str:
    """The addr column: the address connected to now (the runtime API may
    have changed it); empty while there is none (resolution maintenance)."""
    address = shm.state_address(st)
    if address is not None:
        return shm.format_sockaddr(address[1])
    return "" if st["rmaint"] else str(s.address)


def _usable(st: dict) -> bool:
    """HAProxy's srv_currently_usable(): up, not in maintenance, weight > 0
    (a draining server has an effective weight of 0)."""
    return (st["op_up"] == 1 and st["admin"] == shm.ADMIN_READY and not st["rmaint"]
            and st["eff_weight"] > 0)


def _backend_row(c: dict, config: model.Config, be: model.Backend, srows: list, sstates: list,
                 iid: int, pnum: int, now: int, start: int) -> dict:
    r = _empty_row()
    http = be.mode == "http"
    act = [st for s, st in zip(be.servers, sstates) if not s.backup and _usable(st)]
    bck = [st for s, st in zip(be.servers, sstates) if s.backup and _usable(st)]
    tier = act or bck                    # farm balances every backup when no active is left
    tot_weight = sum(st["eff_weight"] for st in tier)
    up = tot_weight > 0 or not be.servers
    if up:
        lastchg = max(0, now - start) if start else 0
        downtime = 0
    else:
        last = max((st["last_change"] for st in sstates), default=0)
        lastchg = downtime = max(0, now - last) if last else 0
    r.update(
        pxname=be.name, svname="BACKEND", qcur=c["qcur"], qmax=c["qmax"],
        scur=c["scur"], smax=c["smax"], slim=_backend_fullconn(config, be), stot=c["stot"],
        bin=c["bin"], bout=c["bout"], dreq=c["dreq"], dresp=c["dresp"],
        econ=c["econ"], eresp=c["eresp"], wretr=c["wretr"], wredis=c["wredis"],
        status="UP" if up else "DOWN", weight=_eweight(tot_weight), act=len(act), bck=len(bck),
        chkdown=0, lastchg=lastchg, downtime=downtime if be.servers else None,
        pid=pnum, iid=iid, sid=0, lbtot=c["lbtot"], type=TYPE_BACKEND, rate=c["rate"],
        rate_max=c["rate_max"],
        cli_abrt=c["cli_abrt"], srv_abrt=c["srv_abrt"],
        comp_in=0, comp_out=0, comp_byp=0, comp_rsp=0, lastsess=_lastsess(c, now),
        # averages of the last sessions, kept by the master (farm/sampler.py)
        qtime=c["qtime_avg"], ctime=c["ctime_avg"], rtime=c["rtime_avg"], ttime=c["ttime_avg"],
        mode=be.mode, algo=be.balance.algorithm, wrew=0, connect=c["connect"], reuse=c["reuse"],
        qtime_max=c["qtime_max"], ctime_max=c["ctime_max"], rtime_max=c["rtime_max"],
        ttime_max=c["ttime_max"], eint=0,
        uweight=sum(st["weight"] for st in tier),
        agg_server_status=0, agg_server_check_status=0, agg_check_status=0,
    )
    if be.cookie is not None:
        r["cookie"] = be.cookie.name
    if http:
        r["req_tot"] = c["req_tot"]
        for k in ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"):
            r[k] = c[k]
        r.update(cache_lookups=0, cache_hits=0)
    for k in _SSL_FIELDS + _H2H1_FIELDS:
        r[k] = 0
    return r


def filter_rows(rows: list[dict], up: bool = False, no_maint: bool = False) -> list[dict]:
    """HAProxy's ";up" (only servers UP or not checked) and ";no-maint"
    (no server in maintenance) filters; frontends and backends stay."""
    out = []
    for r in rows:
        if r["type"] == TYPE_SERVER:
            state = server_state(r["status"])
            if up and state != "UP":
                continue
            if no_maint and state == "MAINT":
                continue
        out.append(r)
    return out


# -- CSV and typed ---------------------------------------------------------------------


def _csv_field(v) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        if any(ch in v for ch in ',"\r\n') or v[:1].isspace() or v[-1:].isspace():
            return '"' + v.replace('"', '""') + '"'
        return v
    return str(v)


def _csv_line(r: dict) -> str:
    vals = [_csv_field(r.get(n)) for n in FIELD_NAMES]
    return ",".join(vals[:STATIC_FIELDS]) + ",-," + ",".join(vals[STATIC_FIELDS:]) + ","


_OBJ = {TYPE_FRONTEND: "F", TYPE_BACKEND: "B", TYPE_SERVER: "S"}
# Tags that differ by kind of row (as HAProxy 2.6 prints them): act/bck are
# the server's own status (1/0) but counts on a backend; a backend's rates
# are plain gauges.
_KIND_TAGS = {TYPE_SERVER: {"act": "SGP", "bck": "SGP"},
              TYPE_BACKEND: {"rate": "MGP", "rate_max": "MGP"}}


def _tags(r: dict, name: str, tags: str) -> str:
    over = _KIND_TAGS.get(r["type"])
    return over.get(name, tags) if over else tags


def _typed_lines(r: dict) -> list[str]:
    obj = _OBJ.get(r["type"], "?")
    prefix = f"{obj}.{r['iid']}.{r['sid']}."
    pid = r["pid"]
    out = []
    for pos, (name, typ, tags) in enumerate(FIELDS):
        v = r.get(name)
        if v is None:
            continue
        tags = _tags(r, name, tags)
        if typ == _str:
            v = str(v).replace("\r", " ").replace("\n", " ")
        out.append(f"{prefix}{pos}.{name}.{pid}:{tags}:{typ}:{v}")
    return out


def csv(rows: list[dict], typed: bool = False) -> str:
    """`show stat` (the header line, one line per row, then an empty line,
    as HAProxy ends a CLI answer block) or, typed, `show stat typed`: one
    `<obj>.<iid>.<sid>.<pos>.<name>.<pid>:<tags>:<type>:<value>` line per
    non-empty field, an empty line between objects."""
    if typed:
        return "".join("\n".join(_typed_lines(r)) + "\n\n" for r in rows)
    return CSV_HEADER + "\n" + "".join(_csv_line(r) + "\n" for r in rows) + "\n"


# -- JSON --------------------------------------------------------------------------------

_ORIGIN = {"M": "Metric", "S": "Status", "K": "Key", "C": "Config", "P": "Product"}
_NATURE = {"G": "Gauge", "L": "Limit", "m": "Min", "M": "Max", "R": "Rate", "C": "Counter",
           "D": "Duration", "A": "Age", "T": "Time", "N": "Name", "O": "Output", "a": "Avg"}
_SCOPE = {"P": "Process", "S": "Service", "s": "System", "C": "Cluster"}
_OBJ_NAME = {TYPE_FRONTEND: "Frontend", TYPE_BACKEND: "Backend", TYPE_SERVER: "Server"}


def _json_tags(tags: str) -> dict:
    return {"origin": _ORIGIN.get(tags[0], "Unknown"), "nature": _NATURE.get(tags[1], "Unknown"),
            "scope": _SCOPE.get(tags[2], "Unknown")}


def json_stats(rows: list[dict], info: list | None = None) -> str:
    """HAProxy's `show stat json` (also its ";json" stats URI): an array with
    one array per row, one object per non-empty field. `info` is accepted
    for symmetry with the other renderers; HAProxy's format has no place for
    it (see info_json())."""
    out = []
    for r in rows:
        objs = []
        for pos, (name, typ, tags) in enumerate(FIELDS):
            v = r.get(name)
            if v is None:
                continue
            tags = _tags(r, name, tags)
            objs.append({"objType": _OBJ_NAME.get(r["type"], "Unknown"), "proxyId": r["iid"],
                         "id": r["sid"], "field": {"pos": pos, "name": name},
                         "processNum": r["pid"], "tags": _json_tags(tags),
                         "value": {"type": typ, "value": v}})
        out.append(objs)
    return _json.dumps(out, separators=(",", ":")) + "\n"


# -- show info ---------------------------------------------------------------------------

# (key, type, tags) in HAProxy 2.6's order (haproxy26_show_info.txt)
INFO_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("Name", _str, "POS"), ("Version", _str, "POS"), ("Release_date", _str, "POS"),
    ("Nbthread", _u32, "CGS"), ("Nbproc", _u32, "CGS"), ("Process_num", _u32, "KGP"),
    ("Pid", _u32, "SGP"), ("Uptime", _str, "MDP"), ("Uptime_sec", _u32, "MDP"),
    ("Memmax_MB", _u32, "CLP"), ("PoolAlloc_MB", _u32, "MGP"), ("PoolUsed_MB", _u32, "MGP"),
    ("PoolFailed", _u32, "MCP"), ("Ulimit-n", _u32, "CGP"), ("Maxsock", _u32, "CLP"),
    ("Maxconn", _u32, "CLP"), ("Hard_maxconn", _u32, "CLP"), ("CurrConns", _u32, "MGP"),
    ("CumConns", _u32, "MCP"), ("CumReq", _u32, "MCP"), ("MaxSslConns", _u32, "CLP"),
    ("CurrSslConns", _u32, "MGP"), ("CumSslConns", _u32, "MCP"), ("Maxpipes", _u32, "CLP"),
    ("PipesUsed", _u32, "MGP"), ("PipesFree", _u32, "MGP"), ("ConnRate", _u32, "MRP"),
    ("ConnRateLimit", _u32, "CLP"), ("MaxConnRate", _u32, "MMP"), ("SessRate", _u32, "MRP"),
    ("SessRateLimit", _u32, "CLP"), ("MaxSessRate", _u32, "MMP"), ("SslRate", _u32, "MRP"),
    ("SslRateLimit", _u32, "CLP"), ("MaxSslRate", _u32, "MMP"),
    ("SslFrontendKeyRate", _u32, "MRP"), ("SslFrontendMaxKeyRate", _u32, "MMP"),
    ("SslFrontendSessionReuse_pct", _u32, "MaP"), ("SslBackendKeyRate", _u32, "MRP"),
    ("SslBackendMaxKeyRate", _u32, "MMP"), ("SslCacheLookups", _u32, "MCP"),
    ("SslCacheMisses", _u32, "MCP"), ("CompressBpsIn", _u32, "MRP"),
    ("CompressBpsOut", _u32, "MRP"), ("CompressBpsRateLim", _u32, "CLP"),
    ("Tasks", _u32, "MGP"), ("Run_queue", _u32, "MGP"), ("Idle_pct", _u32, "MaP"),
    ("node", _str, "COS"), ("Stopping", _u32, "MGP"), ("Jobs", _u32, "MGP"),
    ("Unstoppable Jobs", _u32, "MGP"), ("Listeners", _u32, "MGP"), ("ActivePeers", _u32, "MGP"),
    ("ConnectedPeers", _u32, "MGP"), ("DroppedLogs", _u32, "MCP"), ("BusyPolling", _u32, "MGP"),
    ("FailedResolutions", _u32, "MCP"), ("TotalBytesOut", _u64, "MCP"),
    ("TotalSplicdedBytesOut", _u64, "MCP"), ("BytesOutRate", _u64, "MRP"),
    ("DebugCommandsIssued", _u32, "MCP"), ("CumRecvLogs", _u64, "MCP"),
    ("Build info", _str, "POS"), ("Memmax_bytes", _u64, "CLP"), ("PoolAlloc_bytes", _u64, "MGP"),
    ("PoolUsed_bytes", _u64, "MGP"), ("Start_time_sec", _u32, "MGP"), ("Tainted", _u32, "SGP"),
)
INFO_KEYS = tuple(f[0] for f in INFO_FIELDS)


def format_uptime(seconds: int) -> str:
    """HAProxy's Uptime: "0d 0h00m01s"."""
    seconds = max(0, int(seconds))
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d}d {h}h{m:02d}m{s:02d}s"


def info(proc: dict, rows: list[dict]) -> list[tuple[str, str]]:
    """`show info` as (key, value) pairs, HAProxy 2.6's keys in its order.

    proc (built by the caller): pid, start_time (epoch), workers, maxconn,
    node, version, release_date, stopping, dropped_logs, listeners; optional:
    build (farm/build.py describe()),
    now, process_num, ulimit_n, maxsock, tasks, run_queue, idle_pct, jobs,
    pipes_used, pipes_free, max_pipes, and the process rates sess_rate,
    max_sess_rate, conn_rate, max_conn_rate (see process_rates()).
    Connection and request totals are summed from the frontend rows."""
    now = proc.get("now") or time.time()
    start = int(proc.get("start_time") or now)
    uptime = max(0, int(now) - start)
    fe = [r for r in rows if r["type"] == TYPE_FRONTEND]
    curr = sum(r["scur"] or 0 for r in fe)
    listeners = int(proc.get("listeners", 0))
    version = str(proc.get("version", ""))
    maxconn = int(proc.get("maxconn", 0))
    ulimit = int(proc.get("ulimit_n", 0))
    values = {
        "Name": "farm", "Version": version, "Release_date": str(proc.get("release_date", "")),
        "Nbthread": 1, "Nbproc": int(proc.get("workers", 1)),
        "Process_num": int(proc.get("process_num", 1)), "Pid": int(proc.get("pid", 0)),
        "Uptime": format_uptime(uptime), "Uptime_sec": uptime,
        "Ulimit-n": ulimit, "Maxsock": int(proc.get("maxsock", ulimit)),
        "Maxconn": maxconn, "Hard_maxconn": maxconn,
        "CurrConns": curr, "CumConns": sum(r["conn_tot"] or 0 for r in fe),
        "CumReq": sum(r["req_tot"] or 0 for r in fe),
        "Maxpipes": int(proc.get("max_pipes", 0)), "PipesUsed": int(proc.get("pipes_used", 0)),
        "PipesFree": int(proc.get("pipes_free", 0)),
        "Tasks": int(proc.get("tasks", 0)), "Run_queue": int(proc.get("run_queue", 0)),
        "Idle_pct": int(proc.get("idle_pct", 0)), "node": str(proc.get("node", "")),
        "Stopping": int(proc.get("stopping", 0)),
        "Jobs": int(proc.get("jobs", curr + listeners)), "Listeners": listeners,
        "DroppedLogs": int(proc.get("dropped_logs", 0)),
        "ConnRate": int(proc.get("conn_rate", 0)), "MaxConnRate": int(proc.get("max_conn_rate", 0)),
        "SessRate": int(proc.get("sess_rate", 0)), "MaxSessRate": int(proc.get("max_sess_rate", 0)),
        "TotalBytesOut": sum(r["bout"] or 0 for r in fe),
        # HAProxy puts its version here; farm adds which build runs
        # (compiled or pure, farm/build.py)
        "Build info": f"{version} {proc['build']}" if proc.get("build") else version,
        "Start_time_sec": start,
    }
    return [(k, str(values.get(k, 0))) for k in INFO_KEYS]


def process_rates(process_row: dict) -> dict:
    """The rate entries of info()'s proc, from the process row of the shm
    table (Table.read_row(shm.PROCESS_ROW)), where farm/sampler.py keeps the
    sums over the frontends."""
    return {"sess_rate": process_row["rate"], "max_sess_rate": process_row["rate_max"],
            "conn_rate": process_row["conn_rate"], "max_conn_rate": process_row["conn_rate_max"]}


def info_typed(pairs: list[tuple[str, str]], process_num: int = 1) -> str:
    """`show info typed`: "<pos>.<name>.<process>:<tags>:<type>:<value>"."""
    meta = {k: (t, tags) for k, t, tags in INFO_FIELDS}
    out = []
    for pos, (k, v) in enumerate(pairs):
        t, tags = meta.get(k, (_str, "MOP"))
        out.append(f"{pos}.{k}.{process_num}:{tags}:{t}:{v}\n")
    return "".join(out)


def info_json(pairs: list[tuple[str, str]], process_num: int = 1) -> str:
    """`show info json`: one object per field, HAProxy's layout."""
    meta = {k: (t, tags) for k, t, tags in INFO_FIELDS}
    out = []
    for pos, (k, v) in enumerate(pairs):
        t, tags = meta.get(k, (_str, "MOP"))
        value = v if t == _str else int(v)
        out.append({"field": {"pos": pos, "name": k}, "processNum": process_num,
                    "tags": _json_tags(tags), "value": {"type": t, "value": value}})
    return _json.dumps(out, separators=(",", ":")) + "\n"


# -- Prometheus ----------------------------------------------------------------------------
#
# HAProxy's built-in exporter (promex, 2.6): families grouped by metric, with
# its names, types and labels (proxy, server, state, code, version). Empty
# fields are exported as NaN as promex does; times in seconds.

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GAUGE, COUNTER = "gauge", "counter"

# (metric name, info key or None, type, help)
_PROCESS_METRICS = (
    ("nbthread", "Nbthread", GAUGE, "Number of started threads (global.nbthread)"),
    ("nbproc", "Nbproc", GAUGE, "Number of started worker processes"),
    ("relative_process_id", "Process_num", GAUGE, "Relative process id, starting at 1"),
    ("uptime_seconds", "Uptime_sec", GAUGE, "How long ago this process was started (seconds)"),
    ("pool_failures_total", "PoolFailed", COUNTER, "Total number of failed memory pool allocations"),
    ("max_fds", "Ulimit-n", GAUGE, "Hard limit on the number of per-process file descriptors"),
    ("max_sockets", "Maxsock", GAUGE, "Hard limit on the number of per-process sockets"),
    ("max_connections", "Maxconn", GAUGE, "Hard limit on the number of per-process connections"),
    ("hard_max_connections", "Hard_maxconn", GAUGE, "Initial maxconn"),
    ("current_connections", "CurrConns", GAUGE, "Current number of connections"),
    ("connections_total", "CumConns", COUNTER, "Total number of connections"),
    ("requests_total", "CumReq", COUNTER, "Total number of HTTP requests received"),
    ("max_ssl_connections", "MaxSslConns", GAUGE, "Hard limit on the number of SSL connections"),
    ("current_ssl_connections", "CurrSslConns", GAUGE, "Current number of SSL connections"),
    ("ssl_connections_total", "CumSslConns", COUNTER, "Total number of SSL connections"),
    ("max_pipes", "Maxpipes", GAUGE, "Hard limit on the number of pipes for splicing"),
    ("pipes_used_total", "PipesUsed", COUNTER, "Current number of pipes in use"),
    ("pipes_free_total", "PipesFree", COUNTER, "Current number of allocated and available pipes"),
    ("current_connection_rate", "ConnRate", GAUGE, "Connections per second over the last second"),
    ("limit_connection_rate", "ConnRateLimit", GAUGE, "Hard limit for ConnRate"),
    ("max_connection_rate", "MaxConnRate", GAUGE, "Highest ConnRate reached"),
    ("current_session_rate", "SessRate", GAUGE, "Sessions per second over the last second"),
    ("limit_session_rate", "SessRateLimit", GAUGE, "Hard limit for SessRate"),
    ("max_session_rate", "MaxSessRate", GAUGE, "Highest SessRate reached"),
    ("current_ssl_rate", "SslRate", GAUGE, "SSL sessions per second over the last second"),
    ("limit_ssl_rate", "SslRateLimit", GAUGE, "Hard limit for SslRate"),
    ("max_ssl_rate", "MaxSslRate", GAUGE, "Highest SslRate reached"),
    ("current_frontend_ssl_key_rate", "SslFrontendKeyRate", GAUGE,
     "Frontend SSL key computations per second over the last second"),
    ("max_frontend_ssl_key_rate", "SslFrontendMaxKeyRate", GAUGE, "Highest SslFrontendKeyRate reached"),
    ("frontend_ssl_reuse", "SslFrontendSessionReuse_pct", GAUGE,
     "Percent of frontend SSL connections which did not require a new key"),
    ("current_backend_ssl_key_rate", "SslBackendKeyRate", GAUGE,
     "Backend SSL key computations per second over the last second"),
    ("max_backend_ssl_key_rate", "SslBackendMaxKeyRate", GAUGE, "Highest SslBackendKeyRate reached"),
    ("ssl_cache_lookups_total", "SslCacheLookups", COUNTER, "Total number of SSL session ID lookups"),
    ("ssl_cache_misses_total", "SslCacheMisses", COUNTER, "Total number of SSL session ID lookups that didn't find a session"),
    ("http_comp_bytes_in_total", "CompressBpsIn", COUNTER, "Bytes per second over last second, before http compression"),
    ("http_comp_bytes_out_total", "CompressBpsOut", COUNTER, "Bytes per second over last second, after http compression"),
    ("limit_http_comp", "CompressBpsRateLim", GAUGE, "Limit of CompressBpsOut"),
    ("current_zlib_memory", None, GAUGE, "Amount of memory currently used by HTTP compression"),
    ("max_zlib_memory", None, GAUGE, "Limit on the amount of memory used by HTTP compression"),
    ("current_tasks", "Tasks", GAUGE, "Total number of tasks in the current worker process"),
    ("current_run_queue", "Run_queue", GAUGE, "Total number of active tasks+tasklets"),
    ("idle_time_percent", "Idle_pct", GAUGE, "Percentage of last second spent waiting in the poller"),
    ("stopping", "Stopping", GAUGE, "1 if the process is soft-stopping, 0 otherwise"),
    ("jobs", "Jobs", GAUGE, "Current number of active jobs on the current worker process"),
    ("unstoppable_jobs", "Unstoppable Jobs", GAUGE, "Current number of unstoppable jobs"),
    ("listeners", "Listeners", GAUGE, "Current number of active listeners"),
    ("active_peers", "ActivePeers", GAUGE, "Current number of verified active peers connections"),
    ("connected_peers", "ConnectedPeers", GAUGE, "Current number of peers having passed the connection step"),
    ("dropped_logs_total", "DroppedLogs", COUNTER, "Total number of dropped logs"),
    ("busy_polling_enabled", "BusyPolling", GAUGE, "1 if busy-polling is currently in use"),
    ("failed_resolutions", "FailedResolutions", COUNTER, "Total number of failed DNS resolutions"),
    ("bytes_out_total", "TotalBytesOut", COUNTER, "Total number of bytes emitted"),
    ("spliced_bytes_out_total", "TotalSplicdedBytesOut", COUNTER, "Total number of bytes emitted through a kernel pipe"),
    ("bytes_out_rate", "BytesOutRate", GAUGE, "Number of bytes emitted over the last elapsed second"),
    ("recv_logs_total", "CumRecvLogs", COUNTER, "Total number of log messages received by log-forwarding listeners"),
    ("build_info", "Build info", GAUGE, "Build info"),
    ("max_memory_bytes", "Memmax_bytes", GAUGE, "Per-process memory limit (in bytes); 0=unset"),
    ("pool_allocated_bytes", "PoolAlloc_bytes", GAUGE, "Amount of memory allocated in pools (in bytes)"),
    ("pool_used_bytes", "PoolUsed_bytes", GAUGE, "Amount of pool memory currently used (in bytes)"),
    ("start_time_seconds", "Start_time_sec", GAUGE, "Start time in seconds"),
)

# (metric name, field, type, help, kinds) with kinds a subset of "fbs"
# (frontend, backend, server); special fields: status, hrsp (code labels),
# check_status, agg_* (state labels), *_seconds conversions.
_ROW_METRICS = (
    ("current_queue", "qcur", GAUGE, "Number of current queued connections.", "bs"),
    ("max_queue", "qmax", GAUGE, "Highest value of queued connections encountered since process started.", "bs"),
    ("current_sessions", "scur", GAUGE, "Number of current sessions on the frontend, backend or server.", "fbs"),
    ("max_sessions", "smax", GAUGE, "Highest value of current sessions encountered since process started.", "fbs"),
    ("limit_sessions", "slim", GAUGE, "Frontend/listener/server's maxconn, backend's fullconn.", "fbs"),
    ("sessions_total", "stot", COUNTER, "Total number of sessions since process started.", "fbs"),
    ("bytes_in_total", "bin", COUNTER, "Total number of request bytes since process started.", "fbs"),
    ("bytes_out_total", "bout", COUNTER, "Total number of response bytes since process started.", "fbs"),
    ("requests_denied_total", "dreq", COUNTER, "Total number of denied requests since process started.", "fb"),
    ("responses_denied_total", "dresp", COUNTER, "Total number of denied responses since process started.", "fbs"),
    ("request_errors_total", "ereq", COUNTER, "Total number of invalid requests since process started.", "f"),
    ("connection_errors_total", "econ", COUNTER, "Total number of failed connections to server since the worker process started.", "bs"),
    ("response_errors_total", "eresp", COUNTER, "Total number of invalid responses since the worker process started.", "bs"),
    ("retry_warnings_total", "wretr", COUNTER, "Total number of server connection retries since the worker process started.", "bs"),
    ("redispatch_warnings_total", "wredis", COUNTER, "Total number of server redispatches due to connection failures since the worker process started.", "bs"),
    ("status", "status", GAUGE, "Current status of the service, per state label value.", "fbs"),
    ("weight", "weight", GAUGE, "Server's effective weight, or sum of active servers' effective weights for a backend.", "bs"),
    ("active_servers", "act", GAUGE, "Total number of active UP servers with a non-zero weight.", "b"),
    ("backup_servers", "bck", GAUGE, "Total number of backup UP servers with a non-zero weight.", "b"),
    ("check_failures_total", "chkfail", COUNTER, "Total number of failed individual health checks per server/backend, since the worker process started.", "s"),
    ("check_up_down_total", "chkdown", COUNTER, "Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started.", "bs"),
    ("check_last_change_seconds", "lastchg", GAUGE, "How long ago the last server state changed, in seconds.", "bs"),
    ("downtime_seconds_total", "downtime", COUNTER, "Total time spent in DOWN state, for server or backend.", "bs"),
    ("queue_limit", "qlimit", GAUGE, "Limit on the number of connections in queue, for servers only (maxqueue argument).", "s"),
    ("current_throttle", "throttle", GAUGE, "Throttling ratio applied to a server's maxconn and weight during the slowstart period (0 to 100%).", "s"),
    ("loadbalanced_total", "lbtot", COUNTER, "Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness).", "bs"),
    ("limit_session_rate", "rate_lim", GAUGE, "Limit on the number of sessions accepted in a second (frontend only, 'rate-limit sessions' setting).", "f"),
    ("max_session_rate", "rate_max", GAUGE, "Highest value of sessions per second observed since the worker process started.", "fbs"),
    ("check_status", "check_status", GAUGE, "Status of last health check, per state label value.", "s"),
    ("check_code", "check_code", GAUGE, "layer5-7 code, if available of the last health check.", "s"),
    ("check_duration_seconds", "check_duration", GAUGE, "Total duration of the latest server health check, in seconds.", "s"),
    ("http_responses_total", "hrsp", COUNTER, "Total number of HTTP responses with status 100-199 returned by this object since the worker process started.", "fbs"),
    ("http_requests_rate_max", "req_rate_max", GAUGE, "Highest value of http requests observed since the worker process started.", "f"),
    ("http_requests_total", "req_tot", COUNTER, "Total number of HTTP requests processed by this object since the worker process started.", "fb"),
    ("client_aborts_total", "cli_abrt", COUNTER, "Total number of requests or connections aborted by the client since the worker process started.", "bs"),
    ("server_aborts_total", "srv_abrt", COUNTER, "Total number of requests or connections aborted by the server since the worker process started.", "bs"),
    ("http_comp_bytes_in_total", "comp_in", COUNTER, "Total number of bytes submitted to the HTTP compressor for this object since the worker process started.", "fb"),
    ("http_comp_bytes_out_total", "comp_out", COUNTER, "Total number of bytes emitted by the HTTP compressor for this object since the worker process started.", "fb"),
    ("http_comp_bytes_bypassed_total", "comp_byp", COUNTER, "Total number of bytes that bypassed HTTP compression for this object since the worker process started (CPU/memory/bandwidth limitation).", "fb"),
    ("http_comp_responses_total", "comp_rsp", COUNTER, "Total number of HTTP responses that were compressed for this object since the worker process started.", "fb"),
    ("last_session_seconds", "lastsess", GAUGE, "How long ago some traffic was seen on this object on this worker process, in seconds.", "bs"),
    ("queue_time_average_seconds", "qtime", GAUGE, "Avg. queue time for last 1024 successful connections.", "bs"),
    ("connect_time_average_seconds", "ctime", GAUGE, "Avg. connect time for last 1024 successful connections.", "bs"),
    ("response_time_average_seconds", "rtime", GAUGE, "Avg. response time for last 1024 successful connections.", "bs"),
    ("total_time_average_seconds", "ttime", GAUGE, "Avg. total time for last 1024 successful connections.", "bs"),
    ("connections_rate_max", "conn_rate_max", GAUGE, "Highest value of connections per second observed since the worker process started.", "f"),
    ("connections_total", "conn_tot", COUNTER, "Total number of new connections accepted on this frontend since the worker process started.", "f"),
    ("intercepted_requests_total", "intercepted", COUNTER, "Total number of HTTP requests intercepted on the frontend (redirects/stats/services) since the worker process started.", "f"),
    ("denied_connections_total", "dcon", COUNTER, "Total number of incoming connections blocked on a listener/frontend by a tcp-request connection rule since the worker process started.", "f"),
    ("denied_sessions_total", "dses", COUNTER, "Total number of incoming sessions blocked on a listener/frontend by a tcp-request connection rule since the worker process started.", "f"),
    ("failed_header_rewriting_total", "wrew", COUNTER, "Total number of failed HTTP header rewrites since the worker process started.", "fbs"),
    ("connection_attempts_total", "connect", COUNTER, "Total number of outgoing connection attempts on this backend/server since the worker process started.", "bs"),
    ("connection_reuses_total", "reuse", COUNTER, "Total number of reused connection on this backend/server since the worker process started.", "bs"),
    ("http_cache_lookups_total", "cache_lookups", COUNTER, "Total number of HTTP requests looked up in the cache on this frontend/backend since the worker process started.", "fb"),
    ("http_cache_hits_total", "cache_hits", COUNTER, "Total number of HTTP requests not found in the cache on this frontend/backend since the worker process started.", "fb"),
    ("idle_connections_current", "srv_icur", GAUGE, "Current number of idle connections available for reuse on this server.", "s"),
    ("idle_connections_limit", "src_ilim", GAUGE, "Limit on the number of idle connections available for reuse on this server (idle servers' max).", "s"),
    ("max_queue_time_seconds", "qtime_max", GAUGE, "Maximum observed time spent in the queue", "bs"),
    ("max_connect_time_seconds", "ctime_max", GAUGE, "Maximum observed time spent waiting for a connection to complete", "bs"),
    ("max_response_time_seconds", "rtime_max", GAUGE, "Maximum observed time spent waiting for a server response", "bs"),
    ("max_total_time_seconds", "ttime_max", GAUGE, "Maximum observed total request+response time (request+queue+connect+response+processing)", "bs"),
    ("internal_errors_total", "eint", COUNTER, "Total number of internal errors since process started.", "fbs"),
    ("unsafe_idle_connections_current", "idle_conn_cur", GAUGE, "Current number of unsafe idle connections.", "s"),
    ("safe_idle_connections_current", "safe_conn_cur", GAUGE, "Current number of safe idle connections.", "s"),
    ("used_connections_current", "used_conn_cur", GAUGE, "Current number of connections in use.", "s"),
    ("need_connections_current", "need_conn_est", GAUGE, "Estimated needed number of connections.", "s"),
    ("uweight", "uweight", GAUGE, "Server's user weight, or sum of active servers' user weights for a backend.", "bs"),
    ("agg_server_status", "agg_server_status", GAUGE, "Backend's aggregated gauge of servers' status", "b"),
    ("agg_server_check_status", "agg_server_check_status", GAUGE, "[DEPRECATED] Backend's aggregated gauge of servers' status", "b"),
    ("agg_check_status", "agg_check_status", GAUGE, "Backend's aggregated gauge of servers' state check status", "b"),
)

# HAProxy's order of families: the field order of the exporter's table,
# which differs from the CSV only by the http/comp block placement; the
# list above already follows it per kind.
_FRONTEND_ORDER = ("current_sessions", "max_sessions", "limit_sessions", "sessions_total",
                   "bytes_in_total", "bytes_out_total", "requests_denied_total",
                   "responses_denied_total", "request_errors_total", "status",
                   "limit_session_rate", "max_session_rate", "http_responses_total",
                   "http_requests_rate_max", "http_requests_total", "http_comp_bytes_in_total",
                   "http_comp_bytes_out_total", "http_comp_bytes_bypassed_total",
                   "http_comp_responses_total", "connections_rate_max", "connections_total",
                   "intercepted_requests_total", "denied_connections_total",
                   "denied_sessions_total", "failed_header_rewriting_total",
                   "http_cache_lookups_total", "http_cache_hits_total", "internal_errors_total")

SERVER_STATES = ("DOWN", "UP", "MAINT", "DRAIN", "NOLB")
BACKEND_STATES = ("DOWN", "UP")
FRONTEND_STATES = ("DOWN", "UP")
# HAProxy's check statuses whose result is failed or passed (the state
# labels of haproxy_server_check_status), in its enum order
CHECK_STATES = ("HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP",
                "L7TOUT", "L7RSP", "L7OK", "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK")
_HRSP_CODES = (("1xx", "hrsp_1xx"), ("2xx", "hrsp_2xx"), ("3xx", "hrsp_3xx"),
               ("4xx", "hrsp_4xx"), ("5xx", "hrsp_5xx"), ("other", "hrsp_other"))
_HTTP_ONLY = frozenset(("http_responses_total", "http_requests_rate_max", "http_requests_total",
                        "http_comp_bytes_in_total", "http_comp_bytes_out_total",
                        "http_comp_bytes_bypassed_total", "http_comp_responses_total",
                        "intercepted_requests_total", "http_cache_lookups_total",
                        "http_cache_hits_total"))
_MS_TO_SECONDS = frozenset(("qtime", "ctime", "rtime", "ttime", "qtime_max", "ctime_max",
                            "rtime_max", "ttime_max", "check_duration"))


def escape_label(value: str) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs) -> str:
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs) + "}"


def _num(v) -> str:
    if v is None:
        return "NaN"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    return "NaN"


def _int_value(v: str):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


CERT_EXPIRY_METRIC = "farm_ssl_cert_expiry_days"
ACME_FAILURES_METRIC = "farm_acme_renewal_failures"
ACME_NEXT_METRIC = "farm_acme_next_attempt_seconds"


def cert_rows(certs, now: float | None = None, renewals: dict | None = None) -> list[dict]:
    """One dict per (frontend, certificate) of a TlsSet's certificates()
    (farm/tlsconf.py; read duck-typed): frontend, file, names, not_after
    (as OpenSSL prints it), days left (a float, negative once expired) and
    acme: the farm/renewals.py Renewal of that file (from renewals, file ->
    Renewal) when ACME manages it, else None."""
    now = time.time() if now is None else now
    renewals = renewals or {}
    return [{"frontend": fe, "file": c.path, "names": ", ".join(c.names), "not_after": c.not_after,
             "days": c.days_left(now), "acme": renewals.get(c.path)} for fe, c in certs]


def _acme_metrics(certs: list[dict], now: float) -> list[str]:
    """farm_acme_renewal_failures{proxy} and farm_acme_next_attempt_seconds
    {proxy}: one sample per frontend whose certificate ACME manages."""
    seen: dict[str, object] = {}
    for c in certs:
        if c.get("acme") is not None:
            seen.setdefault(c["frontend"], c["acme"])
    if not seen:
        return []
    out = [f"# HELP {ACME_FAILURES_METRIC} Consecutive failed ACME orders of the frontend's "
           "certificate (0 after a success; the current certificate is kept meanwhile)\n"
           f"# TYPE {ACME_FAILURES_METRIC} gauge\n"]
    out += [f"{ACME_FAILURES_METRIC}{_labels((('proxy', fe),))} {r.failures}\n" for fe, r in seen.items()]
    out.append(f"# HELP {ACME_NEXT_METRIC} Seconds until the next ACME order of the frontend's "
               "certificate (renewal or retry; 0 while one runs or is due)\n"
               f"# TYPE {ACME_NEXT_METRIC} gauge\n")
    out += [f"{ACME_NEXT_METRIC}{_labels((('proxy', fe),))} "
            f"{round(max(0.0, r.next_try - now) if r.state != 'running' else 0.0, 3)!r}\n"
            for fe, r in seen.items()]
    return out


def prometheus(rows: list[dict], info_pairs: list[tuple[str, str]], certs: list[dict] = (),
               sticks=(), now: float | None = None) -> str:
    """Prometheus text exposition (0.0.4) with the names, types and labels of
    HAProxy's built-in exporter: haproxy_process_*, haproxy_frontend_*,
    haproxy_backend_*, haproxy_server_*, haproxy_sticktable_size/used
    {name,type} for each stick table of `sticks` (farm/tables.py
    StickTable, read duck-typed: name, type, size, used); then farm's own
    families:
    farm_ssl_cert_expiry_days{proxy,file} (gauge) for each certificate of
    `certs` (cert_rows); for each frontend whose certificate ACME manages,
    farm_acme_renewal_failures{proxy} and farm_acme_next_attempt_seconds
    {proxy} (gauges; the next attempt relative to `now`, default the
    clock)."""
    out: list[str] = []
    inf = dict(info_pairs)

    for name, key, typ, help_ in _PROCESS_METRICS:
        full = "haproxy_process_" + name
        out.append(f"# HELP {full} {help_}\n# TYPE {full} {typ}\n")
        if name == "build_info":
            out.append(f'{full}{_labels((("version", inf.get("Version", "")),))} 1\n')
            continue
        out.append(f"{full} {_num(_int_value(inf.get(key, '0')) if key else 0)}\n")

    by_name = {m[0]: m for m in _ROW_METRICS}
    fronts = [r for r in rows if r["type"] == TYPE_FRONTEND]
    backs = [r for r in rows if r["type"] == TYPE_BACKEND]
    servers = [r for r in rows if r["type"] == TYPE_SERVER]
    servers_of: dict[str, list[dict]] = {}
    for r in servers:
        servers_of.setdefault(r["pxname"], []).append(r)

    def family(prefix: str, metric, samples: list[str]) -> None:
        if samples:
            name, _, typ, help_, _ = metric
            out.append(f"# HELP {prefix}{name} {help_}\n# TYPE {prefix}{name} {typ}\n")
            out.extend(samples)

    def by_label(prefix: str, name: str, base: tuple, key: str, pairs) -> list[str]:
        """One sample per (label, value) of pairs, labelled key=label."""
        return [f"{prefix}{name}{_labels(base + ((key, label),))} {v}\n" for label, v in pairs]

    def one_hot(prefix: str, name: str, base: tuple, labels, current) -> list[str]:
        """A state family: 1 for the current label, 0 for the others."""
        return by_label(prefix, name, base, "state", ((l, 1 if l == current else 0) for l in labels))

    def hrsp(prefix: str, name: str, base: tuple, r: dict) -> list[str]:
        return by_label(prefix, name, base, "code", ((code, _num(r[f])) for code, f in _HRSP_CODES))

    def value(r: dict, field: str):
        v = r.get(field)
        if field in _MS_TO_SECONDS and v is not None:
            return v / 1000.0
        return v

    # frontends
    prefix = "haproxy_frontend_"
    for name in _FRONTEND_ORDER:
        metric = by_name[name]
        field = metric[1]
        samples = []
        for r in fronts:
            base = (("proxy", r["pxname"]),)
            if name in _HTTP_ONLY and r["mode"] != "http":
                continue
            if field == "status":
                samples += one_hot(prefix, name, base, FRONTEND_STATES,
                                   FRONTEND_STATES[1 if r["status"] == "OPEN" else 0])
            elif field == "hrsp":
                samples += hrsp(prefix, name, base, r)
            else:
                samples.append(f"{prefix}{name}{_labels(base)} {_num(value(r, field))}\n")
        family(prefix, metric, samples)

    # backends
    prefix = "haproxy_backend_"
    for metric in _ROW_METRICS:
        name, field, _, _, kinds = metric
        if "b" not in kinds:
            continue
        samples = []
        for r in backs:
            base = (("proxy", r["pxname"]),)
            if name in _HTTP_ONLY and r["mode"] != "http":
                continue
            srvs = servers_of.get(r["pxname"], [])
            if field == "status":
                samples += one_hot(prefix, name, base, BACKEND_STATES,
                                   BACKEND_STATES[1 if r["status"] == "UP" else 0])
            elif field == "hrsp":
                samples += hrsp(prefix, name, base, r)
            elif field in ("agg_server_status", "agg_server_check_status"):
                if not srvs:
                    continue
                counts = dict.fromkeys(SERVER_STATES, 0)
                for s in srvs:
                    counts[server_state(s["status"])] += 1
                samples += by_label(prefix, name, base, "state", counts.items())
            elif field == "agg_check_status":
                if not srvs:
                    continue
                counts = dict.fromkeys(CHECK_STATES, 0)
                for s in srvs:
                    if s["check_status"] in counts:
                        counts[s["check_status"]] += 1
                samples += by_label(prefix, name, base, "state", counts.items())
            else:
                samples.append(f"{prefix}{name}{_labels(base)} {_num(value(r, field))}\n")
        family(prefix, metric, samples)

    # servers
    prefix = "haproxy_server_"
    for metric in _ROW_METRICS:
        name, field, _, _, kinds = metric
        if "s" not in kinds:
            continue
        samples = []
        for r in servers:
            base = (("proxy", r["pxname"]), ("server", r["svname"]))
            if name in _HTTP_ONLY and r["mode"] != "http":
                continue
            if field == "status":
                samples += one_hot(prefix, name, base, SERVER_STATES, server_state(r["status"]))
            elif field == "check_status":
                if r["check_status"] is None:
                    continue
                samples += one_hot(prefix, name, base, CHECK_STATES, r["check_status"])
            elif field == "check_code":
                if r["check_status"] is None:
                    continue
                samples.append(f"{prefix}{name}{_labels(base)} {r['check_code'] or 0}\n")
            elif field == "check_duration":
                ms = r.get("_last_check_duration")
                if ms is None:
                    continue
                samples.append(f"{prefix}{name}{_labels(base)} {_num(ms / 1000.0)}\n")
            elif field == "hrsp":
                samples += hrsp(prefix, name, base, r)
            else:
                samples.append(f"{prefix}{name}{_labels(base)} {_num(value(r, field))}\n")
        family(prefix, metric, samples)
    for metric, help_ in (("size", "Stick table size (entries)."),
                          ("used", "Number of entries used in this stick table.")):
        if sticks:
            out.append(f"# HELP haproxy_sticktable_{metric} {help_}\n"
                       f"# TYPE haproxy_sticktable_{metric} gauge\n")
        for t in sticks:
            labels = _labels((("name", t.name), ("type", t.type)))
            out.append(f"haproxy_sticktable_{metric}{labels} {getattr(t, metric)}\n")
    if certs:
        out.append(f"# HELP {CERT_EXPIRY_METRIC} Days until the certificate's notAfter date "
                   "(negative once expired)\n"
                   f"# TYPE {CERT_EXPIRY_METRIC} gauge\n")
        for c in certs:
            labels = _labels((("proxy", c["frontend"]), ("file", c["file"])))
            out.append(f"{CERT_EXPIRY_METRIC}{labels} {round(c['days'], 3)!r}\n")
    out += _acme_metrics(certs, time.time() if now is None else now)
    return "".join(out)
