"""OpenTelemetry observable instruments fed from the sampler's snapshot.

Names follow the hardware semantic conventions (``hw.energy`` counter in J, ``hw.power`` gauge in
W); what they lack lives in our ``otel_energy.`` namespace. Callbacks only read the snapshot (no
hardware I/O) and never raise; a
failure is logged at WARNING the first time per instrument.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

from otel_energy.carbon import IntensitySource
from otel_energy.carbon.forecast import point_at
from otel_energy.engine.sampler import DeviceState, Sampler, Snapshot
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.host_metrics import HOST_INSTRUMENTS
from otel_energy.telemetry.scope import SCOPE, get_meter

_log = logging.getLogger(__name__)

__all__ = ["INSTRUMENTS", "SCOPE", "EnergyObserver", "InstrumentSpec", "attach"]

INTENSITY_UNIT = "g/kW/h"
"""gCO2e per kWh in UCUM. UCUM evaluates ``/`` and ``.`` left to right, so ``g/kW.h`` would mean
g.h/kW; ``g/(kW.h)`` is right but the Prometheus exporter turns its parentheses into
``grams_per__kW_h_``. ``g/kW/h`` is the same unit and becomes ``grams_per_kW_h``."""


Attrs = Mapping[str, str | bool | int | float]


@dataclass(frozen=True)
class InstrumentSpec:
    """One instrument: name, unit, kind and what it observes from a snapshot."""

    name: str
    unit: str
    kind: str  # "counter", "updowncounter" or "gauge"
    description: str
    observe: Callable[[Snapshot, Attrs, IntensitySource], Iterable[Observation]]
    """Observations from the latest snapshot, the identity attributes and the intensity provider."""


def _energy(s: Snapshot, ident: Attrs, _provider: object) -> Iterable[Observation]:
    return [Observation(d.energy_j, {**d.info.attributes(), **ident}) for d in s.devices]


def _power(s: Snapshot, ident: Attrs, _provider: object) -> Iterable[Observation]:
    return [
        Observation(d.power_w, {**d.info.attributes(), **ident}) for d in s.devices if not d.failed
    ]


def _gpu_attrs(d: DeviceState, ident: Attrs) -> dict[str, str | bool | int | float]:
    return {**d.info.attributes(), **ident}


def _gpu_utilization(s: Snapshot, ident: Attrs, _provider: object) -> Iterable[Observation]:
    return [
        Observation(d.gpu.utilization, {**_gpu_attrs(d, ident), A.HW_GPU_TASK: "general"})
        for d in s.devices
        if d.gpu is not None and d.gpu.utilization is not None and not d.failed
    ]


def _gpu_memory_usage(s: Snapshot, ident: Attrs, _provider: object) -> Iterable[Observation]:
    return [
        Observation(d.gpu.memory_used_b, _gpu_attrs(d, ident))
        for d in s.devices
        if d.gpu is not None and d.gpu.memory_used_b is not None and not d.failed
    ]


def _gpu_memory_limit(s: Snapshot, ident: Attrs, _provider: object) -> Iterable[Observation]:
    return [
        Observation(d.gpu.memory_total_b, _gpu_attrs(d, ident))
        for d in s.devices
        if d.gpu is not None and d.gpu.memory_total_b is not None and not d.failed
    ]


def _gpu_memory_utilization(s: Snapshot, ident: Attrs, _provider: object) -> Iterable[Observation]:
    out = []
    for d in s.devices:
        ratio = d.gpu.memory_utilization if d.gpu is not None else None
        if ratio is not None and not d.failed:
            out.append(Observation(ratio, _gpu_attrs(d, ident)))
    return out


def _co2e(s: Snapshot, ident: Attrs, _provider: object) -> Iterable[Observation]:
    extra: Attrs = {
        A.CARBON_INTENSITY_SOURCE: s.intensity.source,
        A.PUE: s.pue,
        **ident,
    }
    return [Observation(d.co2e_g, {**d.info.attributes(), **extra}) for d in s.devices]


def _intensity(s: Snapshot, ident: Attrs, _provider: object) -> Iterable[Observation]:
    if not s.devices:
        return []
    attrs: dict[str, str | bool | int | float] = {
        A.CARBON_INTENSITY_SOURCE: s.intensity.source,
        A.CARBON_INTENSITY_KIND: s.intensity.kind,
        **ident,
    }
    if s.intensity.timestamp:
        attrs[A.CARBON_INTENSITY_TIMESTAMP] = s.intensity.timestamp
    return [Observation(s.intensity.g_per_kwh, attrs)]


FORECAST_HORIZONS_H = (1, 2, 3, 6, 12, 24)


def _forecast(s: Snapshot, ident: Attrs, provider: IntensitySource) -> Iterable[Observation]:
    points = provider.forecast()
    if not points or not s.devices:
        return []
    now_s = provider.now_s()  # the source's clock: the forecast's own time line
    out = []
    for h in FORECAST_HORIZONS_H:
        point = point_at(points, now_s + h * 3600.0)
        if point is not None:
            out.append(
                Observation(
                    point.g_per_kwh,
                    {
                        A.CARBON_INTENSITY_HORIZON_H: h,
                        A.CARBON_INTENSITY_SOURCE: s.intensity.source,
                        A.CARBON_INTENSITY_KIND: point.kind,
                        **ident,
                    },
                )
            )
    return out


INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    InstrumentSpec(
        A.METRIC_HW_ENERGY,
        "J",
        "counter",
        "Energy consumed by the component since measurement started.",
        _energy,
    ),
    InstrumentSpec(
        A.METRIC_HW_POWER, "W", "gauge", "Instantaneous power consumed by the component.", _power
    ),
    *(InstrumentSpec(*spec) for spec in HOST_INSTRUMENTS),
    InstrumentSpec(
        A.METRIC_HW_GPU_UTILIZATION,
        "1",
        "gauge",
        "Fraction of time the GPU was busy running kernels (0..1), as the driver reports it.",
        _gpu_utilization,
    ),
    InstrumentSpec(
        A.METRIC_HW_GPU_MEMORY_USAGE,
        "By",
        "updowncounter",
        "GPU memory in use.",
        _gpu_memory_usage,
    ),
    InstrumentSpec(
        A.METRIC_HW_GPU_MEMORY_LIMIT,
        "By",
        "updowncounter",
        "Size of the GPU's memory.",
        _gpu_memory_limit,
    ),
    InstrumentSpec(
        A.METRIC_HW_GPU_MEMORY_UTILIZATION,
        "1",
        "gauge",
        "Fraction of GPU memory in use (usage / limit, 0..1).",
        _gpu_memory_utilization,
    ),
    InstrumentSpec(
        A.METRIC_CO2E,
        "g",
        "counter",
        "CO2-equivalent emitted for the component's energy (energy x PUE x grid"
        " carbon intensity), accumulated interval by interval.",
        _co2e,
    ),
    InstrumentSpec(
        A.METRIC_GRID_CARBON_INTENSITY,
        INTENSITY_UNIT,
        "gauge",
        "Grid carbon intensity in gCO2e per kWh used for CO2e.",
        _intensity,
    ),
    # The old name, kept with its old unit so that existing dashboards and alerts keep their
    # series (public names are promises). It breaks the semconv rule that a name is not also a
    # namespace (otel_energy.carbon_intensity.*), hence the rename; remove in a major release.
    InstrumentSpec(
        A.METRIC_CARBON_INTENSITY_DEPRECATED,
        "g/kWh",
        "gauge",
        f"Deprecated: use {A.METRIC_GRID_CARBON_INTENSITY} (same value, UCUM unit).",
        _intensity,
    ),
    InstrumentSpec(
        A.METRIC_CARBON_INTENSITY_FORECAST,
        "g/kWh",
        "gauge",
        "Forecast grid carbon intensity, gCO2e per kWh, some hours ahead (live providers only).",
        _forecast,
    ),
)


class EnergyObserver:
    """Holds the sampler the instruments read; detaching it silences them.

    The OTel API cannot unregister an instrument, and a meter returns the *first* instrument of a
    given name, so one observer per meter provider is kept and re-pointed on re-instrumentation.
    """

    def __init__(self, meter: Meter) -> None:
        self.sampler: Sampler | None = None
        self.failed: set[str] = set()
        """Instruments whose callback failed already (logged at WARNING once each)."""
        for spec in INSTRUMENTS:
            cb = self._callback(spec)
            if spec.kind == "counter":
                meter.create_observable_counter(spec.name, [cb], spec.unit, spec.description)
            elif spec.kind == "updowncounter":
                meter.create_observable_up_down_counter(
                    spec.name, [cb], spec.unit, spec.description
                )
            else:
                meter.create_observable_gauge(spec.name, [cb], spec.unit, spec.description)

    def _callback(self, spec: InstrumentSpec) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            sampler = self.sampler
            if sampler is None:
                return []
            try:
                return spec.observe(
                    sampler.snapshot(), sampler.rank.attributes(), sampler.intensity_provider
                )
            except Exception:  # a metric callback must never raise into the SDK's collection
                # The instrument's points are missing from this export: say so at WARNING with
                # the traceback the first time, then at DEBUG (a collection every few seconds
                # must not flood the log with the same failure).
                first = spec.name not in self.failed
                self.failed.add(spec.name)
                _log.log(
                    logging.WARNING if first else logging.DEBUG,
                    "otel-energy: the %s metric callback failed; its points are missing from"
                    " this export%s",
                    spec.name,
                    " (further failures logged at DEBUG)" if first else "",
                    exc_info=True,
                )
                return []

        return callback


_observers: weakref.WeakKeyDictionary[MeterProvider, EnergyObserver] = weakref.WeakKeyDictionary()


def attach(meter_provider: MeterProvider, sampler: Sampler) -> EnergyObserver:
    """Register (once per meter provider) the instruments and point them at ``sampler``."""
    observer = _observers.get(meter_provider)
    if observer is None:
        observer = EnergyObserver(get_meter(meter_provider))
        _observers[meter_provider] = observer
    observer.sampler = sampler
    return observer
