"""What a run reports while it goes on: the values of the log keys and the footprint projection.

Arithmetic on the sampler's figures only: nothing here waits for the sampler or does I/O, so
every framework's logging hook can call it on the training thread.
"""

from __future__ import annotations

from otel_energy.engine.history import WindowEnergy
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.predict import LOG_KEYS as PREDICTED_LOG_KEYS
from otel_energy.telemetry.predict import Predictor, Progress, Projection, remaining_intensity
from otel_energy.telemetry.spans import Interval, SpanEnergyRecorder

LOG_KEYS = ("otel_energy/energy_j", "otel_energy/co2e_g", "otel_energy/power_w")
"""Keys added to the framework's logs: energy (J) and CO2e (g) since the run (or the standalone
evaluation) began, and the average power (W) since the previous log."""

JOB_LOG_KEYS = ("otel_energy/attributed_energy_j", "otel_energy/dynamic_energy_j")
"""Keys added beside them: the job's attributed and dynamic energy (J) since the run began
(docs/attribution.md); ``otel_energy/energy_j`` stays the node's."""

ALL_LOG_KEYS = (*LOG_KEYS, *JOB_LOG_KEYS, *PREDICTED_LOG_KEYS)
"""Every key a run may log: the three above, the job's two where attribution gives them, and,
once projected, ``otel_energy/predicted_*`` (J, g, s)."""


def job_log_values(w: WindowEnergy) -> dict[str, float]:
    """The job's log values of a window (empty when it has none)."""
    if w.attributed_j is None:
        return {}
    return dict(zip(JOB_LOG_KEYS, (float(w.attributed_j), float(w.dynamic_j or 0.0)), strict=True))


class LogClock:
    """The previous log of one outer interval: a log's power covers the time since it."""

    def __init__(self) -> None:
        self._last: tuple[Interval, float, float] | None = None  # (outer, t_s, energy_j)

    def values(self, rec: SpanEnergyRecorder, outer: Interval) -> dict[str, float]:
        """Energy (J), CO2e (g) of ``outer`` so far and the power (W) since the previous log."""
        w = rec.provisional(outer.t0_s)  # never waits: the tail is extrapolated
        last_outer, last_t, last_e = self._last or (outer, outer.t0_s, 0.0)
        if last_outer is not outer:  # a new outer interval: its first log covers it from t0
            last_t, last_e = outer.t0_s, 0.0
        dt = w.t1_s - last_t
        power = (w.energy_j - last_e) / dt if dt > 0 else w.avg_power_w
        self._last = (outer, w.t1_s, w.energy_j)
        co2e = rec.co2e_of(w)
        return dict(zip(LOG_KEYS, (w.energy_j, co2e, power), strict=True)) | job_log_values(w)


def progress(rec: SpanEnergyRecorder, run: Interval, step: int) -> Progress:
    """Where ``run`` stands at optimizer ``step``: s, J and g since it began."""
    w = rec.provisional(run.t0_s)
    return Progress(int(step), w.duration_s, w.energy_j, rec.co2e_of(w))


def project(
    rec: SpanEnergyRecorder, run: Interval, predictor: Predictor, step: int, epoch_end: bool
) -> Projection | None:
    """Project the run's totals at ``step``; the projection is also an event on the run span."""
    now = progress(rec, run, step)
    if epoch_end:
        predictor.epoch_end(now)
    fixed = rec.carbon.intensity
    if fixed is not None:
        g_now, provider = fixed.g_per_kwh, None
    else:
        g_now, provider = rec.sampler.snapshot().intensity.g_per_kwh, rec.sampler.intensity_provider
    p = predictor.update(now, rec.pue, lambda s: remaining_intensity(provider, g_now, s))
    if p is not None and run.span is not None:
        run.span.add_event(A.EVENT_PREDICTION, p.span_attributes())
    return p
