"""Which steps the step-level spans cover: by default a short step's span is its group's
(``steps``: ``first_step``..``last_step``), a long or failed step keeps its own (``step``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

STEP_NAMES = ("step", "steps", "batch", "batches")
"""The step-level span names (``EnergyMeter``: ``batch``, ``batches``)."""


def steps_covered(spans: Iterable[tuple[str, Mapping[str, Any] | None]]) -> list[int]:
    """The step numbers covered by the (name, attributes) of some spans, sorted, a step covered
    twice listed twice; a group whose count disagrees with its range fails the test."""
    numbers: list[int] = []
    for name, attrs in spans:
        a = attrs or {}
        if name in ("step", "batch"):
            numbers.append(int(a["otel_energy.train.step"]))
        elif name in ("steps", "batches"):
            first, last = (
                int(a["otel_energy.train.first_step"]),
                int(a["otel_energy.train.last_step"]),
            )
            assert a["otel_energy.train.steps"] == last - first + 1, a
            numbers.extend(range(first, last + 1))
    return sorted(numbers)
