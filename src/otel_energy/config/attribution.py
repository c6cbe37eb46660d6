"""The attribution settings: which processes are the job, and the devices' idle power."""

from __future__ import annotations

import math
from collections.abc import Mapping

from otel_energy.config import variables as ev
from otel_energy.config.rules import ConfigError

ATTRIBUTION_MODES = ("auto", "process", "cgroup", "off")
IDLE_TYPES = ("cpu", "memory", "gpu")
MAX_IDLE_W = 5000.0
"""An idle power above this (W) per device is a typo (mW, or a whole rack)."""


def attribution_mode(env: Mapping[str, str]) -> str:
    """``auto`` (default), ``process``, ``cgroup`` or ``off``."""
    raw = env.get(ev.OTEL_PYTHON_ENERGY_ATTRIBUTION, "").strip().lower()
    if raw == "":
        return "auto"
    if raw not in ATTRIBUTION_MODES:
        raise ConfigError(
            f"{ev.OTEL_PYTHON_ENERGY_ATTRIBUTION}={raw!r} is not valid: expected one of"
            f" {', '.join(ATTRIBUTION_MODES)}."
        )
    return raw


def idle_power(env: Mapping[str, str]) -> dict[str, float] | None:
    """Idle power (W) per device type from ``cpu=10,memory=2,gpu=60``; None when unset."""
    name = ev.OTEL_PYTHON_ENERGY_IDLE_POWER_W
    raw = env.get(name, "").strip()
    if not raw:
        return None
    out: dict[str, float] = {}
    for part in raw.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        try:
            watts = float(value) if sep else math.nan
        except ValueError:
            watts = math.nan
        if key not in IDLE_TYPES or key in out or not 0.0 <= watts <= MAX_IDLE_W:
            raise ConfigError(
                f"{name}={raw!r} is not valid: expected a comma list of TYPE=WATTS with TYPE one"
                f" of {', '.join(IDLE_TYPES)} (each once) and 0 <= WATTS <= {MAX_IDLE_W:g},"
                " for example 'cpu=10,memory=2,gpu=60'."
            )
        out[key] = watts
    return out
