"""Hugging Face ``transformers`` integration: spans with energy and CO2e per run, epoch and step.

Importing this module imports transformers (``import otel_energy`` never does) and wraps
``Trainer.train``/``evaluate``/``predict`` so that our callbacks see failures and evaluation
boundaries, which the callback events alone do not reveal. The wrappers do nothing for trainers
without an ``EnergyCallback``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from transformers import Trainer, TrainerCallback

from otel_energy.config import EnergyConfig, load_config
from otel_energy.distributed.job import JobContext, RunPart, default_store, finish_job, job_context
from otel_energy.engine.predict import (
    Predictor,
    Progress,
    Projection,
    attach_gauges,
    remaining_intensity,
)
from otel_energy.engine.runtime import acquire_sampler, build_sampler, release_sampler
from otel_energy.engine.sampler import Sampler
from otel_energy.engine.signals import (
    Terminated,
    TerminationGuard,
    install_termination_guard,
    interrupts_deferred,
    uninstall_termination_guard,
)
from otel_energy.history.ledger import ledger_path, record, under_parent_run
from otel_energy.history.rows import TimelineRecorder, row_from_totals, utc_iso
from otel_energy.integrations.hooks import LOG_KEYS, guarded, patch_init, unpatch_init
from otel_energy.integrations.transformers.eco2ai import (
    EXPORT_FORMATS,
    CarbonConfig,
    CarbonMetrics,
    CarbonReport,
)
from otel_energy.telemetry.ids import use_private_ids
from otel_energy.telemetry.instruments import SCOPE, attach
from otel_energy.telemetry.spans import Interval, SpanEnergyRecorder
from otel_energy.telemetry.step_histogram import step_histogram
from otel_energy.version import __version__

__all__ = ["CarbonConfig", "Eco2AICallback", "EnergyCallback"]

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
        self.config = config or load_config()
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._sampler_factory = sampler_factory or (lambda: build_sampler(self.config))
        self._sampler: Sampler | None = None
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
        self._timeline: TimelineRecorder | None = None
        self._started_at = ""

    # ---- set-up and tear-down ----
    def _acquire(self) -> SpanEnergyRecorder:
        if self._rec is None:
            self._sampler = acquire_sampler(self._sampler_factory)
            if self._sampler.newest_sample_s == float("-inf"):
                # Freshly started (not by the instrumentor): wait once, at most 5 s, for discovery
                # and a first sample, so that the run's first moments are measured, not missed.
                self._sampler.wait_for_sample(float("-inf"), 5.0)
            tp = self._tracer_provider or trace.get_tracer_provider()
            tracer = tp.get_tracer(SCOPE, __version__)
            use_private_ids(tracer)
            mp = self._meter_provider or metrics.get_meter_provider()
            self._providers = (tp, mp)
            attach(mp, self._sampler)
            job = job_context(os.environ, self._sampler.rank)
            self._job = (job, tracer)
            self._rec = SpanEnergyRecorder(
                self._sampler, tracer, step_histogram(mp), root_context=job.context
            )
            self._rec.on_complete.append(self._on_complete)
            attach_gauges(mp, self._prediction_source)
        self._users += 1
        return self._rec

    def _release(self) -> None:
        self._users -= 1
        if self._users > 0 or self._rec is None:
            return
        rec, sampler = self._rec, self._sampler
        self._rec, self._sampler = None, None
        rec.flush()
        rec.close()
        if sampler is not None:
            release_sampler(sampler)

    @property
    def recorder(self) -> SpanEnergyRecorder | None:
        return self._rec

    # ---- training ----
    @guarded
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        rec = self._acquire()
        model = kwargs.get("model")
        attrs: dict[str, Any] = {
            "otel_energy.train.max_steps": int(state.max_steps or 0),
            "otel_energy.train.num_train_epochs": float(args.num_train_epochs),
            "otel_energy.train.gradient_accumulation_steps": int(args.gradient_accumulation_steps),
            "otel_energy.train.per_device_train_batch_size": int(args.per_device_train_batch_size),
            "otel_energy.train.start_step": int(state.global_step),
        }
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type:
            attrs["otel_energy.train.model_type"] = str(model_type)
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
            self._timeline = TimelineRecorder(rec.sampler)

    def _run_attributes(self) -> dict[str, Any]:
        return {}

    @guarded
    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._rec is None or self._run is None:
            return
        epoch = math.floor((state.epoch or 0.0) + 1e-9)
        self._epoch = self._rec.start(
            "epoch", "epoch", self._run, {"otel_energy.train.epoch": epoch}
        )
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

    def _predict(self, step: int, epoch_end: bool) -> Projection | None:
        """Project the run's totals (arithmetic on the sampler's figures; no I/O)."""
        rec, run, predictor = self._rec, self._run, self.predictor
        if rec is None or run is None or predictor is None:
            return None
        now = self._progress(step)
        if epoch_end:
            predictor.epoch_end(now)
        snap = rec.sampler.snapshot()
        override = rec.intensity_override
        g_now = override.g_per_kwh if override is not None else snap.intensity.g_per_kwh
        provider = None if override is not None else rec.sampler.intensity_provider
        p = predictor.update(now, snap.pue, lambda s: remaining_intensity(provider, g_now, s))
        if p is not None and run.span is not None:
            run.span.add_event("otel_energy.prediction", p.span_attributes())
        return p

    def _progress(self, step: int) -> Progress:
        assert self._rec is not None and self._run is not None
        w = self._rec.provisional(self._run.t0_s)
        return Progress(int(step), w.duration_s, w.energy_j, self._rec.co2e_of(w))

    def _prediction_source(self) -> tuple[Projection | None, dict[str, Any]]:
        rec, predictor = self._rec, self.predictor
        if self._run is None or rec is None or predictor is None:
            return None, {}
        return predictor.latest, rec.identity

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
                    "otel_energy.train.steps": epoch.steps,
                    "otel_energy.duration": self._elapsed(epoch),
                },
            )

    def _close_run(self, error: BaseException | None, global_step: int | None) -> None:
        assert self._rec is not None and self._run is not None
        for ev in reversed(self._evals):
            self._rec.finish(ev, error)
        self._finish_open(("step", "epoch"), error)
        run, self._run = self._run, None
        attrs: dict[str, Any] = {
            "otel_energy.train.steps": run.steps,
            "otel_energy.duration": self._elapsed(run),
        }
        if global_step is not None:
            attrs["otel_energy.train.global_step"] = int(global_step)
        if self.predictor is not None and self.predictor.latest is not None:
            attrs.update(self.predictor.latest.span_attributes())
        self._rec.finish(run, error, attrs)
        self.last_run = run
        self._drop_guard()
        rank, identity = self._rec.sampler.rank, self._rec.identity
        self._release()  # flushes: the run span has its energy before train() returns
        self._finish_job(run, rank, identity)
        self._write_ledger(run, error)

    def _finish_job(self, run: Interval, rank: Any, identity: dict[str, Any]) -> None:
        """Hand this rank's run totals to the job root (rank 0 emits it; no I/O here)."""
        if self._job is None or run.result is None:
            return
        job, tracer = self._job
        part = RunPart(
            rank.rank or 0,
            run.result.energy_j,
            run.co2e_g,
            run.start_ns,
            run.end_ns,
            run.result.estimated,
        )
        store = default_store() if job.derived else None
        finish_job(rank, job, tracer, part, identity, store)

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

    def _write_ledger(self, run: Interval, error: BaseException | None) -> None:
        """Append this training run to the run ledger (after training: one local write)."""
        timeline, self._timeline = self._timeline, None
        if timeline is None:
            return
        curves = timeline.stop()
        if run.result is None and self._rec is not None:
            self._rec.flush()  # still shared (an evaluation holds it): complete the run now
        w = run.result
        if w is None:
            return
        sampler = timeline.sampler
        row = row_from_totals(
            "train",
            self._started_at,
            w.duration_s,
            w.energy_j,
            run.co2e_g,
            w.by_type,
            w.estimated,
            sampler.snapshot(),
            sampler,
            "ok" if error is None else "error",
            curves,
        )
        record(row)

    def _on_train_error(self, error: BaseException) -> None:
        # A second Ctrl-C landing in here would lose the spans: hold it off until they are
        # closed. It is then dropped: the run is already ending with ``error``.
        with interrupts_deferred():
            try:
                if self._rec is not None and self._run is not None:
                    self._close_run(error, None)
            except BaseException:
                _log.exception("otel-energy: closing spans after a training error failed")

    # ---- evaluation and prediction ----
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
                    {"otel_energy.eval.steps": iv.steps, "otel_energy.duration": self._elapsed(iv)},
                )
            self._release()
        except BaseException:
            _log.exception("otel-energy: ending a %s span failed", iv.kind)

    @guarded
    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._evals:
            self._evals[-1].steps += 1

    # ---- logs ----
    @guarded
    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        outer = self._run or (self._evals[0] if self._evals else None)
        if self._rec is None or outer is None or logs is None:
            return
        w = self._rec.provisional(outer.t0_s)  # never waits: the tail is extrapolated
        last_outer, last_t, last_e = self._last_log or (outer, outer.t0_s, 0.0)
        if last_outer is not outer:  # a new outer interval: its first log covers it from t0
            last_t, last_e = outer.t0_s, 0.0
        dt = w.t1_s - last_t
        power = (w.energy_j - last_e) / dt if dt > 0 else w.avg_power_w
        self._last_log = (outer, w.t1_s, w.energy_j)
        values = dict(zip(LOG_KEYS, (w.energy_j, w.co2e_g, power), strict=True))
        if self.predictor is not None and self.predictor.latest is not None:
            values.update(self.predictor.latest.log_values())
        logs.update(values)
        history = getattr(state, "log_history", None)
        if history and history[-1].get("step") == state.global_step:
            history[-1].update(values)  # Trainer.log appended a copy before calling us

    def _on_complete(self, iv: Interval) -> None:
        """Hook for subclasses; called on the sampler thread (or in flush) per finished interval."""


