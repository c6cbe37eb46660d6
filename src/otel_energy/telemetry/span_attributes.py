"""The ``otel_energy.*`` energy attributes of a span (names and units: docs/spans.md)."""

from __future__ import annotations

import logging

from otel_energy.carbon import Intensity
from otel_energy.engine.sampler import WindowEnergy
from otel_energy.engine.utilization import LOW_UTILIZATION, busy_power_w, low_utilization
from otel_energy.sensors.base import DeviceInfo
from otel_energy.telemetry import attributes as A

_log = logging.getLogger(__name__)

AttrValue = str | bool | int | float
HW_TYPES = ("gpu", "cpu", "memory")


def energy_attributes(
    w: WindowEnergy, co2e_g: float, intensity: Intensity, pue: float
) -> dict[str, AttrValue]:
    """The ``otel_energy.*`` attributes of a span covering window ``w`` (see docs/spans.md)."""
    attrs: dict[str, AttrValue] = {
        A.ENERGY: w.energy_j,
        A.POWER: w.avg_power_w,
        A.CO2E: co2e_g,
        A.CARBON_INTENSITY_VALUE: intensity.g_per_kwh,
        A.CARBON_INTENSITY_SOURCE: intensity.source,
        A.CARBON_INTENSITY_KIND: intensity.kind,
        A.PUE: pue,
        A.ESTIMATED: w.estimated,
        A.INTERPOLATED: w.interpolated,
        A.ENERGY_UNCERTAINTY: w.band_j,
        A.COMPLETE: w.complete,
    }
    if w.host_energy_j is not None:  # a node meter: what it saw and what the components explain
        attrs[A.HOST_ENERGY] = w.host_energy_j
        attrs[A.HOST_UNMEASURED_ENERGY] = w.unmeasured_j or 0.0
        if w.coverage is not None:
            attrs[A.HOST_COVERAGE] = w.coverage
    if intensity.timestamp:
        attrs[A.CARBON_INTENSITY_TIMESTAMP] = intensity.timestamp
    # Fault markers (docs/faults.md): only present when something went wrong.
    if w.glitches:
        attrs[A.GLITCHES] = w.glitches
    if w.stalled:
        attrs[A.STALLED] = True
    if w.missing_devices:
        attrs[A.MISSING_DEVICES] = ",".join(w.missing_devices)
    if w.gpu_utilization is not None:
        attrs[A.GPU_UTILIZATION] = w.gpu_utilization
    if w.attributed_j is not None:  # the job's share (docs/attribution.md)
        attrs[A.ATTRIBUTED_ENERGY] = w.attributed_j
        attrs[A.DYNAMIC_ENERGY] = w.dynamic_j or 0.0
        attrs[A.ATTRIBUTED_CO2E] = w.attributed_co2e_g or 0.0
    for hw_type in HW_TYPES:
        if hw_type in w.by_type:
            attrs[A.device_type_energy(hw_type)] = w.by_type[hw_type]
    return attrs


def utilization_verdict(w: WindowEnergy, gpus: list[DeviceInfo]) -> dict[str, AttrValue]:
    """``otel_energy.gpu.low_utilization`` for a run on ``gpus``, with one warning line when
    True (none when there is nothing to judge)."""
    low = low_utilization(w, gpus)
    if low is None:
        return {}
    if low:
        _log.warning(
            "otel-energy: the GPUs were %.0f%% utilized on average (below %.0f%%) while"
            " drawing %.0f W (idle-level would be below %.0f W) for %.0f s: %.0f J spent"
            " mostly waiting. Look at the input pipeline, host-device syncs or the batch"
            " size.",
            100 * (w.gpu_utilization or 0.0),
            100 * LOW_UTILIZATION,
            w.by_type.get("gpu", 0.0) / w.duration_s,
            busy_power_w(gpus),
            w.duration_s,
            w.by_type.get("gpu", 0.0),
        )
    return {A.GPU_LOW_UTILIZATION: low}


STEP_ENERGY_BUCKETS_J = (
    0.001,
    0.003,
    0.01,
    0.03,
    0.1,
    0.3,
    1.0,
    3.0,
    10.0,
    30.0,
    100.0,
    300.0,
    1000.0,
    3000.0,
    10000.0,
    30000.0,
    100000.0,
)
