"""Two "nodes" on this machine (two torchrun agents, 2 ranks each, gloo DDP) under
``opentelemetry-instrument``, exporting to one OTLP receiver: one trace, one job root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otel_energy.distributed.job import derived_ids
from tests.support.backends import free_port
from tests.support.otlp_receiver import otlp_receiver
from tests.support.paths import SCRIPTS
from tests.support.subprocesses import INSTRUMENT, child_env, otlp_env

JOB = "job-two-nodes"


def test_all_ranks_of_a_two_node_job_land_in_one_trace_under_one_root(tmp_path: Path) -> None:
    port = free_port()
    with otlp_receiver() as (endpoint, got):
        env = child_env(
            ("OTEL_", "CUDA_", "SLURM_", "TORCHELASTIC_"),
            **otlp_env(endpoint, "job-test", "300000"),
            OUT_DIR=str(tmp_path),
            OMP_NUM_THREADS="1",
            OTEL_PYTHON_ENERGY_SOURCES="estimate",
            OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL="0.05",
        )
        nodes = [
            subprocess.Popen(
                [
                    str(INSTRUMENT),
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--nnodes=2",
                    f"--node_rank={node}",
                    "--nproc_per_node=2",
                    "--rdzv-backend=c10d",
                    f"--rdzv-endpoint=127.0.0.1:{port}",
                    f"--rdzv-id={JOB}",
                    str(SCRIPTS / "job_worker.py"),
                ],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for node in (0, 1)
        ]
        for p in nodes:
            out, _ = p.communicate(timeout=240)
            assert p.returncode == 0, out[-4000:]
        spans = list(got.ours())
        points = got.metric("hw.energy")

    trace_id, root_id = derived_ids(JOB)
    runs = [s for s in spans if s["name"] == "train"]
    assert sorted(s["attributes"]["otel_energy.rank"] for s in runs) == [0, 1, 2, 3]
    [root] = [s for s in spans if s["name"] == "job"]
    assert root["span_id"] == format(root_id, "016x") and root["parent_id"] is None
    for s in [*runs, root]:
        assert s["trace_id"] == format(trace_id, "032x")
        assert s["attributes"]["otel_energy.job.id"] == JOB
    for run in runs:
        assert run["parent_id"] == root["span_id"]
        assert root["start_ns"] <= run["start_ns"] and run["end_ns"] <= root["end_ns"]
    a = root["attributes"]
    assert a["otel_energy.job.ranks_reported"] == 4 and a["otel_energy.complete"] is True
    assert a["otel_energy.energy"] == pytest.approx(
        sum(r["attributes"]["otel_energy.energy"] for r in runs), rel=1e-9
    )
    assert a["otel_energy.co2e"] == pytest.approx(
        sum(r["attributes"]["otel_energy.co2e"] for r in runs), rel=1e-9
    )
    # metrics: every point carries the job id; node devices come from local rank 0 of each node
    assert points and all(p["attributes"]["otel_energy.job.id"] == JOB for p in points)
    measuring = {(p["attributes"]["otel_energy.rank"], p["attributes"]["hw.id"]) for p in points}
    assert {r for r, _ in measuring} == {0, 2}  # global ranks 0 and 2 are local rank 0
    job_j = sum(p["value"] for p in points)
    node_run_j = sum(
        r["attributes"]["otel_energy.energy"]
        for r in runs
        if r["attributes"]["otel_energy.local_rank"] == 0
    )
    # the counters run from instrumentation to exit, the run spans only while training
    assert job_j >= node_run_j > 0
