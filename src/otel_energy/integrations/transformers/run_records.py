"""What a finished training run leaves behind: its part of the job root span and its ledger row.

Both run after the run's spans are closed, on the thread that ends the run; neither raises into
training (the callback's guards catch what they might) nor does file I/O there.
"""

from __future__ import annotations

from typing import Any

from otel_energy.distributed.job import JobContext, RunPart, default_store
from otel_energy.distributed.job import finish_job as finish_job_root
from otel_energy.history.rows import row_from_totals
from otel_energy.history.writer import record_async
from otel_energy.report.series import RunSeries
from otel_energy.telemetry.spans import Interval, SpanEnergyRecorder


def finish_job(
    job: tuple[JobContext, Any] | None, run: Interval, rank: Any, identity: dict[str, Any]
) -> None:
    """Hand this rank's run totals to the job root (rank 0 emits it; no I/O here).

    Args:
        job: the run's (job context, tracer), None when the run never started.
        run: the finished run interval (energy in J, CO2e in g).
        rank: this process's ``RankInfo``.
        identity: the sampler's identity attributes.
    """
    if job is None or run.result is None:
        return
    context, tracer = job
    part = RunPart(
        rank.rank or 0,
        run.result.energy_j,
        run.co2e_g,
        run.start_ns,
        run.end_ns,
        run.result.estimated,
    )
    store = default_store() if context.derived else None
    finish_job_root(rank, context, tracer, part, identity, store)


def write_ledger(
    timeline: RunSeries | None,
    run: Interval,
    error: BaseException | None,
    started_at: str,
    rec: SpanEnergyRecorder | None,
) -> None:
    """Hand this training run's row to the ledger's background writer (no I/O here: a locked
    ledger cannot hold up the end of ``train()``).

    Args:
        timeline: the run's power timeline, None when the ledger is off.
        run: the finished run interval.
        error: what ended the run, None for success.
        started_at: the run's start, UTC ISO 8601.
        rec: the recorder, still shared when an evaluation holds it (None once released).
    """
    if timeline is None:
        return
    timeline.close()
    if run.result is None and rec is not None:
        rec.flush()  # still shared (an evaluation holds it): complete the run now
    w = run.result
    if w is None:
        return
    row = row_from_totals(
        "train",
        started_at,
        w.duration_s,
        w.energy_j,
        run.co2e_g,
        w.by_type,
        w.estimated,
        timeline,
        "ok" if error is None else "error",
        (w.attributed_j, w.dynamic_j),
    )
    record_async(row)
