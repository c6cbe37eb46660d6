"""What a locked run ledger costs a run: train() and a whole otel-energy run, ledger free vs held.

Another process holds ``BEGIN EXCLUSIVE`` on the ledger (as a ``sqlite3`` shell or a stuck
program would) while (a) a tiny Trainer with ``EnergyCallback`` and a fake GPU trains, timed
around ``train()`` in a child process, and (b) ``otel-energy run -- python -c pass`` runs whole.
Then the lock is released and the rows kept are counted by reading the ledger (which merges the
queued rows). ``--src`` measures another source tree (e.g. an export of an older commit's
``src``) with the same harness. Writes ``ledger_lock.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.ledger import locked as lock_held  # noqa: E402

from benchmarks.common import machine, median, write  # noqa: E402

TRAIN = """
import json, sys, time
from otel_energy.config import load_config
from otel_energy.hf import EnergyCallback
from otel_energy.testing.tiny import tiny_trainer
from tests.support.hf_helpers import fake_gpu_sampler_factory
times = []
for i in range(int(sys.argv[2])):
    cb = EnergyCallback(config=load_config({"OTEL_PYTHON_ENERGY_SOURCES": "nvml"}),
                        sampler_factory=fake_gpu_sampler_factory())
    trainer = tiny_trainer(sys.argv[1] + f"/out{i}", callbacks=[cb], num_train_epochs=1, n_train=32)
    t = time.monotonic()
    trainer.train()
    times.append(time.monotonic() - t)
print(json.dumps(times))
"""


def child_env(src: Path | None, ledger: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join([*([str(src)] if src else []), str(REPO)])
    env.update(
        OTEL_PYTHON_ENERGY_LEDGER=str(ledger),
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OMP_NUM_THREADS="1",
        TRANSFORMERS_VERBOSITY="error",
    )
    return env


def held(ledger: Path, on: bool) -> AbstractContextManager[None]:
    """Another process holds the ledger's write lock for the block when ``on``."""
    return lock_held(ledger) if on else nullcontext()


def new_ledger(tmp: Path) -> Path:
    """An existing ledger in WAL mode (an empty table: either version adds its own)."""
    ledger = Path(tempfile.mkdtemp(dir=tmp)) / "runs.sqlite"
    conn = sqlite3.connect(ledger)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE seed (a)")
    conn.commit()
    conn.close()
    return ledger


def rows_kept(ledger: Path) -> int:
    """Runs in the ledger, read by this tree's CLI (which merges queued rows)."""
    out = subprocess.run(
        [sys.executable, "-m", "otel_energy.cli", "history", "--json", "--limit", "1000"],
        env=child_env(None, ledger),
        capture_output=True,
        text=True,
        check=True,
    )
    return len(json.loads(out.stdout)["runs"])


def measure(src: Path | None, runs: int, tmp: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for locked in (False, True):
        key = "locked" if locked else "free"
        ledger = new_ledger(tmp)
        with held(ledger, locked):
            proc = subprocess.run(
                [sys.executable, "-c", TRAIN, str(ledger.parent), str(runs)],
                env=child_env(src, ledger),
                capture_output=True,
                text=True,
                cwd=REPO,
            )
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        times = json.loads(proc.stdout.strip().splitlines()[-1])
        result[f"train_{key}"] = {"s": times, "rows_kept": rows_kept(ledger), "runs": runs}
        ledger = new_ledger(tmp)
        cmd = [sys.executable, "-m", "otel_energy.cli", "run", "--no-plot", "--report"]
        cmd += [str(ledger.parent / "r.json"), "--", sys.executable, "-c", "pass"]
        with held(ledger, locked):
            t = time.monotonic()
            subprocess.run(cmd, env=child_env(src, ledger), capture_output=True, cwd=REPO)
            took = time.monotonic() - t
        result[f"run_{key}"] = {"s": took, "rows_kept": rows_kept(ledger), "runs": 1}
    return result


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "# A locked run ledger: what it costs a run",
        "",
        f"Source measured: `{res['src']}`. Load average before / after: {res['load_before']}"
        f" / {res['load_after']} on {res['machine']['logical_cpus']} logical CPUs.",
        "",
        "| What | ledger free | ledger held (BEGIN EXCLUSIVE) | rows kept (held) |",
        "|---|---|---|---|",
    ]
    r = res["results"]
    free, held_ = r["train_free"], r["train_locked"]
    lines.append(
        f"| train(), tiny model, s (median of {free['runs']}) | {median(free['s']):.2f}"
        f" | {median(held_['s']):.2f} (each: {', '.join(f'{x:.2f}' for x in held_['s'])})"
        f" | {held_['rows_kept']} of {held_['runs']} |"
    )
    lines.append(
        f"| otel-energy run -- python -c pass, s | {r['run_free']['s']:.2f}"
        f" | {r['run_locked']['s']:.2f} | {r['run_locked']['rows_kept']} of 1 |"
    )
    lines += ["", f"Machine: {json.dumps(res['machine'])}"]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="train() runs per case")
    ap.add_argument("--src", type=Path, default=None, help="measure this src tree instead")
    ap.add_argument("--quick", action="store_true", help="one run each: for CI, noise")
    ap.add_argument("--name", default="ledger_lock", help="result file name")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    runs = 1 if args.quick else args.runs
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(args.src, runs, Path(tmp))
    res = {
        "src": str(args.src or "this checkout"),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "results": results,
        "machine": machine(),
    }
    write(args.name, res, markdown(res), args.out)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
