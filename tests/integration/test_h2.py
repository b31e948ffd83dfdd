"""HTTP/2 on the client side with real peers: curl (--http2-prior-knowledge
on a cleartext bind, --http2 over TLS with ALPN), nghttp and h2load
(nghttp2-client), against the real master and its workers (conftest's
farm_factory), HTTP/1.1 servers behind (tests/integration/http_backend.py).
Crafted frames (hyperframe, hpack) test the limits and attacks end to end:
the codec's own unit tests (tests/unit/test_h2_conn.py) cover each limit
in memory, these check that the connection layer acts on them (the
client is cut off, the servers see a bounded number of requests, the log
says what happened)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hpack import Decoder, Encoder
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame)

from tests.integration.backends import free_port, pattern
from tests.integration.http_backend import HttpBackend
from tests.integration.tools import debian_tool
from tests.tlscerts import CA

pytestmark = pytest.mark.timeout(120)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = CA(tmp_path_factory.mktemp("pki"))
    return {"ca": ca, "www": ca.issue("www", "www.example.com", ["localhost"])}


@pytest.fixture
def backend():
    b = HttpBackend("s1")
    yield b
    b.close()


def config(backend, http: int, https: int | None = None, cert=None, workers: int = 1,
           rules: str = "", extra: str = "", timeout: str = "") -> str:
    binds = [f'"127.0.0.1:{http}"']
    tls = ""
    if https:
        binds.append(f'{{ address = "127.0.0.1:{https}", tls = true }}')
        tls = f'[frontends.www.tls]\ncertificates = ["{cert}"]\n'
    return f"""
