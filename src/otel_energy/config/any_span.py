"""``OTEL_PYTHON_ENERGY_SPANS`` and ``OTEL_PYTHON_ENERGY_SPANS_MAX_DELAY``: which of other
instrumentations' spans get energy, and how long one may be held for it (docs/any-span.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otel_energy.config import variables as ev
from otel_energy.config.rules import check_number

KINDS = ("server", "client", "internal", "producer", "consumer")
"""Span kinds, as ``OTEL_PYTHON_ENERGY_SPANS`` spells them."""

OUR_SCOPE = "otel_energy"
"""Our own spans carry their energy already: never selected."""

DEFAULT_MAX_DELAY_S = 5.0


@dataclass(frozen=True)
class SpanSelection:
    """Which spans get energy, and how long (s) a span may be held waiting for the spans that
    overlap it to end (their weight is known only then)."""

    kinds: frozenset[str]
    scopes: frozenset[str]
    max_delay_s: float = DEFAULT_MAX_DELAY_S

    def matches(self, span: Any) -> bool:
        """Whether an SDK span (anything with ``kind`` and ``instrumentation_scope``) is one."""
        scope = span.instrumentation_scope
        name = scope.name if scope is not None else ""
        if name == OUR_SCOPE:
            return False
        return span.kind.name.lower() in self.kinds or name in self.scopes


def span_selection(env: Mapping[str, str]) -> SpanSelection | None:
    """The selection from the environment; None when off (unset, empty, ``off``, ``none``).

    ``OTEL_PYTHON_ENERGY_SPANS``: comma-separated span kinds (``server``, ``client``,
    ``internal``, ``producer``, ``consumer``) and instrumentation scope names
    (``opentelemetry.instrumentation.fastapi``); any other word is taken as a scope name.

    Raises:
        ConfigError: ``OTEL_PYTHON_ENERGY_SPANS_MAX_DELAY`` is not a number of seconds in 0-3600.
    """
    words = [w.strip() for w in env.get(ev.OTEL_PYTHON_ENERGY_SPANS, "").split(",") if w.strip()]
    if not words or [w.lower() for w in words] in (["off"], ["none"]):
        return None
    raw_delay = env.get(ev.OTEL_PYTHON_ENERGY_SPANS_MAX_DELAY, "").strip()
    delay = (
        check_number(ev.OTEL_PYTHON_ENERGY_SPANS_MAX_DELAY, raw_delay, 0.0, 3600.0, "s")
        if raw_delay
        else DEFAULT_MAX_DELAY_S
    )
    return SpanSelection(
        kinds=frozenset(w.lower() for w in words if w.lower() in KINDS),
        scopes=frozenset(w for w in words if w.lower() not in KINDS),
        max_delay_s=delay,
    )
