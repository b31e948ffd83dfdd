"""The event loop's timers and fd dispatch (real epoll, real pipes)."""

import os
import signal

from workers.loop import EPOLLIN, Loop


def test_timers_fire_in_order_and_cancel():
    loop = Loop()
    fired = []
    loop.call_later(0.03, lambda: fired.append("b"))
    loop.call_later(0.01, lambda: fired.append("a"))
    t = loop.call_later(0.02, lambda: fired.append("never"))
    t.cancel()
    loop.call_later(0.05, loop.stop)
    loop.run()
    assert fired == ["a", "b"]


def test_extending_a_timer_moves_it_without_a_new_heap_entry():
    loop = Loop()
    fired = []
    t = loop.timer(lambda: fired.append(loop.now))
    loop.set_timer(t, loop.now + 0.01)
    heap_size = len(loop._heap)
    loop.set_timer(t, loop.now + 0.04)      # later: only the Timer changes
    assert len(loop._heap) == heap_size
    start = loop.now
    loop.call_later(0.08, loop.stop)
    loop.run()
    assert len(fired) == 1 and fired[0] - start >= 0.035


def test_moving_a_timer_earlier_fires_once_at_the_earlier_time():
    loop = Loop()
    fired = []
    t = loop.timer(lambda: fired.append(loop.now))
    loop.set_timer(t, loop.now + 0.05)
    loop.set_timer(t, loop.now + 0.01)
    start = loop.now
    loop.call_later(0.08, loop.stop)
    loop.run()
    assert len(fired) == 1 and fired[0] - start < 0.045


def test_fd_handler_gets_events_and_signals_reach_the_loop():
    loop = Loop()
    r, w = os.pipe()
    got = []

    def on_read(ev):
        got.append(os.read(r, 10))
        os.kill(os.getpid(), signal.SIGUSR2)

    def on_signals(sigs):
        got.append(sigs)
        loop.stop()
    loop.add(r, EPOLLIN, on_read)
    loop.watch_signals([signal.SIGUSR2], on_signals)
    os.write(w, b"hi")
    loop.call_later(2, loop.stop)
    loop.run()
    loop.close()
    signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    assert got == [b"hi", [signal.SIGUSR2]]
    os.close(r)
    os.close(w)


def test_end_of_turn_hook_runs_after_events():
    loop = Loop()
    order = []
    loop.at_end_of_turn(lambda: order.append("flush"))
    loop.call_soon(lambda: order.append("soon"))
    loop.call_later(0, loop.stop)
    loop.run()
    assert order[:2] == ["soon", "flush"]


def _check_heap(loop):
    """Every timer knows its place, and no child is placed before its parent."""
    heap = loop._heap
    for i, t in enumerate(heap):
        assert t.index == i
        if i:
            p = heap[(i - 1) // 2]
            assert (p.queued, p.seq) <= (t.queued, t.seq)


def test_timer_heap_fires_each_armed_timer_once_at_its_deadline():
    # The loop's clock is driven by hand: timers set, moved earlier and
    # later (with and without `early`), cancelled, released, compacted.
    import random
    from workers.loop import COMPACT_MIN
    rnd = random.Random(13)
    loop = Loop()
    loop.now = 0.0
    fired = {}
    timers = []
    for i in range(COMPACT_MIN + 1000):
        t = loop.timer(lambda i=i: fired.setdefault(i, []).append(loop.now))
        timers.append(t)
        loop.set_timer(t, rnd.uniform(1, 100))
    expect = {}
    for i, t in enumerate(timers):
        r = rnd.random()
        if r < 0.5:
            t.release() if r < 0.25 else t.cancel()
            continue
        if r < 0.7:
            loop.set_timer(t, rnd.uniform(1, 100), rnd.uniform(0.5, 1))    # earlier, placed early
        elif r < 0.85:
            loop.set_timer(t, rnd.uniform(1, 200))
        expect[i] = t.when
    _check_heap(loop)
    for i in range(10000):           # cancelled ones pile up: compacted
        t = loop.timer(lambda: None)
        loop.set_timer(t, 300 + i)
        t.cancel()
    _check_heap(loop)
    assert len(loop._heap) <= 2 * (COMPACT_MIN + 1000)
    for step in range(0, 401):
        loop.now = step * 0.5
        loop._run_timers()
        _check_heap(loop)
    assert set(fired) == set(expect)
    for i, when in expect.items():
        assert len(fired[i]) == 1 and when <= fired[i][0] < when + 0.5


def test_timers_with_one_deadline_fire_in_the_order_they_were_set():
    loop = Loop()
    loop.now = 0.0
    order = []
    for i in range(50):
        loop.set_timer(loop.timer(lambda i=i: order.append(i)), 5.0)
    loop.now = 5.0
    loop._run_timers()
    assert order == list(range(50))


def test_a_forgotten_fd_closed_at_once_leaves_the_epoll_set_and_gets_no_event():
    loop = Loop()
    r, w = os.pipe()
    got = []
    loop.add(r, EPOLLIN, lambda ev: got.append(ev))
    loop.forget(r)
    assert loop.handlers.get(r) is None and loop.masks.get(r) is None
    os.close(r)                      # the kernel drops it from the epoll set
    r2, w2 = os.pipe()               # the same number, likely, for a new descriptor
    os.write(w2, b"y")               # readable, but never added
    loop.call_later(0.05, loop.stop)
    loop.run()
    loop.close()
    assert got == []
    for fd in (w, r2, w2):
        os.close(fd)
