"""The per-device sums of a window and its uncertainty: energy by ``hw.type`` and by method, the
node meter kept apart, the allocation bound of monotone counters and the method band.

Pure functions over the history's cumulative series (``engine.history`` finds the brackets).
docs/accuracy.md states the rules and the figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from otel_energy.sensors.base import (
    HOST,
    METHOD_UNCERTAINTY,
    UNKNOWN_METHOD_UNCERTAINTY,
    DeviceInfo,
)


def method_band(by_method: dict[str, float]) -> float:
    """Half-width (J) of the band from per-method error bounds (J, each the sum over a method's
    series of relative uncertainty x |energy|).

    Within a method the errors are added linearly: series measured the same way (eight GPUs of one
    model, two RAPL packages) tend to be off in the same direction. Different methods are
    independent, so their errors are combined in quadrature (root sum of squares).
    """
    return math.sqrt(sum(e * e for e in by_method.values()))


@dataclass
class Parts:
    """One window's sums over the devices (J): components by type and method, the node meter."""

    by_type: dict[str, float] = field(default_factory=dict)
    by_device: dict[str, float] = field(default_factory=dict)  # by hw.id, components only
    by_method: dict[str, float] = field(default_factory=dict)
    total_j: float = 0.0
    error_j: float = 0.0
    host_j: float | None = None
    host_by_method: dict[str, float] = field(default_factory=dict)
    host_error_j: float = 0.0

    def bands(self) -> tuple[float, float | None, float]:
        """(components' band J, node J, node band J): each method band plus its allocation
        bound, added linearly (the bound is a hard bound, not a random error)."""
        return (
            method_band(self.by_method) + self.error_j,
            self.host_j,
            method_band(self.host_by_method) + self.host_error_j,
        )


def energy_sums(
    e: Sequence[tuple[float, ...]],
    devices: Sequence[DeviceInfo],
    start: tuple[int, int, float],
    end: tuple[int, int, float],
) -> Parts:
    """The components' J per hw.type and per method, total J, largest allocation error J, and
    the same for the node meter (kept apart), between two brackets (a, b, fraction) of the
    cumulative series ``e``."""
    (a0, b0, f0), (a1, b1, f1) = start, end
    ea0, eb0, ea1, eb1 = e[a0], e[b0], e[a1], e[b1]
    out = Parts()
    comp = [0.0, 0.0, 0.0]  # J, least J, most J of the components
    node = [0.0, 0.0, 0.0]  # the same for the node meter
    for d, info in enumerate(devices):
        v = (ea1[d] + f1 * (eb1[d] - ea1[d])) - (ea0[d] + f0 * (eb0[d] - ea0[d]))
        # Monotone counters: the least the window can hold is from the later bracketing sample
        # of t0 to the earlier one of t1, the most from the earlier of t0 to the later of t1.
        lo = max(0.0, ea1[d] - (eb0[d] if f0 else ea0[d]))
        hi = (eb1[d] if f1 else ea1[d]) - ea0[d]
        # DeviceInfo.uncertainty, inlined: this runs for every step span on the sampler thread
        rel = info.accuracy
        if rel is None:
            rel = METHOD_UNCERTAINTY.get(info.method, UNKNOWN_METHOD_UNCERTAINTY)
        if info.hw_type == HOST:
            sums, by_method, out.host_j = node, out.host_by_method, (out.host_j or 0.0) + v
        else:
            sums, by_method = comp, out.by_method
            out.by_type[info.hw_type] = out.by_type.get(info.hw_type, 0.0) + v
            out.by_device[info.hw_id] = out.by_device.get(info.hw_id, 0.0) + v
        by_method[info.method] = by_method.get(info.method, 0.0) + rel * abs(v)
        sums[0] += v
        sums[1] += lo
        sums[2] += hi
    out.total_j = comp[0]
    out.error_j = max(comp[0] - comp[1], comp[2] - comp[0], 0.0)
    out.host_error_j = max(node[0] - node[1], node[2] - node[0], 0.0)
    return out
