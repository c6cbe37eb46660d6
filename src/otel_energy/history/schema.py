"""What a ledger row is: the ``RunRow`` dataclass, its columns and the SQL that stores it.

A row read from a ledger written by a newer version keeps only the columns this version knows
(forward compatible); rows are keyed by ``run_id`` (``ON CONFLICT (run_id) DO NOTHING``), so
merging a queued row twice stores it once.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

TABLE = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    command TEXT NOT NULL,
    job_id TEXT,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    rank INTEGER,
    started_at TEXT NOT NULL,
    duration_s REAL NOT NULL,
    energy_j REAL NOT NULL,
    energy_by_type TEXT NOT NULL,
    co2e_g REAL NOT NULL,
    intensity_g_per_kwh REAL,
    intensity_source TEXT,
    estimated INTEGER NOT NULL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    timeline TEXT NOT NULL
)"""
INDEX = "CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at)"


def new_run_id() -> str:
    return uuid.uuid4().hex


@dataclass
class RunRow:
    """One run. SI units: ``duration_s``, ``energy_j`` (by ``hw.type`` too), ``co2e_g``.

    ``kind``: ``command`` (``otel-energy run``), ``train`` (a Trainer run) or ``process`` (an
    instrumented process that trained nothing). ``status``: ``ok``, ``error`` or ``exit``
    (a process ended; its exit status is unknown at exit). ``timeline``: decimated power per
    device, ``{"t_s": [...], "power_w": {hw_id: [...]}, "names": {hw_id: "gpu NAME"}}`` (labels
    from ``report.model.device_label``).
    """

    kind: str
    command: str
    started_at: str
    duration_s: float
    energy_j: float
    co2e_g: float
    status: str
    energy_by_type: dict[str, float] = field(default_factory=dict)
    intensity_g_per_kwh: float | None = None
    intensity_source: str | None = None
    estimated: bool = False
    exit_code: int | None = None
    job_id: str | None = None
    rank: int | None = None
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    run_id: str = field(default_factory=new_run_id)
    timeline: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    @classmethod
    def from_db(cls, r: sqlite3.Row | Mapping[str, Any]) -> RunRow:
        """A row as stored (JSON columns as text). Columns this version does not know (a ledger
        written by a newer one) are ignored.

        Raises:
            ValueError, TypeError: a column is missing or does not parse.
        """
        d = {k: v for k, v in dict(r).items() if k in FIELDS}
        for key in ("energy_by_type", "timeline"):
            if isinstance(d.get(key), str):
                d[key] = json.loads(d[key])
        d["estimated"] = bool(d.get("estimated"))
        return cls(**d)

    def to_dict(self, timeline: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not timeline:
            d.pop("timeline")
        return d

    def to_db(self) -> dict[str, Any]:
        """The columns to insert: JSON columns as text, no ``id``."""
        d = self.to_dict(timeline=True)
        d.pop("id")
        d["energy_by_type"] = json.dumps(d["energy_by_type"])
        d["timeline"] = json.dumps(d["timeline"], separators=(",", ":"))
        d["estimated"] = int(d["estimated"])
        return d


FIELDS = frozenset(f.name for f in fields(RunRow))
COLUMNS = tuple(f.name for f in fields(RunRow) if f.name != "id")
INSERT = (
    f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"
    " ON CONFLICT (run_id) DO NOTHING"
)
"""A run already stored (a queued row merged twice) is skipped; any other constraint (a newer
schema's column we do not fill) still fails: ``OR IGNORE`` would drop such a row silently."""
