"""What can go wrong with the ledger file, said in one line with the fix, and the retry of a lock.

``describe`` turns a sqlite3 or OS error into a ``LedgerError``: a directory, a damaged or foreign
file, a lock another process holds (transient), or no permission. ``retry_busy`` retries what
SQLite's busy handler does not cover; ``log_once`` keeps a writer's report to one line a problem.
"""

from __future__ import annotations

import logging
import random
import shlex
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from otel_energy.config import variables as ev

_log = logging.getLogger(__name__)

BUSY = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})
"""Result codes (and their extended forms) of a lock another connection holds: transient."""
DAMAGED = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})


class LedgerError(Exception):
    """The ledger cannot be used now. ``str()`` is one line naming the file and what to do;
    ``busy`` is true when another process holds it (transient: a queued row is retried)."""

    def __init__(self, message: str, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def is_busy(exc: BaseException) -> bool:
    """True for "database is locked" (another connection's lock), in any of its forms."""
    code = _code(exc)
    return any(code.startswith(c) for c in BUSY) or (
        not code and "locked" in str(exc) and isinstance(exc, sqlite3.OperationalError)
    )


def describe(path: Path, exc: BaseException, action: str) -> LedgerError:
    """``exc`` from using the ledger at ``path`` as one line with the fix."""
    var = ev.OTEL_PYTHON_ENERGY_LEDGER
    if isinstance(exc, LedgerError):
        return exc
    if path.is_dir():
        return LedgerError(
            f"otel-energy: the run ledger {path} is a directory; set {var} to a file in it"
            f" (e.g. {path / 'runs.sqlite'}) or to 'off'"
        )
    if is_busy(exc):
        return LedgerError(
            f"otel-energy: the run ledger {path} is locked by another process ({exc});"
            f" try again when it ends",
            busy=True,
        )
    if isinstance(exc, sqlite3.IntegrityError):  # a newer schema's column we do not fill
        return LedgerError(
            f"otel-energy: the run ledger {path} was made by a newer otel-energy and takes no"
            f" rows from this one ({exc}); upgrade otel-energy, or set {var} to another file"
        )
    code = _code(exc)
    if any(code.startswith(c) for c in DAMAGED) or isinstance(exc, (ValueError, TypeError)):
        move = f"mv {shlex.quote(str(path))} {shlex.quote(str(path) + '.broken')}"
        return LedgerError(
            f"otel-energy: the run ledger {path} is damaged or not a ledger ({exc}); move it"
            f" aside ({move}) and the next run starts a new one, or set {var}"
            " to another file"
        )
    return LedgerError(
        f"otel-energy: cannot {action} the run ledger {path} ({exc}); check that it and its"
        f" directory are {'writable' if action == 'write' else 'readable'}, or set {var} to"
        " another file or 'off'"
    )


_T = TypeVar("_T")


def retry_busy(op: Callable[[], _T], deadline: float) -> _T:
    """``op()``, retried with a short random back-off while another connection's lock makes it
    fail and the monotonic ``deadline`` is not passed. SQLite's busy handler does not cover
    everything: ``PRAGMA journal_mode = WAL`` on a new file fails at once when another
    connection is setting it up."""
    pause = 0.002
    while True:
        try:
            return op()
        except sqlite3.Error as exc:
            if not is_busy(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause * (0.5 + random.random()))
        pause = min(pause * 2, 0.1)


_logged: set[tuple[Path, str]] = set()
_logged_lock = threading.Lock()


def log_once(path: Path, key: str, message: str, level: int = logging.ERROR) -> None:
    """Log ``message`` the first time this process meets problem ``key`` with ``path``."""
    with _logged_lock:
        if (path, key) in _logged:
            return
        _logged.add((path, key))
    _log.log(level, "%s", message)
