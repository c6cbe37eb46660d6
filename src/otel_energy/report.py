"""The end-of-run report of ``otel-energy run``: a JSON document, a readable summary and a picture.

The picture is a self-contained HTML page with an inline SVG chart of power over time per device,
with the training's epoch boundaries (no JavaScript, no network), or a PNG when matplotlib is
installed (``pip install 'otel-energy[plot]'``).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Timeline:
    """Power per device over time, decimated to at most ``max_points`` (O(1) memory).

    ``t_s``: seconds since the command started; ``power_w[hw_id]``: W at those times.
    """

    max_points: int = 2000
    t_s: list[float] = field(default_factory=list)
    power_w: dict[str, list[float]] = field(default_factory=dict)
    _stride: int = 1
    _seen: int = 0

    def add(self, t_s: float, powers: dict[str, float]) -> None:
        self._seen += 1
        if (self._seen - 1) % self._stride:
            return
        self.t_s.append(t_s)
        for key, value in powers.items():
            series = self.power_w.setdefault(key, [0.0] * (len(self.t_s) - 1))
            series.append(value)
        if len(self.t_s) > self.max_points:  # keep every other point from now on
            self._stride *= 2
            self.t_s = self.t_s[::2]
            self.power_w = {k: v[::2] for k, v in self.power_w.items()}


def epochs_from_spans(spans: list[dict[str, Any]], start_ns: int) -> list[dict[str, Any]]:
    """Epoch rows (per rank) from the spans written by the ``otel_energy_file`` exporter."""
    rows = []
    for s in spans:
        if s.get("name") != "epoch":
            continue
        a = s.get("attributes", {})
        rows.append(
            {
                "epoch": a.get("otel_energy.train.epoch"),
                "rank": a.get("otel_energy.rank"),
                "steps": a.get("otel_energy.train.steps"),
                "start_s": (s["start_ns"] - start_ns) / 1e9,
                "duration_s": (s["end_ns"] - s["start_ns"]) / 1e9,
                "energy_j": a.get("otel_energy.energy"),
                "avg_power_w": a.get("otel_energy.power"),
                "co2e_g": a.get("otel_energy.co2e"),
                "estimated": a.get("otel_energy.estimated"),
                "status": s.get("status"),
            }
        )
    return sorted(rows, key=lambda r: (r["rank"] or 0, r["start_s"]))


def format_summary(report: dict[str, Any]) -> str:
    """The table printed at the end of ``otel-energy run``."""
    cmd = " ".join(report["command"])
    lines = [
        f"otel-energy: `{cmd}` exited {report['exit_code']} after {report['duration_s']:.1f} s",
        "",
        f"{'device':40} {'method':24} {'energy J':>11} {'avg W':>8} {'CO2e g':>10}",
    ]
    for d in report["devices"]:
        name = f"{d['hw.type']}:{d['hw.name']}"
        lines.append(
            f"{name[:40]:40} {d['method']:24} {d['energy_j']:11.2f}"
            f" {d['avg_power_w']:8.2f} {d['co2e_g']:10.4f}"
        )
    t = report["total"]
    lines.append(
        f"{'total':40} {'':24} {t['energy_j']:11.2f} {t['avg_power_w']:8.2f} {t['co2e_g']:10.4f}"
    )
    ci = report["carbon_intensity"]
    lines.append(
        f"carbon intensity {ci['g_per_kwh']:.1f} gCO2e/kWh [{ci['source']}], PUE {report['pue']:g}"
    )
    epochs = report["training"]["epochs"]
    if epochs:
        lines += [
            "",
            "per epoch (from the training spans):",
            f"{'epoch':>5} {'rank':>4} {'steps':>6} {'duration s':>11} {'energy J':>11}"
            f" {'avg W':>8} {'CO2e g':>10}",
        ]
        for e in epochs:
            lines.append(
                f"{e['epoch']!s:>5} {e['rank'] if e['rank'] is not None else '-':>4}"
                f" {e['steps']!s:>6} {e['duration_s']:11.2f} {e['energy_j'] or 0:11.2f}"
                f" {e['avg_power_w'] or 0:8.2f} {e['co2e_g'] or 0:10.4f}"
            )
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def svg_chart(report: dict[str, Any], width: int = 900, height: int = 360) -> str:
    """Power per device (W) over time (s), epoch starts as dashed lines."""
    tl = report["timeline"]
    ts: list[float] = tl["t_s"]
    series: dict[str, list[float]] = tl["power_w"]
    names = {d["hw.id"]: f"{d['hw.type']}:{d['hw.name']}" for d in report["devices"]}
    left, right, top, bottom = 60, 20, 20, 40
    pw, ph = width - left - right, height - top - bottom
    t_max = float(max(ts[-1] if ts else 1.0, report["duration_s"], 1e-9))
    # Headroom above the highest curve for the legend drawn in the top-left corner.
    legend_share = (28 + 16 * len(series)) / ph
    p_max = float(max([max(v) for v in series.values() if v] + [1.0])) / max(0.3, 1 - legend_share)

    def x(t: float) -> float:
        return left + pw * t / t_max

    def y(p: float) -> float:
        return top + ph * (1 - p / p_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>',
    ]
    for i in range(6):  # axes ticks
        p, t = p_max * i / 5, t_max * i / 5
        out.append(f'<text x="{left - 6}" y="{y(p) + 4:.1f}" text-anchor="end">{p:.3g}</text>')
        out.append(f'<text x="{x(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{t:.1f}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle">time (s)</text>')
    out.append(
        f'<text x="14" y="{top + ph / 2}" transform="rotate(-90 14 {top + ph / 2})"'
        ' text-anchor="middle">power (W)</text>'
    )
    for e in report["training"]["epochs"]:
        if e["rank"] not in (None, 0):
            continue
        ex = x(max(0.0, e["start_s"]))
        out.append(
            f'<line x1="{ex:.1f}" y1="{top}" x2="{ex:.1f}" y2="{top + ph}" stroke="#555"'
            ' stroke-dasharray="4 3"/>'
        )
        out.append(f'<text x="{ex + 3:.1f}" y="{top + 12}">epoch {e["epoch"]}</text>')
    for i, (key, values) in enumerate(sorted(series.items())):
        color = COLORS[i % len(COLORS)]
        pts = " ".join(f"{x(t):.1f},{y(p):.1f}" for t, p in zip(ts, values, strict=False))
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>')
        label = html.escape(names.get(key, key))
        out.append(
            f'<rect x="{left + 10}" y="{top + 20 + 16 * i}" width="10" height="10"'
            f' fill="{color}"/><text x="{left + 26}" y="{top + 29 + 16 * i}">{label}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def write_html(report: dict[str, Any], path: Path) -> None:
    """A self-contained page: the chart and the summary table."""
    title = html.escape("otel-energy: " + " ".join(report["command"]))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}}pre{{background:#f4f4f4;padding:12px}}</style>
</head><body>
<h1>{title}</h1>
<p>{report["total"]["energy_j"]:.1f} J, {report["total"]["co2e_g"]:.4f} gCO2e,
{report["duration_s"]:.1f} s, average {report["total"]["avg_power_w"]:.1f} W.</p>
{svg_chart(report)}
<pre>{html.escape(format_summary(report))}</pre>
</body></html>
"""
    path.write_text(page)


def write_png(report: dict[str, Any], path: Path) -> bool:
    """The chart as PNG with matplotlib; False when matplotlib is not installed."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    tl = report["timeline"]
    names = {d["hw.id"]: f"{d['hw.type']}:{d['hw.name']}" for d in report["devices"]}
    fig, ax = plt.subplots(figsize=(10, 4))
    for key, values in sorted(tl["power_w"].items()):
        ax.plot(tl["t_s"][: len(values)], values, label=names.get(key, key))
    for e in report["training"]["epochs"]:
        if e["rank"] in (None, 0):
            ax.axvline(e["start_s"], color="#555", linestyle="--", linewidth=0.8)
            ax.text(e["start_s"], ax.get_ylim()[1] * 0.95, f" epoch {e['epoch']}", fontsize=8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("power (W)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
