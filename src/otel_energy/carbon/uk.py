"""National Grid ESO's Carbon Intensity API client for Great Britain (no key)."""

from __future__ import annotations

import time
from typing import Any

from otel_energy.carbon import IntensityPoint, WallClock
from otel_energy.carbon.http import ProviderError, get_json, in_range, parse_time, utc

_MALFORMED = (KeyError, TypeError, ValueError, AttributeError)


def _actual_else_forecast(entry: Any) -> IntensityPoint:
    value = entry["intensity"].get("actual")
    if value is None:  # the half hour has not closed yet
        value = entry["intensity"]["forecast"]
    return IntensityPoint(parse_time(entry["from"]), float(value), "average")


class UKCarbonIntensity:
    """National Grid ESO's Carbon Intensity API for Great Britain (no key): ``/intensity``.

    Half-hourly average intensity; ``actual`` when the half hour has closed, else ``forecast``.
    """

    name = "uk-carbon-intensity"
    default_url = "https://api.carbonintensity.org.uk"
    ttl_s = 900.0  # half-hourly data

    def __init__(
        self,
        base_url: str = "https://api.carbonintensity.org.uk",
        timeout_s: float = 10.0,
        clock: WallClock = time.time,
    ) -> None:
        self.base_url, self.timeout_s, self.clock = base_url.rstrip("/"), timeout_s, clock
        self.key = f"{self.name}:GB"

    def _get(self, path: str, what: str) -> Any:
        return get_json(f"{self.base_url}{path}", {}, self.timeout_s, what, self.clock)

    def fetch(self) -> list[IntensityPoint]:
        """The current half hour."""
        data = self._get("/intensity", "UK Carbon Intensity /intensity")
        try:
            points = [_actual_else_forecast(entry) for entry in data["data"]]
        except _MALFORMED:
            raise ProviderError("UK Carbon Intensity /intensity: malformed body") from None
        if not points:
            raise ProviderError("UK Carbon Intensity /intensity: no data")
        return in_range(points, "UK Carbon Intensity /intensity")

    def fetch_forecast(self, now_s: float | None = None) -> list[IntensityPoint]:
        """``/intensity/{from}/fw48h``: half-hourly forecast for the 48 hours from ``now_s``
        (wall seconds; the client's clock when None)."""
        start = utc(self.clock() if now_s is None else now_s).strftime("%Y-%m-%dT%H:%MZ")
        data = self._get(f"/intensity/{start}/fw48h", "UK Carbon Intensity forecast")
        try:
            points = [
                IntensityPoint(parse_time(e["from"]), float(e["intensity"]["forecast"]), "average")
                for e in data["data"]
            ]
        except _MALFORMED:
            raise ProviderError("UK Carbon Intensity forecast: malformed body") from None
        return in_range(points, "UK Carbon Intensity forecast")
