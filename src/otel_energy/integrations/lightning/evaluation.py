"""Validation, test and predict spans of ``LightningEnergyCallback`` (a mixin of its hooks).

Validation is what the transformers Trainer calls ``evaluate``: the same span name. Inside ``fit``
an evaluation span is a child of the open epoch (or the run); outside it, it opens the session on
its own and closes it when it ends.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer

from otel_energy.integrations.hooks import guarded
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.spans import AttrValue, Interval, SpanEnergyRecorder

FRAMEWORK: dict[str, AttrValue] = {A.FRAMEWORK: "lightning"}
# Lightning stage -> span name; validation is what the transformers Trainer calls ``evaluate``.
EVAL_SPANS = {"validate": "evaluate", "test": "test", "predict": "predict"}


class EvaluationHooks:
    """The ``on_{validation,test,predict}_*`` hooks; the callback provides the rest."""

    _rec: SpanEnergyRecorder | None
    _run: Interval | None
    _epoch: Interval | None
    _eval: Interval | None
    _eval_acquired: bool
    _failed_hooks: set[str]

    def _acquire(self, trainer: Any) -> SpanEnergyRecorder:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def _elapsed(self, iv: Interval) -> float:
        raise NotImplementedError

    # ---- validation, test, predict ----
    def _begin_eval(self, trainer: Any, stage: str) -> None:
        if self._eval is not None:
            return
        in_fit = self._run is not None
        rec = self._rec if in_fit and self._rec is not None else self._acquire(trainer)
        self._eval_acquired = not in_fit
        attrs: dict[str, AttrValue] = dict(FRAMEWORK)
        if getattr(trainer, "sanity_checking", False):
            attrs[A.EVAL_SANITY_CHECK] = True
        self._eval = rec.start("eval", EVAL_SPANS[stage], self._epoch or self._run, attrs)

    def _end_eval(self, error: BaseException | None) -> None:
        iv, self._eval = self._eval, None
        if iv is None or self._rec is None:
            return
        attrs = {A.EVAL_STEPS: iv.steps, A.DURATION: self._elapsed(iv)}
        self._rec.finish(iv, error, attrs)
        if self._eval_acquired:
            self._eval_acquired = False
            self._release()

    def _count_eval_batch(self) -> None:
        if self._eval is not None:
            self._eval.steps += 1

    @guarded
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin_eval(trainer, "validate")

    @guarded
    def on_validation_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self._count_eval_batch()

    @guarded
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end_eval(None)

    @guarded
    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin_eval(trainer, "test")

    @guarded
    def on_test_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self._count_eval_batch()

    @guarded
    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end_eval(None)

    @guarded
    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin_eval(trainer, "predict")

    @guarded
    def on_predict_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self._count_eval_batch()

    @guarded
    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end_eval(None)
