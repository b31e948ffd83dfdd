"""HAProxy habits in a farm config get a pointer to where farm wants it
(farm/confhints.py, through the loader's messages)."""

import pytest

from farm import confhints
from farm.loader import ConfigErrors, load_text

BASE = """\
[frontends.www]
bind = "127.0.0.1:8080"
default_backend = "app"

[backends.app]
[[backends.app.servers]]
name = "s1"
address = "127.0.0.1:9000"
"""


def one(text: str) -> str:
    with pytest.raises(ConfigErrors) as info:
        load_text(text, "t.toml")
    (err,) = info.value.errors
    return str(err)


def in_backend(line: str) -> str:
    return BASE.replace("[backends.app]\n", f"[backends.app]\n{line}\n")


def in_server(line: str) -> str:
    return BASE + line + "\n"


def test_option_httpchk_points_to_the_check_table():
    assert one(in_backend('option = "httpchk GET /healthz"')) == (
        "t.toml:6: backends.app.option: unknown key 'option': HAProxy's 'option httpchk' is "
        'the [backends.app.check] table in farm: type = "http", method, path, host, expect_status')


@pytest.mark.parametrize("value, pointer", [
    ('"forwardfor"', "option_forwardfor = true"),
    ('"redispatch"', "redispatch = true"),
    ('"httplog"', 'log formats are set in [log]: format = "httplog"'),
    ('"http-server-close"', 'http_reuse = "never"'),
    ('"tcpka"', "farm has no 'option' key"),
    ("true", "farm has no 'option' key"),
])
def test_other_options(value, pointer):
    assert pointer in one(in_backend(f"option = {value}"))


def test_inter_on_a_server_points_to_check_interval():
    assert one(in_server('inter = "2s"')) == (
        "t.toml:9: backends.app.servers[0].inter: unknown key 'inter': health check settings "
        "are per backend: interval in [backends.app.check]")


@pytest.mark.parametrize("line, pointer", [
    ("rise = 2", "rise in [backends.app.check]"),
    ("fall = 3", "fall in [backends.app.check]"),
    ("port = 8081", "the check port is port in [backends.app.check]"),
    ('balance = "roundrobin"', "balance is a backend key: set it in [backends.app]"),
    ('timeout = "5s"', "timeouts are per backend: [backends.app.timeout]"),
    ('addr = "10.0.0.1"', 'a server has one address = "host:port"'),
    ('init-addr = "none"', "did you mean 'init_addr'? (farm's keys use '_' where HAProxy's use '-')"),
    ('check-proto = "h2"', 'HAProxy\'s check-proto is proto = "h2" in [backends.app.check] '
                           '(the default for a proto = "h2" server)'),
    ('check_proto = "h2"', 'check-proto is proto = "h2" in [backends.app.check]'),
])
def test_server_habits(line, pointer):
    assert pointer in one(in_server(line))


@pytest.mark.parametrize("text, pointer", [
    (in_backend("maxconn = 100"), "maxconn limits a frontend ([frontends.NAME] maxconn) or each server"),
    (in_backend('inter = "2s"'), "health check settings go in [backends.app.check]: interval"),
    (in_backend('check-proto = "h2"'), 'check-proto is proto = "h2" in [backends.app.check]'),
    (BASE + '[defaults]\ncheck-proto = "h2"\n', 'check-proto is proto = "h2" in [defaults.check]'),
    (BASE.replace('default_backend = "app"', 'default_backend = "app"\nbalance = "first"'),
     "balance is a backend key: set it in [backends.NAME]"),
    (BASE + "[global]\nnbthread = 4\n", 'workers = "auto" or a number'),
    (BASE + "[global]\ndaemon = true\n", "there is no daemon mode"),
    (BASE + '[defaults]\nclient = "30s"\n', 'timeouts go in [defaults.timeout]: client = "..."'),
    (BASE + '[listen.www]\nbind = "x"\n', "a [frontends.NAME] plus a [backends.NAME]"),
    (BASE + '[backends.app.check]\ntype = "http"\nuri = "/h"\n', 'path = "/..."'),
])
def test_section_habits(text, pointer):
    assert pointer in one(text)


def test_timeout_as_a_string():
    assert one(in_backend('timeout = "server 30s"')) == (
        "t.toml:6: backends.app.timeout: expected a table, got string 'server 30s'; "
        'timeout is a table: timeout.server = "30s"')


def test_check_as_a_string():
    assert 'check is a table: [backends.app.check] with type = "tcp" or "http"' in \
        one(in_backend('check = "httpchk GET /"'))


@pytest.mark.parametrize("line, pointer", [
    ('mode = "mode tcp"', 'the key is already mode: write mode = "tcp"'),
    ('balance = "balance roundrobin"', 'the key is already balance: write balance = "roundrobin"'),
])
def test_keyword_repeated_in_the_value(line, pointer):
    assert one(in_backend(line)).endswith(pointer)


@pytest.mark.parametrize("line, pointer", [
    ("balance = roundrobin", 'Invalid value (column 11); strings are quoted in TOML: balance = "roundrobin"'),
    ("retries = 3x", 'strings are quoted in TOML: retries = "3x"'),
    ('balance roundrobin', 'TOML writes key = value: balance = "roundrobin"'),
    ("mode tcp", 'TOML writes key = value: mode = "tcp"'),
    ("http-reuse safe", 'TOML writes key = value: http_reuse = "safe"'),
    ("server s1 10.0.0.1:80 check",
     'a server is a [[backends.NAME.servers]] table with name = "..." and address = "host:port"'),
])
def test_syntax_errors_with_haproxy_lines(line, pointer):
    message = one(in_backend(line))
    assert message.startswith("t.toml:6: TOML syntax error: ") and message.endswith(pointer)


def test_unrelated_syntax_error_gets_no_pointer():
    assert confhints.syntax("Unclosed array", "x = [1, 2") == ""


def test_plain_typo_keeps_did_you_mean():
    assert one(in_server("wieght = 3")).endswith("unknown key 'wieght' (did you mean 'weight'?)")
