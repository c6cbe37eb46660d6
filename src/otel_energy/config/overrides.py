"""Settings given in code (``load_config(**overrides)``): which exist, how each is checked, and
the name an error gives it (the caller's ``labels``: ``CarbonConfig.pue`` rather than ``pue``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_energy.carbon import MAX_G_PER_KWH
from otel_energy.config.rules import NUMBERS, ConfigError, check_country, check_number

OVERRIDES = (*NUMBERS, "country", "carbon_intensity_g_per_kwh", "gpu_ids")
"""Every keyword override of ``load_config``: the ``NUMBERS`` fields, ``country`` (ISO 3166
code), ``carbon_intensity_g_per_kwh`` (a fixed grid intensity, gCO2e/kWh) and ``gpu_ids`` (CUDA
ordinals among the visible GPUs, or ``"auto"``)."""


def check_gpu_ids(label: str, value: object) -> list[int] | None:
    """``value`` as CUDA ordinals (None for ``"auto"``), else a ConfigError naming ``label``."""
    if value == "auto":
        return None
    if isinstance(value, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value
    ):
        return list(value)
    raise ConfigError(
        f"{label}={value!r} is not valid: expected 'auto' or a list of CUDA device ordinals"
        " such as [0, 1]."
    )


def check_overrides(overrides: Mapping[str, object], labels: Mapping[str, str]) -> dict[str, Any]:
    """The overrides given (not None), validated; errors name ``labels[name]`` (else ``name``)."""
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise TypeError(
            f"load_config() got unknown overrides {unknown}; expected {list(OVERRIDES)}"
        )
    checked: dict[str, Any] = {}
    for name, value in overrides.items():
        label = labels.get(name, name)
        if value is None:
            continue
        if name in NUMBERS:
            r = NUMBERS[name]
            checked[name] = check_number(label, value, r.lo, r.hi, r.unit)
        elif name == "country":
            checked[name] = check_country(label, value)
        elif name == "carbon_intensity_g_per_kwh":
            checked[name] = check_number(label, value, 0.0, MAX_G_PER_KWH, "gCO2e/kWh")
        else:
            checked[name] = check_gpu_ids(label, value)
    return checked


def visible_devices(env: Mapping[str, str], gpu_ids: list[int] | None) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` selecting ``gpu_ids``, which are CUDA ordinals among the GPUs
    the environment already makes visible."""
    if gpu_ids is None:
        return None
    visible = env.get("CUDA_VISIBLE_DEVICES")
    pool = [v.strip() for v in visible.split(",")] if visible else None
    return ",".join(pool[i] if pool and i < len(pool) else str(i) for i in gpu_ids)
