"""The sampler: the only thread that touches hardware. Everyone else reads its snapshot.

It keeps, per device, cumulative monotonic energy and a bounded history of samples, so that the
energy of any recent window [t0, t1] is two binary searches and a linear interpolation away.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from otel_energy.carbon import (
    Intensity,
    IntensityProvider,
    StaticIntensity,
    co2e_g,
    table_intensity,
)
from otel_energy.distributed.ranks import RankInfo, rank_info
from otel_energy.engine.accumulate import Track
from otel_energy.engine.readers import FamilyReader
from otel_energy.sensors.base import DeviceInfo, GpuStats, Reading, Sensor, Unmeasured

_log = logging.getLogger(__name__)

Clock = Callable[[], float]
SensorSource = Sequence[Sensor] | Callable[[], Sequence[Sensor]]
SNAP_S = 1e-9
POWER_WINDOW_S = 1.0  # counter-only devices report power as the energy rate over the last second
RETRY_FIRST_S = 1.0  # a failed device is retried after this long, then twice as long each time
RETRY_MAX_S = 30.0


@dataclass(frozen=True)
class DeviceState:
    """One device in a snapshot: cumulative energy (J) and CO2e (g), latest power (W)."""

    info: DeviceInfo
    energy_j: float
    power_w: float
    co2e_g: float
    failed: bool
    gpu: GpuStats | None = None
    """The latest utilization and memory of a GPU (None: not a GPU, or not reported)."""
    read_t_s: float | None = None
    """Sampler-clock time (s) of the device's last good read: older than the snapshot's ``t_s``
    while its family is stalled or its reads fail (None: never read)."""


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
        glitches: implausible readings dropped in or around the window (docs/faults.md).
        stalled: some device had no fresh reading for part of the window (a hung driver call,
            or failed reads being retried); a counter device recovers that energy when it
            answers again, a power device is interpolated (then ``estimated``).
        missing_devices: devices found but not measured (lost GPU, unreadable zone): the window
            lacks their energy.
        gpu_utilization: time-weighted average utilization (0..1) of the GPUs over the window,
            over every GPU-second with a reading; None when no GPU reported utilization.
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
    q: list[tuple[int, int, float]] = field(default_factory=list)
    """Cumulative fault counts: (glitches, device-ticks without a fresh reading, filled J)."""
    busy: array[float] = field(default_factory=lambda: array("d"))
    """Cumulative GPU utilization x GPU-seconds (arrays: 16 B a sample, not a tuple's ~100 B)."""
    seen: array[float] = field(default_factory=lambda: array("d"))
    """Cumulative GPU-seconds with a utilization reading."""

    def append(
        self,
        t: float,
        e: tuple[float, ...],
        c: float,
        q: tuple[int, int, float],
        u: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.t.append(t)
        self.e.append(e)
        self.c.append(c)
        self.q.append(q)
        self.busy.append(u[0])
        self.seen.append(u[1])
        if len(self.t) > 2 * self.cap:
            drop = len(self.t) - self.cap
            del self.t[:drop], self.e[:drop], self.c[:drop], self.q[:drop]
            del self.busy[:drop], self.seen[:drop]


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
        max_failures: consecutive read errors after which a device is marked failed; it is
            retried after ``RETRY_FIRST_S``, doubling up to ``RETRY_MAX_S``, and a counter device
            that answers again recovers the energy of the outage from its counter.
        rank: who this process is (host, rank); identity attributes of everything it reports.
        unmeasured: devices that discovery found but cannot measure; the factory may fill this
            list on the sampler thread. Windows name them in ``missing_devices``.
        read_timeout_s: how long a tick waits for a family's reads before going on without it
            (that family is then stalled, logged once); default two intervals, at least 0.2 s.
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
        unmeasured: list[Unmeasured] | None = None,
        read_timeout_s: float | None = None,
    ) -> None:
        self.rank = rank or rank_info({})
        self._source = sensors
        self._sensors: list[Sensor] | None = None if callable(sensors) else list(sensors)
        self.interval_s = interval_s
        self.clock = clock
        self._intensity = intensity or StaticIntensity(table_intensity(None))
        self.pue = pue
        self._max_failures = max_failures
        self._unmeasured = unmeasured if unmeasured is not None else []
        self._read_timeout_s = read_timeout_s or max(2 * interval_s, 0.2)
        self._hist = _History(history_len)
        self._tracks: list[Track] = []
        self._errors: list[int] = []
        self._failed: list[bool] = []
        self._retry_at: list[float] = []
        self._backoff: list[float] = []
        self._stale: list[bool] = []
        self._glitch_logged: list[bool] = []
        self._stall_ticks = 0
        self._readers: list[FamilyReader] | None = None
        self._co2: list[float] = []
        self._gpu: list[GpuStats | None] = []
        self._util_t: list[float | None] = []
        self._read_t: list[float | None] = []
        self._util = (0.0, 0.0)
        self._latest: tuple[
            float, tuple[float, ...], tuple[float, ...], tuple[bool, ...], Intensity
        ] = (0.0, (), (), (), self._intensity.current())
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
        self._intensity.start()  # a live source refreshes on its own thread; the table: no-op
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
        for reader in self._readers or ():
            reader.close()
        self._intensity.stop()
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
            n = len(self._sensors)
            self._tracks = [
                Track(s.wrap_j, s.info.max_power_w or math.inf, s.info.update_period_s)
                for s in self._sensors
            ]
            self._errors = [0] * n
            self._failed = [False] * n
            self._retry_at = [0.0] * n
            self._backoff = [0.0] * n
            self._stale = [False] * n
            self._glitch_logged = [False] * n
            self._co2 = [0.0] * n
            self._gpu = [None] * n
            self._util_t = [None] * n
            self._read_t = [None] * n
            periods = [s.info.update_period_s for s in self._sensors]
            self._resolution_s = max([self.interval_s, *periods])
            self._readers = None
        if self._readers is None:
            families: dict[str, list[tuple[int, Sensor]]] = {}
            for i, s in enumerate(self._sensors):
                families.setdefault(s.info.reader_family, []).append((i, s))
            self._readers = [FamilyReader(f, members) for f, members in families.items()]
            # A sampler dropped without stop() (tests, a one-off window) ends its reader threads.
            weakref.finalize(self, _close_readers, list(self._readers))
        return self._sensors

    def sample_once(self) -> None:
        """Read every healthy sensor once and append a sample (called by the thread; tests too)."""
        sensors = self._ensure_sensors()
        t = self.clock()
        now_s = self._intensity.now_s()  # the carbon clock: wall seconds
        intensity = self._intensity.at(now_s)
        # The energy since the last sample was used during (previous, t]: charge it at the
        # intensity valid in the middle of that interval (half of it before now on the wall
        # clock), so a change of intensity inside a span is integrated interval by interval.
        previous = self._hist.t[-1] if self._hist.t else t
        g_per_kwh = self._intensity.at(now_s - (t - previous) / 2).g_per_kwh
        before = list(self._stale)
        utilized: set[int] = set()
        for i, sensor, result in self._read_all(sensors, t):
            if isinstance(result, Exception):
                self._note_failure(i, sensor, result, t)
                continue
            delta = self._fold(i, sensor, t, result)
            self._read_t[i] = t
            self._co2[i] += co2e_g(delta, self.pue, g_per_kwh)
            if result.gpu is not None:
                self._gpu[i] = result.gpu
                if result.gpu.utilization is not None:
                    utilized.add(i)
        self._fold_utilization(t, utilized)
        # A device without a fresh reading at the start or the end of this interval (hung family,
        # failing reads, recovery) makes this interval's energy less than a measurement.
        self._stall_ticks += sum(1 for b, a in zip(before, self._stale, strict=True) if b or a)
        energies = tuple(tr.energy_j for tr in self._tracks)
        faults = (
            sum(tr.glitches for tr in self._tracks),
            self._stall_ticks,
            sum(tr.filled_j for tr in self._tracks),
        )
        if self._hist.q and self._hist.q[-1] == faults:
            faults = self._hist.q[-1]  # faults are rare: share the tuple, no memory per sample
        with self._cond:
            self._hist.append(t, energies, sum(self._co2), faults, self._util)
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

    def _fold_utilization(self, t: float, utilized: set[int]) -> None:
        """Integrate each GPU's utilization over the interval it describes (its last one).

        The driver's figure is the busy fraction of its own recent period, so it is charged to
        (previous reading, t]; a GPU without a reading this tick leaves a gap (not counted), so a
        failing or stalled GPU does not stretch an old figure over its outage.
        """
        busy_s, seen_s = self._util
        for i, prev in enumerate(self._util_t):
            if i not in utilized:
                self._util_t[i] = None
                continue
            stats = self._gpu[i]
            if prev is not None and stats is not None and stats.utilization is not None:
                busy_s += stats.utilization * (t - prev)
                seen_s += t - prev
            self._util_t[i] = t
        self._util = (busy_s, seen_s)

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

    def _read_all(
        self, sensors: list[Sensor], t: float
    ) -> list[tuple[int, Sensor, Reading | Exception]]:
        """Every family's reads for this tick; a family still blocked in a call is skipped."""
        readers = self._readers or []
        asked = [
            reader
            for reader in readers
            if reader.request(
                frozenset(i for i, _ in reader.sensors if self._failed[i] and t < self._retry_at[i])
            )
        ]
        # Wait only for the families asked now: one still blocked in an older call (stalled)
        # is not waited for again, so it costs the other families nothing.
        deadline = time.monotonic() + self._read_timeout_s
        for reader in asked:
            reader.wait(deadline - time.monotonic())
        out: list[tuple[int, Sensor, Reading | Exception]] = []
        for reader in readers:
            results = reader.take()
            if results is None:
                self._note_stall(reader)
                continue
            if reader.stall_logged:
                reader.stall_logged = False
                _log.warning(
                    "otel-energy: %s reads answer again; their devices resume (counters recover"
                    " the energy of the stall).",
                    reader.family,
                )
            out.extend((i, sensors[i], result) for i, result in results)
        return out

    def _note_stall(self, reader: FamilyReader) -> None:
        for i, _ in reader.sensors:
            self._stale[i] = True
        if not reader.stall_logged and reader.busy_since is not None:
            reader.stall_logged = True
            _log.warning(
                "otel-energy: a %s read has not returned for %.1f s (a hung driver call?);"
                " measuring the other devices meanwhile. Spans over the stall carry"
                " otel_energy.stalled=true; devices: %s.",
                reader.family,
                time.monotonic() - reader.busy_since,
                ", ".join(s.info.hw_id for _, s in reader.sensors),
            )

    def _fold(self, i: int, sensor: Sensor, t: float, reading: Reading) -> float:
        """A good reading: clear failure state, update the track; returns the energy added (J)."""
        resumed = self._stale[i]
        if self._failed[i]:
            _log.warning(
                "otel-energy: %s (%s) answers again; measuring it again.",
                sensor.info.hw_id,
                sensor.info.name,
            )
        self._errors[i], self._failed[i], self._backoff[i] = 0, False, 0.0
        self._stale[i] = False
        track = self._tracks[i]
        delta = track.update(t, reading, resumed=resumed)
        if track.glitches and not self._glitch_logged[i]:
            self._glitch_logged[i] = True
            _log.warning(
                "otel-energy: %s (%s) gave an implausible reading (more than %.0f W over the"
                " interval); dropped it, counting goes on. Spans carry otel_energy.glitches.",
                sensor.info.hw_id,
                sensor.info.name,
                track.max_power_w,
            )
        return delta

    def _note_failure(self, i: int, sensor: Sensor, exc: Exception, t: float) -> None:
        self._errors[i] += 1
        self._stale[i] = True
        if self._errors[i] < self._max_failures:
            return
        self._backoff[i] = min(2 * self._backoff[i] or RETRY_FIRST_S, RETRY_MAX_S)
        self._retry_at[i] = t + self._backoff[i]
        if not self._failed[i]:
            self._failed[i] = True
            _log.warning(
                "otel-energy: %s (%s) failed %d reads in a row (%s); retrying it with backoff"
                " (from %.0f s up to %.0f s), other devices go on.",
                sensor.info.hw_id,
                sensor.info.name,
                self._errors[i],
                exc,
                RETRY_FIRST_S,
                RETRY_MAX_S,
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
                        DeviceState(
                            s.info,
                            energies[i],
                            powers[i],
                            co2[i],
                            failed[i],
                            self._gpu[i] if i < len(self._gpu) else None,
                            self._read_t[i] if i < len(self._read_t) else None,
                        )
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
        if t1_s <= max(snap.t_s, t0_s) or not snap.devices:
            return w
        by_type = dict(w.by_type)
        extra = 0.0
        for d in snap.devices:
            # From the device's own last good read: a device whose family is stalled has had
            # no energy in the history since then (its counter recovers it later).
            since = snap.t_s if d.read_t_s is None else min(d.read_t_s, snap.t_s)
            gap = t1_s - max(since, t0_s)
            if gap > 0:
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
                missing = tuple(u.hw_id for u in self._unmeasured)
                return WindowEnergy(
                    t0_s, t1_s, 0.0, {}, 0.0, 0.0, False, False, False, missing_devices=missing
                )
            a0, b0, f0 = self._bracket(t0_s)
            a1, b1, f1 = self._bracket(t1_s)
            ea0, eb0, ea1, eb1 = hist.e[a0], hist.e[b0], hist.e[a1], hist.e[b1]
            c0 = hist.c[a0] + f0 * (hist.c[b0] - hist.c[a0])
            c1 = hist.c[a1] + f1 * (hist.c[b1] - hist.c[a1])
            complete = hist.t[0] <= t0_s and t1_s <= hist.t[-1]
            q0, q1 = hist.q[a0], hist.q[b1]
            u0 = _lerp((hist.busy[a0], hist.seen[a0]), (hist.busy[b0], hist.seen[b0]), f0)
            u1 = _lerp((hist.busy[a1], hist.seen[a1]), (hist.busy[b1], hist.seen[b1]), f1)
            missing = tuple(u.hw_id for u in self._unmeasured)
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
            estimated or q1[2] > q0[2],
            complete,
            q1[0] - q0[0],
            q1[1] > q0[1],
            missing,
            (u1[0] - u0[0]) / (u1[1] - u0[1]) if u1[1] - u0[1] > SNAP_S else None,
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


def _lerp(a: tuple[float, float], b: tuple[float, float], f: float) -> tuple[float, float]:
    return a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])


def _close_readers(readers: list[FamilyReader]) -> None:
    for reader in readers:
        reader.close()


def _forget_in_child(ref: weakref.ref[Sampler]) -> None:
    """After fork: the thread does not exist in the child; make the copy inert and lock-safe."""
    sampler = ref()
    if sampler is not None:
        sampler._thread = None
        sampler._readers = None  # reader threads do not exist in the child either
        sampler._cond = threading.Condition(threading.Lock())
        sampler._stop = threading.Event()
        sampler._wake = threading.Event()
