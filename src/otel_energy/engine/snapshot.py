"""What the sampler publishes: the latest state of every device, built when someone asks.

The sampler keeps the raw state of the newest tick (``Tick``, captured in one piece on the
sampler thread); ``build`` turns it into a ``Snapshot`` for metric collection, which is rare next
to ticks.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from otel_energy.carbon import Intensity, co2e_g
from otel_energy.engine import history
from otel_energy.engine.attribution import WHOLE_DEVICE, AttributionTotals
from otel_energy.engine.devices import Devices
from otel_energy.engine.history import History, Tail, WindowEnergy
from otel_energy.engine.job_energy import JobEnergy, JobView
from otel_energy.sensors.base import DeviceInfo, GpuStats


@dataclass(frozen=True, slots=True)
class Tick:
    """The newest tick's raw state, captured on the sampler thread and published under its lock
    in one assignment, so that a snapshot never mixes one tick's energy with the next one's power.

    Per-device tuples are in the order of ``infos``.
    """

    t_s: float
    """Sampler-clock time of the tick (s)."""
    infos: tuple[DeviceInfo, ...]
    energy_j: tuple[float, ...]
    """Cumulative energy per device (J)."""
    co2e_g: tuple[float, ...]
    """Cumulative CO2e per device (g)."""
    failed: tuple[bool, ...]
    power_w: tuple[float | None, ...]
    """The device's own power reading (W); None: a counter-only device (its energy rate is used)."""
    gpu: tuple[GpuStats | None, ...]
    read_t_s: tuple[float | None, ...]
    intensity: Intensity
    samples: int = 0
    """Samples the sampler has taken since it started, this one included."""
    attributed_j: tuple[float, ...] = ()
    """The job's cumulative attributed energy per device (J; engine.attribution); empty: the
    device's own energy (no job accounting)."""
    dynamic_j: tuple[float, ...] = ()
    """The job's cumulative dynamic energy per device (J)."""
    idle_j: tuple[float, ...] = ()
    """Each whole device's cumulative idle baseline energy (J)."""
    attribution: tuple[str, ...] = ()
    """How the job's share of each device was found."""
    job: JobView | None = None
    """How the job's figures were found."""
    job_totals: AttributionTotals | None = None
    """The job's totals over all devices."""


def empty_tick(intensity: Intensity) -> Tick:
    """The state before the first tick: no devices."""
    return Tick(0.0, (), (), (), (), (), (), (), intensity)


def capture(
    t: float,
    devices: Devices,
    co2e_g: tuple[float, ...],
    intensity: Intensity,
    samples: int = 0,
    job: JobEnergy | None = None,
) -> Tick:
    """The tick at ``t`` (s) from the devices' state and the job's (call on the sampler thread);
    ``samples``: the count of samples taken since start, this one included."""
    shares = job.attribution.devices if job is not None else []
    whole = len(shares) != len(devices.sensors)  # before the job's first start: none
    # map(attrgetter) rather than generators: this runs every tick, cold (docs/performance.md).
    return Tick(
        t,
        devices.infos,
        devices.energies_j(),
        co2e_g,
        tuple(devices.health.failed),
        tuple(map(_POWER, devices.tracks)),
        tuple(devices.gpu),
        tuple(devices.read_t),
        intensity,
        samples,
        () if whole else tuple(map(_ATTRIBUTED, shares)),
        () if whole else tuple(map(_DYNAMIC, shares)),
        () if whole else tuple(map(_IDLE, shares)),
        () if whole else tuple(map(_METHOD, shares)),
        None if job is None or whole else job.view(),
        None if job is None or whole else job.totals(),
    )


_POWER = attrgetter("power_w")
_ATTRIBUTED = attrgetter("attributed_j")
_DYNAMIC = attrgetter("dynamic_j")
_IDLE = attrgetter("idle_j")
_METHOD = attrgetter("method")


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
    """The component devices (``hw.energy``): these add up."""
    intensity: Intensity
    pue: float
    host: tuple[DeviceState, ...] = ()
    """The whole-node meter's series (``hw.host.energy``): never added to ``devices``, which
    they contain."""
    samples: int = 0
    """Samples the sampler has taken since it started (the rate check counts them)."""
    job: JobView | None = None
    """How the job's figures were found (None: before the first tick)."""
    job_totals: AttributionTotals | None = None
    """The job's totals over all devices since the sampler started."""


def build(tick: Tick, hist: History, pue: float) -> Snapshot:
    """The Snapshot of ``tick`` (call under the sampler's lock: ``hist`` is at the same tick)."""
    rates = hist.rates_w(tick.t_s) if hist.t else [0.0] * len(tick.infos)
    states: list[DeviceState] = []
    host: list[DeviceState] = []
    for i, info in enumerate(tick.infos):
        # A counter-only device's power is its energy rate over the last second.
        own = tick.power_w[i]
        power = 0.0 if tick.failed[i] else own if own is not None else rates[i]
        job = bool(tick.attribution)
        (host if info.whole_host else states).append(
            DeviceState(
                info,
                tick.energy_j[i],
                power,
                tick.co2e_g[i],
                tick.failed[i],
                tick.gpu[i],
                tick.read_t_s[i],
                tick.attributed_j[i] if job else tick.energy_j[i],
                tick.dynamic_j[i] if job else tick.energy_j[i],
                tick.idle_j[i] if job else 0.0,
                tick.attribution[i] if job else WHOLE_DEVICE,
            )
        )
    return Snapshot(
        tick.t_s,
        tuple(states),
        tick.intensity,
        pue,
        tuple(host),
        tick.samples,
        tick.job,
        tick.job_totals,
    )


def extrapolate_from(w: WindowEnergy, snap: Snapshot) -> WindowEnergy:
    """``w`` extended past the newest sample at each device's power in ``snap`` (provisional);
    the node meter's tail goes to the node's energy, never the components'."""
    tails = (
        Tail(d.info.hw_type, d.power_w, since, d.info.hw_id, _job_share(d))
        for d in (*snap.devices, *snap.host)
        for since in [snap.t_s if d.read_t_s is None else d.read_t_s]
    )
    g_per_kwh = snap.intensity.g_per_kwh
    return history.extrapolate(w, tails, snap.t_s, lambda j: co2e_g(j, snap.pue, g_per_kwh))


def _job_share(d: DeviceState) -> tuple[float, float]:
    """The job's attributed and dynamic fractions of the device's energy so far (1)."""
    if d.energy_j <= 0:
        return (1.0, 1.0)
    return (d.attributed_j / d.energy_j, d.dynamic_j / d.energy_j)
