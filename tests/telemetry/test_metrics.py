from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_energy.carbon import Intensity, StaticIntensity
from otel_energy.engine.sampler import Sampler
from otel_energy.instrumentor import EnergyInstrumentor
from otel_energy.sensors.nvml import discover_nvml
from otel_energy.sensors.rapl import discover_rapl
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.instruments import INSTRUMENTS
from otel_energy.telemetry.scope import SCHEMA_URL, SCOPE
from tests.conftest import FakeClock, points
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.fakes.powercap import server_tree
from tests.support.paths import DOCS


def fake_machine(tmp_path: Path, clock: FakeClock) -> tuple[Sampler, FakeNvml, dict]:
    zones = server_tree(tmp_path)
    nvml = FakeNvml([FakeGpu("GPU-1111", energy_mj=0, power_mw=250_000)])
    sensors = [*discover_nvml({}, nvml), *discover_rapl(tmp_path)]
    sampler = Sampler(
        sensors, clock=clock, intensity=StaticIntensity(Intensity(400.0, "override")), pue=1.5
    )
    sampler.sample_once()
    for _ in range(10):
        clock.advance(0.1)
        nvml.gpus[0].energy_mj += 25_000  # type: ignore[operator]
        zones["package-0"].add_j(6.0)
        zones["dram-0"].add_j(1.0)
        sampler.sample_once()
    return sampler, nvml, zones


def test_metric_names_units_attributes_and_values(
    tmp_path: Path,
    clock: FakeClock,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
) -> None:
    sampler, _, _ = fake_machine(tmp_path, clock)
    inst = EnergyInstrumentor()
    inst.instrument(meter_provider=meter_provider, sampler=sampler)
    try:
        got = points(metric_reader)
        units = points.units  # type: ignore[attr-defined]
        assert units == {
            "hw.energy": "J",
            "hw.power": "W",
            "otel_energy.co2e": "g",
            # UCUM g/(kW.h), spelled so that Prometheus gets ..._grams_per_kW_h
            "otel_energy.grid.carbon_intensity": "g/kW/h",
            "otel_energy.carbon_intensity": "g/kWh",  # the deprecated alias keeps its old unit
            "hw.gpu.utilization": "1",
            "hw.gpu.memory.usage": "By",
            "hw.gpu.memory.limit": "By",
            "hw.gpu.memory.utilization": "1",
            "otel_energy.attributed.energy": "J",
        }
        energy = {a[A.HW_ID]: (a, v) for a, v in got["hw.energy"]}
        # Without attribution (this sampler has no job) each device is the job's, whole.
        job = {
            (a[A.HW_ID], a[A.ATTRIBUTION_VIEW]): (a, v) for a, v in got[A.METRIC_ATTRIBUTED_ENERGY]
        }
        assert set(job) == {(h, v) for h in energy for v in ("attributional", "consequential")}
        for (hw_id, _view), (attrs, value) in job.items():
            assert value == pytest.approx(energy[hw_id][1])
            assert attrs[A.ATTRIBUTION_METHOD] == "whole_device" and attrs[A.HW_TYPE]
        assert set(energy) == {"GPU-1111", "intel-rapl:0", "intel-rapl:0:2"}
        gpu_attrs, gpu_j = energy["GPU-1111"]
        assert gpu_j == pytest.approx(250.0)  # 250 W for 1 s
        assert gpu_attrs[A.HW_TYPE] == "gpu" and gpu_attrs[A.HW_VENDOR] == "NVIDIA"
        assert gpu_attrs[A.METHOD] == "nvml_counter"
        assert gpu_attrs[A.ESTIMATED] is False
        assert energy["intel-rapl:0"][0][A.HW_TYPE] == "cpu"
        assert energy["intel-rapl:0"][1] == pytest.approx(60.0)
        assert energy["intel-rapl:0:2"][0][A.HW_TYPE] == "memory"
        assert energy["intel-rapl:0:2"][0][A.HW_PARENT] == "intel-rapl:0"
        power = {a[A.HW_ID]: v for a, v in got["hw.power"]}
        assert power["GPU-1111"] == 250.0
        assert power["intel-rapl:0"] == pytest.approx(60.0)
        co2 = {a[A.HW_ID]: (a, v) for a, v in got["otel_energy.co2e"]}
        # 250 J x 1.5 PUE x 400 g/kWh
        assert co2["GPU-1111"][1] == pytest.approx(250.0 / 3.6e6 * 1.5 * 400.0)
        assert co2["GPU-1111"][0][A.CARBON_INTENSITY_SOURCE] == "override"
        [(ci_attrs, ci)] = got["otel_energy.grid.carbon_intensity"]
        assert ci == 400.0 and ci_attrs[A.CARBON_INTENSITY_KIND] == "average"
        # the deprecated name still carries the same series for existing dashboards
        assert got["otel_energy.carbon_intensity"] == [(ci_attrs, ci)]
    finally:
        inst.uninstrument()


