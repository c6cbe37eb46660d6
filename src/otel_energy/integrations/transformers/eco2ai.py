"""The Eco2AI-plugin API promised in the user's design notes: ``CarbonConfig`` and its reports.

Only plain data lives here (no transformers import); ``otel_energy.hf.Eco2AICallback`` implements
it on top of the same sampler and spans as ``EnergyCallback``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_energy.carbon import J_PER_KWH
from otel_energy.config import ConfigError, EnergyConfig, load_config
from otel_energy.config import variables as ev

_log = logging.getLogger(__name__)

LOG_LEVELS = ("NONE", "EPOCH", "STEP")
EXPORT_FORMATS = ("json",)


@dataclass
class CarbonConfig:
    """Configuration for carbon tracking (the Eco2AI plugin's fields; SI units where it has any).

    Attributes:
        project_name: recorded on the run span (``otel_energy.train.project``) and in the report.
        gpu_ids: ``"auto"`` (this rank's visible GPUs) or CUDA ordinals to measure, e.g. ``[0, 1]``.
        measurement_interval: seconds between sensor reads (the seed's default, 1.0 s; step
            energy is then interpolated for steps shorter than 2 s, and flagged so).
        log_level: ``"NONE"``, ``"EPOCH"`` or ``"STEP"``: energy lines written to the log.
        export_prometheus / prometheus_port: serve our metrics for Prometheus to scrape.
        save_report / report_path: write the JSON carbon report at the end of training.
        country: ISO 3166 alpha-2/alpha-3 code for the grid carbon intensity table.
        region: sub-national region; recorded, not yet used (annual tables are per country).
        grid_carbon_intensity: gCO2e/kWh override.
        pue: data-centre power usage effectiveness (>= 1).
        use_real_time_carbon: expect a live provider (``OTEL_PYTHON_ENERGY_CARBON_PROVIDER``);
            True without one logs how to set it up and uses the annual table.
        auto_detect_location: not supported (no location lookup is made); True logs so.
    """

    project_name: str = "hf-training"
    gpu_ids: list[int] | str = "auto"
    measurement_interval: float = 1.0
    log_level: str = "EPOCH"
    export_prometheus: bool = False
    prometheus_port: int = 9091
    save_report: bool = True
    report_path: str = "carbon_report.json"
    country: str | None = None
    region: str | None = None
    grid_carbon_intensity: float | None = None
    use_real_time_carbon: bool = False
    auto_detect_location: bool = False
    pue: float | None = None

    def __post_init__(self) -> None:
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(
                f"CarbonConfig.log_level={self.log_level!r} is not valid: expected"
                f" one of {', '.join(LOG_LEVELS)}."
            )
        self.log_level = self.log_level.upper()
        if self.gpu_ids != "auto" and not (
            isinstance(self.gpu_ids, list)
            and all(isinstance(i, int) and i >= 0 for i in self.gpu_ids)
        ):
            raise ConfigError(
                f"CarbonConfig.gpu_ids={self.gpu_ids!r} is not valid: expected"
                " 'auto' or a list of CUDA device ordinals such as [0, 1]."
            )
        if not 1 <= self.prometheus_port <= 65535:
            raise ConfigError(
                f"CarbonConfig.prometheus_port={self.prometheus_port!r} is not"
                " valid: expected a TCP port from 1 to 65535."
            )
        self.to_energy_config()  # validates the rest with the environment's rules and messages

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The ``OTEL_PYTHON_ENERGY_*`` view of this config layered over ``base`` (os.environ)."""
        env = dict(os.environ if base is None else base)
        env[ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL] = repr(float(self.measurement_interval))
        if self.country:
            env[ev.OTEL_PYTHON_ENERGY_COUNTRY] = self.country
        if self.grid_carbon_intensity is not None:
            env[ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY] = repr(float(self.grid_carbon_intensity))
        if self.pue is not None:
            env[ev.OTEL_PYTHON_ENERGY_PUE] = repr(float(self.pue))
        if isinstance(self.gpu_ids, list):
            visible = env.get("CUDA_VISIBLE_DEVICES")
            pool = [v.strip() for v in visible.split(",")] if visible else None
            picked = [pool[i] if pool and i < len(pool) else str(i) for i in self.gpu_ids]
            env["CUDA_VISIBLE_DEVICES"] = ",".join(picked)
        return env

    def to_energy_config(self) -> EnergyConfig:
        """Validated settings; errors name the ``CarbonConfig`` field."""
        try:
            return load_config(self.environment())
        except ConfigError as exc:
            names = {
                ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL: "measurement_interval",
                ev.OTEL_PYTHON_ENERGY_COUNTRY: "country",
                ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY: "grid_carbon_intensity",
                ev.OTEL_PYTHON_ENERGY_PUE: "pue",
            }
            msg = str(exc)
            for var, fld in names.items():
                if msg.startswith(var + "="):
                    msg = f"CarbonConfig.{fld} (as {msg}"
                    msg = msg.replace(" is not valid", ") is not valid", 1)
            raise ConfigError(msg) from None


@dataclass(frozen=True)
class CarbonMetrics:
    """Energy and emissions so far (or of a finished run)."""

    timestamp: float
    duration_s: float
    energy_j: float
    power_w: float
    co2e_g: float
    by_type_j: dict[str, float] = field(default_factory=dict)
    estimated: bool = False

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH

    @property
    def co2_kg(self) -> float:
        return self.co2e_g / 1000.0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(energy_kwh=self.energy_kwh, co2_kg=self.co2_kg)
        return d


@dataclass(frozen=True)
class CarbonReport:
    """The end-of-training report (also written as JSON to ``CarbonConfig.report_path``)."""

    project_name: str
    total: CarbonMetrics
    carbon_intensity_g_per_kwh: float
    carbon_intensity_source: str
    pue: float
    devices: list[dict[str, Any]]
    epochs: list[dict[str, Any]]
    steps: int
    identity: dict[str, Any]
    trace_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_name": self.project_name,
            "total": self.total.to_dict(),
            "carbon_intensity": {
                "g_per_kwh": self.carbon_intensity_g_per_kwh,
                "source": self.carbon_intensity_source,
            },
            "pue": self.pue,
            "devices": self.devices,
            "epochs": self.epochs,
            "steps": self.steps,
            "identity": self.identity,
            "trace_id": self.trace_id,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)
