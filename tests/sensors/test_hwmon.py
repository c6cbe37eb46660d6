"""Whole-node power from a hwmon tree written in place: discovery, hw.host.* and coverage."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_energy.config import load_config
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors import discover_sensors
from otel_energy.sensors.hwmon import discover_hwmon
from otel_energy.sensors.rapl import discover_rapl
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.instruments import attach
from otel_energy.telemetry.spans import SpanEnergyRecorder
from tests.conftest import FakeClock, points
from tests.fakes.hwmon import component_chip, power_meter, psu
from tests.fakes.powercap import server_tree
from tests.support.hf_helpers import Telemetry


def test_the_power_meter_wins_over_supplies_and_component_chips_are_ignored(
    tmp_path: Path,
) -> None:
    component_chip(tmp_path, 0)
    power_meter(tmp_path, 1, watts=250.0, accuracy="98.0%")
    psu(tmp_path, 2, with_energy=False)
    found = discover_hwmon(tmp_path)
    assert [s.info.hw_id for s in found] == ["hwmon:hwmon1:power1_average"]
    info = found[0].info
    assert info.whole_host and info.method == "hwmon_power_integration"
    assert info.update_period_s == 1.0  # power1_average_interval, ms
    assert info.uncertainty == pytest.approx(0.02)  # the meter's own accuracy, 98%
    assert found[0].read().power_w == pytest.approx(250.0)
    assert A.HW_TYPE not in info.attributes()  # hw.host.* carry no hw.type


def test_supplies_prefer_their_energy_counter_and_skip_output_channels(tmp_path: Path) -> None:
    psu(tmp_path, 0, with_energy=True)
    psu(tmp_path, 1, with_energy=False)
    found = discover_hwmon(tmp_path)
    assert [(s.info.hw_id, s.info.method) for s in found] == [
        ("hwmon:hwmon0:energy1_input", "hwmon_counter"),
        ("hwmon:hwmon1:power1_input", "hwmon_power_integration"),
    ]


def test_no_tree_or_only_component_chips_finds_nothing(tmp_path: Path) -> None:
    assert discover_hwmon(tmp_path / "absent") == []
    component_chip(tmp_path, 0)
    assert discover_hwmon(tmp_path) == []


def test_the_root_follows_the_variable_and_the_meter_is_listed_last(tmp_path: Path) -> None:
    power_meter(tmp_path / "hwmon", watts=300.0)
    server_tree(tmp_path / "powercap")
    config = load_config(
        {
            "OTEL_PYTHON_ENERGY_HWMON_ROOT": str(tmp_path / "hwmon"),
            "OTEL_PYTHON_ENERGY_POWERCAP_ROOT": str(tmp_path / "powercap"),
            "OTEL_PYTHON_ENERGY_SOURCES": "rapl,hwmon",
        }
    )
    sensors = discover_sensors(config, {})
    assert [s.info.hw_type for s in sensors] == ["cpu", "memory", "host"]


def test_node_energy_from_a_tree_written_in_place_is_within_1_percent_of_what_was_fed(
    tmp_path: Path, clock: FakeClock
) -> None:
    """250 W for 5 s then 400 W for 5 s at the meter, 100 W at the CPU package: hw.host.energy
    holds the node's joules, hw.energy only the package's, and coverage is their ratio."""
    meter = power_meter(tmp_path / "hwmon", watts=250.0)
    zones = server_tree(tmp_path / "powercap")
    sensors = [*discover_rapl(tmp_path / "powercap"), *discover_hwmon(tmp_path / "hwmon")]
    sampler = Sampler(sensors, interval_s=0.1, clock=clock)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    attach(provider, sampler)
    t0 = clock()
    sampler.sample_once()
    fed = 0.0
    for tick in range(1, 101):
        watts = 250.0 if tick <= 50 else 400.0
        meter.set_w(watts)
        zones["package-0"].add_j(100.0 * 0.1)
        fed += watts * 0.1
        clock.advance(0.1)
        sampler.sample_once()
    got = points(reader)
    host = got[A.METRIC_HW_HOST_ENERGY]
    assert len(host) == 1
    assert host[0][1] == pytest.approx(fed, rel=0.01)
    assert all(not str(a[A.HW_ID]).startswith("hwmon") for a, _ in got[A.METRIC_HW_ENERGY])
    assert sum(v for _, v in got[A.METRIC_HW_ENERGY]) == pytest.approx(1000.0, rel=1e-6)
    assert got[A.METRIC_HW_HOST_POWER][0][1] == pytest.approx(400.0)
    assert got[A.HOST_COVERAGE][0][1] == pytest.approx(1000.0 / host[0][1])
    assert got[A.HOST_UNMEASURED_ENERGY][0][1] == pytest.approx(host[0][1] - 1000.0)
    w = sampler.window(t0, clock())
    assert w.energy_j == pytest.approx(1000.0, rel=1e-6)  # the node meter is not in the total
    assert w.host_energy_j == pytest.approx(fed, rel=0.01)
    assert w.coverage == pytest.approx(1000.0 / w.host_energy_j)
    # bands: RAPL 10% of 1000 J; the meter states 95%: 5% of the node's joules
    assert w.band_j == pytest.approx(100.0, rel=1e-6)
    assert w.host_band_j == pytest.approx(0.05 * w.host_energy_j, rel=1e-6)
    provider.shutdown()


def test_a_span_carries_node_energy_coverage_and_its_band(tmp_path: Path, clock: FakeClock) -> None:
    """A span over 3 s at 300 W (meter) with a 60 W CPU package: its attributes say both, the
    share explained, the rest, and a band from RAPL's 10% (the span is on sample boundaries)."""
    meter = power_meter(tmp_path / "hwmon", watts=300.0)
    zones = server_tree(tmp_path / "powercap")
    sensors = [*discover_rapl(tmp_path / "powercap"), *discover_hwmon(tmp_path / "hwmon")]
    sampler = Sampler(sensors, interval_s=0.1, clock=clock)
    tel = Telemetry()
    recorder = SpanEnergyRecorder(sampler, tel.tracer_provider.get_tracer("t"))
    sampler.sample_once()
    interval = recorder.start("train", "train")
    for _ in range(30):
        meter.set_w(300.0)
        zones["package-0"].add_j(6.0)
        clock.advance(0.1)
        sampler.sample_once()
    recorder.finish(interval)
    clock.advance(0.1)
    sampler.sample_once()  # past the span's end: the listener completes it
    recorder.flush(5.0)
    (span,) = tel.finished("train")
    a = dict(span.attributes or {})
    assert a[A.ENERGY] == pytest.approx(180.0, rel=1e-6)
    assert a[A.HOST_ENERGY] == pytest.approx(900.0, rel=1e-6)
    assert a[A.HOST_COVERAGE] == pytest.approx(0.2, rel=1e-6)
    assert a[A.HOST_UNMEASURED_ENERGY] == pytest.approx(720.0, rel=1e-6)
    assert a[A.ENERGY_UNCERTAINTY] == pytest.approx(18.0, rel=1e-6)
    recorder.close()
    tel.tracer_provider.shutdown()
    tel.meter_provider.shutdown()
