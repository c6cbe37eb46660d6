"""Ledger rows rendered from the typed run report (``report.model.RunReport``), and the row of a
Trainer run whose totals come from its span's window.

The power curves a row keeps are the run's one recorded series (``report.series.RunSeries``),
thinned by the series' own decimation to ``LEDGER_POINTS``.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from otel_energy.distributed.job import job_id
from otel_energy.history.schema import RunRow, new_run_id
from otel_energy.report.model import (
    RunReport,
    build_report,
    device_label,
    job_block,
    job_deltas,
)
from otel_energy.report.series import LEDGER_POINTS, RunSeries, thinned
from otel_energy.safety.redact import redact_args


def command_line(argv: list[str] | None = None) -> str:
    """This process's command line as one shell-quoted string, credentials redacted."""
    args = argv if argv is not None else list(getattr(sys, "orig_argv", sys.argv))
    return shlex.join(redact_args(args))


def utc_iso(t: datetime | None = None) -> str:
    return (t or datetime.now(timezone.utc)).isoformat(timespec="milliseconds")


def ledger_timeline(series: RunSeries) -> dict[str, Any]:
    """The row's curves: ``t_s``, ``power_w`` per device (average W over the interval ending at
    each point), ``names`` (device labels) and ``measured_share`` (0..1 of the energy not
    estimated), in at most ``LEDGER_POINTS`` points."""
    idx = thinned(series.t_s, LEDGER_POINTS)
    energy = series.device_energy_j()
    total = sum(energy.values())
    measured = sum(
        e for k, e in energy.items() if k in series.infos and not series.infos[k].estimated
    )
    return {
        "t_s": [round(series.t_s[i], 3) for i in idx],
        "power_w": {k: [round(p, 3) for p in v] for k, v in series.power_w(idx).items()},
        "names": {k: device_label(i.hw_type, i.name) for k, i in series.infos.items()},
        "measured_share": round(measured / total, 4) if total > 0 else None,
    }


def row_from_report(
    report: RunReport, series: RunSeries, run_id: str, kind: str = "command"
) -> RunRow:
    """The ledger row of a run report: ``command`` (``otel-energy run``: the whole node for the
    command's lifetime) or ``process`` (an instrumented process at exit)."""
    by_type: dict[str, float] = {}
    for d in report.devices:
        by_type[d.hw_type] = by_type.get(d.hw_type, 0.0) + d.energy_j
    code = report.exit_code
    return RunRow(
        kind=kind,
        command=shlex.join(redact_args(report.command)),
        started_at=report.started_at,
        duration_s=report.duration_s,
        energy_j=report.total.energy_j,
        co2e_g=report.total.co2e_g,
        status="exit" if code is None else "ok" if code == 0 else "error",
        energy_by_type=by_type,
        intensity_g_per_kwh=report.carbon_intensity.g_per_kwh,
        intensity_source=report.carbon_intensity.source,
        estimated=report.total.estimated,
        exit_code=code,
        job_id=job_id(os.environ),
        rank=None if kind == "command" else series.sampler.rank.rank,
        run_id=run_id,
        timeline=ledger_timeline(series),
        **report_attribution(report),
    )


def report_attribution(report: RunReport) -> dict[str, Any]:
    """The ledger's attribution fields from a run report (docs/attribution.md)."""
    t, job = report.total, report.job
    return {
        "attributed_energy_j": t.attributed_energy_j,
        "dynamic_energy_j": t.dynamic_energy_j,
        "attribution": {
            "method": t.attribution,
            "scope": job.scope,
            "others_busy": job.others_busy,
            "others_share": job.others_share,
            "idle_energy_j": t.idle_energy_j,
            "baseline": job.baseline,
        },
    }


def row_from_totals(
    kind: str,
    started_at: str,
    duration_s: float,
    energy_j: float,
    co2e_g: float,
    by_type: Mapping[str, float],
    estimated: bool,
    series: RunSeries,
    status: str,
    job_j: tuple[float | None, float | None] = (None, None),
) -> RunRow:
    """The row of a Trainer run: totals from its span's window, curves from its series.

    Args:
        job_j: the run's (attributed, dynamic) J over the same window (docs/attribution.md);
            None: not known (the ledger shows the node's only).
    """
    intensity = series.last.intensity
    how = job_block(series.first, series.last)
    methods = {d[3] for d in job_deltas(series.first, series.last).values()}
    attributed, dynamic = job_j
    return RunRow(
        kind=kind,
        command=command_line(),
        started_at=started_at,
        duration_s=duration_s,
        energy_j=energy_j,
        co2e_g=co2e_g,
        status=status,
        energy_by_type=dict(by_type),
        intensity_g_per_kwh=intensity.g_per_kwh,
        intensity_source=intensity.source,
        estimated=estimated,
        job_id=job_id(os.environ),
        rank=series.sampler.rank.rank,
        timeline=ledger_timeline(series),
        attributed_energy_j=attributed,
        dynamic_energy_j=dynamic,
        attribution={
            # the same fields as report_attribution's, the run's idle from its own window
            "method": "+".join(sorted(methods)) or "none",
            "scope": how.scope,
            "others_busy": how.others_busy,
            "others_share": how.others_share,
            "idle_energy_j": (
                None if attributed is None or dynamic is None else attributed - dynamic
            ),
            "baseline": how.baseline,
        },
    )


def process_row(series: RunSeries, started_at: str) -> RunRow:
    """The row of an instrumented process at exit: its series from the start to now."""
    series.close()
    argv = list(getattr(sys, "orig_argv", sys.argv))
    report = build_report(series, command=redact_args(argv), exit_code=None, started_at=started_at)
    return row_from_report(report, series, new_run_id(), "process")
