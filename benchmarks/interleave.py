"""The block-interleaved method: blocks of steps, per-thread CPU clocks, pair ratios, bootstrap CI.

Shared by ``bench_overhead.py`` (and usable by any benchmark that compares "with" and "without"
inside one process run). Whole-run A/B pairs on a shared 2-core VM spread from 0.43 to 3.2 (issue
23) and cannot resolve 1%; adjacent blocks of a hundred steps see the same machine state, and many
pairs give a median and a confidence interval.

- ``Block``: one block's step start times (``perf_counter`` s) and the CPU clocks at its ends.
- ``ThreadClocks``: CPU time of every thread of this process, by thread name, from
  ``/proc/self/task/<tid>/schedstat`` (ns on CPU; works for threads we did not start), and of the
  calling thread from ``time.thread_time_ns``.
- ``pair_ratios`` / ``summary``: per pair the ratio of median step periods (and of the time per
  step), then median, mean and a seeded bootstrap 95% CI of the mean.
- ``SamplerGate``: parks a sampler thread inside one of its listeners, so that "off" blocks run
  with none of our background work at all (see bench_overhead.py for what "off" contains).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Threads named by us (sampler, NVML/amdsmi readers, export hand-off, ledger writer...).
OURS_PREFIX = "otel-energy"
# The OpenTelemetry SDK's own worker threads (batch span processor, periodic metric reader): the
# export's encoding and I/O run there.
SDK_PREFIX = "Otel"


def _schedstat_ns(tid: int) -> int | None:
    """Nanoseconds thread ``tid`` of this process has run on a CPU (None once it has exited)."""
    try:
        with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class ThreadClocks:
    """CPU time of this process's threads, by name. Threads that share a name are summed.

    Python does not give its thread names to the OS (``/proc/.../comm`` says ``python``), so the
    names come from ``threading.enumerate()`` and the clocks from schedstat by native id.
    """

    def read(self) -> dict[str, int]:
        """{thread name: ns on CPU}; the caller's thread under ``"<training>"`` (thread_time)."""
        out: dict[str, int] = {"<training>": time.thread_time_ns()}
        me = threading.get_ident()
        for t in threading.enumerate():
            if t.ident == me or t.native_id is None:
                continue
            ns = _schedstat_ns(t.native_id)
            if ns is not None:
                out[t.name] = out.get(t.name, 0) + ns
        return out


def cpu_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """ns each thread ran between two ``ThreadClocks.read()``s (a thread born between counts
    from zero; one that died in between is lost, which is why blocks are short)."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


def group_cpu(delta: dict[str, int]) -> dict[str, int]:
    """ns by owner: ``training`` thread, ``ours`` (otel-energy-*), ``sdk`` (Otel*), ``other``."""
    out = {"training": 0, "ours": 0, "sdk": 0, "other": 0}
    for name, ns in delta.items():
        if name == "<training>":
            out["training"] += ns
        elif name.startswith(OURS_PREFIX):
            out["ours"] += ns
        elif name.startswith(SDK_PREFIX):
            out["sdk"] += ns
        else:
            out["other"] += ns
    return out


@dataclass
class Block:
    """One block of steps of one arm."""

    arm: str
    stamps: list[float] = field(default_factory=list)
    """``perf_counter()`` at the start of each step, and once more after the last step (s)."""
    hooked: int = 0
    """Steps whose events went to the arm's tool (the rest of an "on" block is its tail)."""
    cpu: dict[str, int] = field(default_factory=dict)
    """ns on CPU per thread name during the block (``cpu_delta``)."""
    parked: bool = True
    """For an arm that runs our sampler: whether it parked again within the tail's bound."""

    def periods(self, settle: int) -> list[float]:
        """Step periods (s), the first ``settle`` dropped (the switch-over's cache effects)."""
        p = [b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False)]
        return p[settle:]

    @property
    def wall_s(self) -> float:
        return self.stamps[-1] - self.stamps[0] if len(self.stamps) > 1 else 0.0

    @property
    def steps(self) -> int:
        return max(len(self.stamps) - 1, 0)


@dataclass(frozen=True)
class PairRatio:
    """One (off, on) pair of adjacent blocks."""

    median_ratio: float
    """median step period on / median step period off."""
    time_ratio: float
    """1 + (on block's time - its steps at the off block's mean period) / (hooked steps x off
    mean period): the added time per hooked step, tail and bursts included, as a ratio."""
    off_median_s: float
    on_median_s: float


