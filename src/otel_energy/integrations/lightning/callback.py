"""``LightningEnergyCallback``: Lightning's events mapped onto a ``RunTracker``.

``fit`` is the run (span ``train``), its epochs and optimizer steps (a step spans every batch it
accumulates), validation/test/predict the phases (``evaluation``). Hooks never raise and never
block on hardware: the sampler thread measures, the training thread only notes times.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otel_energy.config import EnergyConfig
from otel_energy.integrations.hooks import callback_config, guarded
from otel_energy.integrations.lightning.evaluation import FRAMEWORK, EvaluationHooks
from otel_energy.integrations.lightning.ranks import check_rank, rank_environ
from otel_energy.session import Sampler
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.spans import AttrValue, Interval, SpanEnergyRecorder
from otel_energy.tracker import RunTracker


class LightningEnergyCallback(EvaluationHooks, Callback):
    """Spans for ``fit`` (``train``), each epoch, each optimizer step, validation, test, predict.

    Args:
        tracer_provider: where spans go (the global provider by default).
        meter_provider: where the step-energy histogram and ``hw.*`` metrics go (global default).
        config: settings (``OTEL_PYTHON_ENERGY_*`` from the environment by default).
        sampler_factory: builds the sampler from an environment that carries the trainer's rank,
            if no sampler runs yet in this process (tests inject one).
        log_metrics: log the run's keys (``otel_energy/energy_j`` (J), ``otel_energy/co2e_g`` (g),
            ``otel_energy/power_w`` (W), the projection once made) with ``pl_module.log`` at the
            trainer's logging steps.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        config: EnergyConfig | None = None,
        sampler_factory: Callable[[Mapping[str, str]], Sampler] | None = None,
        log_metrics: bool = True,
    ) -> None:
        self.tracker = RunTracker(
            callback_config(type(self).__name__, config),
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            sampler_factory=sampler_factory,
            attributes=FRAMEWORK,
        )
        self.log_metrics = log_metrics
        self._step_from = 0  # trainer.global_step when the open step began
        self._failed_hooks: set[str] = set()

    @property
    def config(self) -> EnergyConfig:
        return self.tracker.config

    @property
    def recorder(self) -> SpanEnergyRecorder | None:
        return self.tracker.recorder

    @property
    def last_run(self) -> Interval | None:
        return self.tracker.last_run

    def __getstate__(self) -> dict[str, Any]:
        """Settings only: ``ddp_spawn`` pickles the trainer with its callbacks into each rank,
        which measures on its own; live spans and the session stay in this process."""
        t = self.tracker
        fresh = RunTracker(
            t.config,
            tracer_provider=t.tracer_provider,
            meter_provider=t.meter_provider,
            sampler_factory=t.sampler_factory,
            attributes=t.attributes,
        )
        return {**self.__dict__, "tracker": fresh, "_step_from": 0}

    def _environ(self, trainer: Any) -> dict[str, str]:
        return rank_environ(trainer, os.environ)

    def _check_rank(self, trainer: Any) -> None:
        if self.tracker.session is not None:
            check_rank(self.tracker.session.rank, trainer)

    # ---- fit ----
    @guarded
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.tracker.run is not None:
            return
        attrs: dict[str, AttrValue] = {
            A.TRAIN_GRADIENT_ACCUMULATION_STEPS: int(trainer.accumulate_grad_batches),
            A.TRAIN_MODEL_TYPE: type(pl_module).__name__,
        }
        if trainer.max_steps and trainer.max_steps > 0:
            attrs[A.TRAIN_MAX_STEPS] = int(trainer.max_steps)
        if trainer.max_epochs is not None and trainer.max_epochs >= 0:
            attrs[A.TRAIN_NUM_TRAIN_EPOCHS] = float(trainer.max_epochs)
        self.tracker.begin_run(attrs, environ=self._environ(trainer))
        self._check_rank(trainer)

    @guarded
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        run = self.tracker.run
        if run is None:
            return
        # The loops' state (a resumed global step) and the data are known by now.
        run.end_attributes[A.TRAIN_START_STEP] = int(trainer.global_step)
        total = float(trainer.estimated_stepping_batches)  # inf: no max_steps nor max_epochs
        if math.isfinite(total):
            self.tracker.plan(int(total), int(trainer.global_step))

    @guarded
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.tracker.begin_epoch(int(trainer.current_epoch), int(trainer.global_step))

    @guarded
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.tracker.step_open:
            return  # a step spans every batch it accumulates
        self._step_from = trainer.global_step
        self.tracker.step_begin(trainer.global_step + 1)  # the hot path: one clock reading

    @guarded
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.tracker.step_open or trainer.global_step == self._step_from:
            return  # no optimizer step yet: the batch was accumulated
        self.tracker.step_end()
        if self.log_metrics and _should_log(trainer):
            for key, value in self.tracker.log_values().items():
                pl_module.log(key, float(value), on_step=True, on_epoch=False, batch_size=1)

    @guarded
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.tracker.step_open:  # an unfinished accumulation is measured, not counted
            self.tracker.step_end(None, counted=trainer.global_step != self._step_from)
        self.tracker.end_epoch(int(trainer.global_step))

    @guarded
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.tracker.end_run(None, int(trainer.global_step))

    @guarded
    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self.tracker.fail(exception)

    @guarded
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # A safety net: whatever ends a stage without on_fit_end/on_exception, close what is open.
        self.tracker.close()


def _should_log(trainer: Any) -> bool:
    """Whether Lightning sends this step's logged values to the loggers (every n steps)."""
    connector = getattr(trainer, "_logger_connector", None)
    return bool(getattr(connector, "should_update_logs", True))
