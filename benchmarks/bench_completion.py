"""Sampler-thread cost of completing steps, per step, for each ``OTEL_PYTHON_ENERGY_STEP_SPANS``.

Queues ``--per-tick`` steps (two clock readings each, as the Trainer callback does; 20 is a
5 ms step at the default 0.1 s interval), takes a sample, then times the recorder's completion
of those steps on this thread in CPU time (the listener the sampler calls after each tick; the
sensor reads are not timed), for ``--steps`` steps in all. Modes: ``auto`` (the default: short
steps share one ``steps`` span per tick, each step's energy in bulk), ``all`` (a span and a
window per step, as before) and ``off`` (no step span). A real ``TracerProvider`` with a
``BatchSpanProcessor`` to an exporter that drops spans, a real ``MeterProvider`` (the step
histogram); sensors from this machine (psutil estimates here). ``--profile`` prints the top of
a cProfile per mode.

Usage:
    python benchmarks/bench_completion.py [--steps N] [--per-tick K] [--runs R] [--profile]

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
from otel_energy.telemetry.step_groups import GROUPED, NO_SPAN, OWN_SPAN
from otel_energy.telemetry.step_histogram import step_histogram

MODES = {"auto": GROUPED, "all": OWN_SPAN, "off": NO_SPAN}


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--per-tick", type=int, default=20, help="steps completed at each tick")
    ap.add_argument("--runs", type=int, default=3, help="independent runs of --steps per mode")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--quick", action="store_true", help="400 steps, one run: for CI, noise")
    ap.add_argument("--note", default="", help="a line on the machine's state (its load)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.runs = 400, 1
    per_step = {
        mode: [_one_run(args.steps, args.per_tick, span, args.profile) for _ in range(args.runs)]
        for mode, span in MODES.items()
    }
    lines = [
        "# Sampler-thread completion cost per step, by OTEL_PYTHON_ENERGY_STEP_SPANS",
        "",
        f"Machine: {platform.processor() or platform.machine()} ({os.cpu_count()} logical CPUs),"
        f" Python {platform.python_version()}; {time.strftime('%Y-%m-%dT%H:%M:%S%z')}."
        f" {args.runs} runs of {args.steps} steps per mode, {args.per_tick} completed at each"
        " tick; this thread's CPU time (`time.thread_time`) in the completion, which holds the"
        " GIL.",
    ]
    if args.note:
        lines += ["", args.note]
    lines += ["", "| Mode | us per step (each run) |", "|---|---|"]
    lines += [
        f"| `{m}` | " + ", ".join(f"{v:.1f}" for v in vs) + " |" for m, vs in per_step.items()
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "completion.md").write_text("\n".join(lines) + "\n")
    (args.out / "completion.json").write_text(
        json.dumps(
            {
                "machine": {"processor": platform.processor(), "logical_cpus": os.cpu_count()},
                "note": args.note,
                "steps": args.steps,
                "per_tick": args.per_tick,
                "per_step_us": per_step,
            },
            indent=2,
        )
        + "\n"
    )
    print("\n".join(lines))
    return 0


def _one_run(steps: int, per_tick: int, span: int, profile: bool) -> float:
    """Complete ``steps`` steps, ``per_tick`` at each tick; us per step of completion."""
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(_Drop()))
    sampler = build_sampler(load_config({}))
    sampler.sample_once()  # discovery and a first sample, on this thread (no sampler thread)
    rec = SpanEnergyRecorder(sampler, tp.get_tracer("bench"), step_histogram(MeterProvider()))
    rec.close()  # not the sampler's listener: its completion is called (and timed) here
    epoch = rec.start("epoch", "epoch", rec.start("run", "train", None, {}), {})
    prof = cProfile.Profile() if profile else None
    spent, number = 0.0, 0
    for tick in range(1 + max(1, steps // per_tick)):  # tick 0 warms up (the export thread)
        for _ in range(per_tick):
            number += 1
            rec.step_end(rec.step_begin(), number, epoch, span)
        sampler.sample_once()
        if prof and tick:
            prof.enable()
        # This thread's CPU time: what it holds the GIL for, not the time other engineers'
        # processes or the export thread take from it on a loaded machine.
        t = time.thread_time()
        rec._resolve_ready(sampler.newest_sample_s)  # what the listener does after the tick
        if tick:
            spent += time.thread_time() - t
        if prof:
            prof.disable()
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(15)
    tp.shutdown()
    sampler.stop()
    return spent / (number - per_tick) * 1e6


if __name__ == "__main__":
    sys.exit(main())
