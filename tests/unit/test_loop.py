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
