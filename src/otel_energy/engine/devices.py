"""The measured devices between ticks: one read of them all, folded into cumulative energy.

Runs on the sampler thread only. Per device it keeps the energy track, the failure state
(``engine.health``), the latest GPU stats, the time of the last good read, and the integral of
GPU utilization over time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from otel_energy.engine.accumulate import Track
from otel_energy.engine.health import DeviceHealth
from otel_energy.engine.history import Faults
from otel_energy.engine.readers import Reader, Result, make_readers
from otel_energy.sensors.base import GpuStats, Reading, Sensor


class Devices:
    """The state of ``sensors`` across ticks.

    Args:
        sensors: the devices, in the order of the history's columns.
        interval_s: the sampler's interval (s).
        max_failures: see ``DeviceHealth``.
        read_timeout_s: how long a tick waits for a driver family (s).
    """

    def __init__(
        self,
        sensors: Sequence[Sensor],
        interval_s: float,
        max_failures: int,
        read_timeout_s: float,
    ) -> None:
        n = len(sensors)
        self.sensors = list(sensors)
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
        """Created at the first read (threads start there, on the sampler thread)."""
        self._read_timeout_s = read_timeout_s
        self._util_t: list[float | None] = [None] * n

    def read(
        self, t: float, results: list[tuple[int, Result]] | None = None
    ) -> list[tuple[int, float]]:
        """Read every healthy device at ``t`` (s); returns (device, energy added in J) pairs.
        ``results``: readings taken by the node's one reader (engine.node_share) instead."""
        before = list(self.health.stale)
        added: list[tuple[int, float]] = []
        utilized: set[int] = set()
        for i, result in self._read_all(t) if results is None else results:
            if isinstance(result, Exception):
                self.health.failure(i, self.sensors[i], result, t)
                continue
            added.append((i, self._fold(i, t, result)))
            if result.gpu is not None:
                self.gpu[i] = result.gpu
                if result.gpu.utilization is not None:
                    utilized.add(i)
        self._fold_utilization(t, utilized)
        self.health.count_stalls(before)
        return added

    def energies_j(self) -> tuple[float, ...]:
        """Each device's cumulative energy (J)."""
        return tuple(tr.energy_j for tr in self.tracks)

    def faults(self) -> Faults:
        """Cumulative (glitches, stalled device-ticks, filled J) over all devices."""
        return (
            sum(tr.glitches for tr in self.tracks),
            self.health.stall_ticks,
            sum(tr.filled_j for tr in self.tracks),
        )

    def close(self) -> None:
        """End the reader threads (each after the call it is blocked in, if any)."""
        for reader in self.readers or ():
            reader.close()

    def _read_all(self, t: float) -> list[tuple[int, Reading | Exception]]:
        """Every family's reads for this tick; a family still blocked in a call is skipped."""
        if self.readers is None:
            self.readers = make_readers(self.sensors)
        health = self.health
        # Driver families come first in ``readers``: their threads read while this thread reads
        # the inline families (RAPL, psutil) in ``request``.
        asked = [reader for reader in self.readers if reader.request(health.skip(reader, t))]
        # Wait only for the families asked now: one still blocked in an older call (stalled)
        # is not waited for again, so it costs the other families nothing.
        deadline = time.monotonic() + self._read_timeout_s
        for reader in asked:
            reader.wait(deadline - time.monotonic())
        out: list[tuple[int, Reading | Exception]] = []
        for reader in self.readers:
            results = reader.take()
            if results is None:
                health.stalled(reader)
                continue
            health.answered(reader)
            out.extend(results)
        return out

    def _fold(self, i: int, t: float, reading: Reading) -> float:
        """A good reading: clear failure state, update the track; returns the energy added (J)."""
        sensor = self.sensors[i]
        resumed = self.health.good(i, sensor)
        track = self.tracks[i]
        delta = track.update(t, reading, resumed=resumed)
        self.health.glitched(i, sensor, track)
        self.read_t[i] = t
        return delta

    def _fold_utilization(self, t: float, utilized: set[int]) -> None:
        """Integrate each GPU's utilization over the interval it describes (its last one).

        The driver's figure is the busy fraction of its own recent period, so it is charged to
        (previous reading, t]; a GPU without a reading this tick leaves a gap (not counted), so a
        failing or stalled GPU does not stretch an old figure over its outage.
        """
        busy_s, seen_s = self.util
        for i, prev in enumerate(self._util_t):
            if i not in utilized:
                self._util_t[i] = None
                continue
            stats = self.gpu[i]
            if prev is not None and stats is not None and stats.utilization is not None:
                busy_s += stats.utilization * (t - prev)
                seen_s += t - prev
            self._util_t[i] = t
        self.util = (busy_s, seen_s)
