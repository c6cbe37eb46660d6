"""Our telemetry leaves in bounded time: at the end of each recording and at interpreter exit.

A slow, refusing or unreachable collector used to cost the user its exporters' full timeouts and
retries, at the end of ``train()`` and again at exit (measured +14 s to +36 s). Here:

- ``flush_providers``: at the end of a recording (``session.end_recording``), the tracer and
  meter providers are force-flushed on a helper thread and the caller waits at most the flush
  timeout (``OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT``). Spans leave with the run (an ``os._exit()``
  after ``train()`` loses nothing) and the gauges too, instead of at the next export interval
  (60 s by default) or at shutdown.
- ``bound_exit``: the SDK shuts its providers down at exit with no overall bound. For the
  providers our recordings used that would be shut down at exit anyway (``shutdown_on_exit``),
  we take that shutdown over: run on a helper thread, waited for at most the flush timeout, then
  one line saying how many spans were dropped. Providers the user shuts down themselves
  (``shutdown_on_exit=False``, or already shut down) are left alone.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from otel_energy.config import variables as ev
from otel_energy.telemetry.handoff import queued_in_sdk, span_handoff

__all__ = ["bound_exit", "flush_providers", "run_bounded"]

_log = logging.getLogger(__name__)


def run_bounded(work: Callable[[], bool], timeout_s: float, name: str) -> bool:
    """Run ``work`` on a daemon thread named ``name``; wait at most ``timeout_s`` (s).

    True when it finished in time and returned True. An exception in ``work`` is logged, never
    raised (False).
    """
    done: list[bool] = []

    def guarded() -> None:
        try:
            done.append(bool(work()))
        except Exception:
            _log.warning("otel-energy: %s failed", name, exc_info=True)
            done.append(False)

    thread = threading.Thread(target=guarded, name=name, daemon=True)
    thread.start()
    thread.join(max(0.0, timeout_s))
    return not thread.is_alive() and done == [True]


def _force_flush(provider: Any, deadline: float) -> bool:
    """Flush a tracer provider's processors, or a meter provider's push readers (True: done).

    Only push readers (``PeriodicExportingMetricReader``): a pull reader (Prometheus, in-memory)
    gives its data when pulled, and a collection in between would only spend its exemplars.
    """
    readers = getattr(provider, "_metric_readers", None)  # an SDK MeterProvider's (private)
    targets = (
        [r for r in readers if isinstance(r, PeriodicExportingMetricReader)]
        if isinstance(provider, SdkMeterProvider) and readers is not None
        else [provider]
    )
    ok = True
    for target in targets:
        fn = getattr(target, "force_flush", None)  # the API's no-op providers have none
        if callable(fn):
            ok = fn(max(1, int((deadline - time.monotonic()) * 1000))) is not False and ok
    return ok


def _spans_waiting(providers: Iterable[Any]) -> int:
    return span_handoff().pending + sum(queued_in_sdk(p) for p in providers)


def flush_providers(
    providers: tuple[Any, ...],
    timeout_s: float,
    *,
    quiet: bool = False,
    limit_s: float | None = None,
) -> bool:
    """Wait for the export thread, then force-flush ``providers`` (tracer: the queued spans;
    meter: collect and export its push readers now), at most ``timeout_s`` (s) in all.

    False, with one warning line (none when ``quiet``: a flush timeout of 0 asks never to wait),
    when they did not finish: what is still queued stays queued (the exit tries again, bounded).
    ``limit_s``: the whole flush timeout (s) this wait is the rest of, for that line."""
    deadline = time.monotonic() + timeout_s

    def flush() -> bool:
        handed = span_handoff().drain(max(0.0, deadline - time.monotonic()))
        flushed = [_force_flush(p, deadline) for p in providers]
        return handed and all(flushed)

    if run_bounded(flush, timeout_s, "otel-energy-flush"):
        return True
    if quiet:
        return False  # asked never to wait: the flush goes on in the background, quietly
    _log.warning(
        "otel-energy: the run's telemetry did not reach the exporters' destination within %.1f s"
        " (%s); %d spans still queued stay queued, training goes on. Check the collector"
        " (OTEL_EXPORTER_OTLP_ENDPOINT).",
        timeout_s if limit_s is None else limit_s,
        ev.OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT,
        _spans_waiting(providers),
    )
    return False


_exit_lock = threading.Lock()
_exit_providers: weakref.WeakSet[Any] = weakref.WeakSet()
_exit_timeout_s = [0.0]
_owner_pid = [os.getpid()]


def bound_exit(providers: Iterable[Any], timeout_s: float) -> None:
    """Shut ``providers`` down at interpreter exit in at most ``timeout_s`` (s).

    Called at the end of each recording, once the providers exist: re-registering puts our
    hook last, so it runs before the SDK's own exit handlers (``atexit`` runs the last first),
    whose registration it then withdraws for the providers it shuts down.
    """
    with _exit_lock:
        for provider in providers:
            with contextlib.suppress(TypeError):  # not weakly referenceable: not an SDK provider
                _exit_providers.add(provider)
        _exit_timeout_s[0] = timeout_s
        _owner_pid[0] = os.getpid()
    atexit.unregister(_at_exit)
    atexit.register(_at_exit)


def _at_exit() -> None:
    if os.getpid() != _owner_pid[0]:
        return  # a forked child's copy of the registration
    with _exit_lock:
        taken = []
        for provider in list(_exit_providers):
            handler = getattr(provider, "_atexit_handler", None)
            if handler is None:
                continue  # shut down already, or the user's to shut down
            atexit.unregister(handler)
            provider._atexit_handler = None
            taken.append(provider)
        timeout_s = _exit_timeout_s[0]
    if not taken:
        return
    start = time.monotonic()

    def shutdown() -> bool:
        span_handoff().drain(timeout_s)
        for provider in taken:
            try:
                provider.shutdown()
            except Exception:
                _log.debug("otel-energy: shutting a provider down failed", exc_info=True)
        return True

    if run_bounded(shutdown, timeout_s, "otel-energy-exit"):
        return
    _log.warning(
        "otel-energy: exporting at exit took over %.1f s (%s); exiting anyway: dropped %d spans"
        " still queued and the metric points not yet exported. Check the collector"
        " (OTEL_EXPORTER_OTLP_ENDPOINT).",
        time.monotonic() - start,
        ev.OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT,
        _spans_waiting(taken),
    )
