"""Live grid carbon intensity from public APIs: Electricity Maps v3, WattTime v3, UK Carbon
Intensity. Plain HTTP clients (stdlib ``urllib``); they run only on the refresher thread.

Each ``fetch()`` returns timestamped points, oldest first, in gCO2e/kWh, labelled average or
marginal. Keys come from the caller (the environment), are sent only in headers, and never appear
in an error message or a log line.
"""

from __future__ import annotations

import base64
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http.client import HTTPMessage
from typing import IO, Any

from otel_energy.carbon import MAX_G_PER_KWH

LB_PER_MWH_TO_G_PER_KWH = 0.45359237  # 1 lb = 453.59237 g; per MWh -> per kWh: / 1000


@dataclass(frozen=True)
class IntensityPoint:
    """One value of a provider: valid from ``at`` (UTC) on."""

    at: datetime
    g_per_kwh: float
    kind: str  # "average" or "marginal"


class ProviderError(Exception):
    """The provider did not give a usable answer (network, HTTP error, malformed body)."""


class CrossOriginRedirect(ProviderError):
    """The server redirected to another scheme, host or port: not followed, so the credentials
    in our headers never reach a server the user did not configure."""


class RateLimited(ProviderError):
    """HTTP 429. ``retry_after_s`` from the Retry-After header, when it had one."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def parse_time(text: str) -> datetime:
    """ISO 8601 as the providers write it ("2024-01-01T10:00:00.000Z", "2024-01-01T10:00Z")."""
    t = text.strip().replace("Z", "+00:00")
    if (
        len(t) >= 6
        and t[-6] in "+-"
        and t.count(":") == 2
        and "T" in t
        and len(t.split("T")[1]) == 11
    ):
        t = t[:-6] + ":00" + t[-6:]  # "10:00+00:00" -> "10:00:00+00:00"
    dt = datetime.fromisoformat(t)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(
                0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
            )
        except (TypeError, ValueError):
            return None


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """urllib copies every header (``auth-token``, ``Authorization``) onto a redirect, whatever
    its target: follow redirects within the origin only (a path moved), refuse the rest."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        target = urllib.parse.urljoin(req.full_url, newurl)
        if origin(target) != origin(req.full_url):
            scheme, host, port = origin(target)
            raise CrossOriginRedirect(
                f"HTTP {code} redirect to another origin ({scheme}://{host}:{port}) refused;"
                " set OTEL_PYTHON_ENERGY_CARBON_API_URL to the final address"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_SameOriginRedirects)


def in_range(points: list[IntensityPoint], what: str) -> list[IntensityPoint]:
    """The same bounds as ``OTEL_PYTHON_ENERGY_CARBON_INTENSITY``: one absurd value (NaN,
    negative, 1e300) fails the whole answer, which the refresher treats as a failed refresh."""
    for p in points:
        if not (math.isfinite(p.g_per_kwh) and 0.0 <= p.g_per_kwh <= MAX_G_PER_KWH):
            raise ProviderError(
                f"{what}: intensity {p.g_per_kwh!r} gCO2e/kWh at {p.at.isoformat()} is out of"
                f" range (expected 0 to {MAX_G_PER_KWH:g})"
            )
    return points


