"""``otel-energy history`` (list, compare ledger runs) and ``otel-energy report RUN...`` (a page).

The page (``report.pages.comparison_page``) is self-contained HTML: the runs side by side in a
table, their total power on one time axis, and each run's per-device power on shared axes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from otel_energy.config import variables as ev
from otel_energy.history.errors import LedgerError
from otel_energy.history.ledger import Ledger, ledger_path
from otel_energy.history.schema import RunRow
from otel_energy.report.pages import comparison_page
from otel_energy.safety.files import write_private
from otel_energy.safety.redact import redact_command_line
from otel_energy.safety.terminal import printable


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


def _note_queued(ledger: Ledger) -> None:
    """Say when runs wait in the side file (the ledger was locked or unwritable when they
    ended, and this read could not merge them)."""
    n = ledger.pending_count()
    if n:
        print(
            f"otel-energy: {n} more run(s) wait in {printable(str(ledger.path))}.pending (the"
            " ledger was busy or"
            " unwritable when they ended); the next run's write adds them",
            file=sys.stderr,
        )


def cmd_history(args: argparse.Namespace) -> int:
    ledger = _ledger()
    if ledger is None:
        return 2
    if args.limit < 1:
        print("otel-energy history: --limit must be >= 1", file=sys.stderr)
        return 2
    try:
        rows = _select(ledger, args.runs) if args.runs else ledger.rows(args.limit)
    except LedgerError as exc:
        print(printable(str(exc)), file=sys.stderr)
        return 1
    if rows is None:
        return 1
    _note_queued(ledger)
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


def cmd_report(args: argparse.Namespace) -> int:
    ledger = _ledger()
    if ledger is None:
        return 2
    try:
        rows = _select(ledger, args.runs)
    except LedgerError as exc:
        print(printable(str(exc)), file=sys.stderr)
        return 1
    if rows is None:
        return 1
    shown = printable(str(args.output))
    if not args.output.resolve().parent.is_dir():
        print(f"otel-energy report: directory of {shown} does not exist", file=sys.stderr)
        return 2
    try:
        write_private(args.output, comparison_page(_redacted(rows)))
    except OSError as exc:
        print(f"otel-energy report: not written, {shown}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"page: {printable(str(args.output.resolve()))}", file=sys.stderr)
    return 0


def main(args: argparse.Namespace) -> int:
    """Dispatch ``history`` or ``report``."""
    return cmd_history(args) if args.command == "history" else cmd_report(args)
