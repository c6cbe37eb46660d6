"""The last good live intensity on disk, so a restart without network still has it.

One JSON file per API and zone; written atomically (a crash never leaves half a file) and
read defensively (a file that is not ours or is damaged is ignored with one warning).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from otel_energy.carbon import IntensityPoint
from otel_energy.carbon.http import ProviderError, in_range
from otel_energy.safety.files import private_dir, write_private

_log = logging.getLogger("otel_energy.carbon.live")  # the refresher's logger, as before the split

KEEP_POINTS = 24


class IntensityCache:
    """The cache file of one API client (``key``) under ``cache_dir`` (None: no persistence)."""

    def __init__(self, cache_dir: Path | None, key: str, source: str) -> None:
        self.key, self.source = key, source
        self.path = (
            None
            if cache_dir is None
            else cache_dir / f"intensity-{re.sub(r'[^A-Za-z0-9_.-]+', '_', key)}.json"
        )
        self._failing = False  # said once per failing spell, not at every refresh

    def save(self, points: Sequence[IntensityPoint]) -> None:
        """Keep the last ``KEEP_POINTS`` points; one warning per failing spell, never raises."""
        if self.path is None:
            return
        try:
            private_dir(self.path.parent)
            # a fresh exclusive temporary file, then a rename: ranks sharing the directory never
            # write into each other's file, and a link planted there is never written through
            write_private(self.path, json.dumps(self._document(points)))
        except OSError as exc:
            if not self._failing:
                _log.warning(
                    "otel-energy: cannot keep the last good carbon intensity in %s (%s: %s); a"
                    " restart without network will use the table until it can. Set"
                    " OTEL_PYTHON_ENERGY_CACHE_DIR to a writable directory with free space.",
                    self.path.parent,
                    type(exc).__name__,
                    exc.strerror or exc,
                )
            self._failing = True
            return
        self._failing = False

    def _document(self, points: Sequence[IntensityPoint]) -> dict[str, Any]:
        return {
            "key": self.key,
            "source": self.source,
            "points": [
                {"at": p.at.isoformat(), "g_per_kwh": p.g_per_kwh, "kind": p.kind}
                for p in points[-KEEP_POINTS:]
            ],
        }

    def load(self) -> list[IntensityPoint]:
        """The cached points (empty when there is no usable file)."""
        if self.path is None or not self.path.exists():
            return []
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
            points = [
                IntensityPoint(
                    datetime.fromisoformat(p["at"]), float(p["g_per_kwh"]), str(p["kind"])
                )
                for p in data["points"]
            ]
            if any(p.at.tzinfo is None for p in points):
                raise ValueError("a timestamp without a time zone")
            return in_range(points, "cache")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ProviderError) as exc:
            # not ours or damaged: start from the table; the next good refresh rewrites it
            _log.warning("otel-energy: ignoring the carbon intensity cache %s: %s", self.path, exc)
            return []
