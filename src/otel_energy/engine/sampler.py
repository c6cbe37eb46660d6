"""The sampler: the only thread that touches hardware. Everyone else reads its snapshot.

This module is the thread (start/stop, fork safety), the tick (read, CO2e, publish), listeners and
the snapshot. Devices across ticks: ``engine.devices``; history and window maths:
``engine.history``; who calls ``read()``: ``engine.readers``; failures: ``engine.health``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from otel_energy.carbon import (
    Intensity,
    IntensitySource,
    StaticIntensity,
    co2e_g,
    table_intensity,
)
from otel_energy.distributed.ranks import RankInfo, rank_info
from otel_energy.engine import history
from otel_energy.engine.devices import Devices
from otel_energy.engine.health import RETRY_FIRST_S, RETRY_MAX_S, SensorSource, discover
from otel_energy.engine.history import POWER_WINDOW_S, SNAP_S, History, WindowEnergy
from otel_energy.engine.job_energy import JobEnergy, RowCpu
from otel_energy.engine.readers import Abandoned, Result
from otel_energy.engine.snapshot import (
    DeviceState,
    Snapshot,
    Tick,
    capture,
    empty_tick,
    extrapolate_from,
)
from otel_energy.engine.snapshot import build as build_snapshot
from otel_energy.engine.wake import Wake
from otel_energy.sensors.base import Sensor, Unmeasured

if TYPE_CHECKING:
    from otel_energy.engine.node_share import NodeShare

__all__ = [
    "POWER_WINDOW_S",
    "RETRY_FIRST_S",
    "RETRY_MAX_S",
    "SNAP_S",
    "DeviceState",
    "Sampler",
    "SensorSource",
    "Snapshot",
    "Tick",
    "WindowEnergy",
]

_log = logging.getLogger(__name__)

WATCH_PERIOD_S = 1.0
"""How often the watchdog looks for a hung driver read (s; the read timeout if longer). A read
takes microseconds, so a look rarely finds one in progress; a hung call is given up on at the
first look after its read timeout: the other devices go without samples for at most this long
(their counters and the estimates' next reads cover the gap). Each look is a thread wake-up,
about as costly as a tick's on a loaded machine: a look per read timeout (0.2 s) was 0.04% of
a core."""

FOLD_PERIOD_S = 1.0
"""How often the sampler thread folds the rows it has read (s of the sampler clock; every tick at
intervals of a second or more; at once while someone waits for a sample, at a stop, and after
a failed or stalled read, so that the failure policy's back-off is current for the next tick).
A tick only reads the devices and keeps the row: the fold (the job's CPU time, tracks, CO2e,
attribution, history, listeners) of a second's rows runs in one burst whose code is then hot in
the caches, instead of once per tick after the training thread has evicted it; a tick's CPU on a
2-core VM was mostly that cold code (docs/performance.md, ``sampler_floors.md``). The job's CPU
time is read once per fold, so its CPU share is found a second at a time, as the GPUs' process
lists are (``engine.devices.STATS_PERIOD_S``). Windows, snapshots and listeners see a sample up
to this late; a run's end (``wait_for_sample``) and ``stop`` fold at once."""

Clock = Callable[[], float]
RawRow = tuple[float, float, list[tuple[int, Result]], list[int], bool]
"""A tick's row not yet folded: (sampler-clock s, carbon-clock s, results by device, stalled
devices, GPU stats asked for)."""
ReadHook = Callable[[float, list[tuple[int, Result]], list[int]], None]


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
        read_timeout_s: how long a driver family's read may stay out before the watchdog
            gives up on it (at its next look, every ``WATCH_PERIOD_S``) and a replacement thread
            measures the other devices (the family is then stalled, logged once, until the call
            returns; ``engine.readers``); default two intervals, at least 0.2 s.
        job: the job's share of each device (``engine.job_energy``); None: attribution off.
    """

    def __init__(
        self,
        sensors: SensorSource,
        *,
        interval_s: float = 0.1,
        history_len: int = 6000,
        clock: Clock = time.monotonic,
        intensity: IntensitySource | None = None,
        pue: float = 1.0,
        max_failures: int = 3,
        rank: RankInfo | None = None,
        unmeasured: list[Unmeasured] | None = None,
        read_timeout_s: float | None = None,
        job: JobEnergy | None = None,
    ) -> None:
        self.rank = rank or rank_info({})
        self.job = job or JobEnergy(None)
        self._source = sensors
        self._sensors: list[Sensor] | None = None if callable(sensors) else list(sensors)
        self.interval_s = interval_s
        self.clock = clock
        self._intensity = intensity or StaticIntensity(table_intensity(None))
        self.pue = pue
        self._max_failures = max_failures
        self._unmeasured = unmeasured if unmeasured is not None else []
        self._read_timeout_s = read_timeout_s or max(2 * interval_s, 0.2)
        self._hist = History(history_len)
        self._devices = Devices([], interval_s, max_failures)
        self._co2: list[float] = []
        self._samples = 0  # taken since start (the history keeps only the newest)
        self._latest: Tick = empty_tick(self._intensity.current())
        self._snapshot: Snapshot | None = Snapshot(0.0, (), self._latest.intensity, pue)
        self._cond = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._wake = Wake()
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()
        """Set by the thread that takes the last sample of a run (after ``stop``)."""
        self._watchdog: threading.Thread | None = None
        self._pid = os.getpid()
        self._listeners: list[Callable[[float], None]] = []
        self.waiters = 0
        """Threads in ``wait_for_sample`` now (a node follower then polls every interval)."""
        self.share: NodeShare | None = None
        """Set: the node's one reader reads our devices (engine.node_share); None: we do."""
        self.on_read: ReadHook | None = None
        """Called on the sampler thread with each tick's (t, results, stalled devices) as soon
        as they are read, before any fold: the node's reader publishes its rows with it."""
        self.reads = 0
        """Ticks that read the devices since start (each a row, folded now or soon)."""
        self._rows: list[RawRow] = []
        """Rows read and not yet folded (``FOLD_PERIOD_S``; the sampling thread's own)."""
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_in_child(ref))

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
        self._finished = finished = threading.Event()
        self._intensity.start()  # a live source refreshes on its own thread; the table: no-op
        self._watchdog = None
        self._spawn(finished)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Take a last sample, stop the thread and close the sensors (idempotent)."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        # The last sample is taken by whichever thread samples then: a thread stuck in a driver
        # call is replaced within a watch period, and its replacement takes it.
        deadline = time.monotonic() + timeout_s
        self._finished.wait(timeout_s)
        for ended in (self._thread, self._watchdog):  # the watchdog ends with ``finished``
            if ended is not None:
                ended.join(max(0.0, deadline - time.monotonic()))
        self._thread = self._watchdog = None
        if self.share is not None:
            self.share.close()
        self._intensity.stop()
        self.job.close()
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
            # Counted before the wake: the tick it causes folds its row at once (and a node
            # follower copies rows at the sample interval) while someone waits.
            self.waiters += 1
            self._wake.set()  # once: a sample at each notification would sample back to back
            try:
                while not self._hist.t or self._hist.t[-1] < after_s:
                    if not self.running:
                        return False
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(min(left, self.interval_s))
                return True
            finally:
                self.waiters -= 1

    def _spawn(self, finished: threading.Event) -> None:
        """Start a sampler thread for the run that ``finished`` ends (the first, or the
        replacement of one stuck in a driver call)."""
        thread = threading.Thread(
            target=self._run, args=(finished,), name="otel-energy-sampler", daemon=True
        )
        thread.start()
        self._thread = thread  # after start: ``running`` never sees a thread not yet alive

    def _watch(self, finished: threading.Event) -> None:
        """The watchdog: every ``WATCH_PERIOD_S`` (or the read timeout if longer; at the
        deadline of a read found in progress), give up on a driver read that has been out
        longer than the read timeout and start a replacement sampler thread
        (``engine.readers``). One wake-up a second, instead of a hand-off to a reader thread
        per tick."""
        timeout = self._read_timeout_s
        period = wait_s = max(timeout, WATCH_PERIOD_S)
        while not finished.wait(wait_s):
            devices = self._devices
            if devices.readers is not None and not devices.guarded:
                return  # no driver family: nothing can hang (RAPL, psutil only)
            left = devices.abandon_overdue(time.monotonic(), timeout)
            if left == 0.0:
                self._spawn(finished)
            wait_s = min(period, left) if left > 0.0 else period

    def _run(self, finished: threading.Event) -> None:
        abandoned = False
        try:
            share = self.share
            if share is not None:
                if share.follow(self):
                    return  # stopped while following
                # From now on this rank reads its own devices, for good: a replacement thread
                # (after a hung driver call) must not go back to following a ring it left.
                self.share = None
            self._loop(finished)
        except Abandoned:
            abandoned = True  # a replacement samples now; ``finished`` is its to set
        finally:
            if not abandoned:
                finished.set()

    def _loop(self, finished: threading.Event) -> None:
        if self._watchdog is None:  # with our own reads only: a rank following the node's
            self._watchdog = threading.Thread(  # reader (engine.node_share) needs none
                target=self._watch, args=(finished,), name="otel-energy-watchdog", daemon=True
            )
            self._watchdog.start()
        next_t = time.monotonic()
        while True:
            try:
                self._tick()
            except Abandoned:
                raise
            except Exception:  # the sampler must outlive any bug in one tick
                _log.exception("otel-energy: sampler tick failed")
            if self._stop.is_set():
                self._fold_rows()  # a row read while stop was asked for is the run's last
                return
            next_t += self.interval_s
            now = time.monotonic()
            # Fell behind (GIL starvation): skip, do not burst. Woken early (a sample asked for
            # by wait_for_sample): the pace restarts from it, never more than an interval ahead.
            if next_t < now or next_t > now + self.interval_s:
                next_t = now + self.interval_s
            self._wake.wait(next_t - now)
            self._wake.clear()

    @property
    def sensors(self) -> list[Sensor]:
        """Sensors in use (empty until discovery has run on the sampler thread)."""
        return list(self._sensors or ())

    def _ensure_sensors(self) -> list[Sensor]:
        if self._sensors is None:
            self._sensors = discover(self._source)
        if len(self._devices.sensors) != len(self._sensors):
            self._devices = Devices(self._sensors, self.interval_s, self._max_failures)
            self._co2 = [0.0] * len(self._sensors)
            self.job.start([s.info for s in self._sensors])
        return self._sensors

    def sample_once(self) -> None:
        """Read every healthy sensor once and fold it, with any rows read before (tests; the
        thread reads every tick and folds every ``FOLD_PERIOD_S``)."""
        self._ensure_sensors()
        self._read(self.clock())
        self._fold_rows()

    def _tick(self) -> None:
        """One tick of the thread: read, then fold the rows when one is due."""
        self._ensure_sensors()
        t = self.clock()
        trouble = self._read(t)
        # The rows cover (first - interval, t]: fold once they cover a second (half a tick
        # of jitter allowed), at every tick at intervals of a second or more. A failed or
        # stalled read folds at once: the failure policy (count, back-off, retry time) must
        # be current before the next tick decides what to read.
        covered = t - self._rows[0][0] + self.interval_s
        if (
            trouble
            or self.waiters
            or self._stop.is_set()
            or covered >= FOLD_PERIOD_S - self.interval_s / 2
        ):
            self._fold_rows()

    def _read(self, t: float) -> bool:
        """Read the devices at ``t`` (s) and keep the row; True when a device failed or its
        family is stalled."""
        results, stalled, asked = self._devices.read_row(t)  # may raise Abandoned
        self.reads += 1
        now_s = self._intensity.now_s()  # the carbon clock (wall s) when it was read
        self._rows.append((t, now_s, results, stalled, asked))
        if self.job.needs_baseline:  # the first row: the first fold's share must cover it
            self.note_job_cpu(t)
        hook = self.on_read
        if hook is not None:
            try:
                hook(t, results, stalled)
            except Exception:  # publishing must never stop sampling
                _log.exception("otel-energy: the sampler's read hook failed")
        return bool(stalled) or any(isinstance(r, Exception) for _, r in results)

    def _fold_rows(self) -> None:
        """Fold the rows read since the last fold, oldest first, after one reading of the job's
        CPU time: its share since the previous fold applies to every row (``JobEnergy.
        note_cpu``), as a node follower's batch does (engine.node_share)."""
        rows, self._rows = self._rows, []
        if not rows:
            return
        # Read now, in the tick that read the newest row: the share covers exactly these rows.
        self.note_job_cpu(rows[-1][0])
        for t, now_s, results, stalled, asked in rows:
            try:
                self.sample_at(t, results, stalled, asked=asked, cpu="held", now_s=now_s)
            except Exception:  # one bad row must not cost the ones after it
                _log.exception("otel-energy: sampler tick failed")

    def note_job_cpu(self, t: float) -> None:
        """Read the job's CPU time now, for the rows up to ``t`` (s) folded next with
        ``cpu="held"`` (``JobEnergy.note_cpu``). Never raises: after a bug (``/proc`` errors are
        ``read_cpu``'s), logged, those rows are charged at the previous share instead of being
        lost, and a node follower keeps its thread."""
        if self.job.cpu_read_at_s == t:  # read with this very row (the first row's baseline)
            return
        try:
            self.job.note_cpu(t, self.job.read_cpu())
        except Exception:
            _log.exception("otel-energy: reading the job's CPU time failed")

    def sample_at(
        self,
        t: float,
        results: list[tuple[int, Result]],
        stalled: Sequence[int] = (),
        *,
        asked: bool = False,
        cpu: RowCpu = None,
        now_s: float | None = None,
    ) -> None:
        """Fold a row read at ``t`` (s): ``results`` by device, ``stalled`` devices (see
        ``Devices.fold``); ``cpu``: the job's CPU time read with it (``JobEnergy.tick``);
        ``now_s``: the carbon clock (wall s) when it was read (None: a row of the node's reader
        (engine.node_share), whose age is known on the monotonic clock)."""
        if now_s is None:  # node sharing requires a CLOCK_MONOTONIC sampler clock
            now_s = self._intensity.now_s() - (time.monotonic() - t)
        intensity = self._intensity.at(now_s)
        # The energy since the last sample was used during (previous, t]: charge it at the
        # intensity valid in the middle of that interval (half of it before now on the wall
        # clock), so a change of intensity inside a span is integrated interval by interval.
        previous = self._hist.t[-1] if self._hist.t else t
        mid = self._intensity.at(now_s - (t - previous) / 2)
        for i, delta in (added := self._devices.fold(t, results, stalled, asked)):
            # A node meter's energy contains the components': its CO2e would count them twice.
            if not self._devices.sensors[i].info.whole_host:
                self._co2[i] += co2e_g(delta, self.pue, mid.g_per_kwh)
        self.job.tick(t, added, self._devices.gpu, (mid.g_per_kwh, mid.kind), self.pue, cpu)
        self._publish(t, intensity)

    def _publish(self, t: float, intensity: Intensity) -> None:
        """Append the sample taken at ``t`` (s), wake waiters, then call the listeners."""
        devices = self._devices
        # Raw state only, captured whole before the lock: the Snapshot objects are built when
        # someone asks (metric collection, once a minute by default), not ten times a second,
        # and from this one tick (never this tick's energy with the next one's power).
        self._samples += 1
        tick = capture(t, devices, tuple(self._co2), intensity, self._samples, self.job)
        job = (tick.job_totals or self.job.totals()).row  # once a tick, not twice
        with self._cond:
            self._hist.append(
                t, tick.energy_j, sum(tick.co2e_g), devices.faults(), devices.util, job
            )
            self._latest = tick
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
    def intensity_provider(self) -> IntensitySource:
        """Where the carbon intensity of each interval comes from."""
        return self._intensity

    @property
    def newest_sample_s(self) -> float:
        """Sampler-clock time of the newest sample (-inf before the first)."""
        return self._hist.newest_s

    def snapshot(self) -> Snapshot:
        """The latest state; empty in a forked child so that nothing is counted twice."""
        if not self.in_owner_process:
            return Snapshot(0.0, (), self._latest.intensity, self.pue)
        snap = self._snapshot
        if snap is None:
            with self._cond:
                snap = build_snapshot(self._latest, self._hist, self.pue)
                if self._latest.t_s == snap.t_s:
                    self._snapshot = snap
        return snap

    def latest_tick(self) -> Tick:
        """The newest tick's raw state (cumulative J and g per device, intensity): what a
        per-tick listener reads instead of building a snapshot. Empty in a forked child."""
        if not self.in_owner_process:
            return empty_tick(self._latest.intensity)
        return self._latest  # one reference, replaced whole under the lock: never half a tick

    @property
    def history_size(self) -> int:
        return len(self._hist.t)

    def cumulative(self, t0_s: float, t1_s: float) -> history.Cumulative:
        """The components' cumulative energy and CO2e at the samples bracketing [t0_s, t1_s]:
        many steps' energies from one lock and no window each (``history.Cumulative``)."""
        with self._cond:
            infos = [s.info for s in self._devices.sensors]
            res = self._devices.resolution_s
            return history.cumulative(self._hist, infos, t0_s, t1_s, res)

    def window(self, t0_s: float, t1_s: float, extrapolate: bool = False) -> WindowEnergy:
        """Energy, CO2e and allocation uncertainty over [t0_s, t1_s] (sampler clock, s).

        Args:
            extrapolate: for a window reaching past the newest sample, add each device's latest
                power x the missing time (a provisional value that never waits for the sampler;
                ``complete`` stays False). Without it the window is clamped to the newest sample.
        """
        with self._cond:
            infos = [s.info for s in self._devices.sensors]
            missing = tuple(u.hw_id for u in self._unmeasured)
            res = self._devices.resolution_s
            w = history.window(self._hist, infos, t0_s, t1_s, res, missing)
        if not extrapolate or w.complete:
            return w
        return extrapolate_from(w, self.snapshot())


def _forget_in_child(ref: weakref.ref[Sampler]) -> None:
    """After fork: the thread does not exist in the child; make the copy inert and lock-safe."""
    sampler = ref()
    if sampler is not None:
        sampler._thread = None
        sampler._devices.readers = None  # fresh readers: a lock may have been held at the fork
        sampler._watchdog = None  # nor does the watchdog
        sampler._finished = threading.Event()
        sampler._cond = threading.Condition(threading.Lock())
        sampler._stop = threading.Event()
        sampler._wake = Wake()
        sampler._rows = []  # the parent's rows are the parent's to fold
