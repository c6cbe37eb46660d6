"""Footprint prediction: the arithmetic, the forecast, and a real tiny Trainer on a steady GPU."""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback

from otel_energy.carbon import Intensity, StaticIntensity, co2e_g
from otel_energy.carbon.providers import IntensityPoint
from otel_energy.config import ConfigError, load_config
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import Sampler
from otel_energy.hf import EnergyCallback
from otel_energy.sensors import discover_sensors
from otel_energy.telemetry.predict import Predictor, Progress, project, remaining_intensity
from otel_energy.testing.tiny import tiny_trainer
from tests.conftest import points
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.support.hf_helpers import (
    GPU_W,
    Telemetry,
    fake_gpu_sampler_factory,
)


def test_projection_is_so_far_plus_remaining_steps_at_the_recent_rate() -> None:
    now = Progress(step=10, elapsed_s=20.0, energy_j=1000.0, co2e_g=0.1)
    since = Progress(step=5, elapsed_s=12.0, energy_j=600.0, co2e_g=0.06)
    p = project(now, since, total_steps=40, pue=1.2, intensity_g_per_kwh=300.0)
    assert p is not None
    # 30 steps left at (1000 - 600) / 5 = 80 J and (20 - 12) / 5 = 1.6 s a step.
    assert p.energy_j == pytest.approx(1000.0 + 30 * 80.0)
    assert p.duration_s == pytest.approx(20.0 + 30 * 1.6)
    assert p.co2e_g == pytest.approx(0.1 + co2e_g(2400.0, 1.2, 300.0))
    assert (p.at_step, p.total_steps, p.intensity_basis) == (10, 40, "current")
    assert project(now, now, 40, 1.0, 300.0) is None  # no step to measure a rate on
    assert project(now, since, 0, 1.0, 300.0) is None  # unknown total


def test_predictor_uses_the_last_two_epochs() -> None:
    pred = Predictor(total_steps=40, start=Progress(0, 0.0, 0.0, 0.0))
    fixed = lambda _s: (100.0, "current")  # noqa: E731
    # Epoch 1 is slow (warm-up: 20 J a step), epochs 2 and 3 steady at 10 J a step.
    for step, e in ((10, 200.0), (20, 300.0), (30, 400.0)):
        now = Progress(step, step * 1.0, e, 0.0)
        pred.epoch_end(now)
        p = pred.update(now, 1.0, fixed)
        assert p is not None
    # After epoch 2 the rate spans epochs 1-2 (15 J a step), after epoch 3 epochs 2-3 (10 J).
    assert [round(p.energy_j) for p in pred.history] == [800, 600, 500]
    assert pred.latest is pred.history[-1]


def test_set_up_before_the_first_epoch_is_not_extrapolated() -> None:
    pred = Predictor(total_steps=40, start=Progress(0, 0.0, 0.0, 0.0))
    pred.epoch_begin(Progress(0, 30.0, 3000.0, 0.0))  # 30 s of set-up at 100 W
    now = Progress(10, 40.0, 4000.0, 0.0)  # then 10 steps at 100 J each
    pred.epoch_end(now)
    p = pred.update(now, 1.0, lambda _s: (100.0, "current"))
    assert p is not None
    assert (p.energy_j, p.duration_s) == (pytest.approx(7000.0), pytest.approx(70.0))
    pred.epoch_begin(Progress(10, 41.0, 4100.0, 0.0))  # later epochs do not move the start
    p2 = pred.update(Progress(20, 51.0, 5100.0, 0.0), 1.0, lambda _s: (100.0, "current"))
    assert p2 is not None and p2.energy_j == pytest.approx(5100.0 + 20 * 105.0)  # from 3000 J


def test_predictor_every_n_steps() -> None:
    pred = Predictor(total_steps=40, start=Progress(4, 0.0, 0.0, 0.0), after_steps=3)
    assert [s for s in range(4, 20) if pred.due_at_step(s)] == [7, 10, 13, 16, 19]
    assert not Predictor(40, Progress(0, 0, 0, 0)).due_at_step(3)  # epoch ends only


class ForecastIntensity(StaticIntensity):
    """The table's intensity now, and a forecast (as a live provider holds it) of other values."""

    def __init__(self, now_g: float, forecast: list[IntensityPoint]) -> None:
        super().__init__(Intensity(now_g, "live:fake"))
        self._points = forecast

    def forecast(self) -> list[IntensityPoint]:
        return list(self._points)


def test_remaining_intensity_is_the_forecast_mean_when_it_covers_the_rest() -> None:
    now = datetime.now(timezone.utc)
    pts = [
        IntensityPoint(now - timedelta(minutes=5), 100.0, "average"),
        IntensityPoint(now + timedelta(minutes=25), 300.0, "average"),
        IntensityPoint(now + timedelta(minutes=55), 300.0, "average"),
    ]
    provider = ForecastIntensity(500.0, pts)
    # 30 min ahead: 25 min at 100, 5 min at 300.
    g, basis = remaining_intensity(provider, 500.0, 1800.0, now.timestamp())
    assert basis == "forecast"
    assert g == pytest.approx((25 * 100 + 5 * 300) / 30)
    assert remaining_intensity(provider, 500.0, 10 * 3600.0, now.timestamp()) == (500.0, "current")
    assert remaining_intensity(StaticIntensity(Intensity(7.0, "x")), 7.0, 60.0) == (7.0, "current")


