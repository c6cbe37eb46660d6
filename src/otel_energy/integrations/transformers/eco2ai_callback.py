"""``Eco2AICallback``: the Eco2AI plugin's callback on the same sampler and spans as
``EnergyCallback``, with a JSON carbon report, epoch rows and an optional Prometheus endpoint."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from otel_energy.integrations.transformers.callback import EnergyCallback
from otel_energy.integrations.transformers.eco2ai import (
    EXPORT_FORMATS,
    CarbonConfig,
    CarbonMetrics,
    CarbonReport,
)
from otel_energy.integrations.transformers.prometheus import PrometheusEndpoint, serve_prometheus
from otel_energy.safety.files import write_private
from otel_energy.session import Session
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.results import Measurement
from otel_energy.telemetry.spans import Interval, SpanEnergyRecorder

__all__ = ["Eco2AICallback"]

_log = logging.getLogger(__name__)


class Eco2AICallback(EnergyCallback):
    """The Eco2AI plugin's callback, on the same sampler and spans as ``EnergyCallback``.

    Adds ``get_current_metrics()``, ``generate_report()``, ``export_metrics()`` and a JSON carbon
    report written to ``config.report_path`` at the end of training.
    """

    def __init__(
        self,
        config: CarbonConfig | None = None,
        integrations: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.carbon_config = config or CarbonConfig()
        # One conversion: the base class builds its sampler from this EnergyConfig.
        super().__init__(config=self.carbon_config.to_energy_config(), **kwargs)
        self.integrations = list(integrations or [])
        self._epochs: list[dict[str, Any]] = []
        if self.carbon_config.log_level == "STEP":  # a per-step result only when asked for
            self.tracker.on_step.append(self._log_step)
        self._report: CarbonReport | None = None
        if self.carbon_config.use_real_time_carbon and self.config.carbon is None:
            _log.warning(
                "otel-energy: CarbonConfig.use_real_time_carbon needs a live provider: set"
                " OTEL_PYTHON_ENERGY_CARBON_PROVIDER (electricitymaps, watttime or uk) and its"
                " zone and key (docs/carbon.md); using %s.",
                self.config.intensity.source,
            )
        if self.carbon_config.auto_detect_location:
            _log.warning(
                "otel-energy: CarbonConfig.auto_detect_location is not supported (no location"
                " lookup is made); set OTEL_PYTHON_ENERGY_ZONE or _LATITUDE/_LONGITUDE."
            )
        self._prometheus: PrometheusEndpoint | None = None
        self.tracker.on_open.append(self._serve_prometheus)
        self.tracker.on_close.append(self._close_prometheus)
        self.tracker.on_run_end.append(self._on_run_end)

    def _serve_prometheus(self, session: Session) -> None:
        # The endpoint lives as long as the recording: a second train() serves again.
        if self.carbon_config.export_prometheus and self._prometheus is None:
            self._prometheus = serve_prometheus(self.carbon_config.prometheus_port, session.sampler)

    def _close_prometheus(self) -> None:
        endpoint, self._prometheus = self._prometheus, None
        if endpoint is not None:
            endpoint.close()

    def _run_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {A.TRAIN_PROJECT: self.carbon_config.project_name}
        if self.carbon_config.region:
            attrs[A.TRAIN_REGION] = self.carbon_config.region
        return attrs

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._epochs, self._report = [], None
        super().on_train_begin(args, state, control, **kwargs)

    def _on_complete(self, iv: Interval) -> None:
        if iv.kind == "epoch" and iv.result is not None:
            m = Measurement.of(iv.result, iv.co2e_g)
            row = {
                "epoch": iv.attributes.get(A.TRAIN_EPOCH, len(self._epochs)),
                "steps": iv.steps,
                **m.totals(),
            }
            self._epochs.append(row)
            if self.carbon_config.log_level in ("EPOCH", "STEP"):
                _log.info(
                    "otel-energy: epoch %s: %.1f J, %.1f W, %.4f gCO2e",
                    row["epoch"],
                    m.energy_j,
                    m.avg_power_w,
                    m.co2e_g,
                )

    def _log_step(
        self, number: int, t0_s: float, t1_s: float, energy_j: float, co2e_g: float
    ) -> None:
        """``log_level="STEP"``: a line per step (the tracker's per-step hook, sampler thread)."""
        _log.info("otel-energy: step %s: %.3f J", number, energy_j)

    def _on_run_end(self, run: Interval, error: BaseException | None) -> None:
        """The run's spans are complete; the session is still held (the tracker's hook)."""
        rec, session = self.tracker.recorder, self.tracker.session
        if run.result is None or rec is None or session is None:
            return
        self._report = self._build_report(run, rec, session)
        if self.carbon_config.save_report:
            try:
                write_private(Path(self.carbon_config.report_path), self._report.to_json())
            except OSError as exc:
                _log.error(
                    "otel-energy: cannot write the carbon report to %s (%s); fix"
                    " CarbonConfig.report_path.",
                    self.carbon_config.report_path,
                    exc,
                )
        for integration in self.integrations:
            for method, arg in (
                ("log_metrics", self._report.total),
                ("on_training_end", self._report),
            ):
                try:
                    getattr(integration, method, lambda _: None)(arg)
                except Exception:
                    _log.exception("otel-energy: integration %r failed", integration)

    def _build_report(
        self, run: Interval, rec: SpanEnergyRecorder, session: Session
    ) -> CarbonReport:
        """The report at the recorder's own PUE and intensity (this config's, where they differ
        from a session another entry point opened)."""
        w = run.result
        assert w is not None
        snap = session.snapshot()
        intensity = rec.carbon.intensity or snap.intensity
        total = CarbonMetrics.of(Measurement.of(w, run.co2e_g), time.time())
        # Each device over the run's own window (not its counter since the sampler started), so
        # the devices add up to the total; the run's CO2e is shared in proportion to energy.
        share = run.co2e_g / w.energy_j if w.energy_j > 0 else 0.0
        devices = [
            {**d.info.attributes(), "energy_j": e, "co2e_g": e * share}
            for d in snap.devices
            for e in [w.by_device.get(d.info.hw_id, 0.0)]
        ]
        # No tracer provider (the API's no-op one): the span's ids are all zeros; say none.
        context = run.span.get_span_context() if run.span is not None else None
        trace_id = format(context.trace_id, "032x") if context and context.is_valid else None
        return CarbonReport(
            self.carbon_config.project_name,
            total,
            intensity.g_per_kwh,
            intensity.source,
            rec.pue,
            devices,
            list(self._epochs),
            run.steps,
            session.identity,
            trace_id,
        )

    def get_current_metrics(self) -> CarbonMetrics:
        """Energy and CO2e of the run so far (never waits; the tail is extrapolated)."""
        run, rec = self.tracker.run, self.tracker.recorder
        if run is None or rec is None:
            if self._report is not None:
                return self._report.total
            return CarbonMetrics.of(Measurement(), time.time())
        w = rec.provisional(run.t0_s)
        return CarbonMetrics.of(Measurement.of(w, rec.co2e_of(w)), time.time())

    def generate_report(self) -> CarbonReport:
        """The report of the last finished run.

        Raises:
            RuntimeError: no training run has finished yet.
        """
        if self._report is None:
            raise RuntimeError(
                "generate_report() needs a finished training run; call it after trainer.train()."
            )
        return self._report

    def export_metrics(self, format: str = "json") -> str:
        """The current metrics as text. ``format``: ``json``."""
        if format not in EXPORT_FORMATS:
            raise ValueError(
                f"export_metrics(format={format!r}) is not valid: expected one of"
                f" {', '.join(EXPORT_FORMATS)}."
            )
        return json.dumps(self.get_current_metrics().to_dict(), indent=2)

    @property
    def total_energy(self) -> float:
        """Energy of the current or last run in kWh (the Eco2AI convention)."""
        return self.get_current_metrics().energy_kwh

    @property
    def total_co2(self) -> float:
        """CO2e of the current or last run in kg (the Eco2AI convention)."""
        return self.get_current_metrics().co2_kg
