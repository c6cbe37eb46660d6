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

from otel_energy.engine.attribution import WHOLE_DEVICE
from otel_energy.engine.snapshot import Tick
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
    attributed_energy_j: float = 0.0
    """The job's attributed energy (attributional view; docs/attribution.md), J."""
    dynamic_energy_j: float = 0.0
    """The job's dynamic energy (consequential view), J."""
    idle_energy_j: float = 0.0
    """The whole device's idle baseline over the run, J."""
    attribution: str = WHOLE_DEVICE
    """How the job's share was found: exclusive, cpu_time_share, sm_share, equal_split, ..."""

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
    attributed_energy_j: float = 0.0
    """The job's, over all devices (``energy_j`` stays the node's), J."""
    dynamic_energy_j: float = 0.0
    idle_energy_j: float = 0.0
    attribution: str = WHOLE_DEVICE
    """Every method used, joined by ``+``."""


@dataclass(frozen=True)
class JobBlock:
    """Whose figures these are: the job's scope, the baseline, the other processes' share and
    both views' CO2e (docs/attribution.md)."""

    scope: str = "off"
    processes: str = ""
    baseline: str = ""
    job_cpu_s: float = 0.0
    node_busy_cpu_s: float = 0.0
    others_busy: bool = False
    """Other processes used a material share of the node (or shared a GPU): the node's figure
    is not the job's."""
    others_share: float = 0.0
    attributed_co2e_g: float = 0.0
    dynamic_co2e_g: float = 0.0
    views: dict[str, str] = field(default_factory=dict)


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
    job_attributed_j: list[float] = field(default_factory=list)
    """The job's cumulative attributed energy since the zero (J), at ``t_s``."""


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
    job: JobBlock = field(default_factory=JobBlock)

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


def scope_line(devices: Sequence[DeviceTotal], others_busy: bool = False) -> str:
    """What the headline figure covers and how it was obtained, in words; ``others_busy``:
    other processes used the node too (the job's share is the summary's 'job J')."""
    estimated = [d for d in devices if d.estimated]
    if not devices:
        how = "nothing measured"
    elif len(estimated) == len(devices):
        how = "estimated (no energy counter here: CPU utilization x TDP, memory W per GB)"
    elif estimated:
        how = "partly estimated: " + ", ".join(d.label for d in estimated)
    else:
        how = "measured by hardware counters"
    if others_busy:
        return (
            f"whole machine (other processes used it too: this command's share is 'job J'), {how}"
        )
    return f"whole machine (every process on it, not only this command), {how}"


def device_totals(series: RunSeries) -> list[DeviceTotal]:
    """Each device's J, average W and g CO2e from the series' zero to its newest tick."""
    duration = series.duration_s
    energy, co2e = series.device_energy_j(), series.device_co2e_g()
    failed = dict(zip((i.hw_id for i in series.last.infos), series.last.failed, strict=True))
    job = job_deltas(series.first, series.last)
    out = []
    for hw_id, e in energy.items():
        info = series.infos.get(hw_id) or next(i for i in series.last.infos if i.hw_id == hw_id)
        attributed, dynamic, idle, method = job.get(hw_id, (e, e, 0.0, WHOLE_DEVICE))
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
                attributed,
                dynamic,
                idle,
                method,
            )
        )
    return out


def job_deltas(first: Tick, last: Tick) -> dict[str, tuple[float, float, float, str]]:
    """Per device: the job's (attributed J, dynamic J, idle J, method) from ``first`` to
    ``last``; empty without job accounting."""
    if not last.attribution:
        return {}
    before = {
        i.hw_id: (a, d, z)
        for i, a, d, z in zip(
            first.infos, first.attributed_j, first.dynamic_j, first.idle_j, strict=False
        )
    }
    out = {}
    for i, info in enumerate(last.infos):
        a0, d0, z0 = before.get(info.hw_id, (0.0, 0.0, 0.0))
        out[info.hw_id] = (
            last.attributed_j[i] - a0,
            last.dynamic_j[i] - d0,
            last.idle_j[i] - z0,
            last.attribution[i],
        )
    return out


def job_block(first: Tick, last: Tick) -> JobBlock:
    """Whose figures these are, from the run's first and last ticks."""
    view, totals, before = last.job, last.job_totals, first.job_totals
    if view is None or totals is None:
        return JobBlock()
    job_cpu = view.job_cpu_s - (first.job.job_cpu_s if first.job else 0.0)
    node_busy = view.node_busy_s - (first.job.node_busy_s if first.job else 0.0)
    return JobBlock(
        view.scope,
        view.scope_reason,
        view.baseline,
        job_cpu,
        node_busy,
        view.others_busy,
        max(0.0, 1.0 - job_cpu / node_busy) if node_busy > 0 else 0.0,
        totals.attributed_co2e_g - (before.attributed_co2e_g if before else 0.0),
        totals.dynamic_co2e_g - (before.dynamic_co2e_g if before else 0.0),
        {
            "attributional": "the job's share of dynamic energy plus its share of the idle"
            " energy of the hardware it held; CO2e at the average intensity",
            "consequential": "the job's share of dynamic energy only; CO2e at the"
            f" {view.consequential_kind} intensity",
        },
    )


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
        attributed_energy_j=sum(d.attributed_energy_j for d in devices),
        dynamic_energy_j=sum(d.dynamic_energy_j for d in devices),
        idle_energy_j=sum(d.idle_energy_j for d in devices),
        attribution="+".join(sorted({d.attribution for d in devices})) or "none",
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
            list(series.job_j),
        ),
        scope=scope_line(devices, (job := job_block(series.first, series.last)).others_busy),
        job=job,
        host_devices=trust.host_devices(series),
        checks=trust.verdict(series, span_list),
    )