def get_json(url: str, headers: dict[str, str], timeout_s: float, what: str) -> Any:
    """GET ``url`` and decode JSON; every failure becomes a ``ProviderError`` naming ``what``.

    Redirects are followed within the URL's origin only (``CrossOriginRedirect`` otherwise).
    """
    req = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    try:
        with _opener.open(req, timeout=timeout_s) as resp:
            body = resp.read()
    except CrossOriginRedirect as exc:
        raise CrossOriginRedirect(f"{what}: {exc}") from None
    except urllib.error.HTTPError as exc:
        if exc.code == 429:
            raise RateLimited(
                f"{what}: HTTP 429 (rate limited)", _retry_after(exc.headers.get("Retry-After"))
            ) from None
        raise ProviderError(f"{what}: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProviderError(f"{what}: {type(reason).__name__}: {reason}") from None
    except ValueError:
        # http.client's text quotes the offending header value, i.e. a secret: never repeat it
        raise ProviderError(f"{what}: invalid URL or header value (a newline in a key?)") from None
    try:
        return json.loads(body)
    except ValueError:
        raise ProviderError(f"{what}: malformed JSON body") from None


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
    ) -> None:
        self._token, self.base_url, self.timeout_s = token, base_url.rstrip("/"), timeout_s
        self.query = {"zone": zone} if zone else {"lat": str(lat), "lon": str(lon)}
        self.key = f"{self.name}:{zone or f'{lat},{lon}'}"

    def _get(self, path: str) -> Any:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(self.query)}"
        return get_json(
            url, {"auth-token": self._token}, self.timeout_s, f"Electricity Maps {path}"
        )

    def fetch(self) -> list[IntensityPoint]:
        points = []
        try:
            history = self._get("/v3/carbon-intensity/history").get("history", [])
        except ProviderError:
            history = []  # history is a plan feature; latest alone is enough
        latest = self._get("/v3/carbon-intensity/latest")
        for entry in [*history, latest]:
            try:
                points.append(
                    IntensityPoint(
                        parse_time(entry["datetime"]), float(entry["carbonIntensity"]), "average"
                    )
                )
            except (KeyError, TypeError, ValueError):
                if entry is latest:
                    raise ProviderError("Electricity Maps: malformed latest value") from None
        return in_range(sorted(set(points), key=lambda p: p.at), "Electricity Maps")

    def fetch_forecast(self) -> list[IntensityPoint]:
        """``/v3/carbon-intensity/forecast``: the coming hours, average intensity."""
        data = self._get("/v3/carbon-intensity/forecast")
        try:
            points = [
                IntensityPoint(parse_time(e["datetime"]), float(e["carbonIntensity"]), "average")
                for e in data["forecast"]
            ]
        except (KeyError, TypeError, ValueError):
            raise ProviderError("Electricity Maps forecast: malformed body") from None
        return in_range(points, "Electricity Maps forecast")


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: monotonic seconds, for the token's age when ``fetch`` is given no time."""
        self.clock = clock
        self._auth = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.base_url, self.timeout_s = base_url.rstrip("/"), timeout_s
        self.region, self.lat, self.lon = region, lat, lon
        self.key = f"{self.name}:{region or f'{lat},{lon}'}"
        self._token: str | None = None
        self._token_at = 0.0

    def _bearer(self, now_s: float) -> dict[str, str]:
        if self._token is None or now_s - self._token_at > self.token_ttl_s:
            data = get_json(
                f"{self.base_url}/login",
                {"Authorization": f"Basic {self._auth}"},
                self.timeout_s,
                "WattTime /login",
            )
            token = data.get("token") if isinstance(data, dict) else None
            if not token:
                raise ProviderError("WattTime /login: no token in the answer")
            self._token, self._token_at = str(token), now_s
        return {"Authorization": f"Bearer {self._token}"}

    def fetch(self, now_s: float | None = None) -> list[IntensityPoint]:
        """The current marginal rate (the first point of ``/v3/forecast``).

        ``now_s``: monotonic seconds, to age the token; ``clock()`` when None (the refresher
        calls ``fetch()`` bare, so a fixed default would keep one token forever).
        """
        return self._forecast(now_s, horizon_h=0)[:1]

    def fetch_forecast(self, now_s: float | None = None) -> list[IntensityPoint]:
        """The next 24 hours of marginal rates, 5-minute points."""
        return self._forecast(now_s, horizon_h=24)

    def _forecast(self, now_s: float | None, horizon_h: int) -> list[IntensityPoint]:
        headers = self._bearer(self.clock() if now_s is None else now_s)
        if self.region is None:
            q = urllib.parse.urlencode(
                {"latitude": self.lat, "longitude": self.lon, "signal_type": "co2_moer"}
            )
            data = get_json(
                f"{self.base_url}/v3/region-from-loc?{q}",
                headers,
                self.timeout_s,
                "WattTime /v3/region-from-loc",
            )
            if not isinstance(data, dict) or not data.get("region"):
                raise ProviderError("WattTime /v3/region-from-loc: no region in the answer")
            self.region = str(data["region"])
        q = urllib.parse.urlencode(
            {"region": self.region, "signal_type": "co2_moer", "horizon_hours": horizon_h}
        )
        data = get_json(
            f"{self.base_url}/v3/forecast?{q}", headers, self.timeout_s, "WattTime /v3/forecast"
        )
        try:
            units = data.get("meta", {}).get("units", "lbs_co2_per_mwh")
            if units != "lbs_co2_per_mwh":
                raise ProviderError(f"WattTime: unexpected units {units!r}")
            points = [
                IntensityPoint(
                    parse_time(p["point_time"]),
                    float(p["value"]) * LB_PER_MWH_TO_G_PER_KWH,
                    "marginal",
                )
                for p in data["data"]
            ]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProviderError("WattTime /v3/forecast: malformed body") from None
        return in_range(points, "WattTime /v3/forecast")


class UKCarbonIntensity:
    """National Grid ESO's Carbon Intensity API for Great Britain (no key): ``/intensity``.

    Half-hourly average intensity; ``actual`` when the half hour has closed, else ``forecast``.
    """

    name = "uk-carbon-intensity"
    default_url = "https://api.carbonintensity.org.uk"
    ttl_s = 900.0  # half-hourly data

    def __init__(
        self, base_url: str = "https://api.carbonintensity.org.uk", timeout_s: float = 10.0
    ) -> None:
        self.base_url, self.timeout_s = base_url.rstrip("/"), timeout_s
        self.key = f"{self.name}:GB"

    def fetch(self) -> list[IntensityPoint]:
        data = get_json(
            f"{self.base_url}/intensity", {}, self.timeout_s, "UK Carbon Intensity /intensity"
        )
        try:
            points = []
            for entry in data["data"]:
                value = entry["intensity"].get("actual")
                if value is None:
                    value = entry["intensity"]["forecast"]
                points.append(IntensityPoint(parse_time(entry["from"]), float(value), "average"))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProviderError("UK Carbon Intensity /intensity: malformed body") from None
        if not points:
            raise ProviderError("UK Carbon Intensity /intensity: no data")
        return in_range(points, "UK Carbon Intensity /intensity")

    def fetch_forecast(self, now: datetime | None = None) -> list[IntensityPoint]:
        """``/intensity/{from}/fw48h``: half-hourly forecast for the next 48 hours."""
        start = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%MZ")
        data = get_json(
            f"{self.base_url}/intensity/{start}/fw48h",
            {},
            self.timeout_s,
            "UK Carbon Intensity forecast",
        )
        try:
            points = [
                IntensityPoint(parse_time(e["from"]), float(e["intensity"]["forecast"]), "average")
                for e in data["data"]
            ]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProviderError("UK Carbon Intensity forecast: malformed body") from None
        return in_range(points, "UK Carbon Intensity forecast")
