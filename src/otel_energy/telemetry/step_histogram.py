"""Our histograms, one per meter provider: the step energy (Trainer, ``EnergyMeter``) and the
energy of other instrumentations' spans (``OTEL_PYTHON_ENERGY_SPANS``)."""

from __future__ import annotations

import weakref

from opentelemetry.metrics import Histogram, MeterProvider

from otel_energy.telemetry.attributes import METRIC_SPAN_ENERGY, METRIC_STEP_ENERGY
from otel_energy.telemetry.scope import get_meter
from otel_energy.telemetry.spans import STEP_ENERGY_BUCKETS_J

_histograms: weakref.WeakKeyDictionary[MeterProvider, dict[str, Histogram]] = (
    weakref.WeakKeyDictionary()
)


def _once(provider: MeterProvider, name: str, description: str, buckets: bool) -> Histogram:
    """The histogram ``name`` (J) on ``provider``, created on first use."""
    made = _histograms.setdefault(provider, {})
    hist = made.get(name)
    if hist is None:
        hist = get_meter(provider).create_histogram(
            name,
            unit="J",
            description=description,
            explicit_bucket_boundaries_advisory=list(STEP_ENERGY_BUCKETS_J) if buckets else None,
        )
        made[name] = hist
    return hist


def step_histogram(provider: MeterProvider) -> Histogram:
    """``otel_energy.step.energy`` (J) on ``provider``, created once per provider."""
    return _once(
        provider,
        METRIC_STEP_ENERGY,
        "Energy of each optimizer step; exemplars link to the step spans.",
        buckets=True,
    )


def span_histogram(provider: MeterProvider) -> Histogram:
    """``otel_energy.span.energy`` (J) on ``provider``, created once per provider."""
    return _once(
        provider,
        METRIC_SPAN_ENERGY,
        "Energy of each annotated span (OTEL_PYTHON_ENERGY_SPANS); exemplars link to the spans.",
        buckets=False,
    )
