"""One of two real jobs sharing a node (tests/engine/test_attribution_jobs.py).

Its own sampler, as any job would have, over the test's fake powercap tree (whose energy the test
writes from the node's real busy CPU time) and a fake NVML GPU that lists both jobs' processes
with their SM utilization (from SYNC_DIR/gpu.json). Between the test's ``burn`` and ``stop`` files
a child process burns CPU at RATE of one core (the job is this process and its descendants). It
writes its figures over that stretch, read back from the snapshot and the metric reader, to
SYNC_DIR/job-<pid>.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_energy.config import load_config
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import Sampler, Snapshot
from otel_energy.telemetry.instruments import attach
from tests.conftest import points
from tests.fakes.nvml import FakeGpu, FakeNvml

BURNER = """
import sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + seconds
while time.monotonic() < end:
    start_cpu, start = time.process_time(), time.monotonic()
    while time.process_time() - start_cpu < rate * 0.02:
        pass
    time.sleep(max(0.0, 0.02 - (time.monotonic() - start)))
"""
GPU_W = 150.0


def wait_for(path: Path) -> str:
    while not path.exists():
        time.sleep(0.005)
    return path.read_text()


def gpu_state(sync: Path) -> dict[str, object]:
    try:
        return dict(json.loads((sync / "gpu.json").read_text()))
    except (OSError, ValueError):
        return {"pids": [], "sm": {}}


def sample_now(sampler: Sampler) -> tuple[Snapshot, float]:
    """A fresh sample, then this process's CPU seconds (itself and its reaped children)."""
    sampler.wait_for_sample(sampler.clock(), 10.0)
    snap = sampler.snapshot()
    t = os.times()
    return snap, t.user + t.system + t.children_user + t.children_system


def seen_by_sampler(sampler: Sampler, pids: set[int]) -> None:
    """Wait (sample by sample) until the sampler's GPU stats list ``pids``: GPU stats are read
    once per second (engine.devices.STATS_PERIOD_S), so the list written before ``go`` reaches
    the share up to a second later; the measured stretch starts once it has."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        snap = sampler.snapshot()
        if any(d.gpu and pids <= set(d.gpu.processes or ()) for d in snap.devices):
            return
        sampler.wait_for_sample(snap.t_s + 1e-9, 10.0)
    raise AssertionError(f"the sampler never saw the processes {pids} on the GPU")


def main() -> None:
    sync, rate, seconds = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    gpu = FakeGpu(
        "GPU-shared-0",
        energy_mj=lambda: round(GPU_W * 1000 * time.monotonic()),
        power_mw=round(GPU_W * 1000),
        processes=lambda: tuple(int(p) for p in gpu_state(sync)["pids"]),  # type: ignore[attr-defined]
        sm_pct=lambda: {int(k): int(v) for k, v in gpu_state(sync)["sm"].items()},  # type: ignore[attr-defined]
    )
    sampler = build_sampler(load_config(os.environ), os.environ, FakeNvml([gpu]))
    reader = InMemoryMetricReader()
    attach(MeterProvider(metric_readers=[reader]), sampler)
    sampler.start()
    sampler.wait_for_sample(float("-inf"), 30.0)
    (sync / f"ready-{os.getpid()}").write_text("")
    wait_for(sync / "go")
    seen_by_sampler(sampler, {int(p) for p in gpu_state(sync)["pids"]})  # type: ignore[attr-defined]
    # Each sampler sees the list at its own once-a-second stats read: the jobs start burning
    # together once both have (their measured windows are then one stretch within a tick).
    (sync / f"seen-{os.getpid()}").write_text("")
    wait_for(sync / "start")
    first, cpu0 = sample_now(sampler)
    # Both jobs' first samples come before either burns: the overlap of the two windows (the
    # test's node-wide check) then holds all of each job's burning, its interpreter start too.
    (sync / f"sampled-{os.getpid()}").write_text("")
    wait_for(sync / "burn")
    subprocess.run([sys.executable, "-c", BURNER, str(rate), str(seconds)], check=True)
    (sync / f"burnt-{os.getpid()}").write_text("")
    wait_for(sync / "stop")
    last, cpu1 = sample_now(sampler)
    metrics = points(reader)
    sampler.stop()
    devices = {}
    for d in last.devices:
        b = next(x for x in first.devices if x.info.hw_id == d.info.hw_id)
        devices[d.info.hw_id] = {
            "hw_type": d.info.hw_type,
            "energy_j": d.energy_j - b.energy_j,
            "attributed_j": d.attributed_j - b.attributed_j,
            "dynamic_j": d.dynamic_j - b.dynamic_j,
            "attribution": d.attribution,
            "cumulative": [d.energy_j, d.attributed_j, d.dynamic_j],
        }
    assert last.job is not None and first.job is not None
    result = {
        "t0": first.t_s,
        "t1": last.t_s,
        "cpu_s": cpu1 - cpu0,
        "job_cpu_s": last.job.job_cpu_s - first.job.job_cpu_s,
        "node_busy_s": last.job.node_busy_s - first.job.node_busy_s,
        "others_busy": last.job.others_busy,
        "devices": devices,
        "hw_energy": [[a, v] for a, v in metrics.get("hw.energy", [])],
        "attributed_energy": [[a, v] for a, v in metrics.get("otel_energy.attributed.energy", [])],
    }
    (sync / f"job-{os.getpid()}.json").write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
