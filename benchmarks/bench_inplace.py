"""Training-thread cost of the Trainer callback, measured in place: inside the Trainer's own step
events, after real optimizer steps (cold caches), against a bare OTel span in the same events.

One process run of the tiny CPU BERT (otel_energy.testing.tiny):

1. **In place.** One Trainer run whose only callback is a dispatcher that forwards each step event
   to three timed callees: our ``EnergyCallback`` (a), a bare OTel SDK span started in
   ``on_step_begin`` and ended in ``on_step_end`` (b, a real ``TracerProvider`` with a
   ``BatchSpanProcessor`` to an exporter that drops spans), and a no-op (the timing wrapper's own
   cost, subtracted from both). Each callee is timed with ``perf_counter_ns`` around its call; the
   order of the three rotates every step so that none is always the first to run after the step.
   Per step: our begin + end, the bare span's begin + end, medians over the run.
2. **Wall time, with vs without** (a cross-check only: whole runs on a shared 2-core VM spread
   far more than 1%; the project's overhead figure is bench_overhead.py's block-interleaved
   one). Whole training runs, paired and interleaved (ABAB...): with
   our callback attached as users attach it, and without any. Per run: the ``train()`` wall time
   and the step loop's time (first ``on_step_begin`` to last ``on_step_end``, measured by a
   timing callback present in both). Ratios per pair, median and spread.
3. **Tight loop** for comparison: our step pair and a bare span start + end called back to back
   (warm caches).

Usage:
    python benchmarks/bench_inplace.py [--quick] [--out DIR] [--label NAME]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from transformers import TrainerCallback

from benchmarks.common import machine, median, write
from benchmarks.harness import DropExporter, begin_direct_run, energy_callback
from otel_energy.testing.tiny import tiny_trainer

Hook = Callable[..., Any]


class BareSpan:
    """A bare OTel SDK span started in ``on_step_begin`` and ended in ``on_step_end``."""

    def __init__(self, tp: TracerProvider) -> None:
        self.tracer = tp.get_tracer("bench.bare")
        self.span: Any = None

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.span = self.tracer.start_span("step")

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.span.end()


class NoOp:
    """The timing wrapper around nothing: its cost is subtracted from the others."""

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        pass

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        pass


class Dispatch:
    """Times each callee's step events in place; other events go to ``ours`` only.

    Not a ``TrainerCallback`` subclass: that class defines every event as a no-op, which would
    shadow ``__getattr__`` and never start ``ours``'s run.
    """

    def __init__(self, ours: Any, callees: dict[str, Any]) -> None:
        self.ours = ours
        self.names = list(callees)
        self.callees = [callees[n] for n in self.names]
        self.begin_ns: list[list[int]] = [[] for _ in self.names]
        self.end_ns: list[list[int]] = [[] for _ in self.names]
        self._turn = 0

    def _order(self) -> list[int]:
        k = len(self.callees)
        return [(self._turn + i) % k for i in range(k)]

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        clock = time.perf_counter_ns
        for i in self._order():
            hook = self.callees[i].on_step_begin
            t0 = clock()
            hook(args, state, control, **kw)
            self.begin_ns[i].append(clock() - t0)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        clock = time.perf_counter_ns
        for i in self._order():
            hook = self.callees[i].on_step_end
            t0 = clock()
            hook(args, state, control, **kw)
            self.end_ns[i].append(clock() - t0)
        self._turn += 1

    def __getattr__(self, name: str) -> Any:  # run/epoch/eval/log events: ours only
        if name.startswith("on_"):
            return getattr(self.ours, name)
        raise AttributeError(name)

    def per_step_us(self, name: str, skip: int) -> list[float]:
        i = self.names.index(name)
        pairs = zip(self.begin_ns[i][skip:], self.end_ns[i][skip:], strict=False)
        return [(b + e) / 1e3 for b, e in pairs]


def spread(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    n = len(s)
    return {"p10": s[n // 10], "median": median(s), "p90": s[(9 * n) // 10], "n": n}


def in_place(steps: int, workdir: str) -> dict[str, Any]:
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DropExporter()))
    mp = MeterProvider()
    ours = energy_callback(tp, mp, "all")
    probe = Dispatch(ours, {"ours": ours, "bare_span": BareSpan(tp), "noop": NoOp()})
    trainer = tiny_trainer(
        workdir, callbacks=[probe], n_train=8 * steps, num_train_epochs=1, logging_steps=10**9
    )
    trainer.train()
    tp.shutdown()
    mp.shutdown()
    run = ours.last_run
    assert run is not None and run.steps == steps, "our callback did not measure the run"
    skip = min(10, steps // 5)  # warm-up steps
    noop = median(probe.per_step_us("noop", skip))
    raw = {n: probe.per_step_us(n, skip) for n in ("ours", "bare_span")}
    net = {n: [x - noop for x in xs] for n, xs in raw.items()}
    ratios = [a / b for a, b in zip(net["ours"], net["bare_span"], strict=True) if b > 0]
    return {
        "steps": steps,
        "wrapper_us": noop,
        "ours_us": spread(net["ours"]),
        "bare_span_us": spread(net["bare_span"]),
        "ratio_ours_over_bare": median(net["ours"]) / median(net["bare_span"]),
        "per_step_ratio": spread(ratios),
    }


class LoopClock(TrainerCallback):  # type: ignore[misc]
    """First ``on_step_begin`` to last ``on_step_end`` (s): the step loop without set-up."""

    def __init__(self) -> None:
        self.first = self.last = 0.0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if not self.first:
            self.first = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.last = time.perf_counter()


def one_run(with_ours: bool, steps: int, workdir: str) -> tuple[float, float]:
    """(train() wall s, step loop s) of one run, with or without our callback."""
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DropExporter()))
    mp = MeterProvider()
    clock = LoopClock()
    callbacks: list[Any] = [energy_callback(tp, mp, "all")] if with_ours else []
    trainer = tiny_trainer(
        workdir,
        callbacks=[*callbacks, clock],
        n_train=8 * steps,
        num_train_epochs=1,
        logging_steps=10**9,
    )
    gc.collect()
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    tp.shutdown()
    mp.shutdown()
    return wall, clock.last - clock.first


def wall_pairs(pairs: int, steps: int, workdir: str) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    one_run(False, min(steps, 50), workdir)  # warm-up: imports, allocator, thread pools
    for p in range(pairs):
        order = (True, False) if p % 2 == 0 else (False, True)  # ABBA: no order bias
        got = {w: one_run(w, steps, workdir) for w in order}
        runs.append(
            {
                "with_train_s": got[True][0],
                "without_train_s": got[False][0],
                "with_loop_s": got[True][1],
                "without_loop_s": got[False][1],
            }
        )
    loop_ratio = [r["with_loop_s"] / r["without_loop_s"] for r in runs]
    train_ratio = [r["with_train_s"] / r["without_train_s"] for r in runs]
    return {
        "pairs": pairs,
        "steps": steps,
        "runs": runs,
        "loop_ratio_median": median(loop_ratio),
        "loop_ratios": loop_ratio,
        "train_ratio_median": median(train_ratio),
        "train_ratios": train_ratio,
    }


def tight_loop(n: int, repeats: int) -> dict[str, float]:
    """Median us per step: our step pair and a bare span, back to back (warm caches)."""
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DropExporter(), max_queue_size=2**20))
    mp = MeterProvider()
    tracer = tp.get_tracer("bench")
    cb = energy_callback(tp, mp, "all")
    args, state, rec = begin_direct_run(cb, n)
    rec.close()  # completion is done explicitly between chunks, off the clock
    chunk, ours, bare = 20, [], []
    for _ in range(repeats):
        t_ours = t_bare = 0
        for _ in range(n // chunk):
            t0 = time.perf_counter_ns()
            for _ in range(chunk):
                cb.on_step_begin(args, state, None)
                state.global_step += 1
                cb.on_step_end(args, state, None)
            t_ours += time.perf_counter_ns() - t0
            rec._resolve_ready(float("inf"))
            t0 = time.perf_counter_ns()
            for _ in range(chunk):
                tracer.start_span("step").end()
            t_bare += time.perf_counter_ns() - t0
            tp.force_flush()
        ours.append(t_ours / n / 1e3)
        bare.append(t_bare / n / 1e3)
    cb.on_train_end(args, state, None)
    tp.shutdown()
    mp.shutdown()
    return {"ours_us": median(ours), "bare_span_us": median(bare)}


def markdown(r: dict[str, Any]) -> str:
    m, ip, w, t = r["machine"], r["in_place"], r["wall"], r["tight_loop"]
    ours, bare = ip["ours_us"], ip["bare_span_us"]
    lines = [
        f"# In-place step cost of EnergyCallback ({r['label']})",
        "",
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), Python {m['python']}, "
        f"torch {m['torch']}, transformers {m['transformers']}, "
        f"OTel SDK {m['opentelemetry-sdk']}; {m['date']}. Code: {r['label']}.",
        "",
        f"In place, one Trainer run of {ip['steps']} steps (tiny BERT, CPU), per optimizer step,"
        f" time inside our on_step_begin + on_step_end and inside a bare OTel span started and"
        f" ended in the same events; the timing wrapper's own cost ({ip['wrapper_us']:.2f} us,"
        " a no-op measured the same way) subtracted:",
        "",
        "| per step | p10 (us) | median (us) | p90 (us) |",
        "|---|---|---|---|",
        f"| ours | {ours['p10']:.1f} | {ours['median']:.1f} | {ours['p90']:.1f} |",
        f"| bare span | {bare['p10']:.1f} | {bare['median']:.1f} | {bare['p90']:.1f} |",
        "",
        f"Ours / bare span: **{ip['ratio_ours_over_bare']:.2f}x** (ratio of medians); per-step"
        f" ratio p10-median-p90 {ip['per_step_ratio']['p10']:.2f}-"
        f"{ip['per_step_ratio']['median']:.2f}-{ip['per_step_ratio']['p90']:.2f}.",
        "",
        f"Wall time, {w['pairs']} pairs of whole runs of {w['steps']} steps, with our callback vs"
        " without, interleaved (ABBA):",
        "",
        f"- step loop with / without: median **{w['loop_ratio_median']:.4f}**; pairs: "
        + ", ".join(f"{x:.4f}" for x in w["loop_ratios"]),
        f"- train() with / without (set-up included): median {w['train_ratio_median']:.4f};"
        " pairs: " + ", ".join(f"{x:.4f}" for x in w["train_ratios"]),
        "",
        f"Tight loop (warm caches), per step: ours {t['ours_us']:.1f} us, bare span"
        f" {t['bare_span_us']:.1f} us.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="seconds, for CI: the numbers are noise")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--label", default="current code")
    ap.add_argument("--name", default=None, help="result file name (default: inplace)")
    ap.add_argument("--steps", type=int, default=2000, help="in-place run length")
    ap.add_argument("--pairs", type=int, default=6, help="with/without pairs of whole runs")
    ap.add_argument("--wall-steps", type=int, default=600, help="steps per whole run")
    a = ap.parse_args(argv)
    steps, pairs, wsteps, n = (
        (40, 1, 30, 200) if a.quick else (a.steps, a.pairs, a.wall_steps, 4000)
    )
    with tempfile.TemporaryDirectory() as workdir:
        result: dict[str, Any] = {
            "label": a.label,
            "quick": a.quick,
            "machine": machine(),
            "in_place": in_place(steps, workdir),
            "wall": wall_pairs(pairs, wsteps, workdir),
            "tight_loop": tight_loop(n, 3 if a.quick else 7),
        }
    name = a.name or ("inplace_quick" if a.quick else "inplace")
    path = write(name, result, markdown(result), a.out)
    print(markdown(result))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
