"""``LightningEnergyCallback``: spans for ``fit`` (``train``), its epochs and optimizer steps.

Validation, test and predict spans come from ``evaluation.EvaluationHooks``. Hooks never raise and
never block on hardware: the sampler thread measures, the training thread only notes times.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otel_energy.config import EnergyConfig
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import Sampler
from otel_energy.integrations.hooks import LOG_KEYS, callback_config, guarded, job_log_values
from otel_energy.integrations.lightning.evaluation import FRAMEWORK, EvaluationHooks
from otel_energy.integrations.lightning.ranks import check_rank, rank_environ
from otel_energy.session import Session, end_recording, open_session
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.spans import AttrValue, Interval, SpanEnergyRecorder


class LightningEnergyCallback(EvaluationHooks, Callback):
    """Spans for ``fit`` (``train``), each epoch, each optimizer step, validation, test, predict.

    Args:
        tracer_provider: where spans go (the global provider by default).
        meter_provider: where the step-energy histogram and ``hw.*`` metrics go (global default).
        config: settings (``OTEL_PYTHON_ENERGY_*`` from the environment by default).
        sampler_factory: builds the sampler from an environment that carries the trainer's rank,
            if no sampler runs yet in this process (tests inject one).
        log_metrics: log ``otel_energy/energy_j`` (J), ``otel_energy/co2e_g`` (g) and
            ``otel_energy/power_w`` (W) with ``pl_module.log`` at the trainer's logging steps.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        config: EnergyConfig | None = None,
        sampler_factory: Callable[[Mapping[str, str]], Sampler] | None = None,
        log_metrics: bool = True,
    ) -> None:
        self.config = callback_config(type(self).__name__, config)
        self.log_metrics = log_metrics
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._factory = sampler_factory  # None: from the config (a lambda would not pickle)
        self._session: Session | None = None
        self._rec: SpanEnergyRecorder | None = None
        self._users = 0
        self._run: Interval | None = None
        self._epoch: Interval | None = None
        self._step: float | None = None  # start (s, sampler clock) of the open step
        self._step_from = 0  # trainer.global_step when the open step began
        self._eval: Interval | None = None
        self._eval_acquired = False
        self._last_log: tuple[float, float] | None = None  # (t_s, energy_j) at the previous log
        self._failed_hooks: set[str] = set()
        self.last_run: Interval | None = None

    @property
    def recorder(self) -> SpanEnergyRecorder | None:
        return self._rec

    def __getstate__(self) -> dict[str, Any]:
        """Settings only: ``ddp_spawn`` pickles the trainer with its callbacks into each rank,
        which measures on its own; live spans and the sampler stay in this process."""
        state = dict(self.__dict__)
        state.update(_session=None, _rec=None, _users=0, _run=None, _epoch=None)
        state.update(_step=None, _eval=None, _eval_acquired=False, _last_log=None, last_run=None)
        return state

    # ---- set-up and tear-down ----
    def _acquire(self, trainer: Any) -> SpanEnergyRecorder:
        if self._rec is None:
            env = rank_environ(trainer, os.environ)
            factory = self._factory or functools.partial(build_sampler, self.config)
            # Waits once, at most 5 s, for discovery and a first sample, so that the run's first
            # moments are measured, not missed (at once if the instrumentor started it earlier).
            self._session = open_session(lambda: factory(env))
            check_rank(self._session.rank, trainer)
            self._rec = self._session.recorder(self._tracer_provider, self._meter_provider)
        self._users += 1
        return self._rec

    def _release(self) -> None:
        self._users -= 1
        if self._users > 0 or self._rec is None:
            return
        rec, session = self._rec, self._session
        self._rec, self._session = None, None
        end_recording(rec, session)  # the run span has its energy before training returns

    def _elapsed(self, iv: Interval) -> float:
        return (self._rec.now() if self._rec else iv.t0_s) - iv.t0_s

    # ---- fit ----
    @guarded
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._run is not None:
            return
        rec = self._acquire(trainer)
        attrs: dict[str, AttrValue] = {
            **FRAMEWORK,
            A.TRAIN_GRADIENT_ACCUMULATION_STEPS: int(trainer.accumulate_grad_batches),
            A.TRAIN_MODEL_TYPE: type(pl_module).__name__,
        }
        if trainer.max_steps and trainer.max_steps > 0:
            attrs[A.TRAIN_MAX_STEPS] = int(trainer.max_steps)
        if trainer.max_epochs is not None and trainer.max_epochs >= 0:
            attrs[A.TRAIN_NUM_TRAIN_EPOCHS] = float(trainer.max_epochs)
        self._run = rec.start("run", "train", None, attrs)
        self._last_log = (self._run.t0_s, 0.0)

    @guarded
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._run is not None:  # the loops' state (a resumed global step) is restored by now
            self._run.end_attributes[A.TRAIN_START_STEP] = int(trainer.global_step)

    @guarded
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._rec is None or self._run is None:
            return
        attrs: dict[str, AttrValue] = {
            **FRAMEWORK,
            A.TRAIN_EPOCH: int(trainer.current_epoch),
        }
        self._epoch = self._rec.start("epoch", "epoch", self._run, attrs)

    @guarded
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        rec = self._rec
        if rec is None or self._step is not None:
            return  # a step spans every batch it accumulates
        self._step_from = trainer.global_step
        # Hot path: only a clock reading; the span is made on the sampler thread (step_end).
        self._step = rec.step_begin()

    @guarded
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._rec is None or self._step is None or trainer.global_step == self._step_from:
            return  # no optimizer step yet: the batch was accumulated
        self._finish_step()
        if self.log_metrics and _should_log(trainer):
            self._log_energy(pl_module)

    def _finish_step(self, error: BaseException | None = None) -> None:
        self._end_step(error)
        for parent in (self._epoch, self._run):
            if parent is not None:
                parent.steps += 1

    def _end_step(self, error: BaseException | None) -> None:
        """Queue the open step (its span is created and ended on the sampler thread)."""
        assert self._rec is not None and self._step is not None
        t0_s, self._step = self._step, None
        number, every = self._step_from + 1, self.config.step_span_every
        record = every > 0 and number % every == 0
        self._rec.step_end(t0_s, number, self._epoch or self._run, record, error, FRAMEWORK)

    def _log_energy(self, pl_module: LightningModule) -> None:
        assert self._rec is not None and self._run is not None
        w = self._rec.provisional(self._run.t0_s)  # never waits: the tail is extrapolated
        last_t, last_e = self._last_log or (self._run.t0_s, 0.0)
        dt = w.t1_s - last_t
        power = (w.energy_j - last_e) / dt if dt > 0 else w.avg_power_w
        self._last_log = (w.t1_s, w.energy_j)
        values = dict(zip(LOG_KEYS, (w.energy_j, w.co2e_g, power), strict=True))
        for key, value in (values | job_log_values(w)).items():
            pl_module.log(key, float(value), on_step=True, on_epoch=False, batch_size=1)

    @guarded
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._rec is None:
            return
        self._finish_open(None, trainer)

    def _finish_open(self, error: BaseException | None, trainer: Any) -> None:
        assert self._rec is not None
        if self._step is not None:
            if trainer is not None and trainer.global_step != self._step_from:
                self._finish_step(error)
            else:  # an unfinished accumulation: measured, but not an optimizer step
                self._end_step(error)
        if self._epoch is not None:
            epoch, self._epoch = self._epoch, None
            attrs = {
                A.TRAIN_STEPS: epoch.steps,
                A.DURATION: self._elapsed(epoch),
            }
            self._rec.finish(epoch, error, attrs)

    @guarded
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close_run(None, trainer)

    def _close_run(self, error: BaseException | None, trainer: Any) -> None:
        if self._rec is None or self._run is None:
            return
        self._end_eval(error)
        self._finish_open(error, trainer)
        run, self._run = self._run, None
        attrs: dict[str, AttrValue] = {
            A.TRAIN_STEPS: run.steps,
            A.DURATION: self._elapsed(run),
        }
        if error is None:
            attrs[A.TRAIN_GLOBAL_STEP] = int(trainer.global_step)
        self._rec.finish(run, error, attrs)
        self.last_run = run
        self._release()

    @guarded
    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._close_run(exception, trainer)
        self._end_eval(exception)

    @guarded
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # A safety net: whatever ends a stage without on_fit_end/on_exception, close what is open.
        self._end_eval(None)
        self._close_run(None, trainer)


def _should_log(trainer: Any) -> bool:
    """Whether Lightning sends this step's logged values to the loggers (every n steps)."""
    connector = getattr(trainer, "_logger_connector", None)
    return bool(getattr(connector, "should_update_logs", True))
