"""The run ledger: one SQLite row per measured run, in a per-user data directory.

``otel-energy run`` (the parent, which knows the exit status and the whole node's energy) and
instrumented runs (a Trainer run at its end, or the process at exit when it trained nothing)
append rows; ``otel-energy history`` and ``otel-energy report`` read them.

Several ranks and several runs write at once: the database is in WAL mode (readers never block
the writer), each row is one short ``BEGIN IMMEDIATE`` transaction, and a busy timeout makes a
writer wait its turn rather than fail. Writing never raises into the caller: a ledger that cannot
be written is one log line with the fix.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from otel_energy.config import variables as ev
from otel_energy.safety.files import private_dir, private_file

_log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 60.0
"""How long a writer waits for another's transaction (each takes milliseconds; 60 s only bounds a
stuck writer)."""

MIN_DIGIT_PREFIX = 8
"""Digits a ``run_id`` prefix needs to be tried when it is also a possible ``id`` (the length
of a UUID's first group)."""


SCHEMA = """
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
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
"""


def ledger_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the ledger is: ``OTEL_PYTHON_ENERGY_LEDGER``, else the XDG data dir; None if off."""
    env = os.environ if environ is None else environ
    raw = env.get(ev.OTEL_PYTHON_ENERGY_LEDGER, "").strip()
    if raw.lower() == "off":
        return None
    if raw:
        return Path(raw).expanduser()
    data = env.get("XDG_DATA_HOME", "").strip()
    base = Path(data) if data else Path("~/.local/share").expanduser()
    return base / "otel-energy" / "runs.sqlite"


def new_run_id() -> str:
    return uuid.uuid4().hex


@dataclass
class RunRow:
    """One run. SI units: ``duration_s``, ``energy_j`` (by ``hw.type`` too), ``co2e_g``.

    ``kind``: ``command`` (``otel-energy run``), ``train`` (a Trainer run) or ``process`` (an
    instrumented process that trained nothing). ``status``: ``ok``, ``error`` or ``exit``
    (a process ended; its exit status is unknown at exit). ``timeline``: decimated power per
    device, ``{"t_s": [...], "power_w": {hw_id: [...]}, "names": {hw_id: "gpu NAME"}}`` (labels
    from ``report.device_label``).
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
    def from_db(cls, r: sqlite3.Row) -> RunRow:
        d = dict(r)
        d["energy_by_type"] = json.loads(d["energy_by_type"])
        d["timeline"] = json.loads(d["timeline"])
        d["estimated"] = bool(d["estimated"])
        return cls(**d)

    def to_dict(self, timeline: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not timeline:
            d.pop("timeline")
        return d


COLUMNS = tuple(f for f in RunRow.__dataclass_fields__ if f != "id")


class Ledger:
    """The SQLite file at ``path`` (created with its directory on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        # It holds command lines: a new directory is 0700 and the database 0600, created before
        # SQLite opens it (SQLite gives its -wal and -shm files the database's mode).
        private_dir(self.path.parent)
        private_file(self.path)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA)
        return conn

    def append(self, row: RunRow) -> int:
        """Insert ``row`` in its own transaction; returns its ``id``.

        Raises:
            sqlite3.Error, OSError: the file cannot be written (``record`` logs these instead).
        """
        d = row.to_dict(timeline=True)
        d.pop("id")
        d["energy_by_type"] = json.dumps(d["energy_by_type"])
        d["timeline"] = json.dumps(d["timeline"], separators=(",", ":"))
        d["estimated"] = int(d["estimated"])
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                f"INSERT INTO runs ({', '.join(COLUMNS)})"
                f" VALUES ({', '.join(':' + c for c in COLUMNS)})",
                d,
            )
            conn.execute("COMMIT")
            row.id = int(cur.lastrowid or 0)
            return row.id
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def rows(self, limit: int | None = None) -> list[RunRow]:
        """The newest ``limit`` runs (all when None), oldest first."""
        if not self.path.exists():
            return []
        conn = self._connect()
        try:
            sql = "SELECT * FROM runs ORDER BY id DESC" + (" LIMIT ?" if limit else "")
            found = conn.execute(sql, (limit,) if limit else ()).fetchall()
        finally:
            conn.close()
        return [RunRow.from_db(r) for r in reversed(found)]

    def find(self, keys: Sequence[str]) -> list[RunRow]:
        """Runs by ``id`` or by a ``run_id`` prefix, in the order asked. A key of digits is an
        ``id``; when no run has that id and it has at least ``MIN_DIGIT_PREFIX`` digits, it is
        tried as a ``run_id`` prefix.

        Raises:
            KeyError: a key matches no run, or a prefix matches several.
        """
        out = []
        if not self.path.exists():
            raise KeyError(keys[0] if keys else "")
        conn = self._connect()
        try:
            for key in keys:
                found = []
                if key.isdigit():
                    found = conn.execute("SELECT * FROM runs WHERE id = ?", (int(key),)).fetchall()
                # A run_id prefix can be all digits too (a UUID's first 8 hex digits: 2% of
                # runs); a shorter key of digits is an id only, so "99" never names a run by
                # the first characters of its UUID.
                if not found and not (key.isdigit() and len(key) < MIN_DIGIT_PREFIX):
                    found = conn.execute(
                        "SELECT * FROM runs WHERE run_id LIKE ? LIMIT 2", (key + "%",)
                    ).fetchall()
                if len(found) != 1:
                    raise KeyError(key)
                out.append(RunRow.from_db(found[0]))
        finally:
            conn.close()
        return out

    def count_for_process(self, host: str, pid: int, since: str) -> int:
        """Rows written by process ``pid`` on ``host`` for runs started at or after ``since``."""
        if not self.path.exists():
            return 0
        conn = self._connect()
        try:
            (n,) = conn.execute(
                "SELECT count(*) FROM runs WHERE host = ? AND pid = ? AND started_at >= ?",
                (host, pid, since),
            ).fetchone()
        finally:
            conn.close()
        return int(n)


def record(row: RunRow, environ: Mapping[str, str] | None = None) -> int | None:
    """Append ``row`` to the configured ledger; never raises. Its id, or None if not written."""
    path = ledger_path(environ)
    if path is None:
        return None
    try:
        return Ledger(path).append(row)
    except (sqlite3.Error, OSError) as exc:
        _log.error(
            "otel-energy: cannot write the run ledger %s (%s); set %s to a writable file or 'off'.",
            path,
            exc,
            ev.OTEL_PYTHON_ENERGY_LEDGER,
        )
    except Exception:
        _log.exception("otel-energy: writing the run ledger failed")
    return None


def under_parent_run(environ: Mapping[str, str] | None = None) -> bool:
    """True in a command run by ``otel-energy run``: its parent writes the row."""
    env = os.environ if environ is None else environ
    return bool(env.get(ev.OTEL_PYTHON_ENERGY_LEDGER_RUN_ID, "").strip())
