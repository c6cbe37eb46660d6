"""Our metrics scraped by a real Prometheus server, read back through its HTTP API."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.backends import free_port, prom_query, prometheus, wait_until
from tests.support.paths import REPO as ROOT
from tests.support.paths import SCRIPTS
from tests.support.subprocesses import INSTRUMENT, child_env

# The exporter's translation of otel_energy.grid.carbon_intensity, unit g/kW/h (UCUM g/(kW.h)).
PROM_INTENSITY = "otel_energy_grid_carbon_intensity_grams_per_kW_h"
PROM_INTENSITY_DEPRECATED = "otel_energy_carbon_intensity_grams_per_kWh"  # old dashboards


def check_dashboard_queries(prom: str) -> None:
    """Every dashboard expression runs on the real Prometheus; energy/power ones return data."""
    dash = json.loads((ROOT / "dashboards" / "otel-energy.json").read_text())
    for panel in dash["panels"]:
        for t in panel["targets"]:
            expr = (
                t["expr"]
                .replace("$host", ".*")
                .replace("$run", ".*")
                .replace("$job", ".*")
                .replace("$__rate_interval", "5s")
                .replace("$__range", "1m")
            )
            result = prom_query(prom, expr)  # asserts status == success
            # No Trainer in this process: no step histogram; no GPU: no hw_gpu_* series (those
            # queries are run with a fake GPU in test_gpu_panels_read_back_from_prometheus).
            if "step_energy" not in expr and "hw_gpu" not in expr:
                assert result, (panel["title"], expr)


def test_prometheus_scrapes_hw_energy_power_and_co2e(tmp_path: Path) -> None:
    port = free_port()
    stop = tmp_path / "stop"
    env = child_env(
        "OTEL_",
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
        OTEL_TRACES_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_ENERGY_COUNTRY="FR",
    )
    proc = subprocess.Popen(
        [
            str(INSTRUMENT),
            sys.executable,
            str(SCRIPTS / "busy_until.py"),
            str(stop),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prom:
            energy = wait_until(
                lambda: prom_query(prom, 'hw_energy_joules_total{hw_type="cpu"}'),
                40,
                "hw_energy_joules_total in Prometheus",
                proc,
            )
            [cpu] = energy
            labels = cpu["metric"]
            assert labels["hw_id"] == "estimate:cpu" and labels["otel_energy_method"] == "estimate"
            assert labels["otel_energy_estimated"] == "true" and labels["host_name"]
            # increasing: the counter grew over the last seconds of scrapes
            grew = wait_until(
                lambda: prom_query(prom, 'increase(hw_energy_joules_total{hw_type="cpu"}[5s])'),
                20,
                "an increase of hw_energy_joules_total",
                proc,
            )
            assert float(grew[0]["value"][1]) > 0
            power = prom_query(prom, "hw_power_watts")
            assert {p["metric"]["hw_type"] for p in power} == {"cpu", "memory"}
            co2 = prom_query(prom, "otel_energy_co2e_grams_total")
            assert {p["metric"]["hw_type"] for p in co2} == {"cpu", "memory"}
            assert all(
                p["metric"]["otel_energy_carbon_intensity_source"].startswith(
                    "table:owid-ember:FRA:"
                )
                for p in co2
            )
            ours = prom_query(prom, '{__name__=~"otel_energy.*|hw_.*"}')
            names = {p["metric"]["__name__"] for p in ours}
            assert names == {
                "hw_energy_joules_total",
                "hw_power_watts",
                "otel_energy_co2e_grams_total",
                "otel_energy_attributed_energy_joules_total",  # the job's share (attribution.md)
                PROM_INTENSITY,
                PROM_INTENSITY_DEPRECATED,
            }, names
            [new] = prom_query(prom, PROM_INTENSITY)
            [old] = prom_query(prom, PROM_INTENSITY_DEPRECATED)
            assert new["value"][1] == old["value"][1]  # one value under both names
    finally:
        stop.touch()
        proc.wait(30)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def doc_job_query() -> str:
    """The first per-job PromQL of docs/distributed.md (the one the docs tell users to run)."""
    doc = (ROOT / "docs" / "distributed.md").read_text()
    blocks = re.findall(r"```promql\n(.*?)```", doc, re.S)
    return str(blocks[0].strip())


def test_the_documented_per_job_query_returns_the_jobs_energy(tmp_path: Path) -> None:
    ports = {"job-a/1": free_port(), "job-a/2": free_port(), "job-b/1": free_port()}
    stop = tmp_path / "stop"
    base = child_env(
        ("OTEL_", "SLURM_"),
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_TRACES_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    procs = [
        subprocess.Popen(
            [
                str(INSTRUMENT),
                sys.executable,
                str(SCRIPTS / "busy_until.py"),
                str(stop),
            ],
            env={
                **base,
                "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
                "OTEL_PYTHON_ENERGY_JOB_ID": name.split("/")[0],
            },
        )
        for name, port in ports.items()
    ]
    try:
        with prometheus(tmp_path, [f"127.0.0.1:{p}" for p in ports.values()]) as prom:
            wait_until(
                lambda: len(prom_query(prom, 'hw_energy_joules_total{hw_type="cpu"}')) == 3,
                40,
                "three processes' hw_energy_joules_total in Prometheus",
                procs[0],
            )
            stop.touch()
            for p in procs:
                p.wait(30)
            time.sleep(2)  # the last samples are in; the processes' series are now ended
            query = doc_job_query().replace('"J"', '"job-a"')
            [total] = prom_query(prom, query)
            parts = prom_query(prom, "max_over_time(hw_energy_joules_total[1d])")
            a_parts = [
                float(s["value"][1])
                for s in parts
                if s["metric"].get("otel_energy_job_id") == "job-a"
            ]
            b_parts = [
                float(s["value"][1])
                for s in parts
                if s["metric"].get("otel_energy_job_id") == "job-b"
            ]
            # two processes x (cpu, memory) for job-a; job-b is not in its total
            assert len(a_parts) == 4 and len(b_parts) == 2
            assert float(total["value"][1]) == pytest.approx(sum(a_parts), rel=1e-9)
            assert float(total["value"][1]) > 0
    finally:
        stop.touch()
        for p in procs:
            p.wait(30)


def test_gpu_panels_read_back_from_prometheus(tmp_path: Path) -> None:
    """The hw.gpu.* names the OTel Prometheus exporter really produces, scraped by a real
    Prometheus from a sampler reading a fake NVML GPU; every GPU panel's query returns data."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import start_http_server

    from otel_energy.engine.sampler import Sampler
    from otel_energy.sensors.nvml import discover_nvml
    from otel_energy.telemetry.instruments import attach
    from tests.fakes.nvml import FakeGpu, FakeNvml

    gpu = FakeGpu("GPU-feed0000-0000-0000-0000-000000000001", utilization_pct=25)
    sampler = Sampler(discover_nvml({}, FakeNvml([gpu])), interval_s=0.05)
    sampler.start()
    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    attach(provider, sampler)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    try:
        with prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prom:
            util = wait_until(
                lambda: prom_query(prom, "hw_gpu_utilization"), 40, "hw_gpu_utilization"
            )
            assert float(util[0]["value"][1]) == 0.25
            assert util[0]["metric"]["hw_gpu_task"] == "general"
            names = {p["metric"]["__name__"] for p in prom_query(prom, '{__name__=~"hw_gpu_.*"}')}
            assert names == {
                "hw_gpu_utilization",
                "hw_gpu_memory_usage_bytes",
                "hw_gpu_memory_limit_bytes",
                "hw_gpu_memory_utilization",
            }, names
            dash = json.loads((ROOT / "dashboards" / "otel-energy.json").read_text())
            gpu_exprs = [
                t["expr"].replace("$host", ".*").replace("$run", ".*")
                for panel in dash["panels"]
                for t in panel["targets"]
                if "hw_gpu" in t["expr"]
            ]
            assert len(gpu_exprs) >= 3
            for expr in gpu_exprs:
                assert prom_query(prom, expr), expr
    finally:
        server.shutdown()
        thread.join(10)
        provider.shutdown()
        sampler.stop()
