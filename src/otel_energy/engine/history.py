"""The sampler's bounded history and the window maths over it: pure data, no threads, no locks.

Per sample the history holds each device's cumulative energy, the cumulative CO2e, fault counts
and GPU utilization integrals, so that the energy of any recent window [t0, t1] is two binary
searches and a linear interpolation away. The sampler calls these under its own lock.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from otel_energy.engine.sums import energy_sums
from otel_energy.sensors.base import HOST, DeviceInfo

SNAP_S = 1e-9
"""A window boundary within this many seconds of a sample is on it: no allocation, no error."""
POWER_WINDOW_S = 1.0
"""Counter-only devices report power as the energy rate over this many seconds (s)."""


@dataclass(frozen=True)
class WindowEnergy:
    """Energy over [t0_s, t1_s], allocated by linear interpolation of the cumulative series.

    Attributes:
        energy_j: total over all devices (J).
        by_type: energy per ``hw.type`` (J).
        co2e_g: CO2e of that energy, interval by interval (g).
        uncertainty_j: largest possible error of the allocation: the true energy lies within
            ``energy_j`` +/- ``uncertainty_j`` given monotone counters (J).
        interpolated: the window is shorter than two sensor periods, so its energy is an
            allocation between samples rather than a measurement.
        estimated: some of it comes from an estimate, not a counter.
        complete: samples exist on both sides of the window (False while t1 is newer than the
            newest sample or t0 older than the history).
        glitches: implausible readings dropped in or around the window (docs/faults.md).
        stalled: some device had no fresh reading for part of the window (a hung driver call,
            or failed reads being retried); a counter device recovers that energy when it
            answers again, a power device is interpolated (then ``estimated``).
        missing_devices: devices found but not measured (lost GPU, unreadable zone): the window
            lacks their energy.
        gpu_utilization: time-weighted average utilization (0..1) of the GPUs over the window,
            over every GPU-second with a reading; None when no GPU reported utilization.
        by_device: energy per device, by ``hw.id`` (J): the same allocation, so the values add
            up to ``energy_j``.
        band_j: half-width of the band the components' energy lies in (J): every series'
            method uncertainty (``DeviceInfo.uncertainty``) combined by ``method_band``, plus
            ``uncertainty_j`` (the allocation bound, added linearly: it is a hard bound, not a
            random error). An interpolated window's band is therefore wider by its allocation.
        host_energy_j: the whole node's energy from a node-level meter (J), kept apart from
            ``energy_j`` (the components are inside it); None without such a meter.
        host_band_j: the same band for ``host_energy_j`` (J).
    """

    t0_s: float
    t1_s: float
    energy_j: float
    by_type: dict[str, float]
    co2e_g: float
    uncertainty_j: float
    interpolated: bool
    estimated: bool
    complete: bool
    glitches: int = 0
    stalled: bool = False
    missing_devices: tuple[str, ...] = ()
    gpu_utilization: float | None = None
    by_device: dict[str, float] = field(default_factory=dict)
    band_j: float = 0.0
    host_energy_j: float | None = None
    host_band_j: float = 0.0

    @property
    def coverage(self) -> float | None:
        """Component energy / node energy (1): the share of the node meter the component sensors
        explain; None without a node meter or node energy."""
        if self.host_energy_j is None or self.host_energy_j <= 0:
            return None
        return self.energy_j / self.host_energy_j

    @property
    def unmeasured_j(self) -> float | None:
        """Node energy that no component sensor saw (J); None without a node meter."""
        return None if self.host_energy_j is None else self.host_energy_j - self.energy_j

    attributed_j: float | None = None
    """The job's attributed energy over the window (attributional view, J); None: unknown."""
    dynamic_j: float | None = None
    """The job's dynamic energy over the window (consequential view, J)."""
    attributed_co2e_g: float | None = None
    """The CO2e of ``attributed_j`` at the average intensity (g)."""

    @property
    def duration_s(self) -> float:
        return self.t1_s - self.t0_s

    @property
    def avg_power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else 0.0


