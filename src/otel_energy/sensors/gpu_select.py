"""Which GPUs this process measures: the runtimes' visibility variables, then one GPU per rank.

Shared by the NVML and AMD sensors. Pure functions of the enumerated GPUs and the environment:
no driver calls here. ``select_cuda_visible`` applies ``CUDA_VISIBLE_DEVICES`` as CUDA does,
``select_rocm_visible`` applies ``ROCR_``/``HIP_``/``CUDA_VISIBLE_DEVICES`` as ROCm does, and
``select_for_rank`` keeps any GPU from being counted by two ranks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from otel_energy.distributed.ranks import RankInfo

_log = logging.getLogger(__name__)


class CudaGpu(Protocol):
    """What CUDA's selection needs of an enumerated NVIDIA GPU."""

    @property
    def uuid(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def mig_uuids(self) -> tuple[str, ...]: ...


class RocmDie(Protocol):
    """What ROCm's selection needs of an enumerated AMD die."""

    @property
    def uuid(self) -> str: ...


G = TypeVar("G", bound=CudaGpu)
D = TypeVar("D", bound=RocmDie)
T = TypeVar("T")


def select_cuda_visible(
    gpus: Sequence[G], environ: Mapping[str, str]
) -> list[tuple[G, tuple[str, ...]]]:
    """Apply ``CUDA_VISIBLE_DEVICES`` the way CUDA does; returns (gpu, selected MIG uuids) pairs.

    Entries are CUDA ordinals, ``GPU-``/``MIG-`` UUIDs or unique UUID prefixes; CUDA ignores every
    entry after the first invalid one, and so do we. A MIG instance selects its parent GPU once.
    """
    raw = environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return [(g, ()) for g in gpus]
    if (
        environ.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST") != "PCI_BUS_ID"
        and len({g.name for g in gpus}) > 1
    ):
        _log.warning(
            "otel-energy: mixed GPU models with CUDA_DEVICE_ORDER unset: CUDA orders them fastest"
            " first, which NVML cannot see; assuming PCI order. Set CUDA_DEVICE_ORDER=PCI_BUS_ID"
            " or use GPU UUIDs in CUDA_VISIBLE_DEVICES for exact mapping."
        )
    chosen: dict[str, tuple[G, list[str]]] = {}
    for entry in (e.strip() for e in raw.split(",")):
        gpu, mig = _match_cuda(gpus, entry)
        if gpu is None:
            break
        _, migs = chosen.setdefault(gpu.uuid, (gpu, []))
        if mig:
            migs.append(mig)
    return [(g, tuple(m)) for g, m in chosen.values()]


def _match_cuda(gpus: Sequence[G], entry: str) -> tuple[G | None, str | None]:
    if entry.lstrip("-").isdigit():
        ordinal = int(entry)
        return (gpus[ordinal], None) if 0 <= ordinal < len(gpus) else (None, None)
    if entry.startswith("MIG-"):
        for g in gpus:
            for mig in g.mig_uuids:
                if mig.startswith(entry):
                    return g, mig
        return None, None
    prefix = entry if entry.startswith("GPU-") else "GPU-" + entry
    hits = [g for g in gpus if g.uuid.startswith(prefix)]
    return (hits[0], None) if len(hits) == 1 else (None, None)


def _entries(raw: str) -> list[str]:
    return [e.strip() for e in raw.split(",")]


def _pick(dies: Sequence[D], entries: list[str]) -> list[D]:
    """Indexes or UUIDs into ``dies``; like the runtimes, stop at the first invalid entry."""
    chosen: list[D] = []
    for entry in entries:
        hit: D | None = None
        if entry.lstrip("-").isdigit():
            ordinal = int(entry)
            hit = dies[ordinal] if 0 <= ordinal < len(dies) else None
        elif entry:
            key = entry.removeprefix("GPU-").lower()
            hits = [d for d in dies if d.uuid.lower().removeprefix("gpu-").startswith(key)]
            hit = hits[0] if len(hits) == 1 else None
        if hit is None:
            break
        if hit not in chosen:
            chosen.append(hit)
    return chosen


def select_rocm_visible(dies: Sequence[D], environ: Mapping[str, str]) -> list[D]:
    """The dies this process can use, as ROCm applies its variables.

    ``ROCR_VISIBLE_DEVICES`` (the ROCm runtime) filters the whole list first; then
    ``HIP_VISIBLE_DEVICES`` (or, when that is unset, ``CUDA_VISIBLE_DEVICES``, which HIP honours
    as an alias) indexes into what is left. Entries are ordinals or UUIDs (a unique prefix).
    """
    visible = list(dies)
    rocr = environ.get("ROCR_VISIBLE_DEVICES")
    if rocr is not None:
        visible = _pick(visible, _entries(rocr))
    hip = environ.get("HIP_VISIBLE_DEVICES", environ.get("CUDA_VISIBLE_DEVICES"))
    if hip is not None:
        visible = _pick(visible, _entries(hip))
    return visible


def select_for_rank(visible: list[T], rank: RankInfo | None, explicit_visible: bool) -> list[T]:
    """The GPU(s) this rank measures, so that no GPU is counted by two ranks (NVML and AMD).

    One GPU per local rank (``cuda:LOCAL_RANK``, the torchrun/accelerate convention) when there
    are at least as many visible GPUs as local ranks; the single GPU a launcher assigned through
    ``CUDA_VISIBLE_DEVICES``; otherwise (ranks sharing GPUs) local rank 0 measures them all.
    """
    if rank is None or rank.local_rank is None:
        return visible
    local_ranks = rank.local_world_size or (rank.local_rank + 1)
    if len(visible) >= local_ranks and len(visible) > rank.local_rank:
        return [visible[rank.local_rank]]
    if len(visible) == 1 and explicit_visible and local_ranks > 1:
        return visible
    return visible if rank.local_rank == 0 else []