@pytest.mark.parametrize(
    ("raw", "value"), [("", 0), ("epoch", 0), ("off", -1), ("25", 25), (" EPOCH ", 0)]
)
def test_predict_after_steps_setting(raw: str, value: int) -> None:
    cfg = load_config({"OTEL_PYTHON_ENERGY_PREDICT_AFTER_STEPS": raw})
    assert cfg.predict_after_steps == value


@pytest.mark.parametrize("raw", ["0", "-2", "1.5", "first"])
def test_bad_predict_after_steps_names_the_setting(raw: str) -> None:
    with pytest.raises(
        ConfigError, match=r"OTEL_PYTHON_ENERGY_PREDICT_AFTER_STEPS.*'epoch', 'off'"
    ):
        load_config({"OTEL_PYTHON_ENERGY_PREDICT_AFTER_STEPS": raw})


class StepClock:
    """The sampler's clock, in which each optimizer step lasts a set time, whatever the machine.

    A steady run measured by the wall clock is not steady on a loaded machine (a step can take
    10 ms or 2 s here); in this clock step k lasts ``durations[k]`` s and everything outside the
    steps a thousandth of its real time. ``last`` is the reading of the sample being taken, from
    which the fake GPU's counter is computed (as ``hf_helpers.SampleClock`` does).
    """

    def __init__(self, durations: list[float], setup_s: float = 0.0) -> None:
        self.durations = durations
        self.setup_s = setup_s  # in the run, before its first step (model load, data)
        self.base = 0.0
        self.real0 = time.monotonic()
        self.last = 0.0

    def advance(self, step: int) -> None:
        self.base += self.durations[step]

    def __call__(self) -> float:
        t = self.base + 1e-3 * (time.monotonic() - self.real0)
        if threading.current_thread().name == "otel-energy-sampler":
            self.last = t
        return t


class AdvanceClock(TrainerCallback):
    """Runs after ours on each step begin: the step span then covers the step's clock time."""

    def __init__(self, clock: StepClock) -> None:
        self.clock = clock

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.clock.base += self.clock.setup_s

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.clock.advance(state.global_step)


def step_clock_run(
    tmp_path: Path,
    tel: Telemetry,
    durations: list[float],
    epochs: int,
    setup_s: float = 0.0,
    intensity: Any = None,
) -> tuple[list[float], float]:
    """Train on a 300 W GPU in ``StepClock`` time; the projected energies and the final one."""
    clock = StepClock(durations, setup_s)
    gpu = FakeGpu(
        "GPU-c0ffee00-0000-0000-0000-000000000002",
        energy_mj=lambda: round(GPU_W * 1000 * clock.last),
        power_mw=round(GPU_W * 1000),
    )
    env = {"OTEL_PYTHON_ENERGY_SOURCES": "nvml", "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "0.01"}
    config = load_config(env)
    nvml = FakeNvml([gpu])
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=config,
        sampler_factory=lambda: (
            build_sampler(config, env, nvml=nvml, clock=clock)
            if intensity is None
            else Sampler(
                lambda: list(discover_sensors(config, env, nvml=nvml)),
                interval_s=0.01,
                intensity=intensity,
                clock=clock,
            )
        ),
    )
    trainer = tiny_trainer(
        str(tmp_path), callbacks=[cb, AdvanceClock(clock)], n_train=64, num_train_epochs=epochs
    )
    trainer.train()
    [run] = tel.finished("train")
    events = [e for e in run.events if e.name == "otel_energy.prediction"]
    steps_per_epoch = len(durations) // epochs
    assert [e.attributes["otel_energy.prediction.at_step"] for e in events] == [
        steps_per_epoch * (k + 1) for k in range(epochs)
    ]
    projected = [float(e.attributes["otel_energy.prediction.energy"]) for e in events]
    assert run.attributes["otel_energy.prediction.energy"] == projected[-1]
    return projected, float(run.attributes["otel_energy.energy"])


def test_projection_converges_to_the_final_figure_on_a_steady_run(
    tmp_path: Path, tel: Telemetry
) -> None:
    # Steady: 5 s of set-up, then every step lasts 1 s +/- 10% (seeded), 4 epochs of 8 steps.
    rng = random.Random(7)
    durations = [rng.uniform(0.9, 1.1) for _ in range(32)]
    projected, final_j = step_clock_run(tmp_path, tel, durations, epochs=4, setup_s=5.0)
    assert final_j == pytest.approx(GPU_W * (5.0 + sum(durations)), rel=0.01)
    errors = [abs(p / final_j - 1) for p in projected]
    assert errors[0] < 0.03, (projected, final_j)  # within a few % after epoch 1
    # Closer each epoch: with steps within +/-10% of each other, the error is at most the
    # remaining share of the run x 0.2 / 0.9; that bound shrinks epoch by epoch to exact.
    for k, error in enumerate(errors):
        remaining = (32 - 8 * (k + 1)) / 32
        assert error <= 0.23 * remaining + 0.002, (k, errors)
    assert errors[-1] < 0.002 and errors[-1] < errors[0]


def test_projection_follows_a_change_of_pace(tmp_path: Path, tel: Telemetry) -> None:
    # A slow first epoch (2 s a step), then 1 s a step: the rate over the last two epochs forgets
    # the slow start. After epoch 1: 16 s + 24 steps at 2 s; after epoch 2 (rate over epochs
    # 1-2, 1.5 s a step): 24 + 16 x 1.5; after epoch 3 (epochs 2-3): 32 + 8 x 1; then exact.
    durations = [2.0] * 8 + [1.0] * 24
    projected, final_j = step_clock_run(tmp_path, tel, durations, epochs=4)
    expected_s = [16 + 24 * 2.0, 24 + 16 * 1.5, 32 + 8 * 1.0, 40.0]
    assert final_j == pytest.approx(GPU_W * 40.0, rel=0.01)
    assert projected == pytest.approx([GPU_W * s for s in expected_s], rel=0.01)


def plain_run(
    tmp_path: Path, tel: Telemetry, env: dict[str, str] | None = None, **kw: Any
) -> tuple[EnergyCallback, Any]:
    environ = {"OTEL_PYTHON_ENERGY_SOURCES": "nvml", **(env or {})}
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=load_config(environ),
        sampler_factory=kw.pop("sampler_factory", None) or fake_gpu_sampler_factory(),
    )
    trainer = tiny_trainer(str(tmp_path), callbacks=[cb, *kw.pop("callbacks", [])], **kw)
    trainer.train()
    return cb, trainer


def test_prediction_gauges_during_the_run(tmp_path: Path, tel: Telemetry) -> None:
    seen: list[dict[str, list[tuple[dict[str, object], float]]]] = []

    class Collect(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step in (4, 12):
                seen.append(points(tel.reader))

    environ = {"OTEL_PYTHON_ENERGY_SOURCES": "nvml", "OTEL_PYTHON_ENERGY_PREDICT_AFTER_STEPS": "10"}
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=load_config(environ),
        sampler_factory=fake_gpu_sampler_factory(),
    )
    tiny_trainer(str(tmp_path), callbacks=[cb, Collect()], n_train=64, num_train_epochs=2).train()
    before, after = seen
    assert "otel_energy.prediction.energy" not in before  # nothing projected at step 4
    [(attrs, energy)] = after["otel_energy.prediction.energy"]
    [(_, co2e)] = after["otel_energy.prediction.co2e"]
    [(_, duration)] = after["otel_energy.prediction.duration"]
    assert attrs["host.name"]
    assert points.units["otel_energy.prediction.energy"] == "J"  # type: ignore[attr-defined]
    # At step 12 the latest projection is the one at step 10 (every 10 steps; epoch end is 8:
    # the projections are at steps 8 and 10).
    assert cb.predictor is not None
    at10 = [p for p in cb.predictor.history if p.at_step == 10]
    assert [p.at_step for p in cb.predictor.history] == [8, 10, 16]
    assert energy == at10[0].energy_j and co2e == at10[0].co2e_g
    assert duration == at10[0].duration_s
    assert energy == pytest.approx(GPU_W * duration, rel=0.01)
    assert "otel_energy.prediction.energy" not in points(tel.reader)  # gone after the run


def test_co2e_projection_uses_the_live_forecast(tmp_path: Path, tel: Telemetry) -> None:
    now = datetime.now(timezone.utc)
    forecast = [
        IntensityPoint(now - timedelta(hours=1), 50.0, "average"),
        IntensityPoint(now + timedelta(hours=3), 50.0, "average"),
    ]
    # Steady in the step clock (1 s a step, no set-up): after epoch 1 half the energy is used.
    step_clock_run(
        tmp_path, tel, [1.0] * 16, epochs=2, intensity=ForecastIntensity(500.0, forecast)
    )
    [run] = tel.finished("train")
    [first, _] = [e.attributes for e in run.events if e.name == "otel_energy.prediction"]
    assert first["otel_energy.prediction.intensity_basis"] == "forecast"
    # What was used so far at 500 g/kWh, the remaining half of the run at the forecast's 50.
    projected_j = first["otel_energy.prediction.energy"]
    so_far_j = projected_j / 2  # 8 of 16 steps, steady
    expected = co2e_g(so_far_j, 1.0, 500.0) + co2e_g(projected_j - so_far_j, 1.0, 50.0)
    assert first["otel_energy.prediction.co2e"] == pytest.approx(expected, rel=1e-3)


def test_off_projects_nothing(tmp_path: Path, tel: Telemetry) -> None:
    plain_run(
        tmp_path, tel, env={"OTEL_PYTHON_ENERGY_PREDICT_AFTER_STEPS": "off"}, num_train_epochs=2
    )
    [run] = tel.finished("train")
    assert not run.events
    assert not any(k.startswith("otel_energy.prediction") for k in run.attributes)
