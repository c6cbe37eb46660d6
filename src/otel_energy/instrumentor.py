"""Public path kept for users: ``from otel_energy.instrumentor import EnergyInstrumentor``. The
code lives in :mod:`otel_energy.integrations.instrumentor`."""

from otel_energy.integrations.instrumentor import EnergyInstrumentor

__all__ = ["EnergyInstrumentor"]
