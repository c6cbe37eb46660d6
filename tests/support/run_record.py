"""One run record, whatever the integration: the assertions every integration's test shares.

A measured training run leaves the same record through every entry point (the ``RunTracker``):
one ledger row (kind ``train``, status, job id, energy equal to its run span's), a ``train``
span with epochs and steps under it and the phases run inside it, the footprint projection (an
event and end attributes on the run span), and the log keys in the framework's own logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from otel_energy.history import writer as ledger_writer
from otel_energy.history.ledger import Ledger
from otel_energy.history.schema import RunRow
from otel_energy.telemetry import attributes as A
from otel_energy.tracker import ALL_LOG_KEYS, LOG_KEYS

JOB_ID = "job-record-42"
"""The job id the tests set (``OTEL_PYTHON_ENERGY_JOB_ID``) and read back from the row."""


@dataclass(frozen=True)
class SpanView:
    """What the checks need of a span, from the SDK (in-memory exporter) or a JSON record."""

    name: str
    span_id: int
    parent_id: int | None
    attributes: Mapping[str, Any]
    events: tuple[str, ...]


def views(spans: Iterable[Any]) -> list[SpanView]:
    """``SpanView`` of SDK ``ReadableSpan``s."""
    return [
        SpanView(
            s.name,
            s.context.span_id,
            s.parent.span_id if s.parent is not None else None,
            dict(s.attributes or {}),
            tuple(e.name for e in s.events),
        )
        for s in spans
    ]


def views_of_records(records: Iterable[Mapping[str, Any]]) -> list[SpanView]:
    """``SpanView`` of decoded span records (``otlp_receiver``: hex ids, event names)."""
    return [
        SpanView(
            r["name"],
            int(r["span_id"], 16),
            int(r["parent_id"], 16) if r.get("parent_id") else None,
            dict(r["attributes"]),
            tuple(r.get("events", ())),
        )
        for r in records
    ]


def record_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh ledger and the job id for one test; the ledger's path."""
    ledger = tmp_path / "runs.sqlite"
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_LEDGER", str(ledger))
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_JOB_ID", JOB_ID)
    monkeypatch.delenv("OTEL_PYTHON_ENERGY_LEDGER_RUN_ID", raising=False)
    return ledger


def assert_run_record(
    ledger: Path,
    spans: list[SpanView],
    logged: Mapping[str, Any],
    *,
    phases: Iterable[str],
    step_name: str = "step",
    kind: str = "train",
    framework: str | None = None,
) -> RunRow:
    """The run record every integration leaves; returns its ledger row.

    Args:
        ledger: the ledger file the run wrote to.
        spans: every finished span of the run.
        logged: the values the framework logged (the last log with our keys).
        phases: span names of the phases run inside ``fit``/``train`` (``evaluate``...).
        step_name: the step spans' name (``batch`` for ``EnergyMeter``; their groups' spans:
            ``steps``, ``batches``).
        kind: the ledger row's kind (``command`` for ``otel-energy run``).
        framework: the ``otel_energy.framework`` every span carries, if the integration sets one.
    """
    [run] = [s for s in spans if s.name == "train"]
    epochs = [s for s in spans if s.name == "epoch"]
    # a step's own span, or its group's (``steps``/``batches``) where it was short
    group = {"step": "steps", "batch": "batches"}[step_name]
    steps = [s for s in spans if s.name in (step_name, group)]
    assert epochs and all(e.parent_id == run.span_id for e in epochs)
    epoch_ids = {e.span_id for e in epochs}
    assert steps and all(s.parent_id in epoch_ids for s in steps)
    for name in phases:  # each phase inside the run, under the run or one of its epochs
        found = [s for s in spans if s.name == name]
        assert found and all(p.parent_id in epoch_ids | {run.span_id} for p in found), name
    if framework is not None:
        assert {s.attributes.get(A.FRAMEWORK) for s in [run, *epochs, *steps]} == {framework}
    # the projection: an event per projection, the latest on the run span's end attributes
    assert A.EVENT_PREDICTION in run.events
    assert run.attributes[A.METRIC_PREDICTION_ENERGY] > 0
    assert run.attributes[A.PREDICTION_TOTAL_STEPS] >= run.attributes[A.PREDICTION_AT_STEP] > 0
    # the log keys, energy and projection included, in the framework's own logs
    assert set(ALL_LOG_KEYS) <= set(logged), sorted(logged)
    assert all(float(logged[k]) >= 0 for k in LOG_KEYS) and float(logged[LOG_KEYS[0]]) > 0
    # the ledger row: this run, this job, the run span's energy (rows are written off-thread)
    assert ledger_writer.flush(30.0), "the ledger's writer did not finish in 30 s"
    [row] = Ledger(ledger).rows()
    assert (row.kind, row.status, row.job_id) == (kind, "ok", JOB_ID)
    energy = run.attributes[A.ENERGY] if kind == "train" else row.energy_j
    assert row.energy_j == pytest.approx(energy, rel=1e-6) and row.energy_j > 0
    assert row.timeline.get("t_s"), "the row keeps the run's power timeline"
    # whose joules: the same attribution fields whichever integration wrote the row
    assert row.attributed_energy_j is not None and row.dynamic_energy_j is not None
    how = row.attribution
    assert how.get("method") and how["method"] != "none", how
    idle = row.attributed_energy_j - row.dynamic_energy_j
    assert how.get("idle_energy_j") == pytest.approx(idle, rel=1e-6, abs=1e-9), how
    return row
