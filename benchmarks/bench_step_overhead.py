"""Training-thread cost of the Trainer callback, as ratios against no callback in the same run.

1. Interleaved in one training run of the tiny CPU model (~5-10 ms/step): the callback's step
   events are switched on and off in alternating blocks of steps, and each "on" block is compared
   with the "off" block next to it (median step period each; the first step of a block is
   dropped). Whole-run A/B comparisons are too noisy on a shared 2-vCPU VM (runs of the same
   configuration differ by 2x); adjacent blocks see the same machine state. The period between
   consecutive ``on_step_begin`` events includes everything the callbacks do.
2. Whole runs, alternating: no callback, callback with step spans on, callback with step spans
   off, reported for completeness with their run-to-run spread.
3. Microbenchmark: our ``on_step_begin``+``on_step_end`` pair against a bare OTel span start/end
   with the same tracer and a batch span processor, to show what is ours and what is the SDK's.

Spans go to a real BatchSpanProcessor whose exporter drops them; the sampler runs at the default
interval throughout (its own CPU cost is measured by bench_sampler.py). Usage:
    python benchmarks/bench_step_overhead.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from transformers import TrainerCallback

from benchmarks.common import machine, median, write
from otel_energy.config import load_config
from otel_energy.hf import EnergyCallback
from otel_energy.testing.tiny import tiny_trainer


class DropExporter(SpanExporter):
    """Accepts and drops spans: the full SDK path without I/O."""

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def providers() -> tuple[TracerProvider, MeterProvider]:
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DropExporter()))
    return tp, MeterProvider()


def energy_callback(tp: TracerProvider, mp: MeterProvider, step_spans: str) -> EnergyCallback:
    env = {**os.environ, "OTEL_PYTHON_ENERGY_STEP_SPANS": step_spans}
    return EnergyCallback(tracer_provider=tp, meter_provider=mp, config=load_config(env))


def _ignore(*args: Any, **kwargs: Any) -> None:
    """An event the inner callback does not handle."""


class Interleave:
    """Forwards every event to ``inner`` except step events in "off" blocks; times each step.

    Not a ``TrainerCallback`` subclass: that class defines every event as a no-op, which shadowed
    ``__getattr__``, so ``inner`` never saw ``on_train_begin`` and its step events did nothing
    (the interleaved figures before this fix measured an idle callback).
    """

    def __init__(self, inner: EnergyCallback | None, block: int) -> None:
        self.inner, self.block = inner, block
        self.t: list[float] = []
        self.on: list[bool] = []

    def _active(self, state: Any) -> bool:
        return (state.global_step // self.block) % 2 == 1

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.t.append(time.perf_counter())
        self.on.append(self._active(state))
        if self.inner is not None and self.on[-1]:
            self.inner.on_step_begin(args, state, control, **kw)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.inner is not None and self.on[-1]:
            self.inner.on_step_end(args, state, control, **kw)

    def __getattr__(self, name: str) -> Any:  # other events go straight to the inner callback
        if name.startswith("on_"):
            return getattr(self.inner, name, _ignore)  # peers' adapters have step events only
        raise AttributeError(name)

    def block_pairs(self) -> list[tuple[float, float]]:
        """(median off-block period, median on-block period) for adjacent block pairs."""
        periods = [b - a for a, b in zip(self.t, self.t[1:], strict=False)]
        blocks: list[list[float]] = []
        for i, p in enumerate(periods):
            if i % self.block == 0:
                blocks.append([])
                continue  # drop the first step of every block (switch-over)
            blocks[-1].append(p)
        pairs = []
        for j in range(2, len(blocks) - 1, 2):  # block j is off, j+1 on; skip warm-up blocks 0-1
            pairs.append((median(blocks[j]), median(blocks[j + 1])))
        return pairs


def interleaved(
    step_spans: str, steps: int, block: int, workdir: str, **trainer_args: Any
) -> list[tuple[float, float]]:
    tp, mp = providers()
    probe = Interleave(energy_callback(tp, mp, step_spans), block)
    trainer = tiny_trainer(
        workdir,
        callbacks=[probe],
        n_train=8 * steps,
        num_train_epochs=1,
        logging_steps=10**9,
        **trainer_args,
    )
    trainer.train()
    tp.shutdown()
    mp.shutdown()
    assert probe.inner is not None and probe.inner.last_run is not None, "callback never ran"
    return probe.block_pairs()


class StepClock(TrainerCallback):  # type: ignore[misc]
    def __init__(self) -> None:
        self.t: list[float] = []

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.t.append(time.perf_counter())


def whole_run(mode: str, steps: int, workdir: str) -> float:
    tp, mp = providers()
    callbacks: list[Any] = []
    if mode != "baseline":
        callbacks.append(energy_callback(tp, mp, "all" if mode == "spans_all" else "off"))
    clock = StepClock()
    tiny_trainer(
        workdir,
        callbacks=[*callbacks, clock],
        n_train=8 * steps,
        num_train_epochs=1,
        logging_steps=10**9,
    ).train()
    tp.shutdown()
    mp.shutdown()
    return median([b - a for a, b in zip(clock.t[10:], clock.t[11:], strict=False)])


def begin_direct_run(cb: EnergyCallback, max_steps: int) -> tuple[Any, Any, Any]:
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


def micro(n: int, repeats: int) -> dict[str, float]:
    """Median microseconds per step: training-thread cost, completion cost, bare SDK span.

    Completion (window query, attributes, span end, histogram record) normally runs on the
    sampler thread; here it is detached and timed on its own so the two costs do not blur.
    """
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DropExporter(), max_queue_size=2**20))
    mp = MeterProvider()
    tracer = tp.get_tracer("bench")
    cb = energy_callback(tp, mp, "all")
    args, state, rec = begin_direct_run(cb, n)
    rec.close()  # detach completion from the sampler thread; done explicitly below
    # Pending spans are completed every CHUNK steps, as the sampler does every 0.1 s of 5 ms
    # steps; letting tens of thousands pile up would measure the garbage collector instead.
    chunk = 20
    ours, done, bare = [], [], []
    for _ in range(repeats):
        t_ours = t_done = 0.0
        for _ in range(n // chunk):
            t0 = time.perf_counter()
            for _ in range(chunk):
                cb.on_step_begin(args, state, None)
                state.global_step += 1
                cb.on_step_end(args, state, None)
            t1 = time.perf_counter()
            rec._resolve_ready(float("inf"))
            t_ours += t1 - t0
            t_done += time.perf_counter() - t1
            tp.force_flush()  # the processor's queue drained as for the bare spans below
        ours.append(t_ours / n * 1e6)
        done.append(t_done / n * 1e6)
        t_bare = 0.0
        for _ in range(n // chunk):
            t0 = time.perf_counter()
            for _ in range(chunk):
                tracer.start_span("step").end()
            t_bare += time.perf_counter() - t0
            tp.force_flush()  # the processor's queue drained as often, outside the timing
        bare.append(t_bare / n * 1e6)
    cb.on_epoch_end(args, state, None)
    cb.on_train_end(args, state, None)
    tp.shutdown()
    mp.shutdown()
    return {
        "callback_pair_us": median(ours),
        "completion_per_step_us": median(done),
        "bare_span_us": median(bare),
    }


def summarize(pairs: list[tuple[float, float]]) -> dict[str, float]:
    return {
        "block_pairs": len(pairs),
        "median_step_ms_off": median([p[0] for p in pairs]) * 1e3,
        "median_step_ms_on": median([p[1] for p in pairs]) * 1e3,
        "overhead_ratio": median([on / off - 1 for off, on in pairs]),
        "added_us_per_step": median([(on - off) * 1e6 for off, on in pairs]),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="CI smoke: few steps and repeats")
    ap.add_argument("--out", type=Path, default=None, help="results dir (benchmarks/results)")
    a = ap.parse_args(argv)
    steps, block, rounds = (200, 20, 1) if a.quick else (6000, 100, 3)
    with tempfile.TemporaryDirectory() as tmp:
        inter = {
            m: summarize(interleaved(m, steps, block, os.path.join(tmp, f"i-{m}")))
            for m in ("all", "off")
        }
        modes = ("baseline", "spans_all", "spans_off")
        runs: dict[str, list[float]] = {m: [] for m in modes}
        for r in range(rounds):
            for m in modes if r % 2 == 0 else reversed(modes):
                runs[m].append(whole_run(m, steps // 10, os.path.join(tmp, f"w-{m}{r}")))
    result: dict[str, Any] = {
        "machine": machine(),
        "method": __doc__.split("\n\n")[1].strip(),
        "interleaved": {
            "steps": steps,
            "block": block,
            "step_spans_all": inter["all"],
            "step_spans_off": inter["off"],
        },
        "whole_runs_step_ms": {m: [v * 1e3 for v in vs] for m, vs in runs.items()},
        "micro": micro(2000 if a.quick else 20000, 2 if a.quick else 7),
        "targets": {"overhead_ratio": 0.01, "added_us_per_step": 40},
    }
    m = result["machine"]
    md = [
        "# Per-step overhead of EnergyCallback (tiny BERT on CPU)",
        "",
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), Python {m['python']},"
        f" torch {m['torch']}, transformers {m['transformers']}, OTel SDK"
        f" {m['opentelemetry-sdk']}; {m['date']}.",
        "",
        f"Interleaved within one run of {steps} steps, blocks of {block} steps with the callback"
        " on/off; medians over adjacent block pairs:",
        "",
        "| step spans | pairs | step off (ms) | step on (ms) | overhead | added per step (us) |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("all", "off"):
        s = inter[name]
        md.append(
            f"| {name} | {s['block_pairs']} | {s['median_step_ms_off']:.3f} |"
            f" {s['median_step_ms_on']:.3f} | {s['overhead_ratio'] * 100:+.2f}% |"
            f" {s['added_us_per_step']:+.1f} |"
        )
    md += [
        "",
        f"Whole runs ({rounds} alternating rounds of {steps // 10} steps; median step ms per"
        " run, showing the machine's run-to-run spread):",
        "",
    ]
    for mode, vs in result["whole_runs_step_ms"].items():
        md.append(f"- {mode}: " + ", ".join(f"{v:.2f}" for v in vs))
    mic = result["micro"]
    md += [
        "",
        "Microbenchmark, per step, medians of repeats (sampler at the default interval):",
        "",
        f"- training thread, on_step_begin + on_step_end: {mic['callback_pair_us']:.1f} us",
        "- completion on the sampler thread (energy window, attributes, span end, histogram):"
        f" {mic['completion_per_step_us']:.1f} us",
        f"- bare OTel span start + end, same SDK and processor: {mic['bare_span_us']:.1f} us",
    ]
    write("step_overhead_quick" if a.quick else "step_overhead", result, "\n".join(md), a.out)
    print("\n".join(md))
    return result


if __name__ == "__main__":
    main()
