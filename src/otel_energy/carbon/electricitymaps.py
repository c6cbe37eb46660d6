"""Electricity Maps v3 client: average grid intensity, latest, history and forecast."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from otel_energy.carbon import IntensityPoint, WallClock
from otel_energy.carbon.http import ProviderError, get_json, in_range, parse_time


def _point(entry: Any) -> IntensityPoint:
    return IntensityPoint(parse_time(entry["datetime"]), float(entry["carbonIntensity"]), "average")


class ElectricityMaps:
    """Electricity Maps v3: ``/v3/carbon-intensity/latest`` and ``/history``, header ``auth-token``.

    Values are average (lifecycle or direct, as the account's ``emissionFactorType`` says).
    """

    name = "electricitymaps"
    default_url = "https://api.electricitymap.org"
    ttl_s = 600.0  # hourly data, refreshed within the hour

    def __init__(
        self,
        token: str,
        zone: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
        base_url: str = "https://api.electricitymap.org",
        timeout_s: float = 10.0,
        clock: WallClock = time.time,
    ) -> None:
        self._token, self.base_url, self.timeout_s = token, base_url.rstrip("/"), timeout_s
        self.clock = clock
        self.query = {"zone": zone} if zone else {"lat": str(lat), "lon": str(lon)}
        self.key = f"{self.name}:{zone or f'{lat},{lon}'}"

    def _get(self, path: str) -> Any:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(self.query)}"
        return get_json(
            url, {"auth-token": self._token}, self.timeout_s, f"Electricity Maps {path}", self.clock
        )

    def fetch(self) -> list[IntensityPoint]:
        """The latest value, after the last hours (``/history``) when the plan includes them."""
        try:
            history = self._get("/v3/carbon-intensity/history").get("history", [])
        except ProviderError:
            history = []  # history is a plan feature; latest alone is enough
        latest = self._get("/v3/carbon-intensity/latest")
        points = []
        for entry in history:
            try:
                points.append(_point(entry))
            except (KeyError, TypeError, ValueError):
                continue  # one bad history entry costs only itself
        try:
            points.append(_point(latest))
        except (KeyError, TypeError, ValueError):
            raise ProviderError("Electricity Maps: malformed latest value") from None
        return in_range(sorted(set(points), key=lambda p: p.at), "Electricity Maps")

    def fetch_forecast(self) -> list[IntensityPoint]:
        """``/v3/carbon-intensity/forecast``: the coming hours, average intensity."""
        data = self._get("/v3/carbon-intensity/forecast")
        try:
            points = [_point(e) for e in data["forecast"]]
        except (KeyError, TypeError, ValueError):
            raise ProviderError("Electricity Maps forecast: malformed body") from None
        return in_range(points, "Electricity Maps forecast")
