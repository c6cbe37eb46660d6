"""How a second configuration differs from the one the process's sampler runs with.

One sampler per process: the first entry point builds it, later ones join it. A later entry point
may ask for other settings (an ``Eco2AICallback(CarbonConfig(pue=1.5, country="FR"))`` after the
instrumentor started measuring); this names each difference and whether the entry point can have
it on its own spans (the carbon settings: PUE and a fixed intensity) or not (what the one sampler
thread does: interval, sources, devices).
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_energy.config import EnergyConfig
from otel_energy.config import variables as ev

PROCESS_WIDE: dict[str, str] = {
    "sample_interval_s": ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL,
    "sources": ev.OTEL_PYTHON_ENERGY_SOURCES,
    "cuda_visible_devices": "CUDA_VISIBLE_DEVICES (gpu_ids)",
    "cpu_tdp_w": ev.OTEL_PYTHON_ENERGY_CPU_TDP_W,
    "memory_w_per_gb": ev.OTEL_PYTHON_ENERGY_MEMORY_W_PER_GB,
    "powercap_root": ev.OTEL_PYTHON_ENERGY_POWERCAP_ROOT,
    "history_s": ev.OTEL_PYTHON_ENERGY_HISTORY_SECONDS,
    "carbon": ev.OTEL_PYTHON_ENERGY_CARBON_PROVIDER,
}
"""Settings of the sampler thread itself (field -> the variable that sets it): one value per
process, so a second entry point's differing value cannot be applied."""


@dataclass(frozen=True)
class Differences:
    """What ``asked`` changes relative to ``running``.

    Attributes:
        pue: the asked PUE when it differs, else None (applied per recorder).
        intensity_differs: the asked fixed intensity (table or override) differs (applied per
            recorder, from ``asked.intensity``).
        process_wide: ``(field, variable, running value, asked value)`` of each setting that
            cannot be applied.
    """

    pue: float | None
    intensity_differs: bool
    process_wide: tuple[tuple[str, str, object, object], ...]


def differences(running: EnergyConfig, asked: EnergyConfig) -> Differences:
    """Compare two validated configurations (pure)."""
    pue = asked.pue if asked.pue != running.pue else None
    live = asked.carbon is not None or running.carbon is not None
    intensity = not live and asked.intensity != running.intensity
    wide = tuple(
        (name, variable, getattr(running, name), getattr(asked, name))
        for name, variable in PROCESS_WIDE.items()
        if getattr(running, name) != getattr(asked, name)
    )
    return Differences(pue, intensity, wide)
