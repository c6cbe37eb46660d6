"""The per-step energy histogram shared by the Trainer callback and ``EnergyMeter``."""

from __future__ import annotations

import weakref

from opentelemetry.metrics import Histogram, MeterProvider

from otel_energy.telemetry.instruments import SCOPE
from otel_energy.telemetry.spans import STEP_ENERGY_BUCKETS_J
from otel_energy.version import __version__

_histograms: weakref.WeakKeyDictionary[MeterProvider, Histogram] = weakref.WeakKeyDictionary()


def step_histogram(provider: MeterProvider) -> Histogram:
    """``otel_energy.step.energy`` (J) on ``provider``, created once per provider."""
    hist = _histograms.get(provider)
    if hist is None:
        hist = provider.get_meter(SCOPE, __version__).create_histogram(
            "otel_energy.step.energy",
            unit="J",
            description="Energy of each optimizer step; exemplars link to the step spans.",
            explicit_bucket_boundaries_advisory=list(STEP_ENERGY_BUCKETS_J),
        )
        _histograms[provider] = hist
    return hist
