"""The readable summary printed at the end of ``otel-energy run``: totals, devices, phases."""

from __future__ import annotations

import shlex

from otel_energy.report import trust
from otel_energy.report.model import RunReport
from otel_energy.report.phases import Epoch, Phase
from otel_energy.safety.redact import redact_args
from otel_energy.safety.terminal import printable


def format_summary(report: RunReport) -> str:
    """The text printed at the end of ``otel-energy run`` (the command redacted, and control
    characters escaped: it came from outside)."""
    t = report.total
    command = printable(shlex.join(redact_args(report.command)))
    lines = [
        f"otel-energy: `{command}` exited {report.exit_code} after {report.duration_s:.1f} s",
        f"total: {t.energy_j:.1f} J{trust.band_text(t)}, {t.co2e_g:.4f} gCO2e,"
        f" average {t.avg_power_w:.1f} W",
        f"scope: {report.scope}",
        "",
        f"{'device':32} {'method':24} {'energy J':>11} {'avg W':>8} {'CO2e g':>10}",
    ]
    for d in report.devices:
        label = printable(d.label)
        lines.append(
            f"{label[:32]:32} {d.method:24} {d.energy_j:11.2f}"
            f" {d.avg_power_w:8.2f} {d.co2e_g:10.4f}"
        )
    lines.append(f"{'total':32} {'':24} {t.energy_j:11.2f} {t.avg_power_w:8.2f} {t.co2e_g:10.4f}")
    ci = report.carbon_intensity
    lines.append(
        f"carbon intensity {ci.g_per_kwh:.1f} gCO2e/kWh {ci.kind} [{ci.source}], PUE {report.pue:g}"
    )
    lines += trust.lines(report)
    lines += _phase_lines(report.phases, t.energy_j or 1.0)
    lines += _epoch_lines(report.training.epochs)
    return "\n".join(lines)


def _phase_lines(rows: list[Phase], total_j: float) -> list[str]:
    """The table of phases (empty without phases); shares are of ``total_j`` (J)."""
    if not rows:
        return []
    lines = [
        "",
        "where the energy went (whole machine; the phases add up to the total):",
        f"{'phase':50} {'time s':>8} {'energy J':>11} {'share':>6} {'CO2e g':>10}",
    ]
    for p in rows:
        lines.append(
            f"{p.label[:50]:50} {p.duration_s:8.2f} {p.energy_j:11.2f}"
            f" {100 * p.energy_j / total_j:5.1f}% {p.co2e_g:10.4f}"
        )
    return lines


def _epoch_lines(epochs: list[Epoch]) -> list[str]:
    """The table of epochs per rank, only for a run with ranks other than 0."""
    if not any(e.rank not in (None, 0) for e in epochs):
        return []
    lines = [
        "",
        "per epoch and rank (each rank's own devices, from its spans):",
        f"{'epoch':>5} {'rank':>4} {'steps':>6} {'duration s':>11} {'energy J':>11}"
        f" {'avg W':>8} {'CO2e g':>10}",
    ]
    for e in epochs:
        lines.append(
            f"{e.epoch!s:>5} {e.rank if e.rank is not None else '-':>4}"
            f" {e.steps!s:>6} {e.duration_s:11.2f} {e.energy_j or 0:11.2f}"
            f" {e.avg_power_w or 0:8.2f} {e.co2e_g or 0:10.4f}"
        )
    return lines