Faults = tuple[int, int, float]
"""Cumulative fault counts: (glitches, device-ticks without a fresh reading, filled J)."""
JobTotals = tuple[float, float, float]
"""The job's cumulative (attributed J, dynamic J, attributed CO2e g)."""


@dataclass
class History:
    """Samples in parallel lists, trimmed in halves so append is O(1) amortised, memory O(cap).

    Between trims it holds up to ``2 * cap`` samples; a trim keeps the newest ``cap``.
    """

    cap: int
    t: list[float] = field(default_factory=list)
    """Sampler-clock time of each sample (s), increasing."""
    e: list[tuple[float, ...]] = field(default_factory=list)
    """Cumulative energy of each device (J)."""
    c: list[float] = field(default_factory=list)
    """Cumulative CO2e of all devices (g)."""
    q: list[Faults] = field(default_factory=list)
    busy: array[float] = field(default_factory=lambda: array("d"))
    """Cumulative GPU utilization x GPU-seconds (arrays: 16 B a sample, not a tuple's ~100 B)."""
    seen: array[float] = field(default_factory=lambda: array("d"))
    """Cumulative GPU-seconds with a utilization reading."""
    job: list[JobTotals] = field(default_factory=list)
    """The job's cumulative (attributed J, dynamic J, attributed CO2e g) (engine.attribution)."""

    def append(
        self,
        t: float,
        e: tuple[float, ...],
        c: float,
        q: Faults,
        u: tuple[float, float] = (0.0, 0.0),
        job: JobTotals = (0.0, 0.0, 0.0),
    ) -> None:
        """Add a sample at ``t`` (s): energies (J), CO2e (g), faults, utilization (s, s), the
        job's totals."""
        if self.q and self.q[-1] == q:
            q = self.q[-1]  # faults are rare: share the tuple, no memory per sample
        self.t.append(t)
        self.e.append(e)
        self.c.append(c)
        self.q.append(q)
        self.busy.append(u[0])
        self.seen.append(u[1])
        self.job.append(job)
        if len(self.t) > 2 * self.cap:
            drop = len(self.t) - self.cap
            del self.t[:drop], self.e[:drop], self.c[:drop], self.q[:drop]
            del self.busy[:drop], self.seen[:drop], self.job[:drop]

    @property
    def newest_s(self) -> float:
        """Time of the newest sample (s); -inf while empty."""
        return self.t[-1] if self.t else -math.inf

    def bracket(self, t: float) -> tuple[int, int, float]:
        """The samples (a, b) around ``t`` and its fraction f of the way from a to b.

        Before the first sample or after the newest, both are that end sample (f = 0).
        """
        ts = self.t
        i = bisect_right(ts, t)
        if i == 0:
            return 0, 0, 0.0
        if i == len(ts):
            return i - 1, i - 1, 0.0
        a = i - 1
        if t - ts[a] <= SNAP_S:
            return a, a, 0.0
        if ts[i] - t <= SNAP_S:
            return i, i, 0.0
        return a, i, (t - ts[a]) / (ts[i] - ts[a])

    def rates_w(self, t: float, window_s: float = POWER_WINDOW_S) -> list[float]:
        """Each device's energy rate (W) over the ``window_s`` before the newest sample ``t``."""
        if not self.t:
            return []
        j = max(0, bisect_right(self.t, t - window_s) - 1)
        dt = t - self.t[j]
        newest, old = self.e[-1], self.e[j]
        return [(n - o) / dt if dt > 0 else 0.0 for n, o in zip(newest, old, strict=True)]


def lerp(a: tuple[float, float], b: tuple[float, float], f: float) -> tuple[float, float]:
    """The point a fraction ``f`` of the way from ``a`` to ``b``."""
    return a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])


def empty_window(t0_s: float, t1_s: float, missing: tuple[str, ...]) -> WindowEnergy:
    """A window with no samples or no devices: nothing measured."""
    return WindowEnergy(t0_s, t1_s, 0.0, {}, 0.0, 0.0, False, False, False, missing_devices=missing)


