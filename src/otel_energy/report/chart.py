"""Every chart we draw: power over time as SVG (and PNG with matplotlib), from a typed ``Plot``.

The run report's picture, the comparison page's overlay and its per-run charts are all ``Plot``s
(``report.pages`` builds them); this module only draws. The x axis ends where the run ends (round
ticks inside it), a power series is drawn as the steps it is (each value is the average power over
the interval that ends at its time), markers' labels sit in rows above the plot with the marker
line drawn up to its label, the legend sits beside the plot, never on the data. Plots given the
same ``t_end_s`` and ``y_max_w`` share their axes.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otel_energy.safety.files import write_private

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
MARK_COLOR = {"start": "#2ca02c", "end": "#d62728", "epoch": "#555555"}
BAND_COLOR = {"training": "#2ca02c", "evaluation": "#ff7f0e"}
LABEL_ROWS = 3  # rows of marker labels above the plot
LABEL_PX = 11  # marker label font size
DPI = 110  # of the PNG
FONT = "Liberation Sans, Arial, Helvetica, sans-serif"  # metric-compatible faces: widths below

# Advance widths of Helvetica/Arial (and Liberation Sans, metric-compatible) in 1/1000 em, for
# ASCII 32..126: the width of a label in pixels without a browser. Other characters: 0.6 em.
_WIDTH_TABLE = (
    "278 278 355 556 556 889 667 191 333 333 389 584 278 333 278 278 556 556 556 556 556 556 "
    "556 556 556 556 278 278 584 584 584 556 1015 667 667 722 722 667 611 778 722 278 500 667 "
    "556 833 722 778 667 778 722 667 611 722 667 944 667 667 611 278 278 278 469 556 333 556 "
    "556 500 556 556 278 556 556 222 222 500 222 833 556 556 556 556 333 500 278 556 500 722 "
    "500 500 500 334 260 334 584"
)
_WIDTHS = tuple(int(w) for w in _WIDTH_TABLE.split())


WIDER_FACE = 1.12
"""Where none of ``FONT`` is installed the browser falls back to a wider face (DejaVu Sans is
~10% wider): widths are taken this much larger, so labels never collide in either."""


def text_width_px(text: str, size_px: float) -> float:
    """The rendered width of ``text`` at ``size_px`` (px), an upper bound over the faces of
    ``FONT`` and the usual fallback."""
    return WIDER_FACE * size_px * sum(_char_em(c) for c in text)


def _char_em(c: str) -> float:
    i = ord(c) - 32
    return _WIDTHS[i] / 1000 if 0 <= i < len(_WIDTHS) else 0.6


@dataclass(frozen=True)
class Line:
    """One power series: ``values[i]`` W is the average over (``t_s[i-1]``, ``t_s[i]``] s."""

    label: str
    t_s: Sequence[float]
    values: Sequence[float]


@dataclass(frozen=True)
class Mark:
    """A vertical line at ``t_s`` (s); ``kind``: ``start``, ``end`` or ``epoch``."""

    t_s: float
    label: str
    kind: str


@dataclass(frozen=True)
class Band:
    """A shaded stretch behind the data; ``kind``: ``training`` or ``evaluation``."""

    t0_s: float
    t1_s: float
    kind: str


@dataclass(frozen=True)
class Plot:
    """What a chart shows: power lines over [0, ``t_end_s``] s, markers, bands; ``y_max_w``
    fixes the top of the power axis (shared axes), else it fits the data."""

    lines: Sequence[Line]
    t_end_s: float
    marks: Sequence[Mark] = ()
    bands: Sequence[Band] = ()
    y_max_w: float | None = None

    def data_max_w(self) -> float:
        return max([max(ln.values) for ln in self.lines if ln.values] + [0.0])


def nice_ticks(top: float, target: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top``: steps of 1, 2, 2.5 or 5 x 10^k."""
    step = nice_step(top, target)
    n = math.ceil(max(top, 1e-9) / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def nice_step(top: float, target: int = 5) -> float:
    """The round step (1, 2, 2.5 or 5 x 10^k) that splits ``top`` into about ``target``."""
    raw = max(top, 1e-9) / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= raw)


def ticks_within(end: float, target: int = 6) -> list[float]:
    """Round tick values from 0 up to ``end`` (never past it): the axis ends at the data."""
    step = nice_step(end, target)
    return [round(i * step, 10) for i in range(int(max(end, 0.0) / step + 1e-9) + 1)]


def _tick_text(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.3g}"


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
        return self.left + self.pw * min(max(t, 0.0), self.t_max) / self.t_max

    def y(self, p: float) -> float:
        return self.top + self.ph * (1 - p / self.p_max)


