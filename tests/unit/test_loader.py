"""farm.loader: TOML -> model.Config, and every error with file:line: path."""

import os
import socket
import textwrap

import pytest

from farm import conditions, loader, model
from farm.loader import ConfigError, ConfigErrors, load, load_text, summary
from farm.model import Address, Condition, Rule, Timeouts, UseBackend


def T(text: str) -> str:
    """Dedent a config and drop the first newline so line 1 is the first line."""
    return textwrap.dedent(text).lstrip("\n")


def line_with(text: str, fragment: str) -> int:
    """1-based line of the single line of `text` containing `fragment`."""
    found = [i + 1 for i, ln in enumerate(text.splitlines()) if fragment in ln]
    assert len(found) == 1, f"{fragment!r} found on lines {found}"
    return found[0]


def errors_of(text: str, source: str = "t.toml") -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        load_text(text, source)
    return info.value.errors


def one_error(text: str) -> ConfigError:
    errors = errors_of(text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    return errors[0]


# A minimal valid config; tests append sections to it.
BASE = T("""
    [frontends.www]
    bind = "127.0.0.1:8080"
    default_backend = "app"

    [backends.app]
    [[backends.app.servers]]
    name = "s1"
    address = "127.0.0.1:9000"
""")


@pytest.fixture
def real_conditions():
    """Requested by tests that run the real farm/conditions.py checks."""


@pytest.fixture(autouse=True)
def stub_conditions(request, monkeypatch):
    """Isolate the loader from farm/conditions.py (another module's logic):
    every condition and ACL line is accepted unless a test says otherwise.
    Tests that request the real_conditions fixture use the real module."""
    if "real_conditions" not in request.fixturenames:
        monkeypatch.setattr(conditions, "check_condition", lambda text, names: [])
        monkeypatch.setattr(conditions, "check_acl", lambda text: [])
        monkeypatch.setattr(conditions, "check_format", lambda text: [])
        monkeypatch.setattr(conditions, "check_replacement", lambda text, regex: [])


# ------------------------------------------------------------ valid configs

DESIGN_EXAMPLE = T("""
    [global]
    workers = "auto"                 # or an integer; auto = one per core
    maxconn = 100000
    user = "farm"                    # drop privileges after binding (optional)
    group = "farm"
    admin_socket = "/run/farm/admin.sock"
    hard_stop_after = "30s"

    [log]
    events = "stderr"                # "stderr" | file path
    access = "/var/log/farm/access.log"   # "off" | "stdout" | file path
    format = "json"                  # "json" | "httplog"

    [defaults]
    mode = "http"                    # "http" | "tcp"
    retries = 3
    [defaults.timeout]
    connect = "5s"
    client = "30s"
    server = "30s"
    http_request = "10s"
    http_keep_alive = "10s"
    queue = "5s"
    tunnel = "1h"

    [stats]
    bind = "127.0.0.1:8404"          # HTML at /, CSV at /;csv, Prometheus at /metrics

    [frontends.www]
    bind = ["0.0.0.0:80", "[::]:80"]
    default_backend = "app"
    [frontends.www.acl]
    api = "path_beg /api/"
    internal = "src 10.0.0.0/8 127.0.0.0/8"
    [[frontends.www.http_request]]
    action = "deny"
    status = 403
    if = "{ path_beg /admin } !internal"
    [[frontends.www.use_backend]]
    backend = "api"
    if = "api"

    [backends.app]
    balance = "roundrobin"           # roundrobin static-rr leastconn source uri hdr(NAME) url_param(NAME) random first
    [backends.app.check]
    type = "http"                    # "tcp" | "http"
    path = "/healthz"
    expect_status = "200-399"
    interval = "2s"
    rise = 2
    fall = 3
    [[backends.app.servers]]
    name = "s1"
    address = "10.0.0.1:8080"
    weight = 100
    [[backends.app.servers]]
    name = "s2"
    address = "10.0.0.2:8080"
    backup = true
""")

# The DESIGN.md example routes to a backend "api" that it does not define.
API_BACKEND = T("""

    [backends.api]
    [[backends.api.servers]]
    name = "a1"
    address = "10.0.1.1:9000"
""")


def existing_user_group() -> tuple[str, str]:
    """A user and a group of this machine (the package creates 'farm' where
    farm is installed; a checkout has none)."""
    import grp
    import pwd
    pw = pwd.getpwuid(os.getuid())
    return pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name


def design_example() -> str:
    user, group = existing_user_group()
    return DESIGN_EXAMPLE.replace('user = "farm"', f'user = "{user}"').replace(
        'group = "farm"', f'group = "{group}"')


def test_design_example_loads(monkeypatch, real_conditions):
    monkeypatch.setattr(loader, "_cpu_count", lambda: 4)
    text = design_example() + API_BACKEND
    cfg = load_text(text, "farm.toml")
    assert cfg.source == "farm.toml"
    assert cfg.global_.workers == 4
    assert cfg.global_.user == existing_user_group()[0] and cfg.global_.hard_stop_after == 30.0
    assert cfg.log.access == "/var/log/farm/access.log" and cfg.log.format == "json"
    assert cfg.stats.bind == Address("127.0.0.1", 8404)
    (www,) = cfg.frontends
    assert tuple(b.address for b in www.binds) == (Address("0.0.0.0", 80), Address("::", 80, socket.AF_INET6))
    assert www.id == 1 and www.line == line_with(text, "[frontends.www]")
    assert [a.name for a in www.acl] == ["api", "internal"]
    assert www.acl[1].lines == ("src 10.0.0.0/8 127.0.0.0/8",)
    assert www.http_request == (Rule("deny", (("status", 403),),
                                     Condition("{ path_beg /admin } !internal"),
                                     line_with(text, "[[frontends.www.http_request]]")),)
    assert www.use_backend == (UseBackend("api", Condition("api"),
                                          line_with(text, "[[frontends.www.use_backend]]")),)
    assert www.timeouts.tunnel == 3600.0
    app = cfg.backend("app")
    assert app.check.type == "http" and app.check.expect_status == (200, 399)
    assert [(s.name, s.id, s.weight, s.backup) for s in app.servers] == [
        ("s1", 1, 100, False), ("s2", 2, 1, True)]
    assert app.servers[1].line == line_with(text, 'name = "s2"') - 1
    assert cfg.backend("api").id == 2
    assert summary(cfg) == "farm.toml: valid: 1 frontend, 2 backends, 3 servers, 4 workers"


def test_design_example_without_api_backend_names_the_missing_backend():
    err = one_error(design_example())
    assert err.line == line_with(DESIGN_EXAMPLE, 'backend = "api"')
    assert err.path == "frontends.www.use_backend[0].backend"
    assert err.message == "unknown backend 'api' (did you mean 'app'?)"


FULL = T("""
    [global]
    workers = 2
    maxconn = 5000
    pidfile = "/run/farm.pid"
    state_file = "/var/lib/farm/state"
    node = "lb1"

    [log]
    events = "/var/log/farm/farm.log"
    access = "stdout"
    format = "httplog"
    level = "debug"

    [stats]
    bind = "[::1]:8404"
    uri = "/stats"
    refresh = "5s"
    auth = "admin:s3:cret"
    admin = true

    [defaults]
    maxconn = 2000
    max_header_size = "32k"
    option_forwardfor = true
    http_reuse = "always"

    [frontends.www]
    bind = ["*:8080", ":8081"]
    xff_header = "X-Real-IP"
    forwarded = true
    acl.api = ["path_beg /api/", "hdr(host) -i api.example.com"]
    acl.local = "src 127.0.0.1"
    use_backend = [{ backend = "api", if = "api" }, { backend = "app", unless = "local" }]
    http_request = [
      { action = "allow", if = "local" },
      { action = "redirect", scheme = "https", code = 301, unless = "local" },
      { action = "redirect", location = "/new", drop_query = true },
      { action = "redirect", prefix = "https://example.com" },
      { action = "return", status = 204, content_type = "text/plain", body = "" },
      { action = "set-header", name = "X-A", value = "1" },
      { action = "add-header", name = "X-B", value = "" },
      { action = "del-header", name = "X-C" },
      { action = "replace-header", name = "Host", match = '^(.*)\\.local$', replace = '\\1' },
      { action = "replace-path", match = "^/old/(.*)", replace = '/new/\\1' },
      { action = "set-path", value = "/x" },
      { action = "set-query", value = "a=1" },
    ]
    http_response = [
      { action = "set-status", status = 503, reason = "Busy" },
      { action = "del-header", name = "Server" },
    ]

    [frontends.db]
    mode = "tcp"
    bind = "0.0.0.0:5432"
    default_backend = "db"

    [backends.app]
    balance = "uri path-only"
    hash_type = "consistent"
    retries = 5
    redispatch = false
    cookie = { name = "SRV", mode = "insert", indirect = true, nocache = true, httponly = true, secure = true, domain = "example.com", maxidle = "30m" }
    servers = [
      { name = "a1", address = "app1.internal:80", weight = 0, maxconn = 10, check = false, slowstart = "1m" },
      { name = "a2", address = "[2001:db8::1]:80", disabled = true, cookie = "x2" },
    ]

    [backends.api]
    balance = "hdr(Host)"
    http_reuse = "never"
    acl.bad = "path_beg /x"
    [[backends.api.http_request]]
    action = "deny"
    if = "bad"
    [[backends.api.http_response]]
    action = "set-header"
    name = "X-Served-By"
    value = "api"

    [backends.db]
    mode = "tcp"
    balance = "leastconn"
    [backends.db.check]
    type = "tcp"
    port = 5433
    interval = 1500
    fastinter = "500ms"
    downinter = "10s"
    timeout = "1s"
    observe = true
    error_limit = 5
    [[backends.db.servers]]
    name = "pg1"
    address = "localhost:5432"
""")


def test_full_config(real_conditions):
    cfg = load_text(FULL, "full.toml")
    g = cfg.global_
    assert (g.workers, g.maxconn, g.pidfile, g.state_file, g.node) == (
        2, 5000, "/run/farm.pid", "/var/lib/farm/state", "lb1")
    assert cfg.log == model.LogConfig("/var/log/farm/farm.log", "stdout", "httplog", "debug")
    assert cfg.stats == model.Stats(Address("::1", 8404, socket.AF_INET6), "/stats", 5.0,
                                    ("admin", "s3:cret"), True)
    www, db_fe = cfg.frontends
    assert tuple(b.address for b in www.binds) == (Address("0.0.0.0", 8080), Address("0.0.0.0", 8081))
    assert (www.maxconn, www.max_header_size, www.option_forwardfor, www.forwarded) == (
        2000, 32768, True, True)
    assert www.xff_header == "X-Real-IP" and www.default_backend is None
    assert www.acl == (model.Acl("api", ("path_beg /api/", "hdr(host) -i api.example.com")),
                       model.Acl("local", ("src 127.0.0.1",)))
    assert www.use_backend == (
        UseBackend("api", Condition("api"), line_with(FULL, "use_backend")),
        UseBackend("app", Condition("local", negate=True), line_with(FULL, "use_backend")))
    rules = www.http_request
    assert [r.action for r in rules] == [
        "allow", "redirect", "redirect", "redirect", "return", "set-header", "add-header",
        "del-header", "replace-header", "replace-path", "set-path", "set-query"]
    assert rules[0].params == () and rules[0].cond == Condition("local")
    assert rules[1].params == (("code", 301), ("scheme", "https"))
    assert rules[1].cond == Condition("local", True)
    assert rules[2].params == (("code", 302), ("drop_query", True), ("location", "/new"))
    assert rules[4].params == (("body", ""), ("content_type", "text/plain"), ("status", 204))
    assert rules[8].param("match") == r"^(.*)\.local$" and rules[8].param("replace") == r"\1"
    assert rules[10].line == line_with(FULL, '"set-path"')
    assert www.http_response[0].params == (("reason", "Busy"), ("status", 503))
    assert db_fe.mode == "tcp" and db_fe.id == 2

    app, api, db = cfg.backends
    assert app.balance == model.Balance("uri", None, ("path-only",), "consistent")
    assert str(app.balance) == "uri path-only"
    assert (app.retries, app.redispatch, app.http_reuse, app.option_forwardfor) == (5, False, "always", True)
    assert app.cookie == model.Cookie("SRV", "insert", True, True, True, True, "example.com", 1800.0)
    a1, a2 = app.servers
    assert a1.address == Address("app1.internal", 80)
    assert (a1.weight, a1.maxconn, a1.check, a1.slowstart, a1.cookie) == (0, 10, False, 60.0, "a1")
    assert a2.address == Address("2001:db8::1", 80, socket.AF_INET6)
    assert (a2.disabled, a2.cookie, a2.id) == (True, "x2", 2)
    assert a2.line == line_with(FULL, '"a2"')
    assert app.check.type is None  # no check table: servers are not checked

    assert api.balance == model.Balance("hdr", "Host") and str(api.balance) == "hdr(Host)"
    assert api.http_reuse == "never" and api.acl == (model.Acl("bad", ("path_beg /x",)),)
    assert api.http_request[0] == Rule("deny", (("status", 403),), Condition("bad"),
                                       line_with(FULL, "[[backends.api.http_request]]"))
    assert api.http_response[0].params == (("name", "X-Served-By"), ("value", "api"))
    assert api.servers == ()  # no servers is allowed (answers 503)

    assert db.mode == "tcp" and db.balance.algorithm == "leastconn"
    assert db.check == model.Check(type="tcp", port=5433, interval=1.5, fastinter=0.5,
                                   downinter=10.0, timeout=1.0, observe=True, error_limit=5)
    assert db.servers[0].address == Address("localhost", 5432) and db.servers[0].cookie is None
    assert cfg.all_binds()[-1] == cfg.stats.bind
    assert summary(cfg) == "full.toml: valid: 2 frontends, 3 backends, 3 servers, 2 workers"


def test_minimal_config_uses_model_defaults():
    cfg = load_text(BASE)
    assert cfg.source == "<string>"
    assert cfg.global_ == model.Global()
    assert cfg.log == model.LogConfig() and cfg.stats == model.Stats()
    fe = cfg.frontends[0]
    assert fe.timeouts == Timeouts() and fe.mode == "http" and fe.max_header_size == 16384
    be = cfg.backends[0]
    assert be.balance == model.Balance() and be.check == model.Check() and be.retries == 3
    assert be.servers[0] == model.Server("s1", Address("127.0.0.1", 9000), id=1, line=6)


def test_frontend_and_backend_may_share_a_name():
    text = BASE.replace("[backends.app]", '[backends.www]').replace('"app"', '"www"')
    cfg = load_text(text)
    assert cfg.frontend("www").default_backend == "www" and cfg.backend("www").name == "www"


# ---------------------------------------------------------------- defaults

DEFAULTS = T("""
    [defaults]
    mode = "tcp"
    retries = 7
    redispatch = false
    balance = "source"
    hash_type = "consistent"
    maxconn = 300
    option_forwardfor = true
    forwarded = true
    http_reuse = "never"
    max_header_size = "8k"
    [defaults.timeout]
    connect = "2s"
    server = "1m"
    check = "3s"
    [defaults.check]
    type = "tcp"
    interval = "10s"
    rise = 5

    [frontends.plain]
    bind = "127.0.0.1:1"
    default_backend = "plain"

    [frontends.own]
    mode = "http"
    bind = "127.0.0.1:2"
    default_backend = "own"
    maxconn = 0
    max_header_size = 65536
    option_forwardfor = false
    timeout.client = "1s"

    [backends.plain]

    [backends.own]
    mode = "http"
    retries = 0
    redispatch = true
    balance = "uri"
    http_reuse = "safe"
    forwarded = false
    timeout.server = "5s"
    check.type = "http"
    check.fall = 9
""")


def test_defaults_apply_where_sections_are_silent():
    cfg = load_text(DEFAULTS)
    fe = cfg.frontend("plain")
    assert (fe.mode, fe.maxconn, fe.option_forwardfor, fe.forwarded, fe.max_header_size) == (
        "tcp", 300, True, True, 8192)
    assert fe.timeouts == Timeouts(connect=2.0, server=60.0, check=3.0)
    be = cfg.backend("plain")
    assert (be.mode, be.retries, be.redispatch, be.http_reuse, be.option_forwardfor) == (
        "tcp", 7, False, "never", True)
    assert be.balance == model.Balance("source", None, (), "consistent")
    assert be.timeouts == Timeouts(connect=2.0, server=60.0, check=3.0)
    assert be.check == model.Check(type="tcp", interval=10.0, rise=5)


def test_sections_override_defaults_key_by_key():
    cfg = load_text(DEFAULTS)
    fe = cfg.frontend("own")
    assert (fe.mode, fe.maxconn, fe.option_forwardfor, fe.forwarded, fe.max_header_size) == (
        "http", 0, False, True, 65536)
    # timeout.client overrides; connect/server/check still come from defaults.
    assert fe.timeouts == Timeouts(connect=2.0, client=1.0, server=60.0, check=3.0)
    be = cfg.backend("own")
    assert (be.mode, be.retries, be.redispatch, be.http_reuse, be.forwarded) == (
        "http", 0, True, "safe", False)
    assert be.balance == model.Balance("uri", None, (), "consistent")
    assert be.timeouts == Timeouts(connect=2.0, server=5.0, check=3.0)
    assert be.check == model.Check(type="http", interval=10.0, rise=5, fall=9)


def test_errorfiles_merge_and_resolve_relative_to_config(tmp_path):
    (tmp_path / "errors").mkdir()
    for code in (503, 404):
        (tmp_path / "errors" / f"{code}.http").write_text("HTTP/1.0 503\r\n\r\n")
    conf = tmp_path / "farm.toml"
    conf.write_text(T(f"""
        [defaults.errorfiles]
        503 = "errors/503.http"
        404 = "{tmp_path}/errors/404.http"
    """) + BASE + T("""
        [backends.app.errorfiles]
        404 = "errors/503.http"
    """))
    cfg = load(str(conf))
    assert cfg.source == str(conf)
    assert cfg.frontends[0].errorfiles == ((404, f"{tmp_path}/errors/404.http"),
                                           (503, f"{tmp_path}/errors/503.http"))
    assert cfg.backends[0].errorfiles == ((404, f"{tmp_path}/errors/503.http"),
                                          (503, f"{tmp_path}/errors/503.http"))


def test_errorfile_errors(tmp_path):
    (tmp_path / "dir.http").mkdir()
    text = BASE + T(f"""
        [frontends.www.errorfiles]
        503 = "{tmp_path}/missing.http"
        502 = "{tmp_path}/dir.http"
        200 = "{tmp_path}/x"
        504 = 5
    """)
    errs = errors_of(text)
    assert [(e.line, e.path, e.message) for e in errs] == [
        (line_with(text, "503 ="), "frontends.www.errorfiles.503",
         f"cannot read errorfile '{tmp_path}/missing.http': no such file"),
        (line_with(text, "502 ="), "frontends.www.errorfiles.502",
         f"cannot read errorfile '{tmp_path}/dir.http': not a regular file"),
        (line_with(text, "200 ="), "frontends.www.errorfiles.200",
         "unsupported status code '200' for an errorfile (expected one of: "
         "400, 403, 404, 408, 429, 500, 502, 503, 504)"),
        (line_with(text, "504 ="), "frontends.www.errorfiles.504", "expected a string, got integer 5"),
    ]


# --------------------------------------------------------- durations, sizes

@pytest.mark.parametrize("value, seconds", [
    ('"250ms"', 0.25), ('"5s"', 5.0), ('"1m"', 60.0), ('"1h"', 3600.0), ('"1d"', 86400.0),
    ('"1m30s"', 90.0), ('"1.5s"', 1.5), ('"1h2m3s4ms"', 3723.004), ('"100us"', 0.0001),
    ("250", 0.25), ("0", 0.0), ('"2000"', 2.0),
])
def test_durations(value, seconds):
    cfg = load_text(BASE + f"[defaults.timeout]\nconnect = {value}\n")
    assert cfg.backends[0].timeouts.connect == pytest.approx(seconds)


@pytest.mark.parametrize("value, message", [
    ('"5x"', "invalid duration '5x' (expected a duration like '250ms', '5s', '1m30s' "
             "or an integer of milliseconds)"),
    ('"s"', "invalid duration 's'"),
    ('"1.5"', "invalid duration '1.5'"),
    ('"-1s"', "invalid duration '-1s'"),
    ('"5 s"', "invalid duration '5 s'"),
    ('""', "invalid duration ''"),
    ("-5", "invalid duration -5: must not be negative"),
    ("1.5", "expected a duration like '250ms', '5s', '1m30s' or an integer of milliseconds, got float 1.5"),
    ("true", "got boolean true"),
])
def test_bad_durations(value, message):
    text = BASE + f"[defaults.timeout]\nconnect = {value}\n"
    err = one_error(text)
    assert (err.line, err.path) == (line_with(text, "connect ="), "defaults.timeout.connect")
    assert message in err.message


@pytest.mark.parametrize("value, size", [
    ('"16k"', 16384), ('"16K"', 16384), ('"1m"', 1048576), ("4096", 4096), ('"2048"', 2048),
])
def test_sizes(value, size):
    cfg = load_text(BASE.replace("[backends.app]", f"max_header_size = {value}\n[backends.app]"))
    assert cfg.frontends[0].max_header_size == size


def test_size_parser_directly():
    assert loader.parse_size("1g") == 1024 ** 3
    assert loader.parse_size(0) == 0
    for bad in ("1.5k", "16kb", "k", "-1", -1, True, 1.0):
        with pytest.raises(ValueError):
            loader.parse_size(bad)
    assert loader.parse_duration("1m30s") == 90.0
    with pytest.raises(ValueError):
        loader.parse_duration("0s", positive=True)


@pytest.mark.parametrize("value, message", [
    ('"16x"', "invalid size '16x' (expected e.g. '16k', '1m', '1g' or an integer of bytes)"),
    ('"1.5k"', "invalid size '1.5k'"),
    ("[1]", "expected a size like '16k' or an integer of bytes, got an array"),
    ('"512"', "must be between 1024 and 1048576, got 512"),
    ('"2m"', "must be between 1024 and 1048576, got 2097152"),
])
def test_bad_sizes(value, message):
    text = BASE.replace("[backends.app]", f"max_header_size = {value}\n[backends.app]")
    err = one_error(text)
    assert (err.line, err.path) == (line_with(text, "max_header_size"), "frontends.www.max_header_size")
    assert message in err.message


# ---------------------------------------------------------------- addresses

@pytest.mark.parametrize("bind, address", [
    ("10.1.2.3:80", Address("10.1.2.3", 80)),
    ("*:443", Address("0.0.0.0", 443)),
    (":65535", Address("0.0.0.0", 65535)),
    ("[::]:80", Address("::", 80, socket.AF_INET6)),
    ("[::1]:8080", Address("::1", 8080, socket.AF_INET6)),
    ("[2001:DB8:0::1]:1", Address("2001:db8::1", 1, socket.AF_INET6)),
])
def test_bind_addresses(bind, address):
    cfg = load_text(BASE.replace("127.0.0.1:8080", bind))
    assert tuple(b.address for b in cfg.frontends[0].binds) == (address,)
    assert address.sockaddr()[:2] == (address.host, address.port)


@pytest.mark.parametrize("bind, message", [
    ("localhost:80", "a bind address must be a literal IP, got 'localhost:80'"),
    ("10.0.0.1", "missing port in address '10.0.0.1' (expected host:port)"),
    ("10.0.0.1:0", "invalid port '0' in '10.0.0.1:0' (expected 1..65535)"),
    ("10.0.0.1:65536", "invalid port '65536' in '10.0.0.1:65536' (expected 1..65535)"),
    ("10.0.0.1:http", "invalid port 'http' in '10.0.0.1:http' (expected 1..65535)"),
    ("::1:80", "IPv6 addresses need brackets: '::1:80' (e.g. '[::1]:80')"),
    ("[::1]80", "invalid address '[::1]80' (expected '[IPv6]:port')"),
    ("[10.0.0.1]:80", "invalid IPv6 address '10.0.0.1' in '[10.0.0.1]:80'"),
    ("300.1.1.1:80", "a bind address must be a literal IP, got '300.1.1.1:80'"),
])
def test_bad_bind_addresses(bind, message):
    text = BASE.replace("127.0.0.1:8080", bind)
    err = one_error(text)
    assert (err.line, err.path, err.message) == (1 + 1, "frontends.www.bind", message)


@pytest.mark.parametrize("address, message", [
    ("*:80", "a server address needs a host, got '*:80'"),
    ("bad_host!:80", "invalid host name 'bad_host!' in 'bad_host!:80'"),
    ("-x.example:80", "invalid host name '-x.example'"),
    ("app.internal", "missing port in address 'app.internal'"),
])
def test_bad_server_addresses(address, message):
    text = BASE.replace("127.0.0.1:9000", address)
    err = one_error(text)
    assert (err.line, err.path) == (8, "backends.app.servers[0].address")
    assert message in err.message


def test_bind_list_errors_point_at_each_element():
    text = BASE.replace('bind = "127.0.0.1:8080"', 'bind = [\n  "127.0.0.1:8080",\n  "nope",\n]')
    err = one_error(text)
    assert (err.line, err.path) == (4, "frontends.www.bind[1]")
    text = BASE.replace('bind = "127.0.0.1:8080"', "bind = []")
    assert one_error(text).message == "needs at least one address"
    text = BASE.replace('bind = "127.0.0.1:8080"', "bind = 80")
    assert one_error(text).message == ('expected an address string, a table { address = "...", '
                                       'tls = true } or an array of them, got integer 80')


# ------------------------------------------------------- unknown keys, types

@pytest.mark.parametrize("where, key, suggestion", [
    ("[global]", "worker", "workers"),
    ("[log]", "formt", "format"),
    ("[stats]", "bnd", "bind"),
    ("[defaults]", "retry", "retries"),
    ("[defaults.timeout]", "conect", "connect"),
    ("[defaults.check]", "intervl", "interval"),
    ("[backends.x]", "balanse", "balance"),
    ("[backends.app.timeout]", "servr", "server"),
])
def test_unknown_keys_suggest_the_closest(where, key, suggestion):
    text = BASE + f"{where}\n{key} = 1\n"
    err = one_error(text)
    assert err.line == line_with(text, f"{key} = 1")
    assert err.message == f"unknown key {key!r} (did you mean {suggestion!r}?)"
    assert err.path.endswith("." + key) or err.path == key


def test_unknown_key_without_a_close_match_and_at_top_level():
    text = BASE + '[backends.app.check]\ntype = "tcp"\nzzzz = 1\n' + "[frontend.x]\n"
    errs = errors_of(text)
    assert [(e.line, e.path, e.message) for e in errs] == [
        (11, "backends.app.check.zzzz", "unknown key 'zzzz'"),
        (12, "frontend", "unknown key 'frontend': sections are named tables: [frontends.NAME]"),
    ]


def test_unknown_server_key():
    text = BASE + 'wieght = 3\n'
    err = one_error(text)
    assert (err.line, err.path, err.message) == (
        9, "backends.app.servers[0].wieght", "unknown key 'wieght' (did you mean 'weight'?)")


@pytest.mark.parametrize("setting, path, message", [
    ('[global]\nmaxconn = "abc"', "global.maxconn", "expected an integer, got string 'abc'"),
    ("[global]\nmaxconn = true", "global.maxconn", "expected an integer, got boolean true"),
    ("[global]\nmaxconn = 1.0", "global.maxconn", "expected an integer, got float 1.0"),
    ("[global]\nmaxconn = 0", "global.maxconn", "must be between 1 and 2147483647, got 0"),
    ('[global]\nworkers = "many"', "global.workers", "expected an integer or 'auto', got string 'many'"),
    ("[global]\nworkers = 0", "global.workers",
     f"must be between 1 and {4 * os.cpu_count()} (4 per core; this machine has {os.cpu_count()}), got 0"),
    ("[global]\nuser = 1", "global.user", "expected a string, got integer 1"),
    ('[global]\nuser = ""', "global.user", "must not be empty"),
    ('[defaults]\nredispatch = "yes"', "defaults.redispatch",
     "expected a boolean (true or false), got string 'yes'"),
    ("[defaults]\nredispatch = 1", "defaults.redispatch", "expected a boolean (true or false), got integer 1"),
    ('[defaults]\nmode = "htp"', "defaults.mode", "unknown mode 'htp' (did you mean 'http'?)"),
    ('[defaults]\nmode = "udp"', "defaults.mode", "unknown mode 'udp' (expected one of: http, tcp)"),
    ('[defaults]\nhttp_reuse = "sometimes"', "defaults.http_reuse",
     "unknown http_reuse value 'sometimes' (expected one of: never, safe, always)"),
    ('[defaults]\nhash_type = "consistant"', "defaults.hash_type",
     "unknown hash type 'consistant' (did you mean 'consistent'?)"),
    ('[log]\nformat = "jsn"', "log.format", "unknown log format 'jsn' (did you mean 'json'?)"),
    ('[log]\nlevel = "warn"', "log.level", "unknown log level 'warn' (did you mean 'warning'?)"),
    ('[stats]\nauth = "admin"', "stats.auth", "expected 'user:password'"),
    ('[stats]\nuri = "stats"', "stats.uri", "must start with '/', got 'stats'"),
    ('[stats]\nrefresh = "0s"', "stats.refresh", "must be greater than 0, got '0s'"),
    ("[defaults]\ntimeout = 5", "defaults.timeout", "expected a table, got integer 5"),
    ("[defaults]\nretries = -1", "defaults.retries", "must be between 0 and 100, got -1"),
    ("global = 3", "global", "expected a table, got integer 3"),
])
def test_wrong_values(setting, path, message):
    text = setting + "\n" + BASE if setting.startswith("global =") else BASE + setting + "\n"
    err = one_error(text)
    assert (err.path, err.message) == (path, message)
    assert err.line == line_with(text, setting.splitlines()[-1])


def test_workers_auto(monkeypatch):
    assert loader._cpu_count() >= 1
    monkeypatch.setattr(loader, "_cpu_count", lambda: 6)
    assert load_text('[global]\nworkers = "auto"\n' + BASE).global_.workers == 6


# -------------------------------------------------------------- duplicates

def test_duplicate_server_names():
    text = BASE + T("""
        [[backends.app.servers]]
        name = "s2"
        address = "127.0.0.1:9001"
        [[backends.app.servers]]
        name = "s1"
        address = "127.0.0.1:9002"
    """)
    err = one_error(text)
    assert (err.line, err.path, err.message) == (
        13, "backends.app.servers[2].name", "duplicate server name 's1' (first defined at line 7)")


def test_duplicate_binds_across_frontends_and_stats():
    text = BASE + T("""
        [frontends.other]
        bind = ["0.0.0.0:9", "127.0.0.1:8080"]
        default_backend = "app"
        [frontends.third]
        bind = ["*:9", "[::]:9", "[0::0]:9"]
        default_backend = "app"
        [stats]
        bind = ":9"
    """)
    errs = errors_of(text)
    assert [(e.line, e.path, e.message) for e in errs] == [
        (10, "frontends.other.bind[1]",
         "bind address 127.0.0.1:8080 is already used by frontend 'www' (line 2)"),
        (13, "frontends.third.bind[0]", "bind address 0.0.0.0:9 is already used by frontend 'other' (line 10)"),
        (13, "frontends.third.bind[2]", "bind address [::]:9 is already used by frontend 'third' (line 13)"),
        (16, "stats.bind", "bind address 0.0.0.0:9 is already used by frontend 'other' (line 10)"),
    ]


# -------------------------------------------------------------------- names

def test_invalid_names():
    text = T("""
        [frontends."my www"]
        bind = "127.0.0.1:1"
        default_backend = "b/1"
        acl."a b" = "src 1.2.3.4"
        [backends."b/1"]
        [[backends."b/1".servers]]
        name = "s 1"
        address = "127.0.0.1:2"
    """)
    errs = errors_of(text)
    allowed = "(allowed: letters, digits, '_', '.', ':', '-')"
    assert [(e.line, e.path, e.message) for e in errs] == [
        (1, "frontends.my www", f"frontend invalid name 'my www' {allowed}"),
        (3, "frontends.my www.default_backend", f"invalid name 'b/1' {allowed}"),
        (4, "frontends.my www.acl.a b", f"ACL invalid name 'a b' {allowed}"),
        (5, "backends.b/1", f"backend invalid name 'b/1' {allowed}"),
        (7, "backends.b/1.servers[0].name", f"invalid name 's 1' {allowed}"),
    ]


def test_names_may_use_dots_colons_dashes():
    text = BASE.replace('"app"', '"app-v1.2:x"').replace("[backends.app]", '[backends."app-v1.2:x"]')
    text = text.replace("[[backends.app.servers]]", '[[backends."app-v1.2:x".servers]]')
    text = text.replace('name = "s1"', 'name = "s_1.a:b-c"')
    cfg = load_text(text)
    assert cfg.backends[0].name == "app-v1.2:x" and cfg.backends[0].servers[0].name == "s_1.a:b-c"


# ------------------------------------------------------------------ balance

@pytest.mark.parametrize("text, balance", [
    ("roundrobin", model.Balance("roundrobin")),
    ("static-rr", model.Balance("static-rr")),
    ("leastconn", model.Balance("leastconn")),
    ("first", model.Balance("first")),
    ("random", model.Balance("random")),
    ("source", model.Balance("source")),
    ("uri", model.Balance("uri")),
    ("uri whole", model.Balance("uri", None, ("whole",))),
    ("uri path-only", model.Balance("uri", None, ("path-only",))),
    ("url_param(userid)", model.Balance("url_param", "userid")),
    ("hdr(X-Tenant)", model.Balance("hdr", "X-Tenant")),
])
def test_balance_algorithms(text, balance):
    cfg = load_text(BASE.replace("[backends.app]", f'[backends.app]\nbalance = "{text}"'))
    assert cfg.backends[0].balance == balance
    assert str(cfg.backends[0].balance) == text


@pytest.mark.parametrize("text, message", [
    ("roundrobn", "unknown balance algorithm 'roundrobn' (did you mean 'roundrobin'?)"),
    ("weighted", "unknown balance algorithm 'weighted' (expected one of: roundrobin, static-rr, "
                 "leastconn, first, random, source, uri, url_param, hdr)"),
    ("hdr", "balance hdr needs a name in parentheses, e.g. 'hdr(NAME)'"),
    ("hdr()", "balance hdr needs a name in parentheses, e.g. 'hdr(NAME)'"),
    ("url_param", "balance url_param needs a name in parentheses, e.g. 'url_param(NAME)'"),
    ("source(x)", "balance source takes no argument, got 'source(x)'"),
    ("uri fast", "unknown option 'fast' for balance uri (allowed: whole, path-only)"),
    ("leastconn whole", "unknown option 'whole' for balance leastconn"),
    ("uri whole whole", "repeated option in balance 'uri whole whole'"),
])
def test_bad_balance(text, message):
    src = BASE.replace("[backends.app]", f'[backends.app]\nbalance = "{text}"')
    err = one_error(src)
    assert (err.line, err.path, err.message) == (6, "backends.app.balance", message)


def test_http_only_balance_in_tcp_backend():
    text = T("""
        [defaults]
        balance = "hdr(Host)"
        [frontends.t]
        mode = "tcp"
        bind = "127.0.0.1:1"
        default_backend = "own"
        [backends.own]
        mode = "tcp"
        balance = "uri"
        [backends.inherited]
        mode = "tcp"
        [backends.fine]
        mode = "tcp"
        balance = "source"
    """)
    errs = errors_of(text)
    assert [(e.line, e.path, e.message) for e in errs] == [
        (9, "backends.own.balance", "balance uri needs mode http (this backend is mode tcp)"),
        (10, "backends.inherited",
         "balance hdr (inherited from [defaults]) needs mode http (this backend is mode tcp)"),
    ]


# -------------------------------------------------------- cross references

def test_unknown_backends_with_suggestions():
    text = BASE.replace('default_backend = "app"', T("""
        default_backend = "ap"
        [[frontends.www.use_backend]]
        backend = "zzz"
        [[frontends.www.use_backend]]
        backend = "app"
        if = "x"
    """).rstrip())
    errs = errors_of(text)
    assert [(e.line, e.path, e.message) for e in errs] == [
        (3, "frontends.www.default_backend", "unknown backend 'ap' (did you mean 'app'?)"),
        (5, "frontends.www.use_backend[0].backend", "unknown backend 'zzz'"),
    ]


def test_modes_must_match_and_tcp_needs_default_backend():
    text = BASE + T("""
        [frontends.tcp1]
        mode = "tcp"
        bind = "127.0.0.1:1"
        default_backend = "app"
        [frontends.tcp2]
        mode = "tcp"
        bind = "127.0.0.1:2"
        use_backend = [{ backend = "db" }]
        [frontends.web]
        bind = "127.0.0.1:3"
        use_backend = [{ backend = "db", if = "x" }]
        [backends.db]
        mode = "tcp"
    """)
    errs = errors_of(text)
    assert [(e.line, e.path, e.message) for e in errs] == [
        (12, "frontends.tcp1.default_backend",
         "backend 'app' is mode http but frontend 'tcp1' is mode tcp (http and tcp cannot be mixed)"),
        (13, "frontends.tcp2", "a tcp frontend needs a default_backend"),
        (19, "frontends.web.use_backend[0].backend",
         "backend 'db' is mode tcp but frontend 'web' is mode http (http and tcp cannot be mixed)"),
    ]


def test_http_settings_in_tcp_sections():
    text = T("""
        [frontends.t]
        mode = "tcp"
        bind = "127.0.0.1:1"
        default_backend = "b"
        http_request = [{ action = "allow" }]
        [backends.b]
        mode = "tcp"
        cookie.name = "SRV"
        [[backends.b.http_response]]
        action = "del-header"
        name = "Server"
    """)
    errs = errors_of(text)
    assert [(e.line, e.path, e.message) for e in errs] == [
        (5, "frontends.t.http_request", "http_request needs mode http (this section is mode tcp)"),
        (8, "backends.b.cookie", "cookie needs mode http (this section is mode tcp)"),
        (9, "backends.b.http_response", "http_response needs mode http (this section is mode tcp)"),
    ]


def test_missing_bind_and_nothing_to_listen_on():
    err = one_error('[frontends.www]\ndefault_backend = "app"\n[backends.app]\n')
    assert (err.line, err.path, err.message) == (1, "frontends.www", "missing required key 'bind'")
    err = one_error("[backends.app]\n")
    assert (err.line, err.path, str(err)) == (
        0, "", "t.toml: nothing to listen on: define a [frontends.NAME] section (or stats.bind)")
    cfg = load_text('[stats]\nbind = "127.0.0.1:8404"\n')
    assert cfg.frontends == () and summary(cfg) == (
        "<string>: valid: 0 frontends, 0 backends, 0 servers, 1 worker")


# -------------------------------------------------------------------- rules

def rule_errors(rules_toml: str, section: str = "frontends.www") -> list[tuple[int, str, str]]:
    text = BASE + rules_toml.replace("SECTION", section)
    return [(e.line, e.path, e.message) for e in errors_of(text)]


def test_rule_validation():
    got = rule_errors(T("""
        [[SECTION.http_request]]
        action = "deny"
        status = "403"
        [[SECTION.http_request]]
        action = "dney"
        [[SECTION.http_request]]
        action = "redirect"
        location = "/a"
        prefix = "/b"
        code = 304
        [[SECTION.http_request]]
        action = "redirect"
        [[SECTION.http_request]]
        action = "set-header"
        name = "Bad Name"
        [[SECTION.http_request]]
        action = "replace-header"
        name = "Host"
        match = "(unclosed"
        replace = "x"
        [[SECTION.http_request]]
        action = "return"
        status = 700
        stauts = 200
        [[SECTION.http_request]]
        if = "a"
        [[SECTION.http_request]]
        action = "allow"
        if = "a"
        unless = "b"
        [[SECTION.http_request]]
        action = "set-header"
        name = "X"
        value = "a\\r\\nInjected: 1"
        [[SECTION.http_request]]
        action = "set-path"
        value = "nopath"
    """))
    assert got == [
        (11, "frontends.www.http_request[0].status", "expected an integer, got string '403'"),
        (13, "frontends.www.http_request[1].action", "unknown action 'dney' (did you mean 'deny'?)"),
        (14, "frontends.www.http_request[2]",
         "redirect needs exactly one of 'location', 'prefix' or 'scheme', got location, prefix"),
        (18, "frontends.www.http_request[2].code", "must be one of 301, 302, 303, 307, 308, got 304"),
        (19, "frontends.www.http_request[3]",
         "redirect needs exactly one of 'location', 'prefix' or 'scheme'"),
        (21, "frontends.www.http_request[4]", "action 'set-header' needs 'value'"),
        (23, "frontends.www.http_request[4].name", "invalid header name or token 'Bad Name'"),
        (27, "frontends.www.http_request[5].match",
         "invalid regular expression '(unclosed': missing ), unterminated subpattern at position 0"),
        (31, "frontends.www.http_request[6].status", "must be between 100 and 599, got 700"),
        (32, "frontends.www.http_request[6].stauts",
         "unknown key 'stauts' for action 'return' (did you mean 'status'?)"),
        (33, "frontends.www.http_request[7]", "missing required key 'action'"),
        (38, "frontends.www.http_request[8].unless", "use either 'if' or 'unless', not both"),
        (42, "frontends.www.http_request[9].value", "must not contain CR, LF or NUL characters"),
        (45, "frontends.www.http_request[10].value", "must start with '/', got 'nopath'"),
    ]


def test_response_rules_only_take_response_actions():
    got = rule_errors(T("""
        [[SECTION.http_response]]
        action = "deny"
        [[SECTION.http_response]]
        action = "set-status"
        [[SECTION.http_response]]
        action = "set-status"
        status = 200
        reason = "Fine"
        [[SECTION.http_response]]
        action = "replace-header"
        name = "Set-Cookie"
        match = "x"
        replace = "y"
    """), section="backends.app")
    assert got == [
        (10, "backends.app.http_response[0].action",
         "unknown action 'deny' (expected one of: set-header, add-header, del-header, "
         "replace-header, set-status)"),
        (11, "backends.app.http_response[1]", "action 'set-status' needs 'status'"),
    ]


def test_rules_must_be_an_array_of_tables():
    got = rule_errors('[frontends.x]\nbind = "127.0.0.1:7"\nhttp_request = ["deny"]\nuse_backend = "app"\n')
    assert got == [
        (11, "frontends.x.http_request[0]", "expected a table for each rule, got string 'deny'"),
        (12, "frontends.x.use_backend",
         "expected an array of tables ([[frontends.x.use_backend]]), got string 'app'"),
    ]


# --------------------------------------------------------- conditions, ACLs

def test_condition_and_acl_messages_are_located(monkeypatch):
    seen = []

    def check_condition(text, names):
        seen.append((text, frozenset(names)))
        return [f"bad condition {text!r}"] if "bad" in text else []

    monkeypatch.setattr(conditions, "check_condition", check_condition)
    monkeypatch.setattr(conditions, "check_acl",
                        lambda text: ["unknown fetch 'nope'", "second problem"] if "nope" in text else [])
    text = BASE + T("""
        [frontends.www.acl]
        ok = "src 1.2.3.4"
        broken = ["path_beg /x",
                  "nope 1"]
        [[frontends.www.http_request]]
        action = "deny"
        unless = "bad ok"
        [[frontends.www.use_backend]]
        backend = "app"
        if = "ok"
        [backends.app.acl]
        mine = "path /m"
        [[backends.app.http_request]]
        action = "allow"
        if = "bad mine"
    """)
    errs = errors_of(text)
    assert [(e.line, e.path, e.message) for e in errs] == [
        (12, "frontends.www.acl.broken[1]", "unknown fetch 'nope'"),
        (12, "frontends.www.acl.broken[1]", "second problem"),
        (15, "frontends.www.http_request[0].unless", "bad condition 'bad ok'"),
        (23, "backends.app.http_request[0].if", "bad condition 'bad mine'"),
    ]
    assert seen == [("bad ok", {"ok", "broken"}), ("ok", {"ok", "broken"}), ("bad mine", {"mine"})]


def test_acl_value_errors():
    text = BASE + T("""
        [frontends.www.acl]
        a = []
        b = 5
        c = ["src 1.1.1.1", 3, " "]
    """)
    errs = errors_of(text)
    assert [(e.line, e.path, e.message) for e in errs] == [
        (10, "frontends.www.acl.a", "an ACL needs at least one line"),
        (11, "frontends.www.acl.b", "expected a string or an array of strings, got integer 5"),
        (12, "frontends.www.acl.c[1]", "expected a non-empty string, got integer 3"),
        (12, "frontends.www.acl.c[2]", "expected a non-empty string, got string ' '"),
    ]


def test_condition_must_be_a_string():
    text = BASE + '[[frontends.www.use_backend]]\nbackend = "app"\nif = 1\n'
    err = one_error(text)
    assert (err.line, err.path, err.message) == (11, "frontends.www.use_backend[0].if",
                                                 "expected a string, got integer 1")


def test_format_and_replacement_messages_are_located(monkeypatch):
    monkeypatch.setattr(conditions, "check_format",
                        lambda text: [f"unknown fetch in {text!r}"] if "%[bad]" in text else [])
    monkeypatch.setattr(conditions, "check_replacement",
                        lambda text, regex: ["no group 2"] if "\\2" in text else [])
    text = BASE + T("""
        [[frontends.www.http_request]]
        action = "set-header"
        name = "X-Id"
        value = "%[bad]"
        [[frontends.www.http_request]]
        action = "replace-path"
        match = "^/(a)"
        replace = '/\\2'
        [[frontends.www.http_request]]
        action = "set-path"
        value = "%[path]/x"
        [[frontends.www.http_request]]
        action = "redirect"
        prefix = "%[bad]"
    """)
    errs = errors_of(text)
    assert [(e.line, e.path, e.message) for e in errs] == [
        (12, "frontends.www.http_request[0].value", "unknown fetch in '%[bad]'"),
        (16, "frontends.www.http_request[1].replace", "no group 2"),
        (22, "frontends.www.http_request[3].prefix", "unknown fetch in '%[bad]'"),
    ]


@pytest.mark.parametrize("rule, path, message", [
    ('action = "set-header"\nname = "X"\nvalue = "%[nosuchfetch]"', "value", "nosuchfetch"),
    ('action = "replace-path"\nmatch = "^/(a)"\nreplace = \'/\\3\'', "replace", "\\3"),
])
def test_real_format_checks(rule, path, message, real_conditions):
    text = BASE + "[[frontends.www.http_request]]\n" + rule + "\n"
    err = one_error(text)
    assert (err.line, err.path) == (12, f"frontends.www.http_request[0].{path}")
    assert message in err.message


# ------------------------------------------------------ check, cookie, servers

def test_check_errors():
    text = BASE + T("""
        [backends.app.check]
        path = "/hz"
        expect_status = "500-200"
        interval = "0s"
        rise = 0
        port = 70000
        type = "icmp"
        [backends.b2.check]
        expect_status = 200
    """)
    errs = errors_of(text)
    assert [(e.line, e.path, e.message) for e in errs] == [
        (11, "backends.app.check.expect_status",
         "invalid status range '500-200' (codes 100..599, low <= high)"),
        (12, "backends.app.check.interval", "must be greater than 0, got '0s'"),
        (13, "backends.app.check.rise", "must be between 1 and 1000, got 0"),
        (14, "backends.app.check.port", "must be between 1 and 65535, got 70000"),
        (15, "backends.app.check.type", "unknown check type 'icmp' (expected one of: tcp, http)"),
        (16, "backends.b2.check", "missing required key 'type' (tcp or http)"),
    ]


@pytest.mark.parametrize("value, expected", [
    ('"200"', (200, 200)), ('"200-399"', (200, 399)), ("204", (204, 204)), ('" 301-302 "', (301, 302)),
])
def test_expect_status(value, expected):
    text = BASE + f'[backends.app.check]\ntype = "http"\nexpect_status = {value}\n'
    assert load_text(text).backends[0].check.expect_status == expected


def test_cookie_and_server_errors():
    text = BASE + T("""
        weight = 257
        backup = "no"
        [[backends.app.servers]]
        address = "127.0.0.1:1"
        [[backends.app.servers]]
        name = "nothere"
        [backends.app.cookie]
        mode = "insrt"
    """)
    errs = errors_of(text)
    assert [(e.line, e.path, e.message) for e in errs] == [
        (9, "backends.app.servers[0].weight", "must be between 0 and 256, got 257"),
        (10, "backends.app.servers[0].backup", "expected a boolean (true or false), got string 'no'"),
        (11, "backends.app.servers[1]", "missing required key 'name'"),
        (13, "backends.app.servers[2]", "missing required key 'address'"),
        (15, "backends.app.cookie", "missing required key 'name'"),
        (16, "backends.app.cookie.mode", "unknown cookie mode 'insrt' (did you mean 'insert'?)"),
    ]


def test_servers_must_be_tables():
    text = BASE.replace("[[backends.app.servers]]\nname = \"s1\"\naddress = \"127.0.0.1:9000\"\n",
                        'servers = ["127.0.0.1:1"]\n')
    err = one_error(text)
    assert (err.line, err.path, err.message) == (
        6, "backends.app.servers[0]", "expected a table for each server, got string '127.0.0.1:1'")


def test_server_ids_are_positions_and_dropped_servers_keep_numbering():
    text = BASE + '[[backends.app.servers]]\nname = "bad"\n[[backends.app.servers]]\n' \
                  'name = "s3"\naddress = "127.0.0.1:3"\n'
    with pytest.raises(ConfigErrors):
        load_text(text)
    ok = BASE + '[[backends.app.servers]]\nname = "s2"\naddress = "127.0.0.1:3"\n'
    servers = load_text(ok).backends[0].servers
    assert [(s.name, s.id, s.line) for s in servers] == [("s1", 1, 6), ("s2", 2, 9)]


# ------------------------------------------------ syntax, files, reporting

def test_toml_syntax_error_line():
    err = one_error(BASE + "[backends.x]\nbalance = roundrobin\n")
    assert (err.file, err.line, err.path) == ("t.toml", 10, "")
    assert err.message == ('TOML syntax error: Invalid value (column 11); '
                           'strings are quoted in TOML: balance = "roundrobin"')
    assert str(err) == f"t.toml:10: {err.message}"


def test_toml_duplicate_table_is_a_syntax_error():
    err = one_error(BASE + "[backends.app]\n")
    assert err.line == 9 and err.message.startswith("TOML syntax error: Cannot declare")


def test_toml_error_at_end_of_document():
    err = one_error(BASE + "x = ")
    assert err.line == 9 and "(at end of file)" in err.message


def test_unreadable_and_non_utf8_files(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigErrors) as info:
        load(str(missing))
    (err,) = info.value.errors
    assert str(err) == f"{missing}: cannot read config: No such file or directory"
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"[global]\n# caf\xe9\n")
    with pytest.raises(ConfigErrors) as info:
        load(str(latin))
    assert str(info.value) == f"{latin}:2: config is not valid UTF-8"


