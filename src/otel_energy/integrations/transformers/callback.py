"""``EnergyCallback``: the transformers ``Trainer``'s events mapped onto a ``RunTracker``.

The run, epoch, step, evaluation and prediction spans, the projection, the log keys, the SIGTERM
guard, the job root and the ledger row all come from :mod:`otel_energy.tracker`; this module only
translates. Importing it imports transformers (``import otel_energy`` never does) but patches
nothing: building an ``EnergyCallback`` installs the ``Trainer`` wrappers of
:mod:`~otel_energy.integrations.transformers.trainer_patch`, so that a hand-added callback sees
failures and evaluation boundaries too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from transformers import TrainerCallback

from otel_energy.config import EnergyConfig
from otel_energy.integrations.hooks import callback_config, guarded
from otel_energy.integrations.transformers.trainer_patch import patch_trainer
from otel_energy.session import Sampler
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.predict import Predictor
from otel_energy.telemetry.spans import AttrValue, Interval, SpanEnergyRecorder
from otel_energy.tracker import RunTracker

__all__ = ["EnergyCallback"]

_log = logging.getLogger(__name__)


class EnergyCallback(TrainerCallback):
    """Spans for the training run, each epoch, each optimizer step, evaluation and prediction.

    Args:
        tracer_provider: where spans go (the global provider by default).
        meter_provider: where the step-energy histogram and ``hw.*`` metrics go (global default).
        config: settings (``OTEL_PYTHON_ENERGY_*`` from the environment by default).
        sampler_factory: builds the sampler if none runs yet in this process (tests inject one).
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        config: EnergyConfig | None = None,
        sampler_factory: Callable[[], Sampler] | None = None,
    ) -> None:
        make = sampler_factory
        self.tracker = RunTracker(
            callback_config(type(self).__name__, config),
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            sampler_factory=(lambda _env: make()) if make else None,
        )
        self.tracker.on_complete.append(self._on_complete)
        self._failed_hooks: set[str] = set()
        # A hand-added callback needs the wrappers too (failures, evaluate/predict spans).
        patch_trainer(self)

    # ---- what users and tests read ----
    @property
    def config(self) -> EnergyConfig:
        return self.tracker.config

    @property
    def recorder(self) -> SpanEnergyRecorder | None:
        return self.tracker.recorder

    @property
    def last_run(self) -> Interval | None:
        return self.tracker.last_run

    @property
    def predictor(self) -> Predictor | None:
        return self.tracker.predictor

    # ---- training ----
    @guarded
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        attrs: dict[str, AttrValue] = {
            A.TRAIN_MAX_STEPS: int(state.max_steps or 0),
            A.TRAIN_NUM_TRAIN_EPOCHS: float(args.num_train_epochs),
            A.TRAIN_GRADIENT_ACCUMULATION_STEPS: int(args.gradient_accumulation_steps),
            A.TRAIN_PER_DEVICE_TRAIN_BATCH_SIZE: int(args.per_device_train_batch_size),
            A.TRAIN_START_STEP: int(state.global_step),
        }
        model_type = getattr(getattr(kwargs.get("model"), "config", None), "model_type", None)
        if model_type:
            attrs[A.TRAIN_MODEL_TYPE] = str(model_type)
        attrs.update(self._run_attributes())
        steps, start = int(state.max_steps or 0), int(state.global_step)
        self.tracker.begin_run(attrs, total_steps=steps, start_step=start)

    def _run_attributes(self) -> Mapping[str, AttrValue]:
        return {}

    @guarded
    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.tracker.begin_epoch(math.floor((state.epoch or 0.0) + 1e-9), state.global_step)

    @guarded
    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.tracker.step_begin(state.global_step + 1)  # the hot path: one clock reading

    @guarded
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.tracker.step_end()

    @guarded
    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.tracker.end_epoch(state.global_step)

    @guarded
    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.tracker.end_run(None, state.global_step)

    @guarded
    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.tracker.phase_step()

    @guarded
    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        values = self.tracker.log_values()
        if logs is None or not values:
            return
        logs.update(values)
        history = getattr(state, "log_history", None)
        if history and history[-1].get("step") == state.global_step:
            history[-1].update(values)  # Trainer.log appended a copy before calling us

    # ---- from the Trainer wrappers (trainer_patch): failures and evaluate/predict ----
    # They run outside the Trainer's callback loop, so they never raise either.
    def _on_train_error(self, error: BaseException) -> None:
        try:
            self.tracker.fail(error)
        except BaseException:
            _log.exception("otel-energy: closing spans after a training error failed")

    def _begin_eval(self, kind: str) -> Interval | None:
        try:
            return self.tracker.begin_phase(kind)
        except Exception:
            _log.exception("otel-energy: starting a %s span failed", kind)
            return None

    def _end_eval(self, iv: Interval | None, error: BaseException | None) -> None:
        try:
            if iv is not None:
                self.tracker.end_phase(iv, error)
        except BaseException:
            _log.exception("otel-energy: ending a %s span failed", getattr(iv, "kind", "?"))

    def _on_complete(self, iv: Interval) -> None:
        """Hook for subclasses; called on the sampler thread (or in flush) per finished interval:
        run, epoch, phase, and a step only where it has a span of its own (every step's energy:
        ``self.tracker.on_step``)."""
