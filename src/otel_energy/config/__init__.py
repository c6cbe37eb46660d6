"""Configuration: a pure function from an environment mapping to a validated ``EnergyConfig``."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_energy.carbon import MAX_G_PER_KWH, Intensity, table_intensity
from otel_energy.config import variables as ev
from otel_energy.config.attribution import attribution_mode, idle_power
from otel_energy.config.live_carbon import CARBON_PROVIDERS, LiveCarbonConfig, live_carbon
from otel_energy.config.node_power import (
    NodePowerConfig,
    gpu_sync,
    node_power,
    node_sharing,
)
from otel_energy.config.overrides import OVERRIDES, check_overrides, visible_devices
from otel_energy.config.rules import NUMBERS, ConfigError, check_country, check_number
from otel_energy.config.unknown import warn_unknown_variables

__all__ = [
    "CARBON_PROVIDERS",
    "DEFAULT_POWERCAP_ROOT",
    "MAX_HISTORY_SAMPLES",
    "NUMBERS",
    "OVERRIDES",
    "SOURCES",
    "ConfigError",
    "EnergyConfig",
    "LiveCarbonConfig",
    "NodePowerConfig",
    "check_number",
    "flush_timeout_s",
    "load_config",
]

SOURCES = ("nvml", "amd", "rapl", "estimate", "hwmon", "redfish", "ipmi")
MAX_HISTORY_SAMPLES = 100_000
"""The history keeps at most this many samples (twice that just before a trim). A sample costs
about 200 B plus 24 B per device (plus 16 B for GPU utilization), so the history
stays under ~80 MB with 8 devices whatever the interval and horizon asked (2.8 h at the default
0.1 s interval)."""
DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"
DEFAULT_FLUSH_TIMEOUT_S = 3.0
"""``OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT``'s default (s): long enough for a collector on the LAN,
short enough that a collector that is down costs seconds, not the exporters' retries."""


def flush_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    """``OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT`` (s), checked; its default when unset.

    Raises:
        ConfigError: not a number of seconds from 0 to 600.
    """
    env = os.environ if environ is None else environ
    name = ev.OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT
    raw = env.get(name, "").strip()
    return check_number(name, raw, 0.0, 600.0, "seconds") if raw else DEFAULT_FLUSH_TIMEOUT_S


@dataclass(frozen=True)
class EnergyConfig:
    """Validated settings. Units are in the names (SI)."""

    sample_interval_s: float = 0.1
    history_s: float = 600.0
    sources: tuple[str, ...] = SOURCES
    sources_explicit: bool = False
    powercap_root: str = DEFAULT_POWERCAP_ROOT
    cpu_tdp_w: float | None = None
    """None: the estimate's own guess from the CPU count."""
    memory_w_per_gb: float = 0.375
    country: str | None = None
    intensity: Intensity = field(default_factory=lambda: table_intensity(None))
    pue: float = 1.0
    step_span_every: int = 1
    """1: every step gets a span; N: every Nth; 0: none."""
    step_span_groups: bool = True
    """``auto`` (the default): a step shorter than two sample intervals (its energy is
    interpolated) has no span of its own; the steps completed at one sampler tick share one
    ``steps`` span. False with ``all``, ``off`` or N."""
    carbon: LiveCarbonConfig | None = None
    """The live intensity provider, None for the table or an override."""
    predict_after_steps: int = 0
    """0: project the run's footprint at each epoch end; N: also every N steps; -1: never."""
    flush_timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S
    """The most a recording's end, and the exit, wait for our telemetry to leave (s)."""
    cuda_visible_devices: str | None = None
    """The ``CUDA_VISIBLE_DEVICES`` the sampler measures (from the ``gpu_ids`` override); None:
    the environment's."""
    node: NodePowerConfig = field(default_factory=NodePowerConfig)
    """Whole-node meters: hwmon root, Redfish URL and credentials, BMC read interval."""
    gpu_sync: bool = False
    """``torch.cuda.synchronize()`` at epoch and evaluation boundaries."""
    node_sharing: bool = True
    """One reader of the hardware per node for the job's local ranks (engine.node_share)."""
    attribution: str = "auto"
    """Which processes are the job: ``auto``, ``process``, ``cgroup`` or ``off``."""
    idle_power_w: tuple[tuple[str, float], ...] | None = None
    """Configured idle power (W) per device type; None: learned or none."""
    cache_dir: str | None = None
    """``OTEL_PYTHON_ENERGY_CACHE_DIR`` (None: the default), where learned idle powers are kept."""
    record_command_args: bool = False
    """The job span of ``otel-energy run`` carries the command's arguments (redacted)."""

    @property
    def history_samples_asked(self) -> int:
        """Samples that ``history_s`` at ``sample_interval_s`` would take."""
        return max(16, math.ceil(self.history_s / self.sample_interval_s) + 1)

    @property
    def history_len(self) -> int:
        """Number of samples kept: the horizon asked, bounded by ``MAX_HISTORY_SAMPLES``."""
        return min(self.history_samples_asked, MAX_HISTORY_SAMPLES)

    @property
    def history_capped(self) -> bool:
        """True when the bound shortens the history asked for (logged once at start)."""
        return self.history_samples_asked > MAX_HISTORY_SAMPLES


def _number(
    env: Mapping[str, str], name: str, default: float, lo: float, hi: float, unit: str = ""
) -> float:
    raw = env.get(name, "").strip()
    return check_number(name, raw, lo, hi, unit) if raw else default