def window(
    hist: History,
    devices: Sequence[DeviceInfo],
    t0_s: float,
    t1_s: float,
    resolution_s: float,
    missing: tuple[str, ...] = (),
) -> WindowEnergy:
    """Energy, CO2e, faults and utilization over [t0_s, t1_s], clamped to the history.

    ``devices[d]`` is the device of column ``d`` of ``hist.e``; a window shorter than two
    ``resolution_s`` (the coarsest sensor period, s) is interpolated; ``missing``: ids found but
    not measured.
    """
    if not hist.t or not devices:
        return empty_window(t0_s, t1_s, missing)
    a0, b0, f0 = hist.bracket(t0_s)
    a1, b1, f1 = hist.bracket(t1_s)
    parts = energy_sums(hist.e, devices, (a0, b0, f0), (a1, b1, f1))
    c0 = hist.c[a0] + f0 * (hist.c[b0] - hist.c[a0])
    c1 = hist.c[a1] + f1 * (hist.c[b1] - hist.c[a1])
    q0, q1 = hist.q[a0], hist.q[b1]
    util, *job = _integrals(hist, (a0, b0, f0), (a1, b1, f1))
    return WindowEnergy(
        t0_s,
        t1_s,
        parts.total_j,
        parts.by_type,
        c1 - c0,
        parts.error_j,
        (t1_s - t0_s) < 2 * resolution_s,
        any(info.estimated for info in devices) or q1[2] > q0[2],
        hist.t[0] <= t0_s and t1_s <= hist.t[-1],
        q1[0] - q0[0],
        q1[1] > q0[1],
        missing,
        util,
        parts.by_device,
        *parts.bands(),
        *job,
    )


@dataclass(frozen=True)
class Cumulative:
    """The components' cumulative energy and CO2e at the samples around a span of time: what a
    bulk completion needs to give many steps their energy with no window each.

    Linear interpolation of a cumulative series between samples is the same as piecewise-
    constant power between them, so ``at(t1) - at(t0)`` equals ``window(t0, t1).energy_j`` (and
    its ``co2e_g``) up to float rounding.

    Attributes:
        t: sample times (s, sampler clock), increasing.
        energy_j: the components' (not the node meter's) cumulative energy at each (J).
        co2e_g: the cumulative CO2e at each (g).
        resolution_s: the coarsest sensor period (s): a window shorter than twice this is
            interpolated.
    """

    t: tuple[float, ...]
    energy_j: tuple[float, ...]
    co2e_g: tuple[float, ...]
    resolution_s: float

    def at(self, t: float) -> tuple[float, float]:
        """(J, g) cumulative at ``t``, interpolated as ``History.bracket`` does (clamped to the
        ends; within ``SNAP_S`` of a sample: that sample)."""
        ts = self.t
        i = bisect_right(ts, t)
        if i == 0:
            return (self.energy_j[0], self.co2e_g[0]) if ts else (0.0, 0.0)
        a = i - 1
        if i == len(ts) or t - ts[a] <= SNAP_S:
            return self.energy_j[a], self.co2e_g[a]
        if ts[i] - t <= SNAP_S:
            return self.energy_j[i], self.co2e_g[i]
        f = (t - ts[a]) / (ts[i] - ts[a])
        e, c = self.energy_j, self.co2e_g
        return e[a] + f * (e[i] - e[a]), c[a] + f * (c[i] - c[a])


def cumulative(
    hist: History, devices: Sequence[DeviceInfo], t0_s: float, t1_s: float, resolution_s: float
) -> Cumulative:
    """The samples of ``hist`` that bracket [t0_s, t1_s] with the components' summed energy
    (``devices[d]`` is column ``d``; the node meter is left out, as in ``WindowEnergy``)."""
    ts = hist.t
    lo = max(0, bisect_right(ts, t0_s) - 1)
    hi = min(len(ts), bisect_right(ts, t1_s) + 1)
    cols = [d for d, info in enumerate(devices) if info.hw_type != HOST]
    sums = tuple(sum([row[d] for d in cols]) for row in hist.e[lo:hi])
    return Cumulative(tuple(ts[lo:hi]), sums, tuple(hist.c[lo:hi]), resolution_s)


