"""Carbon-aware scheduling: when, in the next hours, would a job emit least?

A forecast is a piecewise-constant series of intensities (each point holds until the next; the
last for one median step). The mean intensity of a job over [start, start + duration] is an exact
integral of that series; the best start is the candidate (now, or any point's time) with the
lowest mean that ends within the window and the forecast.
"""

from __future__ import annotations

import itertools
import statistics
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from otel_energy.carbon import IntensityPoint


@dataclass(frozen=True)
class StartAdvice:
    """The best start, its mean intensity (g/kWh), and starting now for comparison (or None)."""

    start: datetime
    mean_g_per_kwh: float
    now_mean_g_per_kwh: float | None
    kind: str

    @property
    def saving(self) -> float | None:
        """Fraction of CO2e avoided by waiting (0.25 = 25% less), None if now is not covered."""
        if not self.now_mean_g_per_kwh:
            return None
        return 1.0 - self.mean_g_per_kwh / self.now_mean_g_per_kwh


def _segments(points: Sequence[IntensityPoint]) -> list[tuple[datetime, datetime, float]]:
    pts = sorted(points, key=lambda p: p.at)
    steps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(pts)]
    last_step = timedelta(seconds=statistics.median(steps)) if steps else timedelta(minutes=30)
    ends = [p.at for p in pts[1:]] + [pts[-1].at + last_step]
    return [(p.at, end, p.g_per_kwh) for p, end in zip(pts, ends, strict=True)]


def mean_intensity(
    points: Sequence[IntensityPoint], start: datetime, duration: timedelta
) -> float | None:
    """Time-weighted mean over [start, start + duration]; None outside the forecast."""
    segments = _segments(points)
    end = start + duration
    if not segments or start < segments[0][0] or end > segments[-1][1]:
        return None
    total = 0.0
    for a, b, value in segments:
        overlap = (min(b, end) - max(a, start)).total_seconds()
        if overlap > 0:
            total += value * overlap
    return total / duration.total_seconds()


def best_start(
    points: Sequence[IntensityPoint], duration: timedelta, within: timedelta, now: datetime
) -> StartAdvice | None:
    """The start in [now, now + within - duration] with the lowest mean forecast intensity.

    Returns None when no candidate is covered by the forecast.
    """
    if not points:
        return None
    latest_start = now + within - duration
    candidates = [now, *(p.at for p in points if now < p.at <= latest_start)]
    scored = [(m, c) for c in candidates if (m := mean_intensity(points, c, duration)) is not None]
    if not scored:
        return None
    best_mean, best = min(scored, key=lambda s: (s[0], s[1]))
    return StartAdvice(best, best_mean, mean_intensity(points, now, duration), points[0].kind)


POINT_HOLDS_S = 2 * 3600.0
"""How long a forecast point holds past its time when no later point follows (s)."""


def point_at(points: Sequence[IntensityPoint], t_s: float) -> IntensityPoint | None:
    """The point holding at wall time ``t_s`` in a sorted forecast; None outside it."""
    i = bisect_right([p.t_s for p in points], t_s)
    if i == 0 or t_s - points[i - 1].t_s > POINT_HOLDS_S:
        return None
    return points[i - 1]


def mean_over(points: Sequence[IntensityPoint], start_s: float, seconds: float) -> float | None:
    """``mean_intensity`` over [start_s, start_s + seconds] on the wall clock."""
    start = datetime.fromtimestamp(start_s, timezone.utc)
    return mean_intensity(points, start, timedelta(seconds=seconds))