[global]
workers = {workers}
hard_stop_after = "5s"
[log]
events = "@EVENTS@"
access = "@ACCESS@"
format = "httplog"
[defaults]
mode = "http"
[defaults.timeout]
{timeout}
[frontends.www]
bind = [{", ".join(binds)}]
default_backend = "app"
{tls}
{rules}
[backends.app]
[[backends.app.servers]]
name = "s1"
address = "{backend.address}"
{extra}
"""


def curl(url: str, *args: str, pki=None) -> subprocess.CompletedProcess:
    cmd = ["curl", "-sS", "--max-time", "15", "-o", "-", "-w", "\n%{http_version} %{http_code}"]
    if pki is not None:
        cmd += ["--cacert", str(pki["ca"].cert)]
    return subprocess.run(cmd + list(args) + [url], capture_output=True, timeout=30)


# -------------------------------------------------------------- real clients

def test_curl_prior_knowledge_get_post_and_log(farm_factory, backend):
    port = free_port()
    farm = farm_factory(config(backend, port))
    r = curl(f"http://127.0.0.1:{port}/name", "--http2-prior-knowledge")
    assert r.stdout.endswith(b"\n2 200"), r
    assert r.stdout.startswith(b"s1")
    body = pattern(300_000)
    r = curl(f"http://127.0.0.1:{port}/echo", "--http2-prior-knowledge",
             "--data-binary", "@-", "-H", "Content-Type: application/octet-stream")
    # (stdin empty: a zero-length POST) then a real body below
    assert r.stdout.endswith(b"\n2 200"), r
    p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "15",
                        "--data-binary", "@-", f"http://127.0.0.1:{port}/echo"],
                       input=body, capture_output=True, timeout=30)
    assert p.stdout == body
    # the servers saw HTTP/1.1 with a Host from :authority
    req = backend.requests[-1]
    assert req.version == "HTTP/1.1" and req.method == "POST"
    assert req.header("host") == f"127.0.0.1:{port}"
    lines = farm.wait_access_lines(3)
    assert len(lines) == 3, lines
    assert f'"GET http://127.0.0.1:{port}/name HTTP/2.0"' in lines[0]
    assert " 200 " in lines[0] and "app/s1" in lines[0]


def test_unknown_length_body_is_chunked_to_the_server(farm_factory, backend):
    port = free_port()
    farm_factory(config(backend, port))
    body = pattern(100_000)
    # curl sends a body from a pipe without content-length over HTTP/2
    p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "15",
                        "-H", "Transfer-Encoding: chunked", "-T", "-",
                        f"http://127.0.0.1:{port}/echo"],
                       input=body, capture_output=True, timeout=30)
    assert p.stdout == body, p.stderr
    req = backend.requests[-1]
    assert req.header("transfer-encoding") == "chunked"
    assert req.header("content-length") is None


def test_large_and_chunked_responses_with_flow_control(farm_factory, backend):
    port = free_port()
    farm_factory(config(backend, port))
    # 3 MB: far beyond the default 64 KiB stream window (WINDOW_UPDATEs)
    r = curl(f"http://127.0.0.1:{port}/big?size=3000000", "--http2-prior-knowledge")
    assert r.stdout[:-6] == pattern(3_000_000) and r.stdout.endswith(b"\n2 200")
    # a chunked server response arrives de-chunked, trailers as HEADERS
    r = curl(f"http://127.0.0.1:{port}/chunked?n=5", "--http2-prior-knowledge", "-v")
    assert r.stdout.endswith(b"\n2 200"), r
    assert b"\r\n" not in r.stdout[:-6] or b"0\r\n" not in r.stdout
    direct = subprocess.run(["curl", "-sS", f"http://{backend.address}/chunked?n=5"],
                            capture_output=True, timeout=10).stdout
    assert r.stdout[:-6] == direct


def test_chunked_response_trailers_become_headers(farm_factory, backend):
    port = free_port()
    farm_factory(config(backend, port))
    c = H2Client(port)
    c.send(c.headers(1, "/chunked?n=3"))
    frames = c.frames(3, until=lambda fs: any(getattr(f, "flags", ()) and "END_STREAM" in f.flags
                                               for f in fs if not isinstance(f, str)))
    heads = [f for f in frames if isinstance(f, HeadersFrame)]
    dec = Decoder()
    first = dict(dec.decode(heads[0].data))
    assert first[":status"] == "200" and "transfer-encoding" not in first
    trailers = dict(dec.decode(heads[-1].data))
    assert len(heads) == 2 and "END_STREAM" in heads[-1].flags
    body = b"".join(f.data for f in frames if isinstance(f, DataFrame))
    assert trailers == {"x-checksum": str(len(body))}
    assert b"\r\n" not in body or not body.startswith(b"1")    # no chunk framing left


def test_nghttp_many_streams_one_connection(farm_factory, backend):
    nghttp = debian_tool("nghttp", "nghttp2-client")
    port = free_port()
    farm = farm_factory(config(backend, port))
    urls = [f"http://127.0.0.1:{port}/name?i={i}" for i in range(20)]
    p = subprocess.run([nghttp, "-n", "-s", "-m", "1"] + urls, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    lines = farm.wait_access_lines(20)
    assert len(lines) == 20
    assert all("HTTP/2.0" in line and " 200 " in line for line in lines)
    assert len(backend.requests) == 20


def test_h2load_over_tls_alpn(farm_factory, backend, pki):
    h2load = debian_tool("h2load", "nghttp2-client")
    port, tport = free_port(), free_port()
    farm_factory(config(backend, port, tport, pki["www"].pem, workers=2))
    p = subprocess.run([h2load, "-n", "400", "-c", "4", "-m", "10",
                        f"https://127.0.0.1:{tport}/name"], capture_output=True,
                       text=True, timeout=60)
    assert "400 succeeded, 0 failed, 0 errored" in p.stdout, p.stdout
    assert "Application protocol: h2" in p.stdout
    assert "status codes: 400 2xx" in p.stdout


def test_repeated_header_blocks_reach_the_log_and_the_server_each_as_sent(farm_factory, backend):
    """h2load repeats each request's header block (HPACK-indexed): such a
    request is a copy of a template made the first time
    (workers/h2/messages.py to_request), and the log's absolute URI of the
    last one is reused (workers/h2conn.py): every log line and every
    request the server gets still names its own path, the host and the
    forwarding fields being those of each request."""
    h2load = debian_tool("h2load", "nghttp2-client")
    port = free_port()
    farm = farm_factory(config(backend, port))
    base = f"http://127.0.0.1:{port}/name?i="
    uris = [base + "0", base + "0", base + "1"]       # sent in turn: 0, 0, 1, 0, 0, 1...
    p = subprocess.run([h2load, "-n", "30", "-c", "1", "-m", "1", *uris], capture_output=True,
                       text=True, timeout=60)
    assert "30 succeeded, 0 failed, 0 errored" in p.stdout, p.stdout
    lines = farm.wait_access_lines(30)
    logged = Counter(re.search(r'"GET (\S+) HTTP/2\.0"', line).group(1) for line in lines)
    assert logged == {base + "0": 20, base + "1": 10}
    assert Counter(r.target for r in backend.requests) == {"/name?i=0": 20, "/name?i=1": 10}
    assert {r.header("host") for r in backend.requests} == {f"127.0.0.1:{port}"}


def test_curl_http2_over_tls_and_http11_still(farm_factory, backend, pki):
    port, tport = free_port(), free_port()
    farm = farm_factory(config(backend, port, tport, pki["www"].pem))
    url = f"https://localhost:{tport}/name"
    r = curl(url, "--http2", pki=pki)
    assert r.stdout.endswith(b"\n2 200") and r.stdout.startswith(b"s1"), r
    r = curl(url, "--http1.1", pki=pki)
    assert r.stdout.endswith(b"\n1.1 200"), r
    lines = farm.wait_access_lines(2)
    assert f'"GET https://localhost:{tport}/name HTTP/2.0"' in lines[0]
    assert "www~ " in lines[0]
    assert '"GET /name HTTP/1.1"' in lines[1]


def test_local_replies_deny_and_redirect_over_h2(farm_factory, backend):
    port = free_port()
    rules = """
