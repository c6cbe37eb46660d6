"""Who this process is in a distributed run, and what it measures.

Launchers are read in a fixed precedence, innermost first, each as a whole (never mixing two
launchers' variables): torchrun/accelerate (``RANK``...), Open MPI (``OMPI_COMM_WORLD_*``),
MPICH/Intel MPI/PMI (``PMI_RANK``...), then SLURM (``SLURM_PROCID``...). Innermost wins because
an outer launcher's variables describe the launcher process, not the worker: under
``srun torchrun ...`` ``SLURM_PROCID`` numbers the torchrun agents (nodes) and ``RANK`` the workers.

Rule that makes a backend's sum over ranks count each joule once: every rank measures only its own
GPU(s); node-level devices (RAPL, estimates) are measured by local rank 0 only.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from otel_energy.config.variables import OTEL_PYTHON_ENERGY_JOB_ID
from otel_energy.telemetry import attributes as A

JOB_ID_VARIABLES = (
    OTEL_PYTHON_ENERGY_JOB_ID,
    "SLURM_JOB_ID",  # with ".SLURM_STEP_ID" appended when set: each srun step is its own job
    "TORCHELASTIC_RUN_ID",  # torchrun --rdzv-id; its default "none" is ignored
    "PBS_JOBID",
    "LSB_JOBID",
    "PMIX_NAMESPACE",  # Open MPI 5 / PMIx: unique per mpirun
)
NOT_AN_ID = frozenset({"", "none"})


def job_id(environ: Mapping[str, str]) -> str | None:
    """This process's job id (module docstring), or None when no launcher gives a unique one."""
    for name in JOB_ID_VARIABLES:
        value = environ.get(name, "").strip()
        if value.lower() in NOT_AN_ID:
            continue
        if name == "SLURM_JOB_ID":
            step = environ.get("SLURM_STEP_ID", "").strip()
            if step.isdigit():
                return f"{value}.{step}"
        return value
    return None


JOB_ID_ATTRIBUTE = A.JOB_ID


@dataclass(frozen=True)
class RankInfo:
    """Rank identity read from the launcher's environment (all None outside a distributed run).

    ``launcher`` names the launcher the ranks were read from (``torchrun``, ``openmpi``, ``pmi``,
    ``slurm``); ``job_id`` is the job's id (see :func:`job_id`), None when unknown.
    """

    host: str
    rank: int | None = None
    local_rank: int | None = None
    world_size: int | None = None
    local_world_size: int | None = None
    launcher: str | None = None
    job_id: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size is not None and self.world_size > 1

    @property
    def measures_node(self) -> bool:
        """True on the one process per node that measures CPU and memory."""
        return self.local_rank in (None, 0)

    def attributes(self) -> dict[str, str | int | bool]:
        """``host.name`` always; the job id when known; rank attributes when distributed."""
        attrs: dict[str, str | int | bool] = {A.HOST_NAME: self.host}
        if self.job_id is not None:
            attrs[JOB_ID_ATTRIBUTE] = self.job_id
        if self.distributed:
            for key, value in (
                (A.RANK, self.rank),
                (A.LOCAL_RANK, self.local_rank),
                (A.WORLD_SIZE, self.world_size),
            ):
                if value is not None:
                    attrs[key] = value
            attrs[A.NODE_LEVEL] = self.measures_node
        return attrs


def _int(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        raw = env.get(name, "").strip()
        if raw.lstrip("-").isdigit():
            return int(raw)
    return None


_TASKS = re.compile(r"^(\d+)(?:\(x(\d+)\))?$")


def slurm_tasks_on_node(tasks_per_node: str, node_id: int) -> int | None:
    """Tasks on node ``node_id`` from SLURM's compressed list, e.g. ``"2(x3),1"`` = 2,2,2,1."""
    counts: list[int] = []
    for part in tasks_per_node.split(","):
        m = _TASKS.match(part.strip())
        if m is None:
            return None
        counts.extend([int(m.group(1))] * int(m.group(2) or 1))
    return counts[node_id] if 0 <= node_id < len(counts) else None


def _slurm_local_size(env: Mapping[str, str]) -> int | None:
    per_node = _int(env, "SLURM_NTASKS_PER_NODE")
    if per_node is not None:
        return per_node
    raw = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
    if raw:
        return slurm_tasks_on_node(raw, _int(env, "SLURM_NODEID") or 0)
    return None


_Names = tuple[str, ...]
# (launcher, the variable that says it started us, rank, local rank, world size, local size)
_LAUNCHERS: tuple[tuple[str, str, _Names, _Names, _Names, _Names], ...] = (
    ("torchrun", "RANK", ("RANK",), ("LOCAL_RANK",), ("WORLD_SIZE",), ("LOCAL_WORLD_SIZE",)),
    (
        "openmpi",
        "OMPI_COMM_WORLD_RANK",
        ("OMPI_COMM_WORLD_RANK",),
        ("OMPI_COMM_WORLD_LOCAL_RANK",),
        ("OMPI_COMM_WORLD_SIZE",),
        ("OMPI_COMM_WORLD_LOCAL_SIZE",),
    ),
    (
        "pmi",
        "PMI_RANK",
        ("PMI_RANK",),
        ("MPI_LOCALRANKID", "PMI_LOCAL_RANK"),
        ("PMI_SIZE",),
        ("MPI_LOCALNRANKS", "PMI_LOCAL_SIZE"),
    ),
    (
        "slurm",
        "SLURM_PROCID",
        ("SLURM_PROCID",),
        ("SLURM_LOCALID",),
        ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"),  # the srun step's own count first
        (),
    ),
)


def rank_info(environ: Mapping[str, str]) -> RankInfo:
    """Read the innermost launcher's rank variables (precedence in the module docstring)."""
    host = socket.gethostname()
    jid = job_id(environ)
    for name, marker, rank, local, world, local_world in _LAUNCHERS:
        if _int(environ, marker) is None:
            continue
        local_size = _int(environ, *local_world) if local_world else _slurm_local_size(environ)
        return RankInfo(
            host=host,
            rank=_int(environ, *rank),
            local_rank=_int(environ, *local),
            world_size=_int(environ, *world),
            local_world_size=local_size,
            launcher=name,
            job_id=jid,
        )
    # torchrun sets LOCAL_RANK without RANK in some set-ups (and accelerate's notebook launcher)
    return RankInfo(
        host=host,
        local_rank=_int(environ, "LOCAL_RANK"),
        world_size=_int(environ, "WORLD_SIZE"),
        local_world_size=_int(environ, "LOCAL_WORLD_SIZE"),
        job_id=jid,
    )
