"""Energy on other instrumentations' spans: the request spans of a server, a pipeline's calls.

``install(provider, sampler, selection)`` puts one ``EnergySpanProcessor`` in front of the span
processors already on the SDK ``TracerProvider`` (the exporters that ``opentelemetry-instrument``
configured). For a selected span (by kind or instrumentation scope, ``OTEL_PYTHON_ENERGY_SPANS``)
the request path only notes its start and end (a deque append each); the span is held back,
its energy is shared out on the annotator thread once the sampler has covered its end (see
``engine/span_shares.py`` for the rule), and a copy carrying the energy attributes is handed to
the processors it was held from. Spans not selected pass straight through.

Delay: a selected span reaches the exporters at most ``SpanSelection.max_delay_s`` + two sample
intervals after it ends (it waits for spans that overlap it and are still running, whose weight
is known only at their end, for at most that long). ``force_flush``/``shutdown`` (at exit, on
SIGTERM through the provider) hand out what is held, bounded. The annotator thread is the only
one that calls the held processors for selected spans: a slow exporter stalls it, never the
request thread or the sampler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram, MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import NonRecordingSpan

from otel_energy.config.any_span import SpanSelection
from otel_energy.engine.sampler import Sampler
from otel_energy.engine.span_shares import Share, SpanShares
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.span_attributes import HW_TYPES
from otel_energy.telemetry.step_histogram import span_histogram

_log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 2.0
"""The most ``force_flush``/``shutdown`` wait for a sample after the last held span (s)."""

WEIGHT_KEY = "gen_ai.usage.output_tokens"
"""The span attribute that weights a span's share (GenAI semantic conventions)."""


class EnergySpanProcessor(SpanProcessor):
    """Holds selected spans until their energy is known, then hands them on annotated.

    Args:
        inner: the processors the spans are held from (the provider's, at install time).
        sampler: the running sampler (its clock, history and listener).
        selection: which spans to annotate.
        histogram: ``otel_energy.span.energy``, recorded per annotated span (exemplar: the span).
    """

    def __init__(
        self,
        inner: Sequence[SpanProcessor],
        sampler: Sampler,
        selection: SpanSelection,
        histogram: Histogram | None = None,
    ) -> None:
        self.inner = tuple(inner)
        self.sampler = sampler
        self.selection = selection
        self.histogram = histogram
        self._clock = sampler.clock
        # One fixed offset maps span timestamps (ns since the epoch) to the sampler's clock.
        self._offset_ns = time.time_ns() - round(self._clock() * 1e9)
        self._events: deque[tuple[int, ReadableSpan | None, int]] = deque()
        self._held: dict[Hashable, ReadableSpan] = {}  # by span id
        self._shares = SpanShares()
        self._work = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otel-energy-spans", daemon=True)
        self._thread.start()
        sampler.add_listener(self._on_sample)

    # ---- request threads: note and pass on ------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for p in self.inner:
            p.on_start(span, parent_context=parent_context)
        if self.selection.matches(span):
            self._events.append((span.context.span_id, None, span.start_time or 0))  # atomic append

    def _on_ending(self, span: Span) -> None:
        for p in self.inner:
            on_ending = getattr(p, "_on_ending", None)  # SDK >= 1.39 only
            if on_ending is not None:
                on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        if self.selection.matches(span) and not self._stopping.is_set():
            self._events.append((span.context.span_id, span, span.end_time or 0))
            return
        for p in self.inner:
            p.on_end(span)

    # ---- annotator thread -----------------------------------------------------------------------
    def _on_sample(self, _t_s: float) -> None:
        self._wake.set()  # on the sampler thread: nothing more

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self._step()
            except Exception:  # never let the thread die: spans would be held forever
                _log.exception("otel-energy: sharing energy between spans failed")

    def _step(self, wait_for_running: bool = True) -> None:
        """Share out the energy up to the newest sample (or the start of a young running span
        that overlaps it) and hand on the spans complete by then."""
        with self._work:
            self._take_events()
            horizon = self.sampler.newest_sample_s
            if horizon == float("-inf"):
                return
            running = self._shares.running_since(self._clock(), self.selection.max_delay_s)
            if wait_for_running and running is not None:
                horizon = min(horizon, running)
            self._hand_on(self._shares.advance(horizon, self.sampler.window))

    def _take_events(self) -> None:
        while self._events:
            key, span, t_ns = self._events.popleft()
            t_s = (t_ns - self._offset_ns) / 1e9
            if span is None:
                self._shares.start(key, t_s)
            elif self._shares.end(key, t_s, _weight(span)) is not None:
                self._held[key] = span
            else:  # started before we were installed: not ours to share
                for p in self.inner:
                    p.on_end(span)

    def _hand_on(self, done: list[Share]) -> None:
        if not done:
            return
        snap = self.sampler.snapshot()
        for share in done:
            span = self._held.pop(share.key, None)
            if span is None:
                continue
            annotated = _with_attributes(span, self._attributes(share, span, snap))
            for p in self.inner:
                try:
                    p.on_end(annotated)
                except Exception:
                    _log.exception("otel-energy: a span processor failed on an annotated span")
            if self.histogram is not None:
                self._record(share, annotated)

    def _attributes(self, share: Share, span: ReadableSpan, snap: Any) -> dict[str, Any]:
        duration_s = max(((span.end_time or 0) - (span.start_time or 0)) / 1e9, 0.0)
        attrs: dict[str, Any] = {
            A.ENERGY: share.energy_j,
            A.POWER: share.energy_j / duration_s if duration_s > 0 else 0.0,
            A.CO2E: share.co2e_g,
            A.CARBON_INTENSITY_VALUE: snap.intensity.g_per_kwh,
            A.CARBON_INTENSITY_SOURCE: snap.intensity.source,
            A.PUE: snap.pue,
            A.ESTIMATED: share.estimated,
            A.INTERPOLATED: share.interpolated,
            A.ENERGY_UNCERTAINTY: share.uncertainty_j,
            A.COMPLETE: share.complete,
            A.SPAN_ENERGY_SHARE: share.share,
            A.SPAN_ENERGY_SPLIT: "output_tokens" if share.weighted else "active_time",
        }
        for hw_type in HW_TYPES:
            if hw_type in share.by_type:
                attrs[A.device_type_energy(hw_type)] = share.by_type[hw_type]
        if share.weight:
            attrs[A.ENERGY_PER_OUTPUT_TOKEN] = share.energy_j / share.weight
        return attrs

    def _record(self, share: Share, span: ReadableSpan) -> None:
        assert self.histogram is not None
        ctx = span.get_span_context()
        parent = trace.set_span_in_context(NonRecordingSpan(ctx)) if ctx is not None else None
        scope = span.instrumentation_scope
        labels = {
            A.SPAN_KIND: span.kind.name.lower(),
            A.SPAN_SCOPE: scope.name if scope is not None else "",
        }
        self.histogram.record(share.energy_j, attributes=labels, context=parent)

    # ---- flush and shutdown ----------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._settle(min(FLUSH_TIMEOUT_S, timeout_millis / 1000))
        return all(p.force_flush(timeout_millis) for p in self.inner)

    def shutdown(self) -> None:
        self._settle(FLUSH_TIMEOUT_S)
        self._stopping.set()
        self._wake.set()
        self.sampler.remove_listener(self._on_sample)
        with self._work:  # spans that ended while we were settling
            self._take_events()
            self._hand_on(self._shares.drain())
        for p in self.inner:
            p.shutdown()

    def _settle(self, timeout_s: float) -> None:
        """Hand on every held span: wait (bounded) for a sample after the last end, share the
        energy up to the newest sample (not waiting for running spans), hand on."""
        with self._work:
            self._take_events()
            last = max((s.end_time or 0 for s in self._held.values()), default=0)
        if last:
            self.sampler.wait_for_sample((last - self._offset_ns) / 1e9, timeout_s)
        self._step(wait_for_running=False)