[[frontends.www.http_request]]
action = "deny"
if = "{ path_beg /admin }"
[[frontends.www.http_request]]
action = "redirect"
location = "/new"
code = 301
if = "{ path /old }"
"""
    farm = farm_factory(config(backend, port, rules=rules))
    r = curl(f"http://127.0.0.1:{port}/admin", "--http2-prior-knowledge")
    assert r.stdout.endswith(b"\n2 403") and b"403 Forbidden" in r.stdout, r
    r = curl(f"http://127.0.0.1:{port}/old", "--http2-prior-knowledge", "-D", "-")
    assert r.stdout.endswith(b"\n2 301"), r
    assert b"location: /new" in r.stdout.lower()
    # a denied POST with its body still coming: the stream is answered,
    # the rest of the body is dropped, the connection goes on
    c = H2Client(port)
    c.send(c.headers(1, "/admin", end=False, method="POST", extra=[("content-length", "200000")]))
    c.send(DataFrame(1, data=b"x" * 16000).serialize())
    frames = c.frames(3, until=lambda fs: any(isinstance(f, DataFrame) and "END_STREAM" in f.flags
                                               for f in fs))
    assert any(isinstance(f, DataFrame) and b"403 Forbidden" in f.data for f in frames)
    c.send(DataFrame(1, data=b"x" * 16000).serialize())
    c.send(c.headers(3, "/name"))
    frames = c.frames(3, until=lambda fs: any(isinstance(f, DataFrame) and f.stream_id == 3
                                               for f in fs))
    assert b"s1" in b"".join(f.data for f in frames if isinstance(f, DataFrame) and f.stream_id == 3)
    assert goaway_of(frames) is None
    lines = farm.wait_access_lines(4)
    assert " 403 " in lines[0] and "PR--" in lines[0] and "HTTP/2.0" in lines[0]
    assert " 301 " in lines[1]
    assert not any("/admin" in r.target for r in backend.requests)


def test_upgrade_h2c_is_removed(farm_factory, backend):
    port = free_port()
    farm_factory(config(backend, port))
    r = curl(f"http://127.0.0.1:{port}/headers", "--http2")   # h1 with Upgrade: h2c
    assert r.stdout.endswith(b"\n1.1 200"), r
    seen = r.stdout.lower()
    assert b"upgrade" not in seen and b"http2-settings" not in seen


# --------------------------------------------------- crafted frames (attacks)

class H2Client:
    """A raw HTTP/2 client over a socket: frames built by hyperframe, header
    blocks by hpack."""

    def __init__(self, port: int, settings=None, ack: bool = True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.enc = Encoder()
        self.buf = b""
        f = SettingsFrame(0)
        for k, v in (settings or {}).items():
            f.settings[k] = v
        # the server's SETTINGS are the first thing it sends: acknowledged
        # at once (ack=False: a client that never does)
        self.sock.sendall(PREFACE + f.serialize()
                          + (SettingsFrame(0, flags=["ACK"]).serialize() if ack else b""))

    def headers(self, sid: int, path: str = "/name", end: bool = True, extra=(),
                method: str = "GET", authority: str = "localhost") -> bytes:
        fields = [(":method", method), (":scheme", "http"), (":path", path),
                  (":authority", authority), *extra]
        f = HeadersFrame(sid)
        f.data = self.enc.encode(fields)
        f.flags.add("END_HEADERS")
        if end:
            f.flags.add("END_STREAM")
        return f.serialize()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def frames(self, timeout: float = 3.0, until=None) -> list:
        """Frames received until the connection closes, timeout, or
        until(frames) is true."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while len(self.buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) < 9 + length:
                    break
                f.parse_body(memoryview(self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]
                out.append(f)
            if until is not None and until(out):
                return out
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                out.append("RESET")
                break
            if not data:
                out.append("EOF")
                break
            self.buf += data
        return out

    def close(self):
        self.sock.close()


def goaway_of(frames):
    return next((f for f in frames if isinstance(f, GoAwayFrame)), None)


def test_max_concurrent_streams_refused(farm_factory, backend):
    port = free_port()
    farm_factory(config(backend, port))
    c = H2Client(port)
    # 101 streams at once on a slow path: the 101st is refused
    c.send(b"".join(c.headers(1 + 2 * i, "/slow?ms=500") for i in range(101)))
    frames = c.frames(5, until=lambda fs: sum(isinstance(f, HeadersFrame) for f in fs) >= 100)
    resets = [f for f in frames if isinstance(f, RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in resets] == [(201, 7)]   # REFUSED_STREAM
    assert sum(isinstance(f, HeadersFrame) for f in frames) == 100
    c.close()


def test_rapid_reset_is_cut_off(farm_factory, backend):
    port = free_port()
    farm = farm_factory(config(backend, port))
    c = H2Client(port)
    sent = 0
    closed = False
    for i in range(2000):
        sid = 1 + 2 * i
        rst = RstStreamFrame(sid)
        rst.error_code = 8
        try:
            c.send(c.headers(sid, "/slow?ms=200") + rst.serialize())
        except OSError:
            closed = True
            break
        sent += 1
    frames = c.frames(3)
    g = goaway_of(frames)
    assert closed or g is not None
    if g is not None:
        assert g.error_code == 11           # ENHANCE_YOUR_CALM
    time.sleep(0.5)
    # the servers saw a bounded number of requests, far below what was sent
    assert len(backend.requests) <= 150, len(backend.requests)
    # and the proxy still works for others
    r = curl(f"http://127.0.0.1:{port}/name", "--http2-prior-knowledge")
    assert r.stdout.endswith(b"\n2 200")
    # the streams that got as far as a Stream are logged as client aborts
    terms = [line.split()[9] for line in farm.access_lines() if "HTTP/2.0" in line]
    assert any(t.startswith("C") for t in terms), terms
    c.close()


def test_continuation_flood(farm_factory, backend):
    port = free_port()
    farm_factory(config(backend, port))
    c = H2Client(port)
    h = HeadersFrame(1)
    h.data = c.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                           (":authority", "x")])
    c.send(h.serialize())                   # no END_HEADERS
    try:
        for _ in range(1000):
            cont = ContinuationFrame(1)
            cont.data = b"\x40\x01a\x01b"   # literal a: b, never ending
            c.send(cont.serialize())
    except OSError:
        pass
    g = goaway_of(c.frames(3))
    assert g is not None and g.error_code == 11
    assert not backend.requests


