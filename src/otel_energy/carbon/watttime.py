"""WattTime v3 client: the marginal operating emissions rate, converted to g/kWh."""

from __future__ import annotations

import base64
import time
import urllib.parse
from typing import Any

from otel_energy.carbon import IntensityPoint, WallClock
from otel_energy.carbon.http import ProviderError, get_json, in_range, parse_time

LB_PER_MWH_TO_G_PER_KWH = 0.45359237  # 1 lb = 453.59237 g; per MWh -> per kWh: / 1000


def _marginal_points(data: Any) -> list[IntensityPoint]:
    """``/v3/forecast``'s ``data`` in g/kWh, labelled marginal."""
    try:
        units = data.get("meta", {}).get("units", "lbs_co2_per_mwh")
        if units != "lbs_co2_per_mwh":
            raise ProviderError(f"WattTime: unexpected units {units!r}")
        return [
            IntensityPoint(
                parse_time(p["point_time"]), float(p["value"]) * LB_PER_MWH_TO_G_PER_KWH, "marginal"
            )
            for p in data["data"]
        ]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ProviderError("WattTime /v3/forecast: malformed body") from None


class WattTime:
    """WattTime v3: ``/login`` (basic auth, token), ``/v3/region-from-loc``, ``/v3/forecast``.

    The signal is the *marginal* operating emissions rate (``co2_moer``) in lb/MWh, converted to
    g/kWh and labelled marginal: never mixed with average intensities in one number.
    """

    name = "watttime"
    default_url = "https://api.watttime.org"
    ttl_s = 300.0  # 5-minute data
    token_ttl_s = 25 * 60.0  # tokens expire after 30 minutes

    def __init__(
        self,
        username: str,
        password: str,
        region: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
        base_url: str = "https://api.watttime.org",
        timeout_s: float = 10.0,
        clock: WallClock = time.time,
    ) -> None:
        """``clock``: wall seconds, for the token's age when ``fetch`` is given no time."""
        self.clock = clock
        self._auth = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.base_url, self.timeout_s = base_url.rstrip("/"), timeout_s
        self.region, self.lat, self.lon = region, lat, lon
        self.key = f"{self.name}:{region or f'{lat},{lon}'}"
        self._token: str | None = None
        self._token_at = 0.0

    def _get(self, path: str, headers: dict[str, str]) -> Any:
        return get_json(
            f"{self.base_url}{path}",
            headers,
            self.timeout_s,
            f"WattTime {path.split('?')[0]}",  # the query is no secret, but noise in a message
            self.clock,
        )

    def _bearer(self, now_s: float) -> dict[str, str]:
        if self._token is None or now_s - self._token_at > self.token_ttl_s:
            data = self._get("/login", {"Authorization": f"Basic {self._auth}"})
            token = data.get("token") if isinstance(data, dict) else None
            if not token:
                raise ProviderError("WattTime /login: no token in the answer")
            self._token, self._token_at = str(token), now_s
        return {"Authorization": f"Bearer {self._token}"}

    def _region(self, headers: dict[str, str]) -> str:
        if self.region is None:
            q = urllib.parse.urlencode(
                {"latitude": self.lat, "longitude": self.lon, "signal_type": "co2_moer"}
            )
            data = self._get(f"/v3/region-from-loc?{q}", headers)
            if not isinstance(data, dict) or not data.get("region"):
                raise ProviderError("WattTime /v3/region-from-loc: no region in the answer")
            self.region = str(data["region"])
        return self.region

    def fetch(self, now_s: float | None = None) -> list[IntensityPoint]:
        """The current marginal rate (the first point of ``/v3/forecast``).

        ``now_s``: wall seconds, to age the token; ``clock()`` when None (the refresher calls
        ``fetch()`` bare, so a fixed default would keep one token forever).
        """
        return self._forecast(now_s, horizon_h=0)[:1]

    def fetch_forecast(self, now_s: float | None = None) -> list[IntensityPoint]:
        """The next 24 hours of marginal rates, 5-minute points."""
        return self._forecast(now_s, horizon_h=24)

    def _forecast(self, now_s: float | None, horizon_h: int) -> list[IntensityPoint]:
        headers = self._bearer(self.clock() if now_s is None else now_s)
        q = urllib.parse.urlencode(
            {"region": self._region(headers), "signal_type": "co2_moer", "horizon_hours": horizon_h}
        )
        data = self._get(f"/v3/forecast?{q}", headers)
        return in_range(_marginal_points(data), "WattTime /v3/forecast")
