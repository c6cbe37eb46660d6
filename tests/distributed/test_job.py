"""Job identity and the job's one trace: TRACEPARENT, derived root ids, the root's totals."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_energy.config import load_config
from otel_energy.distributed.job import RunPart, derived_ids, finish_job, job_context, job_id
from otel_energy.distributed.ranks import rank_info
from otel_energy.hf import EnergyCallback
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.ids import PrivateRandomIdGenerator
from otel_energy.testing.tiny import tiny_trainer
from tests.support.hf_helpers import Telemetry, fake_gpu_sampler_factory

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"TORCHELASTIC_RUN_ID": "none"}, None),  # torchrun's default: the same for every job
        ({"TORCHELASTIC_RUN_ID": "rdzv-42"}, "rdzv-42"),
        ({"SLURM_JOB_ID": "9001", "TORCHELASTIC_RUN_ID": "rdzv-42"}, "9001"),
        ({"SLURM_JOB_ID": "9001", "SLURM_STEP_ID": "2"}, "9001.2"),
        ({"OTEL_PYTHON_ENERGY_JOB_ID": "mine", "SLURM_JOB_ID": "9001"}, "mine"),
        ({"PBS_JOBID": "12.pbs"}, "12.pbs"),
    ],
)
def test_job_id_precedence(env: dict[str, str], expected: str | None) -> None:
    assert job_id(env) == expected


def test_derived_ids_are_stable_per_job_and_differ_across_jobs() -> None:
    assert derived_ids("job-a") == derived_ids("job-a")
    assert derived_ids("job-a")[0] != derived_ids("job-b")[0]
    assert derived_ids("job-a")[1] != derived_ids("job-b")[1]


def test_context_choice() -> None:
    ranks = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "TORCHELASTIC_RUN_ID": "j"}
    derived = job_context(ranks, rank_info(ranks))
    assert derived.derived and derived.span_context is not None
    assert derived.span_context.trace_id == derived_ids("j")[0]
    given = {**ranks, "TRACEPARENT": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    ctx = job_context(given, rank_info(given))
    assert not ctx.derived and ctx.span_context is not None
    assert format(ctx.span_context.trace_id, "032x") == TRACE_ID
    single = {"TORCHELASTIC_RUN_ID": "j"}  # a job id but one process: its own trace
    assert job_context(single, rank_info(single)).context is None
    bad = {**ranks, "TRACEPARENT": "garbage"}
    assert job_context(bad, rank_info(bad)).derived


def test_run_span_joins_the_traceparent_trace(
    tmp_path: Path, tel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACEPARENT", f"00-{TRACE_ID}-{PARENT_ID}-01")
    monkeypatch.setenv("TRACESTATE", "vendor=x")
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=load_config({"OTEL_PYTHON_ENERGY_SOURCES": "nvml"}),
        sampler_factory=fake_gpu_sampler_factory(),
    )
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=16).train()
    [run] = tel.finished("train")
    assert format(run.context.trace_id, "032x") == TRACE_ID
    assert run.parent is not None and format(run.parent.span_id, "016x") == PARENT_ID
    assert run.parent.is_remote
    assert run.context.trace_state.get("vendor") == "x"
    for s in tel.finished():
        assert format(s.context.trace_id, "032x") == TRACE_ID  # epochs and steps follow


def _tracer() -> tuple[object, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider(id_generator=PrivateRandomIdGenerator())
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp.get_tracer("t"), exporter


def test_rank0_emits_the_root_with_the_sum_over_ranks_from_the_store() -> None:
    torch_dist = pytest.importorskip("torch.distributed")
    store = torch_dist.TCPStore("127.0.0.1", 0, 1, True, timedelta(seconds=30))
    env = {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "job-7"}
    tracer, exporter = _tracer()
    parts = [RunPart(0, 10.0, 1.0, 1_000, 5_000, False), RunPart(1, 32.0, 3.0, 900, 5_200, True)]
    threads = []
    for p in reversed(parts):  # rank 1 first: rank 0 would wait for it otherwise
        rank = rank_info({**env, "RANK": str(p.rank), "LOCAL_RANK": str(p.rank)})
        job = job_context({}, rank)
        threads.append(finish_job(rank, job, tracer, p, rank.attributes(), store))  # type: ignore[arg-type]
    for t in threads:
        assert t is not None
        t.join(30)
    [root] = exporter.get_finished_spans()
    trace_id, span_id = derived_ids("job-7")
    assert (root.context.trace_id, root.context.span_id) == (trace_id, span_id)
    assert root.parent is None and root.name == "job"
    a = root.attributes
    assert a[A.ENERGY] == pytest.approx(42.0)
    assert a[A.CO2E] == pytest.approx(4.0)
    assert a[A.COMPLETE] is True and a[A.JOB_RANKS_REPORTED] == 2
    assert a[A.ESTIMATED] is True and a[A.JOB_ID] == "job-7"
    assert A.RANK not in a
    assert (root.start_time, root.end_time) == (900, 5_200)  # covers every rank's run


def test_missing_rank_is_reported_not_waited_for_forever() -> None:
    torch_dist = pytest.importorskip("torch.distributed")
    store = torch_dist.TCPStore("127.0.0.1", 0, 1, True, timedelta(seconds=30))
    env = {"WORLD_SIZE": "3", "RANK": "0", "LOCAL_RANK": "0", "TORCHELASTIC_RUN_ID": "job-8"}
    tracer, exporter = _tracer()
    rank = rank_info(env)
    part = RunPart(0, 10.0, 1.0, 1_000, 5_000, False)
    t = finish_job(rank, job_context({}, rank), tracer, part, rank.attributes(), store, 0.2)  # type: ignore[arg-type]
    assert t is not None
    t.join(30)
    [root] = exporter.get_finished_spans()
    assert root.attributes[A.COMPLETE] is False
    assert root.attributes[A.JOB_RANKS_REPORTED] == 1


def test_a_second_run_in_the_same_job_does_not_emit_a_second_root() -> None:
    env = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "TORCHELASTIC_RUN_ID": "job-9"}
    tracer, exporter = _tracer()
    rank = rank_info(env)
    part = RunPart(0, 1.0, 0.1, 1_000, 2_000, False)
    first = finish_job(rank, job_context({}, rank), tracer, part, rank.attributes())  # type: ignore[arg-type]
    assert first is not None
    first.join(30)
    again = finish_job(rank, job_context({}, rank), tracer, part, rank.attributes())  # type: ignore[arg-type]
    assert again is None
    assert [s.name for s in exporter.get_finished_spans()] == ["job"]


def test_the_job_span_names_the_semconv_schema_it_follows(tmp_path: Path) -> None:
    from otel_energy.distributed.runjob import JobSpan
    from otel_energy.telemetry.scope import SCHEMA_URL, SCOPE

    job = JobSpan({}, tmp_path / "run.jsonl", ["python", "train.py"])
    scope = job.span.instrumentation_scope  # type: ignore[attr-defined]
    job.end(1.0, 0.1, False, 0)
    assert (scope.name, scope.schema_url) == (SCOPE, SCHEMA_URL)
    # the command's name only: its arguments are opt-in (OTEL_PYTHON_ENERGY_RECORD_COMMAND_ARGS)
    assert job.span.attributes[A.COMMAND] == "python"  # type: ignore[attr-defined]
    assert job.span.attributes[A.PROCESS_COMMAND] == "python"  # type: ignore[attr-defined]
    assert A.PROCESS_COMMAND_ARGS not in job.span.attributes  # type: ignore[attr-defined]


def test_the_job_span_carries_arguments_only_when_asked_and_redacted_even_then(
    tmp_path: Path,
) -> None:
    from otel_energy.distributed.runjob import JobSpan

    command = ["python", "train.py", "--hub-token", "s3cr3t", "--epochs", "2"]
    job = JobSpan({}, tmp_path / "run.jsonl", command, record_args=True)
    job.end(1.0, 0.1, False, 0)
    attrs = job.span.attributes  # type: ignore[attr-defined]
    assert attrs[A.PROCESS_COMMAND] == "python"
    assert list(attrs[A.PROCESS_COMMAND_ARGS]) == [
        "python",
        "train.py",
        "--hub-token",
        "REDACTED",
        "--epochs",
        "2",
    ]
    assert attrs[A.COMMAND] == "python train.py --hub-token REDACTED --epochs 2"