@pytest.mark.parametrize("kind", ["ping", "settings"])
def test_ping_and_settings_floods(farm_factory, backend, kind):
    port = free_port()
    farm_factory(config(backend, port))
    c = H2Client(port)
    try:
        for i in range(1000):
            f = PingFrame(0, opaque_data=b"%08d" % i) if kind == "ping" else SettingsFrame(0)
            c.send(f.serialize())
    except OSError:
        pass
    g = goaway_of(c.frames(3))
    assert g is not None and g.error_code == 11


def test_header_list_too_large_431(farm_factory, backend):
    port = free_port()
    farm_factory(config(backend, port))
    c = H2Client(port)
    # 150 fields (max_header_fields is 100): decoded fine, then refused
    c.send(c.headers(1, extra=[(f"x-f{i}", "v") for i in range(150)]))
    frames = c.frames(3, until=lambda fs: any(isinstance(f, HeadersFrame) for f in fs))
    h = next(f for f in frames if isinstance(f, HeadersFrame))
    assert dict(Decoder().decode(h.data))[":status"] == "431"
    assert not backend.requests
    # the connection goes on
    c.send(c.headers(3))
    frames = c.frames(3, until=lambda fs: any(isinstance(f, DataFrame) and f.stream_id == 3
                                               for f in fs))
    assert any(isinstance(f, DataFrame) and f.stream_id == 3 for f in frames)


