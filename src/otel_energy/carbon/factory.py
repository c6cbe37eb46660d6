"""The intensity source a configuration asks for: the table or override, or a live API with the
table as its fallback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from otel_energy.carbon import Intensity, IntensitySource, StaticIntensity, WallClock
from otel_energy.carbon.live import LiveIntensity
from otel_energy.carbon.providers import (
    ApiClient,
    ElectricityMaps,
    UKCarbonIntensity,
    WattTime,
)
from otel_energy.carbon.settings import LiveCarbonConfig

DEFAULT_CACHE_DIR = "~/.cache/otel-energy"


class CarbonSettings(Protocol):
    """What the factory reads of a configuration (``otel_energy.config.EnergyConfig`` has it):
    typed structurally, so that carbon does not depend on config (config depends on carbon)."""

    @property
    def intensity(self) -> Intensity: ...

    @property
    def carbon(self) -> LiveCarbonConfig | None: ...


def client_for(live: LiveCarbonConfig, clock: WallClock = time.time) -> ApiClient:
    """The API client of a live provider's settings (``load_config`` has validated them)."""
    if live.provider == "electricitymaps":
        return ElectricityMaps(
            live.token or "",
            live.zone,
            live.lat,
            live.lon,
            base_url=live.api_url or ElectricityMaps.default_url,
            clock=clock,
        )
    if live.provider == "watttime":
        return WattTime(
            live.username or "",
            live.password or "",
            live.zone,
            live.lat,
            live.lon,
            base_url=live.api_url or WattTime.default_url,
            clock=clock,
        )
    return UKCarbonIntensity(base_url=live.api_url or UKCarbonIntensity.default_url, clock=clock)


def provider_for(config: CarbonSettings, clock: WallClock = time.time) -> IntensitySource:
    """The table/override, or a live source (not yet started) with the table as its fallback.

    ``clock``: wall seconds since the epoch, shared by the source, its API client and its cache.
    """
    live = config.carbon
    if live is None:
        return StaticIntensity(config.intensity, clock)
    cache = Path(live.cache_dir or DEFAULT_CACHE_DIR).expanduser()
    return LiveIntensity(client_for(live, clock), config.intensity, cache, clock)
