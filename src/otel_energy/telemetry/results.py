"""One result shape for a measured stretch of time: ``Measurement``.

The Eco2AI ``CarbonMetrics`` and epoch rows and ``EnergyMeter``'s block dicts are views of it, so
that every public result converts joules to kWh and grams to kg in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from otel_energy.carbon import J_PER_KWH

if TYPE_CHECKING:
    from otel_energy.engine.sampler import WindowEnergy


@dataclass(frozen=True)
class Measurement:
    """Energy, power and emissions of one window (SI units; CO2e in grams).

    Attributes:
        duration_s: length of the window (s).
        energy_j: energy of every measured device over it (J).
        avg_power_w: ``energy_j / duration_s`` (W; 0 for an empty window).
        co2e_g: CO2e of that energy (g), with PUE and the grid intensity applied.
        by_type_j: energy per ``hw.type`` (J).
        estimated: some of the energy comes from an estimate, not a counter.
    """

    duration_s: float = 0.0
    energy_j: float = 0.0
    avg_power_w: float = 0.0
    co2e_g: float = 0.0
    by_type_j: dict[str, float] = field(default_factory=dict)
    estimated: bool = False

    @classmethod
    def of(cls, window: WindowEnergy, co2e_g: float) -> Measurement:
        """The measurement of ``window`` whose CO2e is ``co2e_g`` (the caller's intensity: the
        window's own, or an interval's override)."""
        return cls(
            window.duration_s,
            window.energy_j,
            window.avg_power_w,
            co2e_g,
            dict(window.by_type),
            window.estimated,
        )

    @property
    def energy_kwh(self) -> float:
        """``energy_j`` in kWh."""
        return self.energy_j / J_PER_KWH

    @property
    def co2e_kg(self) -> float:
        """``co2e_g`` in kg."""
        return self.co2e_g / 1000.0

    def totals(self) -> dict[str, Any]:
        """Duration (s), energy (J), average power (W), CO2e (g) and energy per type (J), keyed
        as in the Eco2AI report's epoch rows."""
        return {
            "duration_s": self.duration_s,
            "energy_j": self.energy_j,
            "avg_power_w": self.avg_power_w,
            "co2e_g": self.co2e_g,
            "by_type_j": dict(self.by_type_j),
        }
