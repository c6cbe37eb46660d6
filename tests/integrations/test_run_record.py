"""The same run record from every integration (issue 20): a real tiny model trained on CPU through
each entry point, then the ledger row, the span tree with its phases, the projection, the job id
and the log keys read back with one shared assertion (``tests.support.run_record``).

The Keras, zero-code and ``otel-energy run`` records are checked in test_keras.py and
test_run_record_subprocess.py (real subprocesses).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from otel_energy.config import load_config
from otel_energy.hf import EnergyCallback
from otel_energy.meter import EnergyMeter
from otel_energy.testing.tiny import tiny_trainer
from otel_energy.tracker import ALL_LOG_KEYS
from tests.support.hf_helpers import Telemetry, fake_gpu_sampler_factory
from tests.support.run_record import assert_run_record, record_environment, views

NVML = {"OTEL_PYTHON_ENERGY_SOURCES": "nvml"}


def test_a_trainer_run_leaves_the_run_record(
    tel: Telemetry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = record_environment(monkeypatch, tmp_path)
    cb = EnergyCallback(
        tel.tracer_provider,
        tel.meter_provider,
        load_config(NVML),
        sampler_factory=fake_gpu_sampler_factory(),
    )
    trainer = tiny_trainer(
        str(tmp_path / "out"), callbacks=[cb], num_train_epochs=2, eval_strategy="epoch"
    )
    trainer.train()
    ours = [h for h in trainer.state.log_history if "otel_energy/energy_j" in h]
    assert_run_record(ledger, views(tel.finished()), ours[-1], phases=["evaluate"])


def test_a_lightning_run_leaves_the_run_record(
    tel: Telemetry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_energy.integrations.lightning import LightningEnergyCallback
    from tests.scripts.train_lightning import loaders, quiet_trainer, tiny_module

    ledger = record_environment(monkeypatch, tmp_path)
    factory = fake_gpu_sampler_factory()
    cb = LightningEnergyCallback(
        tel.tracer_provider,
        tel.meter_provider,
        load_config(NVML),
        sampler_factory=lambda _env: factory(),
    )
    trainer = quiet_trainer(callbacks=[cb], max_epochs=2, log_every_n_steps=1)
    train, val = loaders()
    trainer.fit(tiny_module(), train, val)
    logged = {k: v for k, v in trainer.callback_metrics.items() if k in ALL_LOG_KEYS}
    assert_run_record(
        ledger, views(tel.finished()), logged, phases=["evaluate"], framework="lightning"
    )


def test_an_energy_meter_run_leaves_the_run_record(
    tel: Telemetry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    ledger = record_environment(monkeypatch, tmp_path)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    logged: dict[str, Any] = {}
    with EnergyMeter(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=fake_gpu_sampler_factory(),
        total_batches=8,
    ) as meter:
        for _ in range(2):
            with meter.epoch():
                for i in range(4):
                    with meter.batch():
                        opt.zero_grad()
                        torch.nn.functional.mse_loss(model(x[i::4]), y[i::4]).backward()
                        opt.step()
                        time.sleep(0.005)  # a step long enough to hold a sample or two
            logged = meter.log_values()
        with meter.evaluate():
            model(x)
    assert_run_record(ledger, views(tel.finished()), logged, phases=["evaluate"], step_name="batch")
