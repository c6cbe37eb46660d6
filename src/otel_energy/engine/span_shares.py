"""Splitting the node's energy between overlapping spans, conserving it.

Pure window maths for the any-span annotator (``telemetry/any_span.py``): no threads, no clocks,
no OpenTelemetry. Time is the sampler's clock (s); energy comes from a callback over a window.

The rule (docs/any-span.md): at every moment, the energy of that moment is shared by the spans
active then. Each span has a *density*: 1 by default (active-time share), or its weight per second
when every span active in a stretch carries a weight (``gen_ai.usage.output_tokens`` over its
duration: a request generating tokens three times as fast gets three times the share). So the
spans active in an interval sum to the interval's energy exactly, and stretches where no selected
span is active are left to nobody (the run's or the node's remainder).

The work is done between *boundaries* (a span starting or ending): inside one stretch the set of
active spans does not change, so one window query per stretch suffices.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from otel_energy.engine.history import WindowEnergy

EnergyOver = Callable[[float, float], WindowEnergy]
"""The node's (or the job's) energy over ``[t0_s, t1_s]``: ``Sampler.window``."""


@dataclass(slots=True)
class Share:
    """What one span has been given so far, and what it needs to be given the rest.

    ``t0_s``/``t1_s``: the span's start and end (sampler clock, s; ``t1_s`` None while it runs).
    ``weight``: its weight (output tokens) once known; None: time share.
    """

    key: Hashable
    t0_s: float
    t1_s: float | None = None
    weight: float | None = None
    energy_j: float = 0.0
    co2e_g: float = 0.0
    uncertainty_j: float = 0.0
    node_energy_j: float = 0.0  # the node's energy over the stretches this span was active in
    by_type: dict[str, float] = field(default_factory=dict)
    estimated: bool = False
    interpolated: bool = False
    complete: bool = True
    weighted: bool = False  # some stretch was split by weight

    def density(self) -> float | None:
        """Weight per second (1/s), None when the span carries no weight or has not ended."""
        if self.weight is None or self.t1_s is None:
            return None
        return self.weight / max(self.t1_s - self.t0_s, 1e-9)

    @property
    def share(self) -> float:
        """The fraction of the node's energy, over the span's lifetime, given to this span."""
        return self.energy_j / self.node_energy_j if self.node_energy_j > 0 else 0.0


class SpanShares:
    """Active spans and the cursor up to which energy has been handed out.

    ``start``/``end`` note spans; ``advance(horizon_s, energy_over)`` shares the energy of
    [cursor, horizon] and returns the spans that ended before the horizon, now complete.
    Everything before the cursor is final: a span noted as starting before it is clamped to it
    (its earlier energy went to the spans known then).
    """

    def __init__(self) -> None:
        self.cursor_s: float | None = None
        self._spans: dict[Hashable, Share] = {}

    def __len__(self) -> int:
        return len(self._spans)

    def start(self, key: Hashable, t0_s: float) -> None:
        if self.cursor_s is not None and t0_s < self.cursor_s:
            t0_s = self.cursor_s
        self._spans[key] = Share(key, t0_s)

    def end(self, key: Hashable, t1_s: float, weight: float | None) -> Share | None:
        """The span ends at ``t1_s``; None when it was never started here (not selected)."""
        s = self._spans.get(key)
        if s is None:
            return None
        s.t1_s = max(t1_s, s.t0_s)
        s.weight = weight if weight is not None and weight >= 0 else None
        return s

    def running_since(self, now_s: float, younger_than_s: float) -> float | None:
        """The earliest start among spans still running that started less than
        ``younger_than_s`` ago: the cursor waits for them to end (their weight is known only
        then), but never longer than that."""
        starts = [
            s.t0_s
            for s in self._spans.values()
            if s.t1_s is None and now_s - s.t0_s < younger_than_s
        ]
        return min(starts) if starts else None

    def advance(self, horizon_s: float, energy_over: EnergyOver) -> list[Share]:
        """Hand out the energy of [cursor, horizon_s]; return the spans complete by then."""
        if self.cursor_s is None:
            if not self._spans:
                return []
            self.cursor_s = min(s.t0_s for s in self._spans.values())
        if horizon_s > self.cursor_s:
            for a, b in _stretches(self.cursor_s, horizon_s, self._spans.values()):
                active = [
                    s
                    for s in self._spans.values()
                    if s.t0_s <= a and (s.t1_s is None or s.t1_s >= b)
                ]
                if active:
                    _split(energy_over(a, b), active)
            self.cursor_s = horizon_s
        done = [s for s in self._spans.values() if s.t1_s is not None and s.t1_s <= self.cursor_s]
        for s in done:
            del self._spans[s.key]
        return done

    def drain(self) -> list[Share]:
        """Forget every span (shutdown): the ended ones are returned as they stand."""
        done = [s for s in self._spans.values() if s.t1_s is not None]
        self._spans.clear()
        return done


def _stretches(a: float, b: float, spans: Iterable[Share]) -> list[tuple[float, float]]:
    """[a, b] cut at every span start or end inside it."""
    cuts = {a, b}
    for s in spans:
        for t in (s.t0_s, s.t1_s):
            if t is not None and a < t < b:
                cuts.add(t)
    points = sorted(cuts)
    return [(x, y) for x, y in itertools.pairwise(points) if y > x]


def _split(w: WindowEnergy, active: list[Share]) -> None:
    """Share one stretch's energy between its active spans by density (conserving it)."""
    densities = [s.density() for s in active]
    weighted = all(d is not None for d in densities) and sum(d or 0.0 for d in densities) > 0
    if weighted:
        total = sum(d or 0.0 for d in densities)
        fractions = [(d or 0.0) / total for d in densities]
    else:
        fractions = [1.0 / len(active)] * len(active)
    for s, f in zip(active, fractions, strict=True):
        s.energy_j += f * w.energy_j
        s.co2e_g += f * w.co2e_g
        s.uncertainty_j += f * w.uncertainty_j
        s.node_energy_j += w.energy_j
        for hw_type, j in w.by_type.items():
            s.by_type[hw_type] = s.by_type.get(hw_type, 0.0) + f * j
        s.estimated |= w.estimated
        s.interpolated |= w.interpolated
        s.complete &= w.complete
        s.weighted |= weighted
