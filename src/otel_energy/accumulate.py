"""Turns raw sensor readings into cumulative, monotonic energy for one device."""

from __future__ import annotations

from dataclasses import dataclass

from otel_energy.sensors.base import Reading


@dataclass
class Track:
    """Cumulative energy of one device since the sampler started (J), never decreasing.

    Counter mode: the difference of successive counter values; a decrease is a wrap when the
    sensor has a range (RAPL adds ``max_energy_range_uj``) and a reset otherwise (NVML after a
    driver reload restarts from zero, so the new value is the energy since the reset).
    Power mode: trapezoidal integration of power over the time between reads.
    """

    wrap_j: float | None
    energy_j: float = 0.0
    power_w: float | None = None
    resets: int = 0
    _counter: float | None = None
    _t: float | None = None

    def update(self, t_s: float, reading: Reading) -> float:
        """Fold in a reading taken at ``t_s`` (s); returns the energy added (J)."""
        delta = 0.0
        if reading.counter_j is not None:
            if self._counter is not None:
                delta = reading.counter_j - self._counter
                if delta < 0:
                    if self.wrap_j:
                        delta += self.wrap_j
                    else:
                        self.resets += 1
                        delta = reading.counter_j
            self._counter = reading.counter_j
        elif reading.power_w is not None and self._t is not None and self.power_w is not None:
            delta = 0.5 * (self.power_w + reading.power_w) * (t_s - self._t)
        if reading.power_w is not None:
            self.power_w = reading.power_w
        self._t = t_s
        self.energy_j += max(delta, 0.0)
        return max(delta, 0.0)
