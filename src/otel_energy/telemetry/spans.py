"""Spans whose attributes carry the energy of exactly their interval.

The training thread only notes times (and starts the rare parent spans: run, epoch, evaluation).
A span's energy is known once the sampler has a sample after the span's end, so spans are
completed later, on the sampler thread (a listener), with ``end_time`` set to when they really
ended. Step spans are never the current context, so nothing needs them during the step: the
training thread only appends the step's two clock readings (a ``StepMark``), and the sampler
thread completes the steps of each tick in bulk (``telemetry.step_groups``: by default one span
per second of short steps, a span of its own for a step that can be measured), with their true
start and end times; ``telemetry.handoff``'s thread ends the spans (a stalled exporter cannot
stop the samples). ``flush`` completes the rest, waiting
at most a couple of sample intervals, once per run, and (bounded) for the export thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from otel_energy.carbon import Intensity
from otel_energy.config import DEFAULT_FLUSH_TIMEOUT_S
from otel_energy.engine.sampler import Sampler, WindowEnergy
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.gpu_sync import sync_at
from otel_energy.telemetry.handoff import span_handoff
from otel_energy.telemetry.recorder_carbon import RecorderCarbon
from otel_energy.telemetry.span_attributes import HW_TYPES as HW_TYPES
from otel_energy.telemetry.span_attributes import STEP_ENERGY_BUCKETS_J as STEP_ENERGY_BUCKETS_J
from otel_energy.telemetry.span_attributes import AttrValue as AttrValue
from otel_energy.telemetry.span_attributes import energy_attributes as energy_attributes
from otel_energy.telemetry.span_attributes import utilization_verdict
from otel_energy.telemetry.step_groups import (
    GROUP_S,
    GROUPED,
    OpenGroup,
    StepHook,
    StepMark,
    call_hooks,
    close_group,
    complete_steps,
)

_log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class Interval:
    """One measured block of time (a run, an epoch, a step, an evaluation, a batch).

    Times: ``t0_s``/``t1_s`` on the sampler's monotonic clock (s); ``start_ns``/``end_ns`` wall
    clock for the span (ns since the epoch).
    """

    kind: str
    span: Span | None
    t0_s: float
    start_ns: int
    parent: Interval | None = None
    t1_s: float | None = None
    end_ns: int = 0
    error: BaseException | None = None
    attributes: Mapping[str, AttrValue] = field(default_factory=dict)
    end_attributes: dict[str, AttrValue] = field(default_factory=dict)
    result: WindowEnergy | None = None
    co2e_g: float = 0.0
    steps: int = 0
    context: Context | None = None  # this span as a parent context, built once

    @property
    def duration_s(self) -> float:
        return (self.t1_s if self.t1_s is not None else self.t0_s) - self.t0_s


class SpanEnergyRecorder:
    """Starts spans and completes them with their energy and CO2e.

    Args:
        sampler: the running sampler whose history gives each interval's energy.
        tracer: where spans go (``None``: intervals are measured but no span is made).
        step_histogram: records each ``step`` interval's energy with the step span as exemplar.
        identity: attributes put on every non-step span (host, rank).
        intensity: a fixed intensity overriding the sampler's (``EnergyMeter``'s own setting).
        pue: a PUE overriding the sampler's (an entry point's own setting, see ``RecorderCarbon``).
        root_context: parent of top-level spans when no span is current in this process (the
            job's: ``TRACEPARENT`` or the derived job root, see ``distributed.job``); ``gpu_sync``:
            sync the GPU at run, epoch and evaluation boundaries (``telemetry.gpu_sync``).
    """

    def __init__(
        self,
        sampler: Sampler,
        tracer: Tracer | None,
        step_histogram: Histogram | None = None,
        identity: Mapping[str, AttrValue] | None = None,
        intensity: Intensity | None = None,
        root_context: Context | None = None,
        pue: float | None = None,
        gpu_sync: bool = False,
    ) -> None:
        self.sampler, self.gpu_sync = sampler, gpu_sync
        self.root_context = root_context
        self.tracer = tracer
        self.step_histogram = step_histogram
        self.identity = dict(identity if identity is not None else sampler.rank.attributes())
        self.carbon = RecorderCarbon(pue, intensity)
        self.on_complete: list[Callable[[Interval], None]] = []  # steps with a span of their own
        self.on_step: list[StepHook] = []  # every step, however it is completed
        self.step_name = "step"  # the span name of ``step_end``'s steps (EnergyMeter: batch)
        self.group_name = "steps"  # the span of a group of short steps (EnergyMeter: batches)
        self.group_s = GROUP_S  # how long a group of short steps is gathered (s)
        self.open_group: OpenGroup | None = None  # the group being gathered (sampler thread)
        self._clock = sampler.clock
        # Span timestamps derive from the same clock reading as the energy window, through one
        # fixed offset: a span's duration is then exactly the interval its energy covers, even
        # if the thread is switched out between two clock reads.
        self._offset_ns = time.time_ns() - round(self._clock() * 1e9)
        self._pending: deque[Interval | StepMark] = deque()
        self._resolving = threading.Lock()
        self.providers: tuple[Any, ...] = ()  # (tracer, meter provider): flushed at the end
        self.flush_timeout_s = DEFAULT_FLUSH_TIMEOUT_S  # flush's wait for the export thread (s)
        sampler.add_listener(self._resolve_ready)

    def close(self) -> None:  # stop listening to the sampler (after ``flush``)
        self.sampler.remove_listener(self._resolve_ready)

    # ---- training thread: cheap -----------------------------------------------------------------
    def start(
        self,
        kind: str,
        name: str,
        parent: Interval | None = None,
        attributes: Mapping[str, AttrValue] | None = None,
        record_span: bool = True,
    ) -> Interval:
        """Begin an interval now; its span is a child of ``parent`` (else of the current span).

        ``attributes`` go on the span at its start, except for steps: on the hot path they are
        set at completion, on the sampler thread, to keep attribute validation off the training
        thread.
        """
        sync_at(kind, self.gpu_sync)
        t0 = self._clock()
        start_ns = self.wall_ns(t0)
        attrs = attributes or {}
        span = None
        if record_span and self.tracer is not None:
            ctx = parent.context if parent is not None else self._top_context()
            span_attrs = None if kind == "step" else {**attrs, **self.identity}
            span = self.tracer.start_span(
                name, context=ctx, attributes=span_attrs, start_time=start_ns
            )
        iv = Interval(kind, span, t0, start_ns, parent, attributes=attrs)
        if kind == "step":
            iv.end_attributes = dict(attrs)
        elif span is not None:
            iv.context = trace.set_span_in_context(span)
        return iv

    def finish(
        self,
        interval: Interval,
        error: BaseException | None = None,
        attributes: Mapping[str, AttrValue] | None = None,
    ) -> None:
        """End an interval now; its energy is filled in once the sampler has passed this time."""
        if interval.t1_s is not None:
            return  # already finished (defensive: error paths may finish twice)
        sync_at(interval.kind, self.gpu_sync)
        interval.t1_s = self._clock()
        interval.end_ns = self.wall_ns(interval.t1_s)
        interval.error = error
        if attributes:
            interval.end_attributes.update(attributes)
        self._pending.append(interval)  # deque.append is atomic: no lock on the hot path

    def step_begin(self) -> float:
        """A step starts now: its start time (s, sampler clock), to hand back to ``step_end``."""
        return self._clock()

    def step_end(
        self,
        t0_s: float,
        number: int,
        parent: Interval | None,
        span: int = GROUPED,
        error: BaseException | None = None,
        extra: Mapping[str, AttrValue] | None = None,
    ) -> None:
        """The step begun at ``t0_s`` ends now: queue it; it is completed on the sampler thread.
        ``span`` (``telemetry.step_groups``): ``GROUPED`` (its own span, named ``step``, child of
        ``parent``, attributes ``otel_energy.train.step`` = ``number`` plus ``extra``, only if
        it is long or failed, else a share of a group's span), ``OWN_SPAN`` (its own span) or
        ``NO_SPAN`` (measured: the step histogram still records it). No span is started here:
        no allocation beyond one small record, no attribute validation, no context building."""
        t1_s = self._clock()
        if parent is not None:
            ctx = parent.context
        else:  # rare (no run span): the current context is this thread's, so capture it now
            ctx = self._top_context() or otel_context.get_current()
        self._pending.append(StepMark(t0_s, t1_s, number, parent, ctx, span, error, extra))

    def _top_context(self) -> Context | None:
        """An in-process current span wins over the job's context from the environment."""
        if self.root_context is None or trace.get_current_span().get_span_context().is_valid:
            return None
        return self.root_context

    def wall_ns(self, t_s: float) -> int:
        return round(t_s * 1e9) + self._offset_ns

    def provisional(self, t0_s: float) -> WindowEnergy:
        """Energy from ``t0_s`` to now without waiting: tail extrapolated at current power."""
        return self.sampler.window(t0_s, self._clock(), extrapolate=True)

    def now(self) -> float:  # the sampler's clock (s)
        return self._clock()

    # ---- completion ----
    def flush(self, timeout_s: float | None = None) -> bool:
        """Complete every pending interval, waiting for one sample after the last of them, then
        at most ``flush_timeout_s`` (s) for the export thread to end their spans (True: done)."""
        if self._pending:
            last = self._pending[-1].t1_s or 0.0
            default_wait = min(1.0, 2 * self.sampler.interval_s + 0.05)
            wait = default_wait if timeout_s is None else timeout_s
            self.sampler.wait_for_sample(last, min(wait, self.flush_timeout_s))
        self._resolve_ready(float("inf"))
        return span_handoff().drain(self.flush_timeout_s)

    def _resolve_ready(self, newest_s: float) -> None:
        if newest_s != float("inf"):
            newest_s = min(newest_s, self.sampler.newest_sample_s)
        with self._resolving:
            steps: list[StepMark] = []  # this tick's steps, completed in bulk
            while self._pending and (self._pending[0].t1_s or 0.0) <= newest_s:
                item = self._pending.popleft()
                if isinstance(item, StepMark):
                    steps.append(item)
                    continue
                complete_steps(self, steps)  # a parent ends after its steps
                close_group(self)  # and after their group
                steps = []
                try:
                    self._complete(item)
                except Exception:  # never lose the rest of the queue to one bad interval
                    _log.exception("otel-energy: completing a %s span failed", item.kind)
            complete_steps(self, steps)
            group = self.open_group  # a group never waits more than group_s for more steps
            if group is not None and newest_s - group.first.t0_s >= self.group_s:
                close_group(self)  # (a flush, newest_s = inf, leaves nothing open)

    def complete_step_alone(self, m: StepMark) -> None:
        """A step with a span of its own (or measured alone): an interval, its window, its span
        started at its true start time and ended at its true end time (``_complete``)."""
        attrs: dict[str, AttrValue] = {A.TRAIN_STEP: m.number}
        if m.extra:
            attrs = {**m.extra, **attrs}
        start_ns, end_ns = self.wall_ns(m.t0_s), self.wall_ns(m.t1_s)
        span = None
        if m.span and self.tracer is not None:
            span = self.tracer.start_span(self.step_name, context=m.context, start_time=start_ns)
        iv = Interval("step", span, m.t0_s, start_ns, m.parent, m.t1_s, end_ns, m.error, attrs)
        iv.end_attributes = attrs
        self._complete(iv)
        if self.on_step and iv.result is not None:
            call_hooks(self.on_step, m, iv.result.energy_j, iv.co2e_g)

    def span_energy_attributes(self, w: WindowEnergy, co2e_g: float) -> dict[str, AttrValue]:
        """The ``otel_energy.*`` energy attributes of a span over ``w`` at this recorder's
        settings (``co2e_g``: ``co2e_of(w)``)."""
        # The newest tick's intensity (a reference, not a snapshot built for every step).
        intensity = self.carbon.intensity or self.sampler.latest_tick().intensity
        attrs = energy_attributes(w, co2e_g, intensity, self.carbon.pue_of(self.sampler.pue))
        if w.attributed_j is not None:  # the job's CO2e at this recorder's PUE/intensity too
            attrs[A.ATTRIBUTED_CO2E] = self.carbon.co2e(
                w.attributed_j, w.attributed_co2e_g or 0.0, self.sampler.pue
            )
        return attrs

    @property
    def pue(self) -> float:
        """The PUE this recorder's spans are reported at."""
        return self.carbon.pue_of(self.sampler.pue)

    def co2e_of(self, w: WindowEnergy) -> float:
        """CO2e (g) of a window at this recorder's settings (``RecorderCarbon``)."""
        return self.carbon.co2e_of(w, self.sampler.pue)

    def _complete(self, iv: Interval) -> None:
        assert iv.t1_s is not None
        w = self.sampler.window(iv.t0_s, iv.t1_s)
        co2e = self.co2e_of(w)
        iv.result, iv.co2e_g = w, co2e
        if iv.span is not None:
            attrs = self.span_energy_attributes(w, co2e)
            if iv.kind == "run":
                gpus = [s.info for s in self.sampler.sensors if s.info.hw_type == "gpu"]
                attrs.update(utilization_verdict(w, gpus))
            attrs.update(iv.end_attributes)
            iv.span.set_attributes(attrs)
            if iv.error is not None:
                iv.span.record_exception(iv.error)
                iv.span.set_status(
                    Status(StatusCode.ERROR, f"{type(iv.error).__name__}: {iv.error}")
                )
            # end() may export (SimpleSpanProcessor): on the export thread, never the sampler's.
            span_handoff().end(iv.span, iv.end_ns, must=iv.kind != "step")
        if iv.kind == "step" and self.step_histogram is not None:
            ctx = trace.set_span_in_context(iv.span) if iv.span is not None else None
            self.step_histogram.record(w.energy_j, attributes=self.identity, context=ctx)
        for hook in self.on_complete:
            hook(iv)
