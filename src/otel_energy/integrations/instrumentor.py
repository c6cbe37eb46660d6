"""``EnergyInstrumentor``: the ``opentelemetry_instrumentor`` entry point named ``energy``.

``opentelemetry-instrument`` loads it; ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=energy`` turns it
off. ``_instrument`` never raises: an exception other than ImportError would stop the other
instrumentors from loading. transformers is patched lazily, when (and if) the program imports
``transformers.trainer``, Lightning when it imports ``lightning.pytorch`` and Keras 3 when it
imports ``keras``, so processes that never train do not pay for importing any of them.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import socket
import sys
from collections.abc import Collection, Sequence
from typing import Any

import wrapt
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from otel_energy.config import ConfigError, load_config
from otel_energy.config.any_span import span_selection
from otel_energy.engine.signals import (
    TerminationGuard,
    install_termination_guard,
    uninstall_termination_guard,
)
from otel_energy.history import writer as ledger_writer
from otel_energy.history.errors import LedgerError
from otel_energy.history.ledger import Ledger, ledger_path, under_parent_run
from otel_energy.history.rows import process_row, utc_iso
from otel_energy.integrations.package import _instruments
from otel_energy.report.series import RunSeries
from otel_energy.session import Sampler, Session, close_session, open_session
from otel_energy.telemetry.any_span import EnergySpanProcessor, install, uninstall
from otel_energy.telemetry.instruments import EnergyObserver

_log = logging.getLogger(__name__)

LAUNCHERS = ("torchrun", "torch.distributed.run", "torch.distributed.launch", "deepspeed")


def launcher_process(argv: Sequence[str] | None = None) -> bool:
    """True in a torchrun/accelerate/deepspeed launcher, whose ranks measure instead of it."""
    args = list(argv if argv is not None else getattr(sys, "orig_argv", sys.argv))
    words = [a.rsplit("/", 1)[-1] for a in args[:4]]
    if any(w in LAUNCHERS for w in words):
        return True
    return "accelerate" in words and "launch" in args[:5]


def multiprocessing_child(argv: Sequence[str] | None = None) -> bool:
    """True in a process started by ``multiprocessing``: a worker (DataLoader workers, say) or
    one of its helpers (the resource tracker, the fork server).

    Such a process runs site (so auto-instrumentation) before ``multiprocessing`` knows it is a
    child, so its command line, ``python -c "from multiprocessing.<x> import ..."``, is the
    reliable sign.
    """
    if multiprocessing.parent_process() is not None:
        return True
    args = list(argv if argv is not None else getattr(sys, "orig_argv", sys.argv))
    return "--multiprocessing-fork" in args or any(
        a.startswith("from multiprocessing.") for a in args
    )


class EnergyInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Starts the sampler, registers the ``hw.*``/CO2e instruments, and instruments the Trainer.

    ``instrument(meter_provider=..., tracer_provider=..., sampler=...)``: all default to the
    global providers and a sampler configured from ``OTEL_PYTHON_ENERGY_*``. ``uninstrument()``
    stops the sampler (when nobody else uses it), silences the instruments and unpatches.

    The sampler is not started in a launcher (torchrun, accelerate launch: the ranks measure) nor
    in a multiprocessing child such as a DataLoader worker (it would count the node twice); there
    a Trainer, if any, starts it when training begins.
    """

    _session: Session | None = None
    _observer: EnergyObserver | None = None
    _patch_trainer = False
    _trainer_patched = False
    _timeline: RunSeries | None = None
    _ledger_since = ""
    _ledger_pid = 0
    _annotator: EnergySpanProcessor | None = None
    _annotated: Any = None  # the tracer provider the annotator sits in
    _guard: TerminationGuard | None = None  # the SIGTERM guard the annotator registered with

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        try:
            config = load_config()
            if launcher_process():
                _log.info("otel-energy: launcher process; each rank measures its own devices.")
                return
            sampler = kwargs.get("sampler")
            if sampler is not None or not multiprocessing_child():
                # At start-up: no wait for a first sample (a Trainer waits, once, if need be).
                self._session = open_session(
                    (lambda: sampler) if sampler is not None else None,
                    wait_s=None,
                    config=None if sampler is not None else config,
                )
                self._observer = self._session.attach(kwargs.get("meter_provider"))
                self._start_ledger(self._session)
                self._annotate_spans(kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
            self._patch_trainer = True
            tp, mp = kwargs.get("tracer_provider"), kwargs.get("meter_provider")
            wrapt.register_post_import_hook(
                lambda _m: self._on_trainer_import(tp, mp), "transformers.trainer"
            )
            wrapt.register_post_import_hook(
                lambda _m: self._on_lightning_import(tp, mp), "lightning.pytorch"
            )
            wrapt.register_post_import_hook(lambda _m: self._on_keras_import(tp, mp), "keras")
        except ConfigError as exc:
            _log.error("otel-energy: not instrumenting: %s", exc)
        except Exception:
            _log.exception("otel-energy: instrumentation failed; training continues unmeasured")

    def _start_ledger(self, session: Session) -> None:
        """Record this process's power; at exit it gets a ledger row unless a Trainer run in it
        wrote one (or ``otel-energy run``, its parent, writes the row)."""
        if under_parent_run() or ledger_path() is None:
            return
        self._timeline = RunSeries(session.sampler)
        self._ledger_since = utc_iso()
        self._ledger_pid = os.getpid()
        atexit.register(self._ledger_at_exit)

    def _ledger_at_exit(self) -> None:
        try:
            timeline, self._timeline = self._timeline, None
            path = ledger_path()
            if timeline is None or path is None or os.getpid() != self._ledger_pid:
                return  # uninstrumented, turned off, or a forked child (its parent writes)
            host = socket.gethostname()
            try:
                done = ledger_writer.submitted() or Ledger(path).count_for_process(
                    host, os.getpid(), self._ledger_since
                )
            except LedgerError:
                done = 0  # unreadable: record() below queues the row and says why, once
            if done:
                timeline.close()  # a Trainer run already wrote this process's row
                return
            ledger_writer.record(process_row(timeline, self._ledger_since))
        except Exception:  # at exit: log, never raise
            _log.exception("otel-energy: writing the process's ledger row failed")

    def _annotate_spans(self, tracer_provider: Any, meter_provider: Any) -> None:
        """Energy on other instrumentations' spans when ``OTEL_PYTHON_ENERGY_SPANS`` asks."""
        try:
            selection = span_selection(os.environ)
        except ConfigError as exc:
            _log.error("otel-energy: other spans get no energy: %s", exc)
            return
        if selection is None or self._session is None:
            return
        tp = tracer_provider or trace.get_tracer_provider()
        mp = meter_provider or metrics.get_meter_provider()
        self._annotator = install(tp, self._session.sampler, selection, mp)
        if self._annotator is None:
            return
        self._annotated = tp
        guard = install_termination_guard()  # SIGTERM: hand on the held spans, then die
        if guard is not None:
            guard.register(self._on_term, tp, mp)
            self._guard = guard

    @staticmethod
    def _on_term(_signum: int) -> None:
        """Nothing to close on SIGTERM: the guard's flush of the providers hands on the spans."""

    def _on_trainer_import(self, tracer_provider: Any, meter_provider: Any) -> None:
        if not self._patch_trainer:  # uninstrumented before transformers was imported
            return
        try:
            from otel_energy.integrations.transformers.trainer_patch import (
                add_callback_on_init,
                patch_trainer,
            )

            patch_trainer(self)  # reference-counted: hand-added callbacks hold it too
            self._trainer_patched = True
            add_callback_on_init(tracer_provider, meter_provider)
        except Exception:
            _log.exception("otel-energy: could not instrument transformers.Trainer")

    def _on_lightning_import(self, tracer_provider: Any, meter_provider: Any) -> None:
        if not self._patch_trainer:
            return
        try:
            from otel_energy.integrations.lightning import add_callback_on_init

            add_callback_on_init(tracer_provider, meter_provider)
        except Exception:
            _log.exception("otel-energy: could not instrument lightning.pytorch.Trainer")

    def _on_keras_import(self, tracer_provider: Any, meter_provider: Any) -> None:
        if not self._patch_trainer:
            return
        try:
            from otel_energy.integrations.keras import add_callback_on_fit

            add_callback_on_fit(tracer_provider, meter_provider)
        except Exception:
            _log.exception("otel-energy: could not instrument keras.Model.fit")

    def _uninstrument(self, **kwargs: Any) -> None:
        try:
            self._patch_trainer = False
            if self._trainer_patched:
                from otel_energy.integrations.transformers.trainer_patch import (
                    remove_callback_on_init,
                    unpatch_trainer,
                )

                self._trainer_patched = False
                remove_callback_on_init()
                unpatch_trainer(self)  # the wrappers stay while a live callback needs them
            if "otel_energy.integrations.lightning" in sys.modules:
                from otel_energy.integrations.lightning import remove_callback_on_init as rm_pl

                rm_pl()
            if "otel_energy.integrations.keras" in sys.modules:
                from otel_energy.integrations.keras import remove_callback_on_fit

                remove_callback_on_fit()
            if self._annotator is not None:
                uninstall(self._annotated, self._annotator)
                self._annotator = self._annotated = None
            if self._guard is not None:
                self._guard.unregister(self._on_term)
                uninstall_termination_guard(self._guard)  # only when no one else holds it
                self._guard = None
            if self._observer is not None:
                self._observer.sampler = None
            if self._timeline is not None:
                atexit.unregister(self._ledger_at_exit)
                self._timeline.close()
                self._timeline = None
            if self._session is not None:
                close_session(self._session)
        except Exception:
            _log.exception("otel-energy: uninstrument failed")
        finally:
            self._session = None
            self._observer = None

    @property
    def sampler(self) -> Sampler | None:
        """The sampler started by ``instrument()``, None when not instrumented."""
        return self._session.sampler if self._session is not None else None
