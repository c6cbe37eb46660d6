"""What a thread's sleep between sampler ticks costs: ``threading.Event.wait``, the sampler's
``Wake`` (a bare ``Lock.acquire(timeout)``) and ``time.sleep``, one thread waking every interval
and doing nothing else.

Each primitive runs in its own thread for ``--seconds``; the order rotates every round so that a
slow stretch of the machine falls on each in turn; the CPU time of the thread (its own clock) per
wake-up is reported, median over ``--rounds``. Usage:
    python benchmarks/bench_wake.py [--quick] [--rounds 6] [--seconds 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, median, write
from otel_energy.engine.wake import Wake

INTERVAL_S = 0.1


def _event(stop: list[bool]) -> None:
    event = threading.Event()
    while not stop[0]:
        event.wait(INTERVAL_S)
        event.clear()


def _wake(stop: list[bool]) -> None:
    wake = Wake()
    while not stop[0]:
        wake.wait(INTERVAL_S)
        wake.clear()


def _sleep(stop: list[bool]) -> None:
    while not stop[0]:
        time.sleep(INTERVAL_S)


PRIMITIVES: dict[str, Callable[[list[bool]], None]] = {
    "threading.Event.wait": _event,
    "Wake.wait (Lock.acquire(timeout))": _wake,
    "time.sleep": _sleep,
}


def us_per_wake(body: Callable[[list[bool]], None], seconds: float) -> float:
    """CPU (us, the thread's own clock) per wake-up of a thread running ``body``."""
    stop = [False]
    t = threading.Thread(target=body, args=(stop,), daemon=True)
    t.start()
    time.sleep(0.3)
    clock = time.pthread_getcpuclockid(t.ident or 0)
    c0, w0 = time.clock_gettime(clock), time.monotonic()
    time.sleep(seconds)
    c1, w1 = time.clock_gettime(clock), time.monotonic()
    stop[0] = True
    t.join()
    return (c1 - c0) / ((w1 - w0) / INTERVAL_S) * 1e6


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    rounds, seconds = (1, 0.5) if a.quick else (a.rounds, a.seconds)
    names = list(PRIMITIVES)
    runs: dict[str, list[float]] = {n: [] for n in names}
    for k in range(rounds):
        for name in names[k % len(names) :] + names[: k % len(names)]:
            runs[name].append(us_per_wake(PRIMITIVES[name], seconds))
    result = {
        "machine": machine(),
        "interval_s": INTERVAL_S,
        "seconds": seconds,
        "rounds": rounds,
        "us_per_wake": {n: median(v) for n, v in runs.items()},
        "runs": runs,
    }
    m = result["machine"]
    md = [
        "# A sampler thread's sleep between ticks",
        "",
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), Python {m['python']};"
        f" {m['date']}. One thread waking every {INTERVAL_S * 1000:g} ms and doing nothing else,"
        f" {seconds:g} s per run, {rounds} rounds (order rotated), its own CPU clock:",
        "",
        "| primitive | CPU per wake-up (us, median) | runs |",
        "|---|---|---|",
    ]
    for n in names:
        md.append(
            f"| {n} | {result['us_per_wake'][n]:.0f} | {', '.join(f'{v:.0f}' for v in runs[n])} |"
        )
    write("wake", result, "\n".join(md), a.out)
    print("\n".join(md))
    return result


if __name__ == "__main__":
    main()
