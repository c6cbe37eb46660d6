"""Each device's idle baseline: configured, learned from earlier runs, or none (and said so).

A configured baseline (``OTEL_PYTHON_ENERGY_IDLE_POWER_W``, per device type) wins. Otherwise the
baseline is what earlier runs learned on this machine, kept per device (``hw.id``) in
``idle-power.json`` under the cache directory: the lowest power a device held for
``SUSTAIN_S`` seconds while nothing used it (a GPU with no compute process; CPU and memory while
the node's CPUs were under ``QUIET_BUSY`` busy). A run starts with the stored value and keeps it
for its whole length (so its figures are consistent); what it learns is written at the end for
the next run. Without either, idle is zero and all energy counts as dynamic.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from otel_energy.sensors.base import DeviceInfo

_log = logging.getLogger(__name__)

SUSTAIN_S = 5.0
"""A learned idle power is an average over at least this long (s): one quiet tick is noise."""
QUIET_BUSY = 0.05
"""The node's CPUs count as unused below this busy fraction (0..1)."""
FILE_NAME = "idle-power.json"

SOURCE_CONFIGURED = "configured"
SOURCE_LEARNED = "learned"
SOURCE_NONE = "none"


@dataclass(frozen=True)
class Baseline:
    """The idle power of each device column (W, None: none) and where each came from."""

    idle_w: tuple[float | None, ...]
    sources: tuple[str, ...]

    def describe(self) -> str:
        """One line for the summary and ``doctor``."""
        kinds = sorted(set(self.sources))
        if kinds == [SOURCE_NONE] or not kinds:
            return (
                "no idle baseline (set OTEL_PYTHON_ENERGY_IDLE_POWER_W, e.g."
                " cpu=10,memory=2,gpu=60, or let a run on an idle machine learn it): all energy"
                " counts as dynamic"
            )
        return "idle baseline " + ", ".join(kinds)


def baseline(
    infos: Sequence[DeviceInfo],
    configured: Mapping[str, float] | None,
    learned: Mapping[str, float],
) -> Baseline:
    """Each device's idle power: configured by type, else learned by ``hw.id``, else none."""
    idle: list[float | None] = []
    sources: list[str] = []
    for info in infos:
        if configured is not None and info.hw_type in configured:
            idle.append(configured[info.hw_type])
            sources.append(SOURCE_CONFIGURED)
        elif info.hw_id in learned:
            idle.append(learned[info.hw_id])
            sources.append(SOURCE_LEARNED)
        else:
            idle.append(None)
            sources.append(SOURCE_NONE)
    return Baseline(tuple(idle), tuple(sources))


class IdleLearner:
    """The lowest power each device held for ``SUSTAIN_S`` while unused, over one run.

    Args:
        n: number of device columns.
    """

    def __init__(self, n: int) -> None:
        self.lowest_w: list[float | None] = [None] * n
        self._quiet: list[tuple[float, float]] = [(0.0, 0.0)] * n  # (J, s) of the quiet spell

    def fold(self, i: int, energy_j: float, dt_s: float, unused: bool) -> None:
        """One interval of column ``i``: ``energy_j`` over ``dt_s`` (s), ``unused`` or not."""
        if not unused or dt_s <= 0.0:
            self._quiet[i] = (0.0, 0.0)
            return
        e, s = self._quiet[i]
        e, s = e + energy_j, s + dt_s
        if s >= SUSTAIN_S:
            power = e / s
            low = self.lowest_w[i]
            self.lowest_w[i] = power if low is None else min(low, power)
            e, s = 0.0, 0.0
        self._quiet[i] = (e, s)


def load(cache_dir: Path | None) -> dict[str, float]:
    """The learned idle powers (W by ``hw.id``); empty when none or unreadable (said once)."""
    if cache_dir is None:
        return {}
    path = cache_dir / FILE_NAME
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _log.warning("otel-energy: ignoring the learned idle powers in %s (%s).", path, exc)
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        str(k): float(v) for k, v in raw.items() if isinstance(v, (int, float)) and 0 <= v < 1e5
    }


def save(cache_dir: Path | None, infos: Sequence[DeviceInfo], learner: IdleLearner) -> None:
    """Merge this run's lowest quiet powers into the cache (atomic; never raises)."""
    if cache_dir is None:
        return
    found = {
        info.hw_id: low
        for info, low in zip(infos, learner.lowest_w, strict=True)
        if low is not None and not info.estimated
    }
    if not found:
        return
    try:
        merged = load(cache_dir)
        for hw_id, low in found.items():
            merged[hw_id] = min(low, merged.get(hw_id, low))
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".idle-", dir=cache_dir)
        with os.fdopen(fd, "w") as f:
            json.dump(merged, f, indent=1, sort_keys=True)
        os.replace(tmp, cache_dir / FILE_NAME)
    except OSError as exc:
        _log.warning(
            "otel-energy: could not keep the learned idle powers in %s (%s).", cache_dir, exc
        )
