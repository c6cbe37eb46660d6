"""The report of ``otel-energy run``: per-device energy from the node's measurement, phases and
epochs from the command's spans, and the power timeline."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from otel_energy.report import Timeline, epochs_from_spans, phases, scope_line
from otel_energy.safety.redact import redact_args
from otel_energy.session import Snapshot
from otel_energy.telemetry import attributes as A

if TYPE_CHECKING:
    from otel_energy.cli.run import RunOptions


def powers(snap: Snapshot) -> dict[str, float]:
    return {d.info.hw_id: d.power_w for d in snap.devices}


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
    total_j = sum(d["energy_j"] for d in devices)
    report: dict[str, Any] = {
        "command": redact_args(options.command),  # the report, summary, page and ledger row
        "exit_code": exit_code,
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": duration_s,
        "total": {
            "energy_j": total_j,
            "co2e_g": sum(d["co2e_g"] for d in devices),
            "avg_power_w": total_j / duration_s if duration_s > 0 else 0.0,
            "estimated": any(d["estimated"] for d in devices),
        },
        "devices": devices,
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


def _training(spans: list[dict[str, Any]], start_ns: int) -> dict[str, Any]:
    """The command's Trainer runs, epochs and evaluation count, from its spans."""
    return {
        "runs": [s for s in spans if s.get("name") == "train"],
        "epochs": epochs_from_spans(spans, start_ns),
        "evaluations": sum(1 for s in spans if s.get("name") == "evaluate"),
    }


def _timeline(timeline: Timeline) -> dict[str, Any]:
    return {"t_s": timeline.t_s, "power_w": timeline.power_w, "energy_j": timeline.energy_j}


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
            }
        )
    return devices


def paired(first: Snapshot, last: Snapshot) -> list[tuple[Any, Any]]:
    """(last, first) device states by ``hw.id``; a device absent at first counts from zero."""
    before = {d.info.hw_id: d for d in first.devices}
    zero = type("Zero", (), {"energy_j": 0.0, "co2e_g": 0.0})()
    return [(d, before.get(d.info.hw_id, zero)) for d in last.devices]
