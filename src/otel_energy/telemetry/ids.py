"""Span and trace ids that ``transformers.set_seed`` cannot repeat.

The SDK's default generator draws from Python's global ``random``, which ``set_seed`` (called by
every Trainer) reseeds: two runs with the same seed then get the same trace and span ids, and
backends silently drop the second run. We draw from a private ``random.Random`` seeded from the
OS entropy pool instead: as unpredictable across runs as ``os.urandom`` at a tenth of its cost
(~70 ns vs ~600 ns per id here), and instrumenting a run leaves the user's global ``random``
stream untouched. A forked child reseeds, so it never repeats its parent's ids.
"""

from __future__ import annotations

import os
import random
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator


class PrivateRandomIdGenerator(RandomIdGenerator):
    """Random ids from a private generator seeded by the OS, immune to ``random.seed``."""

    def __init__(self) -> None:
        self._rng = random.Random(os.urandom(32))
        self._forced = threading.local()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reseed(ref))

    @contextmanager
    def forced(self, trace_id: int, span_id: int) -> Iterator[None]:
        """Within the block, this thread's next span gets exactly these ids (a job's root span,
        whose ids every rank derives from the job id). Other threads are unaffected."""
        self._forced.ids = (trace_id, span_id)
        try:
            yield
        finally:
            self._forced.ids = None

    def generate_span_id(self) -> int:
        forced = getattr(self._forced, "ids", None)
        if forced is not None:
            return int(forced[1])
        span_id = self._rng.getrandbits(64)
        while span_id == trace.INVALID_SPAN_ID:
            span_id = self._rng.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        forced = getattr(self._forced, "ids", None)
        if forced is not None:
            return int(forced[0])
        trace_id = self._rng.getrandbits(128)
        while trace_id == trace.INVALID_TRACE_ID:
            trace_id = self._rng.getrandbits(128)
        return trace_id


def _reseed(ref: weakref.ref[PrivateRandomIdGenerator]) -> None:
    gen = ref()
    if gen is not None:
        gen._rng.seed(os.urandom(32))


def use_private_ids(tracer: object) -> None:
    """Give an SDK tracer seed-proof ids if it uses the seedable default (no-op otherwise)."""
    if type(getattr(tracer, "id_generator", None)) is RandomIdGenerator:
        tracer.id_generator = PrivateRandomIdGenerator()  # type: ignore[attr-defined]
