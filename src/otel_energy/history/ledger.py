"""The run ledger: one SQLite row per measured run, in a per-user data directory, on one host.

``otel-energy run`` (the parent, which knows the exit status and the whole node's energy) and
instrumented runs (a Trainer run at its end, or the process at exit when it trained nothing)
append rows through ``history/writer.py``; ``otel-energy history`` and ``otel-energy report``
read them.

Several ranks and runs on one host write at once: the database is in WAL mode (readers never
block the writer), each write is one short ``BEGIN IMMEDIATE`` transaction that also creates the
table if need be and merges the rows queued in ``<ledger>.pending`` (``history/pending.py``), and
a writer waits its turn a bounded time. Setting WAL mode is retried: SQLite answers it with
"locked" at once, outside the busy timeout, when writers start together on a new file.

Readers open the file read-only: they never create a directory, a database or a table, and a
damaged, foreign or unopenable ledger is one ``LedgerError`` line naming the file and the fix.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from otel_energy.config import variables as ev
from otel_energy.history.errors import describe, retry_busy
from otel_energy.history.pending import PendingRows
from otel_energy.history.schema import INDEX, INSERT, TABLE, RunRow
from otel_energy.safety.files import private_dir, private_file

_log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 60.0
"""How long ``Ledger.append`` waits for another writer (each takes milliseconds; 60 s only bounds
a stuck writer). Runs use ``WRITE_WAIT_S`` and the side file instead."""

WRITE_WAIT_S = 3.0
"""How long a run's row waits for a locked ledger before it is queued in ``<ledger>.pending``."""

READ_WAIT_S = 2.0
"""How long a reader waits for a lock (only a ledger not in WAL mode, or in recovery, makes it)."""

MERGE_WAIT_S = 0.25
"""How long a reader waits to merge queued rows before it reads without them."""

MIN_DIGIT_PREFIX = 8
"""Digits a ``run_id`` prefix needs to be tried when it is also a possible ``id`` (the length
of a UUID's first group)."""


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


LocalFlush = Callable[[float], bool]
_local_writers: dict[Path, LocalFlush] = {}
_local_lock = threading.Lock()


def register_local_writer(path: Path, flush: LocalFlush) -> None:
    """``flush(timeout_s)`` of this process's background writer of ``path``: readers in this
    process call it first, so a process reads the rows it handed over (``history/writer.py``)."""
    with _local_lock:
        _local_writers[path.absolute()] = flush


