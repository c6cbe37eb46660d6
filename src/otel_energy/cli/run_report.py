"""The report of ``otel-energy run``: per-device energy from the node's measurement, phases and
epochs from the command's spans, and the power timeline."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from otel_energy.engine.sampler import Snapshot
from otel_energy.report import Timeline, epochs_from_spans, phases, scope_line
from otel_energy.telemetry import attributes as A

if TYPE_CHECKING:
    from otel_energy.cli.run import RunOptions


JOB_SERIES = "job:attributed_j"
"""Timeline key of the job's cumulative attributed energy (J), moved out of ``power_w`` into
``timeline.job_attributed_j`` in the report (the picture draws its rate beside the node's)."""


def powers(snap: Snapshot) -> dict[str, float]:
    """Power per device (W) and the job's cumulative attributed energy (J, ``JOB_SERIES``)."""
    out = {d.info.hw_id: d.power_w for d in snap.devices}
    if snap.job_totals is not None:
        out[JOB_SERIES] = snap.job_totals.attributed_j
    return out


def add_point(timeline: Timeline, snap: Snapshot, first: Snapshot, origin: float) -> None:
    """One timeline point: power per device, and the node's energy and CO2e since ``first``."""
    energy = sum(d.energy_j for d in snap.devices) - sum(d.energy_j for d in first.devices)
    co2e = sum(d.co2e_g for d in snap.devices) - sum(d.co2e_g for d in first.devices)
    timeline.add(snap.t_s - origin, powers(snap), energy, co2e)


def build_report(
    options: RunOptions,
    exit_code: int,
    started: datetime,
    start_ns: int,
    duration_s: float,
    first: Snapshot,
    last: Snapshot,
    timeline: Timeline,
    spans: list[dict[str, Any]],
) -> dict[str, Any]:
    """The JSON report: per-device energy from the node measurement, phases and epochs from the
    spans. ``start_ns`` is the wall-clock time (ns) of the timeline's zero."""
    devices = device_totals(first, last, duration_s)
    report: dict[str, Any] = {
        "command": options.command,
        "exit_code": exit_code,
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": duration_s,
        "total": _total(devices, duration_s),
        "devices": devices,
        "job": job_block(first, last),
        "carbon_intensity": {
            "g_per_kwh": last.intensity.g_per_kwh,
            "source": last.intensity.source,
            "kind": last.intensity.kind,
        },
        "pue": last.pue,
        "training": _training(spans, start_ns),
        "phases": phases(spans, start_ns, duration_s, timeline),
        "timeline": _timeline(timeline),
    }
    report["scope"] = scope_line(report)
    return report


def _total(devices: list[dict[str, Any]], duration_s: float) -> dict[str, Any]:
    """The node's totals over the devices, and the job's (``attribution_totals``)."""
    total_j = sum(d["energy_j"] for d in devices)
    return {
        "energy_j": total_j,
        "co2e_g": sum(d["co2e_g"] for d in devices),
        "avg_power_w": total_j / duration_s if duration_s > 0 else 0.0,
        "estimated": any(d["estimated"] for d in devices),
        **attribution_totals(devices),
    }


def _training(spans: list[dict[str, Any]], start_ns: int) -> dict[str, Any]:
    """The command's Trainer runs, epochs and evaluation count, from its spans."""
    return {
        "runs": [s for s in spans if s.get("name") == "train"],
        "epochs": epochs_from_spans(spans, start_ns),
        "evaluations": sum(1 for s in spans if s.get("name") == "evaluate"),
    }


def _timeline(timeline: Timeline) -> dict[str, Any]:
    """Power per device, the node's energy and the job's attributed energy (both since 0, J)."""
    power = dict(timeline.power_w)
    job = power.pop(JOB_SERIES, [])
    out: dict[str, Any] = {"t_s": timeline.t_s, "power_w": power, "energy_j": timeline.energy_j}
    if job:
        out["job_attributed_j"] = [j - job[0] for j in job]  # since the command started
    return out


def device_totals(first: Snapshot, last: Snapshot, duration_s: float) -> list[dict[str, Any]]:
    """Each device's energy (J), average power (W) and CO2e (g) between the two snapshots."""
    devices: list[dict[str, Any]] = []
    for d, b in paired(first, last):
        energy = d.energy_j - b.energy_j
        devices.append(
            {
                A.HW_ID: d.info.hw_id,
                A.HW_TYPE: d.info.hw_type,
                A.HW_NAME: d.info.name,
                "method": d.info.method,
                "estimated": d.info.estimated,
                "failed": d.failed,
                "energy_j": energy,
                "avg_power_w": energy / duration_s if duration_s > 0 else 0.0,
                "co2e_g": d.co2e_g - b.co2e_g,
                "attributed_energy_j": d.attributed_j - getattr(b, "attributed_j", 0.0),
                "dynamic_energy_j": d.dynamic_j - getattr(b, "dynamic_j", 0.0),
                "idle_energy_j": d.idle_j - getattr(b, "idle_j", 0.0),
                "attribution": d.attribution,
            }
        )
    return devices


def attribution_totals(devices: list[dict[str, Any]]) -> dict[str, Any]:
    """The job's figures over all devices; ``attribution`` names every method used."""
    return {
        key: sum(d[key] for d in devices)
        for key in ("attributed_energy_j", "dynamic_energy_j", "idle_energy_j")
    } | {"attribution": "+".join(sorted({d["attribution"] for d in devices})) or "none"}


def job_block(first: Snapshot, last: Snapshot) -> dict[str, Any]:
    """Whose figures these are: the job's scope, the baseline, the other processes' share and
    the CO2e of both views (docs/attribution.md)."""
    view = last.job
    totals, before = last.job_totals, first.job_totals
    block: dict[str, Any] = {"scope": "off" if view is None else view.scope}
    if view is not None:
        job_cpu = view.job_cpu_s - (first.job.job_cpu_s if first.job else 0.0)
        node_busy = view.node_busy_s - (first.job.node_busy_s if first.job else 0.0)
        block |= {
            "processes": view.scope_reason,
            "baseline": view.baseline,
            "job_cpu_s": job_cpu,
            "node_busy_cpu_s": node_busy,
            "others_busy": view.others_busy,
            "others_share": max(0.0, 1.0 - job_cpu / node_busy) if node_busy > 0 else 0.0,
        }
    if totals is not None:
        block |= {
            "attributed_co2e_g": totals.attributed_co2e_g
            - (before.attributed_co2e_g if before else 0.0),
            "dynamic_co2e_g": totals.dynamic_co2e_g - (before.dynamic_co2e_g if before else 0.0),
            "views": {
                "attributional": "the job's share of dynamic energy plus its share of the idle"
                " energy of the hardware it held; CO2e at the average intensity",
                "consequential": "the job's share of dynamic energy only; CO2e at the"
                f" {last.job.consequential_kind if last.job else 'average'} intensity",
            },
        }
    return block


def paired(first: Snapshot, last: Snapshot) -> list[tuple[Any, Any]]:
    """(last, first) device states by ``hw.id``; a device absent at first counts from zero."""
    before = {d.info.hw_id: d for d in first.devices}
    zero = type("Zero", (), {"energy_j": 0.0, "co2e_g": 0.0})()
    return [(d, before.get(d.info.hw_id, zero)) for d in last.devices]
