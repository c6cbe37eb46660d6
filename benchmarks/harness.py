"""Pieces the benchmarks share to drive our callback without a Trainer, and to export nowhere.

(Moved here from bench_step_overhead.py when bench_overhead.py replaced it.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class DropExporter(SpanExporter):
    """Accepts and drops spans: the full SDK path without I/O."""

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def providers() -> tuple[TracerProvider, MeterProvider]:
    """A tracer provider with a batch processor to ``DropExporter``, and a bare meter provider."""
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DropExporter()))
    return tp, MeterProvider()


def energy_callback(tp: TracerProvider, mp: MeterProvider, step_spans: str) -> Any:
    """``EnergyCallback`` with ``OTEL_PYTHON_ENERGY_STEP_SPANS=step_spans`` over the environment."""
    from otel_energy.config import load_config
    from otel_energy.hf import EnergyCallback

    env = {**os.environ, "OTEL_PYTHON_ENERGY_STEP_SPANS": step_spans}
    return EnergyCallback(tracer_provider=tp, meter_provider=mp, config=load_config(env))


def begin_direct_run(cb: Any, max_steps: int) -> tuple[Any, Any, Any]:
    """Start a run and an epoch on ``cb`` without a Trainer, to drive its step events directly.

    Returns the Trainer-like ``args`` and ``state`` to pass to the events, and the recorder.
    """
    state = SimpleNamespace(global_step=0, epoch=0.0, max_steps=max_steps, log_history=[])
    args = SimpleNamespace(
        num_train_epochs=1, gradient_accumulation_steps=1, per_device_train_batch_size=8
    )
    cb.on_train_begin(args, state, None)
    cb.on_epoch_begin(args, state, None)
    assert cb.recorder is not None
    return args, state, cb.recorder
