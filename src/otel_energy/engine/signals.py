"""Stops and signals: close our spans and flush on SIGTERM, keep our error path safe from Ctrl-C.

SLURM and Kubernetes send SIGTERM before they preempt a job; its default disposition kills the
process at once, so without help no ``atexit`` hook runs and the open run/epoch spans (which end
only when training ends) are never exported. ``TerminationGuard`` is the SIGTERM handler: it asks
each registered closer to end its open spans with an error, flushes the tracer and meter
providers, all within a bounded time on a helper thread (the signal may have interrupted the
main thread inside our own code, holding one of our locks), then restores the previous
disposition and re-raises the signal, so the process dies exactly as it would have (same exit
status). A user's handler installed before ours is called instead of re-raising; one installed
after ours simply wins.

The guard is installed only from the main thread (Python's rule for ``signal.signal``) and only
over ``SIG_DFL`` or a Python handler: a process that ignores SIGTERM keeps ignoring it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 5.0  # SLURM's default KillWait is 30 s, Kubernetes' grace period 30 s

Closer = Callable[[int], None]
Handler = Callable[[int, FrameType | None], Any] | int | None


class Terminated(Exception):
    """The error recorded on spans that a signal cut short (``terminated by SIGTERM``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _flush(provider: Any, timeout_s: float) -> None:
    flush = getattr(provider, "force_flush", None)  # the API's no-op providers have none
    if callable(flush):
        flush(max(1, int(timeout_s * 1000)))


class TerminationGuard:
    """The SIGTERM handler: closers first, then flush the providers, then die as before.

    Args:
        signum: the signal handled (SIGTERM).
        previous: the disposition it replaced (``SIG_DFL`` or the user's handler).
        timeout_s: the most time spent closing and flushing, in seconds.
    """

    def __init__(self, signum: int, previous: Handler, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        self.signum, self.previous, self.timeout_s = signum, previous, timeout_s
        self._closers: list[Closer] = []
        self._providers: list[Any] = []
        self._lock = threading.Lock()
        self._handling = False

    def register(self, closer: Closer, *providers: Any) -> None:
        """Call ``closer(signum)`` on the signal, then flush ``providers`` (tracer/meter)."""
        with self._lock:
            self._closers.append(closer)
            self._providers.extend(p for p in providers if p not in self._providers)

    def unregister(self, closer: Closer) -> None:
        with self._lock:
            if closer in self._closers:
                self._closers.remove(closer)

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._closers

    @property
    def installed(self) -> bool:
        """Whether this guard is the current handler of its signal."""
        return bool(signal.getsignal(self.signum) is self)

    def shutdown(self, signum: int) -> bool:
        """Close and flush on a helper thread; True if it finished within ``timeout_s``."""
        with self._lock:
            closers, providers = list(self._closers), list(self._providers)
            self._closers.clear()

        def work() -> None:
            for closer in closers:
                try:
                    closer(signum)
                except BaseException:  # one failing closer must not stop the others
                    _log.exception("otel-energy: closing spans on %s failed", _name(signum))
            for provider in providers:
                try:
                    _flush(provider, self.timeout_s)
                except BaseException:
                    _log.exception("otel-energy: flushing telemetry on %s failed", _name(signum))

        helper = threading.Thread(target=work, name="otel-energy-terminate", daemon=True)
        helper.start()
        helper.join(self.timeout_s)
        if helper.is_alive():
            _log.warning(
                "otel-energy: closing spans and flushing on %s took over %.0f s; exiting anyway.",
                _name(signum),
                self.timeout_s,
            )
            return False
        return True

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self._handling:  # a second SIGTERM while we flush (the whole group was signalled)
            return
        self._handling = True
        try:
            self.shutdown(signum)
        finally:
            self._handling = False
            signal.signal(signum, self.previous)
        if callable(self.previous):
            self.previous(signum, frame)  # the user's handler decides what happens next
        else:
            os.kill(os.getpid(), signum)  # SIG_DFL again: die of the signal, as without us


def _name(signum: int) -> str:
    return signal.Signals(signum).name


def install_termination_guard(signum: int = signal.SIGTERM) -> TerminationGuard | None:
    """Our handler for ``signum``, installed over ``SIG_DFL`` or a user's Python handler.

    Returns the guard already installed if there is one, None where none can be installed
    (not the main thread; the signal is ignored or handled outside Python).
    """
    if not in_main_thread():
        return None
    current = signal.getsignal(signum)
    if isinstance(current, TerminationGuard):
        return current
    if current is not signal.SIG_DFL and not callable(current):
        return None  # SIG_IGN, or a handler installed from C: not ours to change
    guard = TerminationGuard(signum, current)
    signal.signal(signum, guard)
    return guard


def uninstall_termination_guard(guard: TerminationGuard) -> None:
    """Restore the previous disposition if ``guard`` is idle and still installed."""
    if in_main_thread() and guard.idle and guard.installed:
        signal.signal(guard.signum, guard.previous)


@contextmanager
def interrupts_deferred() -> Iterator[list[int]]:
    """Hold SIGINT off while our error path runs; yields the list of signals that arrived.

    A second Ctrl-C (a terminal signals the whole process group, and wrappers may forward it
    again) would otherwise raise KeyboardInterrupt in the middle of closing the spans and lose
    them. Outside the main thread nothing can be changed, and nothing is deferred.
    """
    arrived: list[int] = []
    if not in_main_thread():
        yield arrived
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN or previous is None:
        yield arrived
        return
    signal.signal(signal.SIGINT, lambda signum, _frame: arrived.append(signum))
    try:
        yield arrived
    finally:
        signal.signal(signal.SIGINT, previous)