class Ledger:
    """The SQLite file at ``path`` (created with its directory on first write, never on read)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # ---- writing ----
    def _connect(self, wait_s: float) -> sqlite3.Connection:
        """A connection for writing, in WAL mode (created with its directory if need be)."""
        deadline = time.monotonic() + wait_s
        # It holds command lines: a new directory is 0700 and the database 0600, created before
        # SQLite opens it (SQLite gives its -wal and -shm files the database's mode).
        private_dir(self.path.parent)
        private_file(self.path)
        conn = sqlite3.connect(self.path, timeout=wait_s, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
            retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone(), deadline)
        except BaseException:
            conn.close()
            raise
        return conn

    def insert(self, rows: Sequence[RunRow], wait_s: float) -> None:
        """Insert ``rows`` and the queued rows in one transaction (schema created if need be).

        Raises:
            sqlite3.Error, OSError: as SQLite or the file system raised them.
        """
        deadline = time.monotonic() + wait_s
        conn = self._connect(wait_s)
        try:

            def transaction() -> None:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(TABLE)
                    conn.execute(INDEX)
                    # The write lock is ours: take the queued rows (their file's lock is only
                    # ever held for a read or an append, never while waiting for this one).
                    with PendingRows(self.path).take() as queued:
                        for r in [*queued, *rows]:
                            cur = conn.execute(INSERT, r.to_db())
                            if cur.rowcount == 1:
                                r.id = int(cur.lastrowid or 0)
                            else:  # merged before (a crash between commit and clearing)
                                (r.id,) = conn.execute(
                                    "SELECT id FROM runs WHERE run_id = ?", (r.run_id,)
                                ).fetchone()
                        conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise

            retry_busy(transaction, deadline)
        finally:
            conn.close()

    def append(self, row: RunRow, wait_s: float = BUSY_TIMEOUT_S) -> int:
        """Insert ``row`` (and any queued rows) in one transaction; returns its ``id``.

        Raises:
            LedgerError: the file cannot be written within ``wait_s`` (``save`` queues instead).
        """
        try:
            self.insert([row], wait_s)
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise describe(self.path, exc, "write") from exc
        assert row.id is not None
        return row.id

    # ---- reading ----
    def _settle(self) -> None:
        """Before a read: this process's handed-over rows written (bounded), queued rows merged
        when the ledger exists and can take them now (else they stay queued)."""
        with _local_lock:
            flush = _local_writers.get(self.path.absolute())
        if flush is not None:
            flush(WRITE_WAIT_S + 1.0)
        if self.path.is_file() and PendingRows(self.path).exists():
            try:
                self.insert([], MERGE_WAIT_S)
            except Exception as exc:  # read what is there; the note names the queued rows
                _log.debug("otel-energy: queued runs not merged into %s: %s", self.path, exc)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        """A read-only connection (None when there is no ledger yet: nothing is created).

        Raises:
            LedgerError: a directory, a damaged or foreign file, no permission, or locked.
        """
        self._settle()
        if self.path.is_dir():
            raise describe(self.path, IsADirectoryError(self.path), "read")
        if not self.path.exists():
            yield None
            return
        try:
            conn, has_table = self._open_read_only()
        except sqlite3.Error as exc:
            raise describe(self.path, exc, "read") from exc
        try:
            yield conn if has_table else None  # no table: an empty file, or one being created
        except (sqlite3.Error, ValueError, TypeError) as exc:
            raise describe(self.path, exc, "read") from exc
        finally:
            conn.close()

    def _open_read_only(self, immutable: bool = False) -> tuple[sqlite3.Connection, bool]:
        """A ``mode=ro`` connection and whether the runs table exists. A WAL ledger in a
        directory this user cannot write (another user's, a read-only mount) cannot get its
        ``-shm`` index: it is then read as ``immutable`` (no locks: nobody can be writing it
        from here, and rows still in another's ``-wal`` file are not seen)."""
        uri = "file:" + quote(str(self.path.absolute())) + "?mode=ro"
        conn = sqlite3.connect(
            uri + ("&immutable=1" if immutable else ""),
            uri=True,
            timeout=READ_WAIT_S,
            isolation_level=None,
        )
        conn.row_factory = sqlite3.Row
        try:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone()
        except sqlite3.Error as exc:
            conn.close()
            code = str(getattr(exc, "sqlite_errorname", ""))
            if immutable or not code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
                raise
            if not os.access(self.path, os.R_OK) or os.access(self.path.parent, os.W_OK):
                raise
            return self._open_read_only(immutable=True)
        return conn, found is not None

    def rows(self, limit: int | None = None) -> list[RunRow]:
        """The newest ``limit`` runs (all when None), oldest first.

        Raises:
            LedgerError: the ledger cannot be read (one line naming it and the fix).
        """
        with self._reading() as conn:
            if conn is None:
                return []
            sql = "SELECT * FROM runs ORDER BY id DESC" + (" LIMIT ?" if limit else "")
            found = conn.execute(sql, (limit,) if limit else ()).fetchall()
            return [RunRow.from_db(r) for r in reversed(found)]

    def find(self, keys: Sequence[str]) -> list[RunRow]:
        """Runs by ``id`` or by a ``run_id`` prefix, in the order asked. A key of digits is an
        ``id``; when no run has that id and it has at least ``MIN_DIGIT_PREFIX`` digits, it is
        tried as a ``run_id`` prefix.

        Raises:
            KeyError: a key matches no run, or a prefix matches several.
            LedgerError: the ledger cannot be read.
        """
        out = []
        with self._reading() as conn:
            if conn is None:
                raise KeyError(keys[0] if keys else "")
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
        return out

    def count_for_process(self, host: str, pid: int, since: str) -> int:
        """Rows written or queued by process ``pid`` on ``host`` for runs started at or after
        ``since``.

        Raises:
            LedgerError: the ledger cannot be read.
        """
        with self._reading() as conn:
            n = 0
            if conn is not None:
                (n,) = conn.execute(
                    "SELECT count(*) FROM runs WHERE host = ? AND pid = ? AND started_at >= ?",
                    (host, pid, since),
                ).fetchone()
        queued = PendingRows(self.path).read()
        return int(n) + sum(
            1 for r in queued if (r.host, r.pid) == (host, pid) and r.started_at >= since
        )

    def pending_count(self) -> int:
        """Runs queued in ``<ledger>.pending``, waiting for the next write."""
        return len(PendingRows(self.path).read())


def under_parent_run(environ: Mapping[str, str] | None = None) -> bool:
    """True in a command run by ``otel-energy run``: its parent writes the row."""
    env = os.environ if environ is None else environ
    return bool(env.get(ev.OTEL_PYTHON_ENERGY_LEDGER_RUN_ID, "").strip())
