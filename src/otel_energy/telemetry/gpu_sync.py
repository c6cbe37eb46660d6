"""Opt-in GPU execution sync at epoch and evaluation boundaries (``OTEL_PYTHON_ENERGY_GPU_SYNC``).

CUDA kernels run asynchronously: when the training thread reaches an epoch's end, work it queued
may still be running, so the boundary (and the energy split between two spans) is taken early by
up to the queue's length. ``torch.cuda.synchronize()`` waits for the queue to drain first (Zeus
does the same). It costs the wait for the queued work, once per boundary, never per step.
"""

from __future__ import annotations

import logging
import sys

_log = logging.getLogger(__name__)

SYNC_KINDS = frozenset({"run", "epoch", "eval"})
"""Interval kinds whose start and end are synchronized (steps never are: that would cost every
step)."""


def synchronize() -> bool:
    """``torch.cuda.synchronize()`` when torch is already imported and has initialized CUDA in
    this process; True when it ran. Never imports torch, never creates a CUDA context, never
    raises (a failure is logged at DEBUG: the boundary is then taken unsynchronized)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    try:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return False
        torch.cuda.synchronize()
        return True
    except Exception:
        _log.debug("otel-energy: torch.cuda.synchronize() failed", exc_info=True)
        return False


def sync_at(kind: str, enabled: bool) -> None:
    """Synchronize before a boundary of an interval of ``kind`` when ``enabled`` and the kind is
    one of ``SYNC_KINDS``."""
    if enabled and kind in SYNC_KINDS:
        synchronize()