def pair_ratio(off: Block, on: Block, settle: int) -> PairRatio | None:
    po, pn = off.periods(settle), on.periods(settle)
    if len(po) < 2 or len(pn) < 2:
        return None
    mo, mn = statistics.median(po), statistics.median(pn)
    mean_off = statistics.fmean(po)
    hooked = max(on.hooked - settle, 1)
    added = sum(pn) - len(pn) * mean_off
    return PairRatio(mn / mo, 1 + added / (hooked * mean_off), mo, mn)


def bootstrap_ci(xs: Sequence[float], seed: int = 23, n: int = 10_000) -> tuple[float, float]:
    """95% percentile-bootstrap CI of the mean of ``xs`` (numpy, fixed seed)."""
    import numpy as np

    if len(xs) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    a = np.asarray(xs, dtype=float)
    means = a[rng.integers(0, len(a), size=(n, len(a)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


def summary(xs: Sequence[float]) -> dict[str, Any]:
    """pairs, median, mean and bootstrap 95% CI of the mean of per-pair ratios."""
    if not xs:
        return {"pairs": 0, "median": None, "mean": None, "ci95": [None, None]}
    lo, hi = bootstrap_ci(xs)
    return {
        "pairs": len(xs),
        "median": statistics.median(xs),
        "mean": statistics.fmean(xs),
        "ci95": [lo, hi],
    }


BASELINE = "<off>"
"""The label of baseline blocks: not a name any arm can have (an arm may be called "off", as
``OTEL_PYTHON_ENERGY_STEP_SPANS=off`` is)."""


def schedule(arms: Sequence[str], rounds: int) -> list[tuple[str, str]]:
    """(first, second) block pairs: every arm against a ``BASELINE`` block, ABBA order across
    rounds, arms rotated each round so that none always follows the same neighbour."""
    if BASELINE in arms:
        raise ValueError(f"no arm may be called {BASELINE!r}")
    out: list[tuple[str, str]] = []
    k = len(arms)
    for r in range(rounds):
        order = [arms[(r + i) % k] for i in range(k)] if k else []
        for arm in order:
            out.append((BASELINE, arm) if r % 2 == 0 else (arm, BASELINE))
    return out


class SamplerGate:
    """Parks the sampler thread in a listener between ``close()`` and ``open()``.

    Installed last among the sampler's listeners, it runs after the tick has read the devices and
    completed the pending steps; parked, the sampler thread (and the reader threads it hands reads
    to) wait on a condition and use no CPU. When opened the sampler's loop sees it fell behind and
    resumes on a fresh schedule (no burst of missed ticks). Bounded: never parks longer than
    ``max_park_s``.
    """

    def __init__(self, max_park_s: float = 30.0) -> None:
        self._cond = threading.Condition()
        self._closed = False
        self._after = -float("inf")
        self._parked = False
        self.max_park_s = max_park_s
        self.park_timeouts = 0

    def listener(self, t_s: float) -> None:
        with self._cond:
            # The sampler publishes a fold's rows one by one: parking at an older row would
            # leave the newer ones (and the steps they complete) for after the park.
            if not self._closed or t_s < self._after:
                return
            self._parked = True
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: not self._closed, self.max_park_s):
                self.park_timeouts += 1
            self._parked = False

    def close(self, after_s: float = -float("inf")) -> None:
        """Park at the first sample read at or after ``after_s`` (sampler clock, s)."""
        with self._cond:
            self._closed = True
            self._after = after_s

    def open(self) -> None:
        with self._cond:
            self._closed = False
            self._cond.notify_all()

    def parked(self) -> bool:
        with self._cond:
            return self._parked


def busy_python(n: int) -> int:
    """Pure-Python work that holds the GIL: ``n`` loop iterations (time one with ``per_iter_s``)."""
    acc = 0
    for i in range(n):
        acc += i * i & 7
    return acc


def per_iter_s(fn: Callable[[int], Any], n: int = 200_000, reps: int = 5) -> float:
    """Seconds per iteration of ``fn(n)``, the median of ``reps`` timings."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(n)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / n


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []
