"""Hugging Face ``transformers``: ``EnergyCallback``, ``Eco2AICallback`` and ``CarbonConfig``.

Importing this package imports transformers (``import otel_energy`` never does) but patches
nothing: the ``Trainer`` wrappers are installed by a constructed callback, the instrumentor, or
an explicit ``patch_trainer()``.
"""

from otel_energy.integrations.transformers.callback import EnergyCallback
from otel_energy.integrations.transformers.eco2ai import CarbonConfig, CarbonMetrics, CarbonReport
from otel_energy.integrations.transformers.eco2ai_callback import Eco2AICallback
from otel_energy.integrations.transformers.trainer_patch import (
    add_callback_on_init,
    patch_trainer,
    remove_callback_on_init,
    unpatch_trainer,
)

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
