"""Who a Lightning process is: the trainer's rank, which Lightning's own launcher sets late."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from otel_energy.distributed.ranks import RankInfo

_log = logging.getLogger(__name__)


def rank_environ(trainer: Any, environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with the trainer's rank as torchrun would set it.

    Lightning's own DDP launcher sets ``LOCAL_RANK`` and ``WORLD_SIZE`` but not ``RANK`` (and in
    the first process sets them only once it launches the others), so the trainer, after its
    strategy set up, is the authority on who this process is.
    """
    env = dict(environ)
    world = int(getattr(trainer, "world_size", 1) or 1)
    if world > 1:
        env.update(
            RANK=str(trainer.global_rank),
            LOCAL_RANK=str(trainer.local_rank),
            WORLD_SIZE=str(world),
            LOCAL_WORLD_SIZE=str(trainer.num_devices),
        )
    return env


def check_rank(rank: RankInfo, trainer: Any) -> None:
    """Warn when the session measures this process as another rank than Lightning made it."""
    world = int(getattr(trainer, "world_size", 1) or 1)
    if world > 1 and (rank.world_size, rank.rank) != (world, trainer.global_rank):
        # The sampler predates the trainer's launch (the instrumentor's, under Lightning's own
        # DDP launcher): it keeps measuring what it discovered then.
        _log.warning(
            "otel-energy: this process's sampler measures it as rank %s of %s, but Lightning"
            " made it rank %d of %d: devices may be counted twice or without rank attributes."
            " Launch with torchrun, which sets RANK/LOCAL_RANK/WORLD_SIZE at start-up.",
            rank.rank,
            rank.world_size,
            trainer.global_rank,
            world,
        )
