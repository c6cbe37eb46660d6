"""A second entry point's settings when a session is already open (issue 20).

The instrumentor opens the process's session at start-up from the environment; a later
``Eco2AICallback(CarbonConfig(pue=1.5, country="FR", measurement_interval=0.5))`` used to run
silently with PUE 1.0, the world average and the running 0.1 s. Now the carbon settings apply to
that callback's spans and report (per recorder) and the interval, which one sampler thread cannot
have twice, is named in one warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from otel_energy.carbon import table_intensity
from otel_energy.hf import CarbonConfig, Eco2AICallback
from otel_energy.instrumentor import EnergyInstrumentor
from otel_energy.testing.tiny import tiny_trainer
from tests.support.hf_helpers import Telemetry

FR = table_intensity("FR")


def eco2ai(tel: Telemetry, tmp_path: Path, name: str) -> Eco2AICallback:
    config = CarbonConfig(
        pue=1.5,
        country="FR",
        measurement_interval=0.5,
        report_path=str(tmp_path / f"{name}.json"),
        log_level="NONE",
    )
    return Eco2AICallback(
        config, tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider
    )


def test_a_later_callback_s_carbon_settings_apply_and_the_interval_is_named_once(
    tel: Telemetry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_SOURCES", "estimate")  # a real sampler, no hardware
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL", "0.05")
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_LEDGER", "off")
    inst = EnergyInstrumentor()
    inst.instrument(tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider)
    try:
        with caplog.at_level(logging.WARNING, logger="otel_energy"):
            for name in ("first", "second"):
                cb = eco2ai(tel, tmp_path, name)
                tiny_trainer(str(tmp_path / name), callbacks=[cb], num_train_epochs=1).train()
                report = cb.generate_report()
                assert report.pue == 1.5
                assert report.carbon_intensity_g_per_kwh == FR.g_per_kwh != 0
                assert report.carbon_intensity_source == FR.source
                total = report.total
                assert total.co2e_g == pytest.approx(total.energy_j / 3.6e6 * 1.5 * FR.g_per_kwh)
        assert inst.sampler is not None and inst.sampler.interval_s == 0.05  # unchanged
    finally:
        inst.uninstrument()
    runs = tel.finished("train")
    assert len(runs) == 2
    for run in runs:
        a = run.attributes or {}
        assert a["otel_energy.pue"] == 1.5
        assert a["otel_energy.carbon_intensity.source"] == FR.source
        assert a["otel_energy.co2e"] == pytest.approx(
            a["otel_energy.energy"] / 3.6e6 * 1.5 * FR.g_per_kwh
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    [interval] = [w for w in warnings if "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL" in w]  # once
    assert "sample_interval_s" in interval and "0.05" in interval and "0.5" in interval
    assert not [w for w in warnings if "pue" in w.lower() or "country" in w.lower()]
