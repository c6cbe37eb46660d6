"""Traces in a real backend (MLflow's OTLP endpoint) and energy in the Trainer's MLflow logs."""

from __future__ import annotations

import base64
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.backends import get_json, mlflow_server, wait_until
from tests.support.paths import SCRIPTS
from tests.support.subprocesses import INSTRUMENT, capture, child_env


def attr_value(v: dict[str, Any]) -> Any:
    [(kind, value)] = v.items()
    return int(value) if kind == "int_value" else value


def span_attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: attr_value(a["value"]) for a in span.get("attributes", [])}


def test_step_spans_in_mlflow_and_energy_as_mlflow_metrics(tmp_path: Path) -> None:
    with mlflow_server(tmp_path) as base:
        env = child_env(
            ("OTEL_", "MLFLOW_"),
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{base}/v1/traces",
            OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-mlflow-experiment-id=0",
            MLFLOW_TRACKING_URI=base,
            OMP_NUM_THREADS="1",
            OTEL_PYTHON_ENERGY_STEP_SPANS="all",  # a span per step (short ones are grouped)
        )
        proc = capture([INSTRUMENT, sys.executable, SCRIPTS / "train_mlflow.py"], env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        trace_id = proc.stdout.split("trace_id ", 1)[1].split()[0]

        def trace() -> dict[str, Any] | None:
            url = f"{base}/api/3.0/mlflow/traces/get?trace_id=tr-{trace_id}"
            return get_json(url).get("trace")

        got = wait_until(trace, 30, "the trace in MLflow")
        spans = got["spans"]
        by_name: dict[str, list[dict[str, Any]]] = {}
        for s in spans:
            by_name.setdefault(s["name"], []).append(s)
        assert len(by_name["train"]) == 1 and len(by_name["epoch"]) == 2
        assert len(by_name["step"]) == 8
        epoch_ids = {s["span_id"] for s in by_name["epoch"]}
        for s in by_name["step"]:
            a = span_attrs(s)
            assert s["parent_span_id"] in epoch_ids
            assert a["otel_energy.energy"] > 0 and a["otel_energy.co2e"] > 0
            assert a["otel_energy.carbon_intensity.source"] == "table:owid-ember:world"
            assert a["otel_energy.interpolated"] in (True, False)
        assert sorted(span_attrs(s)["otel_energy.train.step"] for s in by_name["step"]) == list(
            range(1, 9)
        )
        [run_span] = by_name["train"]
        assert base64.b64decode(run_span["trace_id"]).hex() == trace_id

        # The Trainer's own MLflow callback logged our energy keys next to the loss.
        req = urllib.request.Request(
            f"{base}/api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": ["0"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            [run] = json.loads(resp.read())["runs"]
        keys = {m["key"] for m in run["data"]["metrics"]}
        assert {"loss", "otel_energy/energy_j", "otel_energy/co2e_g", "otel_energy/power_w"} <= keys
        q = urllib.parse.urlencode(
            {"run_id": run["info"]["run_id"], "metric_key": "otel_energy/energy_j"}
        )
        history = get_json(f"{base}/api/2.0/mlflow/metrics/get-history?{q}")["metrics"]
        values = [m["value"] for m in sorted(history, key=lambda m: (m["step"], m["timestamp"]))]
        assert len(values) >= 8 and values == sorted(values) and values[-1] > 0
