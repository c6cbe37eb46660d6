"""Eco2AICallback and CarbonConfig (the HF Eco2AI plugin seed's API) on a real tiny Trainer."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from otel_energy.config import ConfigError
from otel_energy.hf import CarbonConfig, Eco2AICallback
from otel_energy.testing.tiny import tiny_trainer
from tests.fakes.nvml import FakeGpu
from tests.support.hf_helpers import (
    Telemetry,
    constant_power_gpu,
    fake_gpu_sampler_factory,
)


def test_report_metrics_and_spans_agree(
    tmp_path: Path, tel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "otel_energy")
    report_path = tmp_path / "carbon_report.json"
    config = CarbonConfig(
        project_name="tiny-bert",
        measurement_interval=0.01,
        country="DE",
        report_path=str(report_path),
        log_level="STEP",
    )
    cb = Eco2AICallback(
        config,
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=fake_gpu_sampler_factory(env={"OTEL_PYTHON_ENERGY_COUNTRY": "DE"}),
    )
    with pytest.raises(RuntimeError, match="finished training run"):
        cb.generate_report()
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=2, n_train=32).train()
    [run] = tel.finished("train")
    assert run.attributes["otel_energy.train.project"] == "tiny-bert"
    # log_level="STEP": a line per step with its energy, whatever span the step got
    step_lines = [r.args for r in caplog.records if r.msg == "otel-energy: step %s: %.3f J"]
    assert [n for n, _ in step_lines] == list(range(1, 9))  # type: ignore[misc]
    step_j = [j for _, j in step_lines]  # type: ignore[misc]
    assert all(j > 0 for j in step_j) and sum(step_j) <= run.attributes["otel_energy.energy"]
    report = json.loads(report_path.read_text())
    assert report == cb.generate_report().to_dict()
    assert report["project_name"] == "tiny-bert"
    assert report["total"]["energy_j"] == pytest.approx(run.attributes["otel_energy.energy"])
    assert report["total"]["co2e_g"] == pytest.approx(run.attributes["otel_energy.co2e"])
    assert report["total"]["energy_kwh"] == pytest.approx(report["total"]["energy_j"] / 3.6e6)
    assert report["carbon_intensity"]["source"].startswith("table:owid-ember:DEU:")
    assert [e["epoch"] for e in report["epochs"]] == [0, 1]
    assert sum(e["steps"] for e in report["epochs"]) == report["steps"] == 8
    assert report["devices"][0]["hw.type"] == "gpu"
    # The devices cover the run's window, as the total does (they were counters since the
    # sampler started: 78.856 J against a total of 78.672 J in the run).
    for key in ("energy_j", "co2e_g"):
        devices_sum = sum(d[key] for d in report["devices"])
        assert devices_sum == pytest.approx(report["total"][key], rel=1e-9, abs=1e-12), key
    assert report["trace_id"] == format(run.context.trace_id, "032x")
    metrics = json.loads(cb.export_metrics(format="json"))
    assert metrics["energy_j"] == pytest.approx(report["total"]["energy_j"])
    assert cb.total_energy == pytest.approx(report["total"]["energy_j"] / 3.6e6)
    assert cb.total_co2 == pytest.approx(report["total"]["co2e_g"] / 1000) and cb.total_co2 > 0
    with pytest.raises(ValueError, match=r"'xml'.*json"):
        cb.export_metrics(format="xml")


def test_gpu_ids_select_cuda_ordinals(tmp_path: Path, tel: Telemetry) -> None:
    gpus = [
        constant_power_gpu(100.0, "GPU-aaaaaaaa-0000-0000-0000-000000000000"),
        constant_power_gpu(200.0, "GPU-bbbbbbbb-0000-0000-0000-000000000000"),
    ]
    config = CarbonConfig(gpu_ids=[1], measurement_interval=0.01, save_report=False)
    env = config.environment({})
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    cb = Eco2AICallback(
        config,
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=fake_gpu_sampler_factory(
            *gpus, env={"CUDA_VISIBLE_DEVICES": env["CUDA_VISIBLE_DEVICES"]}
        ),
    )
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=16).train()
    report = cb.generate_report().to_dict()
    assert [d["hw.id"] for d in report["devices"]] == [gpus[1].uuid]
    assert report["total"]["power_w"] == pytest.approx(200.0, rel=0.02)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"log_level": "LOUD"}, "CarbonConfig.log_level='LOUD'.*NONE, EPOCH, STEP"),
        ({"gpu_ids": "first"}, "CarbonConfig.gpu_ids='first'.*'auto' or a list"),
        ({"gpu_ids": [-1]}, r"CarbonConfig.gpu_ids=\[-1\]"),
        ({"country": "Atlantis"}, "CarbonConfig.country.*alpha-2 or alpha-3"),
        ({"measurement_interval": 0}, "CarbonConfig.measurement_interval.*0.001 to 60"),
        ({"grid_carbon_intensity": -3}, "CarbonConfig.grid_carbon_intensity.*0 to 5000"),
        ({"pue": 0.5}, "CarbonConfig.pue.*1 to 10"),
        ({"prometheus_port": 0}, "CarbonConfig.prometheus_port=0.*1 to 65535"),
    ],
)
def test_bad_carbon_config_names_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CarbonConfig(**kwargs)


def test_unwritable_report_path_is_logged_not_raised(
    tmp_path: Path, tel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    config = CarbonConfig(
        measurement_interval=0.01, report_path=str(tmp_path / "missing-dir" / "r.json")
    )
    cb = Eco2AICallback(
        config,
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=fake_gpu_sampler_factory(FakeGpu("GPU-x")),
    )
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=16).train()
    assert any("CarbonConfig.report_path" in r.getMessage() for r in caplog.records)
    assert cb.generate_report().steps == 2


def test_an_environment_error_names_the_variable_not_a_carbon_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad variable the user set is named as such; before, prefix matching rewrote it into
    "CarbonConfig.pue (as OTEL_PYTHON_ENERGY_PUE='0.5')", a field the user never set."""
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_PUE", "0.5")
    with pytest.raises(ConfigError) as err:
        CarbonConfig()
    assert str(err.value).startswith("OTEL_PYTHON_ENERGY_PUE='0.5' is not valid")
    assert "CarbonConfig" not in str(err.value)
    assert CarbonConfig(pue=1.3).to_energy_config().pue == 1.3  # the field wins, unread var


