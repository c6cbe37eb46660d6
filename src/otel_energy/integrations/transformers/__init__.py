"""Hugging Face ``transformers``: ``EnergyCallback``, ``Eco2AICallback`` and ``CarbonConfig``.

Importing this package imports transformers (``import otel_energy`` never does).
"""

from otel_energy.integrations.transformers.callback import (
    Eco2AICallback,
    EnergyCallback,
    add_callback_on_init,
    patch_trainer,
    remove_callback_on_init,
    unpatch_trainer,
)
from otel_energy.integrations.transformers.eco2ai import CarbonConfig, CarbonMetrics, CarbonReport

__all__ = [
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
