"""Energy on other instrumentations' spans, in process (telemetry/any_span.py).

A fake GPU at constant power under a real sampler: the node's energy over any stretch is
``GPU_W`` x its duration, so every expected figure is computed from the spans' own times.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_energy.config import ConfigError
from otel_energy.config.any_span import SpanSelection, span_selection
from otel_energy.engine.sampler import Sampler
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.any_span import EnergySpanProcessor, install, uninstall
from otel_energy.telemetry.scope import get_tracer
from tests.support.hf_helpers import GPU_W, fake_gpu_sampler_factory

SERVER = SpanSelection(frozenset({"server"}), frozenset())
MS = 1_000_000


@pytest.fixture
def sampler() -> Iterator[Sampler]:
    s = fake_gpu_sampler_factory()()
    s.start()
    assert s.wait_for_sample(float("-inf"), 30.0)
    # Half a second of history, so that spans placed 0.4 s in the past lie inside it (polled:
    # asking the sampler for a sample in the future would make it sample back to back).
    first, deadline = s.newest_sample_s, time.monotonic() + 60
    while s.newest_sample_s - first < 0.5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s.newest_sample_s - first >= 0.5
    yield s
    s.stop()


class Setup:
    def __init__(self, sampler: Sampler, selection: SpanSelection = SERVER) -> None:
        self.spans = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        proc = install(self.provider, sampler, selection, self.meters)
        assert proc is not None
        self.processor: EnergySpanProcessor = proc
        self.tracer = self.provider.get_tracer("opentelemetry.instrumentation.fake")
        self.sampler = sampler

    def past(self, *windows_ms: tuple[int, int, int | None]) -> list[Any]:
        """Server spans over [start, end] ms relative to a moment safely inside the history,
        with output tokens (or none)."""
        base = time.time_ns() - 400 * MS
        made = []
        for t0, t1, tokens in windows_ms:
            span = self.tracer.start_span(
                "POST /generate", kind=SpanKind.SERVER, start_time=base + t0 * MS
            )
            made.append((span, t1, tokens))
        for span, t1, tokens in made:
            if tokens is not None:
                span.set_attribute("gen_ai.usage.output_tokens", tokens)
            span.end(end_time=base + t1 * MS)
        return [s for s, _, _ in made]

    def annotated(self) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if A.ENERGY in (s.attributes or {})]


def union_s(spans: list[ReadableSpan]) -> float:
    total, end = 0, 0
    for s in sorted(spans, key=lambda s: s.start_time or 0):
        a, b = s.start_time or 0, s.end_time or 0
        total += max(0, b - max(a, end))
        end = max(end, b)
    return total / 1e9


def test_request_spans_share_the_node_energy_by_output_tokens(sampler: Sampler) -> None:
    t = Setup(sampler)
    # b and c overlap a; c carries 3x b's tokens over the same time.
    t.past((0, 200, 20), (50, 150, 10), (50, 150, 30))
    assert t.provider.force_flush()
    spans = {s.attributes["gen_ai.usage.output_tokens"]: s for s in t.annotated()}
    assert set(spans) == {10, 20, 30}
    total = sum(s.attributes[A.ENERGY] for s in spans.values())
    assert total == pytest.approx(GPU_W * union_s(list(spans.values())), rel=0.01)
    # Over [50, 150] ms the densities are 20/0.2 = 100, 10/0.1 = 100, 30/0.1 = 300 tokens/s.
    overlap_j = GPU_W * 0.1
    assert spans[10].attributes[A.ENERGY] == pytest.approx(overlap_j * 100 / 500, rel=0.02)
    assert spans[30].attributes[A.ENERGY] == pytest.approx(overlap_j * 300 / 500, rel=0.02)
    assert spans[20].attributes[A.ENERGY] == pytest.approx(
        GPU_W * 0.1 + overlap_j * 100 / 500, rel=0.02
    )
    for tokens, s in spans.items():
        a = s.attributes
        assert a[A.SPAN_ENERGY_SPLIT] == "output_tokens"
        assert a[A.ENERGY_PER_OUTPUT_TOKEN] == pytest.approx(a[A.ENERGY] / tokens)
        assert a[A.device_type_energy("gpu")] == pytest.approx(a[A.ENERGY])
        assert 0 < a[A.SPAN_ENERGY_SHARE] <= 1
        assert a[A.CO2E] > 0 and A.CARBON_INTENSITY_VALUE in a


def test_spans_without_tokens_share_by_active_time(sampler: Sampler) -> None:
    t = Setup(sampler)
    t.past((0, 200, None), (100, 300, None))
    t.provider.force_flush()
    a, b = sorted(t.annotated(), key=lambda s: s.start_time or 0)
    assert a.attributes[A.ENERGY] == pytest.approx(GPU_W * (0.1 + 0.05), rel=0.02)
    assert b.attributes[A.ENERGY] == pytest.approx(GPU_W * (0.05 + 0.1), rel=0.02)
    assert a.attributes[A.SPAN_ENERGY_SPLIT] == "active_time"
    assert a.attributes[A.SPAN_ENERGY_SHARE] == pytest.approx(0.75, rel=0.02)


def test_spans_not_selected_pass_at_once_untouched(sampler: Sampler) -> None:
    t = Setup(sampler)
    with t.tracer.start_as_current_span("GET upstream", kind=SpanKind.CLIENT):
        pass
    with get_tracer(t.provider).start_as_current_span("train", kind=SpanKind.SERVER):
        pass  # our own scope: never annotated (our spans carry their energy already)
    names = [s.name for s in t.spans.get_finished_spans()]  # before any flush
    assert names == ["GET upstream", "train"]
    assert all(A.ENERGY not in (s.attributes or {}) for s in t.spans.get_finished_spans())


def test_a_scope_name_selects_its_spans(sampler: Sampler) -> None:
    t = Setup(
        sampler, SpanSelection(frozenset(), frozenset({"opentelemetry.instrumentation.fake"}))
    )
    with t.tracer.start_as_current_span("internal work"):
        pass
    t.provider.force_flush()
    assert [s.name for s in t.annotated()] == ["internal work"]


def test_the_histogram_links_each_span(sampler: Sampler) -> None:
    t = Setup(sampler)
    spans = t.past((0, 100, None), (150, 250, None))
    t.provider.force_flush()
    data = t.reader.get_metrics_data()
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == A.METRIC_SPAN_ENERGY
        for p in m.data.data_points
    ]
    assert sum(p.count for p in points) == 2
    assert points[0].attributes[A.SPAN_KIND] == "server"
    linked = {e.span_id for p in points for e in p.exemplars}
    assert linked <= {s.get_span_context().span_id for s in spans} and linked


class Stalled(SpanExporter):
    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.got: list[ReadableSpan] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.entered.set()
        self.release.wait(60)
        self.got.extend(spans)
        return SpanExportResult.SUCCESS


def test_a_stalled_exporter_stalls_neither_the_request_nor_the_sampler(sampler: Sampler) -> None:
    stalled = Stalled()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(stalled))  # exports on the caller's thread
    install(provider, sampler, SERVER)
    tracer = provider.get_tracer("opentelemetry.instrumentation.fake")
    with tracer.start_as_current_span("POST /a", kind=SpanKind.SERVER):
        pass  # ending it returned: the request thread did not export
    assert stalled.entered.wait(30), "the held span was never handed on"
    before = sampler.newest_sample_s
    # The annotator thread is now stuck in the exporter; the sampler keeps sampling.
    assert sampler.wait_for_sample(before, 30.0)
    with tracer.start_as_current_span("POST /b", kind=SpanKind.SERVER):
        pass  # a second request, still not blocked
    stalled.release.set()
    provider.force_flush()
    assert {s.name for s in stalled.got} >= {"POST /a"}


def test_shutdown_hands_on_what_is_held(sampler: Sampler) -> None:
    t = Setup(sampler)
    with t.tracer.start_as_current_span("POST /last", kind=SpanKind.SERVER):
        pass  # newer than the newest sample: held
    t.provider.shutdown()
    (span,) = t.annotated()
    assert span.attributes[A.ENERGY] > 0


def test_uninstall_puts_the_processors_back(sampler: Sampler) -> None:
    t = Setup(sampler)
    inner = t.processor.inner
    uninstall(t.provider, t.processor)
    assert t.provider._active_span_processor._span_processors == inner
    with t.tracer.start_as_current_span("POST /x", kind=SpanKind.SERVER):
        pass
    assert [A.ENERGY in (s.attributes or {}) for s in t.spans.get_finished_spans()] == [False]


def test_selection_from_the_environment() -> None:
    assert span_selection({}) is None
    assert span_selection({"OTEL_PYTHON_ENERGY_SPANS": "off"}) is None
    sel = span_selection(
        {"OTEL_PYTHON_ENERGY_SPANS": "Server, opentelemetry.instrumentation.fastapi"}
    )
    assert sel is not None
    assert sel.kinds == {"server"} and sel.scopes == {"opentelemetry.instrumentation.fastapi"}
    with pytest.raises(ConfigError, match=r"OTEL_PYTHON_ENERGY_SPANS_MAX_DELAY='soon'.*0 to 3600"):
        span_selection(
            {"OTEL_PYTHON_ENERGY_SPANS": "server", "OTEL_PYTHON_ENERGY_SPANS_MAX_DELAY": "soon"}
        )


def test_uninstrument_takes_the_annotators_sigterm_closer_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The instrumentor's span annotator registers with the SIGTERM guard; uninstrument must
    unregister it (before: the closer stayed, so the guard never became idle and was never
    uninstalled, and a later SIGTERM flushed a provider no longer ours)."""
    import signal

    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

    from otel_energy.engine.signals import TerminationGuard
    from otel_energy.instrumentor import EnergyInstrumentor

    monkeypatch.setenv("OTEL_PYTHON_ENERGY_SPANS", "server")
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_LEDGER", "off")
    before = signal.getsignal(signal.SIGTERM)
    assert not isinstance(before, TerminationGuard)
    make = fake_gpu_sampler_factory()
    inst = EnergyInstrumentor()
    inst.instrument(
        tracer_provider=SdkTracerProvider(), meter_provider=MeterProvider(), sampler=make()
    )
    try:
        guard = signal.getsignal(signal.SIGTERM)
        assert isinstance(guard, TerminationGuard) and not guard.idle
    finally:
        inst.uninstrument()
    assert guard.idle
    assert signal.getsignal(signal.SIGTERM) is before  # the guard is gone with its last closer
