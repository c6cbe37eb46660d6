"""How far a report's figures can be trusted: the node meter and the coverage, the uncertainty
band of the total, and the run's checks (docs/accuracy.md).

Kept apart from the report's assembly so that the typed report can take it whole: ``add`` puts
``host_energy_j``, ``coverage`` and ``energy_uncertainty_j`` in the JSON's ``total``, the node
meter's series in ``host_devices`` and the ``checks``; ``lines`` gives the summary's lines and
``html_block`` the page's.
"""

from __future__ import annotations

import html
from typing import Any

from otel_energy.engine.snapshot import DeviceState, Snapshot
from otel_energy.engine.sums import method_band
from otel_energy.engine.verdict import RunFacts, checks, clock_source


def add(
    report: dict[str, Any], first: Snapshot, last: Snapshot, spans: list[dict[str, Any]]
) -> None:
    """Add to ``report`` (its ``total`` and ``duration_s`` already set): the ``total`` keys of
    ``totals``, ``host_devices`` and ``checks``."""
    report["total"].update(totals(first, last))
    report["host_devices"] = host_devices(last)
    report["checks"] = verdict(first, last, report["duration_s"], spans)


def _before(first: Snapshot) -> dict[str, DeviceState]:
    return {d.info.hw_id: d for d in (*first.devices, *first.host)}


def _energies(first: Snapshot, series: tuple[DeviceState, ...]) -> list[tuple[DeviceState, float]]:
    before = _before(first)
    return [
        (d, d.energy_j - (before[d.info.hw_id].energy_j if d.info.hw_id in before else 0.0))
        for d in series
    ]


def band_j(parts: list[tuple[DeviceState, float]]) -> float:
    """Half-width (J) of the band of a sum of whole-run device energies: each device's relative
    uncertainty x its energy, linear within a method, quadrature across methods (no allocation
    error: the run's ends are samples)."""
    by_method: dict[str, float] = {}
    for d, e in parts:
        by_method[d.info.method] = by_method.get(d.info.method, 0.0) + d.info.uncertainty * abs(e)
    return method_band(by_method)


def totals(first: Snapshot, last: Snapshot) -> dict[str, Any]:
    """The ``total`` keys: ``energy_uncertainty_j`` always; ``host_energy_j`` (J, the node meter)
    and ``coverage`` (components / node, a fraction), None without a node meter."""
    parts = _energies(first, last.devices)
    host = _energies(first, last.host)
    energy = sum(e for _, e in parts)
    host_j = sum(e for _, e in host) if host else None
    return {
        "energy_uncertainty_j": band_j(parts),
        "host_energy_j": host_j,
        "host_energy_uncertainty_j": band_j(host) if host else None,
        "coverage": energy / host_j if host_j else None,
    }


def host_devices(last: Snapshot) -> list[dict[str, Any]]:
    """The node meter's series (``hw.id``, ``hw.name``, method), listed apart from ``devices``."""
    return [
        {"hw.id": d.info.hw_id, "hw.name": d.info.name, "method": d.info.method} for d in last.host
    ]


def training_s(spans: list[dict[str, Any]]) -> float | None:
    """Seconds from the first ``train`` span's start to the last one's end; None without one."""
    runs = [s for s in spans if s.get("name") == "train" and "start_ns" in s and "end_ns" in s]
    if not runs:
        return None
    return float(max(s["end_ns"] for s in runs) - min(s["start_ns"] for s in runs)) / 1e9


def verdict(
    first: Snapshot, last: Snapshot, duration_s: float, spans: list[dict[str, Any]]
) -> list[dict[str, str | bool]]:
    """The run's checks as ``{"name", "passed", "reason"}`` dicts."""
    parts = _energies(first, last.devices)
    host = _energies(first, last.host)
    refresh = [d.info.update_period_s for d in (*last.devices, *last.host)]
    facts = RunFacts(
        samples=last.samples - first.samples,
        duration_s=duration_s,
        training_s=training_s(spans),
        slowest_refresh_s=max(refresh, default=0.0),
        energy_j=sum(e for _, e in parts),
        estimated_j=sum(e for d, e in parts if d.info.estimated),
        host_energy_j=sum(e for _, e in host) if host else None,
        clocksource=clock_source(),
    )
    return [c.as_dict() for c in checks(facts)]


def band_text(total: dict[str, Any], sign: str = "+/-") -> str:
    """`` +/- y J`` for a report's total; empty for a report from before the band existed."""
    band = total.get("energy_uncertainty_j")
    return "" if band is None else f" {sign} {band:.1f} J"


def lines(report: dict[str, Any]) -> list[str]:
    """The summary's node-meter line (when there is one) and its checks."""
    t = report["total"]
    out = []
    if t.get("host_energy_j") is not None:
        out.append(
            f"whole node (node meter): {t['host_energy_j']:.1f} J"
            f" +/- {t.get('host_energy_uncertainty_j') or 0.0:.1f} J; the components explain"
            f" {100 * (t.get('coverage') or 0.0):.0f}%"
            f" ({t['host_energy_j'] - t['energy_j']:.1f} J unmeasured)"
        )
    checks_ = report.get("checks") or []
    if checks_:
        passed = sum(1 for c in checks_ if c["passed"])
        out += ["", f"checks ({passed} of {len(checks_)} passed; docs/accuracy.md):"]
        out += [
            f"  [{'pass' if c['passed'] else 'FAIL'}] {c['name']}: {c['reason']}" for c in checks_
        ]
    return out


def html_block(report: dict[str, Any]) -> str:
    """The report page's node-meter line and its checks, each marked pass or FAIL."""
    t = report["total"]
    out = []
    if t.get("host_energy_j") is not None:
        out.append(
            f'<p class="node">Whole node (node meter): <b>{t["host_energy_j"]:.1f} J'
            f" &plusmn; {t.get('host_energy_uncertainty_j') or 0.0:.1f} J</b>; the component"
            f" sensors explain <b>{100 * (t.get('coverage') or 0.0):.0f}%</b>"
            f" ({t['host_energy_j'] - t['energy_j']:.1f} J unmeasured).</p>"
        )
    rows = [
        f'<li class="{"pass" if c["passed"] else "fail"}"><b>'
        f"{'pass' if c['passed'] else 'FAIL'}</b> {html.escape(c['name'])}:"
        f" {html.escape(c['reason'])}</li>"
        for c in report.get("checks") or []
    ]
    if rows:
        out.append('<p>Checks (docs/accuracy.md):</p><ul class="checks">' + "".join(rows) + "</ul>")
    return "\n".join(out)
