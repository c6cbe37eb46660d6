"""Both ranks of the Lightning DDP test: ``strategy="ddp"``, 2 CPU processes (gloo).

Lightning's own launcher re-runs this script for rank 1, setting ``LOCAL_RANK``/``WORLD_SIZE``
but not ``RANK``: the callback takes the rank from the trainer. Every rank sees the same node:
two fake GPUs (100 W and 200 W) behind the real discovery code. Each rank writes its spans and
``hw.energy`` points to ``OUT_DIR/rank-N.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from otel_energy.config import load_config
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import Sampler
from otel_energy.integrations.lightning import LightningEnergyCallback
from tests.conftest import points
from tests.fakes.nvml import FakeNvml
from tests.scripts.train_lightning import loaders, quiet_trainer, tiny_module
from tests.support.hf_helpers import SAMPLE_CLOCK, Telemetry, constant_power_gpu

GPUS = {
    "GPU-aaaaaaaa-0000-0000-0000-000000000000": 100.0,
    "GPU-bbbbbbbb-0000-0000-0000-000000000000": 200.0,
}
SETTINGS = {
    "OTEL_PYTHON_ENERGY_SOURCES": "nvml,estimate",
    "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "0.01",
}


def main() -> None:
    out = Path(os.environ["OUT_DIR"])
    config = load_config(SETTINGS)
    nvml = FakeNvml([constant_power_gpu(w, uuid) for uuid, w in GPUS.items()])

    def factory(env: Mapping[str, str]) -> Sampler:
        return build_sampler(config, {**env, **SETTINGS}, nvml, clock=SAMPLE_CLOCK)

    tel = Telemetry()
    cb = LightningEnergyCallback(
        tel.tracer_provider, tel.meter_provider, config, sampler_factory=factory
    )
    trainer = quiet_trainer(strategy="ddp", devices=2, max_epochs=1, callbacks=[cb])
    train, val = loaders(n_train=64)
    trainer.fit(tiny_module(), train, val)
    result = {
        "rank": trainer.global_rank,
        "global_step": trainer.global_step,
        "spans": [
            {
                "name": s.name,
                "attributes": dict(s.attributes or {}),
                "duration_s": ((s.end_time or 0) - (s.start_time or 0)) / 1e9,
            }
            for s in tel.finished()
        ],
        "hw_energy": [[a, v] for a, v in points(tel.reader).get("hw.energy", [])],
    }
    (out / f"rank-{trainer.global_rank}.json").write_text(json.dumps(result, default=str))
    tel.shutdown()


if __name__ == "__main__":
    main()
