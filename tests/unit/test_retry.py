"""workers/lb/retry.py: HAProxy's choice between retrying the same server
and redispatching, and the turn-around before a same-server retry."""

import pytest

from workers.lb.retry import TURNAROUND, retry_elsewhere, turnaround


def elsewhere(redispatch=True, retry=1, retries=3, persistent=False, hashed=False, up=True, usable=2):
    return retry_elsewhere(redispatch, retry, retries, persistent, hashed, up, usable)


def test_without_redispatch_always_the_same_server():
    for retry in (1, 2, 3):
        assert not elsewhere(redispatch=False, retry=retry)
        assert not elsewhere(redispatch=False, retry=retry, up=False)


def test_balanced_choice_goes_elsewhere_at_every_retry():
    assert [elsewhere(retry=r) for r in (1, 2, 3)] == [True, True, True]


def test_one_usable_server_is_retried_until_the_last_retry():
    assert [elsewhere(retry=r, usable=1) for r in (1, 2, 3)] == [False, False, True]


@pytest.mark.parametrize("kind", ["persistent", "hashed"])
def test_persistence_and_hashing_keep_the_server_until_the_last_retry(kind):
    assert [elsewhere(retry=r, **{kind: True}) for r in (1, 2, 3)] == [False, False, True]
    assert elsewhere(retry=1, retries=1, **{kind: True})        # one retry: it is the last


def test_a_server_gone_down_is_left_at_once():
    assert elsewhere(retry=1, persistent=True, up=False)


def test_turnaround_is_a_second_or_the_connect_timeout_and_none_after_a_timeout():
    assert turnaround(5.0, timed_out=False) == TURNAROUND == 1.0
    assert turnaround(0.2, timed_out=False) == 0.2
    assert turnaround(None, timed_out=False) == 1.0
    assert turnaround(5.0, timed_out=True) == 0.0
