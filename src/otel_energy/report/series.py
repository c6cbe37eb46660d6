"""The run's one recorded series: cumulative energy per device and CO2e over time, bounded.

One store for every writer (``otel-energy run``'s report, a Trainer run's or an instrumented
process's ledger row): a sampler listener that keeps, per tick, a reference to the sampler's newest
``Tick`` fields (no snapshot is built), and one decimation (``halve``): when the store passes
``max_points`` it keeps every other point from then on. Cumulative series survive decimation
exactly (the difference between two kept points is the energy between them), so power is derived
from them: ``power_w()[d][i]`` is device ``d``'s average power over the interval that ends at
``t_s[i]`` (J / s), never an instantaneous reading and never a made-up zero at the start.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Sequence
from typing import TypeVar

from otel_energy.engine.sampler import Sampler, Tick
from otel_energy.sensors.base import DeviceInfo

T = TypeVar("T")

RUN_POINTS = 2000
"""Points the run's store keeps at most (the report's timeline)."""
LEDGER_POINTS = 400
"""Points a ledger row keeps at most: enough for a readable chart, ~10 kB a row."""


def halve(seq: Sequence[T]) -> list[T]:
    """The one decimation: every other point, and always the last (the run's end)."""
    kept = list(seq[::2])
    if seq and (len(seq) - 1) % 2:
        kept.append(seq[-1])
    return kept


def at_info(tick: Tick) -> list[tuple[DeviceInfo, float]]:
    """(device, cumulative J) of every device of ``tick``."""
    return list(zip(tick.infos, tick.energy_j, strict=True))


def thinned(t_s: Sequence[float], max_points: int) -> list[int]:
    """Indices of the points ``halve`` keeps, applied until at most ``max_points`` are left."""
    idx = list(range(len(t_s)))
    while len(idx) > max(max_points, 2):
        idx = halve(idx)
    return idx


class RunSeries:
    """Records the run from now on: the sampler's ticks as cumulative J per device and g CO2e
    since the first tick (the zero), in at most ``max_points`` points.

    Args:
        sampler: the process's sampler (its listener is called on the sampler thread).
        max_points: the bound of the store (``RUN_POINTS``).

    Attributes:
        first: the tick that is the zero (energies count from it; a device it lacks counts
            from 0 J).
        last: the newest tick recorded.
        origin_s: the zero on the sampler clock (s).
    """

    def __init__(self, sampler: Sampler, max_points: int = RUN_POINTS) -> None:
        self.sampler = sampler
        self.max_points = max_points
        self._start_s = sampler.clock()
        """When the run began (sampler clock, s). The zero is the newest sample read at or
        before it: the sampler folds a second of samples at a time, so a newer one than its
        newest tick now may still come (each such one replaces the zero)."""
        self._zeroed = False
        self._lock = threading.Lock()  # the listener (sampler thread) against readers
        self._open = True
        self._set_zero(sampler.latest_tick())
        sampler.add_listener(self._on_tick)

    def _set_zero(self, first: Tick) -> None:
        """Make ``first`` the zero and the series' first point (its only one)."""
        self.first = first
        self.last = first
        self.origin_s = first.t_s if first.infos else self._start_s
        self.infos: dict[str, DeviceInfo] = {}
        """Every device seen, by ``hw.id``, in the order of ``energy_j``'s columns."""
        self.t_s: list[float] = []
        """Seconds since the zero."""
        self.energy_j: list[tuple[float, ...]] = []
        """Cumulative J per device since the zero (columns: ``infos``; a newer device's column
        is missing from older points: 0 J)."""
        self.co2e_g: list[float] = []
        """Cumulative g CO2e of all devices since the zero."""
        self.host_j: list[float] = []
        """Cumulative J of the whole-node meter since the zero (0 J at every point without
        one). Kept apart from ``energy_j``: the node contains the components (``hw.host.*``)."""
        self.job_j: list[float] = []
        """The job's cumulative attributed J since the zero (engine.attribution)."""
        self._base_job = _job_j(self.first)
        self._base_j: dict[str, float] = {}
        self._base_g = sum(self.first.co2e_g)
        self._stride = 1
        self._seen = 0
        if first.infos:
            self._append(first)

    # ---- recording (sampler thread) ----
    def _on_tick(self, _t_s: float) -> None:
        tick = self.sampler.latest_tick()
        with self._lock:
            if not self._zeroed and tick.infos:
                if tick.t_s <= self._start_s:  # read before the run began, folded since
                    self._set_zero(tick)
                    return
                self._zeroed = True
            self.last = tick
            self._seen += 1
            if (self._seen - 1) % self._stride:
                return
            self._append(tick)
            if len(self.t_s) > self.max_points:
                self._stride *= 2
                self.t_s, self.energy_j, self.co2e_g, self.host_j, self.job_j = (
                    halve(self.t_s),
                    halve(self.energy_j),
                    halve(self.co2e_g),
                    halve(self.host_j),
                    halve(self.job_j),
                )

    def _append(self, tick: Tick) -> None:
        if not tick.infos:
            return
        for info, e in zip(tick.infos, tick.energy_j, strict=True):
            if info.hw_id not in self._base_j:
                if not info.whole_host:  # the node meter is no column: it contains them
                    self.infos[info.hw_id] = info
                self._base_j[info.hw_id] = e if tick is self.first else 0.0
        at = {info.hw_id: e for info, e in zip(tick.infos, tick.energy_j, strict=True)}
        t = tick.t_s - self.origin_s
        if self.t_s and t <= self.t_s[-1]:  # the same tick again (close after the last one)
            self.t_s.pop(), self.energy_j.pop(), self.co2e_g.pop(), self.host_j.pop()
            self.job_j.pop()
        self.t_s.append(t)
        self.energy_j.append(tuple(at.get(k, 0.0) - self._base_j[k] for k in self.infos))
        self.co2e_g.append(sum(tick.co2e_g) - self._base_g)
        node = [e - self._base_j[i.hw_id] for i, e in at_info(tick) if i.whole_host]
        self.host_j.append(sum(node))
        self.job_j.append(_job_j(tick) - self._base_job)

    def close(self) -> RunSeries:
        """Stop listening and add the newest tick whatever the stride: the series ends at the
        run's total. Idempotent."""
        if self._open:
            self._open = False
            self.sampler.remove_listener(self._on_tick)
            with self._lock:
                self.last = self.sampler.latest_tick()
                self._append(self.last)
        return self

    # ---- reading ----
    @property
    def duration_s(self) -> float:
        """From the zero to the newest recorded tick (s)."""
        return max(0.0, self.last.t_s - self.origin_s)

    def device_energy_j(self, whole_host: bool = False) -> dict[str, float]:
        """Each component device's J from the zero to the newest tick (exact: two ticks, no
        decimation); ``whole_host``: the node meter's series instead."""
        with self._lock:
            last = self.last
        base = {i.hw_id: e for i, e in zip(self.first.infos, self.first.energy_j, strict=True)}
        return {
            i.hw_id: e - base.get(i.hw_id, 0.0)
            for i, e in zip(last.infos, last.energy_j, strict=True)
            if i.whole_host == whole_host
        }

    def device_co2e_g(self) -> dict[str, float]:
        """Each device's g CO2e from the zero to the newest tick."""
        base = {i.hw_id: g for i, g in zip(self.first.infos, self.first.co2e_g, strict=True)}
        last = self.last
        return {
            i.hw_id: g - base.get(i.hw_id, 0.0)
            for i, g in zip(last.infos, last.co2e_g, strict=True)
            if not i.whole_host
        }

    def totals(self) -> list[float]:
        """The cumulative J of all devices at each point."""
        return [sum(e) for e in self.energy_j]

    def power_w(self, indices: Sequence[int] | None = None) -> dict[str, list[float]]:
        """Each device's average power (W) over the interval ending at each point of
        ``indices`` (all points by default); the first point takes the first interval's."""
        idx = list(range(len(self.t_s))) if indices is None else list(indices)
        out: dict[str, list[float]] = {k: [] for k in self.infos}
        for n in range(1, len(idx)):
            a, b = idx[n - 1], idx[n]
            dt = self.t_s[b] - self.t_s[a]
            ea, eb = self.energy_j[a], self.energy_j[b]
            for col, key in enumerate(self.infos):
                de = (eb[col] if col < len(eb) else 0.0) - (ea[col] if col < len(ea) else 0.0)
                out[key].append(de / dt if dt > 0 else 0.0)
        for values in out.values():
            if values:
                values.insert(0, values[0])
        return out

    def host_power_w(self) -> list[float]:
        """The node meter's average power (W) over the interval ending at each point."""
        ts, hj = self.t_s, self.host_j
        out = [
            (hj[i] - hj[i - 1]) / (ts[i] - ts[i - 1]) if ts[i] > ts[i - 1] else 0.0
            for i in range(1, len(ts))
        ]
        return out[:1] + out if out else []

    def cumulative(self, t_s: float) -> tuple[float, float]:
        """(J, g) since the zero at ``t_s`` (s), interpolated between the points around it."""
        ts = self.t_s
        if not ts:
            return 0.0, 0.0
        i = bisect_right(ts, t_s)
        if i == 0:
            return sum(self.energy_j[0]), self.co2e_g[0]
        if i == len(ts):
            return sum(self.energy_j[-1]), self.co2e_g[-1]
        f = (t_s - ts[i - 1]) / (ts[i] - ts[i - 1])
        e0, e1 = sum(self.energy_j[i - 1]), sum(self.energy_j[i])
        c0, c1 = self.co2e_g[i - 1], self.co2e_g[i]
        return e0 + f * (e1 - e0), c0 + f * (c1 - c0)

    def between(self, t0_s: float, t1_s: float) -> tuple[float, float]:
        """(J, g) used over [t0_s, t1_s] (s since the zero)."""
        e0, c0 = self.cumulative(t0_s)
        e1, c1 = self.cumulative(t1_s)
        return e1 - e0, c1 - c0


def _job_j(tick: Tick) -> float:
    """The job's cumulative attributed J at ``tick`` (the devices' own without accounting)."""
    if tick.attribution:
        return sum(tick.attributed_j)
    return sum(e for info, e in at_info(tick) if not info.whole_host)  # the node meter holds them
