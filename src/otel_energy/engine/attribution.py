"""Whose joules: the job's share of each device's energy, interval by interval, in two views.

Pure maths (``share_*``, ``split``) and the per-device running totals (``Attribution``), called on
the sampler thread after each read. No I/O: the job's CPU time comes from ``sensors.processes``,
the GPUs' processes from the GPU sensors' stats, the idle baseline from ``engine.idle``.

Per interval and device, with measured energy ``E`` (J), idle power ``P_idle`` (W, or none),
interval ``dt`` (s) and the job's share ``s`` (0..1) of the device's use:

    idle    = min(E, P_idle x dt)            (0 without a baseline)
    dynamic = E - idle                        (never below zero)
    consequential (the job's dynamic energy)  = s x dynamic
    attributional (the job's attributed energy) = s x dynamic + s_held x idle

``s_held`` is the job's share of the hardware it held: 1 for an exclusive GPU, else ``s``. Over
every job on the node, attributed + unattributed = E exactly (unattributed = E - attributed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from otel_energy.carbon import co2e_g
from otel_energy.sensors.base import DeviceInfo, GpuStats

# How the job's share of a device was found (the report's and the telemetry's ``attribution``).
EXCLUSIVE = "exclusive"
"""A GPU that only the job's processes use (or none): all of it."""
CPU_TIME_SHARE = "cpu_time_share"
"""The job's CPU time over the node's busy CPU time (CPU packages, DRAM, the estimate)."""
SM_SHARE = "sm_share"
"""A GPU shared with other processes: the job's SM utilization over all processes'."""
EQUAL_SPLIT = "equal_split"
"""A shared GPU without per-process samples: the job's processes over all processes on it."""
SLICE_SHARE = "slice_share"
"""A MIG instance: the slice share of its parent GPU, the slice being the job's allocation."""
WHOLE_DEVICE = "whole_device"
"""No per-process data (a driver without it, attribution off): the whole device, as measured."""

SM_CARRY_S = 2.0
"""A shared GPU keeps its last SM share this long (s) without new samples: the driver samples
processes every 1/6 s to 1 s, so most ticks see none; after it the split is equal."""


def cpu_share(
    job_delta_s: float, node_delta_s: float, previous: float, backlog_s: float = 0.0
) -> tuple[float, float]:
    """(the job's share of the node's busy CPU time over one interval 0..1, the backlog in s).

    An interval in which the node was not busy at all keeps ``previous`` (its energy is idle
    power, which the share of the preceding busy time explains best). CPU time the job shows
    beyond the node's in one interval (a child found at the tree's next listing brings all the
    time it used since it started) is carried as ``backlog_s`` into the next intervals instead
    of being lost to the cap at 1.
    """
    due = job_delta_s + backlog_s
    if node_delta_s <= 0.0:
        return previous, due
    share = min(1.0, max(0.0, due / node_delta_s))
    return share, max(0.0, due - share * node_delta_s)


def gpu_share(
    stats: GpuStats | None, job_pids: frozenset[int], carried: tuple[float, str] | None
) -> tuple[float, str, bool]:
    """(share, method, exclusive) of one GPU for the job whose processes are ``job_pids``.

    Args:
        stats: the GPU's latest read (``processes`` None: the driver does not list them).
        carried: the last SM share (share, method) while it is young enough to carry, else None.
    """
    if stats is None or stats.processes is None:
        return 1.0, WHOLE_DEVICE, True
    others = [p for p in stats.processes if p not in job_pids]
    if not others:
        return 1.0, EXCLUSIVE, True
    ours_sm = sum(sm for pid, sm in stats.sm_by_pid if pid in job_pids)
    all_sm = sum(sm for _pid, sm in stats.sm_by_pid)
    if all_sm > 0.0:
        return ours_sm / all_sm, SM_SHARE, False
    if carried is not None:
        return carried[0], carried[1], False
    ours = len(stats.processes) - len(others)
    return ours / len(stats.processes), EQUAL_SPLIT, False


def split(
    energy_j: float, dt_s: float, idle_w: float | None, share: float, held: float
) -> tuple[float, float, float]:
    """(attributed J, the job's dynamic J, the device's idle J) of one interval's ``energy_j``."""
    idle = min(energy_j, idle_w * dt_s) if idle_w is not None and dt_s > 0.0 else 0.0
    idle = max(idle, 0.0)
    dynamic = energy_j - idle
    return share * dynamic + held * idle, share * dynamic, idle


