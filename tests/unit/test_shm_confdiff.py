"""The shared-memory table (layout, state, counters, carry-over) and the
reload change summary."""

import array

from farm import confdiff, shm
from farm.loader import load_text

CFG = """
[global]
workers = 2
[defaults]
mode = "tcp"
[frontends.fe]
bind = "127.0.0.1:1"
default_backend = "be"
[backends.be]
[backends.be.check]
type = "tcp"
[[backends.be.servers]]
name = "s1"
address = "127.0.0.1:2"
weight = 10
[[backends.be.servers]]
name = "s2"
address = "127.0.0.1:3"
disabled = true
"""


def test_layout_and_initial_server_state():
    t = shm.Table.create(load_text(CFG), 1)
    assert set(t.layout.rows) == {shm.PROCESS_ROW, ("fe", "fe"), ("be", "be"), ("srv", "be", "s1"),
                                  ("srv", "be", "s2")}
    s1, s2 = t.server_row("be", "s1"), t.server_row("be", "s2")
    assert t.usable(s1) == (True, 10 * shm.WEIGHT_SCALE)
    assert t.usable(s2)[0] is False                 # disabled = maintenance
    assert t.srv_get(s1, "health") == 2             # rise: up, down at the first failure
    assert t.generation == 1


def test_counters_sum_over_worker_columns_and_maxima_are_maxed():
    t = shm.Table.create(load_text(CFG), 1)
    key = ("srv", "be", "s1")
    for w, (stot, smax) in enumerate([(5, 3), (7, 9)]):
        vals = [0] * shm.CNT_FIELDS
        vals[shm.C_STOT] = stot
        vals[shm.C_SMAX] = smax
        t.write_column(t.counter_base(key, w), array.array("q", vals))
    row = t.read_row(key)
    assert row["stot"] == 12 and row["smax"] == 9


def test_carry_over_keeps_state_and_totals_by_name():
    old = shm.Table.create(load_text(CFG), 1)
    s1 = old.server_row("be", "s1")
    old.srv_set(s1, "admin", shm.ADMIN_DRAIN)
    vals = [0] * shm.CNT_FIELDS
    vals[shm.C_STOT] = 42
    vals[shm.C_SCUR] = 3
    old.write_column(old.counter_base(("srv", "be", "s1"), 0), array.array("q", vals))
    new_cfg = load_text(CFG.replace('name = "s2"', 'name = "s3"'))
    new = shm.Table.create(new_cfg, 2)
    new.carry_from(old)
    assert new.srv_get(new.server_row("be", "s1"), "admin") == shm.ADMIN_DRAIN
    row = new.read_row(("srv", "be", "s1"))
    assert row["stot"] == 42 and row["scur"] == 0    # totals carried, gauges not
    assert new.read_row(("srv", "be", "s3"))["stot"] == 0
    assert new.state_version > 0


def test_confdiff_describes_a_reload():
    old = load_text(CFG)
    new = load_text(CFG.replace("weight = 10", "weight = 20").replace('"127.0.0.1:1"', '"127.0.0.1:5"')
                    + '[backends.extra]\n[[backends.extra.servers]]\nname="x"\naddress="127.0.0.1:9"\n')
    assert confdiff.describe(old, new) == [
        "+backend extra", "fe +bind 127.0.0.1:5", "fe -bind 127.0.0.1:1", "be/s1 weight 10\u219220"]


def test_confdiff_names_stick_table_changes():
    a = '[tables.a]\nsize = 10\n'
    b = '[tables.b]\nsize = 10\nstore = ["gpc0"]\n'
    old = load_text(CFG + a + b)
    new = load_text(CFG + a.replace("10", "20") + '[tables.c]\nsize = 5\n')
    assert confdiff.describe(old, new) == ["+table c", "-table b", "table a redefined"]
    assert confdiff.describe(old, load_text(CFG + b + a)) == []    # the order does not matter


def test_confdiff_names_peers_changes():
    peers = ('[peers]\nlocal = "lb1"\n[[peers.nodes]]\nname = "lb1"\naddress = "127.0.0.1:19000"\n'
             '[[peers.nodes]]\nname = "lb2"\naddress = "127.0.0.2:19000"\n')
    a = '[tables.a]\nsize = 10\n'
    old = load_text(CFG + a)
    new = load_text(CFG + a + "peers = true\n" + peers)
    assert confdiff.describe(old, new) == ["table a replicated", "+peers"]
    moved = load_text(CFG + a + "peers = true\n" + peers.replace("127.0.0.2", "127.0.0.3"))
    assert confdiff.describe(new, moved) == ["peers changed"]


def test_downtime_runs_while_down_or_in_maintenance():
    t = shm.Table.create(load_text(CFG), 1)
    s1, s2 = t.server_row("be", "s1"), t.server_row("be", "s2")
    assert t.srv_get(s2, "down_since") > 0          # disabled: down from the start
    assert t.srv_get(s1, "down_since") == 0
    t.srv_set(s1, "admin", shm.ADMIN_MAINT)
    t.note_downtime(s1, 1_000)
    assert t.srv_get(s1, "down_since") == 1_000
    t.srv_set(s1, "op_up", 0)                       # and its checks fail meanwhile
    t.note_downtime(s1, 1_010)
    t.srv_set(s1, "admin", shm.ADMIN_READY)         # out of maintenance, still down
    t.note_downtime(s1, 1_020)
    assert t.srv_get(s1, "down_since") == 1_000 and t.srv_get(s1, "downtime") == 0
    t.srv_set(s1, "op_up", 1)
    t.note_downtime(s1, 1_030)
    assert t.srv_get(s1, "down_since") == 0 and t.srv_get(s1, "downtime") == 30
