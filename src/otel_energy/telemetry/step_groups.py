"""Steps completed in bulk, once per sampler tick: a span only where a step can be measured.

A step shorter than two sample intervals has an interpolated energy (an allocation between two
samples, not a measurement), and an SDK span per 5 ms step costs more than the whole 1% budget
(docs/performance.md). So by default (``OTEL_PYTHON_ENERGY_STEP_SPANS=auto``) such steps get no
span of their own: the consecutive ones of one parent that are completed at one tick share one
``steps`` span, whose energy is that of exactly its interval (one window per group), with the
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


# One group of steps: their marks and each one's energy (J) and sampler CO2e (g).
_Group = list[tuple[StepMark, float, float]]


def complete_steps(rec: SpanEnergyRecorder, marks: list[StepMark]) -> None:
    """Complete ``marks`` (in the order they finished, all before the newest sample): the
    histogram, the per-step hooks, a span per group or per measurable/failed/chosen step."""
    if not marks:
        return
    cum = rec.sampler.cumulative(min(m.t0_s for m in marks), max(m.t1_s for m in marks))
    at, long_s = cum.at, 2 * cum.resolution_s
    group: _Group = []
    for m in marks:
        try:
            if m.span == OWN_SPAN or (
                m.span == GROUPED and (m.error is not None or m.t1_s - m.t0_s >= long_s)
            ):
                _close(rec, group)
                group = []
                rec.complete_step_alone(m)
                continue
            e0, c0 = at(m.t0_s)
            e1, c1 = at(m.t1_s)
            if m.span == NO_SPAN:
                _measured(rec, [(m, e1 - e0, c1 - c0)], None)
                continue
            if group and group[-1][0].parent is not m.parent:  # never across an epoch boundary
                _close(rec, group)
                group = []
            group.append((m, e1 - e0, c1 - c0))
        except Exception:  # never lose the rest of the tick to one bad step
            _log.exception("otel-energy: completing step %s failed", m.number)
    try:
        _close(rec, group)
    except Exception:
        _log.exception("otel-energy: completing a group of steps failed")


def _close(rec: SpanEnergyRecorder, group: _Group) -> None:
    """The group's span (``steps``, its interval's energy), then each step's record."""
    if not group:
        return
    first, last = group[0][0], group[-1][0]
    span = None
    if rec.tracer is not None:
        w = rec.sampler.window(first.t0_s, last.t1_s)
        attrs = rec.span_energy_attributes(w, rec.co2e_of(w))
        durations = [m.t1_s - m.t0_s for m, _, _ in group]
        if first.extra:
            attrs.update(first.extra)
        attrs[A.TRAIN_STEPS] = len(group)
        attrs[A.TRAIN_FIRST_STEP] = first.number
        attrs[A.TRAIN_LAST_STEP] = last.number
        attrs[A.TRAIN_STEP_DURATION_MIN] = min(durations)
        attrs[A.TRAIN_STEP_DURATION_MEAN] = sum(durations) / len(durations)
        attrs[A.TRAIN_STEP_DURATION_MAX] = max(durations)
        attrs[A.TRAIN_STEPS_ENERGY] = sum(e for _, e, _ in group)
        span = rec.tracer.start_span(
            rec.group_name,
            context=first.context,
            attributes=attrs,
            start_time=rec.wall_ns(first.t0_s),
        )
        span_handoff().end(span, rec.wall_ns(last.t1_s))
    _measured(rec, group, span)


def _measured(rec: SpanEnergyRecorder, steps: _Group, span: trace.Span | None) -> None:
    """Each step into the histogram (the first with ``span`` as exemplar context: one context,
    not one per step) and to the per-step hooks."""
    hist, identity = rec.step_histogram, rec.identity  # one attribute dict for every record
    if hist is not None:
        ctx = trace.set_span_in_context(span) if span is not None else None
        for _, e, _ in steps:
            hist.record(e, attributes=identity, context=ctx)
            ctx = None
    hooks = rec.on_step
    if hooks:
        carbon, pue = rec.carbon, rec.sampler.pue
        for m, e, c in steps:
            call_hooks(hooks, m, e, carbon.co2e(e, c, pue))


def call_hooks(hooks: list[StepHook], m: StepMark, energy_j: float, co2e_g: float) -> None:
    """Each per-step hook with step ``m``'s energy (J) and CO2e (g); one failing hook stops
    neither the others nor the rest of the tick."""
    for hook in hooks:
        try:
            hook(m.number, m.t0_s, m.t1_s, energy_j, co2e_g)
        except Exception:
            _log.exception("otel-energy: a per-step hook failed")