def test_carbon_config_becomes_one_energy_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_SOURCES", "nvml")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    config = CarbonConfig(
        measurement_interval=0.25, country="FR", pue=1.5, gpu_ids=[1], save_report=False
    )
    cb = Eco2AICallback(config)
    assert cb.config == config.to_energy_config()
    assert (cb.config.sample_interval_s, cb.config.country, cb.config.pue) == (0.25, "FR", 1.5)
    assert cb.config.sources == ("nvml",)  # the environment's, for what CarbonConfig lacks
    assert cb.config.cuda_visible_devices == "6"


def test_gpu_ids_reach_the_sampler_through_the_config(
    tmp_path: Path, tel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sampler is built from the callback's EnergyConfig alone: its environment has no
    CUDA_VISIBLE_DEVICES, yet only the GPU chosen by ``gpu_ids`` is measured."""
    from otel_energy.engine.runtime import build_sampler
    from tests.fakes.nvml import FakeNvml
    from tests.support.hf_helpers import SAMPLE_CLOCK

    gpus = [
        constant_power_gpu(100.0, "GPU-aaaaaaaa-0000-0000-0000-000000000000"),
        constant_power_gpu(200.0, "GPU-bbbbbbbb-0000-0000-0000-000000000000"),
    ]
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_SOURCES", "nvml")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    config = CarbonConfig(gpu_ids=[1], measurement_interval=0.01, save_report=False)
    holder: list[Eco2AICallback] = []
    cb = Eco2AICallback(
        config,
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=lambda: build_sampler(
            holder[0].config, {}, nvml=FakeNvml(gpus), clock=SAMPLE_CLOCK
        ),
    )
    holder.append(cb)
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=16).train()
    report = cb.generate_report().to_dict()
    assert [d["hw.id"] for d in report["devices"]] == [gpus[1].uuid]
    assert report["total"]["power_w"] == pytest.approx(200.0, rel=0.02)
    # the report's public shape is unchanged (one Measurement behind it)
    assert list(report["total"]) == [
        "timestamp", "duration_s", "energy_j", "power_w", "co2e_g", "by_type_j", "estimated",
        "energy_kwh", "co2_kg",
    ]  # fmt: skip
    assert [list(e) for e in report["epochs"]] == [
        ["epoch", "steps", "duration_s", "energy_j", "avg_power_w", "co2e_g", "by_type_j"]
    ]


def test_carbon_metrics_are_a_view_of_one_measurement() -> None:
    from otel_energy.engine.sampler import WindowEnergy
    from otel_energy.hf import CarbonMetrics
    from otel_energy.telemetry.results import Measurement

    w = WindowEnergy(10.0, 12.0, 7.2e6, {"gpu": 7.0e6, "cpu": 2.0e5}, 999.0, 0.0, False, True, True)
    m = Measurement.of(w, co2e_g=1500.0)  # the caller's CO2e, not the window's
    assert (m.duration_s, m.avg_power_w, m.energy_kwh, m.co2e_kg) == (2.0, 3.6e6, 2.0, 1.5)
    assert m.estimated and m.by_type_j == {"gpu": 7.0e6, "cpu": 2.0e5}
    metrics = CarbonMetrics.of(m, timestamp=123.0)
    assert metrics.measurement == m
    assert (metrics.power_w, metrics.energy_kwh, metrics.co2_kg) == (3.6e6, 2.0, 1.5)
    assert metrics.to_dict()["energy_kwh"] == 2.0 and metrics.to_dict()["co2_kg"] == 1.5


def test_without_a_tracer_provider_the_report_has_no_trace_id(tmp_path: Path) -> None:
    """The API's no-op provider gives all-zero ids: the report said trace_id "000...0"."""
    from opentelemetry.trace import NoOpTracerProvider

    report_path = tmp_path / "carbon_report.json"
    cb = Eco2AICallback(
        CarbonConfig(measurement_interval=0.01, report_path=str(report_path)),
        tracer_provider=NoOpTracerProvider(),
        sampler_factory=fake_gpu_sampler_factory(),
    )
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=16).train()
    report = json.loads(report_path.read_text())
    assert report["trace_id"] is None
    assert report["total"]["energy_j"] > 0
    assert sum(d["energy_j"] for d in report["devices"]) == pytest.approx(
        report["total"]["energy_j"], rel=1e-9
    )


def test_the_carbon_report_replaces_a_link_planted_at_its_path(
    tmp_path: Path, tel: Telemetry
) -> None:
    """``carbon_report.json`` in a shared folder: a planted link is replaced, never written
    through (issue 19 item 3), and the report is private (0600)."""
    import os
    import stat

    victim = tmp_path / "victim"
    victim.write_text("precious")
    report_path = tmp_path / "carbon_report.json"
    report_path.symlink_to(victim)
    cb = Eco2AICallback(
        CarbonConfig(measurement_interval=0.01, report_path=str(report_path)),
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=fake_gpu_sampler_factory(FakeGpu("GPU-x")),
    )
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=16).train()
    assert victim.read_text() == "precious"
    assert not report_path.is_symlink()
    assert json.loads(report_path.read_text()) == cb.generate_report().to_dict()
    assert stat.S_IMODE(os.stat(report_path).st_mode) == 0o600
