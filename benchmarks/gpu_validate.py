"""GPU validation on a real NVIDIA GPU (run it on a machine that has one).

1. NVML call latency: power, energy counter, field values (target < 1 ms; expect microseconds).
2. The energy counter's update period (poll every ~0.5 ms, time between changes).
3. Energy counter vs integrated instantaneous power over a steady matmul load (target: within 2%).
4. Our callback's overhead on a real GPU training loop (interleaved blocks; target < 0.5%).
5. Per-step energy of that training run, from the step spans.

``--fake`` runs 1-3 against the test suite's fake NVML (names checked against pynvml) with a CPU
busy loop as the load, so the script is tested where no GPU exists; 4-5 then report "skipped".
Usage:  python benchmarks/gpu_validate.py [--fake] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from benchmarks.common import machine, write

FIELD_POWER_INSTANT = 186  # NVML_FI_DEV_POWER_INSTANT
FIELD_ENERGY = 191  # NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION (driver 535+)


def fake_nvml() -> Any:
    from tests.fakes.nvml import FakeGpu, FakeNvml

    t0 = time.monotonic()

    def energy_mj() -> int:  # 250 W, refreshed every 100 ms like A100/H100
        return int(250_000 * (int((time.monotonic() - t0) / 0.1) * 0.1))

    return FakeNvml([FakeGpu("GPU-fake-validate", energy_mj=energy_mj, power_mw=250_000)])


def latency_us(fn: Any, n: int) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def update_period_s(nvml: Any, handle: Any, seconds: float) -> float | None:
    changes, last = [], nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        if value != last:
            changes.append(time.monotonic())
            last = value
        time.sleep(0.0005)
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    return statistics.median(gaps) if gaps else None


def load(seconds: float, fake: bool) -> threading.Thread:
    def run() -> None:
        end = time.monotonic() + seconds
        if fake:
            while time.monotonic() < end:
                sum(i * i for i in range(1000))
            return
        import torch

        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        while time.monotonic() < end:
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def counter_vs_power(nvml: Any, handle: Any, seconds: float, fake: bool) -> dict[str, float]:
    worker = load(seconds + 1.0, fake)
    time.sleep(0.5)  # reach steady state
    e0, t_prev = nvml.nvmlDeviceGetTotalEnergyConsumption(handle), time.monotonic()
    p_prev, integral = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0, 0.0
    end = t_prev + seconds
    while time.monotonic() < end:
        time.sleep(0.01)
        p, t = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0, time.monotonic()
        integral += 0.5 * (p + p_prev) * (t - t_prev)
        p_prev, t_prev = p, t
    counter_j = (nvml.nvmlDeviceGetTotalEnergyConsumption(handle) - e0) / 1000.0
    worker.join()
    return {
        "counter_j": counter_j,
        "integrated_power_j": integral,
        "relative_difference": (integral - counter_j) / counter_j if counter_j else float("nan"),
    }


def training(quick: bool) -> dict[str, Any]:
    try:
        import torch

        if not torch.cuda.is_available():
            return {"skipped": "no CUDA device"}
    except ImportError:
        return {"skipped": "torch not installed"}
    import tempfile

    from benchmarks.bench_overhead import run_worker

    with tempfile.TemporaryDirectory() as tmp:  # the model on the GPU, the machine's own NVML
        cfg = {
            "step_ms": 5,
            "mode": "default",
            "gpus": 0,
            "extra_arms": ["sampler"],
            "pairs": 3 if quick else 20,
            "block_s": 0.5,
            "block_steps": 30 if quick else 0,
            "settle": 1,
            "calib_us": 50.0,
            "exporter": "drop",
            "endpoint": "",
            "bsp_delay_ms": 600_000.0,
            "device": "cuda",
            "workdir": tmp,
        }
        res = run_worker(cfg, timeout_s=1200)
    if "arms" not in res:
        return {"error": str(res)[-2000:]}
    arm = res["arms"]["default"]
    return {
        "work": res["work"],
        "median_ratio": arm["median_ratio"],
        "time_ratio": arm["time_ratio"],
        "ours_cpu_us_per_step": arm["ours_cpu_us_per_step"],
        "sampler_share_of_core": res["arms"]["sampler"]["ours_cpu_share_of_core_on"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fake", action="store_true", help="fake NVML and a CPU load (no GPU)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.fake:
        nvml = fake_nvml()
    else:
        import pynvml as nvml
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    n = 200 if a.quick else 5000
    calls = {
        "power_us": latency_us(lambda: nvml.nvmlDeviceGetPowerUsage(handle), n),
        "energy_counter_us": latency_us(
            lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle), n
        ),
    }
    if hasattr(nvml, "nvmlDeviceGetFieldValues"):
        calls["field_values_us"] = latency_us(
            lambda: nvml.nvmlDeviceGetFieldValues(handle, [FIELD_POWER_INSTANT, FIELD_ENERGY]), n
        )
    result = {
        "machine": machine(),
        "gpu": str(nvml.nvmlDeviceGetName(handle)),
        "driver": str(nvml.nvmlSystemGetDriverVersion()),
        "fake": a.fake,
        "nvml_call_latency": calls,
        "counter_update_period_s": update_period_s(nvml, handle, 1.0 if a.quick else 3.0),
        "counter_vs_integrated_power": counter_vs_power(
            nvml, handle, 2.0 if a.quick else 10.0, a.fake
        ),
        "training": training(a.quick),
        "targets": {"nvml_call_us": 1000, "counter_vs_power": 0.02, "overhead": 0.005},
    }
    cvp = result["counter_vs_integrated_power"]
    md = [
        "# GPU validation" + (" (FAKE NVML: tests the script, not a GPU)" if a.fake else ""),
        "",
        f"GPU: {result['gpu']}, driver {result['driver']}; {result['machine']['date']}.",
        f"Machine: {result['machine']['cpu']} ({result['machine']['logical_cpus']} logical CPUs).",
        "",
        *[f"- NVML {k.removesuffix('_us')}: {v:.1f} us (median of {n})" for k, v in calls.items()],
        f"- energy counter update period: {result['counter_update_period_s']} s",
        f"- counter {cvp['counter_j']:.1f} J vs integrated power {cvp['integrated_power_j']:.1f} J:"
        f" {cvp['relative_difference'] * 100:+.2f}%",
        f"- training: {result['training']}",
    ]
    write("gpu_validate_fake" if a.fake else "gpu_validate", result, "\n".join(md), a.out)
    print("\n".join(md))
    return result


if __name__ == "__main__":
    main()