def test_uninstrument_stops_sampler_and_silences_instruments(
    tmp_path: Path,
    clock: FakeClock,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
) -> None:
    server_tree(tmp_path)
    sampler = Sampler(lambda: discover_rapl(tmp_path), interval_s=0.01)
    inst = EnergyInstrumentor()
    inst.instrument(meter_provider=meter_provider, sampler=sampler)
    assert sampler.running
    import time

    assert sampler.wait_for_sample(time.monotonic(), 60.0)
    assert points(metric_reader)["hw.energy"]
    inst.uninstrument()
    assert not sampler.running
    assert "hw.energy" not in points(metric_reader)
    # instrumenting again revives the same instruments (a meter cannot register a name twice)
    sampler2 = Sampler(lambda: discover_rapl(tmp_path), interval_s=0.01)
    inst.instrument(meter_provider=meter_provider, sampler=sampler2)
    assert sampler2.wait_for_sample(time.monotonic(), 60.0)
    assert len(points(metric_reader)["hw.energy"]) == 2
    inst.uninstrument()


def test_callbacks_never_raise(
    clock: FakeClock, meter_provider: MeterProvider, metric_reader: InMemoryMetricReader
) -> None:
    class Broken(Sampler):
        def snapshot(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    inst = EnergyInstrumentor()
    inst.instrument(meter_provider=meter_provider, sampler=Broken([], clock=clock))
    try:
        assert points(metric_reader) == {}
    finally:
        inst.uninstrument()


def test_a_failing_callback_is_logged_at_warning_once(
    clock: FakeClock,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An injected failure makes hw.energy disappear: the log says so at WARNING (with the
    error), once per instrument, however many collections follow."""

    class Broken(Sampler):
        def snapshot(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("injected snapshot failure")

    inst = EnergyInstrumentor()
    inst.instrument(meter_provider=meter_provider, sampler=Broken([], clock=clock))
    try:
        with caplog.at_level(logging.DEBUG):
            assert points(metric_reader) == {}
            assert points(metric_reader) == {}
    finally:
        inst.uninstrument()
    warned = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and A.METRIC_HW_ENERGY + " metric" in r.getMessage()
    ]
    assert len(warned) == 1
    assert warned[0].exc_info is not None and "injected" in str(warned[0].exc_info[1])


def test_every_instrument_is_documented() -> None:
    doc = (DOCS / "metrics.md").read_text()
    for spec in INSTRUMENTS:
        assert f"`{spec.name}`" in doc and spec.unit in doc
    for attr in (
        "hw.id",
        "hw.type",
        "hw.name",
        "hw.vendor",
        "hw.model",
        "hw.driver_version",
        "otel_energy.method",
        "otel_energy.estimated",
        "otel_energy.carbon_intensity.source",
        "otel_energy.carbon_intensity.timestamp",
        "otel_energy.carbon_intensity.kind",
        "otel_energy.pue",
        "otel_energy.gpu.mig_instances",
        "otel_energy.gpu.measures",
    ):
        assert f"`{attr}`" in doc, attr


def test_meter_scope_carries_the_semconv_schema_url(
    tmp_path: Path,
    clock: FakeClock,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
) -> None:
    sampler, _, _ = fake_machine(tmp_path, clock)
    inst = EnergyInstrumentor()
    inst.instrument(meter_provider=meter_provider, sampler=sampler)
    try:
        data = metric_reader.get_metrics_data()
        assert data is not None
        scopes = {
            sm.scope.name: sm.scope for rm in data.resource_metrics for sm in rm.scope_metrics
        }
        assert scopes[SCOPE].schema_url == SCHEMA_URL
        assert SCHEMA_URL.startswith("https://opentelemetry.io/schemas/1.")
    finally:
        inst.uninstrument()


def _names() -> dict[str, str]:
    """Every emitted name: the attribute module's constants and the instrument table's names."""
    names = {
        v: k
        for k, v in vars(A).items()
        if k.isupper() and isinstance(v, str) and not k.startswith("EVENT_")  # events: own registry
    }
    names.update({spec.name: "INSTRUMENTS" for spec in INSTRUMENTS})
    return names


def test_no_name_is_also_a_namespace_of_another() -> None:
    """Semconv naming: a metric or attribute name must not prefix other names. The deprecated
    intensity alias and the job span's command pair are the documented exceptions."""
    deprecated = {s.name for s in INSTRUMENTS if s.description.startswith("Deprecated")}
    exceptions = deprecated | {A.COMMAND}
    names = _names()
    names.pop(A.METRIC_CARBON_INTENSITY_DEPRECATED)  # an exception only while emitted deprecated
    names.update({spec.name: "INSTRUMENTS" for spec in INSTRUMENTS})
    clashes = sorted(
        (n, other)
        for n in names
        for other in names
        if other.startswith(n + ".") and n not in exceptions
    )
    assert clashes == []


def test_semconv_names_come_from_the_semconv_package() -> None:
    from opentelemetry.semconv._incubating.attributes import hw_attributes

    assert (A.HW_ID, A.HW_TYPE, A.HW_NAME, A.HW_PARENT, A.HW_VENDOR) == (
        "hw.id",
        "hw.type",
        "hw.name",
        "hw.parent",
        "hw.vendor",
    )
    assert hw_attributes.HwTypeValues.MEMORY.value == "memory"  # the hw.type we give DRAM


def test_every_attribute_constant_is_documented() -> None:
    text = (DOCS / "metrics.md").read_text() + (DOCS / "spans.md").read_text()
    names = [*_names(), *(A.device_type_energy(t) for t in ("gpu", "cpu", "memory"))]
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert missing == []
