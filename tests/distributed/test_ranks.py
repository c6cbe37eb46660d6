"""Rank identity from each launcher's variables, with the documented precedence."""

from __future__ import annotations

import pytest

from otel_energy.distributed.ranks import rank_info, slurm_tasks_on_node
from otel_energy.telemetry import attributes as A

SLURM = {
    "SLURM_PROCID": "3",
    "SLURM_LOCALID": "1",
    "SLURM_NTASKS": "4",
    "SLURM_TASKS_PER_NODE": "2(x2)",
    "SLURM_NODEID": "1",
    "SLURM_JOB_ID": "777",
}
OMPI = {
    "OMPI_COMM_WORLD_RANK": "2",
    "OMPI_COMM_WORLD_LOCAL_RANK": "0",
    "OMPI_COMM_WORLD_SIZE": "6",
    "OMPI_COMM_WORLD_LOCAL_SIZE": "3",
}
PMI = {"PMI_RANK": "5", "PMI_SIZE": "8", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "4"}
TORCHRUN = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (SLURM, ("slurm", 3, 1, 4, 2)),
        ({**SLURM, "SLURM_NTASKS_PER_NODE": "2"}, ("slurm", 3, 1, 4, 2)),
        # an srun step smaller than the allocation: the step's counts, not the allocation's
        (
            {
                **SLURM,
                "SLURM_NTASKS": "8",
                "SLURM_STEP_NUM_TASKS": "4",
                "SLURM_TASKS_PER_NODE": "4(x2)",
                "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
            },
            ("slurm", 3, 1, 4, 2),
        ),
        (OMPI, ("openmpi", 2, 0, 6, 3)),
        (PMI, ("pmi", 5, 1, 8, 4)),
        (TORCHRUN, ("torchrun", 1, 1, 2, 2)),
        # innermost launcher wins: torchrun under srun, mpirun inside a SLURM allocation
        ({**SLURM, **TORCHRUN}, ("torchrun", 1, 1, 2, 2)),
        ({**SLURM, **OMPI}, ("openmpi", 2, 0, 6, 3)),
        ({**SLURM, **PMI}, ("pmi", 5, 1, 8, 4)),
        ({**OMPI, **TORCHRUN}, ("torchrun", 1, 1, 2, 2)),
    ],
)
def test_launchers_and_precedence(env: dict[str, str], expected: tuple[object, ...]) -> None:
    r = rank_info(env)
    assert (r.launcher, r.rank, r.local_rank, r.world_size, r.local_world_size) == expected
    assert r.distributed


def test_outside_any_launcher() -> None:
    r = rank_info({})
    assert r.launcher is None and r.rank is None and not r.distributed and r.measures_node
    assert set(r.attributes()) == {A.HOST_NAME}


@pytest.mark.parametrize(
    ("raw", "node", "expected"),
    [
        ("2(x3),1", 0, 2),
        ("2(x3),1", 2, 2),
        ("2(x3),1", 3, 1),
        ("4", 0, 4),
        ("4", 1, None),
        ("x", 0, None),
    ],
)
def test_slurm_tasks_per_node(raw: str, node: int, expected: int | None) -> None:
    assert slurm_tasks_on_node(raw, node) == expected


def test_job_id_reaches_the_identity_attributes() -> None:
    attrs = rank_info(SLURM).attributes()
    assert attrs[A.JOB_ID] == "777"
    assert attrs[A.RANK] == 3 and attrs[A.NODE_LEVEL] is False
    # a single process with a job id still carries it
    assert rank_info({"OTEL_PYTHON_ENERGY_JOB_ID": "j1"}).attributes()[A.JOB_ID] == "j1"
