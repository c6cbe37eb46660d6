"""One rank of the multi-rank test, launched by torchrun (2 processes, gloo on CPU).

Every rank sees the same node: two fake GPUs (100 W and 200 W) behind the real discovery code.
It trains the tiny model with DDP and writes its spans and hw.energy points to OUT_DIR/rank-N.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from otel_energy.config import load_config
from otel_energy.engine.runtime import build_sampler
from otel_energy.hf import EnergyCallback
from otel_energy.testing.tiny import tiny_trainer
from tests.conftest import points
from tests.fakes.nvml import FakeNvml
from tests.support.hf_helpers import SAMPLE_CLOCK, Telemetry, constant_power_gpu

GPUS = {
    "GPU-aaaaaaaa-0000-0000-0000-000000000000": 100.0,
    "GPU-bbbbbbbb-0000-0000-0000-000000000000": 200.0,
}


def main() -> None:
    out = Path(os.environ["OUT_DIR"])
    env = dict(
        os.environ,
        OTEL_PYTHON_ENERGY_SOURCES="nvml,estimate",
        OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL="0.01",
    )
    config = load_config(env)
    nvml = FakeNvml([constant_power_gpu(w, uuid) for uuid, w in GPUS.items()])
    tel = Telemetry()
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=config,
        sampler_factory=lambda: build_sampler(config, env, nvml, clock=SAMPLE_CLOCK),
    )
    trainer = tiny_trainer(str(out / "trainer"), callbacks=[cb], num_train_epochs=1, n_train=64)
    trainer.train()
    rank = int(os.environ["RANK"])
    result = {
        "rank": rank,
        "global_step": trainer.state.global_step,
        "spans": [
            {
                "name": s.name,
                "attributes": dict(s.attributes),
                "duration_s": (s.end_time - s.start_time) / 1e9,
            }
            for s in tel.finished()
        ],
        "hw_energy": [[attrs, value] for attrs, value in points(tel.reader).get("hw.energy", [])],
    }
    (out / f"rank-{rank}.json").write_text(json.dumps(result, default=str))
    tel.shutdown()


if __name__ == "__main__":
    main()
