"""otel-energy: energy, power and CO2e of ML training through OpenTelemetry.

Importing this package is cheap: no NVML initialisation, no torch or transformers import, and
the heavier OpenTelemetry instrumentation machinery is imported only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otel_energy.config import ConfigError, EnergyConfig, load_config
from otel_energy.version import __version__

if TYPE_CHECKING:
    from otel_energy.engine.sampler import Sampler, Snapshot, WindowEnergy
    from otel_energy.integrations.instrumentor import EnergyInstrumentor

__all__ = [
    "ConfigError",
    "EnergyConfig",
    "EnergyInstrumentor",
    "Sampler",
    "Snapshot",
    "WindowEnergy",
    "__version__",
    "load_config",
]

_LAZY = {
    "EnergyInstrumentor": "otel_energy.integrations.instrumentor",
    "Sampler": "otel_energy.engine.sampler",
    "Snapshot": "otel_energy.engine.sampler",
    "WindowEnergy": "otel_energy.engine.sampler",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'otel_energy' has no attribute {name!r}")
