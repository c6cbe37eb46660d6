"""What the sampler publishes: the latest state of every device, built when someone asks.

The sampler keeps raw tuples per tick (``Latest``); ``build`` turns them into a ``Snapshot``
for metric collection, which is rare next to ticks.
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_energy.carbon import Intensity, co2e_g
from otel_energy.engine import history
from otel_energy.engine.attribution import WHOLE_DEVICE, AttributionTotals
from otel_energy.engine.devices import Devices
from otel_energy.engine.history import History, Tail, WindowEnergy
from otel_energy.engine.job_energy import JobEnergy, JobView
from otel_energy.sensors.base import DeviceInfo, GpuStats

Latest = tuple[float, tuple[float, ...], tuple[float, ...], tuple[bool, ...], Intensity]
"""The newest tick: (t in s, energy per device in J, CO2e per device in g, failed, intensity)."""


@dataclass(frozen=True)
class DeviceState:
    """One device in a snapshot: cumulative energy (J) and CO2e (g), latest power (W)."""

    info: DeviceInfo
    energy_j: float
    power_w: float
    co2e_g: float
    failed: bool
    gpu: GpuStats | None = None
    """The latest utilization and memory of a GPU (None: not a GPU, or not reported)."""
    read_t_s: float | None = None
    """Sampler-clock time (s) of the device's last good read: older than the snapshot's ``t_s``
    while its family is stalled or its reads fail (None: never read)."""
    attributed_j: float = 0.0
    """The job's cumulative attributed energy of this device (attributional view, J)."""
    dynamic_j: float = 0.0
    """The job's cumulative dynamic energy of this device (consequential view, J)."""
    idle_j: float = 0.0
    """The whole device's cumulative idle baseline energy (J)."""
    attribution: str = WHOLE_DEVICE
    """How the job's share of this device was found (``engine.attribution``'s methods)."""


@dataclass(frozen=True)
class Snapshot:
    """The sampler's latest state; ``t_s`` is the sampler clock (s) of the newest sample."""

    t_s: float
    devices: tuple[DeviceState, ...]
    intensity: Intensity
    pue: float
    job: JobView | None = None
    """How the job's figures were found (None: before the first tick)."""
    job_totals: AttributionTotals | None = None
    """The job's totals over all devices since the sampler started."""


def build(
    latest: Latest, devices: Devices, hist: History, pue: float, job: JobEnergy | None = None
) -> Snapshot:
    """The Snapshot of the newest tick ``latest`` (call under the sampler's lock)."""
    t, energies, co2, failed, intensity = latest
    rates = hist.rates_w(t) if hist.t else [0.0] * len(devices.sensors)
    states = []
    for i, s in enumerate(devices.sensors):
        # A counter-only device's power is its energy rate over the last second.
        own = devices.tracks[i].power_w
        power = 0.0 if failed[i] else own if own is not None else rates[i]
        shares = job.attribution.devices if job is not None else ()
        share = shares[i] if i < len(shares) else None
        states.append(
            DeviceState(
                s.info,
                energies[i],
                power,
                co2[i],
                failed[i],
                devices.gpu[i],
                devices.read_t[i],
                share.attributed_j if share else energies[i],
                share.dynamic_j if share else energies[i],
                share.idle_j if share else 0.0,
                share.method if share else WHOLE_DEVICE,
            )
        )
    if job is None:
        return Snapshot(t, tuple(states), intensity, pue)
    return Snapshot(t, tuple(states), intensity, pue, job.view(), job.totals())


def extrapolate_from(w: WindowEnergy, snap: Snapshot) -> WindowEnergy:
    """``w`` extended past the newest sample at each device's power in ``snap`` (provisional)."""
    tails = (
        Tail(d.info.hw_type, d.power_w, snap.t_s if d.read_t_s is None else d.read_t_s)
        for d in snap.devices
    )
    g_per_kwh = snap.intensity.g_per_kwh
    return history.extrapolate(w, tails, snap.t_s, lambda j: co2e_g(j, snap.pue, g_per_kwh))
