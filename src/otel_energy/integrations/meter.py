"""``EnergyMeter``: energy, power and CO2e of blocks of a plain PyTorch loop, each block a span.

The API of the user's "energy-meter" design notes: ``with meter.epoch():``, ``with meter.batch():``,
``last_batch()`` and ``summary()``, mapped onto a ``RunTracker`` like every framework callback:
the meter's life is the run (span ``train``, its ledger row and job root, the projection when
``total_batches`` is given), ``epoch`` blocks its epochs, ``batch`` blocks its steps (span
``batch``, the step histogram with exemplars).
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otel_energy.carbon import MAX_G_PER_KWH, Intensity
from otel_energy.config import ConfigError, EnergyConfig, check_number, load_config
from otel_energy.session import Session, WindowEnergy
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.results import Measurement
from otel_energy.telemetry.spans import Interval, SpanEnergyRecorder
from otel_energy.tracker import RunTracker

_log = logging.getLogger(__name__)


@dataclass
class _Totals:
    """Running totals: O(1) memory however many blocks are measured."""

    count: int = 0
    duration_s: float = 0.0
    energy_j: float = 0.0
    carbon_g: float = 0.0

    def add(self, m: Measurement) -> None:
        self.add_values(m.duration_s, m.energy_j, m.co2e_g)

    def add_values(self, duration_s: float, energy_j: float, co2e_g: float) -> None:
        """One block: its duration (s), energy (J) and CO2e (g)."""
        self.count += 1
        self.duration_s += duration_s
        self.energy_j += energy_j
        self.carbon_g += co2e_g

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
        total_batches: the batches the loop will run, if known: the run's energy, CO2e and
            duration are then projected at each epoch end (span events, gauges, ``summary()``).
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
        total_batches: int | None = None,
    ) -> None:
        # The environment's rules, before anything starts: no sampler left running.
        config, intensity = _settings(sample_interval, cpu_tdp_w, carbon_intensity_g_per_kwh)
        self.gpu_tdp_w = gpu_tdp_w
        make = sampler_factory
        self.tracker = RunTracker(
            config,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            sampler_factory=(lambda _env: make()) if make else None,
            intensity=intensity,
        )
        self.tracker.on_complete.append(self._completed)
        self.tracker.on_step.append(self._batch_done)
        self.tracker.on_open.append(self._opened)
        self._lock = threading.Lock()
        self._batches = _Totals()
        self._epochs = _Totals()
        self._last_block: dict[str, Any] | None = None
        self._batch_index = 0
        self._final_for = 0  # the batch whose measured (final) value is in _last_block
        self._ended: tuple[int, float, float] | None = None  # newest batch: (number, t0, t1 s)
        self._failed: set[str] = set()  # block kinds whose failure was logged
        self._epoch_index = 0
        # The meter's life is the run; waits once for discovery and a first sample, so that
        # ``device`` is known when this returns.
        attrs = {A.TRAIN_MAX_STEPS: total_batches} if total_batches else {}
        self.tracker.begin_run(attrs, total_steps=total_batches or 0)
        self._rec: SpanEnergyRecorder | None = self.tracker.recorder
        self._session: Session | None = self.tracker.session
        atexit.register(self.close)

    def _opened(self, session: Session) -> None:
        assert self.tracker.recorder is not None
        self.tracker.recorder.step_name = "batch"
        self.tracker.recorder.group_name = "batches"

    # ---- what is measured ----
    @property
    def carbon_intensity_g_per_kwh(self) -> float:
        rec, session = self._rec, self._session
        assert rec is not None and session is not None
        return (rec.carbon.intensity or session.snapshot().intensity).g_per_kwh

    @property
    def device(self) -> str:
        """``gpu`` when a GPU is measured, else ``cpu``."""
        return "gpu" if self._gpus() else "cpu"

    def _gpus(self) -> list[Any]:
        session = self._session
        return [d for d in (session.devices if session else []) if d.hw_type == "gpu"]

    def _get_gpu_name(self) -> str | None:
        gpus = self._gpus()
        return gpus[0].model if gpus else None

    # ---- blocks ----
    @contextmanager
    def epoch(self) -> Iterator[None]:
        """Measure an epoch (a span named ``epoch``, child of the meter's run)."""
        self._quietly("epoch", self.tracker.begin_epoch, self._epoch_index, self._batch_index)
        self._epoch_index += 1
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:  # a failure of ours never replaces the user's exception, nor raises one
            self._quietly("epoch", self.tracker.end_epoch, self._batch_index, error)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Measure one batch (a span named ``batch``, child of the open epoch)."""
        self._batch_index += 1
        rec = self.tracker.recorder
        t0_s = rec.now() if rec is not None else 0.0
        self._quietly("batch", self.tracker.step_begin, self._batch_index)
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:  # two clock readings and a queued record: last_batch() computes on demand
            self._quietly("batch", self.tracker.step_end, error)
            if rec is not None:
                with self._lock:
                    self._ended = (self._batch_index, t0_s, rec.now())

    @contextmanager
    def evaluate(self, name: str = "evaluate") -> Iterator[None]:
        """Measure an evaluation (a phase: span ``name``, ``evaluate`` or ``predict``, child of
        the open epoch or the run); it counts in the run, not in the batch totals."""
        iv = self.tracker.begin_phase(name)
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.tracker.end_phase(iv, error)

    def log_values(self) -> dict[str, float]:
        """The run's log keys now (``otel_energy.tracker.ALL_LOG_KEYS``): energy (J) and CO2e
        (g) so far, power (W) since the previous call, the projection once made. Never waits."""
        return self.tracker.log_values()

    def _completed(self, iv: Interval) -> None:
        w = iv.result
        if w is None or iv.kind != "epoch":
            return
        with self._lock:
            self._epochs.add(Measurement.of(w, iv.co2e_g))

    def _batch_done(
        self, number: int, t0_s: float, t1_s: float, energy_j: float, co2e_g: float
    ) -> None:
        """A batch is measured (the tracker's per-step hook, on the sampler thread): into the
        totals; the latest batch's full result (by type, flags) from one window."""
        with self._lock:
            self._batches.add_values(t1_s - t0_s, energy_j, co2e_g)
            latest = number == self._batch_index
        rec = self._rec
        if latest and rec is not None:  # at most once per tick: only the newest batch
            w = rec.sampler.window(t0_s, t1_s)
            with self._lock:
                if number == self._batch_index:
                    self._last_block = _block(w, rec.co2e_of(w), final=True)
                    self._final_for = number

    # ---- results ----
    def last_batch(self) -> dict[str, Any]:
        """The most recent batch: duration_s (s), energy_j (J), avg_power_w (W), co2e_g (g; also
        as carbon_g, its first name), and whether the value is ``final`` (False: the sampler had
        not yet passed its end; the tail is extrapolated at current power and replaced by the
        measured value shortly after)."""
        rec = self._rec
        with self._lock:
            ended, block = self._ended, self._last_block
            if ended is not None and self._final_for == ended[0]:
                ended = None  # the sampler has measured it: the final value is there
        if ended is not None and rec is not None:  # never waits: the tail at current power
            w = rec.sampler.window(ended[1], ended[2], extrapolate=True)
            block = _block(w, rec.co2e_of(w), final=False)
        if block is None:
            raise RuntimeError("last_batch() needs a finished 'with meter.batch():' block.")
        return dict(block)

    def _quietly(self, what: str, call: Callable[..., None], *args: Any) -> None:
        """``call(*args)``; a failure of ours is logged once per block kind, never raised into
        the user's loop."""
        try:
            call(*args)
        except Exception:
            if what not in self._failed:
                self._failed.add(what)
                _log.exception("otel-energy: EnergyMeter.%s() failed; the loop goes on", what)

    def summary(self) -> dict[str, Any]:
        """Totals and means over every batch and epoch (waits once for the last sample):
        ``device``, ``gpu_name``, ``carbon_intensity_g_per_kwh``, ``num_batches``, ``num_epochs``
        and ``batch_summary``/``epoch_summary``, each with ``count`` and the ``mean_``/``total_``
        of ``duration_s``, ``energy_j`` and ``co2e_g`` (also as ``carbon_g``, its first name)."""
        if self._rec is not None:
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

    def close(self, error: BaseException | None = None) -> None:
        """End the run (its spans complete, its ledger row written) and release the sampler
        (idempotent; also run at exit). ``error``: what ended the loop, if it failed."""
        atexit.unregister(self.close)
        if error is None:
            self.tracker.close()
        else:
            self.tracker.fail(error)

    def __enter__(self) -> EnergyMeter:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.close(exc)
