"""Who calls ``Sensor.read()``: a reader thread per driver family, the sampler for the others.

The sampler asks every family for a read at each tick and waits a bounded time for the answers
(``request`` / ``wait`` / ``take``). A driver family (NVML, amdsmi) is read on its own thread, so
that a hung driver call stalls only that family: a family whose call does not return in time is
*stalled*, the sampler goes on with the others and asks it again only once it has answered, so a
call blocked for seconds costs the other devices nothing. Families whose reads cannot hang in
practice (``INLINE_FAMILIES``) are read on the sampler thread itself: a hand-off costs two thread
wake-ups per tick, which was most of the sampler's CPU (docs/performance.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol

from otel_energy.sensors.base import Reading, Sensor

Result = Reading | Exception

INLINE_FAMILIES = frozenset({"rapl", "psutil", "hwmon", "redfish", "ipmi"})
"""Families read on the sampler thread: RAPL and hwmon are a ``pread`` of an already-open sysfs
file and psutil reads ``/proc``; neither blocks on a driver. Redfish and IPMI sensors poll the BMC
on a thread of their own (``sensors.polled``): their ``read()`` only takes the newest value.
Every other family, unknown ones included, gets its own reader thread."""


class Reader(Protocol):
    """What the sampler needs of a family's reader (``FamilyReader`` or ``InlineReader``)."""

    family: str
    sensors: list[tuple[int, Sensor]]
    busy_since: float | None
    stall_logged: bool

    def request(self, skip: frozenset[int]) -> bool: ...
    def wait(self, timeout_s: float) -> bool: ...
    def take(self) -> list[tuple[int, Result]] | None: ...
    def close(self) -> None: ...


def read_all(
    sensors: Sequence[tuple[int, Sensor]], skip: frozenset[int]
) -> list[tuple[int, Result]]:
    """Read every sensor not in ``skip``; a sensor's exception is its result."""
    results: list[tuple[int, Result]] = []
    for i, sensor in sensors:
        if i in skip:
            continue
        try:
            results.append((i, sensor.read()))
        except Exception as exc:  # counted by the sampler: retried with backoff
            results.append((i, exc))
    return results


def make_readers(sensors: Sequence[Sensor]) -> list[Reader]:
    """One reader per family of ``sensors``, the threaded ones first.

    Threaded families are asked first, so that their reads run while the sampler reads the
    inline families itself.
    """
    families: dict[str, list[tuple[int, Sensor]]] = {}
    for i, s in enumerate(sensors):
        families.setdefault(s.info.reader_family, []).append((i, s))
    threaded: list[Reader] = [
        FamilyReader(f, m) for f, m in families.items() if f not in INLINE_FAMILIES
    ]
    inline: list[Reader] = [InlineReader(f, m) for f, m in families.items() if f in INLINE_FAMILIES]
    return threaded + inline


class InlineReader:
    """Reads the sensors of one family on the caller's (the sampler's) thread, in ``request``.

    Args:
        family: the family's name, for log lines.
        sensors: (index in the sampler, sensor) pairs read in this order.
    """

    def __init__(self, family: str, sensors: Sequence[tuple[int, Sensor]]) -> None:
        self.family = family
        self.sensors = list(sensors)
        self.busy_since: float | None = None  # never out: it answers before request returns
        self.stall_logged = False
        self._results: list[tuple[int, Result]] | None = None

    def request(self, skip: frozenset[int]) -> bool:
        """Read every sensor not in ``skip`` now."""
        self._results = read_all(self.sensors, skip)
        return True

    def wait(self, timeout_s: float) -> bool:
        return True

    def take(self) -> list[tuple[int, Result]] | None:
        """The results of the last request (once; then an empty list)."""
        results, self._results = self._results or [], None
        return results

    def close(self) -> None:
        """Nothing to end: no thread."""


class FamilyReader:
    """Reads the sensors of one family (e.g. every NVML GPU) on its own daemon thread.

    Args:
        family: the family's name (``nvml``, ``rapl``, ``psutil``), for log lines.
        sensors: (index in the sampler, sensor) pairs read in this order.
    """

    def __init__(self, family: str, sensors: Sequence[tuple[int, Sensor]]) -> None:
        self.family = family
        self.sensors = list(sensors)
        self.skip: frozenset[int] = frozenset()
        self.busy_since: float | None = None
        """``time.monotonic()`` when the outstanding request was made; None when idle."""
        self.stall_logged = False
        self._results: list[tuple[int, Result]] = []
        self._request = threading.Event()
        self._done = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def request(self, skip: frozenset[int]) -> bool:
        """Ask for a read of every sensor not in ``skip``; False while a read is still out."""
        if self.busy_since is not None:
            return False
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"otel-energy-read-{self.family}", daemon=True
            )
            self._thread.start()
        self.skip = skip
        self._done.clear()
        self.busy_since = time.monotonic()
        self._request.set()
        return True

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the outstanding read; True when it has answered."""
        return self.busy_since is None or self._done.wait(max(timeout_s, 0.0))

    def take(self) -> list[tuple[int, Result]] | None:
        """The answered results (once), or None while the read is still out (stalled)."""
        if self.busy_since is None or not self._done.is_set():
            return None
        results, self._results = self._results, []
        self.busy_since = None
        return results

    def close(self) -> None:
        """End the thread (it exits after any call it is blocked in returns)."""
        self._closed = True
        self._request.set()

    def _run(self) -> None:
        while True:
            self._request.wait()
            self._request.clear()
            if self._closed:
                return
            self._results = read_all(self.sensors, self.skip)
            self._done.set()
