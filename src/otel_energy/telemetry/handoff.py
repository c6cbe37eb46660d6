"""Finished spans reach the span processors from one daemon thread, ``otel-energy-export``.

``span.end()`` calls every span processor on the calling thread, and a ``SimpleSpanProcessor``
exports right there: ended on the sampler thread, a slow or stalled collector would stop the
hardware samples (the issue measured 5.5 s gaps and a 30.8 s end of ``train()`` with a 50 ms
collector). So the sampler completes a span (energy attributes, status) and hands it here; this
thread ends it. A stall here delays only the export: sampling goes on, and the queue is bounded
(step spans are dropped and counted when it is full; run, epoch and evaluation spans, rare and
parents of the rest, are always queued).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from typing import Any

from opentelemetry.trace import Span

__all__ = ["MAX_QUEUED_SPANS", "THREAD_NAME", "SpanHandoff", "queued_in_sdk", "span_handoff"]

_log = logging.getLogger(__name__)

MAX_QUEUED_SPANS = 8192
"""Step spans waiting to be ended beyond this are dropped (counted): 4x the SDK's batch queue."""

THREAD_NAME = "otel-energy-export"


class SpanHandoff:
    """A bounded queue of completed spans and the daemon thread that ends them.

    Args:
        max_queued: step spans queued beyond this are dropped (and counted in ``dropped``).
    """

    def __init__(self, max_queued: int = MAX_QUEUED_SPANS) -> None:
        self.max_queued = max_queued
        self.dropped = 0
        self._queue: deque[tuple[Span, int]] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._queued = 0  # spans ever queued
        self._ended = 0  # spans ever ended (or failed to end): drain waits for ended >= queued
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """Spans queued and not yet ended."""
        with self._cond:
            return self._queued - self._ended

    def end(self, span: Span, end_ns: int, *, must: bool = False) -> bool:
        """Queue ``span`` to be ended at ``end_ns`` (ns since the epoch); never blocks.

        ``must``: queue even when full (run, epoch, evaluation spans). False when dropped.
        """
        with self._cond:
            if not must and self._queued - self._ended >= self.max_queued:
                self.dropped += 1
                return False
            self._queue.append((span, end_ns))
            self._queued += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return True

    def drain(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` (s) until every span queued before this call is ended
        (with a ``SimpleSpanProcessor``: exported). True when done."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            target = self._queued
            while self._ended < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                span, end_ns = self._queue.popleft()
            try:
                span.end(end_time=end_ns)
            except Exception:  # a processor's bug must not stop the export of the rest
                _log.exception("otel-energy: ending a span failed")
            finally:
                with self._cond:
                    self._ended += 1
                    self._cond.notify_all()


_handoff: SpanHandoff | None = None
_lock = threading.Lock()


def span_handoff() -> SpanHandoff:
    """The process's hand-off (one export thread per process, started with the first span)."""
    global _handoff
    with _lock:
        if _handoff is None:
            _handoff = SpanHandoff()
        return _handoff


def _forget_in_child() -> None:
    """After fork the thread does not exist in the child: the child starts its own."""
    global _handoff, _lock
    _handoff, _lock = None, threading.Lock()


def queued_in_sdk(tracer_provider: Any) -> int:
    """Spans waiting in ``tracer_provider``'s batch processors (0 where unknown).

    Reads the SDK's queues (private, so best effort): only for the line that says how many
    spans an exit bound dropped.
    """
    total = 0
    active = getattr(tracer_provider, "_active_span_processor", None)
    for processor in getattr(active, "_span_processors", ()):
        queue = getattr(getattr(processor, "_batch_processor", None), "_queue", None)
        with contextlib.suppress(TypeError):
            total += len(queue) if queue is not None else 0
    return total


os.register_at_fork(after_in_child=_forget_in_child)
