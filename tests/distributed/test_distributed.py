"""Several real processes (torchrun, gloo on CPU): each joule is counted exactly once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.scripts.dist_worker import GPUS
from tests.support.backends import free_port
from tests.support.paths import SCRIPTS
from tests.support.subprocesses import capture, child_env


def test_each_rank_measures_its_own_gpu_and_node_devices_once(tmp_path: Path) -> None:
    env = child_env(OUT_DIR=str(tmp_path), OMP_NUM_THREADS="1")
    proc = capture(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={free_port()}",
            str(SCRIPTS / "dist_worker.py"),
        ],
        env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = {r: json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)}
    assert ranks[0]["global_step"] == ranks[1]["global_step"] > 0  # real DDP: lock-step ranks

    series = {r: {a["hw.id"]: (a, v) for a, v in ranks[r]["hw_energy"]} for r in ranks}
    gpu_ids = list(GPUS)
    # rank r measures cuda:r only; node-level devices only on local rank 0
    assert set(series[0]) == {gpu_ids[0], "estimate:cpu", "estimate:memory"}
    assert set(series[1]) == {gpu_ids[1]}
    for r in ranks:
        for attrs, _ in series[r].values():
            assert attrs["otel_energy.rank"] == r and attrs["otel_energy.world_size"] == 2
            assert attrs["otel_energy.node_level"] is (r == 0)
            assert attrs["host.name"]

    for r, watts in ((0, 100.0), (1, 200.0)):
        [run] = [s for s in ranks[r]["spans"] if s["name"] == "train"]
        a = run["attributes"]
        assert a["otel_energy.rank"] == r and a["otel_energy.local_rank"] == r
        assert a["otel_energy.world_size"] == 2
        assert a["otel_energy.gpu.energy"] == pytest.approx(watts * run["duration_s"], rel=0.01)
        assert ("otel_energy.cpu.energy" in a) is (r == 0)
        assert ("otel_energy.memory.energy" in a) is (r == 0)
