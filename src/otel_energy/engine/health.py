"""Discovery and the failure policy of the sampler's devices: retry with backoff, stall marking.

Everything here runs on the sampler thread. It decides which devices are read at a tick, what a
failed or stalled read means for a device, and writes the one log line each fault deserves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from otel_energy.engine.accumulate import Track
from otel_energy.engine.readers import Reader
from otel_energy.sensors.base import Sensor

_log = logging.getLogger(__name__)

RETRY_FIRST_S = 1.0  # a failed device is retried after this long, then twice as long each time
RETRY_MAX_S = 30.0

_NONE: frozenset[int] = frozenset()

SensorSource = Sequence[Sensor] | Callable[[], Sequence[Sensor]]


def discover(source: SensorSource) -> list[Sensor]:
    """The sensors of ``source``: a list, or a factory run now (on the sampler thread).

    A failing factory measures nothing rather than end the sampler.
    """
    if not callable(source):
        return list(source)
    try:
        return list(source())
    except Exception:
        _log.exception("otel-energy: device discovery failed; measuring nothing")
        return []


class DeviceHealth:
    """Per-device failure state: consecutive errors, failed/backoff, stale (no fresh reading).

    Args:
        n: number of devices.
        max_failures: consecutive read errors after which a device is marked failed; it is
            retried after ``RETRY_FIRST_S`` (s), doubling up to ``RETRY_MAX_S``.
    """

    def __init__(self, n: int, max_failures: int) -> None:
        self.max_failures = max_failures
        self.errors = [0] * n
        self.failed = [False] * n
        self.retry_at = [0.0] * n
        self.backoff = [0.0] * n
        self.stale = [False] * n
        """True while a device has no fresh reading (failing reads, or its family stalled)."""
        self.glitch_logged = [False] * n
        self.stall_ticks = 0
        """Cumulative device-ticks with a stale device at the start or end of the interval."""

    def skip(self, reader: Reader, t: float) -> frozenset[int]:
        """The devices of ``reader`` that wait for their retry time at ``t`` (s)."""
        if True not in self.failed:  # the usual tick: nothing to build
            return _NONE
        return frozenset(i for i, _ in reader.sensors if self.failed[i] and t < self.retry_at[i])

    def count_stalls(self, before: Sequence[bool]) -> None:
        """After a tick: count devices stale at its start (``before``) or at its end.

        Such a device makes the interval's energy less than a measurement.
        """
        self.stall_ticks += sum(1 for b, a in zip(before, self.stale, strict=True) if b or a)

    def good(self, i: int, sensor: Sensor) -> bool:
        """A good reading of device ``i``: clear its failure; True when it resumes after none."""
        resumed = self.stale[i]
        if self.failed[i]:
            _log.warning(
                "otel-energy: %s (%s) answers again; measuring it again.",
                sensor.info.hw_id,
                sensor.info.name,
            )
        self.errors[i], self.failed[i], self.backoff[i] = 0, False, 0.0
        self.stale[i] = False
        return resumed

    def glitched(self, i: int, sensor: Sensor, track: Track) -> None:
        """Log device ``i``'s first glitch (once per device)."""
        if track.glitches and not self.glitch_logged[i]:
            self.glitch_logged[i] = True
            _log.warning(
                "otel-energy: %s (%s) gave an implausible reading (more than %.0f W over the"
                " interval); dropped it, counting goes on. Spans carry otel_energy.glitches.",
                sensor.info.hw_id,
                sensor.info.name,
                track.max_power_w,
            )

    def failure(self, i: int, sensor: Sensor, exc: Exception, t: float) -> None:
        """A failed read of device ``i`` at ``t`` (s): count it, back off after too many."""
        self.errors[i] += 1
        self.stale[i] = True
        if self.errors[i] < self.max_failures:
            return
        self.backoff[i] = min(2 * self.backoff[i] or RETRY_FIRST_S, RETRY_MAX_S)
        self.retry_at[i] = t + self.backoff[i]
        if not self.failed[i]:
            self.failed[i] = True
            _log.warning(
                "otel-energy: %s (%s) failed %d reads in a row (%s); retrying it with backoff"
                " (from %.0f s up to %.0f s), other devices go on.",
                sensor.info.hw_id,
                sensor.info.name,
                self.errors[i],
                exc,
                RETRY_FIRST_S,
                RETRY_MAX_S,
            )

    @staticmethod
    def stalled(reader: Reader) -> None:
        """``reader``'s family has not answered this tick: logged once (its devices are marked
        stale when the tick's row is folded: ``Devices.fold``)."""
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

    @staticmethod
    def answered(reader: Reader) -> None:
        """``reader``'s family answered: log its recovery once after a stall."""
        if reader.stall_logged:
            reader.stall_logged = False
            _log.warning(
                "otel-energy: %s reads answer again; their devices resume (counters recover"
                " the energy of the stall).",
                reader.family,
            )
