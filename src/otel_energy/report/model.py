"""The typed run report: one object that the summary, the JSON file, the HTML picture, the ledger
row and the comparison page all render.

Built by ``build_report`` from the run's one recorded series (``report.series.RunSeries``) and,
where the run had them, its spans; ``to_json`` writes it with the documented keys.

Adding a field is a one-line change: add it to its dataclass below with a default (``x_j: float |
None = field(default=None, metadata=OMIT_NONE)`` to leave it out of the JSON while unset), and the
JSON file gains the key (the field's name, or ``metadata={"key": ...}`` for another name such as
``hw.id``); nothing else serialises fields by hand. A value computed from the series or the
spans is then set where ``build_report`` builds that object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from otel_energy.engine.verdict import Check
from otel_energy.report import trust
from otel_energy.report.phases import Epoch, Phase, epochs_from_spans, evaluation_windows, phases
from otel_energy.report.series import RunSeries
from otel_energy.report.trust import HostDevice
from otel_energy.telemetry import attributes as A

OMIT_NONE: Mapping[str, Any] = {"omit_none": True}
"""Field metadata: leave the key out of the JSON while the value is None."""


def _key(name: str) -> Any:
    return field(metadata={"key": name})


@dataclass(frozen=True)
class DeviceTotal:
    """One device over the run: J, average W and g CO2e."""

    hw_id: str = _key(A.HW_ID)
    hw_type: str = _key(A.HW_TYPE)
    name: str = _key(A.HW_NAME)
    method: str = ""
    estimated: bool = False
    failed: bool = False
    energy_j: float = 0.0
    avg_power_w: float = 0.0
    co2e_g: float = 0.0

    @property
    def label(self) -> str:
        return device_label(self.hw_type, self.name)


def device_label(hw_type: str, name: str) -> str:
    """``cpu (estimated)``, ``cpu package-0``, ``gpu NVIDIA H100 (0)``: the type once."""
    return name if name.lower().startswith(hw_type) else f"{hw_type} {name}"


@dataclass(frozen=True)
class Total:
    """The run's total over every device (J, g, W)."""

    energy_j: float
    co2e_g: float
    avg_power_w: float
    estimated: bool
    """Some of it comes from an estimate (``measured_share`` says how much does not)."""
    measured_share: float = 1.0
    """Fraction of ``energy_j`` from hardware counters or power readings (0..1)."""
    energy_uncertainty_j: float = 0.0
    """Half-width of the band ``energy_j`` lies in (J): each device's method uncertainty,
    linear within a method, quadrature across methods (docs/accuracy.md)."""
    host_energy_j: float | None = None
    """The whole node's J from a node meter (hwmon, Redfish, IPMI); None without one. Never part
    of ``energy_j``: the components are inside it."""
    host_energy_uncertainty_j: float | None = None
    """The same band for ``host_energy_j`` (J)."""
    coverage: float | None = None
    """``energy_j / host_energy_j``: the share of the node the component sensors explain."""


@dataclass(frozen=True)
class CarbonIntensityUsed:
    g_per_kwh: float
    source: str
    kind: str = "average"


@dataclass(frozen=True)
class Training:
    """The training seen in the command's spans: runs (the span records), epochs, evaluations."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[Epoch] = field(default_factory=list)
    evaluations: int = 0
    evaluation_windows_s: list[tuple[float, float]] = field(default_factory=list)
    """(start, end) of each evaluation of the lead process, s since the run's zero."""


@dataclass(frozen=True)
class Timeline:
    """The series as the report keeps it: ``power_w[hw.id][i]`` is the average W over the
    interval ending at ``t_s[i]``; ``energy_j``/``co2e_g`` are cumulative since the zero."""

    t_s: list[float] = field(default_factory=list)
    power_w: dict[str, list[float]] = field(default_factory=dict)
    energy_j: list[float] = field(default_factory=list)
    co2e_g: list[float] = field(default_factory=list)
    host_power_w: list[float] | None = field(default=None, metadata=OMIT_NONE)
    """The node meter's average W over each interval (only with a node meter)."""


@dataclass(frozen=True)
class RunReport:
    """The report of one measured run (``otel-energy run``, a Trainer run, a process)."""

    command: list[str]
    exit_code: int | None
    started_at: str
    duration_s: float
    total: Total
    devices: list[DeviceTotal]
    carbon_intensity: CarbonIntensityUsed
    pue: float
    training: Training
    phases: list[Phase]
    timeline: Timeline
    scope: str = ""
    host_devices: list[HostDevice] = field(default_factory=list)
    """The node meter's series (``hw.host.energy``), apart from ``devices``."""
    checks: list[Check] = field(default_factory=list)
    """The run's verdict: each check's name, whether it passed, and why (docs/accuracy.md)."""
    ledger_id: int | None = field(default=None, metadata=OMIT_NONE)

    def to_json(self) -> dict[str, Any]:
        """The JSON document (``otel-energy-report.json``), keys as documented."""
        out = to_json(self)
        assert isinstance(out, dict)
        return out


