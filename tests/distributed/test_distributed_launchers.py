"""Ranks started by SLURM (srun) or MPI (mpirun), and jobs on MIG slices: each joule once.

Real processes, real discovery and metrics; fake NVML and a fake powercap tree below our code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.powercap import server_tree
from tests.support.paths import SCRIPTS
from tests.support.subprocesses import child_env

GPUS = {
    "GPU-aaaaaaaa-0000-0000-0000-000000000000": 100.0,
    "GPU-bbbbbbbb-0000-0000-0000-000000000000": 200.0,
}
LAUNCHER_PREFIXES = ("OTEL_", "CUDA_", "SLURM_", "OMPI_", "PMI_", "PMIX_", "MPI_")
TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID")


def run_tasks(tmp_path: Path, tasks: list[dict[str, str]], gpus: dict[str, Any]) -> list[Any]:
    """Start one process per task env (concurrently, like a launcher), return their results."""
    powercap = tmp_path / "powercap"
    server_tree(powercap)
    base = child_env(LAUNCHER_PREFIXES)
    for name in TORCHRUN_VARS:
        base.pop(name, None)
    base.update(
        OUT_DIR=str(tmp_path),
        FAKE_GPUS=json.dumps(gpus),
        OTEL_PYTHON_ENERGY_SOURCES="nvml,rapl",
        OTEL_PYTHON_ENERGY_POWERCAP_ROOT=str(powercap),
        OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL="0.02",
    )
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPTS / "launch_worker.py")],
            env={**base, **task},
            stderr=subprocess.PIPE,
            text=True,
        )
        for task in tasks
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    return [json.loads(f.read_text()) for f in sorted(tmp_path.glob("task-*.json"))]


def counted_once(results: list[Any]) -> dict[str, tuple[dict[str, Any], float, float]]:
    """hw.id -> (attributes, energy J, seconds measured), failing if two tasks report one id."""
    seen: dict[str, tuple[dict[str, Any], float, float]] = {}
    for r in results:
        for attrs, value in r["hw_energy"]:
            assert attrs["hw.id"] not in seen, f"{attrs['hw.id']} counted twice"
            seen[attrs["hw.id"]] = (attrs, value, r["seconds"])
    return seen


def check_two_ranks(results: list[Any]) -> None:
    series = counted_once(results)
    gpu_ids = set(GPUS)
    cpu_ids = {i for i, (a, _, _) in series.items() if a["hw.type"] in ("cpu", "memory")}
    assert set(series) == gpu_ids | cpu_ids and cpu_ids  # both GPUs, the RAPL zones, once each
    for hw_id, (attrs, energy, seconds) in series.items():
        assert attrs["otel_energy.world_size"] == 2
        assert attrs["otel_energy.job.id"] == "4242"
        if hw_id in GPUS:
            rank = sorted(GPUS).index(hw_id)  # rank r measures cuda:r
            assert attrs["otel_energy.rank"] == attrs["otel_energy.local_rank"] == rank
            assert energy == pytest.approx(GPUS[hw_id] * seconds, rel=0.05)
        else:
            assert attrs["otel_energy.rank"] == 0 and attrs["otel_energy.node_level"] is True


def test_slurm_tasks_count_each_gpu_and_the_cpu_once(tmp_path: Path) -> None:
    tasks = [
        {
            "SLURM_PROCID": str(r),
            "SLURM_LOCALID": str(r),
            "SLURM_NTASKS": "2",
            "SLURM_TASKS_PER_NODE": "2",
            "SLURM_NODEID": "0",
            "SLURM_JOB_ID": "4242",
        }
        for r in (0, 1)
    ]
    gpus = {u: [w, [], []] for u, w in GPUS.items()}
    check_two_ranks(run_tasks(tmp_path, tasks, gpus))


def test_open_mpi_ranks_count_each_gpu_and_the_cpu_once(tmp_path: Path) -> None:
    tasks = [
        {
            "OMPI_COMM_WORLD_RANK": str(r),
            "OMPI_COMM_WORLD_LOCAL_RANK": str(r),
            "OMPI_COMM_WORLD_SIZE": "2",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
            "OTEL_PYTHON_ENERGY_JOB_ID": "4242",
        }
        for r in (0, 1)
    ]
    gpus = {u: [w, [], []] for u, w in GPUS.items()}
    check_two_ranks(run_tasks(tmp_path, tasks, gpus))


def test_two_jobs_on_mig_slices_of_one_gpu_sum_to_no_more_than_it(tmp_path: Path) -> None:
    parent, watts = "GPU-cccccccc-0000-0000-0000-000000000000", 300.0
    migs = ["MIG-11111111-0000-0000-0000-000000000000", "MIG-22222222-0000-0000-0000-000000000000"]
    gpus = {parent: [watts, migs, [3, 4]]}
    tasks = [{"CUDA_VISIBLE_DEVICES": m, "OTEL_PYTHON_ENERGY_SOURCES": "nvml"} for m in migs]
    results = run_tasks(tmp_path, tasks, gpus)
    series = counted_once(results)
    assert set(series) == set(migs)
    parent_j = 0.0
    for (attrs, energy, seconds), slices in zip((series[m] for m in migs), (3, 4), strict=True):
        assert attrs["hw.parent"] == parent and attrs["otel_energy.estimated"] is True
        assert energy == pytest.approx(watts * seconds * slices / 7, rel=0.05)
        parent_j = max(parent_j, watts * seconds)
    # each job's share of the GPU over its own time; together at most the GPU's energy
    assert sum(e for _, e, _ in series.values()) <= parent_j * 1.05
