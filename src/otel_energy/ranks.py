"""Who this process is in a distributed run (torchrun, accelerate, DDP), and what it measures.

Rule that makes a backend's sum over ranks count each joule once: every rank measures only its own
GPU(s); node-level devices (RAPL, estimates) are measured by local rank 0 only.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RankInfo:
    """Rank identity read from the launcher's environment (all None outside a distributed run)."""

    host: str
    rank: int | None = None
    local_rank: int | None = None
    world_size: int | None = None
    local_world_size: int | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size is not None and self.world_size > 1

    @property
    def measures_node(self) -> bool:
        """True on the one process per node that measures CPU and memory."""
        return self.local_rank in (None, 0)

    def attributes(self) -> dict[str, str | int | bool]:
        """``host.name`` always; rank attributes when the run is distributed."""
        attrs: dict[str, str | int | bool] = {"host.name": self.host}
        if self.distributed:
            for key, value in (
                ("otel_energy.rank", self.rank),
                ("otel_energy.local_rank", self.local_rank),
                ("otel_energy.world_size", self.world_size),
            ):
                if value is not None:
                    attrs[key] = value
            attrs["otel_energy.node_level"] = self.measures_node
        return attrs


def _int(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        raw = env.get(name, "").strip()
        if raw.lstrip("-").isdigit():
            return int(raw)
    return None


def rank_info(environ: Mapping[str, str]) -> RankInfo:
    """Read torchrun/accelerate (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``)."""
    return RankInfo(
        host=socket.gethostname(),
        rank=_int(environ, "RANK"),
        local_rank=_int(environ, "LOCAL_RANK"),
        world_size=_int(environ, "WORLD_SIZE"),
        local_world_size=_int(environ, "LOCAL_WORLD_SIZE"),
    )
