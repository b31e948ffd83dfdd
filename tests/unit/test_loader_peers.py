"""[peers] and `peers = true`: what the loader accepts, and each mistake
reported at its file, line and key."""

import pytest

from farm import model
from farm.loader import ConfigErrors, load_text
from tests.unit.test_loader_tables import BASE, line_of

TABLE = """
[tables.per_ip]
size = 100
expire = "10m"
store = ["http_req_rate(10s)"]
peers = true
"""

PEERS = """
[peers]
local = "lb1"
[[peers.nodes]]
name = "lb1"
address = "10.0.0.2:10000"
[[peers.nodes]]
name = "lb2"
address = "10.0.0.3:10000"
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_text(text, "t.toml")
    return [str(e) for e in info.value.errors]


def test_peers_section():
    cfg = load_text(BASE + TABLE + PEERS, "t.toml")
    assert cfg.peers == model.Peers("lb1", (
        model.PeerNode("lb1", model.Address("10.0.0.2", 10000)),
        model.PeerNode("lb2", model.Address("10.0.0.3", 10000))))
    assert cfg.table("per_ip").peers is True
    # replication does not change the table's definition (a reload keeps its memory)
    assert cfg.table("per_ip") == model.StickTable("per_ip", "ip", 32, 100, 600000,
                                                   (("http_req_rate", 10000),))


@pytest.mark.parametrize("old, new, fragment, message", [
    ('local = "lb1"', 'local = "lb3"', 'local = "lb3"', "local node 'lb3' is not one of"),
    ('local = "lb1"\n', "", "[peers]", "missing required key 'local'"),
    ('name = "lb2"', 'name = "lb1"', None, "duplicate peer node 'lb1'"),
    ('"10.0.0.3:10000"', '"10.0.0.2:10000"', None, "already the address of another node"),
    ('"10.0.0.3:10000"', '"0.0.0.0:10000"', '"0.0.0.0:10000"', "must be the node's own IP"),
    ('"10.0.0.3:10000"', '"lb2.example:10000"', '"lb2.example', "must be a literal IP"),
    ('"10.0.0.3:10000"', '"10.0.0.3"', '"10.0.0.3"', "missing port"),
    ('name = "lb2"', 'name = "lb 2"', 'name = "lb 2"', "invalid name"),
    ('local = "lb1"', 'local = "lb1"\nsecret = "x"', "secret", "unknown key 'secret'"),
])
def test_peers_mistakes(old, new, fragment, message):
    text = BASE + TABLE + PEERS.replace(old, new, 1)
    got = errors(text)
    assert len(got) == 1 and message in got[0], got
    if fragment is None:          # about the second node: its line and key
        second = [i + 1 for i, l in enumerate(text.splitlines()) if l == "[[peers.nodes]]"][1]
        assert got[0].startswith("t.toml:"), got
        assert int(got[0].split(":")[1]) > second and "peers.nodes[1]." in got[0], got
    else:
        assert got[0].startswith(f"t.toml:{line_of(text, fragment)}:"), got


def test_peers_address_used_by_a_bind():
    text = BASE.replace("127.0.0.1:8080", "10.0.0.2:10000") + TABLE + PEERS
    got = errors(text)
    assert len(got) == 1 and "already used by frontend 'www'" in got[0], got
