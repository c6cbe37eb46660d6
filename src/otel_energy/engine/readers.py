"""Who calls ``Sensor.read()``: the sampler thread, for every family, watched for hung calls.

Every family is read inline on the sampler thread (a hand-off to a reader thread cost two thread
wake-ups per tick, most of the sampler's CPU: docs/performance.md). A driver family (NVML,
amdsmi: any family not in ``INLINE_FAMILIES``) can hang in a call, so its reads are *guarded*:
``GuardedReader`` notes when a read starts, and the sampler's watchdog (``Sampler``) wakes once a
second (``WATCH_PERIOD_S``) to look, or at the deadline of a read it found in progress. A read
still out after ``read_timeout_s`` is *abandoned*: the watchdog starts a replacement sampler
thread, which measures the other families and finds this family *stalled* (busy on the abandoned
thread) until the call returns. The abandoned thread then clears the family's busy mark and ends
(``Abandoned``); the next tick reads the family again. So a hung call costs the other devices
at most a watch period of samples (plus a tick) and one thread, once, instead of two thread
wake-ups per tick for ever.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from otel_energy.sensors.base import Reading, Sensor

Result = Reading | Exception

INLINE_FAMILIES = frozenset({"rapl", "psutil", "hwmon", "redfish", "ipmi"})
"""Families whose reads cannot hang: RAPL and hwmon are a ``pread`` of an already-open sysfs
file and psutil reads ``/proc``; neither blocks on a driver. Redfish and IPMI sensors poll the BMC
on a thread of their own (``sensors.polled``): their ``read()`` only takes the newest value.
Every other family, unknown ones included, is guarded (``GuardedReader``)."""


class Abandoned(Exception):
    """Raised on a sampler thread whose driver call returned after the watchdog gave up on it:
    a replacement thread samples now, so this one ends without touching the sampler's state."""


class Reader(Protocol):
    """What the sampler needs of a family's reader (``GuardedReader`` or ``InlineReader``)."""

    family: str
    sensors: list[tuple[int, Sensor]]
    busy_since: float | None
    """``time.monotonic()`` when a read still out started (None: none out)."""
    stall_logged: bool

    def read(self, skip: frozenset[int], stats: bool = True) -> list[tuple[int, Result]] | None:
        """This tick's results, or None while an earlier read is still out (stalled)."""
        ...


Call = Callable[[], Reading]


def calls(sensors: Sequence[tuple[int, Sensor]]) -> list[tuple[int, Call, Call]]:
    """Per sensor: (index, its full ``read``, its energy-only read: ``read_energy`` where it
    has one, else ``read``), bound once instead of looked up at every tick."""
    return [(i, s.read, getattr(s, "read_energy", s.read)) for i, s in sensors]


def read_all(
    sensors: Sequence[tuple[int, Call, Call]], skip: frozenset[int], stats: bool = True
) -> list[tuple[int, Result]]:
    """Read every sensor not in ``skip`` (with its GPU stats when ``stats``, else energy only);
    a sensor's exception is its result."""
    results: list[tuple[int, Result]] = []
    for i, full, energy in sensors:
        if i in skip:
            continue
        try:
            results.append((i, full() if stats else energy()))
        except Exception as exc:  # counted by the sampler: retried with backoff
            results.append((i, exc))
    return results


def make_readers(sensors: Sequence[Sensor]) -> list[Reader]:
    """One reader per family of ``sensors``: guarded for driver families, else inline."""
    families: dict[str, list[tuple[int, Sensor]]] = {}
    for i, s in enumerate(sensors):
        families.setdefault(s.info.reader_family, []).append((i, s))
    return [
        InlineReader(f, m) if f in INLINE_FAMILIES else GuardedReader(f, m)
        for f, m in families.items()
    ]


class InlineReader:
    """Reads the sensors of one family that cannot hang, on the caller's (the sampler's) thread.

    Args:
        family: the family's name, for log lines.
        sensors: (index in the sampler, sensor) pairs read in this order.
    """

    def __init__(self, family: str, sensors: Sequence[tuple[int, Sensor]]) -> None:
        self.family = family
        self.sensors = list(sensors)
        self.busy_since: float | None = None  # never out: it answers before read returns
        self.stall_logged = False
        self._calls = calls(self.sensors)

    def read(self, skip: frozenset[int], stats: bool = True) -> list[tuple[int, Result]]:
        """Read every sensor not in ``skip`` now."""
        return read_all(self._calls, skip, stats)


class GuardedReader:
    """Reads the sensors of a driver family on the caller's thread; ``abandon_if_overdue``
    (the watchdog) gives up on a read that has not returned in time.

    Args:
        family: the family's name (``nvml``, ``amdsmi``), for log lines.
        sensors: (index in the sampler, sensor) pairs read in this order.
    """

    def __init__(self, family: str, sensors: Sequence[tuple[int, Sensor]]) -> None:
        self.family = family
        self.sensors = list(sensors)
        self.busy_since: float | None = None
        self.stall_logged = False
        self._abandoned = False
        self._lock = threading.Lock()  # the watchdog's verdict against the call's return
        self._calls = calls(self.sensors)

    def read(self, skip: frozenset[int], stats: bool = True) -> list[tuple[int, Result]] | None:
        """Read every sensor not in ``skip`` now; None while a read abandoned by the watchdog is
        still out (the family is stalled). Raises ``Abandoned`` on a thread whose read returned
        after the watchdog gave up on it."""
        with self._lock:
            if self.busy_since is not None:
                return None
            self.busy_since = time.monotonic()
        results = read_all(self._calls, skip, stats)
        with self._lock:
            self.busy_since = None
            abandoned, self._abandoned = self._abandoned, False
        if abandoned:
            raise Abandoned(self.family)
        return results

    def abandon_if_overdue(self, now: float, timeout_s: float) -> float:
        """Give up on the read out since ``busy_since`` when it is ``timeout_s`` old at ``now``
        (``time.monotonic()`` s): returns 0.0 then (once per read), else the seconds until it
        would be (inf: no read out, or one already given up on)."""
        with self._lock:
            since = self.busy_since
            if since is None or self._abandoned:
                return math.inf
            left = since + timeout_s - now
            if left > 0.0:
                return left
            self._abandoned = True
            return 0.0
