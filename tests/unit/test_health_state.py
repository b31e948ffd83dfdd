"""HAProxy's integer health state machine (farm.health.HealthState), and
what a check result writes to the shared table (ServerCheck.apply)."""

from farm import model, shm
from farm.health import CheckResult, HealthState, ServerCheck, slowstart_weight
from farm.loader import load_text
from farm.shm import WEIGHT_SCALE
from workers.loop import Loop


def test_starts_up_and_falls_at_the_first_failure_like_haproxy():
    st = HealthState(rise=2, fall=3)
    assert st.up and st.health == 2
    assert st.record(False) == "down"
    assert not st.up and st.health == 0


def test_settled_up_needs_fall_failures_to_go_down():
    st = HealthState(rise=2, fall=3)
    st.record(True)                 # 3
    st.record(True)                 # 4 = rise + fall - 1
    assert st.health == 4
    assert st.record(False) is None  # 3
    assert st.record(False) is None  # 2
    assert st.record(False) == "down"
    assert st.health == 0


def test_down_needs_rise_successes_to_come_back():
    st = HealthState(rise=2, fall=3, health=0, up=False)
    assert st.record(True) is None
    assert st.record(True) == "up"
    assert st.health == 4


def test_a_failure_while_rising_resets_progress_by_one():
    st = HealthState(rise=3, fall=2, health=0, up=False)
    st.record(True)
    st.record(True)
    st.record(False)
    assert st.health == 1 and not st.up


def test_intervals_inter_fastinter_downinter():
    chk = model.Check(type="tcp", interval=2.0, fastinter=0.5, downinter=5.0, rise=2, fall=3)
    assert HealthState(2, 3, health=4, up=True).next_interval(chk) == 2.0
    assert HealthState(2, 3, health=3, up=True).next_interval(chk) == 0.5
    assert HealthState(2, 3, health=0, up=False).next_interval(chk) == 5.0
    assert HealthState(2, 3, health=1, up=False).next_interval(chk) == 0.5


def test_describe_uses_haproxy_words():
    r = CheckResult(False, "L4CON", info="Connection refused", duration_ms=0)
    assert r.describe() == 'reason: Layer4 connection problem, info: "Connection refused", check duration: 0ms'
    r = CheckResult(False, "L7STS", code=503, info="Service Unavailable", duration_ms=2)
    assert r.describe() == ('reason: Layer7 wrong status, code: 503, info: "Service Unavailable", '
                            'check duration: 2ms')


def test_slowstart_ramp():
    assert slowstart_weight(10, 0.0, 10.0) == 1
    assert slowstart_weight(10, 5.0, 10.0) == 5 * WEIGHT_SCALE
    assert slowstart_weight(10, 10.0, 10.0) == 10 * WEIGHT_SCALE
    assert slowstart_weight(1, 0.5, 10.0) == 1           # weight 1 still ramps in steps
    assert slowstart_weight(0, 5.0, 10.0) == 0


CHECKED = """
[global]
workers = 1
[defaults]
mode = "tcp"
[frontends.fe]
bind = "127.0.0.1:1"
default_backend = "be"
[backends.be]
[backends.be.check]
type = "tcp"
rise = 2
fall = 2
[[backends.be.servers]]
name = "s1"
address = "127.0.0.1:2"
"""


def test_failed_checks_count_only_while_they_take_health_down():
    """HAProxy's chkfail: a failure of a server already fully down is not
    counted again; chkdown counts the transitions; downtime the outage."""
    cfg = load_text(CHECKED)
    t = shm.Table.create(cfg, 1)
    be = cfg.backends[0]
    chk = ServerCheck(Loop(), t, be, be.servers[0], lambda *a: None)
    fail, ok = CheckResult(False, "L4CON"), CheckResult(True, "L4OK")
    for _ in range(5):
        chk.apply(fail)                 # health 2 -> 1: down at once (starts at rise)
    st = t.srv_state(chk.sidx)
    assert (st["chkfail"], st["chkdown"], st["op_up"]) == (1, 1, 0)
    assert st["down_since"] > 0
    t.srv_set(chk.sidx, "down_since", st["down_since"] - 7)     # down for 7 s
    chk.apply(ok)
    chk.apply(ok)                       # up again, health 3
    st = t.srv_state(chk.sidx)
    assert st["op_up"] == 1 and st["down_since"] == 0 and st["downtime"] >= 7
    for _ in range(5):
        chk.apply(fail)                 # 3 -> 2 -> 1 (down) -> not counted
    st = t.srv_state(chk.sidx)
    assert (st["chkfail"], st["chkdown"]) == (3, 2)
