"""The ledger keeps the job's figures beside the node's, also in a ledger from before them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from otel_energy.history.ledger import Ledger
from otel_energy.history.schema import ADDED_COLUMNS, INDEX, TABLE, RunRow
from tests.support.ledger import run_row


def row(**kw: object) -> RunRow:
    return run_row(started_at="2026-12-06T00:00:00.000+00:00", energy_j=400.0, co2e_g=0.05, **kw)


def test_a_ledger_from_before_attribution_gains_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    old = TABLE
    for name, sql_type in ADDED_COLUMNS.items():
        old = old.replace(f",\n    {name} {sql_type}", "")
    assert "attributed_energy_j" not in old
    conn = sqlite3.connect(path)
    conn.execute(old)
    conn.execute(INDEX)
    conn.execute(
        "INSERT INTO runs (run_id, kind, command, host, pid, started_at, duration_s, energy_j,"
        " energy_by_type, co2e_g, estimated, status, timeline) VALUES"
        " ('old', 'command', 'x', 'h', 1, '2026-01-01', 1.0, 5.0, '{}', 0.0, 0, 'ok', '{}')"
    )
    conn.commit()
    conn.close()
    ledger = Ledger(path)
    how = {"method": "cpu_time_share", "others_busy": True, "others_share": 0.8}
    ledger.append(row(attributed_energy_j=55.0, dynamic_energy_j=50.0, attribution=how))
    by_id = {r.run_id: r for r in ledger.rows()}
    [new] = [r for k, r in by_id.items() if k != "old"]
    assert (new.energy_j, new.attributed_energy_j, new.dynamic_energy_j) == (400.0, 55.0, 50.0)
    assert new.attribution == how
    assert by_id["old"].attributed_energy_j is None and by_id["old"].attribution == {}
