"""Turns raw sensor readings into cumulative, monotonic energy for one device.

Readings are checked against a plausibility bound (``max_power_w``, per device): a step that
implies more power than the device can draw is a glitch, never energy. See docs/faults.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from otel_energy.sensors.base import Reading

RESET_CONFIRM_S = 5.0
"""A decrease taken for a driver reset stays revocable this long (s): a reading that returns to
the old track within it shows the decrease was a glitch (e.g. a counter that read 0 briefly)."""
RESYNC_S = 1.0
"""A counter off its track this long (s), moving plausibly on a new one, is followed there."""
RESYNC_READS = 3
"""... and for at least this many reads."""
JITTER_S = 0.25
"""Slack (s) added to the time between reads in the bound: the sampler thread that reads may wait
for the GIL (100-200 ms seen while the training thread builds a model), so a read can come
later than its tick's timestamp, and an immediate sample (``wait_for_sample``) can follow the
previous one within a millisecond. The glitches the bound exists for are far larger."""


@dataclass
class Track:
    """Cumulative energy of one device since the sampler started (J), never decreasing.

    Counter mode: the difference of successive counter values; a decrease is a wrap when the
    sensor has a range (RAPL adds ``max_energy_range_uj``) and a reset otherwise (NVML after a
    driver reload restarts from zero, so the new value is the energy since the reset).
    Power mode: trapezoidal integration of power over the time between reads.

    Plausibility: a step (after wrap correction) larger than ``max_power_w`` x (the time since
    the last good read + the sensor's own ``period_s`` + ``JITTER_S``) is a glitch: it adds
    nothing and the baseline stays, so a counter that comes back to its track loses nothing.
    A decrease to a small value consistent with that bound is a reset, but it is revocable for
    ``RESET_CONFIRM_S``: a later read back on the old track turns it into a glitch and adds
    exactly the energy of the old track. A counter that stays off its track for ``RESYNC_S`` on a
    consistent new track is followed there; the gap is filled at the last good power and counted
    in ``filled_j`` (labelled estimated). Power readings above the bound are ignored.

    Attributes:
        wrap_j: counter range (J), None where a decrease is a reset.
        max_power_w: plausibility bound (W); ``inf`` disables the check.
        period_s: how often the sensor refreshes (s): a read may carry this much more energy.
        energy_j: cumulative energy (J), measured plus filled.
        filled_j: the part of ``energy_j`` filled at the last good power, not measured (J).
        power_w: latest power reading (W), None for counter-only sensors.
        resets, glitches: driver resets, glitches (one per run of implausible reads).
    """

    wrap_j: float | None
    max_power_w: float = math.inf
    period_s: float = 0.0
    energy_j: float = 0.0
    filled_j: float = 0.0
    power_w: float | None = None
    resets: int = 0
    glitches: int = 0
    _counter: float | None = None
    _t: float | None = None
    _rate_w: float = 0.0
    _old: tuple[float, float, float] | None = None  # pre-reset (counter, t, J added since)
    _bad: tuple[float, float, float, int] | None = None  # glitch run (since, counter, t, reads)

    def update(self, t_s: float, reading: Reading, resumed: bool = False) -> float:
        """Fold in a reading taken at ``t_s`` (s); returns the energy added (J).

        ``resumed``: the first good read after failed ones; power mode fills the outage by the
        trapezoid, and that energy is counted in ``filled_j``.
        """
        if reading.counter_j is not None:
            delta = self._counter_step(t_s, reading.counter_j)
        else:
            delta = self._power_step(t_s, reading.power_w, resumed)
        if reading.power_w is not None and 0.0 <= reading.power_w <= self.max_power_w:
            self.power_w = reading.power_w
        self.energy_j += delta
        return delta

    def _limit(self, dt: float) -> float:
        return self.max_power_w * (max(dt, 0.0) + self.period_s + JITTER_S)

    def _counter_step(self, t: float, c: float) -> float:
        if self._counter is None or self._t is None:
            self._counter, self._t = c, t
            return 0.0
        dt = t - self._t
        delta = c - self._counter
        if delta < 0 and self.wrap_j:
            delta += self.wrap_j
        old = self._old
        if old is not None and t - old[1] > RESET_CONFIRM_S:
            old = self._old = None  # the reset is confirmed
        if 0.0 <= delta <= self._limit(dt):
            if old is not None:
                self._old = (old[0], old[1], old[2] + delta)
            return self._accept(t, c, delta, dt)
        if old is not None and 0.0 <= c - old[0] <= self._limit(t - old[1]):
            # back on the track from before the "reset": it was a glitch. Add what the old
            # track says was used since, less what the false reset already added.
            self._old = None
            self.resets -= 1
            self.glitches += 1
            return self._accept(t, c, max(0.0, (c - old[0]) - old[2]), t - old[1])
        if c < self._counter and not self.wrap_j and c <= self._limit(dt):
            self.resets += 1
            self._old = (self._counter, self._t, c)
            return self._accept(t, c, c, dt)
        return self._glitch(t, c)

    def _accept(self, t: float, c: float, delta: float, dt: float) -> float:
        self._counter, self._t, self._bad = c, t, None
        if dt > 0:
            self._rate_w = delta / dt
        return delta

    def _glitch(self, t: float, c: float) -> float:
        bad = self._bad
        if bad is None:
            self.glitches += 1
            self._bad = (t, c, t, 1)
            return 0.0
        since, prev_c, prev_t, reads = bad
        step = c - prev_c
        if not 0.0 <= step <= self._limit(t - prev_t):
            self._bad = (t, c, t, 1)  # not even consistent with itself: restart the run
            return 0.0
        if t - since < RESYNC_S or reads + 1 < RESYNC_READS:
            self._bad = (since, c, t, reads + 1)
            return 0.0
        # A new, consistent track: follow it; the gap is filled at the last good power.
        assert self._t is not None
        fill = max(self._rate_w, 0.0) * (t - self._t)
        self.filled_j += fill
        self._counter, self._t, self._bad, self._old = c, t, None, None
        return fill

    def _power_step(self, t: float, p: float | None, resumed: bool) -> float:
        if p is None:
            return 0.0
        if not 0.0 <= p <= self.max_power_w:
            self.glitches += 1  # keep the last good power and time: the next read spans the gap
            return 0.0
        delta = 0.0
        if self._t is not None and self.power_w is not None:
            delta = 0.5 * (self.power_w + p) * max(t - self._t, 0.0)
            if resumed:
                self.filled_j += delta
        self._t = t
        return delta
