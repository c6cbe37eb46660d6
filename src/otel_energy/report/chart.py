"""The picture of an ``otel-energy run`` report: power per device over time, with the training's
start, end and epoch boundaries marked.

A self-contained HTML page with an inline SVG chart (no JavaScript, no network), or a PNG when
matplotlib is installed (``pip install '.[plot]'``). Axis ticks are round numbers; the legend sits
beside the plot, never on the data.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otel_energy.report import device_label, format_summary, scope_line
from otel_energy.safety.files import write_private
from otel_energy.safety.redact import redact_args
from otel_energy.telemetry import attributes as A

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
MARK_COLOR = {"start": "#2ca02c", "end": "#d62728", "epoch": "#555555"}
LABEL_ROWS = 3  # rows of marker labels above the plot


def nice_ticks(top: float, target: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top``: steps of 1, 2, 2.5 or 5 x 10^k."""
    top = max(top, 1e-9)
    raw = top / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def _tick_text(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.3g}"


def markers(report: dict[str, Any]) -> list[tuple[float, str, str]]:
    """(time s, label, kind) of the vertical lines: training start/end and epoch starts."""
    out: list[tuple[float, str, str]] = []
    by_phase = {p["phase"]: p for p in report.get("phases", [])}
    if "before_training" in by_phase:
        out.append((by_phase["before_training"]["end_s"], "training starts", "start"))
    for p in report.get("phases", []):
        if p["phase"] == "epoch":
            out.append((p["start_s"], f"epoch {p.get('epoch')}", "epoch"))
    if "after_training" in by_phase:
        out.append((by_phase["after_training"]["start_s"], "training ends", "end"))
    return out


@dataclass(frozen=True)
class _Frame:
    """The plot area in pixels and its scales: time (s) to x, power (W) to y."""

    left: float
    top: float
    pw: float
    ph: float
    t_max: float
    p_max: float

    def x(self, t: float) -> float:
        return self.left + self.pw * t / self.t_max

    def y(self, p: float) -> float:
        return self.top + self.ph * (1 - p / self.p_max)


def svg_chart(report: dict[str, Any], width: int = 980, height: int = 380) -> str:
    """Power per device (W) over time (s) as SVG."""
    tl = report["timeline"]
    ts: list[float] = tl["t_s"]
    series: dict[str, list[float]] = tl["power_w"]
    names = {d[A.HW_ID]: device_label(d) for d in report["devices"]}
    legend_w = 210
    left, right, top, bottom = 64, 16 + legend_w, 12 + 13 * LABEL_ROWS, 44
    x_ticks = nice_ticks(max(ts[-1] if ts else 0.0, report["duration_s"], 1e-9))
    # 5% headroom: a line at the maximum stays visible below the frame
    y_ticks = nice_ticks(1.05 * max([max(v) for v in series.values() if v] + [1e-9]))
    f = _Frame(left, top, width - left - right, height - top - bottom, x_ticks[-1], y_ticks[-1])
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect x="{left}" y="{top}" width="{f.pw}" height="{f.ph}" fill="#fafafa" stroke="#999"/>',
    ]
    out += _axes(f, x_ticks, y_ticks, height)
    marks = markers(report)
    out += _marker_lines(f, marks)
    out += _marker_labels(f, marks)
    out += _series(f, ts, series, names)
    out.append("</svg>")
    return "\n".join(out)


def _axes(f: _Frame, x_ticks: list[float], y_ticks: list[float], height: int) -> list[str]:
    """Grid lines, tick labels and the two axis titles."""
    out = []
    for p in y_ticks:
        out.append(
            f'<line x1="{f.left}" y1="{f.y(p):.1f}" x2="{f.left + f.pw}" y2="{f.y(p):.1f}"'
            ' stroke="#e4e4e4"/>'
        )
        out.append(
            f'<text x="{f.left - 6}" y="{f.y(p) + 4:.1f}" text-anchor="end">{_tick_text(p)}</text>'
        )
    for t in x_ticks:
        out.append(
            f'<text x="{f.x(t):.1f}" y="{f.top + f.ph + 16}" text-anchor="middle">'
            f"{_tick_text(t)}</text>"
        )
    out.append(
        f'<text x="{f.left + f.pw / 2}" y="{height - 6}" text-anchor="middle">time (s)</text>'
    )
    out.append(
        f'<text x="14" y="{f.top + f.ph / 2}" transform="rotate(-90 14 {f.top + f.ph / 2})"'
        ' text-anchor="middle">power (W)</text>'
    )
    return out


