"""Power and cumulative energy of a run over time, in bounded memory: the report's raw series.

Per-device power (W) and the node's cumulative energy (J) and CO2e (g) since the command
started, decimated so that a run of any length keeps at most ``max_points`` points.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field


@dataclass
class Timeline:
    """Power per device and cumulative node energy over time, decimated to at most
    ``max_points`` points (O(1) memory whatever the run's length).

    ``t_s``: seconds since the command started; ``power_w[hw_id]``: W at those times;
    ``energy_j``/``co2e_g``: cumulative J and g of all devices since the start. Decimating a
    cumulative series keeps every difference between two kept points exact.
    """

    max_points: int = 2000
    t_s: list[float] = field(default_factory=list)
    power_w: dict[str, list[float]] = field(default_factory=dict)
    energy_j: list[float] = field(default_factory=list)
    co2e_g: list[float] = field(default_factory=list)
    _stride: int = 1
    _seen: int = 0

    def add(
        self, t_s: float, powers: dict[str, float], energy_j: float = 0.0, co2e_g: float = 0.0
    ) -> None:
        self._seen += 1
        if (self._seen - 1) % self._stride:
            return
        self._append(t_s, powers, energy_j, co2e_g)
        if len(self.t_s) > self.max_points:  # keep every other point from now on
            self._stride *= 2
            self.t_s = self.t_s[::2]
            self.power_w = {k: v[::2] for k, v in self.power_w.items()}
            self.energy_j = self.energy_j[::2]
            self.co2e_g = self.co2e_g[::2]

    def close(self, t_s: float, powers: dict[str, float], energy_j: float, co2e_g: float) -> None:
        """Add the final point whatever the stride, so the series ends at the run's total."""
        if self.t_s and self.t_s[-1] >= t_s:
            self.t_s.pop()
            for series in self.power_w.values():
                series.pop()
            self.energy_j.pop()
            self.co2e_g.pop()
        self._append(t_s, powers, energy_j, co2e_g)

    def _append(self, t_s: float, powers: dict[str, float], energy_j: float, co2e_g: float) -> None:
        self.t_s.append(t_s)
        for key, value in powers.items():
            series = self.power_w.setdefault(key, [0.0] * (len(self.t_s) - 1))
            series.append(value)
        self.energy_j.append(energy_j)
        self.co2e_g.append(co2e_g)

    def cumulative(self, t_s: float) -> tuple[float, float]:
        """(J, g) since the start at ``t_s``, interpolated between the points around it."""
        ts = self.t_s
        if not ts:
            return 0.0, 0.0
        i = bisect_right(ts, t_s)
        if i == 0:
            return self.energy_j[0], self.co2e_g[0]
        if i == len(ts):
            return self.energy_j[-1], self.co2e_g[-1]
        f = (t_s - ts[i - 1]) / (ts[i] - ts[i - 1])
        e = self.energy_j[i - 1] + f * (self.energy_j[i] - self.energy_j[i - 1])
        c = self.co2e_g[i - 1] + f * (self.co2e_g[i] - self.co2e_g[i - 1])
        return e, c

    def between(self, t0_s: float, t1_s: float) -> tuple[float, float]:
        """(J, g) used over [t0_s, t1_s]."""
        e0, c0 = self.cumulative(t0_s)
        e1, c1 = self.cumulative(t1_s)
        return e1 - e0, c1 - c0
