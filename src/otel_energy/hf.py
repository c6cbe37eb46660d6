"""Public path kept for users: ``from otel_energy.hf import EnergyCallback, Eco2AICallback,
CarbonConfig``. The code lives in :mod:`otel_energy.integrations.transformers`."""

from otel_energy.integrations.transformers import (
    CarbonConfig,
    CarbonMetrics,
    CarbonReport,
    Eco2AICallback,
    EnergyCallback,
    add_callback_on_init,
    patch_trainer,
    remove_callback_on_init,
    unpatch_trainer,
)
from otel_energy.tracker import LOG_KEYS

__all__ = [
    "LOG_KEYS",
    "CarbonConfig",
    "CarbonMetrics",
    "CarbonReport",
    "Eco2AICallback",
    "EnergyCallback",
    "add_callback_on_init",
    "patch_trainer",
    "remove_callback_on_init",
    "unpatch_trainer",
]
