"""The measured devices between ticks: one read of them all, folded into cumulative energy.

Runs on the sampler thread only. Per device it keeps the energy track, the failure state
(``engine.health``), the latest GPU stats, the time of the last good read, and the integral of
GPU utilization over time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import attrgetter

from otel_energy.engine.accumulate import Track
from otel_energy.engine.health import DeviceHealth
from otel_energy.engine.history import Faults
from otel_energy.engine.readers import GuardedReader, Reader, Result, make_readers
from otel_energy.sensors.base import GpuStats, Reading, Sensor

_ENERGY = attrgetter("energy_j")
_GLITCHES = attrgetter("glitches")
_FILLED = attrgetter("filled_j")

STATS_PERIOD_S = 1.0
"""How often GPU utilization, memory and per-process figures are read (s of the sampler clock;
every tick at intervals of a second or more), and an NVML GPU's power when its energy counter
carries the energy (the counter is read every tick; without one, the power is, as the energy's
only source). NVML's own utilization is the busy fraction of its last 1/6 s to 1 s, and
per-process samples accumulate in the driver between reads, so a read per second loses little;
it leaves one NVML call per GPU per tick, from four (docs/performance.md)."""


class Devices:
    """The state of ``sensors`` across ticks.

    Args:
        sensors: the devices, in the order of the history's columns.
        interval_s: the sampler's interval (s).
        max_failures: see ``DeviceHealth``.
    """

    def __init__(
        self,
        sensors: Sequence[Sensor],
        interval_s: float,
        max_failures: int,
    ) -> None:
        n = len(sensors)
        self.sensors = list(sensors)
        self.infos = tuple(s.info for s in sensors)
        """Each device's identity, in column order (fixed for the sampler's life)."""
        self.tracks = [
            Track(s.wrap_j, s.info.max_power_w or math.inf, s.info.update_period_s) for s in sensors
        ]
        self.health = DeviceHealth(n, max_failures)
        self.gpu: list[GpuStats | None] = [None] * n
        """Each device's latest GPU stats (None: not a GPU, or never reported)."""
        self.read_t: list[float | None] = [None] * n
        """Sampler-clock time (s) of each device's last good read."""
        self.util = (0.0, 0.0)
        """Cumulative (utilization x GPU-seconds, GPU-seconds with a reading)."""
        self.resolution_s = max(
            [interval_s, *(s.info.update_period_s for s in sensors if not s.info.whole_host)]
        )
        """The coarsest period of the sampler and the component sensors (s). A node meter's
        1-10 s refresh does not make every component window an allocation: its own lag is in
        its method's uncertainty."""
        self.readers: list[Reader] | None = None
        """Created at the first read (on the sampler thread)."""
        self._interval_s = interval_s
        self._stats_t: float | None = None
        """Sampler-clock time (s) of the last tick that read GPU stats."""
        self._util_t: list[float | None] = [None] * n
        self._util_ok = [False] * n
        """The device's latest utilization may be held: read, and a good read every tick since."""
        self._gpus = [i for i, s in enumerate(sensors) if s.info.hw_type == "gpu"]

    def read_row(self, t: float) -> tuple[list[tuple[int, Result]], list[int], bool]:
        """Read every healthy device at ``t`` (s), folding nothing: (results, the devices of
        families still stalled on an abandoned thread, whether GPU stats were asked for).

        GPU stats (utilization, memory, processes) are read every ``STATS_PERIOD_S`` of the
        sampler clock (every tick at intervals of a second or more); energy every tick.
        """
        stats = self._stats_t is None or t - self._stats_t >= STATS_PERIOD_S - self._interval_s / 2
        if stats:
            self._stats_t = t
        results, stalled = self._read_all(t, stats)
        return results, stalled, stats

    def fold(
        self,
        t: float,
        results: list[tuple[int, Result]],
        stalled: Sequence[int] = (),
        asked: bool = False,
    ) -> list[tuple[int, float]]:
        """Fold a row read at ``t`` (s): ``results`` by device, ``stalled`` devices not read
        because their family's call is still out, ``asked``: GPU stats were asked for (a GPU
        answering without them reports none; a row of the node's reader carries stats when
        it read them: none is "not read"). Returns (device, energy added in J) pairs."""
        health = self.health
        before = list(health.stale)
        for i in stalled:
            health.stale[i] = True
        added: list[tuple[int, float]] = []
        for i, result in results:
            if isinstance(result, Exception):
                health.failure(i, self.sensors[i], result, t)
                continue
            added.append((i, self._fold(i, t, result)))
            gpu = result.gpu
            if gpu is not None:
                self.gpu[i] = gpu
                self._util_ok[i] = gpu.utilization is not None
            elif asked:  # asked for, none: not reported (unsupported, a transient error)
                self._util_ok[i] = False
        self._fold_utilization(t)
        health.count_stalls(before)
        return added

    def energies_j(self) -> tuple[float, ...]:
        """Each device's cumulative energy (J)."""
        return tuple(map(_ENERGY, self.tracks))

    def faults(self) -> Faults:
        """Cumulative (glitches, stalled device-ticks, filled J) over all devices."""
        tracks = self.tracks
        return (sum(map(_GLITCHES, tracks)), self.health.stall_ticks, sum(map(_FILLED, tracks)))

    @property
    def guarded(self) -> bool:
        """True when some family's reads can hang (a driver: the sampler then runs a watchdog)."""
        return any(isinstance(r, GuardedReader) for r in self.readers or ())

    def abandon_overdue(self, now: float, timeout_s: float) -> float:
        """The watchdog's look (on its own thread): 0.0 when a driver read has been out longer
        than ``timeout_s`` at ``now`` (``time.monotonic()`` s), its thread then given up on
        (``engine.readers``; the caller starts a replacement); else the seconds until the
        oldest read out would be (inf: none out)."""
        return min(
            (
                r.abandon_if_overdue(now, timeout_s)
                for r in self.readers or ()
                if isinstance(r, GuardedReader)
            ),
            default=math.inf,
        )

    def _read_all(
        self, t: float, stats: bool
    ) -> tuple[list[tuple[int, Reading | Exception]], list[int]]:
        """Every family's reads for this tick (with GPU stats when ``stats``), and the devices
        of each family whose call is still out on an abandoned thread (stalled: skipped
        without waiting)."""
        readers = self.readers
        if readers is None:
            readers = self.readers = make_readers(self.sensors)
        health = self.health
        out: list[tuple[int, Reading | Exception]] = []
        stalled: list[int] = []
        for reader in readers:
            results = reader.read(health.skip(reader, t), stats)  # may raise Abandoned
            if results is None:
                health.stalled(reader)
                stalled.extend(i for i, _ in reader.sensors)
                continue
            if reader.stall_logged:
                health.answered(reader)
            out.extend(results)
        return out, stalled

    def _fold(self, i: int, t: float, reading: Reading) -> float:
        """A good reading: clear failure state, update the track; returns the energy added (J)."""
        sensor = self.sensors[i]
        resumed = self.health.good(i, sensor)
        track = self.tracks[i]
        delta = track.update(t, reading, resumed=resumed)
        self.health.glitched(i, sensor, track)
        self.read_t[i] = t
        return delta

    def _fold_utilization(self, t: float) -> None:
        """Integrate each GPU's utilization over this tick's interval.

        The driver's figure is the busy fraction of its own recent period, so a fresh reading is
        charged to (previous tick, t]; between stats reads (``STATS_PERIOD_S``) the latest one is
        held for the ticks that follow. A GPU without a good read this tick (failing, stalled)
        leaves a gap (not counted) and its held figure is dropped, so that an old figure is never
        stretched over an outage: counting resumes from its next stats read.
        """
        busy_s, seen_s = self.util
        for i in self._gpus:
            prev = self._util_t[i]
            if self.read_t[i] != t:  # no good read this tick: a gap, the held figure dropped
                self._util_t[i], self._util_ok[i] = None, False
                continue
            if not self._util_ok[i]:
                self._util_t[i] = None
                continue
            stats = self.gpu[i]
            if prev is not None and stats is not None and stats.utilization is not None:
                busy_s += stats.utilization * (t - prev)
                seen_s += t - prev
            self._util_t[i] = t
        self.util = (busy_s, seen_s)
