"""``otel-energy run`` starts a job span and hands it to the command as ``TRACEPARENT``; both go
to the OTLP endpoint with the protocol ``opentelemetry-instrument`` would use (gRPC by default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.otlp_receiver import otlp_grpc_receiver, otlp_receiver
from tests.support.paths import REPO as ROOT
from tests.support.subprocesses import CLI, capture, child_env

OUTER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OUTER_SPAN = "00f067aa0ba902b7"


PROTOCOLS = {
    # (variables, receiver): no variable is the distro's default, gRPC (port 4317 in the wild);
    # before, ``otel-energy run`` alone defaulted to OTLP/HTTP and sent nothing to a gRPC receiver.
    "default-grpc": ({}, otlp_grpc_receiver),
    "http": ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, otlp_receiver),
    "traces-http": ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, otlp_receiver),
    "traces-grpc-over-http": (
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        },
        otlp_grpc_receiver,
    ),
}


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_the_run_span_is_a_child_of_the_job_span_which_joins_the_given_trace(
    tmp_path: Path, protocol: str
) -> None:
    variables, receiver = PROTOCOLS[protocol]
    with receiver() as (endpoint, got):
        env = child_env(
            ("OTEL_", "CUDA_", "SLURM_", "TORCHELASTIC_", "TRACE"),
            **variables,
            OMP_NUM_THREADS="1",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_METRICS_EXPORTER="none",
            OTEL_PYTHON_ENERGY_JOB_ID="job-run-1",
            TRACEPARENT=f"00-{OUTER_TRACE}-{OUTER_SPAN}-01",
        )
        proc = capture(
            [
                *CLI,
                "run",
                "--report",
                str(tmp_path / "r.json"),
                "--no-plot",
                "--",
                "python",
                str(ROOT / "examples" / "train_tiny.py"),
                "--epochs",
                "1",
                "--samples",
                "16",
                "--hidden",
                "32",
            ],
            env,
            timeout=240,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        spans = list(got.spans)
    [job] = [s for s in spans if s["name"] == "job"]
    [run] = [s for s in spans if s["name"] == "train"]
    assert job["trace_id"] == run["trace_id"] == OUTER_TRACE
    assert job["parent_id"] == OUTER_SPAN and run["parent_id"] == job["span_id"]
    assert job["start_ns"] <= run["start_ns"] and run["end_ns"] <= job["end_ns"]
    assert job["attributes"]["otel_energy.job.id"] == run["attributes"]["otel_energy.job.id"]
    assert job["attributes"]["otel_energy.energy"] >= run["attributes"]["otel_energy.energy"] > 0
    assert job["attributes"]["otel_energy.command.exit_code"] == 0
