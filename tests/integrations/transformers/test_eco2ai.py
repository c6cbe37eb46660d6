"""Eco2AICallback and CarbonConfig (the HF Eco2AI plugin seed's API) on a real tiny Trainer."""

from __future__ import annotations

import json
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


def test_report_metrics_and_spans_agree(tmp_path: Path, tel: Telemetry) -> None:
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
