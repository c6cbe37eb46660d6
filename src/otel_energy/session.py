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

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Tracer, TracerProvider

from otel_energy.carbon import Intensity, IntensitySource
from otel_energy.config import (
    DEFAULT_FLUSH_TIMEOUT_S,
    ConfigError,
    EnergyConfig,
    flush_timeout_s,
    load_config,
)
from otel_energy.config.differences import differences
from otel_energy.config.node_power import gpu_sync
from otel_energy.distributed.ranks import RankInfo
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import Sampler, Snapshot, WindowEnergy
from otel_energy.sensors.base import DeviceInfo
from otel_energy.telemetry.flushing import bound_exit, flush_providers
from otel_energy.telemetry.ids import use_private_ids
from otel_energy.telemetry.instruments import EnergyObserver, attach
from otel_energy.telemetry.scope import get_tracer
from otel_energy.telemetry.spans import AttrValue, SpanEnergyRecorder
from otel_energy.telemetry.step_histogram import step_histogram

_log = logging.getLogger(__name__)

__all__ = [
    "FIRST_SAMPLE_TIMEOUT_S",
    "Sampler",
    "Session",
    "Snapshot",
    "WindowEnergy",
    "close_session",
    "current_session",
    "open_session",
    "session",
]

# How long the first user waits for discovery and a first sample (s): long enough for nvmlInit on
# a busy node, short enough that a hung driver only delays the start of training, once.
FIRST_SAMPLE_TIMEOUT_S = 5.0

SamplerFactory = Callable[[], Sampler]

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_current: Session | None = None


