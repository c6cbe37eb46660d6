"""The sampler thread's sleep (engine.wake): Event's semantics for one waiting thread."""

from __future__ import annotations

import threading

from otel_energy.engine.wake import Wake


def test_a_set_before_the_wait_returns_it_at_once_and_is_consumed() -> None:
    wake = Wake()
    wake.set()
    wake.set()  # twice: still one wake-up
    assert wake.wait(30.0) is True  # a set flag never sleeps (a 30 s sleep would hang here)
    assert wake.wait(0.0) is False  # consumed by the wait that returned True


def test_a_set_from_another_thread_ends_a_wait_in_progress() -> None:
    wake, started = Wake(), threading.Event()
    got: list[bool] = []

    def sleeper() -> None:
        started.set()
        got.append(wake.wait(30.0))

    thread = threading.Thread(target=sleeper)
    thread.start()
    started.wait()
    wake.set()
    thread.join(30.0)  # a hang bound: the wait ends at the set, not after 30 s
    assert not thread.is_alive() and got == [True]


def test_clear_drops_a_pending_set_and_a_timeout_says_false() -> None:
    wake = Wake()
    wake.clear()  # not set: no-op
    wake.set()
    wake.clear()
    assert wake.wait(0.01) is False
    assert wake.wait(-1.0) is False  # a deadline already past: no sleep, no error
