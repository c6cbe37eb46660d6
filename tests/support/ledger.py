"""Ledger helpers shared by the ledger tests and ``benchmarks/bench_ledger_lock.py``: a run row
with defaults, and another process holding the ledger's write lock."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from otel_energy.history.schema import RunRow

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()  # until the caller lets go
conn.execute("COMMIT")
"""


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another process holds ``BEGIN EXCLUSIVE`` on the ledger ``path`` for the block."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.write("go\n")
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0


def run_row(kind: str = "command", **kw: Any) -> RunRow:
    """A finished run of ``python train.py`` (10 s, 1000 J, 0.1 g) with ``kw`` changed."""
    base: dict[str, Any] = dict(
        kind=kind,
        command="python train.py",
        started_at="2026-01-01T00:00:00.000+00:00",
        duration_s=10.0,
        energy_j=1000.0,
        co2e_g=0.1,
        status="ok",
    )
    return RunRow(**{**base, **kw})
