"""The rules every setting is checked with, from the environment or from code: ``ConfigError``,
the numeric settings' ranges and the country check."""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass

from otel_energy.carbon import load_table
from otel_energy.config import variables as ev


class ConfigError(ValueError):
    """A setting has a value we cannot use. The message names the setting and the valid values."""


@dataclass(frozen=True)
class _Range:
    """A numeric setting: its environment variable and its valid closed range."""

    variable: str
    lo: float
    hi: float
    unit: str = ""


NUMBERS: dict[str, _Range] = {
    "sample_interval_s": _Range(ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL, 0.001, 60.0, "seconds"),
    "history_s": _Range(ev.OTEL_PYTHON_ENERGY_HISTORY_SECONDS, 1.0, 86400.0, "seconds"),
    "cpu_tdp_w": _Range(ev.OTEL_PYTHON_ENERGY_CPU_TDP_W, 1.0, 5000.0, "watts"),
    "memory_w_per_gb": _Range(ev.OTEL_PYTHON_ENERGY_MEMORY_W_PER_GB, 0.0, 100.0, "watts per GB"),
    "pue": _Range(ev.OTEL_PYTHON_ENERGY_PUE, 1.0, 10.0),
}
"""``EnergyConfig`` fields that ``load_config`` also accepts as keyword overrides."""


def check_number(label: str, value: object, lo: float, hi: float, unit: str = "") -> float:
    """``value`` as a float in ``[lo, hi]``, else a ConfigError naming ``label``, the range and
    its unit (e.g. "seconds").

    One rule for the environment (``value`` is the variable's text) and for overrides in code.
    """
    try:
        number = math.nan if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not (lo <= number <= hi):  # NaN fails every comparison
        what = f"a number of {unit}" if unit else "a number"
        raise ConfigError(f"{label}={value!r} is not valid: expected {what} from {lo:g} to {hi:g}.")
    return number


def check_country(label: str, value: object) -> str:
    """``value`` if it is a country code of the bundled table, else a ConfigError naming
    ``label`` (a variable or a field)."""
    if not isinstance(value, str) or load_table().lookup(value) is None:
        raise ConfigError(
            f"{label}={value!r} is not valid: expected an ISO 3166 alpha-2 or alpha-3 code"
            " present in the bundled table (e.g. FR, FRA, US, DEU); see docs/configuration.md"
            " for the list."
        )
    return value


def check_url(name: str, raw: str, credentials_hint: str, example: str) -> str:
    """``raw``, the value of variable ``name``, as an http(s) URL with a host and no
    ``user:password@`` (credentials belong in their own variables, ``credentials_hint`` says
    which). The error for a URL with credentials never shows the value.

    Raises:
        ConfigError: not such a URL; the message names ``name`` and gives ``example``.
    """
    try:
        parts = urllib.parse.urlsplit(raw)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # ValueError for a port that is not a number in 0-65535
    except ValueError:
        ok = False
    if ok and (parts.username is not None or parts.password is not None):
        raise ConfigError(
            f"{name} contains credentials (value not shown): expected an http:// or https://"
            f" URL without user:password@; {credentials_hint}."
        )
    if not ok:
        # an "@" may carry user:password even in a URL that does not parse: never show it
        shown = f"{name} (value not shown)" if "@" in raw else f"{name}={raw!r}"
        raise ConfigError(
            f"{shown} is not valid: expected an http:// or https:// URL with a host,"
            f" such as {example}."
        )
    return raw
