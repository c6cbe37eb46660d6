"""The Grafana dashboard: valid JSON, and every query names only metrics we emit."""

from __future__ import annotations

import json
import re

from tests.support.paths import REPO as ROOT

DASHBOARD = ROOT / "dashboards" / "otel-energy.json"

# Prometheus names of what we emit (checked against a real Prometheus in test_prometheus.py).
EMITTED = {
    "hw_energy_joules_total",
    "hw_power_watts",
    "otel_energy_co2e_grams_total",
    "otel_energy_grid_carbon_intensity_grams_per_kW_h",
    "otel_energy_carbon_intensity_grams_per_kWh",  # deprecated alias, still emitted
    "otel_energy_step_energy_joules_bucket",
    "otel_energy_step_energy_joules_sum",
    "otel_energy_step_energy_joules_count",
    "hw_gpu_utilization",
    "hw_gpu_utilization_ratio",  # the same gauge through a Collector's prometheus exporter
    "hw_gpu_memory_usage_bytes",
    "hw_gpu_memory_limit_bytes",
    "hw_gpu_memory_utilization",
}
PROMQL_WORDS = {
    "sum",
    "by",
    "increase",
    "rate",
    "max",
    "histogram_quantile",
    "le",
    "label_values",
    "without",
    "avg",
    "min",
    "max_over_time",
    "or",
}


def queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def metric_names(expr: str) -> set[str]:
    no_strings = re.sub(r'"[^"]*"', '""', expr)
    no_labels = re.sub(r"\{[^}]*\}", "{}", no_strings)
    no_ranges = re.sub(r"\[[^\]]*\]", "", no_labels)
    no_groupings = re.sub(r"\bby \([^)]*\)", "", no_ranges)
    words = set(re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", re.sub(r"\$\w+", "", no_groupings)))
    words -= PROMQL_WORDS
    # label_values(metric, label): the second argument is a label, not a metric
    for m in re.finditer(r"label_values\([^,]*,\s*(\w+)\)", no_labels):
        words.discard(m.group(1))
    return words


def test_dashboard_structure() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"]
    assert {v["name"] for v in dash["templating"]["list"]} >= {"host", "run", "job"}
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for needed in (
        "power per device",
        "energy per run",
        "co2e per run",
        "per-step energy",
        "job energy per node and device",
        "job co2e",
        "job power per node and device",
        "gpu utilization",
        "gpu memory",
    ):
        assert needed in titles
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["datasource"]["type"] == "prometheus" and p["targets"]


def test_every_query_names_a_metric_we_emit() -> None:
    exprs = queries()
    assert len(exprs) >= 10
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= EMITTED, (expr, names - EMITTED)


def test_metric_names_match_the_docs() -> None:
    doc = (ROOT / "docs" / "metrics.md").read_text()
    for base in (
        "hw_energy_joules_total",
        "hw_power_watts",
        "otel_energy_co2e_grams_total",
        "otel_energy_grid_carbon_intensity_grams_per_kW_h",
        "otel_energy_carbon_intensity_grams_per_kWh",
        "otel_energy_step_energy_joules",
        "hw_gpu_utilization",
        "hw_gpu_memory_usage_bytes",
        "hw_gpu_memory_limit_bytes",
        "hw_gpu_memory_utilization",
    ):
        assert f"`{base}`" in doc, base


def test_gpu_utilization_panels_read_both_prometheus_names() -> None:
    """Our in-process Prometheus exporter names the unit-``1`` gauge ``hw_gpu_utilization``; a
    Collector's ``prometheus`` exporter adds ``_ratio``: each panel must show either (it queried
    only the first, and was empty behind a Collector)."""
    utilization = [e for e in queries() if "hw_gpu_utilization" in e]
    assert len(utilization) == 2
    for expr in utilization:
        assert metric_names(expr) == {"hw_gpu_utilization", "hw_gpu_utilization_ratio"}, expr
        selectors = re.findall(r"hw_gpu_utilization(?:_ratio)?(\{[^}]*\})", expr)
        assert len(selectors) == 2 and selectors[0] == selectors[1], expr  # same filters
