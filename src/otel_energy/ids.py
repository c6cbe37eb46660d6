"""Span and trace ids drawn from ``os.urandom``.

The SDK's default generator uses Python's ``random``, which ``transformers.set_seed`` (called by
every Trainer) reseeds: two runs with the same seed then get the same trace and span ids, and
backends silently drop the second run. Drawing from the OS also leaves the user's ``random``
stream untouched, so instrumenting a run does not change its randomness.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator


class UrandomIdGenerator(RandomIdGenerator):
    """Random ids from the OS's entropy pool, immune to ``random.seed``."""

    def generate_span_id(self) -> int:
        while True:
            span_id = int.from_bytes(os.urandom(8), "big")
            if span_id != trace.INVALID_SPAN_ID:
                return span_id

    def generate_trace_id(self) -> int:
        while True:
            trace_id = int.from_bytes(os.urandom(16), "big")
            if trace_id != trace.INVALID_TRACE_ID:
                return trace_id


def use_urandom_ids(tracer: object) -> None:
    """Give an SDK tracer urandom ids if it uses the seedable default (no-op for other tracers)."""
    if type(getattr(tracer, "id_generator", None)) is RandomIdGenerator:
        tracer.id_generator = UrandomIdGenerator()  # type: ignore[attr-defined]
