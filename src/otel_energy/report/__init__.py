"""The report of a measured run and its renderings.

Every joule of the command is accounted for: the run's one recorded series (``series``) gives
each device's energy and the cumulative curve; the training's own spans split the run into phases
(``phases``) that add up to the total by construction. ``model`` is the typed report built from
them; ``summary`` (text), ``chart`` (every picture), ``pages`` (the run page and the comparison
page) and the JSON file below render it. This module writes files.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from otel_energy.report.model import RunReport

__all__ = ["write_atomic", "write_json"]


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


def write_json(report: RunReport, path: Path) -> None:
    """The report as ``otel-energy-report.json`` (written atomically)."""
    write_atomic(path, json.dumps(report.to_json(), indent=2, default=str) + "\n")
