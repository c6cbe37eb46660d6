"""Live carbon intensity: each provider against a loopback server answering as documented;
the refresher's cache, TTL, backoff and persistence; CO2e integrated interval by interval."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from otel_energy.carbon import Intensity, co2e_g
from otel_energy.carbon import providers as cp
from otel_energy.carbon.live import CACHE_MAX_AGE_S, MIN_BACKOFF_S, LiveIntensity
from otel_energy.config import ConfigError, load_config
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors.base import DeviceInfo, Reading
from tests.conftest import FakeClock
from tests.support.fake_carbon_apis import EM_TOKEN, WT_PASSWORD, WT_TOKEN, WT_USER, Api, carbon_api
from tests.support.subprocesses import run_cli

TABLE = Intensity(480.6, "table:owid-ember:world")


def wall_of(api: Api) -> datetime:
    """ "Now" as a test sees it: ten minutes after the fake API's latest value (its half hour)."""
    return api.base + timedelta(minutes=10)


def test_electricity_maps_latest_and_history_with_auth_token() -> None:
    with carbon_api() as (url, api):
        points = cp.ElectricityMaps(EM_TOKEN, zone="DE", base_url=url).fetch()
        b = api.base
        assert [(p.at, p.g_per_kwh, p.kind) for p in points] == [
            (b - timedelta(hours=2), 280.0, "average"),
            (b - timedelta(hours=1), 290.0, "average"),
            (b, 302.0, "average"),
        ]
        assert {r["path"] for r in api.requests} == {
            "/v3/carbon-intensity/latest",
            "/v3/carbon-intensity/history",
        }
        assert all(
            r["headers"]["auth-token"] == EM_TOKEN and r["query"]["zone"] == ["DE"]
            for r in api.requests
        )
        api.requests.clear()
        cp.ElectricityMaps(EM_TOKEN, lat=52.5, lon=13.4, base_url=url).fetch()
        assert api.requests[-1]["query"] == {"lat": ["52.5"], "lon": ["13.4"]}
        with pytest.raises(cp.ProviderError, match="HTTP 401"):
            cp.ElectricityMaps("wrong", zone="DE", base_url=url).fetch()


def test_watttime_login_region_marginal_in_g_per_kwh() -> None:
    with carbon_api() as (url, api):
        wt = cp.WattTime(WT_USER, WT_PASSWORD, lat=38.5, lon=-121.5, base_url=url)
        [p] = wt.fetch(now_s=0.0)
        assert p.kind == "marginal"
        assert p.g_per_kwh == pytest.approx(1000.0 * 0.45359237)  # lb/MWh -> g/kWh
        assert wt.region == "CAISO_NORTH"
        wt.fetch(now_s=60.0)  # token reused within its lifetime
        paths = [r["path"] for r in api.requests]
        assert paths.count("/login") == 1 and paths.count("/v3/region-from-loc") == 1
        forecast = [r for r in api.requests if r["path"] == "/v3/forecast"][-1]
        assert forecast["headers"]["authorization"] == f"Bearer {WT_TOKEN}"
        assert forecast["query"]["signal_type"] == ["co2_moer"]
        wt.fetch(now_s=3600.0)  # expired: logs in again
        assert [r["path"] for r in api.requests].count("/login") == 2


def test_uk_uses_actual_else_forecast() -> None:
    with carbon_api() as (url, api):
        [p] = cp.UKCarbonIntensity(base_url=url).fetch()
        assert (p.g_per_kwh, p.kind, p.at) == (263.0, "average", api.base)
        api.uk[0]["intensity"]["actual"] = None  # the half hour has not closed yet
        [p] = cp.UKCarbonIntensity(base_url=url).fetch()
        assert p.g_per_kwh == 266.0


@pytest.mark.parametrize(
    ("mode", "error", "match"),
    [
        ("429", cp.RateLimited, "HTTP 429"),
        ("500", cp.ProviderError, "HTTP 500"),
        ("malformed", cp.ProviderError, "malformed"),
        ("slow", cp.ProviderError, "timed out"),
    ],
)
def test_provider_errors_never_leak_secrets(mode: str, error: type, match: str) -> None:
    with carbon_api() as (url, api):
        api.fail["/v3/carbon-intensity/latest"] = mode
        api.fail["/v3/forecast"] = mode
        em = cp.ElectricityMaps(EM_TOKEN, zone="DE", base_url=url, timeout_s=0.5)
        with pytest.raises(error, match=match) as em_err:
            em.fetch()
        wt = cp.WattTime(WT_USER, WT_PASSWORD, region="CAISO_NORTH", base_url=url, timeout_s=0.5)
        with pytest.raises(error, match=match) as wt_err:
            wt.fetch()
        for exc in (em_err.value, wt_err.value):
            assert EM_TOKEN not in str(exc) and WT_PASSWORD not in str(exc)
            assert WT_TOKEN not in str(exc)
        if mode == "429":
            assert em_err.value.retry_after_s == 7.0


