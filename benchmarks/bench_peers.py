"""Peers side by side: per-step windows of otel-energy, CodeCarbon and Zeus on the same training.

Each tool gets one training run of the tiny CPU model in which its per-step calls are switched on
and off in alternating blocks (the method of bench_step_overhead.py): the ratio is against no
tool, in the same process run, on adjacent blocks.

- otel-energy: ``EnergyCallback`` step events (a span per step with its energy).
- CodeCarbon 3.x: ``OfflineEmissionsTracker`` with ``start_task()``/``stop_task()`` per step, its
  documented per-task API (offline: no network).
- Zeus: ``ZeusMonitor.begin_window()``/``end_window()`` per step. Without a GPU it can only be
  built with no devices, so this measures its window bookkeeping, not device reads.

Usage:  python benchmarks/bench_peers.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_step_overhead import Interleave, energy_callback, providers, summarize
from benchmarks.common import machine, write
from otel_energy.testing.tiny import tiny_trainer


class Adapter:
    """Step events only; used as Interleave's inner callback."""

    def on_step_begin(self, *a: Any, **k: Any) -> None: ...
    def on_step_end(self, *a: Any, **k: Any) -> None: ...
    def on_train_end(self, *a: Any, **k: Any) -> None: ...


class CodeCarbonSteps(Adapter):
    def __init__(self) -> None:
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self.tracker = OfflineEmissionsTracker(
            country_iso_code="FRA", save_to_file=False, log_level="error"
        )
        self.tracker.start()
        self.n = 0

    def on_step_begin(self, *a: Any, **k: Any) -> None:
        self.n += 1
        self.tracker.start_task(f"step-{self.n}")

    def on_step_end(self, *a: Any, **k: Any) -> None:
        self.tracker.stop_task()

    def on_train_end(self, *a: Any, **k: Any) -> None:
        self.tracker.stop()


class ZeusSteps(Adapter):
    def __init__(self) -> None:
        from zeus.monitor import ZeusMonitor

        self.monitor = ZeusMonitor(gpu_indices=[], cpu_indices=[])
        self.n = 0

    def on_step_begin(self, *a: Any, **k: Any) -> None:
        self.n += 1
        self.monitor.begin_window(f"step-{self.n}")

    def on_step_end(self, *a: Any, **k: Any) -> None:
        self.monitor.end_window(f"step-{self.n}")


def interleaved(tool: str, steps: int, block: int, workdir: str) -> dict[str, float]:
    tp, mp = providers()
    inner: Any = {
        "otel-energy": lambda: energy_callback(tp, mp, "all"),
        "codecarbon": CodeCarbonSteps,
        "zeus": ZeusSteps,
    }[tool]()
    probe = Interleave(inner, block)
    trainer = tiny_trainer(
        workdir, callbacks=[probe], n_train=8 * steps, num_train_epochs=1, logging_steps=10**9
    )
    trainer.train()
    if tool != "otel-energy":
        inner.on_train_end()
    tp.shutdown()
    mp.shutdown()
    return summarize(probe.block_pairs())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    steps, block = (200, 20) if a.quick else (6000, 100)
    os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for tool in ("otel-energy", "codecarbon", "zeus"):
            try:
                results[tool] = interleaved(tool, steps, block, os.path.join(tmp, tool))
            except Exception as exc:  # a peer that cannot run here is reported, not hidden
                results[tool] = {"error": f"{type(exc).__name__}: {exc}"}
    result = {"machine": machine(), "steps": steps, "block": block, "tools": results}
    m = result["machine"]
    md = [
        "# Per-step tracking cost: otel-energy vs CodeCarbon vs Zeus",
        "",
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), Python {m['python']},"
        f" torch {m['torch']}, transformers {m['transformers']}; {m['date']}.",
        f"Tiny BERT on CPU; per tool one run of {steps} steps, its per-step calls on/off in"
        f" blocks of {block}; medians over adjacent block pairs.",
        "",
        "| tool | per-step API | step off (ms) | step on (ms) | overhead | added per step (us) |",
        "|---|---|---|---|---|---|",
    ]
    api = {
        "otel-energy": "EnergyCallback step span",
        "codecarbon": "start_task/stop_task",
        "zeus": "begin_window/end_window (no devices)",
    }
    for tool, r in results.items():
        if "error" in r:
            md.append(f"| {tool} | {api[tool]} | - | - | could not run: {r['error']} | - |")
        else:
            md.append(
                f"| {tool} | {api[tool]} | {r['median_step_ms_off']:.3f} |"
                f" {r['median_step_ms_on']:.3f} | {r['overhead_ratio'] * 100:+.2f}% |"
                f" {r['added_us_per_step']:+.1f} |"
            )
    write("peers_quick" if a.quick else "peers", result, "\n".join(md), a.out)
    print("\n".join(md))
    return result


if __name__ == "__main__":
    main()
