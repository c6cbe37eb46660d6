"""Steps completed in bulk, once per sampler tick: a span only where a step can be measured.

A step shorter than two sample intervals has an interpolated energy (an allocation between two
samples, not a measurement), and an SDK span per 5 ms step costs more than the whole 1% budget
(docs/performance.md). So by default (``OTEL_PYTHON_ENERGY_STEP_SPANS=auto``) such steps get no
span of their own: the consecutive ones of one parent share one ``steps`` span (about a second of
them: ``GROUP_S``), whose energy is that of exactly its interval (one window per group), with the
count, first and last step number and the min/mean/max step duration. Every step still goes into
``otel_energy.step.energy``; the group's first step carries the exemplar linking to it. A step
with an error, or as long as two sample intervals or more, keeps its own span.

Each step's energy comes from the components' cumulative series at the samples around the tick
(``engine.history.Cumulative``): piecewise-constant power between samples, which is what the
window's linear interpolation of cumulative energy means, so it equals ``window().energy_j``. No
window, ``Interval``, dict or span per step on this path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context

from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.handoff import span_handoff
from otel_energy.telemetry.span_attributes import AttrValue

if TYPE_CHECKING:
    from otel_energy.telemetry.spans import Interval, SpanEnergyRecorder

_log = logging.getLogger(__name__)

NO_SPAN = 0
"""A step measured (histogram, per-step hooks) without a span (``off``, or not the Nth)."""
OWN_SPAN = 1
"""A step with a span of its own (``all``, every Nth)."""
GROUPED = 2
"""A step that gets its own span only when measurable (long) or failed, else a group's (auto)."""

StepHook = Callable[[int, float, float, float, float], None]
"""Called for every finished step on the sampler thread: (step number, t0_s, t1_s on the
sampler clock (s), energy (J), CO2e (g, at the recorder's PUE and intensity))."""


class StepMark:
    """A finished step as the training thread leaves it: two clock readings and what the span
    needs later. Slotted and built positionally: the whole of the step's cost on that thread.

    Times ``t0_s``/``t1_s`` on the sampler's monotonic clock (s); ``span``: ``NO_SPAN``,
    ``OWN_SPAN`` or ``GROUPED``.
    """

    __slots__ = ("context", "error", "extra", "number", "parent", "span", "t0_s", "t1_s")

    def __init__(
        self,
        t0_s: float,
        t1_s: float,
        number: int,
        parent: Interval | None,
        context: Context | None,
        span: int,
        error: BaseException | None,
        extra: Mapping[str, AttrValue] | None,
    ) -> None:
        self.t0_s, self.t1_s, self.number, self.parent = t0_s, t1_s, number, parent
        self.context, self.span, self.error, self.extra = context, span, error, extra


GROUP_S = 1.0
"""A group of short steps stays open until it spans this long (s, on the sampler clock), its
parent ends, a step with its own span comes, or the recorder flushes: one span a second instead
of one a tick (each costs a window, ~25 attributes and an export), and a group of a second or more
covers many samples, so its energy is measured rather than interpolated."""


class OpenGroup:
    """The group of short steps being gathered: its span (started at the first step's true start
    time, ended at the last one's end), its first and last marks and running figures."""

    __slots__ = ("count", "d_max", "d_min", "d_sum", "energy_j", "first", "last", "span")

    def __init__(self, first: StepMark, span: trace.Span | None) -> None:
        self.first = self.last = first
        self.span = span
        self.count = 0
        self.energy_j = self.d_sum = self.d_max = 0.0
        self.d_min = float("inf")

    def add(self, m: StepMark, energy_j: float) -> None:
        """Step ``m`` (energy J) joins the group."""
        d = m.t1_s - m.t0_s
        self.last = m
        self.count += 1
        self.energy_j += energy_j
        self.d_sum += d
        self.d_min = min(self.d_min, d)
        self.d_max = max(self.d_max, d)


