"""Configuration: a pure function from an environment mapping to a validated ``EnergyConfig``."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from otel_energy import environment_variables as ev
from otel_energy.carbon import Intensity, load_table, table_intensity

SOURCES = ("nvml", "rapl", "estimate")
CARBON_PROVIDERS = ("table", "electricitymaps", "watttime", "uk")
DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"


class ConfigError(ValueError):
    """A setting has a value we cannot use. The message names the setting and the valid values."""


@dataclass(frozen=True)
class LiveCarbonConfig:
    """A live carbon intensity provider's settings. Secrets stay out of ``repr``."""

    provider: str
    zone: str | None = None
    lat: float | None = None
    lon: float | None = None
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_url: str | None = None
    cache_dir: str | None = None


@dataclass(frozen=True)
class EnergyConfig:
    """Validated settings. Units are in the names (SI)."""

    sample_interval_s: float = 0.1
    history_s: float = 600.0
    sources: tuple[str, ...] = SOURCES
    sources_explicit: bool = False
    powercap_root: str = DEFAULT_POWERCAP_ROOT
    cpu_tdp_w: float | None = None
    memory_w_per_gb: float = 0.375
    country: str | None = None
    intensity: Intensity = field(default_factory=lambda: table_intensity(None))
    pue: float = 1.0
    step_span_every: int = 1
    """1: every step gets a span; N: every Nth; 0: none."""
    carbon: LiveCarbonConfig | None = None
    """The live intensity provider, None for the table or an override."""
    predict_after_steps: int = 0
    """0: project the run's footprint at each epoch end; N: also every N steps; -1: never."""

    @property
    def history_len(self) -> int:
        """Number of samples kept (bounded memory)."""
        return max(16, math.ceil(self.history_s / self.sample_interval_s) + 1)


