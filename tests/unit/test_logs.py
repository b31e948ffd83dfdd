"""Access log: formats, the line parser and filters (farm/logtail.py), the
syslog headers, and the AccessLog writer on real files, pipes and sockets."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
import time
from pathlib import Path

import pytest

from farm import loader, logs
from farm.logtail import (
    Entry, Filter, Follower, parse_line, parse_slow, parse_status_spec, read_lines,
    read_lines_reversed, strip_syslog,
)

REFERENCE = Path("/work/shared/reference")
if not REFERENCE.exists():      # the checkout's copy, if the shared one is not mounted
    REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "reference"
RAW = REFERENCE / "httplog_raw.log"
SYSLOG = REFERENCE / "httplog_syslog.log"
needs_reference = pytest.mark.skipif(not RAW.exists(), reason="HAProxy reference logs not available")


@pytest.fixture
def tz():
    """Run with a fixed local time zone; restore the previous one after."""
    old = os.environ.get("TZ")

    def set_tz(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()
    yield set_tz
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()
    logs._date_cache[0] = -1


def http_record(**over) -> dict:
    r = {
        "client_ip": "192.0.2.7", "client_port": 51234, "accept_time": 1795000000.25,
        "frontend": "www", "backend": "app", "server": "s1",
        "tr": 1, "tw": 0, "tc": 2, "tr_server": 30, "ta": 34, "status": 200, "bytes_read": 1234,
        "captured_request_cookie": "-", "captured_response_cookie": "-", "termination_state": "----",
        "actconn": 5, "feconn": 4, "beconn": 3, "srv_conn": 2, "retries": 0, "redispatched": False,
        "srv_queue": 0, "backend_queue": 0, "request": "GET /index.html?q=1 HTTP/1.1",
    }
    r.update(over)
    return r


def tcp_record(**over) -> dict:
    r = {
        "client_ip": "10.1.2.3", "client_port": 40000, "accept_time": 1795000000.5,
        "frontend": "db", "backend": "pg", "server": "pg2",
        "tw": 0, "tc": 1, "tt": 1520, "bytes_read": 98765, "bytes_uploaded": 321,
        "termination_state": "--", "actconn": 7, "feconn": 6, "beconn": 5, "srv_conn": 4,
        "retries": 1, "redispatched": True, "srv_queue": 0, "backend_queue": 2,
    }
    r.update(over)
    return r


# ------------------------------------------------------------------ parser

@needs_reference
def test_every_reference_httplog_line_parses():
    lines = RAW.read_text().splitlines()
    assert len(lines) == 28
    for line in lines:
        e = parse_line(line)
        assert e is not None, line
        assert e.format == "httplog" and e.mode == "http" and e.raw == line
        assert e.fields["client_ip"] == "127.0.0.1"
        assert e.fields["status"] in (200, 404)


@needs_reference
def test_reference_httplog_fields():
    lines = RAW.read_text().splitlines()
    first = parse_line(lines[0]).fields
    assert first == {
        "client_ip": "127.0.0.1", "client_port": 36056, "accept_date": "20/Nov/2026:22:19:17.568",
        "frontend": "fe_main", "backend": "be_app", "server": "web1",
        "tr": 0, "tw": 0, "tc": 0, "tr_server": 7, "ta": 7, "status": 200, "bytes_read": 185,
        "captured_request_cookie": "-", "captured_response_cookie": "-", "termination_state": "----",
        "actconn": 1, "feconn": 1, "beconn": 0, "srv_conn": 0, "retries": 0, "redispatched": False,
        "srv_queue": 0, "backend_queue": 0, "request": "GET / HTTP/1.1",
    }
    nope = parse_line(lines[4])
    assert (nope.status, nope.fields["bytes_read"], nope.fields["request"]) == (404, 500, "GET /nope HTTP/1.1")
    stats = parse_line(lines[5]).fields
    assert (stats["frontend"], stats["backend"], stats["server"]) == ("stats", "stats", "<STATS>")
    assert stats["termination_state"] == "LR--" and stats["request"] == "GET /stats;csv HTTP/1.1"
    assert parse_line(lines[6]).fields["server"] == "<PROMEX>"
    assert parse_line(lines[6]).fields["bytes_read"] == 52622


@needs_reference
def test_reference_syslog_lines_parse_like_the_raw_ones():
    raw = RAW.read_text().splitlines()
    syslog = SYSLOG.read_text().splitlines()
    assert len(raw) == len(syslog)
    for r, s in zip(raw, syslog):
        assert strip_syslog(s) == r
        e = parse_line(s)
        assert e is not None and e.raw == s
        assert e.fields == parse_line(r).fields


@pytest.mark.parametrize("header", [
    "Nov 20 22:19:17 lb1 haproxy[14050]: ",
    "<134>Nov 20 22:19:17 haproxy[14050]: ",
    "<134>Nov  5 02:09:07 farm[7]: ",
    "<134>Nov 20 22:19:17 lb1 farm: ",
    "<158>1 2026-11-20T22:19:17.568123+01:00 lb1 farm 14050 - - ",
    "2026-11-20T22:19:17.568123+01:00 lb1 haproxy[14050]: ",
])
def test_syslog_prefixes_are_skipped(header):
    line = logs.httplog_line(http_record())
    assert strip_syslog(header + line) == line
    assert parse_line(header + line).fields == parse_line(line).fields


def test_httplog_roundtrip_of_farms_own_lines():
    for rec in (http_record(),
                http_record(status=503, server="<NOSRV>", tw=-1, tc=-1, tr_server=-1,
                            termination_state="SC--", retries=3, redispatched=True),
                http_record(request="<BADREQ>", status=400, termination_state="PR--"),
                http_record(request='GET /a"b\x01\xe9 HTTP/1.1')):
        line = logs.httplog_line(rec)
        e = parse_line(line)
        assert e is not None and e.format == "httplog", line
        want = {k: v for k, v in rec.items() if k != "accept_time"}
        want["accept_date"] = logs.haproxy_date(rec["accept_time"])
        want["request"] = logs._escape_request(rec["request"])
        assert e.fields == want


def test_tcplog_lines():
    rec = tcp_record()
    line = logs.tcplog_line(rec)
    assert line.endswith(" 0/1/1520 98765 -- 7/6/5/4/+1 0/2")
    e = parse_line(line)
    assert e.format == "tcplog" and e.mode == "tcp" and e.total_ms == 1520 and e.status is None
    want = {k: v for k, v in rec.items() if k not in ("accept_time", "bytes_uploaded")}
    want["accept_date"] = logs.haproxy_date(rec["accept_time"])
    assert e.fields == want
    # HAProxy's own tcplog: no server reached, logasap '+', IPv6 client.
    e = parse_line("::1:40000 [20/Nov/2026:22:19:17.568] fe be/<NOSRV> -1/-1/+5 +0 SC 1/1/0/0/0 0/0")
    assert e.fields["client_ip"] == "::1" and e.fields["client_port"] == 40000
    assert (e.fields["tw"], e.fields["tc"], e.fields["tt"], e.fields["termination_state"]) == (-1, -1, 5, "SC")


def test_haproxy_httplog_variants():
    # Captured request/response headers, a redispatch, status -1, IPv6.
    line = ('2001:db8::1:443 [20/Nov/2026:22:19:17.568] fe~ be/s2 10/0/-1/-1/+3010 -1 0 - - CC-- '
            '3/2/1/0/+1 0/0 {example.com|curl/8.0} {} "GET /x HTTP/1.1"')
    f = parse_line(line).fields
    assert f["client_ip"] == "2001:db8::1" and f["frontend"] == "fe~" and f["ta"] == 3010
    assert f["status"] == -1 and f["retries"] == 1 and f["redispatched"] is True
    assert f["captured_request_headers"] == "example.com|curl/8.0"
    assert f["captured_response_headers"] == ""


def test_json_lines():
    rec = http_record(status=502)
    e = parse_line(logs.json_line(rec))
    assert e.format == "json" and e.mode == "http" and e.status == 502 and e.total_ms == 34
    assert e.fields["accept_date"] == logs.iso_date(rec["accept_time"])
    t = parse_line(logs.json_line(tcp_record()))
    assert t.mode == "tcp" and t.total_ms == 1520 and t.fields["bytes_uploaded"] == 321
    # A JSON line behind a syslog header.
    assert parse_line("<134>Nov 20 22:19:17 farm[1]: " + logs.json_line(rec)).status == 502


@pytest.mark.parametrize("text", [
    "", "hello", "[1, 2]", "{not json", "127.0.0.1:1 [x] fe be/s 1/2/3 200",
    '127.0.0.1:36056 [20/Nov/2026:22:19:17.568] fe_main be_app/web1 0/0/0/7/7 200 185 - - ---- 1/1/0/0/0 0/0 "GET / HTT',
])
def test_garbage_does_not_parse(text):
    assert parse_line(text) is None


# ------------------------------------------------------------------ filters

def test_status_specs():
    assert parse_status_spec("5xx") == ((500, 599),)
    assert parse_status_spec("404") == ((404, 404),)
    assert parse_status_spec("4xx,5xx") == ((400, 499), (500, 599))
    assert parse_status_spec("500-504, 2XX") == ((500, 504), (200, 299))
    for bad in ("6xx", "5x", "40", "abc", "504-500", "", "4xx,"):
        with pytest.raises(ValueError):
            parse_status_spec(bad)


def test_slow_durations():
    assert parse_slow("500ms") == 500
    assert parse_slow("2s") == 2000
    assert parse_slow("1m30s") == 90000
    assert parse_slow("250") == 250
    with pytest.raises(ValueError):
        parse_slow("fast")


def entries() -> list[Entry]:
    recs = [
        http_record(status=200, ta=10),
        http_record(status=404, ta=700, server="s2"),
        http_record(status=503, ta=5000, backend="api", server="<NOSRV>"),
        http_record(status=500, ta=499, frontend="admin"),
    ]
    out = [parse_line(logs.httplog_line(r)) for r in recs]
    out.append(parse_line(logs.tcplog_line(tcp_record(tt=900))))
    out.append(parse_line(logs.json_line(http_record(status=502, ta=1))))
    return out


def statuses(flt: Filter) -> list:
    return [e.status if e.mode == "http" else "tcp" for e in entries() if flt.match(e)]


def test_filters():
    assert statuses(Filter()) == [200, 404, 503, 500, "tcp", 502]
    assert not Filter().active and Filter(slow_ms=1).active
    assert statuses(Filter(status=parse_status_spec("5xx"))) == [503, 500, 502]
    assert statuses(Filter(status=parse_status_spec("404"))) == [404]
    assert statuses(Filter(status=parse_status_spec("4xx,5xx"))) == [404, 503, 500, 502]
    assert statuses(Filter(backend="api")) == [503]
    assert statuses(Filter(backend="app,pg")) == [200, 404, 500, "tcp", 502]
    assert statuses(Filter(server="s2")) == [404]
    assert statuses(Filter(frontend="admin")) == [500]
    # --slow: Ta for HTTP, Tt for TCP; at least the threshold.
    assert statuses(Filter(slow_ms=500)) == [404, 503, "tcp"]
    assert statuses(Filter(slow_ms=700)) == [404, 503, "tcp"]
    assert statuses(Filter(slow_ms=701)) == [503, "tcp"]
    # Conditions combine (AND).
    assert statuses(Filter(status=parse_status_spec("5xx"), slow_ms=400)) == [503, 500]
    assert statuses(Filter(status=parse_status_spec("5xx"), frontend="www", slow_ms=400)) == [503]


# ------------------------------------------------------------------ syslog headers

def test_rfc3164_headers_byte_for_byte(tz):
    tz("Europe/Paris")
    t = 1795210157.568          # 2026-11-20 22:29:17.568 in Paris
    assert logs.syslog_header("rfc3164", "local0", "farm", 14050, t) == "<134>Nov 20 22:29:17 farm[14050]: "
    assert (logs.syslog_header("rfc3164", "local0", "haproxy", 14050, t, "lb1")
            == "<134>Nov 20 22:29:17 lb1 haproxy[14050]: ")
    assert logs.syslog_header("rfc3164", "local7", "lb", 1, t) == "<190>Nov 20 22:29:17 lb[1]: "
    assert logs.syslog_header("rfc3164", "user", "lb", 1, t) == "<14>Nov 20 22:29:17 lb[1]: "
    assert logs.syslog_header("rfc3164", "kern", "lb", 1, t, severity=3) == "<3>Nov 20 22:29:17 lb[1]: "
    # The day is padded with a space, not a zero (RFC 3164 4.1.2).
    t5 = 1793839147.0           # 2026-11-05 01:39:07 in Paris
    assert logs.syslog_header("rfc3164", "local0", "farm", 9, t5) == "<134>Nov  5 01:39:07 farm[9]: "


def test_rfc5424_headers_byte_for_byte(tz):
    tz("Europe/Paris")
    t = 1795210157.568123
    assert (logs.syslog_header("rfc5424", "local0", "farm", 14050, t, "lb1")
            == "<134>1 2026-11-20T22:29:17.568123+01:00 lb1 farm 14050 - - ")
    assert (logs.syslog_header("rfc5424", "local3", "farm", 7, 1782000000.5, "lb1")
            == "<158>1 2026-06-21T02:00:00.500000+02:00 lb1 farm 7 - - ")
    tz("America/St_Johns")      # a negative offset with minutes
    assert (logs.syslog_header("rfc5424", "local0", "farm", 1, 1795210157.0, "h")
            == "<134>1 2026-11-20T17:59:17.000000-03:30 h farm 1 - - ")
    tz("UTC")
    assert (logs.syslog_header("rfc5424", "daemon", "farm", 1, 1795210157.25, "h")
            == "<30>1 2026-11-20T21:29:17.250000+00:00 h farm 1 - - ")
    # No hostname given: the system's.
    assert logs.syslog_header("rfc5424", "local0", "farm", 1, 0.0).split(" ")[2] == socket.gethostname()


def test_targets():
    T = logs.Target
    assert logs.parse_target("off") == T("off")
    assert logs.parse_target("stdout") == T("stdout")
    assert logs.parse_target("/var/log/farm/access.log") == T("file", path="/var/log/farm/access.log")
    assert logs.parse_target("access.log") == T("file", path="access.log")
    assert logs.parse_target("udp://127.0.0.1:514") == T("udp", host="127.0.0.1", port=514)
    assert logs.parse_target("udp://logs.example.com") == T("udp", host="logs.example.com", port=514)
    assert logs.parse_target("udp://[::1]:5514") == T("udp", host="::1", port=5514)
    assert logs.parse_target("unix:///dev/log") == T("unix", path="/dev/log")
    for bad in ("", "udp://", "udp://:514", "udp://h:0", "udp://h:99999", "udp://h:x", "udp://::1:514",
                "udp://[::1", "udp://[::1]x", "unix://dev/log", "tcp://h:514", "http://x"):
        with pytest.raises(ValueError):
            logs.parse_target(bad)


LOG_CFG = """
[log]
{}
[frontends.fe]
bind = "127.0.0.1:8080"
default_backend = "be"
[backends.be]
[[backends.be.servers]]
name = "s1"
address = "127.0.0.1:9000"
"""


def test_loader_log_keys():
    cfg = loader.load_text(LOG_CFG.format(
        'access = "unix:///dev/log"\nsyslog_format = "rfc5424"\nfacility = "local3"\ntag = "lb"\nhostname = "lb1"'))
    assert cfg.log.access == "unix:///dev/log"
    assert (cfg.log.syslog_format, cfg.log.facility, cfg.log.tag, cfg.log.hostname) == ("rfc5424", "local3", "lb", "lb1")
    d = loader.load_text(LOG_CFG.format('access = "udp://127.0.0.1:514"')).log
    assert (d.syslog_format, d.facility, d.tag, d.hostname) == ("rfc3164", "local0", "farm", "")
    bad = {
        'access = "tcp://127.0.0.1:514"': "log.access: unknown log target scheme",
        'access = "udp://127.0.0.1:70000"': "log.access: invalid port",
        'syslog_format = "rfc5425"': "log.syslog_format: unknown syslog format 'rfc5425' (did you mean 'rfc5424'?)",
        'facility = "local8"': "log.facility: unknown syslog facility 'local8'",
        'tag = "my app"': "log.tag: invalid syslog tag",
        'hostname = "a b"': "log.hostname: invalid syslog hostname",
    }
    for line, message in bad.items():
        with pytest.raises(loader.ConfigErrors) as ei:
            loader.load_text(LOG_CFG.format(line))
        assert message in str(ei.value), str(ei.value)


# ------------------------------------------------------------------ AccessLog: files

def test_file_buffered_one_write_per_flush(tmp_path, monkeypatch):
    path = tmp_path / "access.log"
    log = logs.AccessLog(str(path))
    assert log.enabled and path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.fstat(log.fd).st_mode and fcntl.fcntl(log.fd, fcntl.F_GETFL) & os.O_APPEND
    writes = []
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(bytes(data)) or real_write(fd, data))
    for i in range(1000):
        log.write(f"line {i}")
    assert path.read_bytes() == b""              # nothing before the end of the turn
    log.flush()
    log.flush()                                  # nothing left: no write
    monkeypatch.undo()
    assert len(writes) == 1
    assert path.read_text().splitlines() == [f"line {i}" for i in range(1000)]
    assert log.dropped == 0 and log.pending == b""
    log.close()


def test_off_target_writes_nothing():
    log = logs.AccessLog("off")
    assert not log.enabled
    log.write("x")
    log.flush()
    log.reopen()
    log.close()


def test_reopen_after_rename_loses_nothing(tmp_path):
    path = tmp_path / "access.log"
    log = logs.AccessLog(str(path))
    log.write("a")
    log.flush()
    os.rename(path, tmp_path / "access.log.1")
    log.write("b")          # after the rename, before the signal: the old file
    log.flush()
    log.write("c")          # buffered when the signal arrives: flushed to the old file
    log.reopen()
    log.write("d")
    log.flush()
    assert (tmp_path / "access.log.1").read_text() == "a\nb\nc\n"
    assert path.read_text() == "d\n"
    log.close()


def test_reopen_failure_keeps_the_old_file(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    path = d / "access.log"
    log = logs.AccessLog(str(path))
    os.rename(d, tmp_path / "moved")           # the directory is gone: reopen fails
    log.reopen()
    log.write("still here")
    log.flush()
    assert (tmp_path / "moved" / "access.log").read_text() == "still here\n"
    log.close()


def test_open_failure_at_boot_raises(tmp_path):
    with pytest.raises(OSError):
        logs.AccessLog(str(tmp_path / "missing-dir" / "access.log"))


def test_failed_file_write_is_counted(monkeypatch, tmp_path):
    log = logs.AccessLog(str(tmp_path / "a.log"))

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "write", full)
    for i in range(7):
        log.write(f"l{i}")
    log.flush()
    monkeypatch.undo()
    assert log.dropped == 7 and log.pending == b""
    log.close()


def test_from_log_config(tmp_path):
    from farm import model
    log = logs.AccessLog(model.LogConfig(access=str(tmp_path / "a.log"), tag="lb", facility="local2"))
    assert log.target == str(tmp_path / "a.log") and log.tag == "lb" and log.facility == "local2"
    log.close()


# ------------------------------------------------------------------ AccessLog: pipes

def nonblocking_reader(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def drain(fd: int) -> bytes:
    out = []
    while True:
        try:
            d = os.read(fd, 1 << 20)
        except BlockingIOError:
            break
        if not d:
            break
        out.append(d)
    return b"".join(out)


def test_pipe_chunks_cut_at_line_ends(tmp_path, monkeypatch):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = nonblocking_reader(fifo)
    log = logs.AccessLog(str(fifo))
    assert log.mode == "stream" and not os.get_blocking(log.fd)
    writes = []
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(bytes(data)) or real_write(fd, data))
    lines = [f"{i:05d} " + "x" * (i % 150) for i in range(400)]
    lines.insert(200, "L" * 5000)             # longer than PIPE_BUF: goes alone
    for line in lines:
        log.write(line)
    log.flush()
    monkeypatch.undo()
    assert len(writes) > 1
    for w in writes:
        assert w.endswith(b"\n")
        assert len(w) <= logs.PIPE_ATOMIC or w.count(b"\n") == 1
    assert b"L" * 5000 + b"\n" in writes
    assert drain(r).decode().splitlines() == lines
    assert log.dropped == 0 and log.pending == b""
    log.close()
    os.close(r)


def test_pipe_whose_reader_does_not_read(tmp_path, monkeypatch):
    """The pipe fills up: flush() never blocks; what does not fit waits in
    `pending` up to MAX_PENDING, beyond that lines are dropped and counted.
    Once the reader reads, everything kept arrives, in order, untorn."""
    monkeypatch.setattr(logs, "MAX_PENDING", 200_000)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = nonblocking_reader(fifo)
    log = logs.AccessLog(str(fifo))
    lines = [f"{i:06d} " + "y" * 93 for i in range(5000)]      # 100 bytes + newline each
    t0 = time.monotonic()
    for batch in range(50):
        for line in lines[batch * 100:(batch + 1) * 100]:
            log.write(line)
        log.flush()
    assert time.monotonic() - t0 < 2.0                         # never blocked
    assert 0 < len(log.pending) <= 200_000
    assert log.pending.endswith(b"\n")
    assert log.dropped > 0
    in_pipe = drain(r)                                         # the reader wakes up
    assert in_pipe.endswith(b"\n")
    pending_lines = log.pending.count(b"\n")
    assert in_pipe.count(b"\n") + pending_lines + log.dropped == 5000
    log.flush()                                                # no new line: pending goes out
    got = in_pipe + drain(r)
    while log.pending:
        log.flush()
        got += drain(r)
    got_lines = got.decode().splitlines()
    assert len(got_lines) == 5000 - log.dropped
    assert got_lines == lines[:len(got_lines)]                 # the newest lines were dropped
    log.close()
    os.close(r)


def test_pipe_reader_gone_counts_everything(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = nonblocking_reader(fifo)
    log = logs.AccessLog(str(fifo))
    os.close(r)                                                # EPIPE from now on
    for i in range(10):
        log.write(f"l{i}")
    log.flush()
    assert log.dropped == 10 and log.pending == b""
    log.close()


def test_stdout_pipe_gets_its_own_nonblocking_description():
    """For stdout, the inherited descriptor is shared with the master, the
    other workers and the shell: it must stay blocking. The writer reopens
    the pipe through /proc/self/fd instead."""
    r, w = os.pipe()
    log = logs.AccessLog("off")
    log._set_fd(w, own=False)
    assert log.mode == "stream" and log.fd != w
    assert os.get_blocking(w) and not os.get_blocking(log.fd)
    log.write("hello")
    log.flush()
    assert os.read(r, 100) == b"hello\n"
    log.close()
    os.close(r)
    os.close(w)


def test_stdout_stream_socket_uses_dontwait(monkeypatch):
    monkeypatch.setattr(logs, "MAX_PENDING", 100_000)
    a, b = socket.socketpair()
    log = logs.AccessLog("off")
    log._set_fd(a.fileno(), own=False)
    assert log.mode == "stream" and log.sock is not None
    for i in range(20000):
        log.write(f"{i:05d} " + "z" * 60)
    log.flush()                                 # more than the socket buffers hold
    assert a.getblocking()                      # the shared socket is untouched
    assert log.pending and log.dropped
    b.setblocking(False)
    got = b""
    while True:
        try:
            got += b.recv(1 << 20)
        except BlockingIOError:
            if not log.pending:
                break
            log.flush()
    assert got.count(b"\n") + log.dropped == 20000
    assert all(line.endswith(b"z" * 60) for line in got.splitlines())
    log.close()
    a.close()
    b.close()


def test_close_counts_what_is_left(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = nonblocking_reader(fifo)
    log = logs.AccessLog(str(fifo))
    for i in range(2000):
        log.write("w" * 99)
    log.flush()
    left = log.pending.count(b"\n")
    assert left > 0
    log.close()
    assert log.dropped == left
    os.close(r)


# ------------------------------------------------------------------ AccessLog: syslog

def test_syslog_udp(tz, monkeypatch):
    tz("Europe/Paris")
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2)
    port = rx.getsockname()[1]
    log = logs.AccessLog(f"udp://127.0.0.1:{port}")
    monkeypatch.setattr(time, "time", lambda: 1795210157.568)
    log.write("first line")
    log.write("second line")
    log.flush()
    monkeypatch.undo()
    pid = os.getpid()
    assert rx.recv(9000) == f"<134>Nov 20 22:29:17 farm[{pid}]: first line\n".encode()
    assert rx.recv(9000) == f"<134>Nov 20 22:29:17 farm[{pid}]: second line\n".encode()
    assert log.dropped == 0
    log.close()
    rx.close()


def test_syslog_unix_rfc5424(tz, tmp_path, monkeypatch):
    tz("Europe/Paris")
    path = str(tmp_path / "log.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(2)
    log = logs.AccessLog(f"unix://{path}", syslog_format="rfc5424", facility="local3", tag="lb", hostname="lb1")
    monkeypatch.setattr(time, "time", lambda: 1795210157.568123)
    log.write(logs.httplog_line(http_record()))
    log.flush()
    monkeypatch.undo()
    msg = rx.recv(9000)
    header = f"<158>1 2026-11-20T22:29:17.568123+01:00 lb1 lb {os.getpid()} - - "
    assert msg == (header + logs.httplog_line(http_record()) + "\n").encode()
    assert parse_line(msg.decode()).fields == parse_line(logs.httplog_line(http_record())).fields
    log.close()
    rx.close()


def test_syslog_long_line_truncated():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    log = logs.AccessLog("off")
    log.spec = logs.Target("unix", path="unused")
    log.mode = "dgram"
    log.sock = a
    log.write("x" * 20000)
    log.flush()
    msg = b.recv(65536)
    assert len(msg) == logs.SYSLOG_MAXLEN and msg.endswith(b"x\n")
    a.close()
    b.close()


def test_syslog_receiver_not_reading_drops_and_counts(tmp_path):
    path = str(tmp_path / "log.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    log = logs.AccessLog(f"unix://{path}")
    t0 = time.monotonic()
    for i in range(3000):
        log.write(f"line {i}")
    log.flush()
    assert time.monotonic() - t0 < 2.0
    assert log.dropped > 0
    rx.setblocking(False)
    got = []
    while True:
        try:
            got.append(rx.recv(9000))
        except BlockingIOError:
            break
    assert len(got) + log.dropped == 3000
    assert got[0].endswith(b": line 0\n")
    log.close()
    rx.close()


def test_syslog_udp_connection_refused_is_counted():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()                                   # nothing listens there now
    log = logs.AccessLog(f"udp://127.0.0.1:{port}")
    for _ in range(20):
        log.write("x")
        log.flush()
        time.sleep(0.005)                           # let the ICMP error come back
    assert log.dropped > 0                          # ECONNREFUSED seen and counted
    assert log.sock is not None                     # the socket stays usable
    log.close()


def test_syslog_unix_daemon_absent_then_back(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "RECONNECT_DELAY", 0.0)
    path = str(tmp_path / "log.sock")
    log = logs.AccessLog(f"unix://{path}")          # no daemon yet: no error at boot
    assert log.sock is None
    log.write("lost")
    log.flush()
    assert log.dropped == 1
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(2)
    log.write("kept")
    log.flush()
    assert rx.recv(9000).endswith(b": kept\n")
    # The daemon restarts (a new socket at the same path): ECONNREFUSED,
    # then a reconnect.
    rx.close()
    os.unlink(path)
    log.write("lost again")
    log.flush()
    assert log.dropped == 2
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(2)
    log.write("kept again")
    log.flush()
    assert rx.recv(9000).endswith(b": kept again\n")
    log.reopen()                                    # SIGUSR1 reconnects too
    log.write("after reopen")
    log.flush()
    assert rx.recv(9000).endswith(b": after reopen\n")
    log.close()
    rx.close()


# ------------------------------------------------------------------ reading back

def test_read_lines_forward_and_backward(tmp_path):
    p = tmp_path / "f"
    lines = [f"line {i} " + "x" * (i * 37 % 500) for i in range(3000)]
    p.write_bytes(("\n".join(lines) + "\nunterminated").encode())
    fd = os.open(p, os.O_RDONLY)
    size = os.fstat(fd).st_size
    assert [x.decode() for x in read_lines(fd, 0, size)] == lines + ["unterminated"]
    assert [x.decode() for x in read_lines_reversed(fd, size)] == (lines + ["unterminated"])[::-1]
    end = size - len("unterminated")
    assert [x.decode() for x in read_lines_reversed(fd, end)] == lines[::-1]
    os.close(fd)


def test_follower_rename_create_truncate(tmp_path):
    path = tmp_path / "access.log"
    path.write_text("old 1\n")
    f = Follower(str(path), start=0, grace=0.3)
    assert f.poll() == [b"old 1"]
    assert f.poll() == []
    with open(path, "a") as w:
        w.write("old 2\npart")
    assert f.poll() == [b"old 2"]                   # the partial line waits
    os.rename(path, tmp_path / "access.log.1")
    path.write_text("new 1\n")                      # logrotate's create
    with open(tmp_path / "access.log.1", "a") as w:
        w.write("ial\nold 3\n")                     # a worker not reopened yet
    got = f.poll()
    assert sorted(got) == [b"new 1", b"old 3", b"partial"]
    assert f.poll() == []
    with open(tmp_path / "access.log.1", "a") as w:
        w.write("old 4\n")
    with open(path, "a") as w:
        w.write("new 2\n")
    assert sorted(f.poll()) == [b"new 2", b"old 4"]
    time.sleep(0.4)
    assert f.poll() == [] and f.rotated == []       # the old file is let go once quiet
    # copytruncate
    with open(path, "r+") as w:
        w.truncate(0)
    with open(path, "a") as w:
        w.write("t\n")
    assert f.poll() == [b"t"]
    # missing, then back
    os.unlink(path)
    assert f.poll() == []
    path.write_text("back\n")
    assert f.poll() == [b"back"]
    f.close()


def test_syslog_unresolvable_host_never_blocks_a_flush(monkeypatch):
    """The name is looked up at start (and on SIGUSR1) only: a failing DNS
    costs dropped lines, not a lookup on every reconnect attempt."""
    calls = []

    def failing(*args, **kw):
        calls.append(args)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", failing)
    monkeypatch.setattr(logs, "RECONNECT_DELAY", 0.0)
    log = logs.AccessLog("udp://logs.example.invalid:514")
    assert log.sock is None and len(calls) == 1
    for _ in range(5):
        log.write("x")
        log.flush()
    assert log.dropped == 5 and len(calls) == 1
    log.reopen()
    assert len(calls) == 2
    log.close()


def test_syslog_udp_ipv6():
    try:
        rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        rx.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    rx.settimeout(2)
    log = logs.AccessLog(f"udp://[::1]:{rx.getsockname()[1]}")
    log.write("v6")
    log.flush()
    assert rx.recv(9000).endswith(b"]: v6\n")
    log.close()
    rx.close()


def _writers(target: str, procs: int, turns: int, per_turn: int) -> list[int]:
    """Fork `procs` processes that each write turns x per_turn lines of
    varied length through their own AccessLog (as the workers do)."""
    pids = []
    for p in range(procs):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                log = logs.AccessLog(target)
                for t in range(turns):
                    for i in range(per_turn):
                        n = (p * 7919 + t * 104729 + i * 31) % 3000
                        log.write(f"p{p} t{t} i{i} {n} " + chr(97 + p) * n + " end")
                    log.flush()
                    while log.pending:
                        time.sleep(0.001)
                        log.flush()
                log.close()
                code = 0 if log.dropped == 0 else 3
            except BaseException:
                code = 2
            os._exit(code)
        pids.append(pid)
    return pids


def _check_lines(lines: list[str], procs: int, turns: int, per_turn: int) -> None:
    assert len(lines) == procs * turns * per_turn
    seen = set()
    for line in lines:
        head, body = line.split(" ", 4)[:4], line.split(" ", 4)[4]
        p, t, i, n = int(head[0][1:]), int(head[1][1:]), int(head[2][1:]), int(head[3])
        assert body == chr(97 + p) * n + " end", f"torn line: {line[:80]!r}..."
        seen.add((p, t, i))
    assert len(seen) == procs * turns * per_turn


def test_processes_appending_to_one_file_never_interleave(tmp_path):
    path = tmp_path / "access.log"
    procs, turns, per_turn = 4, 150, 40            # turns of ~60 KB each
    pids = _writers(str(path), procs, turns, per_turn)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    _check_lines(path.read_text().splitlines(), procs, turns, per_turn)


def test_processes_writing_to_one_pipe_never_interleave(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = nonblocking_reader(fifo)
    procs, turns, per_turn = 4, 60, 40
    pids = _writers(str(fifo), procs, turns, per_turn)
    chunks = []
    running = set(pids)
    deadline = time.monotonic() + 60
    while running and time.monotonic() < deadline:
        chunks.append(drain(r))
        for pid in list(running):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert status == 0
                running.discard(pid)
        time.sleep(0.001)
    assert not running
    chunks.append(drain(r))
    os.close(r)
    _check_lines(b"".join(chunks).decode().splitlines(), procs, turns, per_turn)


def test_httplog_line_of_any_text(tz):
    """The line written byte by byte (ASCII parts) and the joined one
    (other text, a line past the buffer) are the same format."""
    tz("UTC")
    line = logs.httplog_line(http_record(request='GET /"\xe9\x01 HTTP/1.1', tw=-1, retries=3,
                                         redispatched=True, bytes_read=10**12))
    assert line == ('192.0.2.7:51234 [18/Nov/2026:11:06:40.250] www app/s1 1/-1/2/30/34 200 '
                    '1000000000000 - - ---- 5/4/3/2/+3 0/0 "GET /#22#E9#01 HTTP/1.1"')
    assert logs.httplog_line(http_record(frontend="caf\xe9", request="GET /\u20ac HTTP/1.1")) == (
        line.replace(" www ", " caf\xe9 ").replace("1/-1/2", "1/0/2").replace("1000000000000", "1234")
        .replace("+3", "0").replace('/#22#E9#01 ', "/#AC "))
    long_request = "GET /" + "a" * 9000 + " HTTP/1.1"
    assert logs.httplog_line(http_record(request=long_request)).endswith(f' "{long_request}"')
    text = logs.httplog_text("10.0.0.1", 2, 1795000000.5, "fe", "be", "s", 0, 0, 0, 0, 0, 200, 0,
                             "-", "-", "-", "-", "--", 1, 1, 1, 1, 0, False, 0, 0, b"GET / HTTP/1.0")
    assert text == ('10.0.0.1:2 [18/Nov/2026:11:06:40.500] fe be/s 0/0/0/0/0 200 0 - - ---- '
                    '1/1/1/1/0 0/0 "GET / HTTP/1.0"')


def test_httplog_text_request_as_parts(tz):
    tz("UTC")
    args = ("10.0.0.1", 2, 1795000000.5, "fe", "be", "s", 0, 0, 0, 0, 0, 200, 0,
            "-", "-", "-", "-", "--", 1, 1, 1, 1, 0, False, 0, 0)
    for parts in [(b"GET", b"/a\"b", b"HTTP/1.1"), (b"GET", b"/\xe9", b"HTTP/1.0")]:
        assert logs.httplog_text(*args, parts) == logs.httplog_text(*args, b" ".join(parts))
        assert logs.httplog_text(*args[:3], "f\xe9", *args[4:], parts) == \
            logs.httplog_text(*args[:3], "f\xe9", *args[4:], b" ".join(parts))
