"""What a finished run leaves behind: its part of the job root span and its ledger row.

Both run after the run's spans are complete (the recorder was flushed), on the thread that ends
the run; the job root's gathering waits on a background thread, the ledger write goes through the
ledger's own ``record``.
"""

from __future__ import annotations

from opentelemetry.trace import Tracer

from otel_energy.distributed.job import JobContext, RunPart, default_store
from otel_energy.distributed.job import finish_job as finish_job_root
from otel_energy.distributed.ranks import RankInfo
from otel_energy.engine.sampler import Sampler, Snapshot
from otel_energy.history.ledger import ledger_path, record, under_parent_run
from otel_energy.history.rows import TimelineRecorder, row_from_totals, utc_iso
from otel_energy.telemetry.spans import AttrValue, Interval
from otel_energy.tracker.recording import Recording


def finish_job(
    job: JobContext | None,
    tracer: Tracer | None,
    run: Interval,
    rank: RankInfo,
    identity: dict[str, AttrValue],
) -> None:
    """Hand this rank's run totals (J, g, ns) to the job root (rank 0 emits it)."""
    if job is None or tracer is None or run.result is None:
        return
    part = RunPart(
        rank.rank or 0,
        run.result.energy_j,
        run.co2e_g,
        run.start_ns,
        run.end_ns,
        run.result.estimated,
    )
    store = default_store() if job.derived else None
    finish_job_root(rank, job, tracer, part, identity, store)


def write_ledger(
    timeline: TimelineRecorder | None,
    run: Interval,
    error: BaseException | None,
    started_at: str,
    snap: Snapshot,
    rank: RankInfo,
) -> None:
    """Append the finished run (energy J, CO2e g) to the run ledger (nothing when the ledger is
    off: ``timeline`` None, or the run has no result)."""
    if timeline is None:
        return
    curves = timeline.stop()
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
        snap,
        rank,
        "ok" if error is None else "error",
        curves,
    )
    record(row)


class RunRecords:
    """A run's start (UTC) and power timeline, kept from its beginning for its ledger row."""

    def __init__(self, sampler: Sampler) -> None:
        self.started_at = utc_iso()
        # Under ``otel-energy run`` the parent writes the row; ``off`` writes none.
        ledger = not under_parent_run() and ledger_path() is not None
        self.timeline = TimelineRecorder(sampler) if ledger else None

    def write(
        self,
        run: Interval,
        error: BaseException | None,
        held: Recording,
        snap: Snapshot,
    ) -> None:
        """The finished run's part of the job root and its ledger row (once)."""
        rec, rank = held.recorder, held.session.rank
        finish_job(held.job, rec.tracer, run, rank, rec.identity)
        timeline, self.timeline = self.timeline, None
        write_ledger(timeline, run, error, self.started_at, snap, rank)