# ---- Trainer wrappers ----
def _ours(trainer: Any) -> list[EnergyCallback]:
    handler = getattr(trainer, "callback_handler", None)
    return [cb for cb in getattr(handler, "callbacks", ()) if isinstance(cb, EnergyCallback)]


def _wrap_train(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        ours = _ours(self)
        if ours:
            # Run before the report_to loggers, so that the keys we add in on_log reach them.
            rest = [cb for cb in self.callback_handler.callbacks if cb not in ours]
            self.callback_handler.callbacks[:] = [*ours, *rest]
        try:
            return original(self, *args, **kwargs)
        except BaseException as exc:
            for cb in ours:
                cb._on_train_error(exc)
            raise

    return train


def _wrap_eval(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = [(cb, cb._begin_eval(kind)) for cb in _ours(self)]
            try:
                result = original(self, *args, **kwargs)
            except BaseException as exc:
                for cb, iv in started:
                    cb._end_eval(iv, exc)
                raise
            for cb, iv in started:
                cb._end_eval(iv, None)
            return result

        return run

    return wrap


_WRAPPERS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "train": _wrap_train,
    "evaluate": _wrap_eval("evaluate"),
    "predict": _wrap_eval("predict"),
}


def patch_trainer() -> None:
    """Wrap ``Trainer.train``/``evaluate``/``predict`` once (idempotent)."""
    for name, make in _WRAPPERS.items():
        current = getattr(Trainer, name)
        if not getattr(current, "_otel_energy", False):
            wrapper = make(current)
            wrapper._otel_energy = True  # type: ignore[attr-defined]
            setattr(Trainer, name, wrapper)


def unpatch_trainer() -> None:
    """Restore the original methods."""
    for name in _WRAPPERS:
        current = getattr(Trainer, name)
        if getattr(current, "_otel_energy", False):
            setattr(Trainer, name, current.__wrapped__)


patch_trainer()


def add_callback_on_init(
    tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> None:
    """Make every new Trainer (and subclass) carry one ``EnergyCallback`` (zero-code path).

    A trainer that already has one (the user added it by hand) does not get a second. Ours goes
    first in the handler list, ahead of the ``report_to`` loggers.
    """

    def add_ours(trainer: Any) -> None:
        if not _ours(trainer):
            cb = EnergyCallback(tracer_provider=tracer_provider, meter_provider=meter_provider)
            trainer.callback_handler.callbacks.insert(0, cb)

    patch_init(Trainer, add_ours, "EnergyCallback")


def remove_callback_on_init() -> None:
    """Undo ``add_callback_on_init`` (trainers already built keep their callback)."""
    unpatch_init(Trainer)


# ---- the Eco2AI plugin API ----
class Eco2AICallback(EnergyCallback):
    """The Eco2AI plugin's callback, on the same sampler and spans as ``EnergyCallback``.

    Adds ``get_current_metrics()``, ``generate_report()``, ``export_metrics()`` and a JSON carbon
    report written to ``config.report_path`` at the end of training.
    """

    def __init__(
        self,
        config: CarbonConfig | None = None,
        integrations: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.carbon_config = config or CarbonConfig()
        super().__init__(config=self.carbon_config.to_energy_config(), **kwargs)
        env = self.carbon_config.environment()
        self._sampler_factory = kwargs.get("sampler_factory") or (
            lambda: build_sampler(self.config, env)
        )
        self.integrations = list(integrations or [])
        self._epochs: list[dict[str, Any]] = []
        self._report: CarbonReport | None = None
        if self.carbon_config.use_real_time_carbon and self.config.carbon is None:
            _log.warning(
                "otel-energy: CarbonConfig.use_real_time_carbon needs a live provider: set"
                " OTEL_PYTHON_ENERGY_CARBON_PROVIDER (electricitymaps, watttime or uk) and its"
                " zone and key (docs/carbon.md); using %s.",
                self.config.intensity.source,
            )
        if self.carbon_config.auto_detect_location:
            _log.warning(
                "otel-energy: CarbonConfig.auto_detect_location is not supported (no location"
                " lookup is made); set OTEL_PYTHON_ENERGY_ZONE or _LATITUDE/_LONGITUDE."
            )
        self._prometheus_served = False

    def _acquire(self) -> SpanEnergyRecorder:
        rec = super()._acquire()
        if self.carbon_config.export_prometheus and not self._prometheus_served:
            self._prometheus_served = True
            _serve_prometheus(self.carbon_config.prometheus_port, rec.sampler)
        return rec

    def _run_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"otel_energy.train.project": self.carbon_config.project_name}
        if self.carbon_config.region:
            attrs["otel_energy.train.region"] = self.carbon_config.region
        return attrs

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._epochs, self._report = [], None
        super().on_train_begin(args, state, control, **kwargs)

    def _on_complete(self, iv: Interval) -> None:
        if iv.kind == "epoch" and iv.result is not None:
            w = iv.result
            row = {
                "epoch": iv.attributes.get("otel_energy.train.epoch", len(self._epochs)),
                "steps": iv.steps,
                "duration_s": w.duration_s,
                "energy_j": w.energy_j,
                "avg_power_w": w.avg_power_w,
                "co2e_g": iv.co2e_g,
                "by_type_j": w.by_type,
            }
            self._epochs.append(row)
            if self.carbon_config.log_level in ("EPOCH", "STEP"):
                _log.info(
                    "otel-energy: epoch %s: %.1f J, %.1f W, %.4f gCO2e",
                    row["epoch"],
                    w.energy_j,
                    w.avg_power_w,
                    iv.co2e_g,
                )
        elif iv.kind == "step" and self.carbon_config.log_level == "STEP" and iv.result:
            _log.info(
                "otel-energy: step %s: %.3f J",
                iv.attributes.get("otel_energy.train.step"),
                iv.result.energy_j,
            )

    def _close_run(self, error: BaseException | None, global_step: int | None) -> None:
        sampler = self._sampler
        super()._close_run(error, global_step)
        run = self.last_run
        if run is None or run.result is None or sampler is None:
            return
        self._report = self._build_report(run, sampler)
        if self.carbon_config.save_report:
            try:
                Path(self.carbon_config.report_path).write_text(self._report.to_json())
            except OSError as exc:
                _log.error(
                    "otel-energy: cannot write the carbon report to %s (%s); fix"
                    " CarbonConfig.report_path.",
                    self.carbon_config.report_path,
                    exc,
                )
        for integration in self.integrations:
            for method, arg in (
                ("log_metrics", self._report.total),
                ("on_training_end", self._report),
            ):
                try:
                    getattr(integration, method, lambda _: None)(arg)
                except Exception:
                    _log.exception("otel-energy: integration %r failed", integration)

    def _build_report(self, run: Interval, sampler: Sampler) -> CarbonReport:
        w = run.result
        assert w is not None
        snap = sampler.snapshot()
        intensity = snap.intensity
        total = CarbonMetrics(
            time.time(),
            w.duration_s,
            w.energy_j,
            w.avg_power_w,
            run.co2e_g,
            dict(w.by_type),
            w.estimated,
        )
        devices = [
            {**d.info.attributes(), "energy_j": d.energy_j, "co2e_g": d.co2e_g}
            for d in snap.devices
        ]
        trace_id = (
            format(run.span.get_span_context().trace_id, "032x") if run.span is not None else None
        )
        return CarbonReport(
            self.carbon_config.project_name,
            total,
            intensity.g_per_kwh,
            intensity.source,
            snap.pue,
            devices,
            list(self._epochs),
            run.steps,
            dict(sampler.rank.attributes()),
            trace_id,
        )

    def get_current_metrics(self) -> CarbonMetrics:
        """Energy and CO2e of the run so far (never waits; the tail is extrapolated)."""
        run = self._run
        if run is None or self._rec is None:
            if self._report is not None:
                return self._report.total
            return CarbonMetrics(time.time(), 0.0, 0.0, 0.0, 0.0)
        w = self._rec.provisional(run.t0_s)
        return CarbonMetrics(
            time.time(),
            w.duration_s,
            w.energy_j,
            w.avg_power_w,
            w.co2e_g,
            dict(w.by_type),
            w.estimated,
        )

    def generate_report(self) -> CarbonReport:
        """The report of the last finished run.

        Raises:
            RuntimeError: no training run has finished yet.
        """
        if self._report is None:
            raise RuntimeError(
                "generate_report() needs a finished training run; call it after trainer.train()."
            )
        return self._report

    def export_metrics(self, format: str = "json") -> str:
        """The current metrics as text. ``format``: ``json``."""
        if format not in EXPORT_FORMATS:
            raise ValueError(
                f"export_metrics(format={format!r}) is not valid: expected one of"
                f" {', '.join(EXPORT_FORMATS)}."
            )
        return json.dumps(self.get_current_metrics().to_dict(), indent=2)

    @property
    def total_energy(self) -> float:
        """Energy of the current or last run in kWh (the Eco2AI convention)."""
        return self.get_current_metrics().energy_kwh

    @property
    def total_co2(self) -> float:
        """CO2e of the current or last run in kg (the Eco2AI convention)."""
        return self.get_current_metrics().co2_kg


def _serve_prometheus(port: int, sampler: Sampler) -> None:
    """Expose our metrics on ``port`` for Prometheus (needs opentelemetry-exporter-prometheus)."""
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from prometheus_client import start_http_server
    except ImportError:
        _log.error(
            "otel-energy: CarbonConfig.export_prometheus needs the prometheus extra:"
            " pip install '.[prometheus]' (from a checkout of otel-energy)."
        )
        return
    start_http_server(port, addr="127.0.0.1")
    provider = SdkMeterProvider(metric_readers=[PrometheusMetricReader()])
    attach(provider, sampler)
    _log.info("otel-energy: Prometheus metrics on http://127.0.0.1:%d/metrics", port)
