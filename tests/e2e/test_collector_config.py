"""collector-config/: every file parses, uses only contrib components, defines what it uses.

No Collector binary installs on these machines, so this checks structure, not behaviour.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO as ROOT

CONFIGS = sorted((ROOT / "collector-config").glob("*.yaml"))

# Components of the OpenTelemetry Collector contrib distribution (otelcol-contrib) we may use.
CONTRIB = {
    "receivers": {"otlp", "prometheus", "hostmetrics"},
    "processors": {
        "batch",
        "memory_limiter",
        "resource",
        "attributes",
        "filter",
        "transform",
        "cumulativetodelta",
        "resourcedetection",
    },
    "exporters": {"otlp", "otlphttp", "prometheus", "prometheusremotewrite", "debug"},
    "connectors": {"spanmetrics"},
}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_expected_configs_exist() -> None:
    assert {p.name for p in CONFIGS} == {
        "prometheus.yaml",
        "prometheus-remote-write.yaml",
        "jaeger.yaml",
        "honeycomb.yaml",
        "all.yaml",
        "spanmetrics.yaml",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_complete_and_uses_contrib_components(path: Path) -> None:
    cfg = load(path)
    assert set(cfg) <= {
        "receivers",
        "processors",
        "exporters",
        "connectors",
        "extensions",
        "service",
    }
    for section, allowed in CONTRIB.items():
        for name in cfg.get(section, {}) or {}:
            assert name.split("/")[0] in allowed, f"{path.name}: {section}.{name} not in contrib"
    pipelines = cfg["service"]["pipelines"]
    assert pipelines
    connectors = set(cfg.get("connectors", {}) or {})
    used: set[str] = set()
    for pname, p in pipelines.items():
        assert pname.split("/")[0] in {"traces", "metrics", "logs"}
        for r in p["receivers"]:
            assert r in cfg["receivers"] or r in connectors, f"{path.name}:{pname}: {r}"
        for e in p["exporters"]:
            assert e in cfg["exporters"] or e in connectors, f"{path.name}:{pname}: {e}"
        for proc in p.get("processors", []):
            assert proc in cfg["processors"], f"{path.name}:{pname}: {proc}"
        # memory_limiter first, batch present: sensible for many nodes
        assert p["processors"][0] == "memory_limiter" and "batch" in p["processors"]
        used.update(p["receivers"], p["exporters"], p.get("processors", []))
    for section in ("receivers", "processors", "exporters"):
        unused = set(cfg.get(section, {}) or {}) - used
        assert not unused, f"{path.name}: defined but unused {section}: {unused}"
    assert "otel/opentelemetry-collector-contrib" in path.read_text()  # how to run it


def env_refs(text: str) -> set[str]:
    return set(re.findall(r"\$\{env:([A-Z0-9_]+)\}", text))


def test_env_vars_are_documented_and_secrets_never_written() -> None:
    doc = (ROOT / "docs" / "collector.md").read_text()
    for path in CONFIGS:
        for var in env_refs(path.read_text()):
            assert f"`{var}`" in doc, f"{path.name} uses undocumented {var}"
        cfg = load(path)
        for name, exp in (cfg.get("exporters") or {}).items():
            for key, value in ((exp or {}).get("headers") or {}).items():
                assert re.fullmatch(r"\$\{env:[A-Z0-9_]+\}", str(value)), (path.name, name, key)


def test_prometheus_exporters_keep_resource_attributes() -> None:
    """host.name and rank must become labels, or series of different nodes would merge."""
    for path in CONFIGS:
        for name, exp in (load(path).get("exporters") or {}).items():
            if name.split("/")[0] in ("prometheus", "prometheusremotewrite"):
                assert exp["resource_to_telemetry_conversion"]["enabled"] is True, path.name