@pytest.mark.parametrize("extra, authority", [
    ([("host", "other.example")], "localhost"),            # :authority vs host
    ([("Upper", "x")], "localhost"),                        # uppercase name
    ([("connection", "keep-alive")], "localhost"),          # connection-specific
    ([("transfer-encoding", "chunked")], "localhost"),
    ([("te", "gzip")], "localhost"),
])
def test_malformed_requests_refused(farm_factory, backend, extra, authority):
    port = free_port()
    farm_factory(config(backend, port))
    c = H2Client(port)
    c.send(c.headers(1, extra=extra, authority=authority))
    frames = c.frames(3, until=lambda fs: any(isinstance(f, RstStreamFrame) for f in fs))
    rst = [f for f in frames if isinstance(f, RstStreamFrame)]
    assert rst and rst[0].stream_id == 1 and rst[0].error_code == 1   # PROTOCOL_ERROR
    assert not backend.requests


def test_content_length_mismatch(farm_factory, backend):
    port = free_port()
    farm_factory(config(backend, port))
    c = H2Client(port)
    c.send(c.headers(1, "/echo", end=False, method="POST", extra=[("content-length", "10")]))
    d = DataFrame(1, data=b"x" * 20)
    d.flags.add("END_STREAM")
    c.send(d.serialize())
    frames = c.frames(3, until=lambda fs: any(isinstance(f, RstStreamFrame) for f in fs))
    rst = [f for f in frames if isinstance(f, RstStreamFrame)]
    assert rst and rst[0].error_code == 1
    time.sleep(0.3)
    # what reached the server (if anything) never went past the announced length
    assert all(len(r.body) <= 10 for r in backend.requests)


def test_idle_connection_timeout_sends_goaway(farm_factory, backend):
    port = free_port()
    farm_factory(config(backend, port, timeout='http_keep_alive = "300ms"\nhttp_request = "300ms"'))
    c = H2Client(port)
    c.send(c.headers(1))
    frames = c.frames(3)
    assert frames[-1] in ("EOF", "RESET")
    g = goaway_of(frames)
    assert g is not None and g.error_code == 0 and g.last_stream_id == 1


