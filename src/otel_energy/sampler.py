"""The sampler: the only thread that touches hardware. Everyone else reads its snapshot.

It keeps, per device, cumulative monotonic energy and a bounded history of samples, so that the
energy of any recent window [t0, t1] is two binary searches and a linear interpolation away.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from otel_energy.accumulate import Track
from otel_energy.carbon import (
    Intensity,
    IntensityProvider,
    StaticIntensity,
    co2e_g,
    table_intensity,
)
from otel_energy.ranks import RankInfo, rank_info
from otel_energy.sensors.base import DeviceInfo, Sensor

_log = logging.getLogger(__name__)

Clock = Callable[[], float]
SensorSource = Sequence[Sensor] | Callable[[], Sequence[Sensor]]
SNAP_S = 1e-9
POWER_WINDOW_S = 1.0  # counter-only devices report power as the energy rate over the last second


@dataclass(frozen=True)
class DeviceState:
    """One device in a snapshot: cumulative energy (J) and CO2e (g), latest power (W)."""

    info: DeviceInfo
    energy_j: float
    power_w: float
    co2e_g: float
    failed: bool


@dataclass(frozen=True)
class Snapshot:
    """The sampler's latest state; ``t_s`` is the sampler clock (s) of the newest sample."""

    t_s: float
    devices: tuple[DeviceState, ...]
    intensity: Intensity
    pue: float


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

    @property
    def duration_s(self) -> float:
        return self.t1_s - self.t0_s

    @property
    def avg_power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else 0.0


@dataclass
class _History:
    """Samples in parallel lists, trimmed in halves so append is O(1) amortised, memory O(cap)."""

    cap: int
    t: list[float] = field(default_factory=list)
    e: list[tuple[float, ...]] = field(default_factory=list)
    c: list[float] = field(default_factory=list)

    def append(self, t: float, e: tuple[float, ...], c: float) -> None:
        self.t.append(t)
        self.e.append(e)
        self.c.append(c)
        if len(self.t) > 2 * self.cap:
            drop = len(self.t) - self.cap
            del self.t[:drop], self.e[:drop], self.c[:drop]


