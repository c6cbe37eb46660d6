"""Is a run burning GPU power at low utilization? The commonest waste users want to see.

The verdict needs two facts about the same window: the GPUs' time-weighted average utilization
(the sampler integrates it like energy) and their average power compared with what they can draw.
A GPU near idle power at low utilization costs little; one drawing a good share of its power
limit while mostly waiting (input pipeline, host sync, small batches) is the case worth a warning.
"""

from __future__ import annotations

from collections.abc import Sequence

from otel_energy.engine.sampler import WindowEnergy
from otel_energy.sensors.base import DeviceInfo

LOW_UTILIZATION = 0.3
"""Average GPU utilization (0..1) below which a run counts as under-utilizing its GPUs."""

BUSY_POWER_FRACTION = 0.3
"""Average GPU power above this fraction of the GPUs' power limits is "well above idle"."""

FALLBACK_BUSY_POWER_W = 100.0
"""Per-GPU "well above idle" power (W) where the driver reports no power limit."""


def busy_power_w(gpus: Sequence[DeviceInfo]) -> float:
    """Total GPU power (W) above which the GPUs are drawing well above idle."""
    return sum(
        BUSY_POWER_FRACTION * g.power_limit_w if g.power_limit_w else FALLBACK_BUSY_POWER_W
        for g in gpus
    )


def low_utilization(w: WindowEnergy, gpus: Sequence[DeviceInfo]) -> bool | None:
    """True when the GPUs drew well above idle power at an average utilization below
    ``LOW_UTILIZATION`` over ``w``; None when utilization is unknown (no verdict)."""
    if w.gpu_utilization is None or not gpus or w.duration_s <= 0:
        return None
    gpu_power_w = w.by_type.get("gpu", 0.0) / w.duration_s
    return w.gpu_utilization < LOW_UTILIZATION and gpu_power_w > busy_power_w(gpus)
