from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from otel_energy.carbon import Intensity, IntensitySource, StaticIntensity, co2e_g
from otel_energy.engine.history import History, Tail, extrapolate, window
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors.base import DeviceInfo, Reading
from otel_energy.sensors.estimate import CpuEstimate
from otel_energy.sensors.nvml import discover_nvml
from otel_energy.sensors.rapl import discover_rapl
from tests.conftest import FakeClock
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.fakes.powercap import server_tree


@dataclass
class Ramp:
    """A counter sensor whose energy is a known function of the fake clock."""

    clock: FakeClock
    energy_of_t: object
    info: DeviceInfo = field(
        default_factory=lambda: DeviceInfo(
            "synthetic:0", "gpu", "synthetic", "nvml_counter", update_period_s=0.1
        )
    )
    wrap_j: float | None = None

    def read(self) -> Reading:
        return Reading(counter_j=self.energy_of_t(self.clock.t))  # type: ignore[operator]

    def close(self) -> None:
        pass


def run(sampler: Sampler, clock: FakeClock, ticks: int, dt: float = 0.1) -> None:
    sampler.sample_once()
    for _ in range(ticks):
        clock.advance(dt)
        sampler.sample_once()


def test_window_exact_for_constant_power(clock: FakeClock) -> None:
    t0 = clock.t
    sampler = Sampler([Ramp(clock, lambda t: 200.0 * (t - t0))], clock=clock)
    run(sampler, clock, 50)
    for a, b in [(0.0, 5.0), (0.05, 0.06), (1.234, 3.21), (2.0, 2.1)]:
        w = sampler.window(t0 + a, t0 + b)
        assert w.energy_j == pytest.approx(200.0 * (b - a), rel=1e-9, abs=1e-9)
        assert w.avg_power_w == pytest.approx(200.0, rel=1e-6)
        assert w.complete
    assert sampler.window(t0 + 0.05, t0 + 0.06).interpolated
    assert not sampler.window(t0 + 1.0, t0 + 2.0).interpolated


def test_window_uncertainty_brackets_the_truth_for_a_step(clock: FakeClock) -> None:
    """Power jumps from 100 W to 500 W at t=1.03 s, inside a 100 ms sampling interval."""
    t0 = clock.t

    def energy(t: float) -> float:
        x = t - t0
        return 100.0 * x if x < 1.03 else 103.0 + 500.0 * (x - 1.03)

    sampler = Sampler([Ramp(clock, energy)], clock=clock)
    run(sampler, clock, 30)
    for a, b in [(1.01, 1.05), (1.0, 1.04), (0.95, 1.15), (0.5, 2.5)]:
        w = sampler.window(t0 + a, t0 + b)
        truth = energy(t0 + b) - energy(t0 + a)
        assert abs(w.energy_j - truth) <= w.uncertainty_j + 1e-9, (a, b, w)
    whole = sampler.window(t0 + 0.0, t0 + 3.0)  # on sample boundaries: exact, no uncertainty
    assert whole.energy_j == pytest.approx(energy(t0 + 3.0) - energy(t0), rel=1e-12)
    assert whole.uncertainty_j == pytest.approx(0.0, abs=1e-9)


def test_window_sums_are_additive(clock: FakeClock) -> None:
    t0 = clock.t
    sampler = Sampler([Ramp(clock, lambda t: 50.0 * (t - t0) ** 2)], clock=clock)
    run(sampler, clock, 40)
    cuts = [t0 + x for x in (0.0, 0.013, 0.5, 0.51, 1.777, 3.9)]
    parts = sum(sampler.window(a, b).energy_j for a, b in itertools.pairwise(cuts))
    assert parts == pytest.approx(sampler.window(cuts[0], cuts[-1]).energy_j, rel=1e-12)


def test_window_past_the_newest_sample_is_incomplete(clock: FakeClock) -> None:
    t0 = clock.t
    sampler = Sampler([Ramp(clock, lambda t: 10.0 * (t - t0))], clock=clock)
    run(sampler, clock, 5)
    w = sampler.window(t0 + 0.2, t0 + 0.9)
    assert not w.complete
    assert w.energy_j == pytest.approx(3.0)  # clamped to the newest sample at 0.5 s
    assert Sampler([], clock=clock).window(1.0, 2.0).energy_j == 0.0


