"""The whole-node meters' settings (hwmon root, Redfish URL, credentials, interval), parsed and
checked from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from otel_energy.config import variables as ev
from otel_energy.config.rules import ConfigError, check_number, check_url

DEFAULT_HWMON_ROOT = "/sys/class/hwmon"
DEFAULT_REDFISH_INTERVAL_S = 1.0


@dataclass(frozen=True)
class NodePowerConfig:
    """Where whole-node power comes from. The credentials never appear in ``repr``."""

    hwmon_root: str = DEFAULT_HWMON_ROOT
    redfish_url: str | None = None
    redfish_username: str | None = field(default=None, repr=False)
    redfish_password: str | None = field(default=None, repr=False)
    redfish_interval_s: float = DEFAULT_REDFISH_INTERVAL_S


def _redfish_url(env: Mapping[str, str]) -> str | None:
    name = ev.OTEL_PYTHON_ENERGY_REDFISH_URL
    raw = env.get(name, "").strip()
    if not raw:
        return None
    hint = (
        f"set {ev.OTEL_PYTHON_ENERGY_REDFISH_USERNAME} and {ev.OTEL_PYTHON_ENERGY_REDFISH_PASSWORD}"
    )
    example = "https://bmc.example or https://bmc.example/redfish/v1/Chassis/1/Power"
    return check_url(name, raw, hint, example)


def _header_text(env: Mapping[str, str], name: str) -> str | None:
    """A credential sent in a header: no control characters. The error never shows the value."""
    value = env.get(name, "") or None
    if value is not None and any(c < " " or c == "\x7f" for c in value):
        raise ConfigError(
            f"{name} contains a control character (newline?) (value not shown): expected the"
            " credential exactly as the BMC knows it."
        )
    return value


def node_power(env: Mapping[str, str]) -> NodePowerConfig:
    """The node meters' settings from ``env``.

    Raises:
        ConfigError: a bad URL (the error never repeats credentials) or interval.
    """
    raw_interval = env.get(ev.OTEL_PYTHON_ENERGY_REDFISH_INTERVAL, "").strip()
    interval = (
        check_number(ev.OTEL_PYTHON_ENERGY_REDFISH_INTERVAL, raw_interval, 0.5, 60.0, "seconds")
        if raw_interval
        else DEFAULT_REDFISH_INTERVAL_S
    )
    return NodePowerConfig(
        hwmon_root=env.get(ev.OTEL_PYTHON_ENERGY_HWMON_ROOT, "").strip() or DEFAULT_HWMON_ROOT,
        redfish_url=_redfish_url(env),
        redfish_username=_header_text(env, ev.OTEL_PYTHON_ENERGY_REDFISH_USERNAME),
        redfish_password=_header_text(env, ev.OTEL_PYTHON_ENERGY_REDFISH_PASSWORD),
        redfish_interval_s=interval,
    )


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    """An on/off variable: ``on``/``1``/``true`` or ``off``/``0``/``false``; unset: ``default``."""
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("on", "1", "true"):
        return True
    if raw in ("off", "0", "false"):
        return False
    raise ConfigError(f"{name}={raw!r} is not valid: expected 'on' or 'off'.")


def gpu_sync(env: Mapping[str, str]) -> bool:
    """``OTEL_PYTHON_ENERGY_GPU_SYNC``: True for ``on``/``1``/``true`` (default off)."""
    return _switch(env, ev.OTEL_PYTHON_ENERGY_GPU_SYNC, False)


def node_sharing(env: Mapping[str, str]) -> bool:
    """``OTEL_PYTHON_ENERGY_SHARED_SAMPLING``: one reader of the hardware per node (default on)."""
    return _switch(env, ev.OTEL_PYTHON_ENERGY_SHARED_SAMPLING, True)