def complete_steps(rec: SpanEnergyRecorder, marks: list[StepMark]) -> None:
    """Complete ``marks`` (in the order they finished, all before the newest sample): the
    histogram and the per-step hooks at once, a span per measurable/failed/chosen step, and the
    short ones into the open group (the recorder closes it ``rec.group_s`` after it began)."""
    if not marks:
        return
    cum = rec.sampler.cumulative(min(m.t0_s for m in marks), max(m.t1_s for m in marks))
    at, long_s = cum.at, 2 * cum.resolution_s
    hist, identity, hooks = rec.step_histogram, rec.identity, rec.on_step
    for m in marks:
        try:
            if m.span == OWN_SPAN or (
                m.span == GROUPED and (m.error is not None or m.t1_s - m.t0_s >= long_s)
            ):
                close_group(rec)
                rec.complete_step_alone(m)
                continue
            e0, c0 = at(m.t0_s)
            e1, c1 = at(m.t1_s)
            energy, ctx = e1 - e0, None
            if m.span == GROUPED:
                group = rec.open_group
                if group is not None and group.first.parent is not m.parent:
                    close_group(rec)  # never across an epoch boundary
                    group = None
                if group is None:  # its first step carries the exemplar linking to it
                    group = rec.open_group = OpenGroup(m, _start(rec, m))
                    if group.span is not None:
                        ctx = trace.set_span_in_context(group.span)
                group.add(m, energy)
            if hist is not None:  # one attribute dict for every record
                hist.record(energy, attributes=identity, context=ctx)
            if hooks:
                call_hooks(hooks, m, energy, rec.carbon.co2e(energy, c1 - c0, rec.sampler.pue))
        except Exception:  # never lose the rest of the tick to one bad step
            _log.exception("otel-energy: completing step %s failed", m.number)


def _start(rec: SpanEnergyRecorder, first: StepMark) -> trace.Span | None:
    """The group's span, started at its first step's true start time (attributes at its end)."""
    if rec.tracer is None:
        return None
    start_ns = rec.wall_ns(first.t0_s)
    return rec.tracer.start_span(rec.group_name, context=first.context, start_time=start_ns)


def close_group(rec: SpanEnergyRecorder) -> None:
    """End the open group's span (if any) with the energy of exactly its interval (one window)
    and the steps' count, numbers and durations (s); never raises."""
    group, rec.open_group = rec.open_group, None
    if group is None or group.span is None:
        return
    try:
        first, last = group.first, group.last
        w = rec.sampler.window(first.t0_s, last.t1_s)
        attrs = rec.span_energy_attributes(w, rec.co2e_of(w))
        if first.extra:
            attrs.update(first.extra)
        attrs[A.TRAIN_STEPS] = group.count
        attrs[A.TRAIN_FIRST_STEP] = first.number
        attrs[A.TRAIN_LAST_STEP] = last.number
        attrs[A.TRAIN_STEP_DURATION_MIN] = group.d_min
        attrs[A.TRAIN_STEP_DURATION_MEAN] = group.d_sum / group.count
        attrs[A.TRAIN_STEP_DURATION_MAX] = group.d_max
        attrs[A.TRAIN_STEPS_ENERGY] = group.energy_j
        group.span.set_attributes(attrs)
    except Exception:
        _log.exception("otel-energy: completing a group of steps failed")
    span_handoff().end(group.span, rec.wall_ns(group.last.t1_s))


def call_hooks(hooks: list[StepHook], m: StepMark, energy_j: float, co2e_g: float) -> None:
    """Each per-step hook with step ``m``'s energy (J) and CO2e (g); one failing hook stops
    neither the others nor the rest of the tick."""
    for hook in hooks:
        try:
            hook(m.number, m.t0_s, m.t1_s, energy_j, co2e_g)
        except Exception:
            _log.exception("otel-energy: a per-step hook failed")
