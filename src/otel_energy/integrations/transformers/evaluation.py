"""Evaluation and prediction spans of ``EnergyCallback`` (a mixin: the callback's own state).

``Trainer.evaluate``/``predict`` are seen through the wrappers in
:mod:`~otel_energy.integrations.transformers.trainer_patch`, which call ``_begin_eval`` and
``_end_eval``; an evaluation holds the recorder (``_acquire``) so that a standalone one, outside
``train()``, is measured too.
"""

from __future__ import annotations

import logging
from typing import Any

from otel_energy.engine.signals import interrupts_deferred
from otel_energy.integrations.hooks import guarded
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.spans import Interval, SpanEnergyRecorder

_log = logging.getLogger(__name__)


class EvaluationSpans:
    """``evaluate``/``predict`` spans, children of the open epoch or run (or roots)."""

    _rec: SpanEnergyRecorder | None
    _run: Interval | None
    _epoch: Interval | None
    _evals: list[Interval]
    _failed_hooks: set[str]

    def _acquire(self) -> SpanEnergyRecorder:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def _elapsed(self, iv: Interval) -> float:
        raise NotImplementedError

    def _begin_eval(self, kind: str) -> Interval | None:
        try:
            rec = self._acquire()
            parent = self._evals[-1] if self._evals else (self._epoch or self._run)
            iv = rec.start(kind, kind, parent, {})
            self._evals.append(iv)
            return iv
        except Exception:
            _log.exception("otel-energy: starting a %s span failed", kind)
            return None

    def _end_eval(self, iv: Interval | None, error: BaseException | None) -> None:
        if iv is None:
            return
        with interrupts_deferred():
            self._end_eval_now(iv, error)

    def _end_eval_now(self, iv: Interval, error: BaseException | None) -> None:
        try:
            if iv not in self._evals:
                return  # already ended (by a SIGTERM closing everything)
            self._evals.remove(iv)
            if self._rec is not None:
                self._rec.finish(
                    iv,
                    error,
                    {A.EVAL_STEPS: iv.steps, A.DURATION: self._elapsed(iv)},
                )
            self._release()
        except BaseException:
            _log.exception("otel-energy: ending a %s span failed", iv.kind)

    @guarded
    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._evals:
            self._evals[-1].steps += 1
