"""The pages: a run's report page (``otel-energy run --plot``) and the comparison page of ledger
runs (``otel-energy report RUN...``). Self-contained HTML with inline SVG (no JavaScript, no
network); every chart is a ``chart.Plot`` drawn by ``report.chart``.
"""

from __future__ import annotations

import html
import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from otel_energy.history.schema import RunRow
from otel_energy.report import trust
from otel_energy.report.chart import Band, Line, Mark, Plot, svg, text_width_px
from otel_energy.report.model import RunReport
from otel_energy.report.summary import format_summary
from otel_energy.safety.files import write_private
from otel_energy.safety.redact import redact_args

OVERLAY_POINTS = 300
LEGEND_PX = 12


def report_plot(report: RunReport) -> Plot:
    """The run's power per device with training start and end, epochs and evaluations marked."""
    names = {d.hw_id: d.label for d in report.devices}
    tl = report.timeline
    lines = [Line(names.get(k, k), tl.t_s, v) for k, v in sorted(tl.power_w.items())]
    if tl.host_power_w is not None:  # drawn beside the components, never added to them
        lines.append(Line("whole node (meter)", tl.t_s, tl.host_power_w))
    by_phase = {p.phase: p for p in report.phases}
    marks, bands = [], []
    if "before_training" in by_phase:
        marks.append(Mark(by_phase["before_training"].end_s, "training starts", "start"))
    marks += [
        Mark(p.start_s, f"epoch {p.epoch}", "epoch") for p in report.phases if p.phase == "epoch"
    ]
    if "after_training" in by_phase:
        marks.append(Mark(by_phase["after_training"].start_s, "training ends", "end"))
    if "before_training" in by_phase and "after_training" in by_phase:
        t0, t1 = by_phase["before_training"].end_s, by_phase["after_training"].start_s
        bands.append(Band(t0, t1, "training"))
    bands += [Band(a, b, "evaluation") for a, b in report.training.evaluation_windows_s]
    return Plot(lines, report.duration_s, marks, bands)