def _weight(span: ReadableSpan) -> float | None:
    value = (span.attributes or {}).get(WEIGHT_KEY)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _with_attributes(span: ReadableSpan, extra: Mapping[str, Any]) -> ReadableSpan:
    """A copy of a finished span with ``extra`` attributes (the span limit still applies)."""
    old = span.attributes or {}
    limit = getattr(old, "maxlen", None)
    attrs = BoundedAttributes(limit, {**old, **extra}, immutable=True)
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=span.resource,
        attributes=attrs,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def install(
    provider: Any,
    sampler: Sampler,
    selection: SpanSelection,
    meter_provider: MeterProvider | None = None,
) -> EnergySpanProcessor | None:
    """Put an ``EnergySpanProcessor`` in front of ``provider``'s span processors.

    Processors added to the provider later receive selected spans unannotated, as they end.
    None (one log line) when the provider is not the SDK's.
    """
    multi = getattr(provider, "_active_span_processor", None)
    if not isinstance(provider, TracerProvider) or multi is None:
        _log.warning(
            "otel-energy: OTEL_PYTHON_ENERGY_SPANS needs the OpenTelemetry SDK's TracerProvider"
            " (got %s); other spans are not annotated.",
            type(provider).__name__,
        )
        return None
    hist = span_histogram(meter_provider) if meter_provider is not None else None
    with multi._lock:
        processor = EnergySpanProcessor(multi._span_processors, sampler, selection, hist)
        multi._span_processors = (processor,)
    return processor


def uninstall(provider: Any, processor: EnergySpanProcessor) -> None:
    """Hand on what is held and put the provider's processors back as they were."""
    multi = provider._active_span_processor
    processor._settle(FLUSH_TIMEOUT_S)
    with multi._lock:
        rest = tuple(p for p in multi._span_processors if p is not processor)
        multi._span_processors = processor.inner + rest
    processor._stopping.set()
    processor._wake.set()
    processor.sampler.remove_listener(processor._on_sample)
    with processor._work:  # what is still held, or ended during the swap, is handed on
        processor._take_events()
        processor._hand_on(processor._shares.drain())
