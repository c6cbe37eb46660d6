"""A tracker's hold on the process's session: the session, the span recorder built on it with
this tracker's carbon settings, and the job's context (taken while a run or a phase is open)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otel_energy.carbon import Intensity
from otel_energy.config import EnergyConfig
from otel_energy.distributed.job import JobContext, job_context
from otel_energy.engine.sampler import Sampler
from otel_energy.engine.signals import (
    Closer,
    TerminationGuard,
    install_termination_guard,
    uninstall_termination_guard,
)
from otel_energy.session import Session, end_recording, open_session
from otel_energy.telemetry.predict import Projection, attach_gauges
from otel_energy.telemetry.spans import AttrValue, Interval, SpanEnergyRecorder
from otel_energy.telemetry.step_groups import StepHook

SamplerFactory = Callable[[Mapping[str, str]], Sampler]
"""Builds the process's sampler from an environment (the rank's), if none runs yet."""


@dataclass(frozen=True)
class Recording:
    """The session, its recorder for one tracker, the job's context, the providers (tracer,
    meter) that a SIGTERM flushes, and the sampler's clock (monotonic s; steps read it)."""

    session: Session
    recorder: SpanEnergyRecorder
    job: JobContext
    providers: tuple[Any, ...]
    clock: Callable[[], float]

    def close(self) -> None:
        """Complete the recorder's spans and drop the session user."""
        end_recording(self.recorder, self.session, self.recorder.flush_timeout_s)


class TrackerSettings(Protocol):
    """What a recording is built from (a ``RunTracker``'s settings)."""

    config: EnergyConfig
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None
    sampler_factory: SamplerFactory | None
    intensity: Intensity | None
    on_complete: list[Callable[[Interval], None]]
    on_step: list[StepHook]

    def prediction_source(self) -> tuple[Projection | None, dict[str, AttrValue]]: ...


def open_recording(tracker: TrackerSettings, environ: Mapping[str, str] | None) -> Recording:
    """Take the process's session (opening it from the tracker's config and ``environ`` if none
    runs) and build a recorder: spans under the job's context, CO2e at the tracker's fixed
    intensity (gCO2e/kWh) if any, else at the PUE and intensity of its config where they differ
    from the session's."""
    config, factory = tracker.config, tracker.sampler_factory
    env = dict(os.environ if environ is None else environ)
    # Waits once, at most 5 s, for discovery and a first sample, so that the run's first moments
    # are measured (at once if the instrumentor opened the session earlier).
    session = open_session((lambda: factory(env)) if factory else None, config=config, environ=env)
    pue, asked = session.carbon_for(config)
    mp = tracker.meter_provider or metrics.get_meter_provider()
    tp = tracker.tracer_provider or trace.get_tracer_provider()
    job = job_context(env, session.rank)
    fixed = tracker.intensity or asked
    rec = session.recorder(tp, mp, root_context=job.context, intensity=fixed, pue=pue)
    rec.on_complete.extend(tracker.on_complete)
    rec.on_step.extend(tracker.on_step)
    # OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT (or the config given in code) bounds every wait at the
    # end of the run, the run span's own flush included, not only the providers' flush.
    rec.flush_timeout_s = config.flush_timeout_s
    attach_gauges(mp, tracker.prediction_source)
    return Recording(session, rec, job, (tp, mp), session.sampler.clock)


class SignalHold:
    """The SIGTERM guard while a run is open: ``closer(signum)`` ends its spans, then the
    recording's providers are flushed (``engine.signals``); ``drop`` when the run ends."""

    def __init__(self, closer: Closer, providers: tuple[Any, ...]) -> None:
        self._closer = closer
        self._guard: TerminationGuard | None = install_termination_guard()
        if self._guard is not None:
            self._guard.register(closer, *providers)

    def drop(self) -> None:
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.unregister(self._closer)
            uninstall_termination_guard(guard)
