"""Where ``otel-energy run`` writes its report and picture (a failed command's next to them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otel_energy.report import write_json
from otel_energy.report.chart import write_html, write_png

if TYPE_CHECKING:
    from otel_energy.cli.run import RunOptions


def failed_path(path: Path) -> Path:
    """Where a failed command's report goes: ``report.json`` -> ``report.failed.json``."""
    return path.with_name(f"{path.stem}.failed{path.suffix}")


def write_outputs(report: dict[str, Any], options: RunOptions) -> list[str]:
    """Write the report and the picture; returns lines saying where they are (or why not).

    A failed command (non-zero exit) writes next to the requested paths (``*.failed.json``,
    ``*.failed.html``), so the report of the last good run is never overwritten by a failure.
    Files are replaced atomically; a write error is one line, never an exception: the command's
    exit status is what ``otel-energy run`` returns either way.
    """
    failed = report["exit_code"] != 0
    lines = []
    report_path = failed_path(options.report_path) if failed else options.report_path
    lines.append(_write("report: ", report_path, lambda p: write_json(report, p)))
    plot = options.plot_path
    if plot is not None:
        plot = failed_path(plot) if failed else plot
        if plot.suffix.lower() == ".png":
            try:
                drawn = write_png(report, plot)
            except OSError as exc:
                lines.append(f"picture: not written, {plot}: {exc.strerror or exc}")
            else:
                if drawn:
                    lines.append(f"picture: {plot.resolve()}")
                else:
                    html_path = plot.with_suffix(".html")
                    line = _write("picture:", html_path, lambda p: write_html(report, p))
                    lines.append(line + " (PNG needs matplotlib: pip install '.[plot]')")
        else:
            lines.append(_write("picture:", plot, lambda p: write_html(report, p)))
    if failed and options.report_path.exists():
        lines.append(f"kept:    {options.report_path.resolve()} (the last successful run's report)")
    return lines


def _write(what: str, path: Path, write: Callable[[Path], None]) -> str:
    try:
        write(path)
    except OSError as exc:
        return f"{what} not written, {path}: {exc.strerror or exc}"
    return f"{what} {path.resolve()}"
