"""A recorder's own carbon settings: the PUE and grid intensity its spans are reported at.

The process has one sampler, which integrates CO2e per sample interval at the settings it was
built with. An entry point that asks for another PUE or a fixed intensity (a second
``Eco2AICallback(CarbonConfig(pue=1.5, country="FR"))`` joining the instrumentor's session) gets
them here, per recorder: CO2e is linear in both, so a window's CO2e at other settings is exact
arithmetic on its energy (a fixed intensity) or on the sampler's CO2e (another PUE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from otel_energy.carbon import Intensity, co2e_g

if TYPE_CHECKING:
    from otel_energy.engine.sampler import WindowEnergy


@dataclass(frozen=True)
class RecorderCarbon:
    """What a recorder applies instead of the sampler's settings (None: the sampler's).

    Attributes:
        pue: power usage effectiveness (dimensionless, >= 1).
        intensity: a fixed grid intensity (gCO2e/kWh) instead of the sampler's provider.
    """

    pue: float | None = None
    intensity: Intensity | None = None

    def pue_of(self, sampler_pue: float) -> float:
        """The PUE this recorder reports."""
        return sampler_pue if self.pue is None else self.pue

    def co2e_of(self, w: WindowEnergy, sampler_pue: float) -> float:
        """CO2e (g) of ``w`` at these settings; ``sampler_pue`` is what ``w.co2e_g`` used."""
        return self.co2e(w.energy_j, w.co2e_g, sampler_pue)

    def co2e(self, energy_j: float, sampler_co2e_g: float, sampler_pue: float) -> float:
        """CO2e (g) of ``energy_j`` (J) at these settings, given the sampler's figure for it
        (``sampler_co2e_g`` at ``sampler_pue`` and the sampler's intensity over time)."""
        pue = self.pue_of(sampler_pue)
        if self.intensity is not None:
            return co2e_g(energy_j, pue, self.intensity.g_per_kwh)
        if self.pue is None or sampler_pue <= 0:
            return sampler_co2e_g
        return sampler_co2e_g * pue / sampler_pue
