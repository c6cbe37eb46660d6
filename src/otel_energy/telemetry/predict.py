"""Footprint prediction: the run's total energy, CO2e and duration, projected while it trains.

Projection = what the run has used so far + the remaining optimizer steps x the energy (and time)
per step over the most recent epochs. CO2e of the remaining energy uses the live provider's
forecast mean over the remaining time when it has one, else the current intensity. Everything
here is arithmetic on figures the sampler already has: it never touches hardware or the network.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from otel_energy.carbon import IntensitySource, co2e_g
from otel_energy.carbon.forecast import mean_over
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.scope import get_meter

_log = logging.getLogger(__name__)

RATE_WINDOW_EPOCHS = 2
"""Epochs the per-step rates are measured over: recent enough to follow a change of pace (a
larger batch after warm-up), long enough to average out one slow epoch."""

LOG_KEYS = (
    "otel_energy/predicted_energy_j",
    "otel_energy/predicted_co2e_g",
    "otel_energy/predicted_duration_s",
)


@dataclass(frozen=True)
class Progress:
    """Where the run stands: optimizer ``step``, seconds, J and g since the run began."""

    step: int
    elapsed_s: float
    energy_j: float
    co2e_g: float


@dataclass(frozen=True)
class Projection:
    """The projected whole-run totals (J, g, s), made at ``at_step`` of ``total_steps``.

    ``intensity_basis``: ``forecast`` (the live provider's forecast mean over the remaining time)
    or ``current`` (the intensity now); ``intensity_g_per_kwh`` is the value used.
    """

    energy_j: float
    co2e_g: float
    duration_s: float
    at_step: int
    total_steps: int
    intensity_g_per_kwh: float
    intensity_basis: str

    def span_attributes(self) -> dict[str, str | int | float]:
        """The ``otel_energy.prediction.*`` attributes (docs/spans.md)."""
        return {
            A.METRIC_PREDICTION_ENERGY: self.energy_j,
            A.METRIC_PREDICTION_CO2E: self.co2e_g,
            A.METRIC_PREDICTION_DURATION: self.duration_s,
            A.PREDICTION_AT_STEP: self.at_step,
            A.PREDICTION_TOTAL_STEPS: self.total_steps,
            A.PREDICTION_INTENSITY_BASIS: self.intensity_basis,
        }

    def log_values(self) -> dict[str, float]:
        """The Trainer log keys (``otel_energy/predicted_*``)."""
        return dict(zip(LOG_KEYS, (self.energy_j, self.co2e_g, self.duration_s), strict=True))


def project(
    now: Progress,
    since: Progress,
    total_steps: int,
    pue: float,
    intensity_g_per_kwh: float,
    intensity_basis: str = "current",
) -> Projection | None:
    """Project the totals from the per-step rates between ``since`` and ``now``.

    Returns None when no step lies between them or the total is unknown (``total_steps`` <= 0).
    """
    steps = now.step - since.step
    if steps <= 0 or total_steps <= 0:
        return None
    remaining = max(0, total_steps - now.step)
    energy_left_j = remaining * (now.energy_j - since.energy_j) / steps
    time_left_s = remaining * (now.elapsed_s - since.elapsed_s) / steps
    return Projection(
        energy_j=now.energy_j + energy_left_j,
        co2e_g=now.co2e_g + co2e_g(energy_left_j, pue, intensity_g_per_kwh),
        duration_s=now.elapsed_s + time_left_s,
        at_step=now.step,
        total_steps=total_steps,
        intensity_g_per_kwh=intensity_g_per_kwh,
        intensity_basis=intensity_basis,
    )


def remaining_intensity(
    provider: IntensitySource | None,
    current_g_per_kwh: float,
    seconds: float,
    now_s: float | None = None,
) -> tuple[float, str]:
    """Intensity (g/kWh) expected over the next ``seconds``, and its basis.

    The source's forecast mean when its ``forecast()`` covers that time (live sources); the
    current intensity otherwise (no source, no forecast). ``now_s``: wall seconds, the source's
    clock when None. Reads the source's cached forecast: no network.
    """
    if provider is None or seconds <= 0:
        return current_g_per_kwh, "current"
    try:
        points = provider.forecast()
        start_s = provider.now_s() if now_s is None else now_s
        mean = mean_over(points, start_s, seconds) if points else None
    except Exception:  # a source's odd forecast must not cost the projection
        _log.debug("otel-energy: forecast unusable for the projection", exc_info=True)
        mean = None
    return (current_g_per_kwh, "current") if mean is None else (mean, "forecast")


class Predictor:
    """Keeps the run's progress at each epoch end and projects on demand.

    Args:
        total_steps: the optimizer steps the run will make (``state.max_steps``).
        start: progress when the run began (a resumed run starts at its checkpoint's step).
        after_steps: 0 projects at each epoch end (the first after epoch 1); N > 0 also projects
            every N steps from the start.
    """

    def __init__(self, total_steps: int, start: Progress, after_steps: int = 0) -> None:
        self.total_steps = total_steps
        self.after_steps = after_steps
        self._marks = [start]
        self.latest: Projection | None = None
        self.history: list[Projection] = []

    def due_at_step(self, step: int) -> bool:
        """True when step ``step`` (just ended) is one to project at (``after_steps`` > 0)."""
        done = step - self._marks[0].step
        return self.after_steps > 0 and done > 0 and done % self.after_steps == 0

    def epoch_begin(self, now: Progress) -> None:
        """The first epoch begins: rates start here, so set-up (model load, data) before the
        first step is counted once, not extrapolated as if every step paid it."""
        if len(self._marks) == 1 and now.step == self._marks[0].step:
            self._marks[0] = now

    def epoch_end(self, now: Progress) -> None:
        """Note an epoch boundary: rates are measured over the last ``RATE_WINDOW_EPOCHS``."""
        if now.step > self._marks[-1].step:
            self._marks.append(now)

    def update(
        self, now: Progress, pue: float, intensity: Callable[[float], tuple[float, str]]
    ) -> Projection | None:
        """Project from ``now``; ``intensity(seconds_left)`` gives (g/kWh, basis)."""
        prior = [m for m in self._marks if m.step < now.step]
        if not prior:
            return None
        since = prior[-RATE_WINDOW_EPOCHS] if len(prior) >= RATE_WINDOW_EPOCHS else prior[0]
        rough = project(now, since, self.total_steps, pue, 0.0)
        if rough is None:
            return None
        g_per_kwh, basis = intensity(rough.duration_s - now.elapsed_s)
        p = project(now, since, self.total_steps, pue, g_per_kwh, basis)
        if p is not None:
            self.latest = p
            self.history.append(p)
        return p


# ---- gauges ----
Source = Callable[[], tuple[Projection | None, Mapping[str, str | bool | int | float]]]

GAUGES = (
    (A.METRIC_PREDICTION_ENERGY, "J", "Projected energy of the whole training run.", 0),
    (A.METRIC_PREDICTION_CO2E, "g", "Projected CO2e of the whole training run.", 1),
    (A.METRIC_PREDICTION_DURATION, "s", "Projected duration of the whole training run.", 2),
)


class PredictionGauges:
    """The ``otel_energy.prediction.*`` gauges of one meter provider; they read ``source``."""

    def __init__(self, provider: MeterProvider) -> None:
        self.source: Source | None = None
        meter = get_meter(provider)
        for name, unit, description, index in GAUGES:
            meter.create_observable_gauge(name, [self._callback(index)], unit, description)

    def _callback(self, index: int) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            try:
                if self.source is None:
                    return []
                p, attrs = self.source()
                if p is None:
                    return []
                return [Observation((p.energy_j, p.co2e_g, p.duration_s)[index], dict(attrs))]
            except Exception:  # a metric callback must never raise into the SDK's collection
                _log.debug("otel-energy: prediction gauge failed", exc_info=True)
                return []

        return callback


_gauges: weakref.WeakKeyDictionary[MeterProvider, PredictionGauges] = weakref.WeakKeyDictionary()


def attach_gauges(provider: MeterProvider, source: Source) -> PredictionGauges:
    """Register the gauges once per meter provider (a meter keeps the first instrument of a
    name) and point them at ``source``, the latest run's projection."""
    gauges = _gauges.get(provider)
    if gauges is None:
        gauges = PredictionGauges(provider)
        _gauges[provider] = gauges
    gauges.source = source
    return gauges
