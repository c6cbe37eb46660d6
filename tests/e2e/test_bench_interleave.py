"""The block-interleaved method's parts (benchmarks/interleave.py): the figures in
benchmarks/results/overhead.md are only as good as these."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from benchmarks.interleave import (
    BASELINE,
    Block,
    SamplerGate,
    ThreadClocks,
    busy_python,
    cpu_delta,
    group_cpu,
    pair_ratio,
    schedule,
    summary,
)


def block(arm: str, periods: list[float], hooked: int | None = None) -> Block:
    stamps = [0.0]
    for p in periods:
        stamps.append(stamps[-1] + p)
    return Block(arm, stamps, hooked=len(periods) if hooked is None else hooked)


def test_schedule_pairs_every_arm_with_the_baseline_in_abba_order() -> None:
    pairs = schedule(["a", "b"], 4)
    o = BASELINE
    assert pairs == [
        (o, "a"), (o, "b"),  # round 0: baseline first
        ("b", o), ("a", o),  # round 1: arm first, arms rotated
        (o, "a"), (o, "b"),
        ("b", o), ("a", o),
    ]  # fmt: skip


def test_an_arm_called_off_is_still_paired_with_the_baseline() -> None:
    """STEP_SPANS=off's arm was named "off", like the baseline blocks were: its blocks ran as
    baseline blocks and its "ratio" was an A/A one (0 us of our CPU per step)."""
    pairs = schedule(["off"], 2)
    assert pairs == [(BASELINE, "off"), ("off", BASELINE)]
    with pytest.raises(ValueError):
        schedule([BASELINE], 1)


def test_pair_ratio_of_medians_and_of_time_per_hooked_step() -> None:
    off = block("off", [9.0, 1.0, 1.0, 1.0, 1.0])  # the first period is the switch: dropped
    # 4 hooked steps at 1.1, then a tail of 2 steps at 1.0 and one burst of 0.4 extra
    on = block("x", [9.0, 1.1, 1.1, 1.1, 1.1, 1.4, 1.0], hooked=5)
    r = pair_ratio(off, on, settle=1)
    assert r is not None
    assert r.median_ratio == pytest.approx(1.1)
    # added: 0.4 (hooks) + 0.4 (burst) over 4 hooked steps at 1.0 each
    assert r.time_ratio == pytest.approx(1.2)
    assert pair_ratio(block("off", [1.0]), on, settle=1) is None  # too short to compare


def test_summary_gives_a_bootstrap_ci_around_the_mean_that_narrows_with_pairs() -> None:
    few = summary([0.98, 1.02, 1.00, 1.01])
    many = summary([0.98, 1.02, 1.00, 1.01] * 25)
    for s in (few, many):
        lo, hi = s["ci95"]
        assert lo < s["mean"] < hi
    assert many["ci95"][1] - many["ci95"][0] < few["ci95"][1] - few["ci95"][0]
    assert summary([1.0, 1.0])["ci95"] == [1.0, 1.0]
    assert summary([])["pairs"] == 0


def test_thread_clocks_charge_a_named_threads_work_to_it() -> None:
    clocks = ThreadClocks()
    started, burned, done = threading.Event(), threading.Event(), threading.Event()

    def work() -> None:
        started.wait()
        busy_python(300_000)
        burned.set()
        done.wait()

    t = threading.Thread(target=work, name="otel-energy-x")
    t.start()
    try:
        before = clocks.read()
        started.set()
        assert burned.wait(60)
        owners = group_cpu(cpu_delta(before, clocks.read()))
        assert owners["ours"] > 0 and owners["sdk"] == 0
    finally:
        done.set()
        t.join()


def wait_until(cond: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_the_gate_parks_the_listening_thread_until_opened() -> None:
    gate = SamplerGate(max_park_s=30.0)
    ticks: list[float] = []
    stop = threading.Event()

    def sampler() -> None:  # a stand-in for the sampler's loop: listeners after every tick
        t = 0.0
        while not stop.is_set():
            t += 1.0
            ticks.append(t)
            gate.listener(t)
            stop.wait(0.001)

    th = threading.Thread(target=sampler)
    th.start()
    try:
        gate.close()
        assert wait_until(gate.parked)
        n = len(ticks)
        stop.wait(0.05)
        assert len(ticks) == n  # parked: no tick while closed
        gate.open()
        assert wait_until(lambda: len(ticks) >= n + 3)  # ticking again
    finally:
        stop.set()
        gate.open()
        th.join()
    assert gate.park_timeouts == 0
