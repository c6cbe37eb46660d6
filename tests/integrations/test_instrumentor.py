from __future__ import annotations

import logging
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_energy import EnergyInstrumentor
from otel_energy.engine import runtime
from tests.conftest import points
from tests.fakes.powercap import server_tree


def test_published_on_the_opentelemetry_instrumentor_entry_point() -> None:
    [ep] = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "energy"]
    assert ep.load() is EnergyInstrumentor
    assert EnergyInstrumentor().instrumentation_dependencies() == ()


def test_environment_drives_a_real_sampler(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
) -> None:
    zones = server_tree(tmp_path)
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_POWERCAP_ROOT", str(tmp_path))
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_SOURCES", "rapl")
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL", "0.01")
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_COUNTRY", "SE")
    inst = EnergyInstrumentor()
    inst.instrument(meter_provider=meter_provider)
    try:
        sampler = inst.sampler
        assert sampler is not None and sampler is runtime.current_sampler()
        assert sampler.interval_s == 0.01
        assert sampler.wait_for_sample(time.monotonic(), 5.0)
        zones["package-0"].add_j(12.5)
        assert sampler.wait_for_sample(time.monotonic(), 5.0)
        got = points(metric_reader)
        energy = {a["hw.id"]: v for a, v in got["hw.energy"]}
        assert energy == {"intel-rapl:0": pytest.approx(12.5), "intel-rapl:0:2": 0.0}
        [(attrs, _)] = got["otel_energy.carbon_intensity"]
        assert attrs["otel_energy.carbon_intensity.source"].startswith("table:owid-ember:SWE:")
    finally:
        inst.uninstrument()
    assert runtime.current_sampler() is None and not sampler.running


def test_bad_configuration_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    meter_provider: MeterProvider,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_PUE", "0.5")
    inst = EnergyInstrumentor()
    inst.instrument(meter_provider=meter_provider)
    try:
        assert inst.sampler is None
        [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert "OTEL_PYTHON_ENERGY_PUE='0.5'" in record.getMessage()
    finally:
        inst.uninstrument()


def test_shared_sampler_is_reference_counted(tmp_path: Path) -> None:
    server_tree(tmp_path)
    from otel_energy.engine.sampler import Sampler
    from otel_energy.sensors.rapl import discover_rapl

    made = []

    def factory() -> Sampler:
        made.append(Sampler(lambda: discover_rapl(tmp_path), interval_s=0.01))
        return made[-1]

    a = runtime.acquire_sampler(factory)
    b = runtime.acquire_sampler(factory)
    assert a is b and len(made) == 1 and a.running
    runtime.release_sampler(a)
    assert a.running
    runtime.release_sampler(b)
    assert not a.running and runtime.current_sampler() is None