def test_co2e_is_integrated_interval_by_interval(clock: FakeClock) -> None:
    """A provider whose intensity changes mid-run: each interval at its own intensity."""
    t0 = clock.t

    class Step(IntensitySource):
        def __init__(self) -> None:
            self.clock = clock  # the source's wall clock is the test's clock

        def at(self, t: float) -> Intensity:
            return Intensity(100.0 if t - t0 < 1.0 + 1e-9 else 700.0, "test")

    sampler = Sampler(
        [Ramp(clock, lambda t: 3600.0 * (t - t0))], clock=clock, intensity=Step(), pue=1.2
    )
    run(sampler, clock, 20)  # 2 s at 3600 W = 2 Wh; first hour-second at 100 g, second at 700
    expected = co2e_g(3600.0, 1.2, 100.0) + co2e_g(3600.0, 1.2, 700.0)
    assert sampler.snapshot().devices[0].co2e_g == pytest.approx(expected, rel=1e-9)
    w = sampler.window(t0 + 1.0, t0 + 2.0)
    assert w.co2e_g == pytest.approx(co2e_g(3600.0, 1.2, 700.0), rel=1e-9)


def test_history_is_bounded(clock: FakeClock) -> None:
    t0 = clock.t
    sampler = Sampler([Ramp(clock, lambda t: t - t0)], clock=clock, history_len=100)
    run(sampler, clock, 5000)
    assert 100 <= sampler.history_size <= 200
    assert sampler.snapshot().devices[0].energy_j == pytest.approx(500.0)
    w = sampler.window(clock.t - 5.0, clock.t)
    assert w.complete and w.energy_j == pytest.approx(5.0)


def test_failing_device_is_skipped_and_others_go_on(
    tmp_path: object, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "otel_energy")
    nvml = FakeNvml([FakeGpu("GPU-a", energy_mj=0), FakeGpu("GPU-b", energy_mj=0)])
    sensors = discover_nvml({}, nvml)
    sampler = Sampler(sensors, clock=clock, max_failures=3)
    run(sampler, clock, 2)
    nvml.gpus[0].fail = True
    for _ in range(6):
        clock.advance(0.1)
        nvml.gpus[1].energy_mj += 10_000  # type: ignore[operator]
        sampler.sample_once()
    a, b = sampler.snapshot().devices
    assert a.failed and not b.failed
    assert b.energy_j == pytest.approx(60.0)
    assert a.energy_j == 0.0
    failures = [r for r in caplog.records if "failed 3 reads" in r.getMessage()]
    assert len(failures) == 1 and "GPU-a" in failures[0].getMessage()


