"""``otel-energy run`` leaves the same run record as every integration: its ledger row (the whole
node, kind ``command``, this job), and from the auto-instrumented command the run span with its
phases and projection, and the log keys in the command's own logs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from otel_energy.tracker import ALL_LOG_KEYS
from tests.support.otlp_receiver import otlp_receiver
from tests.support.paths import SCRIPTS
from tests.support.run_record import JOB_ID, assert_run_record, views_of_records
from tests.support.subprocesses import run_cli

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None, reason="needs the keras extra"
)


def test_otel_energy_run_leaves_the_run_record(tmp_path: Path) -> None:
    ledger = tmp_path / "runs.sqlite"
    with otlp_receiver() as (endpoint, got):
        proc = run_cli(
            "run",
            "--report",
            str(tmp_path / "r.json"),
            "--no-plot",
            "--",
            sys.executable,
            str(SCRIPTS / "train_keras.py"),
            env={
                "KERAS_BACKEND": "torch",
                "OMP_NUM_THREADS": "1",
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",  # the receiver here speaks HTTP
                "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "0.02",
                "OTEL_PYTHON_ENERGY_LEDGER": str(ledger),
                "OTEL_PYTHON_ENERGY_JOB_ID": JOB_ID,
            },
            timeout=300,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(ALL_LOG_KEYS) <= set(last)
    spans = views_of_records(got.ours())
    row = assert_run_record(
        ledger, spans, last, phases=["evaluate"], kind="command", framework="keras"
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ledger_id"] == row.id and report["total"]["energy_j"] == row.energy_j
    assert [r["name"] for r in report["training"]["runs"]] == ["train"]
