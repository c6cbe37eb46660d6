"""``EnergyMeter``: energy, power and CO2e of blocks of a plain PyTorch loop, each block a span.

The API of the user's "energy-meter" design notes: ``with meter.epoch():``, ``with meter.batch():``,
``last_batch()`` and ``summary()``. It runs on the same process-wide sampler and span recorder as
the Trainer callback; ``batch`` blocks are recorded like optimizer steps (histogram, exemplars).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otel_energy.carbon import MAX_G_PER_KWH, Intensity
from otel_energy.config import ConfigError, EnergyConfig, check_number, load_config
from otel_energy.distributed.job import from_environment
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import WindowEnergy
from otel_energy.session import Session, end_recording, open_session
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.results import Measurement
from otel_energy.telemetry.spans import Interval


@dataclass
class _Totals:
    """Running totals: O(1) memory however many blocks are measured."""

    count: int = 0
    duration_s: float = 0.0
    energy_j: float = 0.0
    carbon_g: float = 0.0

    def add(self, m: Measurement) -> None:
        self.count += 1
        self.duration_s += m.duration_s
        self.energy_j += m.energy_j
        self.carbon_g += m.co2e_g

    def summary(self) -> dict[str, float | int]:
        n = max(self.count, 1)
        return {
            "count": self.count,
            "mean_duration_s": self.duration_s / n,
            "mean_energy_j": self.energy_j / n,
            "mean_co2e_g": self.carbon_g / n,
            "mean_carbon_g": self.carbon_g / n,  # the first name, kept: same value
            "total_duration_s": self.duration_s,
            "total_energy_j": self.energy_j,
            "total_co2e_g": self.carbon_g,
            "total_carbon_g": self.carbon_g,  # the first name, kept: same value
        }


def _block(w: WindowEnergy, carbon_g: float, final: bool) -> dict[str, Any]:
    """A block's public dict: the window's ``Measurement`` under this API's names."""
    m = Measurement.of(w, carbon_g)
    return {
        "duration_s": m.duration_s,
        "energy_j": m.energy_j,
        "avg_power_w": m.avg_power_w,
        "co2e_g": m.co2e_g,
        "carbon_g": m.co2e_g,  # the first name, kept: same value as co2e_g
        "energy_by_type_j": m.by_type_j,
        "estimated": m.estimated,
        "interpolated": w.interpolated,
        "final": final,
    }


def _settings(
    sample_interval: float | None, cpu_tdp_w: float | None, g_per_kwh: float | None
) -> tuple[EnergyConfig, Intensity | None]:
    """The configuration and the intensity override (gCO2e/kWh), or a ConfigError naming the
    argument or variable and its valid values."""
    try:
        config = load_config(sample_interval_s=sample_interval, cpu_tdp_w=cpu_tdp_w)
        if g_per_kwh is None:
            return config, None
        checked = check_number("carbon_intensity_g_per_kwh", g_per_kwh, 0.0, MAX_G_PER_KWH)
    except ConfigError as exc:
        raise ConfigError(f"EnergyMeter: {exc}") from None
    return config, Intensity(float(checked), "override")