def test_thread_samples_and_stops_cleanly(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    zones = server_tree(root)
    sampler = Sampler(lambda: discover_rapl(root), interval_s=0.01)
    sampler.start()
    sampler.start()  # idempotent
    assert sampler.wait_for_sample(time.monotonic(), timeout_s=60.0)
    zones["package-0"].add_j(7.0)
    assert sampler.wait_for_sample(time.monotonic(), timeout_s=60.0)
    sampler.stop()
    assert not sampler.running
    snap = sampler.snapshot()
    assert {d.info.hw_id for d in snap.devices} == {"intel-rapl:0", "intel-rapl:0:2"}
    assert sum(d.energy_j for d in snap.devices) == pytest.approx(7.0)
    sampler.stop()  # idempotent


def test_waiting_for_a_future_sample_keeps_the_pace_and_sampling_goes_on(
    tmp_path: Path,
) -> None:
    """``wait_for_sample`` with a time in the future used to set the wake-up event at every
    notification: thousands of back-to-back samples, each pushing the schedule one interval
    further, so that the thread then slept for minutes. Waiting must leave the pace as it is."""
    server_tree(tmp_path)
    interval = 0.02
    sampler = Sampler(lambda: discover_rapl(tmp_path), interval_s=interval)
    sampler.start()
    try:
        assert sampler.wait_for_sample(float("-inf"), 30.0)
        read_at: list[float] = []
        sampler.add_listener(read_at.append)  # each sample's time, as it is published
        w0 = time.monotonic()
        assert sampler.wait_for_sample(w0 + 10 * interval, 30.0)
        read_at = list(read_at)  # published by now: read within the wait
        waited_s = time.monotonic() - w0
        # At most one sample per interval, plus the one asked for at once (a loaded machine
        # only takes fewer). Counted by the samples' own times: rows read before w0 may be
        # folded (published) during the wait.
        assert sum(t >= w0 for t in read_at) <= waited_s / interval + 2
        later = time.monotonic()
        assert sampler.wait_for_sample(later, 30.0)  # still sampling afterwards
        assert sampler.newest_sample_s >= later
        # ... on its own, at its pace: a later sample comes without asking.
        sampled = threading.Event()
        sampler.add_listener(lambda _t: sampled.set())
        assert sampled.wait(30.0)
    finally:
        sampler.stop()


def test_forked_child_has_no_running_sampler_and_reports_nothing(clock: FakeClock) -> None:
    t0 = clock.t
    sampler = Sampler([Ramp(clock, lambda t: t - t0)], interval_s=0.01)
    sampler.start()
    assert sampler.wait_for_sample(time.monotonic(), 60.0)
    pid = os.fork()
    if pid == 0:  # child: like a DataLoader worker
        ok = (
            not sampler.running
            and sampler.snapshot().devices == ()
            and not sampler.in_owner_process
        )
        sampler.start()
        ok = ok and not sampler.running
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sampler.running and sampler.snapshot().devices
    sampler.stop()


def test_window_query_is_fast(clock: FakeClock) -> None:
    """Not a timing gate (benchmarks do that): a sanity bound 100x above the expected cost."""
    t0 = clock.t
    sensors = [Ramp(clock, lambda t: t - t0) for _ in range(8)]
    sampler = Sampler(
        sensors, clock=clock, history_len=6000, intensity=StaticIntensity(Intensity(400.0, "test"))
    )
    run(sampler, clock, 6000)
    n = 2000
    start = time.perf_counter()
    for i in range(n):
        sampler.window(t0 + i * 0.1, t0 + i * 0.1 + 0.05)
    per_call = (time.perf_counter() - start) / n
    assert per_call < 2e-3


# ---- the history and window maths, without a sampler or a thread ----


def _history(cap: int, powers_w: list[float], n: int, dt: float = 0.1) -> History:
    """``n`` samples every ``dt`` s of devices drawing constant ``powers_w`` (W) from t = 0."""
    hist = History(cap)
    for k in range(n):
        t = k * dt
        hist.append(t, tuple(p * t for p in powers_w), 0.5 * t, (0, 0, 0.0))
    return hist


GPU_CPU = [
    DeviceInfo("g", "gpu", "g", "nvml_counter", update_period_s=0.1),
    DeviceInfo("c", "cpu", "c", "rapl"),
]


def test_history_windows_are_additive_and_monotone() -> None:
    hist = _history(1000, [300.0, 50.0], 101)
    cuts = [0.0, 0.037, 0.5, 0.55, 1.234, 3.21, 9.99, 10.0]
    parts = [window(hist, GPU_CPU, a, b, 0.1) for a, b in itertools.pairwise(cuts)]
    whole = window(hist, GPU_CPU, cuts[0], cuts[-1], 0.1)
    assert sum(p.energy_j for p in parts) == pytest.approx(whole.energy_j, rel=1e-12)
    assert sum(p.co2e_g for p in parts) == pytest.approx(whole.co2e_g, rel=1e-12)
    for kind in ("gpu", "cpu"):
        assert sum(p.by_type[kind] for p in parts) == pytest.approx(whole.by_type[kind])
    assert whole.energy_j == pytest.approx(350.0 * 10.0) and whole.complete
    # A window that contains another holds at least its energy.
    inner = window(hist, GPU_CPU, 1.234, 3.21, 0.1).energy_j
    assert window(hist, GPU_CPU, 1.2, 3.3, 0.1).energy_j >= inner
    assert window(hist, GPU_CPU, 1.234, 3.21, 0.1).energy_j == pytest.approx(350.0 * 1.976)


def test_history_bounds_hold_the_truth_of_a_step_between_samples() -> None:
    """A device draws 0 W, then 100 W from t = 0.25 (between samples at 0.2 and 0.3)."""
    hist = History(100)
    for k in range(11):
        t = k * 0.1
        hist.append(t, (100.0 * max(0.0, t - 0.25),), 0.0, (0, 0, 0.0))
    for a, b in [(0.0, 0.27), (0.21, 0.29), (0.26, 0.6), (0.0, 1.0)]:
        truth = 100.0 * max(0.0, b - max(a, 0.25))
        w = window(hist, GPU_CPU[:1], a, b, 0.1)
        assert w.energy_j - w.uncertainty_j - 1e-9 <= truth <= w.energy_j + w.uncertainty_j + 1e-9
    assert window(hist, GPU_CPU[:1], 0.2, 0.3, 0.1).uncertainty_j == 0.0  # on samples: exact


def test_history_trims_in_halves_and_keeps_the_newest() -> None:
    hist = _history(100, [10.0], 200)  # t = 0 .. 19.9
    assert len(hist.t) == 200  # up to twice the cap between trims
    hist.append(20.0, (200.0,), 0.0, (0, 0, 0.0))
    assert len(hist.t) == 100 and hist.t[-1] == 20.0 and hist.t[0] == pytest.approx(10.1)
    assert len(hist.e) == len(hist.c) == len(hist.q) == len(hist.busy) == len(hist.seen) == 100
    assert window(hist, GPU_CPU[:1], 15.0, 20.0, 0.1).energy_j == pytest.approx(50.0)
    assert not window(hist, GPU_CPU[:1], 5.0, 20.0, 0.1).complete  # older than the history


def test_history_extrapolates_each_device_from_its_own_last_good_read() -> None:
    hist = _history(100, [300.0, 50.0], 11)  # newest sample at t = 1.0
    w = window(hist, GPU_CPU, 0.5, 1.5, 0.1)
    assert not w.complete and w.energy_j == pytest.approx(350.0 * 0.5)  # clamped
    # The GPU's family stalled after t = 0.8: its energy after that is not in the history.
    gpu, cpu = (d.hw_id for d in GPU_CPU)
    assert w.by_device == pytest.approx({gpu: 300.0 * 0.5, cpu: 50.0 * 0.5})
    tails = [Tail("gpu", 300.0, 0.8, gpu), Tail("cpu", 50.0, 1.0, cpu)]
    x = extrapolate(w, tails, 1.0, lambda j: j / 1000.0)
    assert x.by_type["gpu"] == x.by_device[gpu] == pytest.approx(300.0 * 0.5 + 300.0 * 0.7)
    assert x.by_type["cpu"] == x.by_device[cpu] == pytest.approx(50.0 * 1.0)
    assert x.energy_j == pytest.approx(w.energy_j + 300.0 * 0.7 + 50.0 * 0.5)
    assert x.co2e_g == pytest.approx(w.co2e_g + (300.0 * 0.7 + 50.0 * 0.5) / 1000.0)
    assert x.uncertainty_j == pytest.approx(w.uncertainty_j + 300.0 * 0.7 + 50.0 * 0.5)
    assert not x.complete
    done = window(hist, GPU_CPU, 0.2, 0.9, 0.1)
    assert extrapolate(done, tails, 1.0, lambda j: j) is done  # complete: nothing to add


# ---- who reads: the CPU fix ----


@dataclass
class ThreadRecorder:
    """A real sensor whose reads note the thread they ran on."""

    sensor: Any
    threads: dict[str, set[str]]

    @property
    def info(self) -> DeviceInfo:
        return self.sensor.info  # type: ignore[no-any-return]

    @property
    def wrap_j(self) -> float | None:
        return self.sensor.wrap_j  # type: ignore[no-any-return]

    def read(self) -> Reading:
        names = self.threads.setdefault(self.info.reader_family, set())
        names.add(threading.current_thread().name)
        return self.sensor.read()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.sensor.close()


def test_every_family_is_read_on_the_sampler_thread_without_reader_threads(
    tmp_path: Path,
) -> None:
    """A hand-off to a reader thread cost two thread wake-ups per family and tick (most of the
    sampler's CPU). Every family, drivers included, is read on the sampler thread; a hung
    driver call is left to the watchdog (tests/engine/test_faults.py, case 4)."""
    server_tree(tmp_path)
    real = [
        *discover_nvml({}, FakeNvml([FakeGpu("GPU-a")])),
        *discover_rapl(tmp_path),
        CpuEstimate(100.0),
    ]
    threads: dict[str, set[str]] = {}
    sampler = Sampler([ThreadRecorder(s, threads) for s in real], interval_s=0.01)
    sampler.start()
    try:
        assert sampler.wait_for_sample(float("-inf"), 30.0)
        assert sampler.wait_for_sample(sampler.newest_sample_s + 0.001, 30.0)
        names = {t.name for t in threading.enumerate()}
    finally:
        sampler.stop()
    me = "otel-energy-sampler"
    assert threads == {"nvml": {me}, "rapl": {me}, "psutil": {me}}
    assert not {n for n in names if n.startswith("otel-energy-read")}
    assert {"otel-energy-sampler", "otel-energy-watchdog"} <= names
    w = sampler.window(sampler.newest_sample_s - 0.001, sampler.newest_sample_s)
    assert w.by_type.keys() == {"gpu", "cpu", "memory"}


def test_a_snapshot_is_one_tick_never_energy_of_one_and_power_of_the_next(
    clock: FakeClock,
) -> None:
    """A snapshot taken while the sampler thread is between reading tick N+1 and publishing it
    (here: at the start of ``_publish``) shows tick N whole: its energy and its power."""
    nvml = FakeNvml([FakeGpu("GPU-1", energy_mj=0, power_mw=100_000)])
    seen: list[tuple[float, float, float]] = []

    class Watched(Sampler):
        def _publish(self, t: float, intensity: Intensity) -> None:
            snap = self.snapshot()  # another thread's view at this moment
            if snap.devices:
                d = snap.devices[0]
                seen.append((snap.t_s, d.energy_j, d.power_w))
            super()._publish(t, intensity)

    sampler = Watched(discover_nvml({}, nvml), clock=clock)
    sampler.sample_once()
    gpu = nvml.gpus[0]
    for _ in range(3):
        clock.advance(1.0)
        gpu.energy_mj = int(gpu.energy_mj) + 100_000 * 2  # type: ignore[call-overload]
        gpu.power_mw = int(gpu.power_mw) * 2  # type: ignore[call-overload]
        sampler.sample_once()
    # Tick k (k = 0..2) has energy 200 J x k and power 100 W x 2^k: each view is one tick.
    assert [(e, p) for _, e, p in seen] == [(0.0, 100.0), (200.0, 200.0), (400.0, 400.0)]


@dataclass
class Broken:
    """An inline-family sensor whose every read fails (counted)."""

    info: DeviceInfo = field(
        default_factory=lambda: DeviceInfo("cpu:0", "cpu", "cpu", "rapl", family="rapl")
    )
    wrap_j: float | None = None
    reads: int = 0

    def read(self) -> Reading:
        self.reads += 1
        raise OSError("gone")

    def close(self) -> None:
        pass


def test_a_failing_device_backs_off_as_if_every_tick_were_folded(clock: FakeClock) -> None:
    """The thread folds a second of rows at a time; a failed read folds at once, so that the
    failure policy (third failure: retried after 1 s, then 2 s, 4 s...) decides the next
    tick's reads. Folding the failures a second late read the device every tick and counted ten
    failures at once: 30 s of back-off after the first second."""
    broken = Broken()
    sampler = Sampler([broken], clock=clock, max_failures=3)
    sampler._ensure_sensors()
    t0 = clock.t
    for _ in range(60):  # 6 s at 0.1 s
        sampler._tick()
        clock.advance(0.1)
    # Reads at 0, 0.1, 0.2 (third failure: back-off 1 s), 1.2 (2 s), 3.2 (4 s): five.
    assert broken.reads == 5
    health = sampler._devices.health
    assert health.failed == [True] and health.backoff == [4.0]
    assert health.retry_at[0] == pytest.approx(t0 + 3.2 + 4.0)


def test_the_run_series_starts_at_the_newest_sample_before_the_run(clock: FakeClock) -> None:
    """A series made while the sampler holds a second of unfolded rows starts at the newest
    sample read at or before its start, not at the newest folded one (up to a second older)."""
    from otel_energy.report.series import RunSeries

    t0 = clock.t
    sampler = Sampler([Ramp(clock, lambda t: 10.0 * (t - t0))], clock=clock)
    sampler.sample_once()  # folded: the newest tick is at t0
    for _ in range(5):
        clock.advance(0.1)
        sampler._tick()  # read, kept: 0.5 s of rows not folded yet
    assert sampler.newest_sample_s == t0
    clock.advance(0.05)  # the run begins between two ticks
    start = clock.t
    series = RunSeries(sampler)
    for _ in range(20):
        clock.advance(0.1)
        sampler._tick()
    sampler.sample_once()  # the run's end folds what is left (its flush waits for a sample)
    series.close()
    zero = start - 0.05  # the tick read 0.05 s before the start, folded after it
    assert series.first.t_s == pytest.approx(zero)
    assert series.t_s[0] == 0.0 and series.t_s[-1] == pytest.approx(clock.t - zero)
    assert series.energy_j[-1][0] == pytest.approx(10.0 * (clock.t - zero))
