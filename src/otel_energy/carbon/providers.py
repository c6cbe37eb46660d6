"""Live grid carbon intensity from public APIs: Electricity Maps v3, WattTime v3, UK Carbon
Intensity. One module per API (``electricitymaps``, ``watttime``, ``uk``) over one hardened HTTP
fetch (``http``); this module is the contract they share and the names callers import.

Each client's ``fetch()`` returns timestamped points, oldest first, in gCO2e/kWh, labelled average
or marginal; ``fetch_forecast()`` the coming hours. They do network I/O and run only on the
refresher thread (``carbon.live``) or in ``otel-energy when``.
"""

from __future__ import annotations

from typing import Protocol

from otel_energy.carbon import IntensityPoint
from otel_energy.carbon.electricitymaps import ElectricityMaps
from otel_energy.carbon.http import (
    CrossOriginRedirect,
    ProviderError,
    RateLimited,
    get_json,
    in_range,
    origin,
    parse_time,
)
from otel_energy.carbon.uk import UKCarbonIntensity
from otel_energy.carbon.watttime import LB_PER_MWH_TO_G_PER_KWH, WattTime

__all__ = [
    "LB_PER_MWH_TO_G_PER_KWH",
    "ApiClient",
    "CrossOriginRedirect",
    "ElectricityMaps",
    "IntensityPoint",
    "ProviderError",
    "RateLimited",
    "UKCarbonIntensity",
    "WattTime",
    "get_json",
    "in_range",
    "origin",
    "parse_time",
]


class ApiClient(Protocol):
    """A live API client, as ``LiveIntensity`` and ``otel-energy when`` use it.

    Attributes:
        name: the API (``electricitymaps``...), in ``live:<name>`` sources.
        key: the API and its zone, for the cache file's name.
        ttl_s: seconds between refreshes (the data's granularity).
    """

    name: str
    key: str
    ttl_s: float

    def fetch(self) -> list[IntensityPoint]:
        """Current (and recent) values, oldest first. Raises ``ProviderError``."""
        ...

    def fetch_forecast(self) -> list[IntensityPoint]:
        """The coming hours, oldest first (empty when the API has none). Raises
        ``ProviderError``."""
        ...
