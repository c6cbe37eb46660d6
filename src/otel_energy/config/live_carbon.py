"""The live carbon-intensity provider's settings (``OTEL_PYTHON_ENERGY_CARBON_PROVIDER`` and its
zone, coordinates, credentials, API URL and cache), parsed and checked from the environment."""

from __future__ import annotations

from collections.abc import Mapping

from otel_energy.carbon.settings import LiveCarbonConfig
from otel_energy.config import variables as ev
from otel_energy.config.rules import ConfigError, check_number, check_url

__all__ = ["CARBON_PROVIDERS", "LiveCarbonConfig", "live_carbon"]

CARBON_PROVIDERS = ("table", "electricitymaps", "watttime", "uk")


def _header_token(env: Mapping[str, str], name: str) -> str | None:
    """A key sent as an HTTP header value: visible ASCII only. The error never shows the value
    (it is a secret, and http.client's own error would print it)."""
    value = env.get(name, "").strip() or None
    if value is not None and not all("!" <= c <= "~" for c in value):
        raise ConfigError(
            f"{name} contains a space, control character (newline?) or non-ASCII character"
            " (value not shown): expected the API token exactly as the provider issued it."
        )
    return value


def _api_url(env: Mapping[str, str]) -> str | None:
    name = ev.OTEL_PYTHON_ENERGY_CARBON_API_URL
    raw = env.get(name, "").strip()
    if not raw:
        return None
    return check_url(name, raw, "keys go in their own variables", "https://proxy.example:8443")


def _coordinates(env: Mapping[str, str]) -> tuple[float | None, float | None]:
    """(latitude, longitude) in degrees, each None when unset."""

    def degrees(name: str, limit: float) -> float | None:
        raw = env.get(name, "").strip()
        return check_number(name, raw, -limit, limit, "degrees") if raw else None

    return (
        degrees(ev.OTEL_PYTHON_ENERGY_LATITUDE, 90.0),
        degrees(ev.OTEL_PYTHON_ENERGY_LONGITUDE, 180.0),
    )


def _check_credentials(live: LiveCarbonConfig) -> LiveCarbonConfig:
    """The key or login each live provider needs."""
    name, raw = ev.OTEL_PYTHON_ENERGY_CARBON_PROVIDER, live.provider
    if raw == "electricitymaps" and not live.token:
        raise ConfigError(
            f"{name}='electricitymaps' needs"
            f" {ev.OTEL_PYTHON_ENERGY_ELECTRICITYMAPS_TOKEN} (your API token)."
        )
    if raw == "watttime" and not (live.username and live.password):
        raise ConfigError(
            f"{name}='watttime' needs {ev.OTEL_PYTHON_ENERGY_WATTTIME_USERNAME}"
            f" and {ev.OTEL_PYTHON_ENERGY_WATTTIME_PASSWORD}."
        )
    return live


def live_carbon(env: Mapping[str, str], fixed: bool) -> LiveCarbonConfig | None:
    """The live provider's settings; None for the table or when the intensity is ``fixed`` in
    code (an override: no provider is asked)."""
    name = ev.OTEL_PYTHON_ENERGY_CARBON_PROVIDER
    raw = env.get(name, "").strip().lower() or "table"
    if raw not in CARBON_PROVIDERS:
        raise ConfigError(
            f"{name}={raw!r} is not valid: expected one of {', '.join(CARBON_PROVIDERS)}."
        )
    if raw == "table" or fixed or env.get(ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY, "").strip():
        return None
    lat, lon = _coordinates(env)
    zone = env.get(ev.OTEL_PYTHON_ENERGY_ZONE, "").strip() or None
    if raw != "uk" and zone is None and (lat is None or lon is None):
        raise ConfigError(
            f"{name}={raw!r} needs {ev.OTEL_PYTHON_ENERGY_ZONE} (e.g. DE,"
            f" CAISO_NORTH) or both {ev.OTEL_PYTHON_ENERGY_LATITUDE} and"
            f" {ev.OTEL_PYTHON_ENERGY_LONGITUDE}."
        )
    return _check_credentials(
        LiveCarbonConfig(
            raw,
            zone,
            lat,
            lon,
            token=_header_token(env, ev.OTEL_PYTHON_ENERGY_ELECTRICITYMAPS_TOKEN),
            username=env.get(ev.OTEL_PYTHON_ENERGY_WATTTIME_USERNAME, "").strip() or None,
            password=env.get(ev.OTEL_PYTHON_ENERGY_WATTTIME_PASSWORD, "") or None,
            api_url=_api_url(env),
            cache_dir=env.get(ev.OTEL_PYTHON_ENERGY_CACHE_DIR, "").strip() or None,
        )
    )
