"""Server addresses: farm/resolve.py, init_addr in the loader, the address
cells of the shared-memory table, and how stats show a server without one.

Names used: "localhost" (answered by /etc/hosts) and names under the
reserved TLD "invalid", which farm refuses without asking any resolver
(RFC 6761): nothing here sends a DNS query."""

import socket
import time

import pytest

from farm import model, resolve, shm, stats
from farm.loader import ConfigErrors, load_text

BASE = """\
[frontends.www]
bind = "127.0.0.1:8080"
default_backend = "app"

[backends.app]
[[backends.app.servers]]
name = "s1"
address = "{address}"
"""


def config(address: str, extra: str = "") -> str:
    return BASE.format(address=address) + extra


# ------------------------------------------------------------ farm.resolve

def test_ip_literals_need_no_resolver():
    assert resolve.lookup("127.0.0.1", 80) == (socket.AF_INET, ("127.0.0.1", 80))
    family, sockaddr = resolve.lookup("::1", 80, socket.AF_INET6)
    assert family == socket.AF_INET6 and sockaddr[:2] == ("::1", 80)
    assert resolve.literal_ip("10.0.0.1") == socket.AF_INET
    assert resolve.literal_ip("::1") == socket.AF_INET6
    assert resolve.literal_ip("app.example") is None


@pytest.mark.parametrize("name", ["app1.internal.invalid", "INVALID", "x.Invalid.", "invalid."])
def test_reserved_invalid_names_fail_at_once(name):
    started = time.monotonic()
    with pytest.raises(resolve.ResolveError, match="Name or service not known"):
        resolve.lookup(name, 80)
    assert time.monotonic() - started < 0.05


def test_a_name_that_only_looks_reserved_is_resolved():
    assert not resolve.is_reserved_invalid("invalid.localhost")
    assert not resolve.is_reserved_invalid("notinvalid")


def test_localhost_resolves_and_prefers_the_family():
    assert resolve.lookup("localhost", 8080) == (socket.AF_INET, ("127.0.0.1", 8080))


def test_resolver_remembers_answers_and_failures():
    r = resolve.Resolver()
    r.prefetch([("localhost", 1, socket.AF_INET), ("a.invalid", 1, socket.AF_INET),
                ("b.invalid", 1, socket.AF_INET)])
    assert set(r.results) == {("localhost", 1, socket.AF_INET), ("a.invalid", 1, socket.AF_INET),
                              ("b.invalid", 1, socket.AF_INET)}
    assert r.resolve("localhost", 1) == (socket.AF_INET, ("127.0.0.1", 1))
    with pytest.raises(resolve.ResolveError):
        r.resolve("a.invalid", 1)


# ------------------------------------------------------ the loader's check

def test_check_resolves_server_names():
    text = config("app1.internal.invalid:8080")
    assert load_text(text).backends[0].servers[0].address.host == "app1.internal.invalid"
    with pytest.raises(ConfigErrors) as info:
        load_text(text, "farm.toml", resolver=resolve.Resolver())
    (err,) = info.value.errors
    assert str(err) == ("farm.toml:8: backends.app.servers[0].address: cannot resolve "
                        "'app1.internal.invalid' (Name or service not known); init_addr = "
                        "\"libc,none\" would start this server in maintenance instead")


def test_resolvable_names_and_literals_pass():
    r = resolve.Resolver()
    load_text(config("localhost:8080"), resolver=r)
    load_text(config("10.9.8.7:80"), resolver=r)
    assert ("localhost", 8080, socket.AF_INET) in r.results
    assert not any(host == "10.9.8.7" for host, _, _ in r.results)


@pytest.mark.parametrize("where", ["server", "defaults"])
@pytest.mark.parametrize("value", ["none", "libc,none"])
def test_init_addr_none_lets_an_unresolvable_server_pass(where, value):
    setting = f'init_addr = "{value}"\n'
    text = (config("app1.internal.invalid:8080", setting) if where == "server"
            else "[defaults]\n" + setting + config("app1.internal.invalid:8080"))
    cfg = load_text(text, resolver=resolve.Resolver())
    assert cfg.backends[0].servers[0].init_addr == tuple(value.split(","))


def test_init_addr_default_and_server_overrides_defaults():
    assert load_text(config("localhost:1")).backends[0].servers[0].init_addr == ("libc",)
    text = '[defaults]\ninit_addr = "none"\n' + config("localhost:1", 'init_addr = "libc"\n')
    assert load_text(text).backends[0].servers[0].init_addr == ("libc",)


@pytest.mark.parametrize("value, message", [
    ('"last"', "unknown init_addr method 'last' (expected \"libc\", \"none\" or \"libc,none\"; "
               "farm has no state-file method 'last')"),
    ('"lib"', "unknown init_addr method 'lib' (did you mean 'libc'?)"),
    ('"libc,libc"', "repeated method in init_addr 'libc,libc'"),
    ('"none,libc"', "'none' always succeeds: nothing after it is ever tried in 'none,libc'"),
    ("1", "expected a string, got integer 1"),
])
def test_init_addr_values(value, message):
    with pytest.raises(ConfigErrors) as info:
        load_text(config("localhost:1", f"init_addr = {value}\n"))
    (err,) = info.value.errors
    assert (err.path, err.message) == ("backends.app.servers[0].init_addr", message)


