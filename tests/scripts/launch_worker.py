"""One task of the launcher tests (SLURM-, MPI-style, MIG): real discovery over fake hardware.

Started as a plain process with only a launcher's variables (no torchrun), it measures for about
half a second with the real sampler and metric instruments, then writes its ``hw.energy`` points
and its measuring time to OUT_DIR/task-<pid>.json. Hardware: the GPUs named by FAKE_GPUS (JSON:
uuid -> [watts, [mig uuids], [mig slices]]) behind a fake NVML, and a fake powercap tree at
OTEL_PYTHON_ENERGY_POWERCAP_ROOT.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_energy.config import load_config
from otel_energy.engine.runtime import build_sampler
from otel_energy.telemetry.instruments import attach
from tests.conftest import points
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.support.hf_helpers import SAMPLE_CLOCK


def main() -> None:
    out = Path(os.environ["OUT_DIR"])
    gpus = [
        FakeGpu(
            uuid,
            energy_mj=lambda w=w: round(w * 1000 * SAMPLE_CLOCK.last),
            power_mw=round(w * 1000),
            mig_uuids=tuple(migs),
            mig_slices=tuple(slices),
        )
        for uuid, (w, migs, slices) in json.loads(os.environ["FAKE_GPUS"]).items()
    ]
    config = load_config(os.environ)
    sampler = build_sampler(config, os.environ, FakeNvml(gpus), clock=SAMPLE_CLOCK)
    reader = InMemoryMetricReader()
    attach(MeterProvider(metric_readers=[reader]), sampler)
    published: list[float] = []
    sampler.add_listener(published.append)  # hw.energy counts from the first sample's time
    sampler.start()
    sampler.wait_for_sample(float("-inf"), 30.0)
    t0 = published[0]  # not the newest snapshot's: this thread may wake ticks later
    time.sleep(0.5)
    t1 = SAMPLE_CLOCK()
    sampler.wait_for_sample(t1, 30.0)
    sampler.stop()
    snap = sampler.snapshot()
    result = {
        "seconds": snap.t_s - t0,
        "hw_energy": [[a, v] for a, v in points(reader).get("hw.energy", [])],
    }
    (out / f"task-{os.getpid()}.json").write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