def live(
    url: str,
    tmp_path: Path,
    clock: FakeClock,
    provider: object = None,
    *,
    now: datetime | None = None,
) -> LiveIntensity:
    """A refresher over ``provider`` (the UK API at ``url`` by default) whose wall clock reads
    ``now`` (the time of the test by default), then moves with the test's ``clock``."""
    return LiveIntensity(
        provider or cp.UKCarbonIntensity(base_url=url, timeout_s=0.5),  # type: ignore[arg-type]
        TABLE,
        tmp_path,
        clock=wall_clock(clock, now),
    )


def wall_clock(clock: FakeClock, now: datetime | None = None) -> Callable[[], float]:
    """Wall seconds reading ``now`` (the time of the test by default), moving with ``clock``."""
    start_s, t0 = (now or datetime.now(timezone.utc)).timestamp(), clock.t
    return lambda: start_s + (clock.t - t0)


def test_refresher_ttl_backoff_retry_after_and_fallback(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "otel_energy")
    with carbon_api() as (url, api):
        api.fail["/intensity"] = "500"
        li = live(url, tmp_path, clock, now=wall_of(api))
        assert li.current() == TABLE  # nothing fetched yet: the table
        assert li.refresh_once() == MIN_BACKOFF_S
        assert li.refresh_once() == 2 * MIN_BACKOFF_S  # exponential backoff
        assert li.current() == TABLE
        del api.fail["/intensity"]
        assert li.refresh_once() == cp.UKCarbonIntensity.ttl_s  # success: the data's TTL
        value = li.current()
        assert (value.g_per_kwh, value.source, value.kind) == (
            263.0,
            "live:uk-carbon-intensity",
            "average",
        )
        assert value.timestamp == api.base.isoformat()
        api.fail["/intensity"] = "429"
        assert li.refresh_once() == 7.0  # Retry-After honoured
        assert li.current().source == "live:uk-carbon-intensity"  # last good value kept
        li.refresh_once()
    messages = [r.getMessage() for r in caplog.records]
    unavailable = [m for m in messages if "unavailable" in m]
    # said once per change: table fallback, then (after recovering) the live value kept
    assert len(unavailable) == 2
    assert "using table:owid-ember:world" in unavailable[0]
    assert "using live:uk-carbon-intensity" in unavailable[1]
    assert sum("carbon intensity from live:uk-carbon-intensity" in m for m in messages) == 1


def test_last_good_value_survives_a_restart_without_network(
    tmp_path: Path, clock: FakeClock
) -> None:
    with carbon_api() as (url, api):
        now = wall_of(api)
        assert live(url, tmp_path, clock, now=now).refresh_once() > 0
    restarted = live("http://127.0.0.1:9", tmp_path, clock, now=now)  # nothing listens there
    value = restarted.current()
    assert (value.g_per_kwh, value.source) == (263.0, "cache:live:uk-carbon-intensity")
    assert restarted.refresh_once() == MIN_BACKOFF_S  # fails, keeps the cached value
    assert restarted.current().source == "cache:live:uk-carbon-intensity"
    late = LiveIntensity(
        cp.UKCarbonIntensity(base_url="http://127.0.0.1:9"),
        TABLE,
        tmp_path,
        clock=wall_clock(clock, now + timedelta(seconds=CACHE_MAX_AGE_S)),
    )
    assert late.current() == TABLE  # too old to beat the annual table


class Watts:
    """A counter sensor drawing exactly ``watts`` on the fake clock."""

    def __init__(self, clock: FakeClock, watts: float) -> None:
        self.clock, self.watts, self.t0 = clock, watts, clock.t
        self.info = DeviceInfo("synthetic:0", "gpu", "synthetic", "nvml_counter")
        self.wrap_j = None

    def read(self) -> Reading:
        return Reading(counter_j=self.watts * (self.clock.t - self.t0))

    def close(self) -> None:
        pass