class EnergyMeter:
    """Measure epochs and batches of any training loop.

    Args:
        sample_interval: seconds between sensor reads, if this meter starts the sampler (s).
        cpu_tdp_w: CPU TDP for the estimate used without RAPL (W).
        gpu_tdp_w: accepted for compatibility; GPUs are measured through NVML, never estimated.
        carbon_intensity_g_per_kwh: fixed grid intensity (gCO2e/kWh); the configured table or
            override (``OTEL_PYTHON_ENERGY_*``) when None.
        tracer_provider, meter_provider: where spans and metrics go (globals by default).
        sampler_factory: builds the sampler if none runs yet (tests inject fakes).
    """

    def __init__(
        self,
        sample_interval: float | None = None,
        cpu_tdp_w: float | None = None,
        gpu_tdp_w: float | None = None,
        carbon_intensity_g_per_kwh: float | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        sampler_factory: Any = None,
    ) -> None:
        # The environment's rules, before anything starts: no sampler left running.
        config, intensity = _settings(sample_interval, cpu_tdp_w, carbon_intensity_g_per_kwh)
        self.gpu_tdp_w = gpu_tdp_w
        # Waits once for discovery and a first sample: ``device`` is known when this returns.
        self._session: Session | None = open_session(
            sampler_factory or (lambda: build_sampler(config))
        )
        # TRACEPARENT only: the derived job root is emitted by the Trainer callback's rank 0.
        self._rec = self._session.recorder(
            tracer_provider,
            meter_provider,
            intensity=intensity,
            root_context=from_environment(os.environ),
        )
        self._rec.on_complete.append(self._completed)
        self._lock = threading.Lock()
        self._batches = _Totals()
        self._epochs = _Totals()
        self._epoch: Interval | None = None
        self._last: Interval | None = None
        self._last_block: dict[str, Any] | None = None
        self._batch_index = 0
        self._epoch_index = 0
        atexit.register(self.close)

    # ---- what is measured ----
    @property
    def carbon_intensity_g_per_kwh(self) -> float:
        rec = self._rec
        return (rec.intensity_override or rec.sampler.snapshot().intensity).g_per_kwh

    @property
    def device(self) -> str:
        """``gpu`` when a GPU is measured, else ``cpu``."""
        return "gpu" if any(s.info.hw_type == "gpu" for s in self._rec.sampler.sensors) else "cpu"

    def _get_gpu_name(self) -> str | None:
        gpus = [s.info for s in self._rec.sampler.sensors if s.info.hw_type == "gpu"]
        return gpus[0].model if gpus else None

    # ---- blocks ----
    @contextmanager
    def _measured(self, iv: Interval) -> Iterator[None]:
        """Finish ``iv`` when the block ends, recording (and re-raising) an exception."""
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            attrs = {A.TRAIN_STEPS: iv.steps} if iv.kind == "epoch" else None
            self._rec.finish(iv, error, attrs)

    @contextmanager
    def epoch(self) -> Iterator[None]:
        """Measure an epoch (a span named ``epoch``, child of the current span)."""
        iv = self._rec.start("epoch", "epoch", None, {A.TRAIN_EPOCH: self._epoch_index})
        self._epoch_index += 1
        self._epoch = iv
        try:
            with self._measured(iv):
                yield
        finally:
            self._epoch = None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Measure one batch (a span named ``batch``, child of the open epoch)."""
        self._batch_index += 1
        iv = self._rec.start("step", "batch", self._epoch, {A.TRAIN_STEP: self._batch_index})
        try:
            with self._measured(iv):
                yield
        finally:
            if self._epoch is not None:
                self._epoch.steps += 1
            w = self._rec.provisional(iv.t0_s)  # never waits; exact once the sampler catches up
            w = replace(w, t1_s=iv.t1_s or w.t1_s)
            with self._lock:
                self._last = iv
                self._last_block = _block(w, self._rec.co2e_of(w), final=False)

    def _completed(self, iv: Interval) -> None:
        w = iv.result
        if w is None:
            return
        with self._lock:
            totals = self._batches if iv.kind == "step" else self._epochs
            totals.add(Measurement.of(w, iv.co2e_g))
            if iv is self._last:
                self._last_block = _block(w, iv.co2e_g, final=True)

    # ---- results ----
    def last_batch(self) -> dict[str, Any]:
        """The most recent batch: duration_s (s), energy_j (J), avg_power_w (W), co2e_g (g; also
        as carbon_g, its first name), and whether the value is ``final`` (False: the sampler had
        not yet passed its end; the tail is extrapolated at current power and replaced by the
        measured value shortly after)."""
        with self._lock:
            if self._last_block is None:
                raise RuntimeError("last_batch() needs a finished 'with meter.batch():' block.")
            return dict(self._last_block)

    def summary(self) -> dict[str, Any]:
        """Totals and means over every batch and epoch (waits once for the last sample):
        ``device``, ``gpu_name``, ``carbon_intensity_g_per_kwh``, ``num_batches``, ``num_epochs``
        and ``batch_summary``/``epoch_summary``, each with ``count`` and the ``mean_``/``total_``
        of ``duration_s``, ``energy_j`` and ``co2e_g`` (also as ``carbon_g``, its first name)."""
        self._rec.flush()
        with self._lock:
            return {
                "device": self.device,
                "gpu_name": self._get_gpu_name(),
                "carbon_intensity_g_per_kwh": self.carbon_intensity_g_per_kwh,
                "num_batches": self._batches.count,
                "num_epochs": self._epochs.count,
                "batch_summary": self._batches.summary(),
                "epoch_summary": self._epochs.summary(),
            }

    def close(self) -> None:
        """Complete pending spans and release the sampler (idempotent; also run at exit)."""
        session, self._session = self._session, None
        if session is None:
            return
        atexit.unregister(self.close)
        end_recording(self._rec, session)

    def __enter__(self) -> EnergyMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