def svg(plot: Plot, width: int = 980, height: int = 380, legend_w: int = 210) -> str:
    """The chart as one ``<svg>`` element (inline in a page, or a file of its own)."""
    # room above the plot for the markers' label rows, only where there are markers
    left, right, bottom = 64, 16 + legend_w, 44
    top = 14 + 13 * LABEL_ROWS if plot.marks else 14
    # 5% headroom: a line at the maximum stays visible below the frame
    y_ticks = nice_ticks(plot.y_max_w or 1.05 * max(plot.data_max_w(), 1e-9))
    t_end = max(plot.t_end_s, 1e-9)
    f = _Frame(left, top, width - left - right, height - top - bottom, t_end, y_ticks[-1])
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="12">',
        f'<rect x="{left}" y="{top}" width="{f.pw}" height="{f.ph}" fill="#fafafa" stroke="#999"/>',
    ]
    out += _bands(f, plot.bands)
    out += _axes(f, ticks_within(t_end), y_ticks, height)
    out += _marks(f, plot.marks)
    out += _series(f, plot.lines)
    out += _band_legend(f, plot.bands, len(plot.lines))
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


def _bands(f: _Frame, bands: Sequence[Band]) -> list[str]:
    """The training run and each evaluation as shaded stretches behind the data."""
    out = []
    for b in bands:
        x0, x1 = f.x(b.t0_s), f.x(b.t1_s)
        opacity = 0.07 if b.kind == "training" else 0.22
        out.append(
            f'<rect class="band-{b.kind}" x="{x0:.1f}" y="{f.top}" width="{max(x1 - x0, 1):.1f}"'
            f' height="{f.ph}" fill="{BAND_COLOR[b.kind]}" fill-opacity="{opacity}"/>'
        )
    return out


def label_boxes(f: _Frame, marks: Sequence[Mark]) -> list[tuple[Mark, int, float, float]]:
    """(mark, row, left px, right px) of each label that fits: training start and end first,
    then epochs where they fit (a label with no room is left out: its line stays).

    Each label sits beside its line in the stretch it names, touching the line: ``training
    starts`` ends at its line (in the time before training), ``training ends`` and the epochs
    start at theirs; a label turns to the other side where its side has no room. A mark's line
    is drawn up to its label's row, so a label never sits across another mark's line: where it
    would, it takes a higher row or the other side, or is left out.
    """
    placed: list[tuple[Mark, int, float, float]] = []
    for m in sorted(marks, key=lambda m: m.kind == "epoch"):
        mx = f.x(m.t_s)
        w = text_width_px(m.label, LABEL_PX)
        after, before = (mx + 3, mx + 3 + w), (mx - 3 - w, mx - 3)
        sides = [before, after] if m.kind == "start" else [after, before]
        sides = [(x0, x1) for x0, x1 in sides if x0 >= f.left - 60 and x1 <= f.left + f.pw + 8]
        spot = next(
            (
                (r, x0, x1)
                for r in range(LABEL_ROWS)
                for x0, x1 in sides
                if _free(placed, f, r, mx, x0, x1)
            ),
            None,
        )
        if spot is not None:
            placed.append((m, *spot))
    return placed


def _free(
    placed: list[tuple[Mark, int, float, float]],
    f: _Frame,
    row: int,
    mx: float,
    x0: float,
    x1: float,
) -> bool:
    """A label at [x0, x1] in ``row`` for a line at ``mx`` overlaps no placed label, crosses no
    placed line that reaches its row, and its own line crosses no label below it."""
    for m, r, a, b in placed:
        other_x = f.x(m.t_s)
        if r == row and not (x0 > b + 4 or x1 < a - 4):
            return False
        if r >= row and x0 - 2 <= other_x <= x1 + 2:  # that line runs up through this row
            return False
        if r < row and a - 2 <= mx <= b + 2:  # this line would run up through that label
            return False
    return True


def _marks(f: _Frame, marks: Sequence[Mark]) -> list[str]:
    """A vertical line per marker, drawn up to its label's row, and the label."""
    out = []
    labelled = {id(m): (row, x0, x1) for m, row, x0, x1 in label_boxes(f, marks)}
    for m in marks:
        mx = f.x(m.t_s)
        dash = ' stroke-dasharray="4 3"' if m.kind == "epoch" else ""
        row, x0, x1 = labelled.get(id(m), (None, 0.0, 0.0))
        y_top = f.top if row is None else f.top - 3 - 13 * row - LABEL_PX
        out.append(
            f'<line class="mark-{m.kind}" x1="{mx:.1f}" y1="{y_top:.1f}" x2="{mx:.1f}"'
            f' y2="{f.top + f.ph}" stroke="{MARK_COLOR[m.kind]}" stroke-width="1.2"{dash}/>'
        )
        if row is not None:
            anchor = "start" if x0 > mx else "end"
            ax = x0 if anchor == "start" else x1
            out.append(
                f'<text class="label-{m.kind}" x="{ax:.1f}" y="{f.top - 5 - 13 * row}"'
                f' font-size="{LABEL_PX}" text-anchor="{anchor}" fill="{MARK_COLOR[m.kind]}">'
                f"{html.escape(m.label)}</text>"
            )
    return out


