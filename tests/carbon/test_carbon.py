from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import pytest

from otel_energy.carbon import J_PER_KWH, co2e_g, load_table, table_intensity


def test_data_file_records_source_year_and_license() -> None:
    text = resources.files("otel_energy").joinpath("data/carbon_intensity.csv").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "Our World in Data" in header and "Ember" in header
    assert "CC BY 4.0" in header
    assert "year" in header
    assert "world_average_g_per_kwh=" in header


def test_table_covers_large_grids_with_plausible_values() -> None:
    table = load_table()
    assert len({c.alpha3 for c in table.by_code.values()}) > 200
    for code, lo, hi in [
        ("US", 300, 450),
        ("DE", 300, 500),
        ("IN", 600, 800),
        ("NO", 0, 60),
        ("CN", 500, 650),
        ("FR", 20, 100),
    ]:
        row = table.lookup(code)
        assert row is not None, code
        assert lo < row.g_per_kwh < hi, (code, row)
        assert 2015 <= row.year <= 2025
    # the world average is the generation-weighted mean of the rows
    assert 430 < table.world_average_g_per_kwh < 520


def test_lookup_is_case_insensitive_and_unknown_raises() -> None:
    assert load_table().lookup(" de ") == load_table().lookup("DEU")
    with pytest.raises(KeyError):
        table_intensity("ZZZ")


def test_co2e_formula() -> None:
    # 1 kWh at 400 g/kWh with PUE 1.5 is 600 g
    assert co2e_g(J_PER_KWH, 1.5, 400.0) == pytest.approx(600.0, rel=1e-12)
    assert co2e_g(0.0, 1.0, 400.0) == 0.0
    assert co2e_g(3600.0, 1.0, 1000.0) == pytest.approx(1.0)


# ---- one interface for every intensity source, one wall clock (issue #13, problem 4) ----


def test_the_table_is_a_source_without_forecast_or_refresh() -> None:
    from otel_energy.carbon import Intensity, IntensitySource, StaticIntensity

    table = StaticIntensity(Intensity(56.0, "table:owid-ember:FRA:2023"), clock=lambda: 1e9)
    assert isinstance(table, IntensitySource)
    assert table.now_s() == 1e9
    assert table.current() == table.at(0.0) == Intensity(56.0, "table:owid-ember:FRA:2023")
    assert list(table.forecast()) == []
    table.start()  # nothing to refresh: no thread, no error
    table.stop()


def test_provider_for_builds_the_configured_source_on_one_clock(tmp_path: Path) -> None:
    from otel_energy.carbon import StaticIntensity
    from otel_energy.carbon.factory import provider_for
    from otel_energy.carbon.live import LiveIntensity
    from otel_energy.carbon.uk import UKCarbonIntensity
    from otel_energy.carbon.watttime import WattTime
    from otel_energy.config import load_config

    def wall() -> float:
        return 1.7e9

    table = load_config({"OTEL_PYTHON_ENERGY_COUNTRY": "FR"})
    static = provider_for(table, wall)
    assert isinstance(static, StaticIntensity) and static.intensity == table.intensity
    for env, client_type in [
        ({"OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "uk"}, UKCarbonIntensity),
        (
            {
                "OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "watttime",
                "OTEL_PYTHON_ENERGY_ZONE": "CAISO_NORTH",
                "OTEL_PYTHON_ENERGY_WATTTIME_USERNAME": "u",
                "OTEL_PYTHON_ENERGY_WATTTIME_PASSWORD": "p",
            },
            WattTime,
        ),
    ]:
        config = load_config({**env, "OTEL_PYTHON_ENERGY_CACHE_DIR": str(tmp_path)})
        live = provider_for(config, wall)
        assert isinstance(live, LiveIntensity) and isinstance(live.provider, client_type)
        assert live.clock is wall and live.provider.clock is wall  # type: ignore[attr-defined]
        assert live.current() == config.intensity  # nothing fetched: the table, no network
        assert live.cache.path is not None and live.cache.path.parent == tmp_path


def test_the_sampler_starts_and_stops_the_sources_refresh() -> None:
    from otel_energy.carbon import Intensity, IntensitySource
    from otel_energy.engine.sampler import Sampler

    class Recording(IntensitySource):
        def __init__(self) -> None:
            self.clock, self.calls = time.time, []

        def at(self, t_s: float) -> Intensity:
            return Intensity(100.0, "test")

        def start(self) -> None:
            self.calls.append("start")

        def stop(self) -> None:
            self.calls.append("stop")

    source = Recording()
    sampler = Sampler([], interval_s=0.05, intensity=source)
    sampler.start()
    assert source.calls == ["start"]
    sampler.stop()
    assert source.calls == ["start", "stop"]


def test_the_providers_module_names_the_same_clients() -> None:
    from otel_energy.carbon import IntensityPoint, electricitymaps, http, providers, uk, watttime

    assert providers.ElectricityMaps is electricitymaps.ElectricityMaps
    assert providers.WattTime is watttime.WattTime
    assert providers.UKCarbonIntensity is uk.UKCarbonIntensity
    assert providers.ProviderError is http.ProviderError
    assert providers.IntensityPoint is IntensityPoint


def test_the_uk_forecast_starts_at_the_clients_clock() -> None:
    """The forecast window's start comes from the injected wall clock, converted to the URL's
    form only at the HTTP call."""
    from datetime import datetime, timedelta, timezone

    from otel_energy.carbon.uk import UKCarbonIntensity
    from tests.support.fake_carbon_apis import carbon_api

    when = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(days=400)
    with carbon_api() as (url, api):
        UKCarbonIntensity(base_url=url, clock=when.timestamp).fetch_forecast()
    assert api.requests[-1]["path"] == f"/intensity/{when.strftime('%Y-%m-%dT%H:%MZ')}/fw48h"