def test_co2e_of_a_span_crossing_an_intensity_change_is_exact(clock: FakeClock) -> None:
    """3600 W for 10 s; the grid goes from 100 to 500 g/kWh 4 s into the span."""
    now = datetime.now(timezone.utc)

    class Step:
        name, key, ttl_s = "step", "step:1", 60.0

        def fetch(self) -> list[cp.IntensityPoint]:
            return [
                cp.IntensityPoint(now - timedelta(minutes=30), 100.0, "average"),
                cp.IntensityPoint(now + timedelta(seconds=4), 500.0, "average"),
            ]

        def fetch_forecast(self) -> list[cp.IntensityPoint]:
            return []

    li = LiveIntensity(Step(), TABLE, None, clock=wall_clock(clock, now))
    li.refresh_once()
    sampler = Sampler([Watts(clock, 3600.0)], clock=clock, intensity=li, pue=1.0)
    t0 = clock.t
    sampler.sample_once()
    for _ in range(100):
        clock.advance(0.1)
        sampler.sample_once()
    w = sampler.window(t0, t0 + 10.0)
    # each interval at the intensity valid during it: (t0, t0+4] at 100, (t0+4, t0+10] at 500
    expected = co2e_g(3600.0 * 4, 1.0, 100.0) + co2e_g(3600.0 * 6, 1.0, 500.0)
    assert w.energy_j == pytest.approx(36000.0)
    assert w.co2e_g == pytest.approx(expected, rel=1e-6)
    assert w.co2e_g != pytest.approx(co2e_g(36000.0, 1.0, 100.0))


