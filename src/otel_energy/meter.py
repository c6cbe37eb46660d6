"""Public path kept for users: ``from otel_energy.meter import EnergyMeter``. The code lives in
:mod:`otel_energy.integrations.meter`."""

from otel_energy.integrations.meter import EnergyMeter

__all__ = ["EnergyMeter"]
