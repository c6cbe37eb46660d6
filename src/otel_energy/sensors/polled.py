"""A node meter read on its own thread, at the rate its source bears: the sampler never waits.

A BMC answers in tens of milliseconds to seconds, refreshes its reading every 1-10 s, and may hang
or fail; ``ipmitool`` is a subprocess. So the slow call runs on a poller thread of its own, every
``interval_s``; ``read()`` (on the sampler thread) only takes the newest value under a lock and
never does I/O. The sampler integrates that power at its own tick rate (trapezoid), so the energy
follows the meter's reading with at most one poll interval (plus the meter's own averaging) of lag.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from otel_energy.sensors.base import DeviceInfo, Reading

_log = logging.getLogger(__name__)


class StaleReading(Exception):
    """The meter has given no fresh value for longer than its staleness limit."""


class PolledPower:
    """A power meter read by ``fetch`` on a daemon thread every ``interval_s`` seconds.

    Args:
        info: the device (``hw_type`` ``host`` for a node meter).
        fetch: one read of the meter in W; may block (bounded by its own timeout) or raise. Its
            exception messages are logged, so they must never carry a secret.
        interval_s: seconds between two fetches (BMCs: 1-10 s).
        stale_after_s: a value older than this is not used: ``read()`` raises ``StaleReading``
            and the sampler's failure policy takes over (default: 3 intervals + 5 s).
        clock: monotonic seconds.
    """

    wrap_j: float | None = None

    def __init__(
        self,
        info: DeviceInfo,
        fetch: Callable[[], float],
        interval_s: float,
        stale_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.info = info
        self._fetch = fetch
        self.interval_s = interval_s
        self.stale_after_s = stale_after_s or 3 * interval_s + 5.0
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: tuple[float, float] | None = None  # (clock s, W)
        self._error: str | None = None
        self._fetches = 0
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the poller thread (idempotent; ``read()`` calls it)."""
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(
                target=self._run, name=f"otel-energy-poll-{self.info.method}", daemon=True
            )
            self._thread.start()

    def read(self) -> Reading:
        """The newest power (W) without I/O; ``power_w=None`` before the first answer.

        Raises:
            StaleReading: the newest answer is older than ``stale_after_s`` (the error of the
                last failed fetch, if any, is in the message).
        """
        self.start()
        with self._lock:
            latest, error = self._latest, self._error
        if latest is None:
            if error is not None:
                raise StaleReading(f"{self.info.name}: no reading yet ({error})")
            return Reading()
        age = self._clock() - latest[0]
        if age > self.stale_after_s:
            raise StaleReading(
                f"{self.info.name}: no fresh reading for {age:.0f} s ({error or 'no answer'})"
            )
        return Reading(power_w=latest[1])

    def wait_for_fetches(self, count: int, timeout_s: float) -> bool:
        """Wait until ``count`` fetches (good or failed) have completed; for tests and doctor."""
        self.start()
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._fetches < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    @property
    def fetches(self) -> int:
        """Fetches completed so far (good or failed)."""
        with self._lock:
            return self._fetches

    def close(self) -> None:
        """Stop polling (the thread exits after any fetch it is blocked in)."""
        self._stop.set()

    def poll_once(self) -> None:
        """One fetch, stored (the thread's loop body; never raises)."""
        try:
            value = float(self._fetch())
            bound = self.info.max_power_w or math.inf
            if not (math.isfinite(value) and 0.0 <= value <= bound):
                raise ValueError(f"implausible power {value!r} W (expected 0 to {bound:g} W)")
        except Exception as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            return
        with self._changed:
            recovered = self._error is not None
            self._latest, self._error = (self._clock(), value), None
            self._fetches += 1
            self._changed.notify_all()
        if recovered:
            _log.warning("otel-energy: %s answers again.", self.info.name)

    def _failed(self, message: str) -> None:
        with self._changed:
            first = self._error is None
            self._error = message
            self._fetches += 1
            self._changed.notify_all()
        if first:  # one line per spell of failures, never one per poll
            _log.warning(
                "otel-energy: reading %s failed (%s); retrying every %g s, the node total is"
                " marked stalled meanwhile.",
                self.info.name,
                message,
                self.interval_s,
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.poll_once()
            self._stop.wait(max(self.interval_s - (time.monotonic() - started), 0.0))
