"""GPU utilization and memory: read with energy on the NVML reader, integrated per window,
emitted as semantic-convention metrics and as span attributes, with a low-utilization verdict."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pynvml
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_energy.config import load_config
from otel_energy.engine.sampler import Sampler
from otel_energy.engine.utilization import LOW_UTILIZATION, low_utilization
from otel_energy.hf import EnergyCallback
from otel_energy.sensors.nvml import discover_nvml
from otel_energy.telemetry.instruments import attach
from otel_energy.testing.tiny import tiny_trainer
from tests.conftest import FakeClock
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.support.hf_helpers import (
    Telemetry,
    constant_power_gpu,
    fake_gpu_sampler_factory,
)

UUID = "GPU-0a000000-aaaa-bbbb-cccc-000000000000"


def sampler_for(gpu: FakeGpu, clock: FakeClock) -> Sampler:
    return Sampler(discover_nvml({}, FakeNvml([gpu])), clock=clock, interval_s=0.1)


def test_window_utilization_is_time_weighted(clock: FakeClock) -> None:
    util = [0]
    gpu = FakeGpu(UUID, energy_mj=lambda: round(clock.t * 1000), utilization_pct=lambda: util[0])
    s = sampler_for(gpu, clock)
    t0 = clock.t
    s.sample_once()  # first reading: starts the integral, covers nothing before it
    for pct, dt in ((20, 1.0), (80, 3.0), (50, 1.5)):  # each tick a stats read (>= 1 s apart)
        util[0] = pct
        clock.advance(dt)
        s.sample_once()
    w = s.window(t0, clock.t)
    assert w.gpu_utilization == pytest.approx((0.2 * 1.0 + 0.8 * 3.0 + 0.5 * 1.5) / 5.5)
    # A window inside one interval gets that interval's figure.
    assert s.window(t0 + 1.5, t0 + 2.5).gpu_utilization == pytest.approx(0.8)
    assert s.window(t0 + 0.5, t0 + 2.0).gpu_utilization == pytest.approx(
        (0.2 * 0.5 + 0.8 * 1.0) / 1.5
    )


def test_stats_are_read_once_a_second_and_held_between_reads(clock: FakeClock) -> None:
    """At 0.1 s, utilization/memory and power are read every tenth tick (STATS_PERIOD_S), the
    energy counter every tick; a figure is charged to the tick it was read at and held for the
    ticks after it until the next read."""
    util, reads, powers = [20], [0], [0]

    def pct() -> int:
        reads[0] += 1
        return util[0]

    def power() -> int:
        powers[0] += 1
        return 1000

    gpu = FakeGpu(
        UUID, energy_mj=lambda: round(clock.t * 1000), utilization_pct=pct, power_mw=power
    )
    s = sampler_for(gpu, clock)
    t0 = clock.t
    s.sample_once()  # a stats read: starts the integral
    for k in range(1, 31):
        if k == 5:
            util[0] = 80  # between reads: seen at the read at k = 10
        clock.advance(0.1)
        s.sample_once()
    assert reads[0] == powers[0] == 4  # k = 0, 10, 20, 30 of 31 ticks
    assert s.snapshot().devices[0].power_w == pytest.approx(1.0)  # held between reads
    # (t0, t0+0.9]: the 20 % read at t0, held; (t0+0.9, t0+3]: 80 %, read at t0+1 and held.
    w = s.window(t0, clock.t)
    assert w.gpu_utilization == pytest.approx((0.2 * 0.9 + 0.8 * 2.1) / 3.0)
    assert s.window(t0 + 0.3, t0 + 0.7).gpu_utilization == pytest.approx(0.2)
    assert s.window(t0 + 1.2, t0 + 2.8).gpu_utilization == pytest.approx(0.8)
    assert s.window(t0, clock.t).energy_j == pytest.approx(3.0)  # 1 W, read every tick


@pytest.mark.parametrize(
    "error", [pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_UNKNOWN], ids=["nosupp", "fail"]
)
def test_utilization_failure_never_affects_energy(clock: FakeClock, error: int) -> None:
    def broken() -> int:
        raise pynvml.NVMLError(error)

    ok = FakeGpu(UUID, energy_mj=lambda: round(300_000 * clock.t))
    bad = FakeGpu(UUID, energy_mj=lambda: round(300_000 * clock.t), utilization_pct=broken)
    results = []
    for gpu in (ok, bad):
        clock.t = 1000.0
        s = sampler_for(gpu, clock)
        for _ in range(5):
            s.sample_once()
            clock.advance(0.5)
        w = s.window(1000.0, 1002.0)
        results.append(w)
        assert not s.snapshot().devices[0].failed
    assert results[1].energy_j == pytest.approx(results[0].energy_j) == pytest.approx(600.0)
    assert results[0].gpu_utilization == pytest.approx(0.9)
    assert results[1].gpu_utilization is None


def test_utilization_gap_is_not_stretched_over_a_failure(clock: FakeClock) -> None:
    state = {"fail": False, "pct": 100}
    gpu = FakeGpu(UUID, energy_mj=lambda: round(1000 * clock.t), utilization_pct=lambda: 0)

    def pct() -> int:
        if state["fail"]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return state["pct"]

    gpu.utilization_pct = pct
    s = sampler_for(gpu, clock)
    t0 = clock.t
    s.sample_once()
    clock.advance(1.0)
    s.sample_once()  # 100 % over (t0, t0+1]
    state["fail"] = True
    clock.advance(5.0)
    s.sample_once()  # no utilization: (t0+1, t0+6] uncovered
    state.update(fail=False, pct=10)
    clock.advance(1.0)
    s.sample_once()  # first reading after the gap restarts the integral, covers nothing
    clock.advance(1.0)
    s.sample_once()  # 10 % over (t0+7, t0+8]
    assert s.window(t0, clock.t).gpu_utilization == pytest.approx((1.0 + 0.1) / 2)


def test_metrics_read_back(clock: FakeClock) -> None:
    gpu = FakeGpu(UUID, utilization_pct=37, memory_used_b=3 * 2**30, memory_total_b=12 * 2**30)
    s = sampler_for(gpu, clock)
    s.sample_once()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    attach(provider, s)
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, tuple[str, Any]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name.startswith("hw.gpu."):
                    [p] = list(m.data.data_points)  # type: ignore[union-attr]
                    assert p.attributes["hw.id"] == UUID and p.attributes["hw.type"] == "gpu"
                    points[m.name] = (m.unit, p)
    provider.shutdown()
    assert points["hw.gpu.utilization"][0] == "1"
    assert points["hw.gpu.utilization"][1].value == pytest.approx(0.37)
    assert points["hw.gpu.utilization"][1].attributes["hw.gpu.task"] == "general"
    assert points["hw.gpu.memory.usage"][0] == "By"
    assert points["hw.gpu.memory.usage"][1].value == 3 * 2**30
    assert points["hw.gpu.memory.limit"][1].value == 12 * 2**30
    assert points["hw.gpu.memory.utilization"][1].value == pytest.approx(0.25)


def test_gpu_metrics_are_read_on_the_reader_thread_only(clock: FakeClock) -> None:
    """Collecting metrics does no NVML call: they come from the sampler's last reading."""
    gpu = FakeGpu(UUID, utilization_pct=50)
    s = sampler_for(gpu, clock)
    s.sample_once()
    calls = gpu.calls
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    attach(provider, s)
    reader.get_metrics_data()
    provider.shutdown()
    assert gpu.calls == calls


