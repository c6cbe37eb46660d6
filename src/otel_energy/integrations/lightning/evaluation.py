"""Validation, test and predict hooks of ``LightningEnergyCallback``: the tracker's phases.

Validation is what the transformers Trainer calls ``evaluate``: the same span name. Inside ``fit``
a phase is a child of the open epoch (or the run); outside it, the tracker takes the session for
the phase alone.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer

from otel_energy.integrations.hooks import guarded
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.spans import AttrValue
from otel_energy.tracker import RunTracker

FRAMEWORK: dict[str, AttrValue] = {A.FRAMEWORK: "lightning"}
# Lightning stage -> span name; validation is what the transformers Trainer calls ``evaluate``.
EVAL_SPANS = {"validate": "evaluate", "test": "test", "predict": "predict"}


class EvaluationHooks:
    """The ``on_{validation,test,predict}_*`` hooks, on the callback's ``tracker``."""

    tracker: RunTracker
    _failed_hooks: set[str]

    def _environ(self, trainer: Any) -> dict[str, str]:
        raise NotImplementedError

    def _check_rank(self, trainer: Any) -> None:
        raise NotImplementedError

    def _begin_eval(self, trainer: Any, stage: str) -> None:
        if self.tracker.phases:
            return  # one phase at a time: Lightning does not nest them
        attrs: dict[str, AttrValue] = {}
        if getattr(trainer, "sanity_checking", False):
            attrs[A.EVAL_SANITY_CHECK] = True
        standalone = self.tracker.run is None
        self.tracker.begin_phase(EVAL_SPANS[stage], attrs, self._environ(trainer))
        if standalone:
            self._check_rank(trainer)

    @guarded
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin_eval(trainer, "validate")

    @guarded
    def on_validation_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.tracker.phase_step()

    @guarded
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.tracker.end_phase()

    @guarded
    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin_eval(trainer, "test")

    @guarded
    def on_test_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.tracker.phase_step()

    @guarded
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.tracker.end_phase()

    @guarded
    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin_eval(trainer, "predict")

    @guarded
    def on_predict_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.tracker.phase_step()

    @guarded
    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.tracker.end_phase()