def test_three_errors_are_all_reported_in_line_order():
    text = T("""
        [global]
        workers = 0

        [frontends.www]
        bind = "127.0.0.1:80"
        default_backend = "app"

        [backends.app]
        balanse = "roundrobin"
        [[backends.app.servers]]
        name = "s1"
        address = "10.0.0.1:99999"
    """)
    with pytest.raises(ConfigErrors) as info:
        load_text(text, "farm.toml")
    assert str(info.value) == "\n".join([
        f"farm.toml:2: global.workers: must be between 1 and {4 * os.cpu_count()} (4 per core;"
        f" this machine has {os.cpu_count()}), got 0",
        "farm.toml:9: backends.app.balanse: unknown key 'balanse' (did you mean 'balance'?)",
        "farm.toml:12: backends.app.servers[0].address: invalid port '99999' in '10.0.0.1:99999'"
        " (expected 1..65535)",
    ])
    assert [e.line for e in info.value.errors] == [2, 9, 12]


def test_config_error_formatting():
    assert str(ConfigError("f.toml", 3, "a.b[0]", "bad")) == "f.toml:3: a.b[0]: bad"
    assert str(ConfigError("f.toml", 0, "a", "bad")) == "f.toml: a: bad"
    assert str(ConfigError("f.toml", 7, "", "bad")) == "f.toml:7: bad"
    errors = ConfigErrors([ConfigError("f", 1, "", "x"), ConfigError("f", 2, "", "y")])
    assert str(errors) == "f:1: x\nf:2: y" and len(errors.errors) == 2


def test_summary_counts(monkeypatch):
    cfg = load_text(FULL, "farm.toml")
    assert summary(cfg) == "farm.toml: valid: 2 frontends, 3 backends, 3 servers, 2 workers"
    assert summary(load_text(BASE)) == "<string>: valid: 1 frontend, 1 backend, 1 server, 1 worker"


def test_loaded_config_is_frozen_and_hashable():
    cfg = load_text(FULL)
    with pytest.raises(Exception):
        cfg.frontends[0].name = "x"  # type: ignore[misc]
    hash(cfg.frontends[0].http_request)


def test_real_condition_checks(real_conditions):
    text = BASE + T("""
        [frontends.www.acl]
        broken = []
        api = "path_beg /api/"
        [[frontends.www.use_backend]]
        backend = "app"
        if = "broken api"
        [[frontends.www.http_request]]
        action = "deny"
        unless = "apu"
    """)
    errs = errors_of(text)
    # The bad ACL is reported once; conditions naming it add nothing.
    assert [(e.line, e.path) for e in errs] == [
        (10, "frontends.www.acl.broken"), (17, "frontends.www.http_request[0].unless")]
    assert errs[0].message == "an ACL needs at least one line"
    assert "unknown ACL 'apu'" in errs[1].message
