"""Spans are ended on the export thread, never the sampler's; flushes are bounded.

The exporters here stall on an ``Event`` (a collector that does not answer): every bound is the
documented flush timeout or a hang guard, never a guess at the machine's speed.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from otel_energy.session import end_recording, open_session, session
from otel_energy.telemetry.handoff import SpanHandoff
from tests.support.hf_helpers import fake_gpu_sampler_factory
from tests.support.step_spans import steps_covered

HANG_S = 60.0
"""Only bounds a hang: how long a stalled exporter waits to be released."""


class StalledExporter(SpanExporter):
    """A ``SimpleSpanProcessor``'s exporter whose ``export`` waits until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: set[str] = set()
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        self.release.wait(HANG_S)
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


@pytest.fixture
def stalled() -> tuple[StalledExporter, TracerProvider]:
    exporter = StalledExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    exporter.release.set()
    provider.shutdown()


def test_sampling_goes_on_while_the_exporter_stalls(
    stalled: tuple[StalledExporter, TracerProvider],
) -> None:
    """A user's SimpleSpanProcessor with a collector that does not answer: the sampler thread
    completes the step span and goes on sampling; the export thread is the one that waits."""
    exporter, provider = stalled
    with session(fake_gpu_sampler_factory()) as s:
        rec = s.recorder(provider, MeterProvider())
        run = rec.start("run", "train")
        rec.step_end(rec.step_begin(), 1, run)
        assert exporter.entered.wait(HANG_S)  # the step span's export is stalled now
        newest = s.sampler.newest_sample_s
        for _ in range(5):  # five newer samples while the export is stalled
            later = math.nextafter(newest, math.inf)
            assert s.sampler.wait_for_sample(later, HANG_S / 10), "sampling stopped"
            newest = s.sampler.newest_sample_s
        rec.finish(run)
        exporter.release.set()
        assert rec.flush()
        rec.close()
    # one step span (its group's when short: an instant step unless this thread was held up
    # for two intervals between its two calls, docs/spans.md), then the run's
    assert [sp.name for sp in exporter.spans][-1] == "train"
    assert steps_covered((sp.name, sp.attributes) for sp in exporter.spans[:-1]) == [1]
    assert exporter.threads == {"otel-energy-export"}
    [step] = [sp for sp in exporter.spans if sp.name in ("step", "steps")]
    assert step.attributes is not None and step.attributes["otel_energy.energy"] > 0


def test_the_end_of_a_recording_waits_at_most_the_flush_timeout(
    stalled: tuple[StalledExporter, TracerProvider], caplog: pytest.LogCaptureFixture
) -> None:
    """The run span's export stalls: the end of the recording returns after the flush timeout
    (plus the one wait for a last sample, at most 1 s) with one warning naming the setting."""
    exporter, provider = stalled
    timeout_s = 0.5
    opened = open_session(fake_gpu_sampler_factory())
    rec = opened.recorder(provider, MeterProvider())
    rec.finish(rec.start("run", "train"))
    with caplog.at_level(logging.WARNING, logger="otel_energy"):
        start = time.monotonic()
        sent = end_recording(rec, opened, timeout_s)
        elapsed = time.monotonic() - start
    assert not sent
    assert elapsed < HANG_S / 2  # bounded: before, it waited for the collector (HANG_S)
    assert elapsed < timeout_s + 1.0 + 5.0  # the bound, the last-sample wait, a loaded machine
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "within 0.5 s (OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT)" in warning.getMessage()
    assert exporter.entered.is_set()
    exporter.release.set()


def test_a_full_queue_drops_steps_and_counts_them_but_never_a_parent() -> None:
    handoff = SpanHandoff(max_queued=2)
    gate, ended = threading.Event(), []

    class Span:
        def __init__(self, name: str) -> None:
            self.name = name

        def end(self, end_time: int | None = None) -> None:
            gate.wait(HANG_S)
            ended.append(self.name)

    spans = [Span(f"step{i}") for i in range(4)]
    assert [handoff.end(sp, 0) for sp in spans] == [True, True, False, False]  # type: ignore[arg-type]
    assert handoff.end(Span("run"), 0, must=True)  # type: ignore[arg-type]
    assert handoff.dropped == 2 and handoff.pending == 3
    assert not handoff.drain(0.05)
    gate.set()
    assert handoff.drain(HANG_S)
    assert ended == ["step0", "step1", "run"] and handoff.pending == 0
