"""Whole-node power from a real Redfish service (sushy-tools' sushy-static on 127.0.0.1) and from
BMCs that hang, fail, answer garbage or redirect elsewhere: the sampler never waits for them and
the credentials never leave the Authorization header."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_energy.config import ConfigError, load_config
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors import discover_sensors
from otel_energy.sensors.polled import PolledPower
from otel_energy.sensors.rapl import discover_rapl
from otel_energy.sensors.redfish import reading_of, redfish_sensor
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.instruments import attach
from tests.conftest import FakeClock
from tests.fakes.powercap import server_tree
from tests.sensors.test_hwmon import points
from tests.support.backends import redfish_mockup, set_redfish_watts, sushy_static
from tests.support.loopback import QuietHandler, loopback_http

USER, PASSWORD = "root-user-7f3a", "pw-9c1e-secret"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def wait_for_watts(sensor: PolledPower, watts: float) -> None:
    """Wait (on the poller's fetch events) until the sensor reports ``watts``."""
    for _ in range(200):
        done = sensor.fetches
        if sensor.read().power_w == watts:
            return
        assert sensor.wait_for_fetches(done + 1, 10.0), "the poller stopped fetching"
    raise AssertionError(f"the sensor never reported {watts} W")


def no_secret_in(text: str) -> None:
    for secret in (USER, PASSWORD, TOKEN):
        assert secret not in text


@pytest.mark.parametrize("schema", ["power", "environment"])
def test_node_energy_from_the_redfish_emulator_is_within_1_percent_of_what_was_fed(
    tmp_path: Path, clock: FakeClock, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reading = redfish_mockup(tmp_path, 300.0, schema)
    zones = server_tree(tmp_path / "powercap")
    with sushy_static(tmp_path, tmp_path) as base:
        bmc = redfish_sensor(base, USER, PASSWORD, interval_s=0.1)
        sampler = Sampler([*discover_rapl(tmp_path / "powercap"), bmc], interval_s=0.1, clock=clock)
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        attach(provider, sampler)
        try:
            wait_for_watts(bmc, 300.0)
            t0 = clock()
            sampler.sample_once()
            fed = 0.0
            for watts in (300.0, 450.0):
                set_redfish_watts(reading, watts, schema)
                wait_for_watts(bmc, watts)
                for _ in range(50):  # 5 s of sampler time at this power
                    zones["package-0"].add_j(12.0)
                    fed += watts * 0.1
                    clock.advance(0.1)
                    sampler.sample_once()
            w = sampler.window(t0, clock())
            got = points(reader)
        finally:
            bmc.close()
            provider.shutdown()
    assert w.host_energy_j == pytest.approx(fed, rel=0.01)
    (host,) = got[A.METRIC_HW_HOST_ENERGY]
    assert host[1] == pytest.approx(fed, rel=0.01)
    assert host[0][A.HW_ID] == f"redfish:{base}" and host[0][A.METHOD] == "redfish"
    assert w.energy_j == pytest.approx(1200.0, rel=1e-6)
    assert w.coverage == pytest.approx(1200.0 / fed, rel=0.01)
    no_secret_in(caplog.text + repr(got))


class Bmc(QuietHandler):
    """A BMC that misbehaves as ``mode`` says; counts requests and their Authorization headers."""

    mode = "hang"
    release = threading.Event()
    entered = threading.Event()
    redirect_to = ""

    def do_GET(self) -> None:
        type(self).entered.set()
        if self.mode == "hang":
            type(self).release.wait(60)
            return
        if self.mode == "500":
            self.send_error(500)
            return
        if self.mode == "redirect":
            self.send_response(302)
            self.send_header("Location", self.redirect_to + self.path)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"Members": [{"@odata.id": \x00garbage')


class Elsewhere(QuietHandler):
    """Another origin: it must never be asked, least of all with our credentials."""

    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(str(self.headers.get("Authorization")))
        self.send_error(404)


@pytest.fixture
def bmc_mode(request: pytest.FixtureRequest) -> Iterator[type[Bmc]]:
    handler = type("BmcCase", (Bmc,), {"mode": request.param})
    handler.release = threading.Event()
    handler.entered = threading.Event()
    yield handler
    handler.release.set()


@pytest.mark.parametrize("bmc_mode", ["hang", "500", "garbage", "redirect"], indirect=True)
def test_a_failing_bmc_never_holds_the_sampler_and_nothing_leaks(
    tmp_path: Path, clock: FakeClock, bmc_mode: type[Bmc], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server_tree(tmp_path)
    Elsewhere.requests = []
    with loopback_http(Elsewhere) as elsewhere, loopback_http(bmc_mode) as base:
        bmc_mode.redirect_to = elsewhere
        bmc = redfish_sensor(base, USER, PASSWORD, interval_s=0.1, timeout_s=30.0)
        sampler = Sampler([*discover_rapl(tmp_path), bmc], interval_s=0.1, clock=clock)
        try:
            bmc.start()
            assert bmc_mode.entered.wait(10), "the BMC was never asked"
            if bmc_mode.mode != "hang":
                assert bmc.wait_for_fetches(2, 10)
            t0 = clock()
            longest = 0.0
            for _ in range(20):
                started = time.monotonic()
                sampler.sample_once()
                longest = max(longest, time.monotonic() - started)
                clock.advance(0.1)
            if bmc_mode.mode == "hang":  # still blocked in the BMC's socket the whole time
                assert not bmc_mode.release.is_set() and bmc.fetches == 0
            w = sampler.window(t0, clock())
            snap = sampler.snapshot()
        finally:
            bmc_mode.release.set()
            bmc.close()
    # A tick that waited for the BMC would take its 30 s timeout; the reads took no time at all.
    assert longest < 5.0
    assert w.energy_j >= 0 and not w.host_energy_j  # no node energy invented
    assert snap.host and snap.host[0].energy_j == 0.0
    assert Elsewhere.requests == []  # the redirect was not followed: no credentials sent away
    expected = {
        "hang": None,
        "500": "HTTP 500",
        "garbage": "malformed JSON",
        "redirect": "redirect to another origin",
    }[bmc_mode.mode]
    if expected is not None:
        assert expected in caplog.text
    if bmc_mode.mode == "redirect":
        assert "OTEL_PYTHON_ENERGY_REDFISH_URL" in caplog.text
    no_secret_in(caplog.text + repr(snap))


def test_readings_are_found_in_each_schema_and_nonsense_is_no_reading() -> None:
    assert reading_of({"PowerControl": [{"PowerConsumedWatts": 412}]}) == 412.0
    assert reading_of({"PowerControl": [{}, {"PowerConsumedWatts": 7.5}]}) == 7.5
    assert reading_of({"PowerWatts": {"Reading": 380.5}}) == 380.5
    assert reading_of({"InputPowerWatts": {"Reading": 190}}) == 190.0
    for junk in ({"PowerControl": [{"PowerConsumedWatts": True}]}, {"PowerWatts": 3}, [], None):
        assert reading_of(junk) is None


def test_a_url_with_credentials_is_refused_without_showing_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"OTEL_PYTHON_ENERGY_REDFISH_URL": f"https://{USER}:{PASSWORD}@bmc"})
    no_secret_in(str(err.value))
    assert "OTEL_PYTHON_ENERGY_REDFISH_URL" in str(err.value)


def test_the_url_variable_makes_the_bmc_the_node_meter_and_config_repr_hides_secrets(
    tmp_path: Path,
) -> None:
    config = load_config(
        {
            "OTEL_PYTHON_ENERGY_REDFISH_URL": "http://127.0.0.1:9",
            "OTEL_PYTHON_ENERGY_REDFISH_USERNAME": USER,
            "OTEL_PYTHON_ENERGY_REDFISH_PASSWORD": PASSWORD,
            "OTEL_PYTHON_ENERGY_SOURCES": "redfish",
        }
    )
    no_secret_in(repr(config))
    (sensor,) = discover_sensors(config, {})
    assert sensor.info.hw_id == "redfish:http://127.0.0.1:9" and sensor.info.whole_host
    sensor.close()
