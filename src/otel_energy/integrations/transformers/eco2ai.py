"""The Eco2AI-plugin API promised in the user's design notes: ``CarbonConfig`` and its reports.

Only plain data lives here (no transformers import); ``otel_energy.hf.Eco2AICallback`` implements
it on top of the same sampler and spans as ``EnergyCallback``
(:mod:`~otel_energy.integrations.transformers.eco2ai_callback`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_energy.config import ConfigError, EnergyConfig, load_config
from otel_energy.config import variables as ev
from otel_energy.telemetry.results import Measurement

_log = logging.getLogger(__name__)

LOG_LEVELS = ("NONE", "EPOCH", "STEP")
EXPORT_FORMATS = ("json",)
_LABELS = {
    "sample_interval_s": "CarbonConfig.measurement_interval",
    "country": "CarbonConfig.country",
    "carbon_intensity_g_per_kwh": "CarbonConfig.grid_carbon_intensity",
    "pue": "CarbonConfig.pue",
    "gpu_ids": "CarbonConfig.gpu_ids",
}
"""``load_config`` override -> the ``CarbonConfig`` field it comes from (named in errors)."""


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
        if not 1 <= self.prometheus_port <= 65535:
            raise ConfigError(
                f"CarbonConfig.prometheus_port={self.prometheus_port!r} is not"
                " valid: expected a TCP port from 1 to 65535."
            )
        self.to_energy_config()  # validates the rest with the environment's rules

    def to_energy_config(self, environ: Mapping[str, str] | None = None) -> EnergyConfig:
        """The settings: ``environ`` (``os.environ``) with this config's fields as overrides,
        validated once; an error names the ``CarbonConfig`` field and its valid values."""
        return load_config(
            environ,
            labels=_LABELS,
            sample_interval_s=self.measurement_interval,
            country=self.country or None,
            carbon_intensity_g_per_kwh=self.grid_carbon_intensity,
            pue=self.pue,
            gpu_ids=self.gpu_ids,
        )

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The ``OTEL_PYTHON_ENERGY_*`` view of this config layered over ``base`` (os.environ),
        e.g. for a child process; the callback itself uses ``to_energy_config()``."""
        env = dict(os.environ if base is None else base)
        env[ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL] = repr(float(self.measurement_interval))
        if self.country:
            env[ev.OTEL_PYTHON_ENERGY_COUNTRY] = self.country
        if self.grid_carbon_intensity is not None:
            env[ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY] = repr(float(self.grid_carbon_intensity))
        if self.pue is not None:
            env[ev.OTEL_PYTHON_ENERGY_PUE] = repr(float(self.pue))
        visible = self.to_energy_config(env).cuda_visible_devices
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        return env


@dataclass(frozen=True)
class CarbonMetrics:
    """Energy and emissions so far (or of a finished run): a ``Measurement`` with its time.

    Attributes:
        timestamp: when it was taken (Unix time, s).
        duration_s, energy_j, power_w, co2e_g, by_type_j, estimated: the measurement's
            duration (s), energy (J), average power (W), CO2e (g), energy per type (J) and
            estimate flag.
    """

    timestamp: float
    duration_s: float
    energy_j: float
    power_w: float
    co2e_g: float
    by_type_j: dict[str, float] = field(default_factory=dict)
    estimated: bool = False

    @classmethod
    def of(cls, m: Measurement, timestamp: float) -> CarbonMetrics:
        """``m`` taken at ``timestamp`` (Unix time, s)."""
        return cls(
            timestamp,
            m.duration_s,
            m.energy_j,
            m.avg_power_w,
            m.co2e_g,
            dict(m.by_type_j),
            m.estimated,
        )

    @property
    def measurement(self) -> Measurement:
        """The same figures as a ``Measurement``."""
        return Measurement(
            self.duration_s,
            self.energy_j,
            self.power_w,
            self.co2e_g,
            dict(self.by_type_j),
            self.estimated,
        )

    @property
    def energy_kwh(self) -> float:
        """``energy_j`` in kWh (the Eco2AI convention)."""
        return self.measurement.energy_kwh

    @property
    def co2_kg(self) -> float:
        """``co2e_g`` in kg (the Eco2AI convention)."""
        return self.measurement.co2e_kg

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