# ---- spans through a real tiny Trainer -------------------------------------------------------


def train(tmp_path: Path, tel: Telemetry, gpu: FakeGpu) -> None:
    env = {"OTEL_PYTHON_ENERGY_SOURCES": "nvml"}
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=load_config(env),
        sampler_factory=fake_gpu_sampler_factory(gpu),
    )
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=32).train()


def test_spans_carry_average_utilization_and_low_utilization_warning(
    tmp_path: Path, tel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    gpu = constant_power_gpu(300.0)  # limit 700 W: 300 W is well above idle
    gpu.utilization_pct = 10
    with caplog.at_level(logging.WARNING, logger="otel_energy"):
        train(tmp_path, tel, gpu)
    [run] = tel.finished("train")
    assert run.attributes["otel_energy.gpu.utilization"] == pytest.approx(0.1)
    assert run.attributes["otel_energy.gpu.low_utilization"] is True
    for span in tel.finished("epoch") + tel.finished("step") + tel.finished("steps"):
        if "otel_energy.gpu.utilization" in span.attributes:  # a step may fall between samples
            assert span.attributes["otel_energy.gpu.utilization"] == pytest.approx(0.1)
    assert any("otel_energy.gpu.utilization" in s.attributes for s in tel.finished("epoch"))
    warnings = [r.getMessage() for r in caplog.records if "utilized on average" in r.message]
    assert len(warnings) == 1 and "10%" in warnings[0] and "300 W" in warnings[0]


def test_busy_gpu_is_not_flagged(
    tmp_path: Path, tel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    gpu = constant_power_gpu(300.0)
    gpu.utilization_pct = 90
    with caplog.at_level(logging.WARNING, logger="otel_energy"):
        train(tmp_path, tel, gpu)
    [run] = tel.finished("train")
    assert run.attributes["otel_energy.gpu.utilization"] == pytest.approx(0.9)
    assert run.attributes["otel_energy.gpu.low_utilization"] is False
    assert not [r for r in caplog.records if "utilized on average" in r.message]


def test_idle_power_at_low_utilization_is_not_waste(clock: FakeClock) -> None:
    """An idle GPU at idle power is not flagged: only power well above idle counts."""
    verdicts = []
    for watts in (60, 400):  # of a 700 W part: idle-level, then well above idle (> 210 W)
        clock.t = 1000.0
        gpu = FakeGpu(UUID, energy_mj=lambda w=watts: round(w * 1000 * clock.t), utilization_pct=5)
        s = sampler_for(gpu, clock)
        for _ in range(4):
            s.sample_once()
            clock.advance(1.0)
        w = s.window(1000.0, 1003.0)
        assert w.gpu_utilization == pytest.approx(0.05)
        assert w.gpu_utilization < LOW_UTILIZATION
        verdicts.append(low_utilization(w, [x.info for x in s.sensors]))
    assert verdicts == [False, True]
