"""Where ``otel-energy run`` writes its report and picture (a failed command's next to them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from otel_energy.report import write_json
from otel_energy.report.chart import svg_file, write_png
from otel_energy.report.model import RunReport
from otel_energy.report.pages import report_plot, write_html
from otel_energy.safety.files import write_private

if TYPE_CHECKING:
    from otel_energy.cli.run import RunOptions


def failed_path(path: Path) -> Path:
    """Where a failed command's report goes: ``report.json`` -> ``report.failed.json``."""
    return path.with_name(f"{path.stem}.failed{path.suffix}")


def write_outputs(report: RunReport, options: RunOptions) -> list[str]:
    """Write the report and the picture; returns lines saying where they are (or why not).

    The picture's format follows its suffix: ``.svg`` the chart alone (SVG), ``.png`` a PNG
    (matplotlib; without it the HTML page beside it, said in the line), anything else the HTML
    page. A failed command (non-zero exit) writes next to the requested paths (``*.failed.json``,
    ``*.failed.html``), so the report of the last good run is never overwritten by a failure.
    Files are replaced atomically; a write error is one line, never an exception: the command's
    exit status is what ``otel-energy run`` returns either way.
    """
    failed = report.exit_code != 0
    lines = []
    report_path = failed_path(options.report_path) if failed else options.report_path
    lines.append(_write("report: ", report_path, lambda p: write_json(report, p)))
    if options.plot_path is not None:
        plot = failed_path(options.plot_path) if failed else options.plot_path
        lines.append(_picture(report, plot))
    if failed and options.report_path.exists():
        lines.append(f"kept:    {options.report_path.resolve()} (the last successful run's report)")
    return lines


def _picture(report: RunReport, plot: Path) -> str:
    """Write the picture in the format of ``plot``'s suffix; the line saying where."""
    suffix = plot.suffix.lower()
    if suffix == ".svg":
        return _write("picture:", plot, lambda p: write_private(p, svg_file(report_plot(report))))
    if suffix != ".png":
        return _write("picture:", plot, lambda p: write_html(report, p))
    try:
        drawn = write_png(report_plot(report), plot)
    except OSError as exc:
        return f"picture: not written, {plot}: {exc.strerror or exc}"
    if drawn:
        return f"picture: {plot.resolve()}"
    line = _write("picture:", plot.with_suffix(".html"), lambda p: write_html(report, p))
    return line + " (PNG needs matplotlib: pip install '.[plot]')"


def _write(what: str, path: Path, write: Callable[[Path], None]) -> str:
    try:
        write(path)
    except OSError as exc:
        return f"{what} not written, {path}: {exc.strerror or exc}"
    return f"{what} {path.resolve()}"
