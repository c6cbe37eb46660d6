"""The ledger holds command lines: its directory is 0700 and its files 0600, SQLite's side files
included (issue 19 item 2). Checked with ``os.stat`` under the usual umask 022."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_energy.history.ledger import Ledger
from otel_energy.history.schema import RunRow


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_ledger_and_its_side_files_are_private(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "data" / "otel-energy" / "runs.sqlite"
    ledger = Ledger(path)
    ledger.append(RunRow("command", "python t.py", "2026-01-01T00:00:00", 1.0, 2.0, 0.1, "ok"))
    reader = sqlite3.connect(path)  # an open reader keeps the -wal and -shm files in place
    try:
        assert reader.execute("SELECT count(*) FROM runs").fetchone() == (1,)
        side = [path.with_name(path.name + s) for s in ("-wal", "-shm")]
        assert all(p.exists() for p in side)
        assert [mode(p) for p in (path, *side)] == [0o600] * 3
    finally:
        reader.close()
    assert mode(path.parent) == 0o700


def test_an_existing_ledger_keeps_the_mode_its_owner_gave_it(
    tmp_path: Path, umask_022: None
) -> None:
    """A ledger shared on purpose (mode 0640 for a group) is not tightened behind its owner."""
    path = tmp_path / "runs.sqlite"
    Ledger(path).append(RunRow("command", "a", "2026-01-01T00:00:00", 1.0, 2.0, 0.1, "ok"))
    os.chmod(path, 0o640)
    Ledger(path).append(RunRow("command", "b", "2026-01-01T00:00:01", 1.0, 2.0, 0.1, "ok"))
    assert mode(path) == 0o640 and len(Ledger(path).rows()) == 2