@pytest.mark.parametrize(
    ("env", "match"),
    [
        (
            {"OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "co2signal"},
            "table, electricitymaps, watttime, uk",
        ),
        ({"OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "electricitymaps"}, "OTEL_PYTHON_ENERGY_ZONE"),
        (
            {
                "OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "electricitymaps",
                "OTEL_PYTHON_ENERGY_ZONE": "DE",
            },
            "OTEL_PYTHON_ENERGY_ELECTRICITYMAPS_TOKEN",
        ),
        (
            {
                "OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "watttime",
                "OTEL_PYTHON_ENERGY_LATITUDE": "38",
                "OTEL_PYTHON_ENERGY_LONGITUDE": "-121",
            },
            "OTEL_PYTHON_ENERGY_WATTTIME_USERNAME",
        ),
        (
            {
                "OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "watttime",
                "OTEL_PYTHON_ENERGY_LATITUDE": "95",
                "OTEL_PYTHON_ENERGY_LONGITUDE": "0",
            },
            "OTEL_PYTHON_ENERGY_LATITUDE='95'.*-90 to 90",
        ),
    ],
)
def test_live_provider_configuration_errors(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(env)


def test_secrets_stay_out_of_the_config_repr() -> None:
    cfg = load_config(
        {
            "OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "watttime",
            "OTEL_PYTHON_ENERGY_ZONE": "CAISO_NORTH",
            "OTEL_PYTHON_ENERGY_WATTTIME_USERNAME": WT_USER,
            "OTEL_PYTHON_ENERGY_WATTTIME_PASSWORD": WT_PASSWORD,
        }
    )
    assert cfg.carbon is not None and cfg.carbon.password == WT_PASSWORD
    assert WT_PASSWORD not in repr(cfg)
    uk = load_config({"OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "uk"})
    assert uk.carbon is not None and uk.carbon.provider == "uk"
    override = load_config(
        {"OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "uk", "OTEL_PYTHON_ENERGY_CARBON_INTENSITY": "50"}
    )
    assert override.carbon is None  # an explicit intensity wins over live data


def test_environment_to_metrics_with_a_live_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_PYTHON_ENERGY_* selects the UK API; the refresher thread fetches it; the intensity
    gauge and CO2e series say where the value came from and when it was for."""
    import time

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_energy import EnergyInstrumentor
    from tests.conftest import points

    with carbon_api() as (url, api):
        for key, value in {
            "OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "uk",
            "OTEL_PYTHON_ENERGY_CARBON_API_URL": url,
            "OTEL_PYTHON_ENERGY_CACHE_DIR": str(tmp_path),
            "OTEL_PYTHON_ENERGY_SOURCES": "estimate",
            "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "0.02",
        }.items():
            monkeypatch.setenv(key, value)
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        inst = EnergyInstrumentor()
        inst.instrument(meter_provider=provider)
        try:
            # until the refresher has fetched both the value and the forecast (10 s bounds a
            # hang only: on a loaded machine the second request can take a while)
            deadline = time.monotonic() + 10
            got = points(reader)
            while time.monotonic() < deadline and not (
                got.get("otel_energy.carbon_intensity.forecast")
                and got["otel_energy.carbon_intensity"][0][1] == 263.0
            ):
                time.sleep(0.05)
                got = points(reader)
        finally:
            inst.uninstrument()
            provider.shutdown()
    [(attrs, value)] = got["otel_energy.carbon_intensity"]
    assert value == 263.0
    assert attrs["otel_energy.carbon_intensity.source"] == "live:uk-carbon-intensity"
    assert attrs["otel_energy.carbon_intensity.timestamp"] == api.base.isoformat()
    assert attrs["otel_energy.carbon_intensity.kind"] == "average"
    assert all(
        a["otel_energy.carbon_intensity.source"] == "live:uk-carbon-intensity"
        for a, _ in got["otel_energy.co2e"]
    )
    assert list(tmp_path.glob("intensity-*.json"))  # persisted for the next start
    forecast = {
        a["otel_energy.carbon_intensity.horizon_h"]: v
        for a, v in got["otel_energy.carbon_intensity.forecast"]
    }
    assert set(forecast) == {1, 2, 3, 6, 12, 24}
    assert forecast[1] == 250.0 and forecast[6] == 80.0  # the fake's dip is 5 h to 7 h ahead


def pts(
    start: datetime, step_min: int, values: list[float], kind: str = "average"
) -> list[cp.IntensityPoint]:
    return [
        cp.IntensityPoint(start + timedelta(minutes=step_min * i), v, kind)
        for i, v in enumerate(values)
    ]


def test_best_start_is_exact_on_a_synthetic_forecast() -> None:
    from otel_energy.carbon.forecast import best_start, mean_intensity

    NOW = datetime.now(timezone.utc).replace(microsecond=0)
    forecast = pts(NOW, 30, [300, 300, 100, 100, 400, 400, 200, 200])  # 4 h of half hours
    advice = best_start(forecast, timedelta(hours=1), timedelta(hours=4), NOW)
    assert advice is not None
    assert advice.start == NOW + timedelta(hours=1) and advice.mean_g_per_kwh == 100.0
    assert advice.now_mean_g_per_kwh == 300.0 and advice.saving == pytest.approx(2 / 3)
    # a 45-minute job from +45 min: 15 min at 300, then 30 min at 100
    assert mean_intensity(
        forecast, NOW + timedelta(minutes=45), timedelta(minutes=45)
    ) == pytest.approx((15 * 300 + 30 * 100) / 45)
    # a job longer than the window left, or outside the forecast: no advice
    assert best_start(forecast, timedelta(hours=5), timedelta(hours=6), NOW) is None
    assert mean_intensity(forecast, NOW - timedelta(minutes=1), timedelta(hours=1)) is None
    # within 1 h a 1 h job can only start now
    only_now = best_start(forecast, timedelta(hours=1), timedelta(hours=1), NOW)
    assert only_now is not None and only_now.start == NOW


def test_providers_forecasts() -> None:
    with carbon_api() as (url, _api):
        em = cp.ElectricityMaps(EM_TOKEN, zone="DE", base_url=url).fetch_forecast()
        assert len(em) == 24 and {p.g_per_kwh for p in em} == {150.0, 300.0}
        uk = cp.UKCarbonIntensity(base_url=url).fetch_forecast()
        assert len(uk) == 96 and min(p.g_per_kwh for p in uk) == 80.0
        assert all(p.kind == "average" for p in [*em, *uk])
        wt = cp.WattTime(WT_USER, WT_PASSWORD, region="CAISO_NORTH", base_url=url)
        forecast = wt.fetch_forecast()
        assert len(forecast) == 288 and all(p.kind == "marginal" for p in forecast)
        assert min(p.g_per_kwh for p in forecast) == pytest.approx(600 * 0.45359237)
        assert len(wt.fetch()) == 1  # the current value is still one point


def test_refresher_keeps_the_forecast(tmp_path: Path, clock: FakeClock) -> None:
    with carbon_api() as (url, _api):
        li = LiveIntensity(cp.UKCarbonIntensity(base_url=url), TABLE, tmp_path)
        li.refresh_once()
    forecast = li.forecast()
    assert len(forecast) == 96
    later = li.forecast_at(forecast[11].t_s + 10 * 60)
    assert later is not None and later.g_per_kwh == 80.0
    assert li.forecast_at(forecast[0].t_s - 3 * 3600) is None


def test_cli_when_recommends_the_dip(tmp_path: Path) -> None:
    with carbon_api() as (url, _api):
        env = dict(
            OTEL_PYTHON_ENERGY_CARBON_PROVIDER="uk",
            OTEL_PYTHON_ENERGY_CARBON_API_URL=url,
            OTEL_PYTHON_ENERGY_CACHE_DIR=str(tmp_path),
        )
        proc = run_cli("when", "--hours", "2", "--within", "24", env=env, timeout=60)
        table = run_cli(
            "when",
            env={k: v for k, v in env.items() if k != "OTEL_PYTHON_ENERGY_CARBON_PROVIDER"},
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    # the 2 h dip is 5 h to 7 h ahead (from the current half hour): mean 80, vs 250 now
    assert "mean 80 gCO2e/kWh average" in proc.stdout
    assert "starting now: mean 250 gCO2e/kWh; waiting saves 68% of the CO2e" in proc.stdout
    hours_ahead = float(proc.stdout.split("(in ")[1].split(" h)")[0])
    assert 4.5 <= hours_ahead <= 5.0
    assert table.returncode == 2 and "OTEL_PYTHON_ENERGY_CARBON_PROVIDER" in table.stderr


def test_otel_energy_run_uses_the_configured_live_provider(tmp_path: Path) -> None:
    import json

    with carbon_api() as (url, api):
        env = dict(
            OTEL_PYTHON_ENERGY_CARBON_PROVIDER="uk",
            OTEL_PYTHON_ENERGY_CARBON_API_URL=url,
            OTEL_PYTHON_ENERGY_CACHE_DIR=str(tmp_path),
        )
        report = tmp_path / "r.json"
        proc = run_cli("run", "--report", report, "--no-plot", "--", "sh", "-c", "sleep 1", env=env)
    assert proc.returncode == 0, proc.stderr
    assert any(r["path"] == "/intensity" for r in api.requests)
    intensity = json.loads(report.read_text())["carbon_intensity"]
    assert intensity == {
        "g_per_kwh": 263.0,
        "source": "live:uk-carbon-intensity",
        "kind": "average",
    }


# ---- faults (issue 11, cases 10-14): each injected through the loopback fake APIs ----


def _refused(exc: BaseException) -> None:
    assert "redirect" in str(exc) and "another origin" in str(exc)
    for secret in (EM_TOKEN, WT_PASSWORD, WT_TOKEN):
        assert secret not in str(exc)


def test_credentials_never_follow_a_redirect_to_another_origin() -> None:
    """A 302 to another host:port is an error: neither the Electricity Maps token, the WattTime
    basic credentials nor the bearer token reach the second server."""
    with carbon_api() as (url, api), carbon_api() as (other_url, other):
        api.redirect_to = other_url
        for path in ("/v3/carbon-intensity/latest", "/v3/carbon-intensity/history", "/login"):
            api.fail[path] = "302"
        with pytest.raises(cp.ProviderError) as em_err:
            cp.ElectricityMaps(EM_TOKEN, zone="DE", base_url=url).fetch()
        wt = cp.WattTime(WT_USER, WT_PASSWORD, region="CAISO_NORTH", base_url=url)
        with pytest.raises(cp.ProviderError) as login_err:
            wt.fetch()
        del api.fail["/login"]
        api.fail["/v3/forecast"] = "302"
        with pytest.raises(cp.ProviderError) as bearer_err:
            wt.fetch()
        assert [r["path"] for r in api.requests].count("/login") == 2  # the 2nd one succeeded
        for err in (em_err, login_err, bearer_err):
            _refused(err.value)
        assert other.requests == []  # never contacted, so nothing was leaked
        # a redirect within the same origin (scheme, host, port) is still followed
        api.fail = {"/intensity": "302"}
        api.redirect_to = f"{url}/moved"
        [p] = cp.UKCarbonIntensity(base_url=url).fetch()
        assert p.g_per_kwh == 263.0 and api.requests[-1]["path"] == "/moved/intensity"


SECRET = "SECRET-KEY-12345"


@pytest.mark.parametrize("bad", [f"{SECRET}\nX", f"{SECRET}\r\nX-Evil: 1", f"{SECRET}\x00", "clé"])
def test_a_token_that_is_not_a_header_value_is_refused_without_showing_it(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(
            {
                "OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "electricitymaps",
                "OTEL_PYTHON_ENERGY_ZONE": "DE",
                "OTEL_PYTHON_ENERGY_ELECTRICITYMAPS_TOKEN": bad,
            }
        )
    assert "OTEL_PYTHON_ENERGY_ELECTRICITYMAPS_TOKEN" in str(err.value)
    assert SECRET not in str(err.value) and "clé" not in str(err.value)


def test_a_bad_header_value_never_reaches_the_log(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Built in code (no configuration check) or handed out by the server: still no secret in
    the error or the log, and a failed refresh like any other."""
    caplog.set_level(logging.DEBUG, "otel_energy")
    with carbon_api() as (url, api):
        em = cp.ElectricityMaps(f"{SECRET}\nX", zone="DE", base_url=url)
        api.wt_token = f"{SECRET}\nY"
        wt = cp.WattTime(WT_USER, WT_PASSWORD, region="CAISO_NORTH", base_url=url)
        for provider in (em, wt):
            li = live(url, tmp_path, clock, provider)
            assert li.refresh_once() == MIN_BACKOFF_S
            assert li.current() == TABLE
    assert caplog.records and SECRET not in caplog.text
    assert not any(r.exc_info for r in caplog.records)  # no traceback: a clean failure


def _set_intensity(api: Api, provider: str, g_per_kwh: float) -> None:
    if provider == "electricitymaps":
        api.em_latest = g_per_kwh
    elif provider == "watttime":
        api.wt_lb_per_mwh = g_per_kwh / cp.LB_PER_MWH_TO_G_PER_KWH
    else:
        api.uk[0]["intensity"]["actual"] = g_per_kwh


@pytest.mark.parametrize("provider", ["electricitymaps", "watttime", "uk"])
@pytest.mark.parametrize("bad", [float("nan"), -500.0, 1e300, float("inf")])
def test_an_intensity_out_of_range_is_a_failed_refresh(
    provider: str, bad: float, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Same bounds as OTEL_PYTHON_ENERGY_CARBON_INTENSITY (0-5000 g/kWh) for every provider."""
    caplog.set_level(logging.INFO, "otel_energy")
    with carbon_api() as (url, api):
        source = {
            "electricitymaps": cp.ElectricityMaps(EM_TOKEN, zone="DE", base_url=url),
            "watttime": cp.WattTime(WT_USER, WT_PASSWORD, region="CAISO_NORTH", base_url=url),
            "uk": cp.UKCarbonIntensity(base_url=url),
        }[provider]
        li = live(url, tmp_path, clock, source)
        _set_intensity(api, provider, bad)
        assert li.refresh_once() == MIN_BACKOFF_S
        assert li.current() == TABLE
        assert not list(tmp_path.glob("*.json"))  # nothing absurd persisted either
        _set_intensity(api, provider, 5000.0)  # the upper bound itself is a valid value
        assert li.refresh_once() == source.ttl_s
        assert li.current().g_per_kwh == pytest.approx(5000.0)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "out of range" in warning and "0 to 5000" in warning


def test_watttime_token_is_renewed_over_hours_of_refreshes(clock: FakeClock) -> None:
    """Three simulated hours at the 5-minute refresh: the server expires tokens after 30 min."""
    with carbon_api() as (url, api):
        api.clock = clock
        wall = wall_clock(clock, wall_of(api))  # one clock for the client and the refresher
        wt = cp.WattTime(WT_USER, WT_PASSWORD, region="CAISO_NORTH", base_url=url, clock=wall)
        li = LiveIntensity(wt, TABLE, None, clock=wall)
        waits = []
        for _ in range(round(3 * 3600 / wt.ttl_s)):
            waits.append(li.refresh_once())
            clock.advance(wt.ttl_s)
        logins = [r for r in api.requests if r["path"] == "/login"]
    assert waits == [wt.ttl_s] * len(waits)  # every refresh succeeded: no expired token used
    assert 3 * 3600 / api.wt_token_lifetime_s <= len(logins) <= 3 * 3600 / (20 * 60) + 1


def _cache_path(tmp_path: Path) -> Path:
    return tmp_path / "intensity-uk-carbon-intensity_GB.json"


@pytest.mark.parametrize(
    ("zone", "g_per_kwh"),
    [("", 200.0), ("+00:00", float("nan")), ("+00:00", -3.0)],  # "": a naive timestamp
)
def test_a_bad_cache_file_is_ignored_with_one_warning(
    zone: str,
    g_per_kwh: float,
    tmp_path: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json

    caplog.set_level(logging.INFO, "otel_energy")
    now = datetime.now(timezone.utc)
    at = (now - timedelta(hours=1)).replace(tzinfo=None).isoformat() + zone  # fresh enough
    point = {"at": at, "g_per_kwh": g_per_kwh, "kind": "average"}
    _cache_path(tmp_path).write_text(json.dumps({"points": [point]}))
    li = live("http://127.0.0.1:9", tmp_path, clock, now=now)  # must not raise
    assert li.current() == TABLE
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "ignoring" in warning.getMessage() and str(_cache_path(tmp_path)) in warning.getMessage()


def test_instrumentation_survives_a_cache_file_with_a_naive_timestamp(tmp_path: Path) -> None:
    import json

    from otel_energy.carbon.factory import provider_for as intensity_provider

    at = (datetime.now(timezone.utc) - timedelta(minutes=30)).replace(tzinfo=None).isoformat()
    point = {"at": at, "g_per_kwh": 200.0, "kind": "average"}
    _cache_path(tmp_path).write_text(json.dumps({"points": [point]}))
    config = load_config(
        {
            "OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "uk",
            "OTEL_PYTHON_ENERGY_CARBON_API_URL": "http://127.0.0.1:9",
            "OTEL_PYTHON_ENERGY_CACHE_DIR": str(tmp_path),
        }
    )
    provider = intensity_provider(config)
    assert provider.current() == config.intensity  # the table, not a crash


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_an_unwritable_cache_directory_is_reported_once(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "otel_energy")
    (tmp_path / "file").write_text("")  # a directory cannot be created under a file
    with carbon_api() as (url, _api):
        li = live(url, tmp_path / "file" / "cache", clock)
        for _ in range(3):
            assert li.refresh_once() == cp.UKCarbonIntensity.ttl_s  # the live value is still used
    assert li.current().g_per_kwh == 263.0
    [warning] = _warnings(caplog)  # said once, not at every refresh
    assert "OTEL_PYTHON_ENERGY_CACHE_DIR" in warning and str(tmp_path / "file") in warning


def test_a_full_disk_leaves_no_partial_cache_file(
    tmp_path: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ENOSPC from ``write(2)`` on the cache's temporary file (the lowest level we can fake
    without a full file system). One warning, no leftover; the next refresh with space writes
    the cache."""
    import errno
    import os

    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc (Linux)")
    caplog.set_level(logging.INFO, "otel_energy")
    with carbon_api() as (url, _api):
        li = live(url, tmp_path, clock)
        with monkeypatch.context() as m:
            m.setattr(os, "write", full_disk)
            assert li.refresh_once() == cp.UKCarbonIntensity.ttl_s
        [warning] = _warnings(caplog)
        assert "No space left on device" in warning and "OTEL_PYTHON_ENERGY_CACHE_DIR" in warning
        assert list(tmp_path.iterdir()) == []  # no 0-byte temporary file left
        assert li.refresh_once() == cp.UKCarbonIntensity.ttl_s  # space again: written
    assert [p.name for p in tmp_path.iterdir()] == [_cache_path(tmp_path).name]
    assert len(_warnings(caplog)) == 1


def test_the_cache_writes_through_no_link_planted_beside_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A shared cache directory: links planted at the cache file and at the temporary name it
    used (``NAME.<pid>.tmp``) are never written through (issue 19 item 3)."""
    import os
    import stat

    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.write_text("precious")
    cache = _cache_path(tmp_path)
    cache.with_suffix(f".{os.getpid()}.tmp").symlink_to(victim)
    cache.symlink_to(victim)
    with carbon_api() as (url, _api):
        li = live(url, tmp_path, clock)
        assert li.refresh_once() == cp.UKCarbonIntensity.ttl_s
    assert victim.read_text() == "precious"
    assert not cache.is_symlink() and "263" in cache.read_text()
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600


@pytest.mark.parametrize(
    "bad", ["not a url", "file:///etc", "ftp://example.org", "http://", "http://h:port", "x:y"]
)
def test_the_api_url_must_be_http_or_https(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(
            {
                "OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "uk",
                "OTEL_PYTHON_ENERGY_CARBON_API_URL": bad,
            }
        )
    assert "OTEL_PYTHON_ENERGY_CARBON_API_URL" in str(err.value)
    assert "http:// or https://" in str(err.value)


def test_an_api_url_with_credentials_is_refused_without_showing_them() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(
            {
                "OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "uk",
                "OTEL_PYTHON_ENERGY_CARBON_API_URL": f"https://bob:{SECRET}@proxy.example",
            }
        )
    assert "OTEL_PYTHON_ENERGY_CARBON_API_URL" in str(err.value) and SECRET not in str(err.value)
    ok = load_config(
        {
            "OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "uk",
            "OTEL_PYTHON_ENERGY_CARBON_API_URL": "HTTPS://proxy.example:8443/carbon",
        }
    )
    assert ok.carbon is not None and ok.carbon.api_url == "HTTPS://proxy.example:8443/carbon"


def test_a_stuck_provider_blocks_only_the_refresher_thread(clock: FakeClock) -> None:
    """A provider that never answers: the sampler keeps reading at the table's intensity."""
    import threading

    release = threading.Event()
    entered = threading.Event()
    now = datetime.now(timezone.utc)

    class Stuck:
        name, key, ttl_s = "stuck", "stuck:1", 60.0

        def fetch(self) -> list[cp.IntensityPoint]:
            entered.set()
            release.wait(30.0)  # bounded only so that a broken test cannot hang forever
            return [cp.IntensityPoint(now, 100.0, "average")]

        def fetch_forecast(self) -> list[cp.IntensityPoint]:
            return []

    li = LiveIntensity(Stuck(), TABLE, None, clock=wall_clock(clock, now))
    sampler = Sampler([Watts(clock, 100.0)], clock=clock, intensity=li, pue=1.0)
    li.start()
    try:
        assert entered.wait(10.0)  # the refresher is inside fetch() now
        for _ in range(10):
            clock.advance(0.1)
            sampler.sample_once()  # returns although the provider is stuck
        assert sampler.snapshot().intensity == TABLE
    finally:
        release.set()
        li.stop()


# ---- one interface, one clock (issue #13, problem 4) ----


class Steps:
    """An API client whose values are ``steps`` (seconds from ``base_s`` on the wall clock,
    g/kWh); its forecast the same points."""

    name, key, ttl_s = "steps", "steps:1", 60.0

    def __init__(self, base_s: float, steps: list[tuple[float, float]]) -> None:
        self.points = [
            cp.IntensityPoint(datetime.fromtimestamp(base_s + s, timezone.utc), g, "average")
            for s, g in steps
        ]

    def fetch(self) -> list[cp.IntensityPoint]:
        return list(self.points)

    def fetch_forecast(self) -> list[cp.IntensityPoint]:
        return list(self.points)


def test_a_suspend_does_not_shift_the_intensity_timeline(clock: FakeClock) -> None:
    """The machine sleeps for 2 h (the sampler's monotonic clock stops, the wall clock does not):
    the interval after the wake is charged at the intensity of its wall time (500), not at the
    one of 2 h earlier (100). Before the single wall clock, values were pinned to monotonic time
    when fetched, so every value read after a sleep was the one valid a sleep's length earlier."""
    wall_s = [datetime.now(timezone.utc).timestamp()]
    t0 = clock.t
    li = LiveIntensity(
        Steps(wall_s[0], [(-600.0, 100.0), (3600.0, 500.0)]),
        TABLE,
        None,
        clock=lambda: wall_s[0] + (clock.t - t0),
    )
    li.refresh_once()
    sampler = Sampler([Watts(clock, 3600.0)], clock=clock, intensity=li, pue=1.0)
    sampler.sample_once()
    wall_s[0] += 2 * 3600.0  # asleep: only the wall clock moves
    start = clock.t
    for _ in range(10):
        clock.advance(0.1)
        sampler.sample_once()
    w = sampler.window(start, clock.t)
    assert w.energy_j == pytest.approx(3600.0)
    assert w.co2e_g == pytest.approx(co2e_g(3600.0, 1.0, 500.0), rel=1e-6)
    assert sampler.snapshot().intensity.g_per_kwh == 500.0


def test_forecast_gauge_and_projection_read_the_sources_clock(clock: FakeClock) -> None:
    """A source whose wall clock is 400 days behind the machine's (an injected clock, as in a
    replay): the forecast gauge and the run's projection read the forecast at the source's
    "now", not at the machine's. Before the single clock both used ``datetime.now()`` and saw
    no forecast at all."""
    from otel_energy.telemetry.instruments import INSTRUMENTS
    from otel_energy.telemetry.predict import remaining_intensity

    now_s = (datetime.now(timezone.utc) - timedelta(days=400)).timestamp()
    hourly = [(h * 3600.0, 100.0 + 10 * h) for h in range(-1, 30)]
    li = LiveIntensity(Steps(now_s, hourly), TABLE, None, clock=lambda: now_s + 60.0)
    li.refresh_once()
    sampler = Sampler([Watts(clock, 100.0)], clock=clock, intensity=li, pue=1.0)
    sampler.sample_once()
    [spec] = [s for s in INSTRUMENTS if s.name == "otel_energy.carbon_intensity.forecast"]
    got = {
        o.attributes["otel_energy.carbon_intensity.horizon_h"]: o.value  # type: ignore[index]
        for o in spec.observe(sampler.snapshot(), {}, li)
    }
    assert got == {h: 100.0 + 10 * h for h in (1, 2, 3, 6, 12, 24)}
    g, basis = remaining_intensity(li, 999.0, 2 * 3600.0)
    assert basis == "forecast"
    assert g == pytest.approx((59 * 100 + 60 * 110 + 1 * 120) / 120)  # from +1 min, for 2 h
