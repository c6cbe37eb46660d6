"""The job's energy on the sampler thread: its CPU time read once per fold, shares, idle, totals.

Glue between ``sensors.processes`` (whose CPU time), the GPU sensors' process lists, the idle
baseline (``engine.idle``) and the maths (``engine.attribution``). One instance per sampler;
the sampler reads the job's CPU time once per batch of rows (with the newest row; the first
row ever is a baseline) and ``tick`` folds each row of it at that share, so the CPU times and the
energy cover the same interval. A failure to read ``/proc`` is said once and the devices are then
charged whole.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from otel_energy.engine import idle as idle_mod
from otel_energy.engine.attribution import Attribution, AttributionTotals, cpu_share
from otel_energy.sensors.base import DeviceInfo, GpuStats
from otel_energy.sensors.processes import CpuSample, CpuTimes

_log = logging.getLogger(__name__)

JobCpu = tuple[CpuSample, frozenset[int]]
"""The job's CPU time read at a tick, and its pids then (``CpuTimes.pids``)."""
RowCpu = JobCpu | Literal["held"] | None
"""What a row carries of the job's CPU time: a reading, ``"held"`` (the latest share applies)
or None (attribution off)."""

OTHERS_MATERIAL = 0.10
"""Other processes used a material share of the node above this fraction of its busy CPU time."""


@dataclass(frozen=True)
class JobView:
    """How the job's figures were found, for reports, the summary and ``doctor``.

    Attributes:
        scope: ``process_tree``, ``cgroup`` or ``off``.
        scope_reason: which processes are the job, in words.
        baseline: the idle baseline in words.
        job_cpu_s: the job's CPU seconds since the sampler started.
        node_busy_s: the node's busy CPU seconds over the same time.
        others_busy: other processes used a material share of the node (or a GPU).
        consequential_kind: the intensity kind of the consequential view's CO2e.
    """

    scope: str
    scope_reason: str
    baseline: str
    job_cpu_s: float
    node_busy_s: float
    others_busy: bool
    consequential_kind: str = "average"

    @property
    def others_share(self) -> float:
        """Fraction of the node's busy CPU time used by other processes (0..1)."""
        if self.node_busy_s <= 0:
            return 0.0
        return max(0.0, 1.0 - self.job_cpu_s / self.node_busy_s)


