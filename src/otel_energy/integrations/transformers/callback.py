"""``EnergyCallback``: spans with energy and CO2e for the training run, each epoch and step.

Importing this module imports transformers (``import otel_energy`` never does) but patches
nothing: building an ``EnergyCallback`` installs the ``Trainer`` wrappers of
:mod:`~otel_energy.integrations.transformers.trainer_patch`, so that a hand-added callback sees
failures and evaluation boundaries too.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from transformers import TrainerCallback

from otel_energy.config import EnergyConfig
from otel_energy.distributed.job import JobContext, job_context
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import Sampler
from otel_energy.engine.signals import (
    Terminated,
    TerminationGuard,
    install_termination_guard,
    interrupts_deferred,
    uninstall_termination_guard,
)
from otel_energy.history.ledger import ledger_path, under_parent_run
from otel_energy.history.rows import utc_iso
from otel_energy.integrations.hooks import callback_config, guarded
from otel_energy.integrations.transformers.evaluation import EvaluationSpans
from otel_energy.integrations.transformers.progress import RunProgress
from otel_energy.integrations.transformers.run_records import finish_job, write_ledger
from otel_energy.integrations.transformers.trainer_patch import patch_trainer
from otel_energy.report.series import RunSeries
from otel_energy.session import Session, end_recording, open_session
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.predict import (
    Predictor,
    Progress,
    attach_gauges,
)
from otel_energy.telemetry.spans import Interval, SpanEnergyRecorder

__all__ = ["EnergyCallback"]

_log = logging.getLogger(__name__)


class EnergyCallback(RunProgress, EvaluationSpans, TrainerCallback):
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
        self.config = callback_config(type(self).__name__, config)
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._sampler_factory = sampler_factory or (lambda: build_sampler(self.config))
        # A hand-added callback needs the wrappers too (failures, evaluate/predict spans).
        patch_trainer(self)
        self._session: Session | None = None
        self._rec: SpanEnergyRecorder | None = None
        self._users = 0
        self._run: Interval | None = None
        self._epoch: Interval | None = None
        self._step: tuple[float, int] | None = None  # (start s on the sampler clock, number)
        self._evals: list[Interval] = []
        # (outer interval, t_s, energy_j) at the previous on_log: a log's power covers the time
        # since the previous log of the same outer interval (the run, or a standalone evaluate).
        self._last_log: tuple[Interval, float, float] | None = None
        self._guard: TerminationGuard | None = None
        self._providers: tuple[Any, ...] = ()
        self._failed_hooks: set[str] = set()
        self.last_run: Interval | None = None
        self._job: tuple[JobContext, Any] | None = None  # (job context, tracer) of the run
        self.predictor: Predictor | None = None
        self._timeline: RunSeries | None = None
        self._started_at = ""

    # ---- set-up and tear-down ----
    def _acquire(self) -> SpanEnergyRecorder:
        if self._rec is None:
            # Waits once, at most 5 s, for discovery and a first sample, so that the run's first
            # moments are measured, not missed (at once if the instrumentor started it earlier).
            session = open_session(self._sampler_factory)
            self._session = session
            mp = self._meter_provider or metrics.get_meter_provider()
            tp = self._tracer_provider or trace.get_tracer_provider()
            self._providers = (tp, mp)
            job = job_context(os.environ, session.rank)
            self._rec = session.recorder(tp, mp, root_context=job.context)
            self._job = (job, self._rec.tracer)
            self._rec.on_complete.append(self._on_complete)
            attach_gauges(mp, self._prediction_source)
        self._users += 1
        return self._rec

    def _release(self) -> None:
        self._users -= 1
        if self._users > 0 or self._rec is None:
            return
        rec, session = self._rec, self._session
        self._rec, self._session = None, None
        end_recording(rec, session)  # the run span has its energy before training returns

    @property
    def recorder(self) -> SpanEnergyRecorder | None:
        return self._rec

    # ---- training ----
    @guarded
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        rec = self._acquire()
        model = kwargs.get("model")
        attrs: dict[str, Any] = {
            A.TRAIN_MAX_STEPS: int(state.max_steps or 0),
            A.TRAIN_NUM_TRAIN_EPOCHS: float(args.num_train_epochs),
            A.TRAIN_GRADIENT_ACCUMULATION_STEPS: int(args.gradient_accumulation_steps),
            A.TRAIN_PER_DEVICE_TRAIN_BATCH_SIZE: int(args.per_device_train_batch_size),
            A.TRAIN_START_STEP: int(state.global_step),
        }
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type:
            attrs[A.TRAIN_MODEL_TYPE] = str(model_type)
        attrs.update(self._run_attributes())
        self._run = rec.start("run", "train", None, attrs)
        self._last_log = (self._run, self._run.t0_s, 0.0)
        self._guard = install_termination_guard()
        if self._guard is not None:
            self._guard.register(self._on_terminate, *self._providers)
        self.predictor = None
        if self.config.predict_after_steps >= 0 and state.max_steps:
            start = Progress(int(state.global_step), 0.0, 0.0, 0.0)
            self.predictor = Predictor(int(state.max_steps), start, self.config.predict_after_steps)
        self._started_at = utc_iso()
        if self._timeline is None and not under_parent_run() and ledger_path() is not None:
            self._timeline = RunSeries(rec.sampler)

    def _run_attributes(self) -> dict[str, Any]:
        return {}

    @guarded
    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._rec is None or self._run is None:
            return
        epoch = math.floor((state.epoch or 0.0) + 1e-9)
        self._epoch = self._rec.start("epoch", "epoch", self._run, {A.TRAIN_EPOCH: epoch})
        if self.predictor is not None:
            self.predictor.epoch_begin(self._progress(state.global_step))

    @guarded
    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        rec = self._rec
        if rec is None:
            return
        # Hot path: only a clock reading; the span is made on the sampler thread (step_end).
        self._step = (rec.step_begin(), state.global_step + 1)

    @guarded
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._rec is None or self._step is None:
            return
        self._end_step(None)
        for parent in (self._epoch, self._run):
            if parent is not None:
                parent.steps += 1
        if self.predictor is not None and self.predictor.due_at_step(state.global_step):
            self._predict(state.global_step, epoch_end=False)

    def _end_step(self, error: BaseException | None) -> None:
        """Queue the open step (its span is created and ended on the sampler thread)."""
        assert self._rec is not None and self._step is not None
        (t0_s, number), self._step = self._step, None
        every = self.config.step_span_every
        record = every > 0 and number % every == 0
        self._rec.step_end(t0_s, number, self._epoch or self._run, record, error)

    @guarded
    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._rec is None or self._epoch is None:
            return
        self._finish_open(("step", "epoch"), None)
        self._predict(state.global_step, epoch_end=True)

    @guarded
    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._rec is None or self._run is None:
            return
        self._close_run(None, state.global_step)

    def _elapsed(self, iv: Interval) -> float:
        return (self._rec.now() if self._rec else iv.t0_s) - iv.t0_s

    def _finish_open(self, kinds: tuple[str, ...], error: BaseException | None) -> None:
        assert self._rec is not None
        if "step" in kinds and self._step is not None:
            self._end_step(error)
        if "epoch" in kinds and self._epoch is not None:
            epoch, self._epoch = self._epoch, None
            self._rec.finish(
                epoch,
                error,
                {
                    A.TRAIN_STEPS: epoch.steps,
                    A.DURATION: self._elapsed(epoch),
                },
            )

    def _close_run(self, error: BaseException | None, global_step: int | None) -> None:
        assert self._rec is not None and self._run is not None
        for ev in reversed(self._evals):
            self._rec.finish(ev, error)
        self._finish_open(("step", "epoch"), error)
        run, self._run = self._run, None
        attrs: dict[str, Any] = {
            A.TRAIN_STEPS: run.steps,
            A.DURATION: self._elapsed(run),
        }
        if global_step is not None:
            attrs[A.TRAIN_GLOBAL_STEP] = int(global_step)
        if self.predictor is not None and self.predictor.latest is not None:
            attrs.update(self.predictor.latest.span_attributes())
        self._rec.finish(run, error, attrs)
        self.last_run = run
        self._drop_guard()
        rank, identity = self._rec.sampler.rank, self._rec.identity
        self._release()  # flushes: the run span has its energy before train() returns
        finish_job(self._job, run, rank, identity)
        timeline, self._timeline = self._timeline, None
        write_ledger(timeline, run, error, self._started_at, self._rec)

    def _drop_guard(self) -> None:
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.unregister(self._on_terminate)
            uninstall_termination_guard(guard)

    def _on_terminate(self, signum: int) -> None:
        """SIGTERM: end the open spans with an error naming the signal (on the guard's thread,
        while the main thread waits in the signal handler)."""
        error = Terminated(signum)
        if self._rec is not None and self._run is not None:
            self._close_run(error, None)
        for iv in list(reversed(self._evals)):
            self._end_eval(iv, error)
        if self._rec is not None:  # the signal came while the main thread was ending the run
            self._rec.flush()

    def _on_train_error(self, error: BaseException) -> None:
        # A second Ctrl-C landing in here would lose the spans: hold it off until they are
        # closed. It is then dropped: the run is already ending with ``error``.
        with interrupts_deferred():
            try:
                if self._rec is not None and self._run is not None:
                    self._close_run(error, None)
            except BaseException:
                _log.exception("otel-energy: closing spans after a training error failed")

    def _on_complete(self, iv: Interval) -> None:
        """Hook for subclasses; called on the sampler thread (or in flush) per finished interval."""
