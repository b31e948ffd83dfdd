"""farm.loader: every value bounded to what farm can honour, users and
groups that exist, and a located message (never a traceback) for any input:
absurd nesting, huge numbers, wrong types at every level."""

import copy
import datetime
import grp
import json
import os
import pwd

import pytest

from farm import loader
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


def errors(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(ConfigErrors) as info:
        load_text(text, "t.toml")
    return [(e.line, e.path, e.message) for e in info.value.errors]


def one(text: str) -> tuple[int, str, str]:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


# -------------------------------------------------------------- the issue's values

CORES = os.cpu_count()


@pytest.mark.parametrize("setting, line, path, message", [
    ("[global]\nworkers = 99999999999999999999", 2, "global.workers",
     f"must be between 1 and {4 * CORES} (4 per core; this machine has {CORES}), "
     "got (a number of about 21 digits)"),
    ("[global]\nmaxconn = 9223372036854775807", 2, "global.maxconn",
     "must be between 1 and 2147483647, got 9223372036854775807"),
    ('[defaults.timeout]\nclient = "99999999999999999d"', 2, "defaults.timeout.client",
     "duration '99999999999999999d' is too long: at most 2147483647ms (24d20h31m23s, HAProxy's limit)"),
    ('[global]\nuser = "no-such-user"', 2, "global.user",
     "unknown user 'no-such-user' (not in the passwd database of this machine)"),
    ('[global]\nuser = "root"\ngroup = "no-such-group"', 3, "global.group",
     "unknown group 'no-such-group' (not in the group database of this machine)"),
])
def test_values_farm_cannot_honour(setting, line, path, message):
    assert one(setting + "\n" + BASE) == (line, path, message)


def test_the_issue_values_through_farm_check_lines(tmp_path):
    """All four at once, each with its own line and key path, via load()."""
    cfg = tmp_path / "farm.toml"
    cfg.write_text('[global]\nworkers = 99999999999999999999\nmaxconn = 9223372036854775807\n'
                   'user = "no-such-user"\n[defaults.timeout]\nserver = "99999999999999999d"\n' + BASE)
    with pytest.raises(ConfigErrors) as info:
        loader.load(str(cfg))
    assert [(e.line, e.path) for e in info.value.errors] == [
        (2, "global.workers"), (3, "global.maxconn"), (4, "global.user"),
        (6, "defaults.timeout.server")]
    assert all(str(e).startswith(f"{cfg}:{e.line}: {e.path}: ") for e in info.value.errors)


@pytest.mark.parametrize("value, ok", [
    ("2147483647", True), ("2147483648", False), (2147483647, True), (2147483648, False),
    ('"24d20h31m23s"', True), ('"24d20h31m24s"', False), ('"596h"', True), ('"597h"', False),
    ('"' + "9" * 5000 + '"', False), ('"' + "9" * 400 + '.5s"', False),
])
def test_durations_stop_at_haproxys_ceiling(value, ok):
    text = BASE + f"[backends.app.timeout]\nserver = {value}\n"
    if ok:
        assert load_text(text).backend("app").timeouts.server <= 2147483.647
    else:
        ((line, path, message),) = errors(text)
        assert (line, path) == (10, "backends.app.timeout.server")
        assert "is too long: at most 2147483647ms" in message and len(message) < 200


@pytest.mark.parametrize("key", ["hard_stop_after"])
def test_global_durations_are_bounded_too(key):
    assert one(BASE + f'[global]\n{key} = "30d"')[1] == f"global.{key}"


def test_every_other_duration_is_bounded():
    text = BASE.replace('address = "127.0.0.1:9000"', 'address = "127.0.0.1:9000"\nslowstart = "25d"')
    text += ('[backends.app.check]\ntype = "tcp"\ninterval = "25d"\nfastinter = "25d"\n'
             'downinter = "25d"\ntimeout = "25d"\n[stats]\nrefresh = "25d"\n')
    paths = {p for _, p, m in errors(text) if "too long" in m}
    assert paths == {"backends.app.servers[0].slowstart", "backends.app.check.interval",
                     "backends.app.check.fastinter", "backends.app.check.downinter",
                     "backends.app.check.timeout", "stats.refresh"}


def test_workers_ceiling_is_four_per_core():
    assert load_text(BASE + f"[global]\nworkers = {4 * CORES}").global_.workers == 4 * CORES
    assert one(BASE + f"[global]\nworkers = {4 * CORES + 1}")[1] == "global.workers"


def test_maxconn_bounded_by_what_the_workers_can_hold():
    """Two descriptors per proxied connection, 1048576 per process."""
    per = loader.MAXCONN_PER_WORKER
    assert load_text(BASE + f"[global]\nworkers = 1\nmaxconn = {per}").global_.maxconn == per
    line, path, message = one(BASE + f"[global]\nworkers = 1\nmaxconn = {per + 1}")
    assert (line, path) == (11, "global.maxconn")
    assert message == f"must be at most {per} ({per} per worker, 1 worker(s)), got {per + 1}"
    assert load_text(BASE + f"[global]\nworkers = 2\nmaxconn = {per + 1}").global_.maxconn == per + 1
    server = BASE + f"maxconn = {2 * per}\n"
    assert one(server)[:2] == (9, "backends.app.servers[0].maxconn")
    frontend = BASE.replace('default_backend = "app"', f'default_backend = "app"\nmaxconn = {2 * per}')
    assert one(frontend)[:2] == (4, "frontends.www.maxconn")
    defaults = BASE + f"[defaults]\nmaxconn = {2 * per}\n"
    assert one(defaults)[:2] == (10, "defaults.maxconn")      # once, not again per frontend


@pytest.mark.parametrize("setting, path", [
    ("weight = 257", "backends.app.servers[0].weight"),
    ("weight = -1", "backends.app.servers[0].weight"),
    ('address = "127.0.0.1:65536"', "backends.app.servers[0].address"),
    ('address = "127.0.0.1:' + "9" * 5000 + '"', "backends.app.servers[0].address"),
    ('address = "127.0.0.1:²"', "backends.app.servers[0].address"),
])
def test_server_numbers(setting, path):
    text = BASE.replace('address = "127.0.0.1:9000"', setting if setting.startswith("address")
                        else 'address = "127.0.0.1:9000"\n' + setting)
    assert one(text)[1] == path


@pytest.mark.parametrize("setting", [
    "rise = 0", "rise = 1001", "fall = 1001", "port = 0", "port = 65536",
    "error_limit = 2147483648", "error_limit = 0",
])
def test_check_numbers(setting):
    key = setting.split()[0]
    assert one(BASE + f'[backends.app.check]\ntype = "tcp"\n{setting}\n')[1] == f"backends.app.check.{key}"


@pytest.mark.parametrize("setting, path", [
    ("[defaults]\nretries = 101", "defaults.retries"),
    ("[defaults]\nmax_header_size = \"2m\"", "defaults.max_header_size"),
    ("[defaults]\nmax_header_size = \"99999999999999999999g\"", "defaults.max_header_size"),
    ("[defaults]\nmax_header_size = " + "9" * 30, "defaults.max_header_size"),
])
def test_other_numbers(setting, path):
    assert one(BASE + setting)[1] == path


def test_existing_user_and_group_pass():
    pw = pwd.getpwuid(os.getuid())
    group = grp.getgrgid(pw.pw_gid).gr_name
    cfg = load_text(BASE + f'[global]\nuser = "{pw.pw_name}"\ngroup = "{group}"\n')
    assert (cfg.global_.user, cfg.global_.group) == (pw.pw_name, group)


def test_group_without_user_is_refused():
    """drop_privileges applies group only with user: a lone group did nothing."""
    pw = pwd.getpwuid(os.getuid())
    group = grp.getgrgid(pw.pw_gid).gr_name
    assert one(BASE + f'[global]\ngroup = "{group}"\n') == (
        10, "global.group", "group is applied with user: set global.user too")


# ------------------------------------------------------- never a traceback

def test_three_thousand_nested_arrays():
    text = BASE + "x = " + "[" * 3000 + "]" * 3000 + "\n"
    assert errors(text) == [(9, "", "arrays or inline tables nested more than 64 deep")]


def test_nesting_in_strings_and_comments_does_not_count():
    text = BASE + 'x = "' + "[" * 100 + '" # ' + "{" * 100 + "\n"
    assert [(line, path) for line, path, _ in errors(text)] == [(9, "backends.app.servers[0].x")]


def test_a_number_python_will_not_read():
    text = BASE + "x = " + "9" * 5000 + "\n"
    ((line, path, message),) = errors(text)
    assert (line, path) == (9, "") and message.startswith("number too large to read")


def test_a_huge_hex_number_in_a_message():
    ((line, path, message),) = errors(BASE + '[backends.app.check]\ntype = "http"\n'
                                      "expect_status = 0x" + "f" * 5000 + "\n")
    assert path == "backends.app.check.expect_status" and "digits" in message


def test_frontends_of_the_wrong_type_names_the_type():
    assert errors("frontends = [1, 2]\n") == [
        (1, "frontends", "expected a table of named sections ([frontends.NAME]), got an array")]


def test_nothing_to_listen_on_still_said_when_true():
    assert errors("[global]\nworkers = 1\n") == [
        (0, "", "nothing to listen on: define a [frontends.NAME] section (or stats.bind)")]


# A config using every key the loader knows, in every kind of table.
FULL = {
    "global": {"workers": 1, "maxconn": 1000, "admin_socket": "/tmp/x.sock", "hard_stop_after": "5s",
               "pidfile": "/tmp/p", "state_file": "/tmp/s", "node": "n"},
    "log": {"events": "stderr", "access": "stdout", "format": "httplog", "level": "info",
            "syslog_format": "rfc5424", "facility": "local0", "tag": "farm", "hostname": "h"},
    "defaults": {"mode": "http", "retries": 3, "redispatch": True, "balance": "roundrobin",
                 "hash_type": "consistent", "maxconn": 100, "timeout": {"connect": "1s"},
                 "option_forwardfor": True, "forwarded": False, "http_reuse": "safe",
                 "max_header_size": "16k", "check": {"interval": "2s"}, "init_addr": "libc,none"},
    "stats": {"bind": "127.0.0.1:8404", "uri": "/", "refresh": "5s", "auth": "a:b", "admin": True},
    "frontends": {"www": {
        "bind": ["127.0.0.1:80", "127.0.0.1:81"], "default_backend": "app", "maxconn": 10,
        "acl": {"api": "path_beg /api", "two": ["src 10.0.0.0/8", "src 127.0.0.1"]},
        "timeout": {"client": "3s"},
        "http_request": [{"action": "deny", "status": 403, "if": "api"},
                         {"action": "set-header", "name": "X", "value": "y"},
                         {"action": "redirect", "location": "/x", "code": 301}],
        "http_response": [{"action": "set-status", "status": 200}],
        "use_backend": [{"backend": "app", "if": "api"}], "xff_header": "X-FF", "errorfiles": {}}},
    "backends": {"app": {
        "mode": "http", "balance": "hdr(Host)", "retries": 2,
        "check": {"type": "http", "path": "/h", "expect_status": "200-399", "rise": 2, "fall": 3,
                  "port": 81, "observe": True, "error_limit": 5, "interval": "1s", "method": "GET",
                  "host": "h", "expect_body": "ok", "fastinter": "1s", "downinter": "2s",
                  "timeout": "1s"},
        "cookie": {"name": "SRV", "mode": "insert", "indirect": True, "maxidle": "1h", "domain": "d"},
        "acl": {"a": "path /"}, "http_request": [{"action": "del-header", "name": "X"}],
        "timeout": {"server": "10s"},
        "servers": [{"name": "s1", "address": "127.0.0.1:9000", "weight": 2, "maxconn": 10,
                     "backup": False, "check": True, "cookie": "c1", "disabled": False,
                     "slowstart": "1s", "init_addr": "libc"},
                    {"name": "s2", "address": "[::1]:9000"}]}},
}

# One of each TOML type, and values that broke parsers before.
WRONG = [-1, 2 ** 63, 1.5, True, "", "9" * 5000, "²", "\x00", "%[", [], [1], [{}], {"a": 1},
         datetime.datetime(2020, 1, 1, 1, 2, 3), datetime.time(1, 2)]


def toml_value(v) -> str:
    """A tiny TOML writer (inline forms) for the fuzz below."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "inf" if v == float("inf") else repr(v)
    if isinstance(v, (int, str)):
        return str(v) if isinstance(v, int) else json.dumps(v)
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_doc(d: dict) -> str:
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in d.items())


def paths(value, path=()):
    """Every key path of a nested dict/list, the root excluded."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for k, v in items:
        yield path + (k,)
        yield from paths(v, path + (k,))


def with_value(data: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(data)
    cur = data
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return data


def test_the_full_config_is_valid():
    load_text(toml_doc(FULL))


def test_wrong_types_at_every_level_give_located_messages():
    """Every key (and array element) of FULL replaced by each WRONG value:
    the loader reports errors that name a key path, never another
    exception (a traceback for the user). The parsed data goes to the
    loader's builder directly: TOML text costs time and is fuzzed below."""
    cases = 0
    for path in paths(FULL):
        for value in WRONG:
            ctx = loader._Ctx("f.toml", {}, None)
            loader._build(ctx, with_value(FULL, path, value))
            assert all(err.message for err in ctx.errors)
            cases += 1
    assert cases > 1500


def test_wrong_types_through_toml_text():
    """The same through the TOML text, for one value of each type per key."""
    for path in paths(FULL):
        for value in (2 ** 63, "x", [{}], datetime.date(2020, 1, 1)):
            try:
                load_text(toml_doc(with_value(FULL, path, value)), "f.toml")
            except ConfigErrors as e:
                assert all(err.path or err.line == 0 or "TOML" in err.message for err in e.errors)


def test_unknown_keys_of_every_type_everywhere():
    for path in [()] + [p for p in paths(FULL) if isinstance(_at(FULL, p), dict)]:
        for value in (1, "x", [], {"a": 1}):
            data = copy.deepcopy(FULL)
            _at(data, path)["zz_extra"] = value
            with pytest.raises(ConfigErrors) as info:
                load_text(toml_doc(data))
            assert any("zz_extra" in e.path for e in info.value.errors)


def _at(data, path):
    for k in path:
        data = data[k]
    return data


H2 = BASE.replace('default_backend = "app"\n', 'default_backend = "app"\n\n[frontends.www.h2]\n{h2}\n', 1)


def test_frontend_h2_limits():
    cfg = load_text(H2.format(h2="max_concurrent_streams = 8\nmax_frame_size = 65536"), "t.toml")
    h2 = cfg.frontends[0].h2
    assert (h2.max_concurrent_streams, h2.max_frame_size) == (8, 65536)
    assert (h2.initial_window_size, h2.header_table_size, h2.max_header_fields) == (65535, 4096, 100)
    assert load_text(BASE, "t.toml").frontends[0].h2 == type(h2)()      # the defaults


@pytest.mark.parametrize("h2, key, words", [
    ("max_frame_size = 1000", "max_frame_size", "16384"),             # RFC 9113's floor
    ("initial_window_size = 2147483648", "initial_window_size", "2147483647"),
    ("max_concurrent_streams = 0", "max_concurrent_streams", "1"),
    ("header_table_size = -1", "header_table_size", "0"),
    ("max_streams = 4", "max_streams", "unknown"),
    ('max_header_fields = "many"', "max_header_fields", "integer"),
])
def test_frontend_h2_mistakes_are_located(h2, key, words):
    line, path, message = one(H2.format(h2=h2))
    assert line == 6 and path.endswith(f"h2.{key}") and words in message, (line, path, message)


def test_frontend_h2_needs_mode_http():
    text = H2.format(h2="max_concurrent_streams = 8").replace(
        '[frontends.www]\n', '[frontends.www]\nmode = "tcp"\n', 1)
    assert any("h2 needs mode http" in m for _, _, m in errors(text))