class JobEnergy:
    """The job's share of every device, folded tick by tick.

    Args:
        cpu: the job's CPU-time reader (None: attribution off, every device whole).
        idle_w: configured idle power by device type (W), or None.
        cache_dir: where learned idle powers are kept (None: not kept).
        n_cpus: the node's logical CPUs (the busy fraction for idle learning).
        average_g_per_kwh: the average grid intensity (gCO2e/kWh) of the attributional view
            when the sampler's provider is marginal (WattTime); None: the provider's own.
    """

    def __init__(
        self,
        cpu: CpuTimes | None,
        idle_w: Mapping[str, float] | None = None,
        cache_dir: Path | None = None,
        n_cpus: int | None = None,
        average_g_per_kwh: float | None = None,
    ) -> None:
        self.cpu = cpu
        self._average_g_per_kwh = average_g_per_kwh
        self.consequential_kind = "average"
        """The intensity kind of the consequential view's CO2e (``marginal`` with WattTime)."""
        self._configured = idle_w
        self._cache_dir = cache_dir
        self._n_cpus = n_cpus or os.cpu_count() or 1
        self.attribution = Attribution([], [])
        self.baseline = idle_mod.Baseline((), ())
        self._learner = idle_mod.IdleLearner(0)
        self._first: CpuSample | None = None
        self._last: CpuSample | None = None
        self._last_t: float | None = None
        self._cpu_t: float | None = None
        """Sampler-clock time (s) of ``_last``, the latest CPU reading."""
        self._prev: tuple[CpuSample, float] | None = None
        """The reading before ``_last`` and its time (s): the rows between the two are folded
        at the share between them, and their views interpolate the CPU times between them."""
        self._row_t: float | None = None
        """Sampler-clock time (s) of the row folded last (``tick``)."""
        self._held: tuple[frozenset[int] | None, float | None] = (None, None)
        """The job's pids and the node's busy fraction at the latest reading (``"held"``)."""
        self._host_cols: frozenset[int] = frozenset()
        """Columns of whole-node meters: never charged to the job (they contain the rest)."""
        self._backlog_s = 0.0
        """The job's CPU seconds not yet charged (engine.attribution.cpu_share)."""

    def start(self, infos: Sequence[DeviceInfo]) -> None:
        """(Re)start the totals for these devices (after discovery, on the sampler thread)."""
        learned = idle_mod.load(self._cache_dir) if self._configured is None else {}
        self.baseline = idle_mod.baseline(infos, self._configured, learned)
        self.attribution = Attribution(infos, self.baseline.idle_w)
        self._learner = idle_mod.IdleLearner(len(infos))
        self._host_cols = frozenset(i for i, info in enumerate(infos) if info.whole_host)

    def tick(
        self,
        t: float,
        added: Iterable[tuple[int, float]],
        gpus: Sequence[GpuStats | None],
        intensity: tuple[float, str],
        pue: float,
        cpu: RowCpu = None,
    ) -> None:
        """Charge this tick's energy deltas (column, J) read at ``t`` (s) to the job.

        Args:
            intensity: the interval's grid intensity (gCO2e/kWh) and its kind (``average``,
                ``marginal``): the consequential view uses it as it is, the attributional view
                the average one.
            cpu: the job's CPU time read with the devices (``read_cpu`` at ``t``); ``"held"``:
                no CPU time of its own, the share and busy fraction of the latest reading apply
                (the sampler's rows, folded a second at a time after one ``note_cpu``, and a
                node follower's); None: none (attribution off: devices whole).
        """
        pids, busy = self._held if cpu == "held" else self._fold_cpu(t, cpu)
        self._row_t = t
        # A whole-node meter contains the components: charging it too would count them twice.
        host = self._host_cols
        added = [(i, e) for i, e in added if i not in host] if host else list(added)
        g, kind = intensity
        self.consequential_kind = kind
        average = g if kind == "average" or self._average_g_per_kwh is None else None
        attributional = average if average is not None else self._average_g_per_kwh or g
        self.attribution.fold(t, added, gpus, pids, (attributional, g), pue)
        dt = 0.0 if self._last_t is None else t - self._last_t
        self._last_t = t
        quiet = busy is not None and busy < idle_mod.QUIET_BUSY
        for i, energy in added:
            info = self.attribution.infos[i]
            stats = gpus[i]
            unused = stats is not None and stats.processes == () if info.hw_type == "gpu" else quiet
            self._learner.fold(i, energy, dt, unused)

    def read_cpu(self) -> JobCpu | None:
        """The job's CPU time and pids now (None: attribution off, or ``/proc`` unreadable,
        said once; the devices are then charged whole)."""
        if self.cpu is None:
            return None
        try:
            return self.cpu.read(), self.cpu.pids
        except (OSError, ValueError, IndexError) as exc:
            _log.warning(
                "otel-energy: cannot read the job's CPU time under %s (%s); each device is"
                " charged whole from now on. Fix: mount /proc, or set"
                " OTEL_PYTHON_ENERGY_ATTRIBUTION=off to silence this.",
                self.cpu.proc_root,
                exc,
            )
            self.cpu.close()
            self.cpu = None
            return None

    @property
    def needs_baseline(self) -> bool:
        """True until the first reading of the job's CPU time (with attribution on): the rows
        read before the next one need it as the start of their share's interval."""
        return self.cpu is not None and self._cpu_t is None

    @property
    def cpu_read_at_s(self) -> float | None:
        """Sampler-clock time (s) of the latest reading of the job's CPU time (None: none)."""
        return self._cpu_t

    def note_cpu(self, t: float, cpu: JobCpu | None) -> None:
        """The job's CPU time read at ``t`` (s) for rows folded after it with ``cpu="held"``:
        the share and busy fraction since the previous reading apply to them (one ``/proc``
        read per batch of rows, not one per row)."""
        self._fold_cpu(t, cpu)

    def _fold_cpu(self, t: float, cpu: JobCpu | None) -> tuple[frozenset[int] | None, float | None]:
        """The job's pids and the node's busy fraction over the interval since the previous
        reading, ending at ``t`` (s); updates the CPU share and what ``"held"`` rows use."""
        if cpu is None:
            self._held = (None, None)
            return self._held
        sample, pids = cpu
        busy: float | None = None
        last = self._last
        if last is not None and self._cpu_t is not None and t > self._cpu_t:
            node_delta = sample.node_busy_s - last.node_busy_s
            job_delta = max(0.0, sample.job_cpu_s - last.job_cpu_s)
            attribution = self.attribution
            attribution.cpu_share, self._backlog_s = cpu_share(
                job_delta, node_delta, attribution.cpu_share, self._backlog_s
            )
            busy = node_delta / ((t - self._cpu_t) * self._n_cpus)
        if self._first is None:
            self._first = sample
        if last is not None and self._cpu_t is not None:
            self._prev = (last, self._cpu_t)
        self._last, self._cpu_t = sample, t
        self._held = (pids, busy)
        return self._held

    def view(self) -> JobView:
        """How the figures were found and the CPU time behind them, up to the row folded last
        (its time falls between two readings when it was folded with ``"held"``)."""
        first, last = self._first, self._last
        job = node = 0.0
        if first is not None and last is not None:
            job_s, node_s = self._cpu_at_row(last)
            job, node = job_s - first.job_cpu_s, node_s - first.node_busy_s
        others = node > 0 and 1.0 - job / node > OTHERS_MATERIAL
        if self.cpu is None:
            return JobView(
                "off",
                "not attributed",
                self.baseline.describe(),
                job,
                node,
                False,
                self.consequential_kind,
            )
        return JobView(
            self.cpu.scope.method,
            self.cpu.scope.reason,
            self.baseline.describe(),
            job,
            node,
            others or self.attribution.others_busy,
            self.consequential_kind,
        )

    def _cpu_at_row(self, last: CpuSample) -> tuple[float, float]:
        """(the job's, the node's busy) cumulative CPU s at the row folded last: the readings
        around it (``last`` the latest) interpolated linearly (the share between them is
        constant: the figures the row was charged with), else the latest reading."""
        prev, t, t1 = self._prev, self._row_t, self._cpu_t
        if prev is None or t is None or t1 is None or not prev[1] <= t < t1:
            return last.job_cpu_s, last.node_busy_s
        sample, t0 = prev
        f = (t - t0) / (t1 - t0)
        return (
            sample.job_cpu_s + f * (last.job_cpu_s - sample.job_cpu_s),
            sample.node_busy_s + f * (last.node_busy_s - sample.node_busy_s),
        )

    def totals(self) -> AttributionTotals:
        return self.attribution.totals()

    def close(self) -> None:
        """Keep what this run learned about idle power for the next run; close /proc files."""
        idle_mod.save(self._cache_dir, self.attribution.infos, self._learner)
        if self.cpu is not None:
            self.cpu.close()
