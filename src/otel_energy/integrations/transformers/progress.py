"""What ``EnergyCallback`` reports while the run goes on: the keys it adds to the Trainer's logs
and the projection of the run's totals (a mixin: the callback's own state).

Arithmetic on the sampler's figures only: nothing here waits for the sampler or does I/O.
"""

from __future__ import annotations

from typing import Any

from otel_energy.integrations.hooks import LOG_KEYS, guarded, job_log_values
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.predict import Predictor, Progress, Projection, remaining_intensity
from otel_energy.telemetry.spans import Interval, SpanEnergyRecorder


class RunProgress:
    """``on_log`` values and the run's projection (``predictor``)."""

    _rec: SpanEnergyRecorder | None
    _run: Interval | None
    _evals: list[Interval]
    _last_log: tuple[Interval, float, float] | None
    _failed_hooks: set[str]
    predictor: Predictor | None

    def _predict(self, step: int, epoch_end: bool) -> Projection | None:
        """Project the run's totals (arithmetic on the sampler's figures; no I/O)."""
        rec, run, predictor = self._rec, self._run, self.predictor
        if rec is None or run is None or predictor is None:
            return None
        now = self._progress(step)
        if epoch_end:
            predictor.epoch_end(now)
        snap = rec.sampler.snapshot()
        override = rec.intensity_override
        g_now = override.g_per_kwh if override is not None else snap.intensity.g_per_kwh
        provider = None if override is not None else rec.sampler.intensity_provider
        p = predictor.update(now, snap.pue, lambda s: remaining_intensity(provider, g_now, s))
        if p is not None and run.span is not None:
            run.span.add_event(A.EVENT_PREDICTION, p.span_attributes())
        return p

    def _progress(self, step: int) -> Progress:
        assert self._rec is not None and self._run is not None
        w = self._rec.provisional(self._run.t0_s)
        return Progress(int(step), w.duration_s, w.energy_j, self._rec.co2e_of(w))

    def _prediction_source(self) -> tuple[Projection | None, dict[str, Any]]:
        rec, predictor = self._rec, self.predictor
        if self._run is None or rec is None or predictor is None:
            return None, {}
        return predictor.latest, rec.identity

    @guarded
    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        outer = self._run or (self._evals[0] if self._evals else None)
        if self._rec is None or outer is None or logs is None:
            return
        w = self._rec.provisional(outer.t0_s)  # never waits: the tail is extrapolated
        last_outer, last_t, last_e = self._last_log or (outer, outer.t0_s, 0.0)
        if last_outer is not outer:  # a new outer interval: its first log covers it from t0
            last_t, last_e = outer.t0_s, 0.0
        dt = w.t1_s - last_t
        power = (w.energy_j - last_e) / dt if dt > 0 else w.avg_power_w
        self._last_log = (outer, w.t1_s, w.energy_j)
        values = dict(zip(LOG_KEYS, (w.energy_j, w.co2e_g, power), strict=True))
        values.update(job_log_values(w))
        if self.predictor is not None and self.predictor.latest is not None:
            values.update(self.predictor.latest.log_values())
        logs.update(values)
        history = getattr(state, "log_history", None)
        if history and history[-1].get("step") == state.global_step:
            history[-1].update(values)  # Trainer.log appended a copy before calling us