def _number(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (lo <= value <= hi):
        raise ConfigError(f"{name}={raw!r} is not valid: expected a number from {lo:g} to {hi:g}.")
    return value


def _sources(env: Mapping[str, str]) -> tuple[tuple[str, ...], bool]:
    raw = env.get(ev.OTEL_PYTHON_ENERGY_SOURCES, "").strip().lower()
    if raw in ("", "auto"):
        return SOURCES, False
    names = tuple(s.strip() for s in raw.split(",") if s.strip())
    bad = [s for s in names if s not in SOURCES]
    if bad or not names:
        raise ConfigError(
            f"{ev.OTEL_PYTHON_ENERGY_SOURCES}={raw!r} is not valid: expected 'auto' or a comma list"
            f" of {', '.join(SOURCES)}."
        )
    return names, True


def _intensity(env: Mapping[str, str]) -> tuple[str | None, Intensity]:
    country = env.get(ev.OTEL_PYTHON_ENERGY_COUNTRY, "").strip() or None
    if country is not None and load_table().lookup(country) is None:
        raise ConfigError(
            f"{ev.OTEL_PYTHON_ENERGY_COUNTRY}={country!r} is not valid: expected an ISO 3166"
            " alpha-2 or alpha-3 code present in the bundled table (e.g. FR, FRA, US, DEU);"
            " see docs/configuration.md for the list."
        )
    override = env.get(ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY, "").strip()
    if override:
        g = _number(env, ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY, 0.0, 0.0, 5000.0)
        return country, Intensity(g, "override")
    return country, table_intensity(country)


def _live_carbon(env: Mapping[str, str]) -> LiveCarbonConfig | None:
    name = ev.OTEL_PYTHON_ENERGY_CARBON_PROVIDER
    raw = env.get(name, "").strip().lower() or "table"
    if raw not in CARBON_PROVIDERS:
        raise ConfigError(
            f"{name}={raw!r} is not valid: expected one of {', '.join(CARBON_PROVIDERS)}."
        )
    if raw == "table" or env.get(ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY, "").strip():
        return None
    zone = env.get(ev.OTEL_PYTHON_ENERGY_ZONE, "").strip() or None
    has_lat = bool(env.get(ev.OTEL_PYTHON_ENERGY_LATITUDE, "").strip())
    has_lon = bool(env.get(ev.OTEL_PYTHON_ENERGY_LONGITUDE, "").strip())
    lat = _number(env, ev.OTEL_PYTHON_ENERGY_LATITUDE, 0.0, -90.0, 90.0) if has_lat else None
    lon = _number(env, ev.OTEL_PYTHON_ENERGY_LONGITUDE, 0.0, -180.0, 180.0) if has_lon else None
    if raw != "uk" and zone is None and (lat is None or lon is None):
        raise ConfigError(
            f"{name}={raw!r} needs {ev.OTEL_PYTHON_ENERGY_ZONE} (e.g. DE,"
            f" CAISO_NORTH) or both {ev.OTEL_PYTHON_ENERGY_LATITUDE} and"
            f" {ev.OTEL_PYTHON_ENERGY_LONGITUDE}."
        )
    live = LiveCarbonConfig(
        raw,
        zone,
        lat,
        lon,
        token=env.get(ev.OTEL_PYTHON_ENERGY_ELECTRICITYMAPS_TOKEN, "").strip() or None,
        username=env.get(ev.OTEL_PYTHON_ENERGY_WATTTIME_USERNAME, "").strip() or None,
        password=env.get(ev.OTEL_PYTHON_ENERGY_WATTTIME_PASSWORD, "") or None,
        api_url=env.get(ev.OTEL_PYTHON_ENERGY_CARBON_API_URL, "").strip() or None,
        cache_dir=env.get(ev.OTEL_PYTHON_ENERGY_CACHE_DIR, "").strip() or None,
    )
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


def _step_spans(env: Mapping[str, str]) -> int:
    raw = env.get(ev.OTEL_PYTHON_ENERGY_STEP_SPANS, "").strip().lower()
    if raw in ("", "all"):
        return 1
    if raw == "off":
        return 0
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    raise ConfigError(
        f"{ev.OTEL_PYTHON_ENERGY_STEP_SPANS}={raw!r} is not valid: expected 'all', 'off' or an"
        " integer N >= 1 (a span every Nth step)."
    )


def _predict_after(env: Mapping[str, str]) -> int:
    name = ev.OTEL_PYTHON_ENERGY_PREDICT_AFTER_STEPS
    raw = env.get(name, "").strip().lower()
    if raw in ("", "epoch"):
        return 0
    if raw == "off":
        return -1
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    raise ConfigError(
        f"{name}={raw!r} is not valid: expected 'epoch', 'off' or an integer N >= 1 (project"
        " every N steps)."
    )


def load_config(environ: Mapping[str, str] | None = None) -> EnergyConfig:
    """Read and validate every ``OTEL_PYTHON_ENERGY_*`` variable.

    Args:
        environ: the environment to read; ``os.environ`` when None.

    Raises:
        ConfigError: a value is out of range or unknown; the message names the variable.
    """
    env = os.environ if environ is None else environ
    sources, explicit = _sources(env)
    country, intensity = _intensity(env)
    tdp_raw = env.get(ev.OTEL_PYTHON_ENERGY_CPU_TDP_W, "").strip()
    return EnergyConfig(
        sample_interval_s=_number(env, ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL, 0.1, 0.001, 60.0),
        history_s=_number(env, ev.OTEL_PYTHON_ENERGY_HISTORY_SECONDS, 600.0, 1.0, 86400.0),
        sources=sources,
        sources_explicit=explicit,
        powercap_root=env.get(ev.OTEL_PYTHON_ENERGY_POWERCAP_ROOT, "").strip()
        or DEFAULT_POWERCAP_ROOT,
        cpu_tdp_w=_number(env, ev.OTEL_PYTHON_ENERGY_CPU_TDP_W, 0.0, 1.0, 5000.0)
        if tdp_raw
        else None,
        memory_w_per_gb=_number(env, ev.OTEL_PYTHON_ENERGY_MEMORY_W_PER_GB, 0.375, 0.0, 100.0),
        country=country,
        intensity=intensity,
        pue=_number(env, ev.OTEL_PYTHON_ENERGY_PUE, 1.0, 1.0, 10.0),
        step_span_every=_step_spans(env),
        carbon=_live_carbon(env),
        predict_after_steps=_predict_after(env),
    )
