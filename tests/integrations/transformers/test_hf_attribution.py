"""A Trainer on a GPU it shares with another process: every span and log says the run's share.

The fake GPU (checked against the real pynvml) lists this process and another one, with 75 % and
25 % of the SM samples, so the run's attributed energy is 75 % of the GPU's on the train, epoch,
step and evaluate spans alike, and in the Trainer's logs; the node's figures stay whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from otel_energy.config import load_config
from otel_energy.hf import EnergyCallback
from otel_energy.testing.tiny import tiny_trainer
from otel_energy.tracker import JOB_LOG_KEYS
from tests.support.hf_helpers import Telemetry, constant_power_gpu, fake_gpu_sampler_factory
from tests.support.step_spans import STEP_NAMES, steps_covered

OTHER_PID = 2**22 + 7  # above any pid_max default: never this process's child
E_TOL = 0.01


def test_spans_and_logs_carry_the_runs_share_of_a_shared_gpu(
    tmp_path: Path, tel: Telemetry
) -> None:
    gpu = constant_power_gpu()
    gpu.processes = (os.getpid(), OTHER_PID)
    gpu.sm_pct = {os.getpid(): 75, OTHER_PID: 25}
    env = {"OTEL_PYTHON_ENERGY_SOURCES": "nvml", "OTEL_PYTHON_ENERGY_ATTRIBUTION": "process"}
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=load_config(env),
        sampler_factory=fake_gpu_sampler_factory(gpu, env=env),
    )
    trainer = tiny_trainer(
        str(tmp_path), callbacks=[cb], num_train_epochs=2, n_train=32, eval_strategy="epoch"
    )
    trainer.train()
    spans = tel.finished()
    assert {s.name for s in spans if s.name not in STEP_NAMES} == {"train", "epoch", "evaluate"}
    assert steps_covered((s.name, s.attributes) for s in spans) == [1, 2, 3, 4, 5, 6, 7, 8]
    for s in spans:
        a = s.attributes or {}
        node = a["otel_energy.energy"]
        assert node > 0
        assert a["otel_energy.attributed.energy"] == pytest.approx(0.75 * node, abs=E_TOL), s.name
        assert a["otel_energy.dynamic.energy"] == pytest.approx(0.75 * node, abs=E_TOL)  # no idle
        assert a["otel_energy.attributed.co2e"] == pytest.approx(
            0.75 * a["otel_energy.co2e"], rel=0.02, abs=1e-6
        )
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert logged and all(all(k in h for k in JOB_LOG_KEYS) for h in logged)
    for h in logged:
        assert h["otel_energy/attributed_energy_j"] == pytest.approx(
            0.75 * h["otel_energy/energy_j"], rel=0.05, abs=E_TOL
        )