def _marker_lines(f: _Frame, marks: list[tuple[float, str, str]]) -> list[str]:
    """The training run as a band behind the data, and a vertical line per marker."""
    out = []
    spans = {kind: t for t, _, kind in marks if kind in ("start", "end")}
    if "start" in spans and "end" in spans:
        x0, x1 = f.x(spans["start"]), f.x(spans["end"])
        out.append(
            f'<rect x="{x0:.1f}" y="{f.top}" width="{max(x1 - x0, 1):.1f}" height="{f.ph}"'
            ' fill="#2ca02c" fill-opacity="0.07"/>'
        )
    for t, _label, kind in marks:
        mx = f.x(min(max(t, 0.0), f.t_max))
        dash = ' stroke-dasharray="4 3"' if kind == "epoch" else ""
        out.append(
            f'<line x1="{mx:.1f}" y1="{f.top}" x2="{mx:.1f}" y2="{f.top + f.ph}"'
            f' stroke="{MARK_COLOR[kind]}" stroke-width="1.2"{dash}/>'
        )
    return out


def _marker_labels(f: _Frame, marks: list[tuple[float, str, str]]) -> list[str]:
    """Labels above the plot, in rows; training start and end first, then epochs where they
    fit (a label with no room is left out: its line stays)."""
    out = []
    taken: list[list[tuple[float, float]]] = [[] for _ in range(LABEL_ROWS)]
    for t, label, kind in sorted(marks, key=lambda m: m[2] == "epoch"):
        mx = f.x(min(max(t, 0.0), f.t_max))
        width_px = 6.2 * len(label)
        left_px = mx - width_px - 3 if kind == "end" else mx + 3
        row = next(
            (
                r
                for r in range(LABEL_ROWS)
                if all(left_px > b + 4 or left_px + width_px < a - 4 for a, b in taken[r])
            ),
            None,
        )
        if row is None:
            continue
        taken[row].append((left_px, left_px + width_px))
        out.append(
            f'<text x="{left_px:.1f}" y="{f.top - 5 - 13 * row}" font-size="11"'
            f' fill="{MARK_COLOR[kind]}">{html.escape(label)}</text>'
        )
    return out


def _series(
    f: _Frame, ts: list[float], series: dict[str, list[float]], names: dict[str, str]
) -> list[str]:
    """One polyline per device and its legend entry beside the plot."""
    out = []
    for i, (key, values) in enumerate(sorted(series.items())):
        color = COLORS[i % len(COLORS)]
        pts = " ".join(f"{f.x(t):.1f},{f.y(p):.1f}" for t, p in zip(ts, values, strict=False))
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>')
        lx, ly = f.left + f.pw + 16, f.top + 8 + 18 * i
        out.append(
            f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{color}"/>'
            f'<text x="{lx + 18}" y="{ly + 10}">{html.escape(names.get(key, key))}</text>'
        )
    return out


def write_html(report: dict[str, Any], path: Path) -> None:
    """A self-contained page: headline, chart and the summary table (written atomically)."""
    title = html.escape("otel-energy: " + " ".join(redact_args(report["command"])))
    t = report["total"]
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}}pre{{background:#f4f4f4;padding:12px}}
.scope{{color:#555}}</style>
</head><body>
<h1>{title}</h1>
<p><b>{t["energy_j"]:.1f} J, {t["co2e_g"]:.4f} gCO2e</b> in {report["duration_s"]:.1f} s,
average {t["avg_power_w"]:.1f} W.</p>
<p class="scope">{html.escape(report.get("scope") or scope_line(report))}</p>
{svg_chart(report)}
<pre>{html.escape(format_summary(report))}</pre>
</body></html>
"""
    write_private(path, page)


def write_png(report: dict[str, Any], path: Path) -> bool:
    """The chart as PNG with matplotlib; False when matplotlib is not installed."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    tl = report["timeline"]
    names = {d[A.HW_ID]: device_label(d) for d in report["devices"]}
    fig, ax = plt.subplots(figsize=(11, 4))
    for key, values in sorted(tl["power_w"].items()):
        ax.plot(tl["t_s"][: len(values)], values, label=names.get(key, key))
    for t, label, kind in markers(report):
        ax.axvline(t, color=MARK_COLOR[kind], linestyle="--" if kind == "epoch" else "-", lw=0.9)
        ax.annotate(
            label,
            (t, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=8,
            color=MARK_COLOR[kind],
            va="bottom",
            rotation=0,
        )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("power (W)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    png = io.BytesIO()  # drawn in memory: the file is written only by write_private
    try:
        fig.savefig(png, format="png", dpi=110)
    finally:
        plt.close(fig)
    write_private(path, png.getvalue())
    return True
