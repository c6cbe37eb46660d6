"""Memory over a long run: RSS growth over 100,000 optimizer steps with step spans on.

The callback's step events are driven directly, each step "working" 0.5 ms (busy, holding the
GIL like a training step; the tiny CPU model needs 3-10 ms), so 100,000 steps take about a
minute; spans go to a real BatchSpanProcessor whose exporter drops them; the sampler runs at the
default interval and completes the spans on its thread, as in training.
Usage:  python benchmarks/bench_memory.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from benchmarks.common import machine, write
from benchmarks.harness import begin_direct_run
from otel_energy.config import load_config
from otel_energy.hf import EnergyCallback


class DropExporter(SpanExporter):
    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


STEP_S = 0.0005


def rss_mb() -> float:
    return psutil.Process(os.getpid()).memory_info().rss / 1e6


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    steps, mark = (5_000, 1_000) if a.quick else (100_000, 10_000)
    exporter = DropExporter()
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(exporter))
    mp = MeterProvider()
    # A span per step (the worst case for memory): 0.5 ms steps are grouped by default.
    env = {**os.environ, "OTEL_PYTHON_ENERGY_STEP_SPANS": "all"}
    cb = EnergyCallback(tracer_provider=tp, meter_provider=mp, config=load_config(env))
    args, state, rec = begin_direct_run(cb, steps)
    trace_points = []
    for i in range(1, steps + 1):
        cb.on_step_begin(args, state, None)
        end = time.perf_counter() + STEP_S
        while time.perf_counter() < end:  # the step's own work
            pass
        state.global_step += 1
        cb.on_step_end(args, state, None)
        if i % mark == 0:
            gc.collect()
            trace_points.append(
                {
                    "step": i,
                    "rss_mb": rss_mb(),
                    "history_samples": rec.sampler.history_size,
                    "pending_spans": len(rec._pending),
                }
            )
    cb.on_epoch_end(args, state, None)
    cb.on_train_end(args, state, None)
    tp.shutdown()
    mp.shutdown()
    first, last = trace_points[0], trace_points[-1]
    result = {
        "machine": machine(),
        "steps": steps,
        "points": trace_points,
        "rss_growth_mb_after_first_mark": last["rss_mb"] - first["rss_mb"],
        "spans_exported": exporter.exported,
        "targets": {"rss_growth_mb": 5},
    }
    m = result["machine"]
    md = [
        "# Memory over a long run",
        "",
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), Python {m['python']};"
        f" {m['date']}. {steps} steps of 0.5 ms work, step spans on, batch processor with a"
        " dropping exporter"
        f" ({exporter.exported} spans exported).",
        "",
        "| step | RSS (MB) | sampler history (samples) | spans awaiting energy |",
        "|---|---|---|---|",
    ]
    md += [
        f"| {p['step']} | {p['rss_mb']:.1f} | {p['history_samples']} | {p['pending_spans']} |"
        for p in trace_points
    ]
    md += [
        "",
        f"RSS growth from step {first['step']} to {last['step']}:"
        f" {result['rss_growth_mb_after_first_mark']:+.2f} MB (target < 5 MB).",
    ]
    write("memory_quick" if a.quick else "memory", result, "\n".join(md), a.out)
    print("\n".join(md))
    return result


if __name__ == "__main__":
    main()
