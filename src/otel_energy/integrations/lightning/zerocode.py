"""Zero-code: the instrumentor's ``lightning.pytorch.Trainer.__init__`` hook."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Trainer
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otel_energy.integrations.hooks import patch_init, unpatch_init
from otel_energy.integrations.lightning.callback import LightningEnergyCallback


def _ours(trainer: Any) -> list[LightningEnergyCallback]:
    return [
        cb for cb in getattr(trainer, "callbacks", ()) if isinstance(cb, LightningEnergyCallback)
    ]


def add_callback_on_init(
    tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> None:
    """Make every new ``lightning.pytorch.Trainer`` carry one ``LightningEnergyCallback``.

    A trainer that already has one (added by hand) does not get a second. Idempotent.
    """

    def add_ours(trainer: Any) -> None:
        if not _ours(trainer):
            cb = LightningEnergyCallback(tracer_provider, meter_provider)
            trainer.callbacks.insert(0, cb)  # checkpoint callbacks stay last

    patch_init(Trainer, add_ours, "LightningEnergyCallback")


def remove_callback_on_init() -> None:
    """Undo ``add_callback_on_init`` (trainers already built keep their callback)."""
    unpatch_init(Trainer)
