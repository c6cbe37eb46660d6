"""The end-of-run report of ``otel-energy run``: a JSON document and a readable summary.

Every joule of the command is accounted for: the parent measures the whole machine from the
command's start to its end, and the training's own spans (run, epochs, evaluations) split that
interval into phases (before training, each epoch, evaluation, the rest of training, after
training) that add up to the total by construction (each phase is a difference of one cumulative
series). The parts: ``timeline`` (the series), ``phases`` (the split), ``summary`` (the text),
``chart`` (the picture); this module writes the files and keeps the old names importable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from otel_energy.report.phases import epochs_from_spans, phases
from otel_energy.report.summary import device_label, format_summary, scope_line
from otel_energy.report.timeline import Timeline
from otel_energy.safety.files import write_private

__all__ = [
    "Timeline",
    "device_label",
    "epochs_from_spans",
    "format_summary",
    "phases",
    "scope_line",
    "write_json",
]


def write_json(report: dict[str, Any], path: Path) -> None:
    """The report as JSON, written by ``safety.files.write_private`` (0600, atomic, no link
    followed)."""
    write_private(path, json.dumps(report, indent=2, default=str) + "\n")