def _integrals(
    hist: History, start: tuple[int, int, float], end: tuple[int, int, float]
) -> tuple[float | None, float, float, float]:
    """(GPU utilization, the job's attributed J, dynamic J, attributed CO2e g) between two
    brackets of ``hist``: the cumulative integrals interpolated at each end."""
    (a0, b0, f0), (a1, b1, f1) = start, end
    u0 = lerp((hist.busy[a0], hist.seen[a0]), (hist.busy[b0], hist.seen[b0]), f0)
    u1 = lerp((hist.busy[a1], hist.seen[a1]), (hist.busy[b1], hist.seen[b1]), f1)
    j0 = [x + f0 * (y - x) for x, y in zip(hist.job[a0], hist.job[b0], strict=True)]
    j1 = [x + f1 * (y - x) for x, y in zip(hist.job[a1], hist.job[b1], strict=True)]
    util = (u1[0] - u0[0]) / (u1[1] - u0[1]) if u1[1] - u0[1] > SNAP_S else None
    return util, j1[0] - j0[0], j1[1] - j0[1], j1[2] - j0[2]


@dataclass(frozen=True)
class Tail:
    """A device's state at the newest sample, for extrapolation past it.

    Attributes:
        hw_type: the device's ``hw.type``.
        power_w: its latest power (W).
        since_s: its last good read (s): a device whose family is stalled has no energy in the
            history after it (its counter recovers it later), so it is extrapolated from there.
        hw_id: its ``hw.id`` (its share of ``by_device``).
        job_share: the job's attributed and dynamic fractions of the device's energy so far
            (1): the job's part of the extrapolated tail.
    """

    hw_type: str
    power_w: float
    since_s: float
    hw_id: str = ""
    job_share: tuple[float, float] = (1.0, 1.0)


def extrapolate(
    w: WindowEnergy, tails: Iterable[Tail], newest_s: float, co2e_g: Callable[[float], float]
) -> WindowEnergy:
    """``w`` plus each device's latest power x its time from its last good read to ``w.t1_s``.

    A provisional value for a window reaching past the newest sample ``newest_s`` (s): it stays
    ``complete=False`` and the added energy counts in ``uncertainty_j``.

    Args:
        co2e_g: grams CO2e of a given energy (J) at the newest intensity and PUE.
    """
    if w.complete or w.t1_s <= max(newest_s, w.t0_s):
        return w
    by_type, by_device = dict(w.by_type), dict(w.by_device)
    extra = host_extra = job_extra = dyn_extra = 0.0
    for tail in tails:
        gap = w.t1_s - max(min(tail.since_s, newest_s), w.t0_s)
        if gap <= 0:
            continue
        if tail.hw_type == HOST:  # the node meter stays apart from the components
            host_extra += tail.power_w * gap
            continue
        by_type[tail.hw_type] = by_type.get(tail.hw_type, 0.0) + tail.power_w * gap
        by_device[tail.hw_id] = by_device.get(tail.hw_id, 0.0) + tail.power_w * gap
        extra += tail.power_w * gap
        job_extra += tail.power_w * gap * tail.job_share[0]
        dyn_extra += tail.power_w * gap * tail.job_share[1]
    job = w.attributed_j is not None  # the job's figures grow with the tail at its share
    return replace(
        w,
        energy_j=w.energy_j + extra,
        by_type=by_type,
        by_device=by_device,
        co2e_g=w.co2e_g + co2e_g(extra),
        uncertainty_j=w.uncertainty_j + extra,
        band_j=w.band_j + extra,
        host_energy_j=None if w.host_energy_j is None else w.host_energy_j + host_extra,
        host_band_j=w.host_band_j + host_extra,
        attributed_j=(w.attributed_j or 0.0) + job_extra if job else None,
        dynamic_j=(w.dynamic_j or 0.0) + dyn_extra if job else w.dynamic_j,
    )
