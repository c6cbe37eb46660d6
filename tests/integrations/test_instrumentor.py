from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_energy import EnergyInstrumentor
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors.base import Sensor
from otel_energy.sensors.rapl import discover_rapl
from otel_energy.session import close_session, current_session, open_session, session
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
        assert sampler is not None and sampler is current_session().sampler  # type: ignore[union-attr]
        assert sampler.interval_s == 0.01
        assert sampler.wait_for_sample(time.monotonic(), 60.0)
        zones["package-0"].add_j(12.5)
        assert sampler.wait_for_sample(time.monotonic(), 60.0)
        got = points(metric_reader)
        energy = {a["hw.id"]: v for a, v in got["hw.energy"]}
        assert energy == {"intel-rapl:0": pytest.approx(12.5), "intel-rapl:0:2": 0.0}
        [(attrs, _)] = got["otel_energy.carbon_intensity"]
        assert attrs["otel_energy.carbon_intensity.source"].startswith("table:owid-ember:SWE:")
    finally:
        inst.uninstrument()
    assert current_session() is None and not sampler.running


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


# ---- the process session (otel_energy.session): every entry point opens and closes it ----


def _rapl_factory(tmp_path: Path, made: list[Sampler]) -> Callable[[], Sampler]:
    def factory() -> Sampler:
        made.append(Sampler(lambda: discover_rapl(tmp_path), interval_s=0.01))
        return made[-1]

    return factory


def test_two_users_share_one_session_and_the_last_closes_it(tmp_path: Path) -> None:
    server_tree(tmp_path)
    made: list[Sampler] = []
    a = open_session(_rapl_factory(tmp_path, made))
    b = open_session(_rapl_factory(tmp_path, made))
    assert a is b and len(made) == 1 and a.sampler.running
    assert a.sampler.newest_sample_s != float("-inf")  # the first user waited for a sample
    assert current_session() is a
    close_session(a)
    assert a.sampler.running and current_session() is a
    close_session(b)
    assert not a.sampler.running and current_session() is None
    with session(_rapl_factory(tmp_path, made)) as c:  # a new user after the last: a new sampler
        assert c is not a and len(made) == 2 and c.sampler.running
    assert not c.sampler.running and current_session() is None


def test_a_forked_child_sees_no_session_and_opens_its_own(tmp_path: Path) -> None:
    server_tree(tmp_path)
    made: list[Sampler] = []
    parent = open_session(_rapl_factory(tmp_path, made))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it sees through the pipe, never return into pytest
        code = 1
        try:
            seen = [current_session() is None]
            child = open_session(_rapl_factory(tmp_path, made), wait_s=None)
            seen += [child is not parent, child.sampler is not parent.sampler, len(made) == 2]
            close_session(child)
            seen.append(not child.sampler.running)
            os.write(write, json.dumps(seen).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    try:
        _, status = os.waitpid(pid, 0)
        with os.fdopen(read, "rb") as pipe:
            seen = json.loads(pipe.read() or b"[]")
        assert os.waitstatus_to_exitcode(status) == 0
        assert seen == [True] * 5
        assert parent.sampler.running and current_session() is parent  # the parent's is intact
    finally:
        close_session(parent)


def test_the_first_sample_wait_is_bounded_and_paid_once(tmp_path: Path) -> None:
    """A discovery that hangs (a stuck driver call) delays the first user by at most its bound;
    the next user does not wait again."""
    release = threading.Event()

    def hung_discovery() -> list[Sensor]:
        release.wait(60.0)  # bounded only so that a broken test cannot hang the suite
        return []

    opened = open_session(lambda: Sampler(hung_discovery, interval_s=0.01), wait_s=0.2)
    try:
        assert opened.sampler.newest_sample_s == float("-inf")  # returned, discovery still hung
        assert not opened.wait_first_sample(60.0)  # paid once: no second wait
        second = threading.Thread(target=lambda: close_session(open_session(wait_s=60.0)))
        second.start()
        second.join(30.0)  # bounds a hang only: without the once-only rule this waits 60 s
        assert not second.is_alive()
    finally:
        release.set()
        close_session(opened)
    assert current_session() is None


def test_a_session_recorder_carries_identity_tracer_and_instruments(
    tmp_path: Path, meter_provider: MeterProvider, metric_reader: InMemoryMetricReader
) -> None:
    server_tree(tmp_path)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    made: list[Sampler] = []
    with session(_rapl_factory(tmp_path, made)) as opened:
        assert opened.attach(meter_provider) is opened.attach(meter_provider)  # once a provider
        rec = opened.recorder(tp, meter_provider)
        assert rec.identity == opened.identity == dict(opened.rank.attributes())
        iv = rec.start("run", "train", None, {})
        rec.finish(iv, None)
        rec.flush()
        rec.close()
        assert {a["hw.id"] for a, _ in points(metric_reader)["hw.energy"]} == {
            "intel-rapl:0",
            "intel-rapl:0:2",
        }
    [span] = exporter.get_finished_spans()
    assert span.name == "train" and "otel_energy.energy" in (span.attributes or {})
    assert all(span.attributes[k] == v for k, v in opened.identity.items())  # type: ignore[index]
