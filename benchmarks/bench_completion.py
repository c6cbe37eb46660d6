"""Sampler-thread cost of completing step spans: window query, attributes, SDK span, histogram.

Queues N steps (two clock readings each, as the Trainer callback does), then runs one sampler
tick, whose listener completes them all on this thread, and prints the cost per step. A real
``TracerProvider`` with a ``BatchSpanProcessor`` to an exporter that drops spans, a real
``MeterProvider``; sensors from this machine (psutil estimates here). ``--profile`` prints the
top of a cProfile of the tick.

Usage:
    python benchmarks/bench_completion.py [--steps N] [--runs R] [--profile]

Writes ``benchmarks/results/completion.{json,md}`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_energy.config import load_config
from otel_energy.engine.runtime import build_sampler
from otel_energy.telemetry.spans import SpanEnergyRecorder
from otel_energy.telemetry.step_histogram import step_histogram


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3, help="independent ticks, each of --steps")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--quick", action="store_true", help="200 steps, one run: for CI, noise")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.runs = 200, 1
    per_step = [_one_run(args.steps, args.profile) for _ in range(args.runs)]
    lines = [
        "# Sampler-thread completion cost per step span",
        "",
        f"Machine: {platform.processor() or platform.machine()},"
        f" Python {platform.python_version()};"
        f" {time.strftime('%Y-%m-%dT%H:%M:%S%z')}. {args.runs} runs of {args.steps} queued steps,"
        " each completed in one sampler tick on this thread.",
        "",
        "Per step (us): " + ", ".join(f"{v:.1f}" for v in per_step),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "completion.md").write_text("\n".join(lines) + "\n")
    (args.out / "completion.json").write_text(
        json.dumps(
            {
                "machine": {"processor": platform.processor(), "logical_cpus": os.cpu_count()},
                "steps": args.steps,
                "per_step_us": per_step,
            },
            indent=2,
        )
        + "\n"
    )
    print("\n".join(lines))
    return 0


def _one_run(steps: int, profile: bool) -> float:
    """Queue ``steps`` steps, complete them in one tick; us per step."""
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(_Drop()))
    sampler = build_sampler(load_config({}))
    sampler.sample_once()  # discovery and a first sample, on this thread (no sampler thread)
    rec = SpanEnergyRecorder(sampler, tp.get_tracer("bench"), step_histogram(MeterProvider()))
    epoch = rec.start("epoch", "epoch", rec.start("run", "train", None, {}), {})
    for i in range(steps):
        rec.step_end(rec.step_begin(), i + 1, epoch)
    prof = cProfile.Profile() if profile else None
    t = time.perf_counter()
    if prof:
        prof.enable()
    sampler.sample_once()  # the listener completes every queued step here
    dt = time.perf_counter() - t
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(20)
    tp.shutdown()
    sampler.stop()
    return dt / steps * 1e6


if __name__ == "__main__":
    sys.exit(main())
