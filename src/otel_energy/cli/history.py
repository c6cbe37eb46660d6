"""``otel-energy history`` (list, compare ledger runs) and ``otel-energy report RUN...`` (a page).

The page is self-contained HTML (inline SVG, no JavaScript, no network): the runs side by side in a
table, their total power on one shared time axis, and each run's per-device power curves, drawn
with the run report's own chart (``report.svg_chart``).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path
from typing import Any

from otel_energy.config import variables as ev
from otel_energy.history.ledger import Ledger, RunRow, ledger_path
from otel_energy.report.chart import svg_chart
from otel_energy.safety.files import write_private
from otel_energy.safety.redact import redact_command_line
from otel_energy.safety.terminal import printable
from otel_energy.telemetry import attributes as A

OVERLAY_POINTS = 300


def add_parsers(sub: Any) -> None:
    """Add the ``history`` and ``report`` subcommands to the CLI's subparsers."""
    p = sub.add_parser(
        "history",
        help="list the runs in the run ledger, or compare the runs given",
        description="Runs recorded by otel-energy run and instrumented runs (newest last)."
        " Give run ids to compare them with the first one.",
    )
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or run_id prefixes)")
    p.add_argument("--limit", type=int, default=20, help="newest N runs (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser(
        "report",
        help="render runs from the ledger side by side as a page with their power curves",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run ids (or run_id prefixes)")
    p.add_argument(
        "--output",
        "-o",
        type=Path,
        default=Path("otel-energy-compare.html"),
        help="page path (default: %(default)s)",
    )


def _ledger() -> Ledger | None:
    path = ledger_path()
    if path is None:
        print(
            f"otel-energy: the run ledger is off ({ev.OTEL_PYTHON_ENERGY_LEDGER}=off)",
            file=sys.stderr,
        )
        return None
    return Ledger(path)


def _select(ledger: Ledger, keys: list[str]) -> list[RunRow] | None:
    try:
        return ledger.find(keys)
    except KeyError as exc:
        print(
            f"otel-energy: no single run matches {exc.args[0]!r} in {printable(str(ledger.path))}"
            " (see otel-energy history)",
            file=sys.stderr,
        )
        return None


def _pct(value: float, base: float) -> str:
    return f"{(value / base - 1) * 100:+.0f}%" if base else "-"


def format_history(rows: list[RunRow], compare: bool) -> str:
    """The runs as a table; with ``compare``, each run's change against the first."""
    head = (
        f"{'id':>5} {'started (UTC)':19} {'kind':7} {'status':6} {'duration s':>10}"
        f" {'energy J':>11} {'gpu J':>10} {'cpu J':>9} {'mem J':>8} {'CO2e g':>9}"
    )
    lines = [head + (f" {'energy':>7} {'CO2e':>7} {'time':>7}" if compare else "") + "  command"]
    base = rows[0] if rows else None
    for r in rows:
        t = r.energy_by_type
        line = (
            f"{r.id!s:>5} {r.started_at[:19].replace('T', ' '):19} {r.kind:7} {r.status:6}"
            f" {r.duration_s:10.1f} {r.energy_j:11.1f} {t.get('gpu', 0.0):10.1f}"
            f" {t.get('cpu', 0.0):9.1f} {t.get('memory', 0.0):8.1f} {r.co2e_g:9.3f}"
        )
        if compare and base is not None:
            line += (
                f" {_pct(r.energy_j, base.energy_j):>7} {_pct(r.co2e_g, base.co2e_g):>7}"
                f" {_pct(r.duration_s, base.duration_s):>7}"
            )
        lines.append(f"{line}  {printable(' '.join(r.command.split())[:60])}")
    if not rows:
        lines.append("(no runs recorded yet: otel-energy run -- python train.py)")
    elif compare:
        lines.append(f"(changes are against run {base.id if base else ''})")
    return "\n".join(lines)


def cmd_history(args: argparse.Namespace) -> int:
    ledger = _ledger()
    if ledger is None:
        return 2
    if args.limit < 1:
        print("otel-energy history: --limit must be >= 1", file=sys.stderr)
        return 2
    rows = _select(ledger, args.runs) if args.runs else ledger.rows(args.limit)
    if rows is None:
        return 1
    rows = _redacted(rows)
    if args.json:
        print(json.dumps({"ledger": str(ledger.path), "runs": [r.to_dict() for r in rows]}))
    else:
        print(format_history(rows, compare=len(args.runs) > 1))
    return 0


def _redacted(rows: list[RunRow]) -> list[RunRow]:
    """``rows`` with their command lines redacted: rows written before redaction existed hold
    credentials, and neither the terminal, ``--json`` nor a page should show them."""
    for r in rows:
        r.command = redact_command_line(r.command)
    return rows


def _label(r: RunRow) -> str:
    return f"run {r.id}"


def _total_power(r: RunRow) -> tuple[list[float], list[float]]:
    ts: list[float] = r.timeline.get("t_s", [])
    curves = list(r.timeline.get("power_w", {}).values())
    return ts, [sum(c[i] for c in curves if i < len(c)) for i in range(len(ts))]


def _resample(ts: list[float], ps: list[float], grid: list[float]) -> list[float]:
    """Power held from each point to the next, on ``grid`` up to the run's last point."""
    out, j = [], 0
    for g in grid:
        if not ts or g > ts[-1]:
            break
        while j + 1 < len(ts) and ts[j + 1] <= g:
            j += 1
        out.append(ps[j])
    return out


def overlay_chart(rows: list[RunRow]) -> str:
    """Every run's total power on one time axis (s since each run began), one colour each."""
    t_max = max([r.duration_s for r in rows] + [1e-9])
    grid = [t_max * i / (OVERLAY_POINTS - 1) for i in range(OVERLAY_POINTS)]
    series = {}
    devices = []
    for r in rows:
        key = f"{r.id:08d}"
        series[key] = _resample(*_total_power(r), grid)
        devices.append({A.HW_ID: key, A.HW_TYPE: _label(r), A.HW_NAME: r.command[:50]})
    chart = {
        "timeline": {"t_s": grid, "power_w": series},
        "devices": devices,
        "duration_s": t_max,
        "training": {"epochs": []},
    }
    return svg_chart(chart, width=1000, height=360)


def run_chart(r: RunRow) -> str:
    """One run's per-device power curves (the run report's chart)."""
    names: dict[str, str] = r.timeline.get("names", {})
    devices = []
    for hw_id in r.timeline.get("power_w", {}):
        # names are display labels already (``report.device_label``): the type is in them
        devices.append({A.HW_ID: hw_id, A.HW_TYPE: "", A.HW_NAME: names.get(hw_id, hw_id)})
    chart = {
        "timeline": {"t_s": r.timeline.get("t_s", []), "power_w": r.timeline.get("power_w", {})},
        "devices": devices,
        "duration_s": r.duration_s,
        "training": {"epochs": []},
    }
    return svg_chart(chart, width=480, height=260)


FIELDS: tuple[tuple[str, Any], ...] = (
    ("command", lambda r: r.command),
    ("kind", lambda r: r.kind),
    ("status", lambda r: r.status + (f" (exit {r.exit_code})" if r.exit_code is not None else "")),
    ("started (UTC)", lambda r: r.started_at[:19].replace("T", " ")),
    ("job id", lambda r: r.job_id or "-"),
    ("host / rank", lambda r: f"{r.host} / {'-' if r.rank is None else r.rank}"),
    ("duration", lambda r: f"{r.duration_s:.1f} s"),
    ("energy", lambda r: f"{r.energy_j:.1f} J" + (" (estimated)" if r.estimated else "")),
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


def render_page(rows: list[RunRow]) -> str:
    """The comparison page: a table with a column per run, the overlay, each run's chart."""
    head = "".join(f"<th>{html.escape(_label(r))}</th>" for r in rows)
    body = "".join(
        f"<tr><th>{html.escape(name)}</th>"
        + "".join(f"<td>{html.escape(str(get(r)))}</td>" for r in rows)
        + "</tr>"
        for name, get in FIELDS
    )
    charts = "".join(
        f"<figure><figcaption>{html.escape(_label(r))}: {html.escape(r.command[:70])}"
        f"</figcaption>{run_chart(r)}</figure>"
        for r in rows
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
{overlay_chart(rows)}
<h2>Power per device, run by run</h2>
<div class="runs">{charts}</div>
</body></html>
"""


def cmd_report(args: argparse.Namespace) -> int:
    ledger = _ledger()
    if ledger is None:
        return 2
    rows = _select(ledger, args.runs)
    if rows is None:
        return 1
    shown = printable(str(args.output))
    if not args.output.resolve().parent.is_dir():
        print(f"otel-energy report: directory of {shown} does not exist", file=sys.stderr)
        return 2
    try:
        write_private(args.output, render_page(_redacted(rows)))
    except OSError as exc:
        print(f"otel-energy report: not written, {shown}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"page: {printable(str(args.output.resolve()))}", file=sys.stderr)
    return 0


def main(args: argparse.Namespace) -> int:
    """Dispatch ``history`` or ``report``."""
    return cmd_history(args) if args.command == "history" else cmd_report(args)
