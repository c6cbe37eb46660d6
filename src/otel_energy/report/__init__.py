"""The end-of-run report of ``otel-energy run``: a JSON document and a readable summary.

Every joule of the command is accounted for: the parent measures the whole machine from the
command's start to its end, and the training's own spans (run, epochs, evaluations) split that
interval into phases (before training, each epoch, evaluation, the rest of training, after
training) that add up to the total by construction (each phase is a difference of one cumulative
series). The parts: ``timeline`` (the series), ``phases`` (the split), ``summary`` (the text),
``chart`` (the picture); this module writes the files and keeps the old names importable.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from otel_energy.report.phases import epochs_from_spans, phases
from otel_energy.report.summary import device_label, format_summary, scope_line
from otel_energy.report.timeline import Timeline

__all__ = [
    "Timeline",
    "device_label",
    "epochs_from_spans",
    "format_summary",
    "phases",
    "scope_line",
    "write_atomic",
    "write_json",
]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the whole new one, never a
    part: a temporary file in the same directory, then a rename. On failure nothing is left.

    Raises:
        OSError: the file could not be written (the old one, if any, is untouched).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(report: dict[str, Any], path: Path) -> None:
    write_atomic(path, json.dumps(report, indent=2, default=str) + "\n")