def step_points(f: _Frame, t_s: Sequence[float], values: Sequence[float]) -> str:
    """``values[i]`` held over (t[i-1], t[i]]: a step line, from the first time to the last."""
    n = min(len(t_s), len(values))
    if n == 0:
        return ""
    pts = [(t_s[0], values[min(1, n - 1)])]
    for i in range(1, n):
        pts += [(t_s[i - 1], values[i]), (t_s[i], values[i])]
    return " ".join(f"{f.x(t):.1f},{f.y(p):.1f}" for t, p in pts)


def _series(f: _Frame, lines: Sequence[Line]) -> list[str]:
    """One step line per series and its legend entry beside the plot."""
    out = []
    for i, line in enumerate(lines):
        color = COLORS[i % len(COLORS)]
        pts = step_points(f, line.t_s, line.values)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>')
        lx, ly = f.left + f.pw + 16, f.top + 8 + 18 * i
        out.append(
            f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{color}"/>'
            f'<text x="{lx + 18}" y="{ly + 10}">{html.escape(line.label)}</text>'
        )
    return out


def _band_legend(f: _Frame, bands: Sequence[Band], below: int) -> list[str]:
    """Legend entries for the kinds of band shown, under the series' entries."""
    out = []
    kinds = [k for k in ("training", "evaluation") if any(b.kind == k for b in bands)]
    for j, kind in enumerate(kinds):
        lx, ly = f.left + f.pw + 16, f.top + 8 + 18 * (below + j) + 6
        opacity = 0.15 if kind == "training" else 0.35
        out.append(
            f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{BAND_COLOR[kind]}"'
            f' fill-opacity="{opacity}" stroke="{BAND_COLOR[kind]}"/>'
            f'<text x="{lx + 18}" y="{ly + 10}" fill="#555">{kind}</text>'
        )
    return out


def svg_file(plot: Plot) -> str:
    """A standalone ``.svg`` file's text."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg(plot) + "\n"


def write_png(plot: Plot, path: Path) -> bool:
    """The chart as PNG with matplotlib; False when matplotlib is not installed."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(11, 4), dpi=DPI)
    for b in plot.bands:
        alpha = 0.07 if b.kind == "training" else 0.22
        ax.axvspan(b.t0_s, b.t1_s, color=BAND_COLOR[b.kind], alpha=alpha, lw=0)
    for line in plot.lines:
        ax.step(line.t_s, line.values, where="pre", label=line.label)
    for m in plot.marks:
        ax.axvline(m.t_s, color=MARK_COLOR[m.kind], linestyle="--" if m.kind == "epoch" else "-")
    ax.set_xlim(0, plot.t_end_s)
    ax.set_ylim(0, plot.y_max_w)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("power (W)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    # room above the axes for the label rows, then the same placement as the SVG's
    fig.tight_layout(rect=(0, 0, 1, 1 - (16 + 13 * LABEL_ROWS) / (4 * DPI)))
    _png_labels(ax, plot)
    png = io.BytesIO()  # drawn in memory: the file is written only by write_private
    try:
        fig.savefig(png, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    write_private(path, png.getvalue())
    return True


def _png_labels(ax: Any, plot: Plot) -> None:
    """The markers' labels above matplotlib axes ``ax``, placed as in the SVG (``label_boxes``
    on the axes' pixel extent)."""
    box = ax.get_window_extent()
    f = _Frame(box.x0, 0.0, box.width, 1.0, max(plot.t_end_s, 1e-9), 1.0)
    for m, row, x0, _x1 in label_boxes(f, plot.marks):
        after = x0 > f.x(m.t_s)
        ax.annotate(
            m.label,
            (m.t_s, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3 if after else -3, 5 + 13 * row),
            textcoords="offset pixels",
            fontsize=LABEL_PX * 72 / DPI,  # the SVG's pixel size at this resolution
            color=MARK_COLOR[m.kind],
            ha="left" if after else "right",
            va="bottom",
        )
