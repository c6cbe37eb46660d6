"""``RunTracker``: one training run's lifecycle, whatever the framework.

An integration maps its framework's events onto ``begin_run``/``end_run`` (or ``fail``),
``begin_epoch``/``end_epoch``, ``step_begin``/``step_end`` (the hot path: one clock reading, one
append), ``begin_phase``/``phase_step``/``end_phase`` and ``log_values``. The tracker owns the
rest, so every integration gets all of it: spans with their energy, the projection, the SIGTERM
guard, the job root's totals and the ledger row. It holds the process's session exactly while a
run or a phase is open (no count of its own); callers guard it (``integrations.hooks``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otel_energy.carbon import Intensity
from otel_energy.config import EnergyConfig, load_config
from otel_energy.engine.signals import Terminated, interrupts_deferred
from otel_energy.session import Session
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.predict import Predictor, Progress, Projection
from otel_energy.telemetry.spans import AttrValue, Interval, SpanEnergyRecorder
from otel_energy.telemetry.step_groups import GROUPED, NO_SPAN, OWN_SPAN, StepHook
from otel_energy.tracker.outcome import RunRecords
from otel_energy.tracker.progress import LogClock, progress, project
from otel_energy.tracker.recording import Recording, SamplerFactory, SignalHold, open_recording


class RunTracker:
    """The lifecycle of training runs, their phases and what they leave behind.

    Args:
        config: settings (``OTEL_PYTHON_ENERGY_*`` from the environment by default); a PUE or
            intensity that differs from the running session's applies to this tracker's spans.
        tracer_provider, meter_provider: where spans and metrics go (the globals by default).
        sampler_factory: builds the sampler if none runs yet (tests inject fakes).
        attributes: put on every span this tracker makes (``otel_energy.framework``).
        intensity: a fixed grid intensity (gCO2e/kWh) asked in code (``EnergyMeter``).
    """

    def __init__(
        self,
        config: EnergyConfig | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        sampler_factory: SamplerFactory | None = None,
        attributes: Mapping[str, AttrValue] | None = None,
        intensity: Intensity | None = None,
    ) -> None:
        self.config = config or load_config()
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.sampler_factory = sampler_factory
        self.attributes: dict[str, AttrValue] = dict(attributes or {})
        self.intensity = intensity
        self.on_complete: list[Callable[[Interval], None]] = []  # per finished interval
        # Per finished step, however it is completed: (number, t0_s, t1_s, J, gCO2e).
        self.on_step: list[StepHook] = []
        self.on_open: list[Callable[[Session], None]] = []  # each time the session is taken
        self.on_close: list[Callable[[], None]] = []  # each time it is let go
        # After a run's spans are complete, before the session is let go: (run, error).
        self.on_run_end: list[Callable[[Interval, BaseException | None], None]] = []
        self._reset()

    def _reset(self) -> None:
        self._held: Recording | None = None
        self.run: Interval | None = None
        self.epoch: Interval | None = None
        self._step: tuple[float, int] | None = None  # (start s on the sampler clock, number)
        self.phases: list[Interval] = []
        self._logs = LogClock()
        self._guard: SignalHold | None = None
        self.predictor: Predictor | None = None
        self._records: RunRecords | None = None
        self.last_run: Interval | None = None

    # ---- the session: held while a run or a phase is open ----
    def _open(self, environ: Mapping[str, str] | None) -> SpanEnergyRecorder:
        if self._held is None:
            self._held = open_recording(self, environ)
            for hook in self.on_open:
                hook(self._held.session)
        return self._held.recorder

    def _close_if_idle(self) -> None:
        held = self._held
        if self.run is None and not self.phases and held is not None:
            self._held = None
            held.close()  # spans have their energy before the framework returns
            for hook in self.on_close:
                hook()

    @property
    def session(self) -> Session | None:  # while a run or a phase is open
        return self._held.session if self._held is not None else None

    @property
    def recorder(self) -> SpanEnergyRecorder | None:  # while a run or a phase is open
        return self._held.recorder if self._held is not None else None

    # ---- the run ----
    def begin_run(
        self,
        attributes: Mapping[str, AttrValue] | None = None,
        *,
        total_steps: int = 0,
        start_step: int = 0,
        environ: Mapping[str, str] | None = None,
    ) -> Interval:
        """A run (span ``train``) begins; ``total_steps`` (optimizer steps, 0: unknown) allows
        the projection; ``environ`` is the process's environment as the framework knows it."""
        if self.run is not None:
            return self.run
        rec = self._open(environ)
        self.run = rec.start("run", "train", None, {**self.attributes, **(attributes or {})})
        self._logs = LogClock()
        assert self._held is not None
        self._guard = SignalHold(self._on_terminate, self._held.providers)
        self.plan(total_steps, start_step)
        self._records = RunRecords(self._held.session.sampler)
        return self.run

    def plan(self, total_steps: int, start_step: int = 0) -> None:
        """The run will make ``total_steps`` optimizer steps from ``start_step`` (0: unknown, no
        projection); a framework that knows it only once training starts calls this then."""
        self.predictor = None
        if self.config.predict_after_steps >= 0 and total_steps > 0:
            start = Progress(start_step, 0.0, 0.0, 0.0)
            self.predictor = Predictor(total_steps, start, self.config.predict_after_steps)

    @property
    def step_open(self) -> bool:
        """A step began and has not ended (an accumulation may span several batches)."""
        return self._step is not None

    def begin_epoch(self, number: int, step: int | None = None) -> None:
        """Epoch ``number`` begins at optimizer ``step`` (a child span of the run)."""
        rec, run = self.recorder, self.run
        if rec is None or run is None:
            return
        attrs = {**self.attributes, A.TRAIN_EPOCH: number}
        self.epoch = rec.start("epoch", "epoch", run, attrs)
        if self.predictor is not None and step is not None:
            self.predictor.epoch_begin(progress(rec, run, step))

    def step_begin(self, number: int) -> None:
        """Optimizer step ``number`` (1-based) begins: one clock reading (the hot path)."""
        held = self._held  # no property, no recorder call: this is the training thread's cost
        if held is not None:
            self._step = (held.clock(), number)

    def step_end(self, error: BaseException | None = None, counted: bool = True) -> None:
        """The open step ends: queued, its span made on the sampler thread. ``counted``: it was
        an optimizer step (False: an unfinished accumulation, measured all the same)."""
        held, opened = self._held, self._step
        if held is None or opened is None:
            return
        self._step = None
        t0_s, number = opened
        every = self.config.step_span_every
        if every > 0 and number % every == 0:
            span = GROUPED if self.config.step_span_groups else OWN_SPAN
        else:
            span = NO_SPAN
        parent = self.epoch or self.run
        held.recorder.step_end(t0_s, number, parent, span, error, self.attributes or None)
        if not counted:
            return
        for parent in (self.epoch, self.run):
            if parent is not None:
                parent.steps += 1
        if self.predictor is not None and self.predictor.due_at_step(number):
            self._project(number, epoch_end=False)

    def end_epoch(self, step: int | None = None, error: BaseException | None = None) -> None:
        """The open epoch ends at optimizer ``step`` (an open step ends uncounted)."""
        if self.recorder is None:
            return
        self.step_end(error, counted=False)
        epoch, self.epoch = self.epoch, None
        if epoch is None:
            return
        attrs = {A.TRAIN_STEPS: epoch.steps, A.DURATION: self._elapsed(epoch)}
        self.recorder.finish(epoch, error, attrs)
        if step is not None:
            self._project(step, epoch_end=True)

    def _project(self, step: int, epoch_end: bool) -> Projection | None:
        if self.recorder is None or self.run is None or self.predictor is None:
            return None
        return project(self.recorder, self.run, self.predictor, step, epoch_end)

    def end_run(
        self, error: BaseException | None = None, global_step: int | None = None
    ) -> Interval | None:
        """The run ends (``error``: what ended it). Its spans are completed, its totals go to
        the job root and its row to the ledger; the finished run is returned."""
        held, run = self._held, self.run
        if held is None or run is None:
            return None
        rec = held.recorder
        if error is not None:  # a failure or a signal: the phases inside end with it
            for phase in list(reversed(self.phases)):
                self._finish_phase(phase, error)
        self.end_epoch(None, error)
        self.run = None
        attrs: dict[str, AttrValue] = {A.TRAIN_STEPS: run.steps, A.DURATION: self._elapsed(run)}
        if global_step is not None:
            attrs[A.TRAIN_GLOBAL_STEP] = int(global_step)
        if self.predictor is not None and self.predictor.latest is not None:
            attrs.update(self.predictor.latest.span_attributes())
        rec.finish(run, error, attrs)
        self.last_run = run
        if self._guard is not None:
            self._guard.drop()
        self._guard = None
        rec.flush()  # the run span has its energy before training returns
        records, self._records = self._records, None
        if records is not None:
            records.write(run, error, held)
        for hook in self.on_run_end:
            hook(run, error)
        self._close_if_idle()
        return run

    def fail(self, error: BaseException) -> None:
        """Training raised ``error``: end everything open with it. A second Ctrl-C landing in
        here would lose the spans: it is held off, then dropped (the run already ends)."""
        with interrupts_deferred():
            self.end_run(error)
            for phase in list(reversed(self.phases)):
                self._finish_phase(phase, error)
            self._close_if_idle()

    def close(self) -> None:
        """End whatever is still open (a framework's teardown; idempotent)."""
        for phase in list(reversed(self.phases)):
            self._finish_phase(phase, None)
        self.end_run(None)
        self._close_if_idle()

    def _on_terminate(self, signum: int) -> None:
        """SIGTERM: end the open spans with an error naming the signal (on the guard's thread,
        while the main thread waits in the signal handler)."""
        rec = self.recorder
        self.fail(Terminated(signum))
        if rec is not None:  # the signal came while the main thread was ending the run
            rec.flush()

    # ---- phases: evaluation, test, prediction ----
    def begin_phase(
        self,
        name: str,
        attributes: Mapping[str, AttrValue] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Interval:
        """A phase (span ``name``: ``evaluate``, ``test``, ``predict``) begins, a child of the
        innermost open phase, epoch or run; outside a run it takes the session itself."""
        rec = self._open(environ)
        parent = self.phases[-1] if self.phases else (self.epoch or self.run)
        iv = rec.start("eval", name, parent, {**self.attributes, **(attributes or {})})
        self.phases.append(iv)
        return iv

    def phase_step(self) -> None:  # one batch of the innermost phase
        if self.phases:
            self.phases[-1].steps += 1

    def end_phase(self, iv: Interval | None = None, error: BaseException | None = None) -> None:
        """The phase ``iv`` (the innermost by default) ends."""
        with interrupts_deferred():
            target = iv or (self.phases[-1] if self.phases else None)
            if target is not None:
                self._finish_phase(target, error)
            self._close_if_idle()

    def _finish_phase(self, iv: Interval, error: BaseException | None) -> None:
        if iv not in self.phases or self.recorder is None:
            return  # already ended (by a SIGTERM closing everything)
        self.phases.remove(iv)
        attrs = {A.EVAL_STEPS: iv.steps, A.DURATION: self._elapsed(iv)}
        self.recorder.finish(iv, error, attrs)

    # ---- while it runs ----
    def log_values(self) -> dict[str, float]:
        """The log keys' values now (``progress.ALL_LOG_KEYS``): energy (J) and CO2e (g) of the
        run (or the standalone phase) so far, power (W) since the previous log, and the latest
        projection. Empty when nothing is open. Never waits."""
        outer = self.run or (self.phases[0] if self.phases else None)
        if self.recorder is None or outer is None:
            return {}
        values = self._logs.values(self.recorder, outer)
        if self.predictor is not None and self.predictor.latest is not None:
            values.update(self.predictor.latest.log_values())
        return values

    def prediction_source(self) -> tuple[Projection | None, dict[str, AttrValue]]:
        rec, predictor = self.recorder, self.predictor
        if self.run is None or rec is None or predictor is None:
            return None, {}
        return predictor.latest, rec.identity

    def _elapsed(self, iv: Interval) -> float:
        return (self.recorder.now() if self.recorder else iv.t0_s) - iv.t0_s
