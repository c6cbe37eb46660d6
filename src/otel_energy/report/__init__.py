"""The report of a measured run and its renderings.

Every joule of the command is accounted for: the run's one recorded series (``series``) gives
each device's energy and the cumulative curve; the training's own spans split the run into phases
(``phases``) that add up to the total by construction. ``model`` is the typed report built from
them; ``summary`` (text), ``chart`` (every picture), ``pages`` (the run page and the comparison
page) and the JSON file below render it. Files are written by ``safety.files.write_private``.
"""

from __future__ import annotations

import json
from pathlib import Path

from otel_energy.report.model import RunReport
from otel_energy.safety.files import write_private

__all__ = ["write_json"]


def write_json(report: RunReport, path: Path) -> None:
    """The report as ``otel-energy-report.json``, written by ``safety.files.write_private``
    (0600, atomic, no link followed)."""
    write_private(path, json.dumps(report.to_json(), indent=2, default=str) + "\n")