class Session:
    """The process's sampler and what every entry point builds on it.

    Get one with ``open_session()`` (or ``with session():``), never by hand: the module keeps one
    per process and counts its users.
    """

    def __init__(self, sampler: Sampler, config: EnergyConfig | None = None) -> None:
        self.sampler = sampler
        self.config = config  # what the sampler was built from (None: a caller's own factory)
        self.users = 0  # guarded by the module lock
        self._waited = False
        self._wait_lock = threading.Lock()
        self._warned: set[str] = set()

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

    @property
    def devices(self) -> list[DeviceInfo]:
        """The measured devices (empty until discovery ran on the sampler thread)."""
        return [s.info for s in self.sampler.sensors]

    def snapshot(self) -> Snapshot:
        """The newest state of every device (cumulative J, W, CO2e g), intensity and PUE."""
        return self.sampler.snapshot()

    def now(self) -> float:
        """The sampler's clock (monotonic s): the time base of windows and samples."""
        return self.sampler.clock()

    def window(self, t0_s: float, t1_s: float, extrapolate: bool = False) -> WindowEnergy:
        """Energy between two readings of ``now()`` (see ``Sampler.window``)."""
        return self.sampler.window(t0_s, t1_s, extrapolate)

    def wait_for_sample(self, after_s: float, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` (s) for a sample taken after ``after_s`` (``now()`` s)."""
        return self.sampler.wait_for_sample(after_s, timeout_s)

    def add_listener(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(t_s)`` on the sampler thread after each sample (no I/O in it)."""
        self.sampler.add_listener(listener)

    def remove_listener(self, listener: Callable[[float], None]) -> None:
        self.sampler.remove_listener(listener)

    # ---- a second entry point's settings ----
    def carbon_for(self, asked: EnergyConfig | None) -> tuple[float | None, Intensity | None]:
        """The (PUE, fixed intensity) a recorder of an entry point configured with ``asked``
        applies instead of the sampler's (None, None: the sampler's are the ones asked).

        Settings of the sampler thread itself (interval, sources, devices) cannot differ per
        entry point: each one that differs is named in one warning, once per session.
        """
        running = self.config
        if asked is None:
            return None, None
        if running is None:  # a caller's own sampler: only its PUE is known
            return (asked.pue if asked.pue != self.sampler.pue else None), None
        found = differences(running, asked)
        self._warn_unapplied(found.process_wide)
        return found.pue, (asked.intensity if found.intensity_differs else None)

    def _warn_unapplied(self, unapplied: tuple[tuple[str, str, object, object], ...]) -> None:
        new = [d for d in unapplied if d[0] not in self._warned]
        if not new:
            return
        self._warned.update(d[0] for d in new)
        _log.warning(
            "otel-energy: measurement already runs in this process with other settings; %s"
            " cannot change while it runs (one sampler per process) and keep the running"
            " value. Set them before the first entry point starts (the instrumentor starts at"
            " launch), e.g. in the environment.",
            "; ".join(
                f"{name} ({var}): running {run!r}, asked {ask!r}" for name, var, run, ask in new
            ),
        )

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
        pue: float | None = None,
    ) -> SpanEnergyRecorder:
        """A span recorder on this session's sampler: our tracer, the step histogram and the
        instruments on ``meter_provider``, this process's identity, spans under ``root_context``
        (the job's), CO2e at ``intensity`` (gCO2e/kWh) and ``pue`` when given instead of the
        sampler's (see ``carbon_for``)."""
        mp = meter_provider or metrics.get_meter_provider()
        tp = tracer_provider or trace.get_tracer_provider()
        self.attach(mp)
        rec = SpanEnergyRecorder(
            self.sampler,
            self.tracer(tp),
            step_histogram(mp),
            identity=self.identity,
            intensity=intensity,
            root_context=root_context,
            pue=pue,
            gpu_sync=_gpu_sync(),
        )
        rec.providers = (tp, mp)
        return rec


def _gpu_sync() -> bool:
    """``OTEL_PYTHON_ENERGY_GPU_SYNC`` (already checked when the session's config was loaded;
    a value set since is logged, never raised into the caller)."""
    try:
        return gpu_sync(os.environ)
    except ConfigError as exc:
        _log.error("otel-energy: %s GPU sync stays off.", exc)
        return False


def open_session(
    factory: SamplerFactory | None = None,
    wait_s: float | None = FIRST_SAMPLE_TIMEOUT_S,
    *,
    config: EnergyConfig | None = None,
    environ: Mapping[str, str] | None = None,
) -> Session:
    """The process's session with one more user; its sampler built by ``factory`` (else from
    ``config`` and ``environ``: the environment's by default) and started if none runs yet in
    this process.

    ``wait_s``: wait up to this long (s) for the first sample (once per session; see
    ``Session.wait_first_sample``); None to return at once (the instrumentor, at start-up).
    """
    global _current
    with _lock:
        if _current is None or not _current.sampler.in_owner_process:
            built = config or (None if factory else load_config(environ))
            sampler = factory() if factory else build_sampler(built or load_config(), environ)
            _current = Session(sampler, built)
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


def end_recording(
    rec: SpanEnergyRecorder, opened: Session | None, timeout_s: float | None = None
) -> bool:
    """The end of an entry point's recording: complete the recorder's pending spans (they have
    their energy before the caller returns), stop it listening, send what it recorded on its way,
    then drop the entry point's session user.

    Sending is bounded by ``timeout_s`` (s; ``OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT`` by default) in
    all: the spans handed to the processors by the export thread, then the tracer and meter
    providers force-flushed (so the run span survives an ``os._exit()`` right after, and a short
    run's gauges leave now, not at the next export interval). The providers' shutdown at exit is
    bounded by the same time. True when everything left in time.
    """
    timeout = _flush_timeout() if timeout_s is None else timeout_s
    start = time.monotonic()
    rec.flush_timeout_s = timeout
    rec.flush()
    rec.close()
    left = max(0.0, timeout - (time.monotonic() - start))
    sent = flush_providers(rec.providers, left, quiet=timeout <= 0, limit_s=timeout)
    bound_exit(rec.providers, timeout)
    if opened is not None:
        close_session(opened)
    return sent


def _flush_timeout() -> float:
    try:
        return flush_timeout_s()
    except ConfigError:  # reported when the configuration was loaded; never raise at the end
        return DEFAULT_FLUSH_TIMEOUT_S


def current_session() -> Session | None:
    """The process's session if one is open in this process (never a forked parent's)."""
    found = _current
    return found if found is not None and found.sampler.in_owner_process else None


def _reset_for_tests() -> Sampler | None:
    """Forget the open session (tests' leak guard); returns its sampler, not stopped."""
    global _current
    with _lock:
        found, _current = _current, None
    return found.sampler if found is not None else None


@contextmanager
def session(
    factory: SamplerFactory | None = None,
    wait_s: float | None = FIRST_SAMPLE_TIMEOUT_S,
    *,
    config: EnergyConfig | None = None,
) -> Iterator[Session]:
    """``with session() as s:``: ``open_session`` on entry, ``close_session`` on exit."""
    opened = open_session(factory, wait_s, config=config)
    try:
        yield opened
    finally:
        close_session(opened)
