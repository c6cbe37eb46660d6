"""Sampler CPU of 8 ranks on one node: one reader per node (``SHARED_SAMPLING=on``) against every
rank reading its own GPU (``off``), in one run.

Each mode starts 8 real rank processes (torchrun's variables, one job id) over a fake NVML with 8
GPUs (the test suite's fake, checked against pynvml), at the sampling interval given (0.1 s).
After a warm-up, the CPU time of every thread but the main one (the main thread blocks on stdin:
what is left is the sampler, the publisher and their reader threads) is read from
``/proc/<pid>/task/<tid>/schedstat`` at the start and end of a window, and summed over the 8
processes: the share of one core the node's ranks spend on sampling. Modes alternate ``--reps``
times; the medians are reported. Usage:
    python benchmarks/bench_ranks.py [--quick] [--ranks 8] [--seconds 20] [--reps 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, median, write

ROOT = Path(__file__).resolve().parents[1]


def worker() -> None:
    """One rank: the real sampler over 8 fake GPUs; prints ``ready``, exits at end of stdin."""
    from tests.fakes.nvml import FakeGpu, FakeNvml

    from otel_energy.config import load_config
    from otel_energy.engine.runtime import build_sampler

    n = int(os.environ["BENCH_GPUS"])
    gpus = [
        FakeGpu(
            f"GPU-{k:08x}-0000-0000-0000-000000000000",
            energy_mj=lambda: int(time.monotonic() * 300_000),
        )
        for k in range(n)
    ]
    sampler = build_sampler(load_config(os.environ), os.environ, FakeNvml(gpus))
    sampler.start()
    sampler.wait_for_sample(float("-inf"), 120.0)
    print("ready", flush=True)
    sys.stdin.read()
    sampler.stop()


def thread_cpu_s(pid: int) -> float:
    """CPU seconds of every thread of ``pid`` but its main one (schedstat: ns on a CPU)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if task.name == str(pid):
            continue
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended between listing and reading
    return total / 1e9


def measure(mode: str, ranks: int, gpus: int, interval: str, seconds: float) -> list[float]:
    """Percent of one core spent by each rank's sampling threads over ``seconds`` of wall time
    (the node's reader, which also publishes, is the highest with sharing on)."""
    with tempfile.TemporaryDirectory(prefix="node-bench-") as tmp:
        os.chmod(tmp, 0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CUDA_"))}
        env.update(
            PYTHONPATH=str(ROOT),
            XDG_RUNTIME_DIR=tmp,
            BENCH_GPUS=str(gpus),
            OTEL_PYTHON_ENERGY_SOURCES="nvml",
            OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL=interval,
            OTEL_PYTHON_ENERGY_SHARED_SAMPLING=mode,
            TORCHELASTIC_RUN_ID=f"bench-{mode}-{os.getpid()}",
            WORLD_SIZE=str(ranks),
            LOCAL_WORLD_SIZE=str(ranks),
        )
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker"],
                env={**env, "RANK": str(k), "LOCAL_RANK": str(k)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for k in range(ranks)
        ]
        try:
            for p in procs:
                assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            time.sleep(2.0)  # past start-up: discovery, the first batches
            before = [thread_cpu_s(p.pid) for p in procs]
            t0 = time.monotonic()
            time.sleep(seconds)
            after = [thread_cpu_s(p.pid) for p in procs]
            wall = time.monotonic() - t0
        finally:
            for p in procs:
                p.communicate(timeout=120)
    return [100.0 * (a - b) / wall for a, b in zip(after, before, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="one 5 s window per mode")
    parser.add_argument("--ranks", type=int, default=8)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--interval", default="0.1")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    seconds, reps = (5.0, 1) if args.quick else (args.seconds, args.reps)
    load_before = os.getloadavg()
    runs: dict[str, list[float]] = {"off": [], "on": []}
    per_rank: dict[str, list[list[float]]] = {"off": [], "on": []}
    for _ in range(reps):
        for mode in ("off", "on"):
            shares = measure(mode, args.ranks, args.gpus, args.interval, seconds)
            per_rank[mode].append(shares)
            runs[mode].append(sum(shares))
    payload: dict[str, Any] = {
        "machine": machine(),
        "ranks": args.ranks,
        "gpus": args.gpus,
        "interval_s": float(args.interval),
        "seconds": seconds,
        "reps": reps,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "cpu_pct_of_core": runs,
        "per_rank_pct": per_rank,
        "median_off": median(runs["off"]),
        "median_on": median(runs["on"]),
    }
    md = (
        f"# Sampler CPU of {args.ranks} ranks on one node ({args.gpus} fake GPUs,"
        f" {args.interval} s)\n\n"
        "| SHARED_SAMPLING | % of one core, all ranks (median) | runs |\n|---|---|---|\n"
        f"| off (each rank reads its GPU) | {payload['median_off']:.2f} |"
        f" {', '.join(f'{x:.2f}' for x in runs['off'])} |\n"
        f"| on (one reader per node) | {payload['median_on']:.2f} |"
        f" {', '.join(f'{x:.2f}' for x in runs['on'])} |\n\n"
        "Per rank, last run (on): "
        + ", ".join(f"{x:.2f}" for x in per_rank["on"][-1])
        + " (the highest is the node's reader: publisher + its own fold).\n\n"
        f"Load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}"
        f" ({os.cpu_count()} CPUs). {seconds:g} s windows, {reps} alternations.\n"
    )
    print(md)
    print(json.dumps(payload["cpu_pct_of_core"]))
    write("ranks_quick" if args.quick else "ranks", payload, md, args.out)


if __name__ == "__main__":
    main()