def run_page(report: RunReport) -> str:
    """A self-contained page: headline, chart and the summary table."""
    title = html.escape("otel-energy: " + shlex.join(redact_args(report.command)))
    t = report.total
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}}pre{{background:#f4f4f4;padding:12px}}
.scope{{color:#555}}.pass{{color:#1a7f37}}.fail{{color:#c62828}}</style>
</head><body>
<h1>{title}</h1>
<p><b>{t.energy_j:.1f} J{trust.band_text(t, "&plusmn;")}, {t.co2e_g:.4f} gCO2e</b> in
{report.duration_s:.1f} s, average {t.avg_power_w:.1f} W.</p>
<p class="scope">{html.escape(report.scope)}</p>
{trust.html_block(report)}
{svg(report_plot(report))}
<pre>{html.escape(format_summary(report))}</pre>
</body></html>
"""


def write_html(report: RunReport, path: Path) -> None:
    write_private(path, run_page(report))


# ---- the comparison page ----


def _label(r: RunRow) -> str:
    return f"run {r.id}"


def short_commands(commands: Sequence[str], max_px: float) -> list[str]:
    """Each command as short as it can be while telling them apart: a program's file name
    instead of its path, the words every command starts with dropped (the interpreter, a shared
    script; never an option's name), then cut in the middle to ``max_px`` at the legend's size."""
    words = [_words(c) for c in commands]
    common = 0
    if len(words) > 1:
        shortest = min(len(w) for w in words)
        while (
            common < shortest - 1
            and not words[0][common].startswith("-")  # an option stays with its value
            and all(w[common] == words[0][common] for w in words)
        ):
            common += 1
    return [_fit(" ".join(w[common:]), max_px) for w in words]


def _words(command: str) -> list[str]:
    try:
        words = shlex.split(command)
    except ValueError:  # an unbalanced quote in a recorded command: split on spaces
        words = command.split()
    return [os.path.basename(w) if os.sep in w and not w.startswith("-") else w for w in words]


def _fit(text: str, max_px: float) -> str:
    """``text``, or its start and end around an ellipsis, within ``max_px``."""
    if text_width_px(text, LEGEND_PX) <= max_px:
        return text
    keep = len(text)
    while (
        keep > 4
        and text_width_px(text[: keep // 2] + "…" + text[-(keep // 2) :], LEGEND_PX) > max_px
    ):
        keep -= 2
    return text[: keep // 2] + "…" + text[-(keep // 2) :]


def _total_power(r: RunRow) -> tuple[list[float], list[float]]:
    ts: list[float] = r.timeline.get("t_s", [])
    curves = list(r.timeline.get("power_w", {}).values())
    return ts, [sum(c[i] for c in curves if i < len(c)) for i in range(len(ts))]


def _resample(ts: list[float], ps: list[float], grid: list[float]) -> list[float]:
    """The step series (``ps[i]`` over (ts[i-1], ts[i]]) on ``grid``, up to its last point."""
    out, j = [], 0
    for g in grid:
        if not ts or g > ts[-1]:
            break
        while j < len(ts) - 1 and ts[j] < g:
            j += 1
        out.append(ps[j])
    return out


def overlay_plot(rows: Sequence[RunRow], legend_w: int) -> Plot:
    """Every run's total power on one time axis (s since each run began), one colour each."""
    t_max = max([r.duration_s for r in rows] + [1e-9])
    grid = [t_max * i / (OVERLAY_POINTS - 1) for i in range(OVERLAY_POINTS)]
    labels = short_commands(
        [r.command for r in rows], legend_w - 30 - text_width_px("run 000: ", LEGEND_PX)
    )
    lines = []
    for r, command in zip(rows, labels, strict=True):
        values = _resample(*_total_power(r), grid)
        lines.append(Line(f"{_label(r)}: {command}", grid[: len(values)], values))
    return Plot(lines, t_max)


def row_plot(r: RunRow, t_end_s: float, y_max_w: float) -> Plot:
    """One run's per-device power, on axes shared with the other runs of the page."""
    names: dict[str, str] = r.timeline.get("names", {})
    ts = r.timeline.get("t_s", [])
    power: dict[str, list[float]] = r.timeline.get("power_w", {})
    lines = [Line(names.get(k, k), ts, v) for k, v in sorted(power.items())]
    return Plot(lines, t_end_s, y_max_w=y_max_w)


def energy_text(r: RunRow) -> str:
    """The run's energy and how much of it an estimate gives (never "estimated" for a run
    that is mostly measured)."""
    text = f"{r.energy_j:.1f} J"
    share = r.timeline.get("measured_share")
    if not r.estimated:
        return text + " (measured)"
    if share is None:  # a row from before the share was recorded
        return text + " (includes estimates)"
    if share <= 0.0:
        return text + " (estimated)"
    return text + f" ({100 * share:.0f}% measured, the rest estimated)"


FIELDS: tuple[tuple[str, Callable[[RunRow], Any]], ...] = (
    ("command", lambda r: r.command),
    ("kind", lambda r: r.kind),
    ("status", lambda r: r.status + (f" (exit {r.exit_code})" if r.exit_code is not None else "")),
    ("started (UTC)", lambda r: r.started_at[:19].replace("T", " ")),
    ("job id", lambda r: r.job_id or "-"),
    ("host / rank", lambda r: f"{r.host} / {'-' if r.rank is None else r.rank}"),
    ("duration", lambda r: f"{r.duration_s:.1f} s"),
    ("energy", energy_text),
    (
        "by device type",
        lambda r: ", ".join(f"{k} {v:.1f} J" for k, v in sorted(r.energy_by_type.items())),
    ),
    ("average power", lambda r: f"{r.energy_j / r.duration_s if r.duration_s else 0:.1f} W"),
    ("CO2e", lambda r: f"{r.co2e_g:.4f} g"),
    (
        "carbon intensity",
        lambda r: f"{r.intensity_g_per_kwh or 0:.0f} g/kWh [{r.intensity_source or '-'}]",
    ),
)


def comparison_page(rows: Sequence[RunRow]) -> str:
    """The runs side by side: a table with a column per run, the overlay of their total power,
    and each run's per-device power on shared axes."""
    head = "".join(f"<th>{html.escape(_label(r))}</th>" for r in rows)
    body = "".join(
        f"<tr><th>{html.escape(name)}</th>"
        + "".join(f"<td>{html.escape(str(get(r)))}</td>" for r in rows)
        + "</tr>"
        for name, get in FIELDS
    )
    t_end = max([r.duration_s for r in rows] + [1e-9])
    curves = [v for r in rows for v in r.timeline.get("power_w", {}).values()]
    y_max = 1.05 * max([max(v, default=0.0) for v in curves] + [1e-9])
    captions = short_commands([r.command for r in rows], 460 - text_width_px("run 000: ", 13))
    charts = "".join(
        f'<figure><figcaption title="{html.escape(r.command)}">{html.escape(_label(r))}:'
        f" {html.escape(caption)}</figcaption>"
        f"{svg(row_plot(r, t_end, y_max), width=480, height=260)}</figure>"
        for r, caption in zip(rows, captions, strict=True)
    )
    title = "otel-energy: " + ", ".join(_label(r) for r in rows)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:sans-serif;margin:24px;color:#222}}
table{{border-collapse:collapse;margin-bottom:20px}}
th,td{{border:1px solid #ccc;padding:4px 10px;text-align:left;font-size:13px;vertical-align:top}}
thead th{{background:#eee}} tbody th{{background:#f7f7f7;font-weight:normal;color:#555}}
td{{max-width:320px;word-break:break-all}}
.runs{{display:flex;flex-wrap:wrap;gap:16px}} figure{{margin:0}}
figcaption{{font-size:13px;margin-bottom:4px;max-width:480px}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Total power, runs overlaid (time since each run began)</h2>
{svg(overlay_plot(rows, 330), width=1000, height=360, legend_w=330)}
<h2>Power per device, run by run (same axes)</h2>
<div class="runs">{charts}</div>
</body></html>
"""
