"""The whole-node instruments: ``hw.host.energy``/``hw.host.power`` from the node meter, and how
much of it the component sensors explain (``otel_energy.host.coverage``, the unmeasured rest).

Fed from the snapshot's ``host`` series, which are never part of ``devices`` (semconv: host totals
overlap the components and must not be summed with ``hw.energy``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry.metrics import Observation

from otel_energy.engine.snapshot import Snapshot
from otel_energy.telemetry import attributes as A

Attrs = Mapping[str, str | bool | int | float]


def _host_energy(s: Snapshot, ident: Attrs, _provider: object) -> Iterable[Observation]:
    return [Observation(d.energy_j, {**d.info.attributes(), **ident}) for d in s.host]


def _host_power(s: Snapshot, ident: Attrs, _provider: object) -> Iterable[Observation]:
    return [
        Observation(d.power_w, {**d.info.attributes(), **ident}) for d in s.host if not d.failed
    ]


def _host_split(s: Snapshot) -> tuple[float, float] | None:
    """(component J, node J) since measurement started; None without a node meter."""
    if not s.host:
        return None
    return sum(d.energy_j for d in s.devices), sum(d.energy_j for d in s.host)


def _coverage(s: Snapshot, ident: Attrs, _provider: object) -> Iterable[Observation]:
    split = _host_split(s)
    if split is None or split[1] <= 0:
        return []
    return [Observation(split[0] / split[1], dict(ident))]


def _unmeasured(s: Snapshot, ident: Attrs, _provider: object) -> Iterable[Observation]:
    split = _host_split(s)
    return [] if split is None else [Observation(split[1] - split[0], dict(ident))]


HOST_INSTRUMENTS = (
    (
        A.METRIC_HW_HOST_ENERGY,
        "J",
        "counter",
        "Energy consumed by the whole host (node meter: hwmon, Redfish, IPMI) since measurement"
        " started. Never add it to hw.energy: the components are inside it.",
        _host_energy,
    ),
    (
        A.METRIC_HW_HOST_POWER,
        "W",
        "gauge",
        "Power of the whole host from its node meter.",
        _host_power,
    ),
    (
        A.HOST_COVERAGE,
        "1",
        "gauge",
        "Share of the host's energy that the component sensors explain: sum(hw.energy) /"
        " hw.host.energy since measurement started.",
        _coverage,
    ),
    (
        A.HOST_UNMEASURED_ENERGY,
        "J",
        "updowncounter",
        "Host energy that no component sensor saw (hw.host.energy - sum(hw.energy)): supply"
        " losses, fans, disks, network, the board.",
        _unmeasured,
    ),
)
"""(name, unit, kind, description, observe) of each: ``InstrumentSpec`` fields, in order."""