def test_zero_window_stall_times_out(farm_factory, backend):
    port = free_port()
    farm = farm_factory(config(backend, port, timeout='client = "1s"'))
    # a client that never opens its window: the response cannot go
    c = H2Client(port, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    c.send(c.headers(1, "/big?size=100000"))
    t0 = time.monotonic()
    frames = c.frames(6)
    assert frames and frames[-1] in ("EOF", "RESET"), frames
    assert time.monotonic() - t0 < 5
    # logged when the server's response ended (as for HTTP/1.1), not cut
    lines = farm.wait_access_lines(1)
    assert lines and " 200 " in lines[0], lines


def test_server_timeout_of_streams_on_one_connection(farm_factory, backend):
    """Each stream has its own server timeout (one timer of the connection
    armed for the earliest deadline): the slow streams get 504, logged
    sH, at their own deadline; a fast stream in between is answered, and
    a slow stream opened after the first timeout times out too."""
    port = free_port()
    farm = farm_factory(config(backend, port, timeout='server = "600ms"'))
    c = H2Client(port)
    dec = Decoder()
    t0 = time.monotonic()
    c.send(c.headers(1, "/slow?ms=3000") + c.headers(3, "/name"))
    time.sleep(0.3)
    c.send(c.headers(5, "/slow?ms=3000"))

    def statuses(frames):
        return {f.stream_id: dict(dec.decode(f.data))[":status"]
                for f in frames if isinstance(f, HeadersFrame)}
    frames = c.frames(3, until=lambda fs: 1 in [f.stream_id for f in fs
                                                if isinstance(f, HeadersFrame)])
    got = statuses(frames)
    assert got == {3: "200", 1: "504"}, frames
    assert 0.5 < time.monotonic() - t0 < 1.5
    frames = c.frames(3, until=lambda fs: any(isinstance(f, HeadersFrame) for f in fs))
    assert statuses(frames) == {5: "504"}, frames
    assert 0.8 < time.monotonic() - t0 < 2.0
    lines = farm.wait_access_lines(3)
    assert sum(" 504 " in line and " sH" in line for line in lines) == 2, lines
    c.close()


def test_first_frame_not_settings_and_frames_on_closed_streams(farm_factory, backend):
    port = free_port()
    farm_factory(config(backend, port))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(PREFACE + PingFrame(0).serialize())          # the first frame must be SETTINGS
    c = H2Client.__new__(H2Client)
    c.sock, c.buf = s, b""
    g = goaway_of(c.frames(3))
    assert g is not None and g.error_code == 1             # PROTOCOL_ERROR
    # DATA on a stream that ended both ways: STREAM_CLOSED, the connection ends
    c = H2Client(port)
    c.send(c.headers(1))
    c.frames(3, until=lambda fs: any(isinstance(f, DataFrame) and "END_STREAM" in f.flags
                                      for f in fs))
    c.send(DataFrame(1, data=b"late").serialize())
    g = goaway_of(c.frames(3))
    assert g is not None and g.error_code == 5 and g.last_stream_id == 1
    assert len(backend.requests) == 1


def test_settings_never_acknowledged(farm_factory, backend):
    port = free_port()
    farm_factory(config(backend, port, timeout='client = "1s"'))
    c = H2Client(port, ack=False)
    t0 = time.monotonic()
    frames = c.frames(5)
    g = goaway_of(frames)
    assert g is not None and g.error_code == 4           # SETTINGS_TIMEOUT
    assert 0.8 < time.monotonic() - t0 < 4 and frames[-1] in ("EOF", "RESET")


def test_graceful_reload_goaway_lets_streams_finish(farm_factory, backend):
    port = free_port()
    farm = farm_factory(config(backend, port))
    c = H2Client(port)
    c.send(c.headers(1, "/slow?ms=800"))
    time.sleep(0.3)
    farm.proc.send_signal(signal.SIGHUP)
    frames = c.frames(6, until=lambda fs: any(isinstance(f, DataFrame) and "END_STREAM" in f.flags
                                               for f in fs) and goaway_of(fs) is not None)
    g = goaway_of(frames)
    assert g is not None and g.error_code == 0 and g.last_stream_id == 1
    data = b"".join(f.data for f in frames if isinstance(f, DataFrame) and f.stream_id == 1)
    assert data == b"s1"
    c.close()


def test_h2_example_works_once_pointed_at_a_certificate(farm_factory, backend, pki, tmp_path):
    root = Path(__file__).resolve().parents[2]
    http, https = free_port(), free_port()
    text = ((root / "config/examples/h2.toml").read_text()
            .replace("/etc/farm/certs/site.pem", str(pki["www"].pem))
            .replace('"0.0.0.0:80"', f'"127.0.0.1:{http}"')
            .replace('"0.0.0.0:443"', f'"127.0.0.1:{https}"')
            .replace("127.0.0.1:8000", backend.address)
            .replace('workers = "auto"', "workers = 1"))
    cfg = tmp_path / "h2.toml"
    cfg.write_text(text)
    check = subprocess.run([sys.executable, str(root / "master.py"), "check", "-c", str(cfg)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and check.stderr == "", check.stderr
    farm_factory(text)
    r = curl(f"https://localhost:{https}/name", "--http2", pki=pki)
    assert r.stdout == b"s1\n2 200", r
    r = curl(f"http://127.0.0.1:{http}/admin", "--http2-prior-knowledge")
    assert r.stdout.endswith(b"\n2 403"), r


def test_chromium_headless_over_tls_speaks_h2(farm_factory, backend, pki, tmp_path):
    chromium = debian_tool("chromium")
    if chromium is None:
        pytest.skip("chromium is not installable here")
    port, tport = free_port(), free_port()
    farm = farm_factory(config(backend, port, tport, pki["www"].pem))
    # the test CA is not in the browser's store: certificate errors are
    # ignored (what is tested is the protocol, ALPN h2, not the PKI)
    p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--no-first-run",
                        "--disable-background-networking", "--ignore-certificate-errors",
                        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                        f"https://localhost:{tport}/name"],
                       capture_output=True, text=True, timeout=60)
    assert "s1" in p.stdout, (p.stdout[-500:], p.stderr[-1500:])
    lines = farm.wait_access_lines(1)
    assert any(f'"GET https://localhost:{tport}/name HTTP/2.0"' in line and " 200 " in line
               for line in lines), lines


def test_h2_limits_from_the_frontend_config(farm_factory, backend):
    """[frontends.NAME.h2]: the SETTINGS farm sends are the configured ones,
    and the stream limit is held to them (the 6th concurrent stream is
    refused with 5), as are the header fields of one request."""
    port = free_port()
    farm_factory(config(backend, port, rules=(
        "[frontends.www.h2]\nmax_concurrent_streams = 5\ninitial_window_size = 1048576\n"
        "max_frame_size = 32768\nheader_table_size = 8192\nmax_header_fields = 20\n")))
    c = H2Client(port)
    settings = next(f for f in c.frames(2, until=lambda fs: any(isinstance(f, SettingsFrame)
                                                                 for f in fs))
                    if isinstance(f, SettingsFrame) and "ACK" not in f.flags)
    assert settings.settings[SettingsFrame.MAX_CONCURRENT_STREAMS] == 5
    assert settings.settings[SettingsFrame.INITIAL_WINDOW_SIZE] == 1048576
    assert settings.settings[SettingsFrame.MAX_FRAME_SIZE] == 32768
    assert settings.settings[SettingsFrame.HEADER_TABLE_SIZE] == 8192
    c.send(b"".join(c.headers(1 + 2 * i, "/slow?ms=500") for i in range(6)))
    frames = c.frames(5, until=lambda fs: sum(isinstance(f, HeadersFrame) for f in fs) >= 5)
    assert [(f.stream_id, f.error_code) for f in frames if isinstance(f, RstStreamFrame)] == [(11, 7)]
    assert sum(isinstance(f, HeadersFrame) for f in frames) == 5
    c.close()
    # 25 fields in one request: over max_header_fields = 20, refused (431)
    c = H2Client(port)
    c.send(c.headers(1, "/name", extra=[(f"x-f{i}", "v") for i in range(21)]))
    frames = c.frames(3, until=lambda fs: any(isinstance(f, HeadersFrame) for f in fs))
    h = next(f for f in frames if isinstance(f, HeadersFrame))
    assert dict(Decoder().decode(h.data))[":status"] == "431"
    c.close()


def test_shutdown_sessions_server_ends_its_streams_only(farm_factory, backend, tmp_path):
    """`shutdown sessions server app/s1` ends the HTTP/2 streams talking
    to s1 (RST_STREAM CANCEL, logged with K); the connection stays up and
    its next stream is served."""
    port, sock = free_port(), tmp_path / "admin.sock"
    farm = farm_factory(config(backend, port).replace("[global]\n", f'[global]\nadmin_socket = "{sock}"\n', 1))
    c = H2Client(port)
    c.send(c.headers(1, "/slow?ms=4000"))
    time.sleep(0.5)                                 # the request is at the server
    with socket.socket(socket.AF_UNIX) as admin:
        admin.connect(str(sock))
        admin.sendall(b"shutdown sessions server app/s1\n")
        admin.recv(100)
    frames = c.frames(3, until=lambda fs: any(isinstance(f, RstStreamFrame) for f in fs))
    rst = [f for f in frames if isinstance(f, RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in rst] == [(1, 8)]       # CANCEL
    c.send(c.headers(3))
    frames = c.frames(3, until=lambda fs: any(isinstance(f, DataFrame) and f.stream_id == 3
                                               for f in fs))
    assert any(isinstance(f, DataFrame) and f.stream_id == 3 for f in frames)
    lines = farm.wait_access_lines(2)
    assert any("/slow?ms=4000 HTTP/2.0\"" in ln and " KH-- " in ln for ln in lines), lines
    c.close()
