"""One sampler per node, the rows: a device's reading (or error) as a ring row's fields."""

from __future__ import annotations

import math
from collections.abc import Sequence

from otel_energy.engine.readers import Result
from otel_energy.sensors.base import GpuStats, Reading

MAX_PIDS = 8
"""Compute processes (and SM samples) carried per GPU reading; more: ``processes`` unknown."""
FIELDS = 7 + 3 * MAX_PIDS
"""Per device: status, counter J, power W, utilization, memory used, memory total, pid count,
pids, SM sample count, (pid, SM) pairs. NaN stands for None."""
_OK, _ERROR, _STALLED = 1.0, 2.0, 3.0  # status 0: not read this tick (backed off)


class SharedReadError(RuntimeError):
    """The node's reader could not read this device this tick (its own error is in its log)."""


def _f(v: float | None) -> float:
    return math.nan if v is None else float(v)


def _o(v: float) -> float | None:
    return None if math.isnan(v) else v


def encode(result: Result | None, stalled: bool = False) -> list[float]:
    """One device's fields for a row (``FIELDS`` floats); ``stalled``: not read because its
    family's driver call has not returned (``engine.readers``)."""
    out = [0.0] + [math.nan] * (FIELDS - 1)
    if result is None and stalled:
        out[0] = _STALLED
    elif isinstance(result, Exception):
        out[0] = _ERROR
    elif result is not None:
        out[0:3] = [_OK, _f(result.counter_j), _f(result.power_w)]
        gpu = result.gpu
        if gpu is not None:
            out[3:6] = [_f(gpu.utilization), _f(gpu.memory_used_b), _f(gpu.memory_total_b)]
            if gpu.processes is not None and len(gpu.processes) <= MAX_PIDS:
                out[6] = len(gpu.processes)
                out[7 : 7 + len(gpu.processes)] = [float(p) for p in gpu.processes]
            sm = gpu.sm_by_pid[:MAX_PIDS]
            base = 7 + MAX_PIDS
            out[base] = len(sm)
            for k, (pid, pct) in enumerate(sm):
                out[base + 1 + 2 * k : base + 3 + 2 * k] = [float(pid), pct]
    return out


def is_stalled(fields: Sequence[float]) -> bool:
    """The device was not read because its family was stalled at the reader."""
    return fields[0] == _STALLED


def decode(fields: Sequence[float], hw_id: str) -> Result | None:
    """The reading (or error) in one device's fields; None: the reader did not read it."""
    if fields[0] == _ERROR:
        return SharedReadError(f"the node's reader could not read {hw_id}")
    if fields[0] != _OK:
        return None
    gpu = None
    if not math.isnan(fields[5]):  # a GPU reports its memory size
        n = int(fields[6]) if not math.isnan(fields[6]) else -1
        base = 7 + MAX_PIDS
        sm = tuple(
            (int(fields[base + 1 + 2 * k]), fields[base + 2 + 2 * k])
            for k in range(int(fields[base]))
        )
        gpu = GpuStats(
            _o(fields[3]),
            _o(fields[4]),
            _o(fields[5]),
            None if n < 0 else tuple(int(p) for p in fields[7 : 7 + n]),
            sm,
        )
    return Reading(_o(fields[1]), _o(fields[2]), gpu)
