"""EnergyMeter (the energy-meter seed's API) for plain loops, on a constant-power fake GPU."""

from __future__ import annotations

import time

import pytest
from opentelemetry.trace import StatusCode

from otel_energy.meter import EnergyMeter
from tests.support.hf_helpers import GPU_W, Telemetry, fake_gpu_sampler_factory


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_epochs_batches_summary_and_spans(tel: Telemetry) -> None:
    meter = EnergyMeter(
        carbon_intensity_g_per_kwh=450.0,
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=fake_gpu_sampler_factory(),
    )
    assert meter.device == "gpu" and meter._get_gpu_name() == "NVIDIA H100 80GB HBM3"
    provisional = []
    for _ in range(2):
        with meter.epoch():
            for _ in range(3):
                with meter.batch():
                    busy(0.03)
                provisional.append(meter.last_batch())
    for b in provisional:  # provisional values are already close: extrapolated at 300 W
        assert b["energy_j"] == pytest.approx(GPU_W * b["duration_s"], rel=0.05)
    summary = meter.summary()
    final = meter.last_batch()
    meter.close()
    assert final["final"] is True
    assert final["energy_j"] == pytest.approx(GPU_W * final["duration_s"], abs=0.005)
    assert final["carbon_g"] == pytest.approx(final["energy_j"] / 3.6e6 * 450.0, rel=1e-9)
    assert final["co2e_g"] == final["carbon_g"]  # the name used everywhere else; the old kept
    assert summary["device"] == "gpu" and summary["carbon_intensity_g_per_kwh"] == 450.0
    assert summary["num_batches"] == 6 and summary["num_epochs"] == 2
    bs, es = summary["batch_summary"], summary["epoch_summary"]
    assert set(bs) == {
        "count",
        "mean_duration_s",
        "mean_energy_j",
        "mean_carbon_g",
        "mean_co2e_g",
        "total_duration_s",
        "total_energy_j",
        "total_carbon_g",
        "total_co2e_g",
    }
    for totals in (bs, es):
        assert totals["total_co2e_g"] == totals["total_carbon_g"] > 0
        assert totals["mean_co2e_g"] == totals["mean_carbon_g"]
    assert bs["total_energy_j"] == pytest.approx(GPU_W * bs["total_duration_s"], abs=0.03)
    # Each batch busy-waits 0.03 s: a lower bound whatever the machine's load (no upper one).
    assert bs["mean_duration_s"] == pytest.approx(bs["total_duration_s"] / bs["count"])
    assert bs["mean_duration_s"] >= 0.03
    assert bs["total_energy_j"] <= es["total_energy_j"] + 0.01
    assert es["total_carbon_g"] == pytest.approx(es["total_energy_j"] / 3.6e6 * 450.0)
    spans = tel.finished()
    epochs = {s.context.span_id for s in spans if s.name == "epoch"}
    # A batch has its own span when measurable (two sample intervals or more), else a share of
    # its group's ``batches`` span (docs/spans.md): which, depends on this machine's speed.
    batches = [s for s in spans if s.name in ("batch", "batches")]
    assert len(epochs) == 2
    covered = sum(b.attributes.get("otel_energy.train.steps", 1) for b in batches)
    assert covered == 6
    assert all(b.parent is not None and b.parent.span_id in epochs for b in batches)
    assert all(b.attributes["otel_energy.carbon_intensity.source"] == "override" for b in batches)


def test_exception_in_a_batch_is_recorded_and_reraised(tel: Telemetry) -> None:
    with EnergyMeter(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=fake_gpu_sampler_factory(),
    ) as meter:
        with pytest.raises(ValueError, match="bad batch"), meter.epoch(), meter.batch():
            raise ValueError("bad batch")
        meter.summary()
    statuses = {s.name: s.status.status_code for s in tel.finished()}
    assert statuses == {
        "batch": StatusCode.ERROR,
        "epoch": StatusCode.ERROR,
        "train": StatusCode.UNSET,
    }


def test_a_failure_of_ours_never_reaches_the_loop_nor_replaces_its_error(
    tel: Telemetry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: ``batch()`` and ``epoch()`` called the tracker in ``finally`` unguarded, so a bug
    of ours raised into the user's loop, or replaced the exception the user must see."""
    with EnergyMeter(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=fake_gpu_sampler_factory(),
    ) as meter:

        def broken(*_args: object) -> None:
            raise RuntimeError("ours")

        for name in ("begin_epoch", "end_epoch", "step_begin", "step_end"):
            monkeypatch.setattr(meter.tracker, name, broken)
        with meter.epoch(), meter.batch():  # nothing raised into the loop
            pass
        with pytest.raises(ValueError, match="theirs"), meter.epoch(), meter.batch():
            raise ValueError("theirs")
        monkeypatch.undo()
    logged = [r.getMessage() for r in caplog.records if "the loop goes on" in r.getMessage()]
    assert sorted(logged) == [
        "otel-energy: EnergyMeter.batch() failed; the loop goes on",
        "otel-energy: EnergyMeter.epoch() failed; the loop goes on",
    ]  # once per kind, not per block


def test_last_batch_is_provisional_then_final(tel: Telemetry) -> None:
    """``last_batch()`` never waits: right after the block its tail is extrapolated (``final``
    False), once the sampler has passed the block's end it is the measured value."""
    with EnergyMeter(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=fake_gpu_sampler_factory(),
        sample_interval=0.05,
    ) as meter:
        with meter.epoch(), meter.batch():
            busy(0.01)
        first = meter.last_batch()
        meter.summary()  # waits for the sample after the last batch
        final = meter.last_batch()
    assert final["final"] and final["energy_j"] > 0
    # the same block: the provisional one between the meter's own two clock readings around it
    assert first["duration_s"] == pytest.approx(final["duration_s"], abs=5e-3)
    if not first["final"]:
        assert first["energy_j"] > 0


def test_last_batch_before_any_batch_is_a_clear_error(tel: Telemetry) -> None:
    with (
        EnergyMeter(
            tracer_provider=tel.tracer_provider,
            meter_provider=tel.meter_provider,
            sampler_factory=fake_gpu_sampler_factory(),
        ) as meter,
        pytest.raises(RuntimeError, match=r"meter\.batch"),
    ):
        meter.last_batch()


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"sample_interval": 0}, ("sample_interval_s=0", "0.001 to 60")),  # was ZeroDivisionError
        ({"sample_interval": -1}, ("sample_interval_s=-1", "0.001 to 60")),  # was accepted
        ({"sample_interval": float("nan")}, ("sample_interval_s=nan", "0.001 to 60")),
        ({"cpu_tdp_w": 0}, ("cpu_tdp_w=0", "1 to 5000")),
        ({"carbon_intensity_g_per_kwh": -5.0}, ("carbon_intensity_g_per_kwh=-5.0", "0 to 5000")),
    ],
)
def test_arguments_get_the_environment_s_validation(
    tel: Telemetry, kwargs: dict[str, float], names: tuple[str, str]
) -> None:
    from otel_energy.config import ConfigError

    with pytest.raises(ConfigError) as err:
        EnergyMeter(
            tracer_provider=tel.tracer_provider,
            meter_provider=tel.meter_provider,
            sampler_factory=fake_gpu_sampler_factory(),
            **kwargs,
        )
    assert str(err.value).startswith("EnergyMeter: ")
    assert all(n in str(err.value) for n in names)  # the argument and its valid range


def test_a_valid_sample_interval_reaches_the_sampler(
    tel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_SOURCES", "estimate")  # a real sampler, no hardware
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL", "0.5")  # the argument wins
    with EnergyMeter(
        sample_interval=0.02, tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider
    ) as meter:
        assert meter.tracker.session is not None
        assert meter.tracker.session.sampler.interval_s == 0.02