class Sampler:
    """Reads every sensor every ``interval_s`` on one daemon thread.

    Args:
        sensors: the sensors, or a factory called on the sampler thread (discovery does hardware
            I/O such as ``nvmlInit``, which must not run on the caller's thread).
        interval_s: seconds between reads.
        history_len: samples kept for window queries.
        clock: monotonic seconds; injectable for exact tests.
        intensity: carbon intensity provider, consulted once per sample.
        pue: power usage effectiveness applied to CO2e.
        max_failures: consecutive read errors after which a device is marked failed and skipped.
        rank: who this process is (host, rank); identity attributes of everything it reports.
    """

    def __init__(
        self,
        sensors: SensorSource,
        *,
        interval_s: float = 0.1,
        history_len: int = 6000,
        clock: Clock = time.monotonic,
        intensity: IntensityProvider | None = None,
        pue: float = 1.0,
        max_failures: int = 3,
        rank: RankInfo | None = None,
    ) -> None:
        self.rank = rank or rank_info({})
        self._source = sensors
        self._sensors: list[Sensor] | None = None if callable(sensors) else list(sensors)
        self.interval_s = interval_s
        self.clock = clock
        self._intensity = intensity or StaticIntensity(table_intensity(None))
        self.pue = pue
        self._max_failures = max_failures
        self._hist = _History(history_len)
        self._tracks: list[Track] = []
        self._errors: list[int] = []
        self._failed: list[bool] = []
        self._co2: list[float] = []
        self._latest: tuple[
            float, tuple[float, ...], tuple[float, ...], tuple[bool, ...], Intensity
        ] = (0.0, (), (), (), self._intensity.at(0.0))
        self._snapshot: Snapshot | None = Snapshot(0.0, (), self._latest[4], pue)
        self._cond = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._resolution_s = interval_s
        self._listeners: list[Callable[[float], None]] = []
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_in_child(ref))

    # ---- lifecycle ----
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def in_owner_process(self) -> bool:
        """False in a forked child (e.g. a DataLoader worker): it must report nothing."""
        return os.getpid() == self._pid

    def start(self) -> None:
        """Start the thread (idempotent; refused in a forked child)."""
        if self.running or not self.in_owner_process:
            return
        self._stop.clear()
        starter = getattr(self._intensity, "start", None)
        if callable(starter):  # a live intensity provider refreshes on its own thread
            starter()
        self._thread = threading.Thread(target=self._run, name="otel-energy-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Take a last sample, stop the thread and close the sensors (idempotent)."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout_s)
        self._thread = None
        stopper = getattr(self._intensity, "stop", None)
        if callable(stopper):
            stopper()
        for sensor in self._sensors or ():
            try:
                sensor.close()
            except Exception:  # closing must never fail a shutdown
                _log.debug("otel-energy: closing %s failed", sensor.info.hw_id, exc_info=True)

    def wait_for_sample(self, after_s: float, timeout_s: float) -> bool:
        """Ask for an immediate sample and wait until one newer than ``after_s`` exists.

        Used once at the end of a run so that its last span has a sample on both sides.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._hist.t or self._hist.t[-1] < after_s:
                if not self.running:
                    return False
                self._wake.set()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, self.interval_s))
            return True

    def _run(self) -> None:
        next_t = time.monotonic()
        while True:
            try:
                self.sample_once()
            except Exception:  # the sampler must outlive any bug in one tick
                _log.exception("otel-energy: sampler tick failed")
            if self._stop.is_set():
                return
            next_t += self.interval_s
            now = time.monotonic()
            if next_t < now:  # fell behind (GIL starvation): skip, do not burst
                next_t = now + self.interval_s
            self._wake.wait(next_t - now)
            self._wake.clear()

    # ---- sampling ----
    @property
    def sensors(self) -> list[Sensor]:
        """Sensors in use (empty until discovery has run on the sampler thread)."""
        return list(self._sensors or ())

    def _ensure_sensors(self) -> list[Sensor]:
        if self._sensors is None:
            assert callable(self._source)
            try:
                self._sensors = list(self._source())
            except Exception:
                _log.exception("otel-energy: device discovery failed; measuring nothing")
                self._sensors = []
        if len(self._tracks) != len(self._sensors):
            self._tracks = [Track(s.wrap_j) for s in self._sensors]
            self._errors = [0] * len(self._sensors)
            self._failed = [False] * len(self._sensors)
            self._co2 = [0.0] * len(self._sensors)
            periods = [s.info.update_period_s for s in self._sensors]
            self._resolution_s = max([self.interval_s, *periods])
        return self._sensors

    def sample_once(self) -> None:
        """Read every healthy sensor once and append a sample (called by the thread; tests too)."""
        sensors = self._ensure_sensors()
        t = self.clock()
        intensity = self._intensity.at(t)
        # The energy since the last sample was used during (previous, t]: charge it at the
        # intensity valid in the middle of that interval, so a change of intensity inside a span
        # is integrated interval by interval.
        previous = self._hist.t[-1] if self._hist.t else t
        g_per_kwh = self._intensity.at((previous + t) / 2).g_per_kwh
        for i, sensor in enumerate(sensors):
            if self._failed[i]:
                continue
            try:
                reading = sensor.read()
            except Exception as exc:
                self._note_failure(i, sensor, exc)
                continue
            self._errors[i] = 0
            delta = self._tracks[i].update(t, reading)
            self._co2[i] += co2e_g(delta, self.pue, g_per_kwh)
        energies = tuple(tr.energy_j for tr in self._tracks)
        with self._cond:
            self._hist.append(t, energies, sum(self._co2))
            # Raw state only: the Snapshot objects are built when someone asks (metric
            # collection, once a minute by default), not ten times a second.
            self._latest = (t, energies, tuple(self._co2), tuple(self._failed), intensity)
            self._snapshot = None
            self._cond.notify_all()
        for listener in list(self._listeners):
            try:
                listener(t)
            except Exception:  # a listener's bug must not stop sampling
                _log.exception("otel-energy: sampler listener failed")

    def add_listener(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(t_s)`` on the sampler thread after every sample (keep it short)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[float], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def intensity_provider(self) -> IntensityProvider:
        """Where the carbon intensity of each interval comes from."""
        return self._intensity

    @property
    def newest_sample_s(self) -> float:
        """Sampler-clock time of the newest sample (-inf before the first)."""
        ts = self._hist.t
        return ts[-1] if ts else float("-inf")

    def _note_failure(self, i: int, sensor: Sensor, exc: Exception) -> None:
        self._errors[i] += 1
        if self._errors[i] >= self._max_failures:
            self._failed[i] = True
            _log.warning(
                "otel-energy: %s (%s) failed %d reads in a row (%s); skipping it, other devices"
                " go on.",
                sensor.info.hw_id,
                sensor.info.name,
                self._errors[i],
                exc,
            )

    def _powers(self, t: float) -> list[float]:
        hist = self._hist
        j = max(0, bisect_right(hist.t, t - POWER_WINDOW_S) - 1)
        dt = t - hist.t[j]
        powers = []
        for i, track in enumerate(self._tracks):
            if self._failed[i]:
                powers.append(0.0)
            elif track.power_w is not None:
                powers.append(track.power_w)
            else:
                powers.append((hist.e[-1][i] - hist.e[j][i]) / dt if dt > 0 else 0.0)
        return powers

    # ---- reading ----
    def snapshot(self) -> Snapshot:
        """The latest state; empty in a forked child so that nothing is counted twice."""
        if not self.in_owner_process:
            return Snapshot(0.0, (), self._latest[4], self.pue)
        snap = self._snapshot
        if snap is None:
            with self._cond:
                t, energies, co2, failed, intensity = self._latest
                sensors = self._sensors or []
                powers = self._powers(t) if self._hist.t else [0.0] * len(sensors)
                snap = Snapshot(
                    t,
                    tuple(
                        DeviceState(s.info, energies[i], powers[i], co2[i], failed[i])
                        for i, s in enumerate(sensors)
                    ),
                    intensity,
                    self.pue,
                )
                if self._latest[0] == t:
                    self._snapshot = snap
        return snap

    @property
    def history_size(self) -> int:
        return len(self._hist.t)

    def window(self, t0_s: float, t1_s: float, extrapolate: bool = False) -> WindowEnergy:
        """Energy, CO2e and allocation uncertainty over [t0_s, t1_s] (sampler clock, s).

        Args:
            extrapolate: for a window reaching past the newest sample, add each device's latest
                power x the missing time (a provisional value that never waits for the sampler;
                ``complete`` stays False). Without it the window is clamped to the newest sample.
        """
        w = self._window(t0_s, t1_s)
        if not extrapolate or w.complete:
            return w
        snap = self.snapshot()
        gap = t1_s - max(snap.t_s, t0_s)
        if gap <= 0 or not snap.devices:
            return w
        by_type = dict(w.by_type)
        extra = 0.0
        for d in snap.devices:
            by_type[d.info.hw_type] = by_type.get(d.info.hw_type, 0.0) + d.power_w * gap
            extra += d.power_w * gap
        return replace(
            w,
            energy_j=w.energy_j + extra,
            by_type=by_type,
            co2e_g=w.co2e_g + co2e_g(extra, snap.pue, snap.intensity.g_per_kwh),
            uncertainty_j=w.uncertainty_j + extra,
        )

    def _window(self, t0_s: float, t1_s: float) -> WindowEnergy:
        with self._cond:
            hist = self._hist
            sensors = self._sensors or []
            if not hist.t or not sensors:
                return WindowEnergy(t0_s, t1_s, 0.0, {}, 0.0, 0.0, False, False, False)
            a0, b0, f0 = self._bracket(t0_s)
            a1, b1, f1 = self._bracket(t1_s)
            ea0, eb0, ea1, eb1 = hist.e[a0], hist.e[b0], hist.e[a1], hist.e[b1]
            c0 = hist.c[a0] + f0 * (hist.c[b0] - hist.c[a0])
            c1 = hist.c[a1] + f1 * (hist.c[b1] - hist.c[a1])
            complete = hist.t[0] <= t0_s and t1_s <= hist.t[-1]
        by_type: dict[str, float] = {}
        total = low = high = 0.0
        estimated = False
        for d, sensor in enumerate(sensors):
            v = (ea1[d] + f1 * (eb1[d] - ea1[d])) - (ea0[d] + f0 * (eb0[d] - ea0[d]))
            hw_type = sensor.info.hw_type
            by_type[hw_type] = by_type.get(hw_type, 0.0) + v
            total += v
            low += max(0.0, ea1[d] - (eb0[d] if f0 else ea0[d]))
            high += (eb1[d] if f1 else ea1[d]) - ea0[d]
            estimated = estimated or sensor.info.estimated
        return WindowEnergy(
            t0_s,
            t1_s,
            total,
            by_type,
            c1 - c0,
            max(total - low, high - total, 0.0),
            (t1_s - t0_s) < 2 * self._resolution_s,
            estimated,
            complete,
        )

    def _bracket(self, t: float) -> tuple[int, int, float]:
        ts = self._hist.t
        i = bisect_right(ts, t)
        if i == 0:
            return 0, 0, 0.0
        if i == len(ts):
            return i - 1, i - 1, 0.0
        a = i - 1
        # A boundary within a nanosecond of a sample is on it: no allocation, no uncertainty.
        if t - ts[a] <= SNAP_S:
            return a, a, 0.0
        if ts[i] - t <= SNAP_S:
            return i, i, 0.0
        return a, i, (t - ts[a]) / (ts[i] - ts[a])


def _forget_in_child(ref: weakref.ref[Sampler]) -> None:
    """After fork: the thread does not exist in the child; make the copy inert and lock-safe."""
    sampler = ref()
    if sampler is not None:
        sampler._thread = None
        sampler._cond = threading.Condition(threading.Lock())
        sampler._stop = threading.Event()
        sampler._wake = threading.Event()