@dataclass
class DeviceAttribution:
    """One device's running totals (J) for the job, and how its share was found."""

    attributed_j: float = 0.0
    dynamic_j: float = 0.0
    """The job's dynamic energy (consequential view)."""
    idle_j: float = 0.0
    """The whole device's idle baseline energy (not the job's share)."""
    method: str = WHOLE_DEVICE
    share: float = 1.0
    """The job's share in the latest interval."""


@dataclass(frozen=True)
class AttributionTotals:
    """The job's figures summed over devices, cumulative since the sampler started."""

    attributed_j: float
    dynamic_j: float
    idle_j: float
    attributed_co2e_g: float
    dynamic_co2e_g: float

    @property
    def row(self) -> tuple[float, float, float]:
        """(attributed J, dynamic J, attributed CO2e g): the history's column for windows."""
        return (self.attributed_j, self.dynamic_j, self.attributed_co2e_g)


class Attribution:
    """The job's running totals per device, updated once per sampler tick.

    Args:
        infos: the devices, in the order of the sampler's columns.
        idle_w: each device's idle power (W) by column, None where there is no baseline.
    """

    def __init__(self, infos: Sequence[DeviceInfo], idle_w: Sequence[float | None]) -> None:
        self.infos = list(infos)
        self.idle_w = list(idle_w)
        self.devices = [DeviceAttribution() for _ in infos]
        self.attributed_co2e_g = 0.0
        self.dynamic_co2e_g = 0.0
        self.cpu_share = 1.0
        """The job's CPU-time share in the latest interval (1 until a second CPU reading)."""
        self.others_busy = False
        """Other processes used a material share of the node (or a GPU) during the run."""
        self._last_t: list[float | None] = [None] * len(infos)
        self._sums = (0.0, 0.0, 0.0)
        """Running (attributed, dynamic, idle) J over all devices."""
        self._sm: list[tuple[float, str, float] | None] = [None] * len(infos)

    def fold(
        self,
        t: float,
        added: Iterable[tuple[int, float]],
        gpus: Sequence[GpuStats | None],
        job_pids: frozenset[int] | None,
        g_per_kwh: tuple[float, float],
        pue: float = 1.0,
    ) -> None:
        """Charge one tick's energy deltas (device column, J) to the job.

        Args:
            t: the tick's time (s, sampler clock).
            gpus: each column's latest GPU stats.
            job_pids: the job's processes (None: unknown, every GPU whole).
            g_per_kwh: intensities (attributional: average; consequential: marginal if
                configured, else average), gCO2e/kWh.
            pue: the data centre's PUE.
        """
        for i, energy in added:
            dev = self.devices[i]
            prev, self._last_t[i] = self._last_t[i], t
            dt = 0.0 if prev is None else t - prev
            share, held = self._share(i, t, gpus[i], job_pids)
            attributed, dynamic, idle = split(energy, dt, self.idle_w[i], share, held)
            dev.attributed_j += attributed
            dev.dynamic_j += dynamic
            dev.idle_j += idle
            sums = self._sums
            self._sums = (sums[0] + attributed, sums[1] + dynamic, sums[2] + idle)
            dev.share = share
            self.attributed_co2e_g += co2e_g(attributed, pue, g_per_kwh[0])
            self.dynamic_co2e_g += co2e_g(dynamic, pue, g_per_kwh[1])

    def _share(
        self, i: int, t: float, stats: GpuStats | None, job_pids: frozenset[int] | None
    ) -> tuple[float, float]:
        """(share of dynamic, share of idle) of column ``i``; sets its method."""
        info, dev = self.infos[i], self.devices[i]
        if info.hw_type != "gpu":
            dev.method = CPU_TIME_SHARE if job_pids is not None else WHOLE_DEVICE
            share = self.cpu_share if job_pids is not None else 1.0
            return share, share
        if info.method == "nvml_mig_share":
            dev.method = SLICE_SHARE
            return 1.0, 1.0
        if job_pids is None:
            dev.method = WHOLE_DEVICE
            return 1.0, 1.0
        last = self._sm[i]
        carried = (last[0], last[1]) if last is not None and t - last[2] <= SM_CARRY_S else None
        share, method, exclusive = gpu_share(stats, job_pids, carried)
        if method == SM_SHARE and stats is not None and stats.sm_by_pid:
            self._sm[i] = (share, method, t)  # fresh samples: carry from now
        if not exclusive:
            self.others_busy = True
        dev.method = method
        return share, 1.0 if exclusive else share

    def totals(self) -> AttributionTotals:
        """The job's figures summed over devices (kept as running sums: read every tick)."""
        return AttributionTotals(
            self._sums[0], self._sums[1], self._sums[2], self.attributed_co2e_g, self.dynamic_co2e_g
        )
