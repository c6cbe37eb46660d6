"""What a finished run leaves behind: its part of the job root span and its ledger row.

Both run after the run's spans are complete (the recorder was flushed), on the thread that ends
the run; the job root's gathering waits on a background thread, the row goes to the ledger's
background writer (``history.writer.record_async``): no file I/O on the training thread, which
then waits a bounded time (``ROW_WAIT_S``, at most the flush timeout) for the row to be written,
so that a process leaving by ``os._exit`` right after training keeps its row.
"""

from __future__ import annotations

from opentelemetry.trace import Tracer

from otel_energy.distributed.job import JobContext, RunPart, default_store
from otel_energy.distributed.job import finish_job as finish_job_root
from otel_energy.distributed.ranks import RankInfo
from otel_energy.engine.sampler import Sampler
from otel_energy.history.ledger import ledger_path, under_parent_run
from otel_energy.history.rows import row_from_totals, utc_iso
from otel_energy.history.writer import record_async, wait_written
from otel_energy.report.series import RunSeries
from otel_energy.telemetry.spans import AttrValue, Interval
from otel_energy.tracker.recording import Recording

ROW_WAIT_S = 1.0
"""The most the end of a run waits (s) for its ledger row to be written. A free ledger takes
milliseconds; a locked one is waited for by the writer (``WRITE_WAIT_S``), never by training."""


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
    series: RunSeries | None,
    run: Interval,
    error: BaseException | None,
    started_at: str,
    wait_s: float = ROW_WAIT_S,
) -> None:
    """Hand the finished run (energy J, CO2e g, its recorded series) to the ledger's background
    writer and wait at most ``wait_s`` (s) for it: no I/O here (nothing when the ledger is off:
    ``series`` None, or no result)."""
    if series is None:
        return
    series.close()
    w = run.result
    if w is None:
        return
    status = "ok" if error is None else "error"
    row = row_from_totals(
        "train",
        started_at,
        w.duration_s,
        w.energy_j,
        run.co2e_g,
        w.by_type,
        w.estimated,
        series,
        status,
        (w.attributed_j, w.dynamic_j),
    )
    if record_async(row):
        wait_written(wait_s)


class RunRecords:
    """A run's start (UTC) and its one recorded series, kept from its beginning for its row."""

    def __init__(self, sampler: Sampler) -> None:
        self.started_at = utc_iso()
        # Under ``otel-energy run`` the parent writes the row; ``off`` writes none.
        ledger = not under_parent_run() and ledger_path() is not None
        self.series = RunSeries(sampler) if ledger else None

    def write(self, run: Interval, error: BaseException | None, held: Recording) -> None:
        """The finished run's part of the job root and its ledger row (once)."""
        rec, rank = held.recorder, held.session.rank
        finish_job(held.job, rec.tracer, run, rank, rec.identity)
        series, self.series = self.series, None
        wait_s = min(ROW_WAIT_S, rec.flush_timeout_s)
        write_ledger(series, run, error, self.started_at, wait_s)