# ----------------------------------------------- addresses for a new table

def addresses(text: str, **kw):
    cfg = load_text(text)
    return resolve.server_addresses(cfg, resolve.Resolver(), **kw)


def test_server_addresses_resolve_literals_and_names():
    out, notes = addresses(config("localhost:8080") + '[[backends.app.servers]]\nname = "s2"\n'
                           'address = "[::1]:81"\n')
    assert out[("app", "s1")] == (socket.AF_INET, ("127.0.0.1", 8080))
    assert out[("app", "s2")][0] == socket.AF_INET6 and notes == []


def test_server_addresses_none_and_why():
    out, notes = addresses(config("a.invalid:1", 'init_addr = "libc,none"\n'))
    assert out == {("app", "s1"): None}
    assert notes == ["Server app/s1 has no address (cannot resolve 'a.invalid': Name or service not "
                     "known): in maintenance until `set server app/s1 addr IP`"]
    out, notes = addresses(config("localhost:1", 'init_addr = "none"\n'))
    assert out == {("app", "s1"): None} and 'init_addr is "none"' in notes[0]


def test_server_addresses_pinned_and_earlier_win():
    pinned = {("app", "s1"): (socket.AF_INET, ("10.1.1.1", 5))}
    out, _ = addresses(config("localhost:1"), pinned=pinned)
    assert out[("app", "s1")] == (socket.AF_INET, ("10.1.1.1", 5))
    out, notes = addresses(config("a.invalid:1", 'init_addr = "libc,none"\n'),
                           earlier=lambda be, srv: (socket.AF_INET, ("10.2.2.2", 1)))
    assert out[("app", "s1")] == (socket.AF_INET, ("10.2.2.2", 1))
    assert notes == ["Server app/s1 keeps its address 10.2.2.2 (cannot resolve 'a.invalid': "
                     "Name or service not known)"]


def test_server_addresses_names_backend_and_server_when_it_must_resolve():
    with pytest.raises(resolve.ResolveError) as info:
        addresses(config("a.invalid:1"))
    assert str(info.value) == ("backend app, server s1: cannot resolve 'a.invalid': "
                               "Name or service not known")


# ------------------------------------------------------ shared-memory cells

def table_for(text: str, addrs=None) -> shm.Table:
    return shm.Table.create(load_text(text), 1, addrs)


@pytest.mark.parametrize("address", [
    (socket.AF_INET, ("10.0.0.1", 8080)),
    (socket.AF_INET, ("255.255.255.255", 1)),
    (socket.AF_INET6, ("2001:db8::1", 443, 0, 0)),
    (socket.AF_INET6, ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 0, 0)),
])
def test_address_cells_round_trip(address):
    t = table_for(config("127.0.0.1:1"))
    seq0, _ = t.address(0)
    t.set_address(0, address)
    seq, got = t.address(0)
    assert got == address and seq == seq0 + 2 and seq % 2 == 0
    assert shm.state_address(t.srv_state(0)) == address


def test_a_write_in_progress_is_never_read_half():
    t = table_for(config("127.0.0.1:1"))
    base = t.layout.srv_base(0)
    t.q[base + shm.S_ADDR_SEQ] += 1          # the master is between its stores
    seq, got = t.address(0)
    assert seq % 2 == 1 and got is None


def test_create_literal_name_and_no_address():
    t = table_for(config("127.0.0.1:81"))
    assert t.address(0)[1] == (socket.AF_INET, ("127.0.0.1", 81))
    t = table_for(config("localhost:81"))
    assert t.address(0)[1] is None and t.srv_get(0, "rmaint") == 0    # the worker resolves it
    t = table_for(config("a.invalid:81"), {("app", "s1"): None})
    assert t.address(0)[1] is None and t.srv_get(0, "rmaint") == 1
    assert t.usable(0) == (False, shm.WEIGHT_SCALE)


def test_stats_show_resolution_maintenance():
    cfg = load_text(config("a.invalid:81", '[backends.app.check]\ntype = "tcp"\n'))
    t = shm.Table.create(cfg, 1, {("app", "s1"): None})
    (fe, srv, be) = stats.snapshot(cfg, t, {"now": int(time.time())})
    assert (srv["status"], srv["addr"], srv["check_status"]) == ("MAINT (resolution)", "", None)
    assert be["status"] == "DOWN"
    t.set_address(0, (socket.AF_INET, ("127.0.0.2", 82)))
    t.srv_set(0, "rmaint", 0)
    (fe, srv, be) = stats.snapshot(cfg, t, {"now": int(time.time())})
    assert (srv["status"], srv["addr"]) == ("UP 1/3", "127.0.0.2:82")
    t.set_address(0, (socket.AF_INET6, ("::1", 83, 0, 0)))
    assert stats.snapshot(cfg, t, {})[1]["addr"] == "[::1]:83"


def test_the_model_knows_the_methods():
    assert model.INIT_ADDR_METHODS == ("libc", "none")
