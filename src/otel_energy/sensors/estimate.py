"""Labelled estimates for machines without RAPL: CPU utilization x TDP, memory W per GB.

Both read ``/proc`` through kept-open files (``sensors.procfs``) once per tick; psutil only
where there is no ``/proc`` (macOS).

Independent checks find errors up to ~40% for such models; every series and span built on them
carries ``otel_energy.estimated=true``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from otel_energy.sensors.base import METHOD_ESTIMATE, DeviceInfo, Reading
from otel_energy.sensors.procfs import KeptOpen, SharedRead, cpu_ticks, memory_used_b, shared_stat

DEFAULT_PROC_ROOT = "/proc"

DEFAULT_TDP_W_PER_CPU = 5.0


def default_cpu_tdp_w() -> float:
    """5 W per logical CPU this process may use (see ``OTEL_PYTHON_ENERGY_CPU_TDP_W``)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return DEFAULT_TDP_W_PER_CPU * n


@dataclass
class CpuEstimate:
    """CPU power = TDP x busy fraction since the previous read (system-wide, ``/proc/stat``).

    ``/proc/stat`` is held open and its first line parsed at each read (``sensors.procfs``);
    we difference the times ourselves instead of calling ``psutil.cpu_percent``, whose
    module-level state would be shared with (and disturbed by) the user's own calls.
    """

    tdp_w: float
    proc_root: Path = Path(DEFAULT_PROC_ROOT)
    info: DeviceInfo = field(
        default_factory=lambda: DeviceInfo(
            "estimate:cpu",
            "cpu",
            "cpu (estimated)",
            METHOD_ESTIMATE,
            estimated=True,
            update_period_s=0.0,
            family="psutil",
        )
    )
    wrap_j: float | None = None
    _last: tuple[float, float] | None = None
    _power_w: float = 0.0
    _stat: SharedRead | None = None

    def __post_init__(self) -> None:
        self._stat = shared_stat(self.proc_root)  # one read a tick, shared with attribution
        try:
            self._last = self._times()  # a baseline, so that the first read is already a rate
        except OSError:  # no /proc (macOS): psutil's portable reading, per tick
            self._stat.close()
            self._stat = None
            self._last = self._times()
        # Until CPU time has elapsed since the baseline (a read right after discovery), the
        # busy fraction since boot is the best figure there is; 0 W would be a made-up value
        # that the first interval's energy and the report's curve would then start from.
        total, idle = self._last
        if total > 0:
            self._power_w = self.tdp_w * min(1.0, max(0.0, 1.0 - idle / total))

    def _times(self) -> tuple[float, float]:
        """(all, idle) CPU time of the node in any one unit (only their ratios are used)."""
        if self._stat is not None:
            return cpu_ticks(self._stat.read())
        t = psutil.cpu_times()
        return sum(t), t.idle + getattr(t, "iowait", 0.0)

    def read(self) -> Reading:
        total, idle = self._times()
        if self._last is not None:
            d_total = total - self._last[0]
            if d_total <= 0:  # no CPU time elapsed since the last read: keep the last value
                return Reading(power_w=self._power_w)
            busy_fraction = min(1.0, max(0.0, 1.0 - (idle - self._last[1]) / d_total))
            self._power_w = self.tdp_w * busy_fraction
        self._last = (total, idle)
        return Reading(power_w=self._power_w)

    def close(self) -> None:
        """Close ``/proc/stat``."""
        if self._stat is not None:
            self._stat.close()


@dataclass
class MemoryEstimate:
    """Memory power = W per GB x GB in use (system-wide, ``/proc/meminfo`` held open, read once
    a second)."""

    w_per_gb: float
    proc_root: Path = Path(DEFAULT_PROC_ROOT)
    info: DeviceInfo = field(
        default_factory=lambda: DeviceInfo(
            "estimate:memory",
            "memory",
            "memory (estimated)",
            METHOD_ESTIMATE,
            estimated=True,
            update_period_s=0.0,
            family="psutil",
        )
    )
    wrap_j: float | None = None
    _meminfo: KeptOpen | None = None
    _power_w: float | None = None

    def __post_init__(self) -> None:
        self._meminfo = KeptOpen(self.proc_root / "meminfo")
        try:
            self._meminfo.read()
        except OSError:  # no /proc (macOS): psutil's portable reading, per tick
            self._meminfo = None

    def read(self) -> Reading:
        """Memory in use now, as power."""
        if self._meminfo is not None:
            used = memory_used_b(self._meminfo.read())
        else:
            used = int(psutil.virtual_memory().used)
        self._power_w = self.w_per_gb * used / 1e9
        return Reading(power_w=self._power_w)

    def read_energy(self) -> Reading:
        """The latest power, without I/O: memory in use is read once a second with the GPU
        stats (``engine.devices.STATS_PERIOD_S``); it moves slowly, and the model is a
        labelled estimate."""
        if self._power_w is None:
            return self.read()
        return Reading(power_w=self._power_w)

    def close(self) -> None:
        """Close ``/proc/meminfo``."""
        if self._meminfo is not None:
            self._meminfo.close()
