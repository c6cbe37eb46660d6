"""How far a report's figures can be trusted: the node meter and the coverage, the uncertainty
band of the total, and the run's checks (docs/accuracy.md).

``build_report`` takes from here the ``Total`` fields ``energy_uncertainty_j``, ``host_energy_j``,
``host_energy_uncertainty_j`` and ``coverage`` (``totals``), the node meter's series
(``host_devices``) and the ``checks`` (``verdict``); the summary takes ``lines`` and
``band_text``, the run page ``html_block``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from otel_energy.engine.sums import method_band
from otel_energy.engine.verdict import Check, RunFacts, checks, clock_source
from otel_energy.report.series import RunSeries
from otel_energy.sensors.base import DeviceInfo
from otel_energy.telemetry import attributes as A

if TYPE_CHECKING:
    from otel_energy.report.model import RunReport, Total


@dataclass(frozen=True)
class HostDevice:
    """A whole-node meter's series (``hw.host.energy``), listed apart from the components."""

    hw_id: str = field(metadata={"key": A.HW_ID})
    name: str = field(metadata={"key": A.HW_NAME})
    method: str = ""
    energy_j: float = 0.0


def _infos(series: RunSeries) -> dict[str, DeviceInfo]:
    return {i.hw_id: i for i in (*series.first.infos, *series.last.infos)}


def band_j(parts: Sequence[tuple[DeviceInfo, float]]) -> float:
    """Half-width (J) of the band of a sum of whole-run device energies: each device's relative
    uncertainty x its energy, linear within a method, quadrature across methods (no allocation
    error: the run's ends are samples)."""
    by_method: dict[str, float] = {}
    for info, e in parts:
        by_method[info.method] = by_method.get(info.method, 0.0) + info.uncertainty * abs(e)
    return method_band(by_method)


def totals(series: RunSeries, total: Total) -> Total:
    """``total`` with ``energy_uncertainty_j``; and ``host_energy_j`` (J, the node meter), its
    band and ``coverage`` (components / node, a fraction) where there is a node meter."""
    infos = _infos(series)
    parts = [(infos[k], e) for k, e in series.device_energy_j().items()]
    node = [(infos[k], e) for k, e in series.device_energy_j(whole_host=True).items()]
    total = replace(total, energy_uncertainty_j=band_j(parts))
    host_j = sum(e for _, e in node)
    if not node:
        return total
    coverage = total.energy_j / host_j if host_j > 0 else None
    return replace(
        total, host_energy_j=host_j, host_energy_uncertainty_j=band_j(node), coverage=coverage
    )


def host_devices(series: RunSeries) -> list[HostDevice]:
    """The node meter's series and their J over the run."""
    infos = _infos(series)
    return [
        HostDevice(k, infos[k].name, infos[k].method, e)
        for k, e in series.device_energy_j(whole_host=True).items()
    ]


def training_s(spans: Sequence[Mapping[str, Any]]) -> float | None:
    """Seconds from the first ``train`` span's start to the last one's end; None without one."""
    runs = [s for s in spans if s.get("name") == "train" and "start_ns" in s and "end_ns" in s]
    if not runs:
        return None
    return float(max(s["end_ns"] for s in runs) - min(s["start_ns"] for s in runs)) / 1e9


def verdict(series: RunSeries, spans: Sequence[Mapping[str, Any]]) -> list[Check]:
    """The run's checks (``engine.verdict``) from the series and the spans."""
    infos = _infos(series)
    parts = [(infos[k], e) for k, e in series.device_energy_j().items()]
    node = series.device_energy_j(whole_host=True)
    facts = RunFacts(
        samples=series.last.samples - series.first.samples,
        duration_s=series.duration_s,
        training_s=training_s(spans),
        slowest_refresh_s=max((i.update_period_s for i in infos.values()), default=0.0),
        energy_j=sum(e for _, e in parts),
        estimated_j=sum(e for i, e in parts if i.estimated),
        host_energy_j=sum(node.values()) if node else None,
        clocksource=clock_source(),
    )
    return checks(facts)


def band_text(total: Total, sign: str = "+/-") -> str:
    """`` +/- y J`` for a report's total (``sign``: ``&plusmn;`` on a page)."""
    return f" {sign} {total.energy_uncertainty_j:.1f} J"


def _node_text(t: Total) -> str | None:
    if t.host_energy_j is None:
        return None
    return (
        f"{t.host_energy_j:.1f} J +/- {t.host_energy_uncertainty_j or 0.0:.1f} J; the"
        f" components explain {100 * (t.coverage or 0.0):.0f}%"
        f" ({t.host_energy_j - t.energy_j:.1f} J unmeasured)"
    )


def lines(report: RunReport) -> list[str]:
    """The summary's node-meter line (when there is one) and its checks."""
    node = _node_text(report.total)
    out = [f"whole node (node meter): {node}"] if node else []
    if report.checks:
        passed = sum(1 for c in report.checks if c.passed)
        out += ["", f"checks ({passed} of {len(report.checks)} passed; docs/accuracy.md):"]
        out += [f"  [{'pass' if c.passed else 'FAIL'}] {c.name}: {c.reason}" for c in report.checks]
    return out


def html_block(report: RunReport) -> str:
    """The run page's node-meter line and its checks, each marked pass or FAIL."""
    node = _node_text(report.total)
    out = []
    if node:
        out.append(f'<p class="node">Whole node (node meter): <b>{html.escape(node)}</b></p>')
    rows = [
        f'<li class="{"pass" if c.passed else "fail"}"><b>{"pass" if c.passed else "FAIL"}</b>'
        f" {html.escape(c.name)}: {html.escape(c.reason)}</li>"
        for c in report.checks
    ]
    if rows:
        out.append('<p>Checks (docs/accuracy.md):</p><ul class="checks">' + "".join(rows) + "</ul>")
    return "\n".join(out)