def _setting(
    env: Mapping[str, str], checked: Mapping[str, Any], field_name: str, default: float | None
) -> float | None:
    """The override of ``field_name`` if given (its variable is then not read), else its
    variable, else ``default`` (the field's default in ``EnergyConfig``)."""
    if field_name in checked:
        return float(checked[field_name])
    r = NUMBERS[field_name]
    raw = env.get(r.variable, "").strip()
    return check_number(r.variable, raw, r.lo, r.hi, r.unit) if raw else default


def _number_setting(
    env: Mapping[str, str], checked: Mapping[str, Any], field_name: str, default: float
) -> float:
    """``_setting`` of a setting that always has a value."""
    value = _setting(env, checked, field_name, default)
    return default if value is None else value


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


def _intensity(env: Mapping[str, str], checked: Mapping[str, Any]) -> tuple[str | None, Intensity]:
    country = checked.get("country")
    if country is None:
        raw = env.get(ev.OTEL_PYTHON_ENERGY_COUNTRY, "").strip() or None
        country = None if raw is None else check_country(ev.OTEL_PYTHON_ENERGY_COUNTRY, raw)
    g = checked.get("carbon_intensity_g_per_kwh")
    if g is None and env.get(ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY, "").strip():
        g = _number(
            env, ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY, 0.0, 0.0, MAX_G_PER_KWH, "gCO2e/kWh"
        )
    if g is not None:
        return country, Intensity(g, "override")
    return country, table_intensity(country)


def _step_spans(env: Mapping[str, str]) -> dict[str, Any]:
    """``step_span_every`` and ``step_span_groups`` from ``OTEL_PYTHON_ENERGY_STEP_SPANS``."""
    raw = env.get(ev.OTEL_PYTHON_ENERGY_STEP_SPANS, "").strip().lower()
    every: int | None = None
    if raw in ("", "auto"):
        return {"step_span_every": 1, "step_span_groups": True}
    if raw == "all":
        every = 1
    elif raw == "off":
        every = 0
    elif raw.isascii() and raw.isdigit() and int(raw) >= 1:  # "²".isdigit(), int("²") fails
        every = int(raw)
    if every is None:
        raise ConfigError(
            f"{ev.OTEL_PYTHON_ENERGY_STEP_SPANS}={raw!r} is not valid: expected 'auto' (short"
            " steps grouped), 'all', 'off' or an integer N >= 1 (a span every Nth step)."
        )
    return {"step_span_every": every, "step_span_groups": False}


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


def _record_command_args(env: Mapping[str, str]) -> bool:
    name = ev.OTEL_PYTHON_ENERGY_RECORD_COMMAND_ARGS
    raw = env.get(name, "").strip().lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    raise ConfigError(f"{name}={raw!r} is not valid: expected 'true' or 'false' (the default).")


def load_config(
    environ: Mapping[str, str] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    **overrides: object,
) -> EnergyConfig:
    """Read and validate every ``OTEL_PYTHON_ENERGY_*`` variable, then keyword overrides.

    Args:
        environ: the environment to read, ``os.environ`` when None (a misspelt name: a warning).
        labels: the name each override has for the caller, used in error messages
            (``{"pue": "CarbonConfig.pue"}``); the override's own name by default.
        overrides: values given in code for the names in ``OVERRIDES`` (``sample_interval_s=0.5``,
            ``country="DE"``), validated with the same rules as their variables; an override's
            variable is then not read. None leaves the environment's value.

    Raises:
        ConfigError: a value is out of range or unknown; the message names the variable, or the
            override's label, and the valid values.
        TypeError: an override that is not one of ``OVERRIDES``.
    """
    checked = check_overrides(overrides, labels or {})
    env = os.environ if environ is None else environ
    warn_unknown_variables(env)
    sources, explicit = _sources(env)
    country, intensity = _intensity(env, checked)
    d = EnergyConfig  # the one home of the defaults: the dataclass's field defaults
    return EnergyConfig(
        sample_interval_s=_number_setting(env, checked, "sample_interval_s", d.sample_interval_s),
        history_s=_number_setting(env, checked, "history_s", d.history_s),
        cpu_tdp_w=_setting(env, checked, "cpu_tdp_w", d.cpu_tdp_w),
        memory_w_per_gb=_number_setting(env, checked, "memory_w_per_gb", d.memory_w_per_gb),
        pue=_number_setting(env, checked, "pue", d.pue),
        sources=sources,
        sources_explicit=explicit,
        powercap_root=env.get(ev.OTEL_PYTHON_ENERGY_POWERCAP_ROOT, "").strip()
        or DEFAULT_POWERCAP_ROOT,
        country=country,
        intensity=intensity,
        **_step_spans(env),
        carbon=live_carbon(env, "carbon_intensity_g_per_kwh" in checked),
        predict_after_steps=_predict_after(env),
        flush_timeout_s=flush_timeout_s(env),
        cuda_visible_devices=visible_devices(env, checked.get("gpu_ids")),
        node=node_power(env),
        gpu_sync=gpu_sync(env),
        node_sharing=node_sharing(env),
        **_attribution(env),
        record_command_args=_record_command_args(env),
    )


def _attribution(env: Mapping[str, str]) -> dict[str, Any]:
    """The attribution settings (``config.attribution``) and the cache directory."""
    idle = idle_power(env)
    return {
        "attribution": attribution_mode(env),
        "idle_power_w": None if idle is None else tuple(sorted(idle.items())),
        "cache_dir": env.get(ev.OTEL_PYTHON_ENERGY_CACHE_DIR, "").strip() or None,
    }
