"""The per-step energy histogram shared by the Trainer callback and ``EnergyMeter``."""

from __future__ import annotations

import weakref

from opentelemetry.metrics import Histogram, MeterProvider

from otel_energy.telemetry.attributes import METRIC_STEP_ENERGY
from otel_energy.telemetry.scope import get_meter
from otel_energy.telemetry.spans import STEP_ENERGY_BUCKETS_J

_histograms: weakref.WeakKeyDictionary[MeterProvider, Histogram] = weakref.WeakKeyDictionary()


def step_histogram(provider: MeterProvider) -> Histogram:
    """``otel_energy.step.energy`` (J) on ``provider``, created once per provider."""
    hist = _histograms.get(provider)
    if hist is None:
        hist = get_meter(provider).create_histogram(
            METRIC_STEP_ENERGY,
            unit="J",
            description="Energy of each optimizer step; exemplars link to the step spans.",
            explicit_bucket_boundaries_advisory=list(STEP_ENERGY_BUCKETS_J),
        )
        _histograms[provider] = hist
    return hist
