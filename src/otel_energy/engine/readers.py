"""One reader thread per sensor family, so that a hung driver call stalls only its own family.

The sampler asks every family for a read at each tick and waits a bounded time for the answers
(``FamilyReader.request`` / ``wait`` / ``take``). A family whose call does not return in time is
*stalled*: the sampler goes on with the others and asks it again only once it has answered, so a
call blocked for seconds costs the other devices nothing. Only these threads call ``read()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from otel_energy.sensors.base import Reading, Sensor

Result = Reading | Exception


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
            results: list[tuple[int, Result]] = []
            for i, sensor in self.sensors:
                if i in self.skip:
                    continue
                try:
                    results.append((i, sensor.read()))
                except Exception as exc:  # counted by the sampler: retried with backoff
                    results.append((i, exc))
            self._results = results
            self._done.set()