def to_json(value: Any) -> Any:
    """Dataclasses as objects (a field's key: its ``key`` metadata, else its name), tuples and
    lists as arrays, the rest as is."""
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in fields(value):
            v = getattr(value, f.name)
            if v is None and f.metadata.get("omit_none"):
                continue
            out[f.metadata.get("key", f.name)] = to_json(v)
        return out
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def scope_line(devices: Sequence[DeviceTotal]) -> str:
    """What the headline figure covers and how it was obtained, in words."""
    estimated = [d for d in devices if d.estimated]
    if not devices:
        how = "nothing measured"
    elif len(estimated) == len(devices):
        how = "estimated (no energy counter here: CPU utilization x TDP, memory W per GB)"
    elif estimated:
        how = "partly estimated: " + ", ".join(d.label for d in estimated)
    else:
        how = "measured by hardware counters"
    return f"whole machine (every process on it, not only this command), {how}"


def device_totals(series: RunSeries) -> list[DeviceTotal]:
    """Each device's J, average W and g CO2e from the series' zero to its newest tick."""
    duration = series.duration_s
    energy, co2e = series.device_energy_j(), series.device_co2e_g()
    failed = dict(zip((i.hw_id for i in series.last.infos), series.last.failed, strict=True))
    out = []
    for hw_id, e in energy.items():
        info = series.infos.get(hw_id) or next(i for i in series.last.infos if i.hw_id == hw_id)
        out.append(
            DeviceTotal(
                hw_id,
                info.hw_type,
                info.name,
                info.method,
                info.estimated,
                failed.get(hw_id, False),
                e,
                e / duration if duration > 0 else 0.0,
                co2e.get(hw_id, 0.0),
            )
        )
    return out


def total_of(devices: Sequence[DeviceTotal], duration_s: float) -> Total:
    """The sum over ``devices`` (J, g), its average W and the share measured, not estimated."""
    energy = sum(d.energy_j for d in devices)
    measured = sum(d.energy_j for d in devices if not d.estimated)
    return Total(
        energy,
        sum(d.co2e_g for d in devices),
        energy / duration_s if duration_s > 0 else 0.0,
        any(d.estimated for d in devices),
        measured / energy if energy > 0 else float(not any(d.estimated for d in devices)),
    )


def build_report(
    series: RunSeries,
    *,
    command: Sequence[str],
    exit_code: int | None,
    started_at: str,
    spans: Sequence[Mapping[str, Any]] = (),
    start_ns: int = 0,
) -> RunReport:
    """The report of the run ``series`` recorded (call after ``series.close()``).

    Args:
        command: the command line (already redacted where it must be).
        exit_code: the command's exit status; None where there is none (a Trainer run).
        started_at: the start, UTC ISO 8601.
        spans: the run's span records (``otel_energy_file`` exporter's shape), for phases and
            epochs; none: one phase, ``command``.
        start_ns: the wall-clock time (ns) of the series' zero, to place the spans on it.
    """
    duration = series.duration_s
    devices = device_totals(series)
    span_list = [dict(s) for s in spans]
    last = series.last
    return RunReport(
        command=list(command),
        exit_code=exit_code,
        started_at=started_at,
        duration_s=duration,
        total=trust.totals(series, total_of(devices, duration)),
        devices=devices,
        carbon_intensity=CarbonIntensityUsed(
            last.intensity.g_per_kwh, last.intensity.source, last.intensity.kind
        ),
        pue=series.sampler.pue,
        training=Training(
            [s for s in span_list if s.get("name") == "train"],
            epochs_from_spans(span_list, start_ns),
            sum(1 for s in span_list if s.get("name") == "evaluate"),
            evaluation_windows(span_list, start_ns, duration),
        ),
        phases=phases(span_list, start_ns, duration, series),
        timeline=Timeline(
            list(series.t_s),
            series.power_w(),
            series.totals(),
            list(series.co2e_g),
            series.host_power_w() if series.device_energy_j(whole_host=True) else None,
        ),
        scope=scope_line(devices),
        host_devices=trust.host_devices(series),
        checks=trust.verdict(series, span_list),
    )
