"""The process's measurement session: the one place where the engine and telemetry meet.

Data flows one way, ``sensors -> engine -> telemetry -> session -> integrations/cli``: every entry
point (the Trainer and Lightning callbacks, ``EnergyMeter``, the instrumentor, ``otel-energy run``,
``devices``/``doctor``/``demo``) opens the session and closes it, and gets from it what it used to
wire by hand: the process's sampler, a first sample, a tracer with private ids, the ``hw.*``
instruments on its meter provider and ``SpanEnergyRecorder``s with the step histogram.

Reference-counted, one per process: the sampler starts with the first user and stops with the
last, so the instrumentor and a hand-added callback never run two threads or count a device twice.
After ``fork()`` (DataLoader workers) the parent's session is not the child's: the child sees no
session, and one it opens has its own sampler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Tracer, TracerProvider

from otel_energy.carbon import Intensity, IntensitySource
from otel_energy.config import load_config
from otel_energy.distributed.ranks import RankInfo
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import Sampler
from otel_energy.telemetry.ids import use_private_ids
from otel_energy.telemetry.instruments import EnergyObserver, attach
from otel_energy.telemetry.scope import get_tracer
from otel_energy.telemetry.spans import AttrValue, SpanEnergyRecorder
from otel_energy.telemetry.step_histogram import step_histogram

__all__ = [
    "FIRST_SAMPLE_TIMEOUT_S",
    "Session",
    "close_session",
    "current_session",
    "open_session",
    "session",
]

# How long the first user waits for discovery and a first sample (s): long enough for nvmlInit on
# a busy node, short enough that a hung driver only delays the start of training, once.
FIRST_SAMPLE_TIMEOUT_S = 5.0

SamplerFactory = Callable[[], Sampler]

_lock = threading.Lock()
_current: Session | None = None


class Session:
    """The process's sampler and what every entry point builds on it.

    Get one with ``open_session()`` (or ``with session():``), never by hand: the module keeps one
    per process and counts its users.
    """

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.users = 0  # guarded by the module lock
        self._waited = False
        self._wait_lock = threading.Lock()

    # ---- who and what: the sampler's settings, read here so that others need not ----
    @property
    def rank(self) -> RankInfo:
        """Who this process is (host, rank, world size)."""
        return self.sampler.rank

    @property
    def identity(self) -> dict[str, AttrValue]:
        """The identity attributes (host, rank) of everything this process reports."""
        return dict(self.sampler.rank.attributes())

    @property
    def pue(self) -> float:
        """Power usage effectiveness applied to CO2e (dimensionless, >= 1)."""
        return self.sampler.pue

    @property
    def intensity_provider(self) -> IntensitySource:
        """Where the grid carbon intensity (gCO2e/kWh) comes from."""
        return self.sampler.intensity_provider

    # ---- the first sample ----
    def wait_first_sample(self, timeout_s: float = FIRST_SAMPLE_TIMEOUT_S) -> bool:
        """Wait, once per session and at most ``timeout_s`` (s), for discovery and a first sample.

        True when a sample exists. Only the first caller waits: if discovery hangs (a stuck
        driver), later users start at once instead of each paying the timeout again.
        """
        if self.sampler.newest_sample_s != float("-inf"):
            return True
        with self._wait_lock:
            if self._waited:
                return self.sampler.newest_sample_s != float("-inf")
            self._waited = True
            return self.sampler.wait_for_sample(float("-inf"), timeout_s)

    # ---- telemetry ----
    def tracer(self, tracer_provider: TracerProvider | None = None) -> Tracer:
        """Our tracer on ``tracer_provider`` (the global one by default), with ids drawn from
        ``os.urandom``: ``transformers.set_seed`` reseeds ``random``, the SDK's default."""
        tracer = get_tracer(tracer_provider or trace.get_tracer_provider())
        use_private_ids(tracer)
        return tracer

    def attach(self, meter_provider: MeterProvider | None = None) -> EnergyObserver:
        """The ``hw.*``/CO2e instruments on ``meter_provider`` (global default), pointed at this
        session's sampler; registered once per provider."""
        # Registered once per provider (telemetry keeps one observer per provider, weakly); every
        # call re-points it, since an uninstrument silences an observer another user still needs.
        return attach(meter_provider or metrics.get_meter_provider(), self.sampler)

    def recorder(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        root_context: Context | None = None,
        intensity: Intensity | None = None,
    ) -> SpanEnergyRecorder:
        """A span recorder on this session's sampler: our tracer, the step histogram and the
        instruments on ``meter_provider``, this process's identity, spans under ``root_context``
        (the job's), CO2e at ``intensity`` (gCO2e/kWh) when given instead of the provider's."""
        mp = meter_provider or metrics.get_meter_provider()
        self.attach(mp)
        return SpanEnergyRecorder(
            self.sampler,
            self.tracer(tracer_provider),
            step_histogram(mp),
            identity=self.identity,
            intensity=intensity,
            root_context=root_context,
        )


def open_session(
    factory: SamplerFactory | None = None, wait_s: float | None = FIRST_SAMPLE_TIMEOUT_S
) -> Session:
    """The process's session with one more user; its sampler built by ``factory`` (from the
    environment by default) and started if none runs yet in this process.

    ``wait_s``: wait up to this long (s) for the first sample (once per session; see
    ``Session.wait_first_sample``); None to return at once (the instrumentor, at start-up).
    """
    global _current
    with _lock:
        if _current is None or not _current.sampler.in_owner_process:
            _current = Session(factory() if factory else build_sampler(load_config()))
        opened = _current
        opened.users += 1
        opened.sampler.start()
    if wait_s is not None:
        opened.wait_first_sample(wait_s)
    return opened


def close_session(closing: Session) -> None:
    """Drop one user; the last one stops the sampler (a last sample, then the thread ends).

    A session that is no longer the process's (a forked child's copy of its parent's, or one
    already closed) only has its sampler stopped, which is idempotent and a no-op in a child.
    """
    global _current
    with _lock:
        if closing is _current:
            closing.users -= 1
            if closing.users > 0:
                return
            _current = None
    closing.sampler.stop()


def end_recording(rec: SpanEnergyRecorder, opened: Session | None) -> None:
    """The end of an entry point's recording: complete the recorder's pending spans (they have
    their energy before the caller returns), stop it listening, then drop the entry point's
    session user."""
    rec.flush()
    rec.close()
    if opened is not None:
        close_session(opened)


def current_session() -> Session | None:
    """The process's session if one is open in this process (never a forked parent's)."""
    found = _current
    return found if found is not None and found.sampler.in_owner_process else None


def release_sampler(sampler: Sampler) -> None:
    """Close the session of ``sampler`` (``engine.runtime.release_sampler``'s implementation)."""
    found = _current
    if found is not None and found.sampler is sampler:
        close_session(found)
    else:
        sampler.stop()


def _reset_for_tests() -> Sampler | None:
    """Forget the open session (tests' leak guard); returns its sampler, not stopped."""
    global _current
    with _lock:
        found, _current = _current, None
    return found.sampler if found is not None else None


@contextmanager
def session(
    factory: SamplerFactory | None = None, wait_s: float | None = FIRST_SAMPLE_TIMEOUT_S
) -> Iterator[Session]:
    """``with session() as s:``: ``open_session`` on entry, ``close_session`` on exit."""
    opened = open_session(factory, wait_s)
    try:
        yield opened
    finally:
        close_session(opened)
