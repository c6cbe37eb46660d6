"""The background ledger writer: a run hands its row over and goes on.

Whoever ends a run (a Trainer callback, a run tracker, an instrumented process) calls
``record_async(row)``: the row goes to this process's writer thread for that ledger, which writes
it (waiting at most ``ledger.WRITE_WAIT_S`` for another process's lock) or queues it in
``<ledger>.pending`` (``history/pending.py``). The caller's thread does no ledger I/O at all.

``flush(timeout_s)`` waits a bounded time for the rows handed over so far; rows still not written
when it gives up are appended to ``<ledger>.pending`` by the flushing thread, so a process that
ends (``os._exit`` too, if it flushed first) keeps them for the next writer. At interpreter exit
every writer is flushed with ``EXIT_FLUSH_S``. A row written twice that way (the thread finishes
its write after the flush queued it) is merged once: rows are keyed by ``run_id``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from otel_energy.history.errors import describe, log_once
from otel_energy.history.ledger import WRITE_WAIT_S, Ledger, ledger_path, register_local_writer
from otel_energy.history.pending import PendingRows
from otel_energy.history.schema import RunRow

_log = logging.getLogger(__name__)

EXIT_FLUSH_S = 2.0
"""How long interpreter exit waits for rows still being written before queuing them."""


def save(ledger: Ledger, rows: Sequence[RunRow], wait_s: float = WRITE_WAIT_S) -> bool:
    """Write ``rows`` to ``ledger`` (waiting at most ``wait_s`` for a lock), or queue them in
    ``<ledger>.pending`` for the next writer; never raises. True when written; a failure is
    logged once per file and kind of problem (a run must not fill its log with it)."""
    try:
        ledger.insert(rows, wait_s)
        return True
    except Exception as exc:
        problem = describe(ledger.path, exc, "write")
    try:
        PendingRows(ledger.path).add(rows)
    except Exception as exc:  # nowhere to keep them: say so, the run goes on
        log_once(
            ledger.path,
            "lost",
            f"{problem}; {len(rows)} run(s) could not be queued either ({exc}) and are not"
            " recorded",
        )
        return False
    queued = f"queued in {PendingRows(ledger.path).path} and added by the next write or read"
    if problem.busy:
        message = (
            f"otel-energy: the run ledger {ledger.path} stayed locked by another process for"
            f" {wait_s:.1f} s; {len(rows)} run(s) {queued}"
        )
    else:
        message = f"{problem}; the run is {queued}"
    log_once(
        ledger.path,
        "busy" if problem.busy else str(problem),
        message,
        logging.WARNING if problem.busy else logging.ERROR,
    )
    return False


class LedgerWriter:
    """Writes rows to one ledger on a daemon thread (started on demand, ended when idle)."""

    def __init__(self, ledger: Ledger, wait_s: float = WRITE_WAIT_S) -> None:
        self.ledger = ledger
        self.wait_s = wait_s
        self.submitted = 0
        self._queue: deque[RunRow] = deque()
        self._busy: list[RunRow] = []  # taken by the thread, not yet written or queued
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def submit(self, row: RunRow) -> None:
        """Hand ``row`` over; returns at once (no I/O on the caller's thread)."""
        with self._cond:
            self._queue.append(row)
            self.submitted += 1
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()  # a forked child starts its own thread
                self._thread = threading.Thread(
                    target=self._run, name="otel-energy-ledger", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._thread = None
                    self._cond.notify_all()
                    return
                self._busy = list(self._queue)
                self._queue.clear()
            try:
                save(self.ledger, self._busy, self.wait_s)  # writes or queues; never raises
            except Exception:
                _log.exception("otel-energy: writing the run ledger failed")
            with self._cond:
                self._busy = []
                self._cond.notify_all()

    def idle(self) -> bool:
        """True when every row handed over is written or queued (nothing in the thread's hands)."""
        with self._cond:
            return not self._queue and not self._busy

    def wait(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` (s) until every row handed over is written or queued, doing
        nothing else (no I/O on the caller's thread). True when the writer is idle."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cond.wait(left)
        return True

    def flush(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` until every row handed over is written or queued. True
        then; False when the time ran out: the rows not yet done are appended to the side file
        by this thread (merged once later even if the writer thread still writes them)."""
        self.wait(timeout_s)
        with self._cond:
            left_over = [*self._busy, *self._queue]
            self._queue.clear()
        if not left_over:
            return True
        pending = PendingRows(self.ledger.path)
        try:
            pending.add(left_over)
            log_once(
                self.ledger.path,
                "busy",
                f"otel-energy: the run ledger {self.ledger.path} is locked by another process"
                f" or slow: {len(left_over)} run(s) not written in {timeout_s:.1f} s are queued"
                f" in {pending.path} and added by the next write or read",
                logging.WARNING,
            )
        except Exception as exc:
            log_once(
                self.ledger.path,
                "lost",
                f"otel-energy: {len(left_over)} run(s) not written to the run ledger"
                f" {self.ledger.path} in {timeout_s:.1f} s could not be queued either ({exc})",
            )
        return False


_writers: dict[Path, LedgerWriter] = {}
_lock = threading.Lock()
_atexit_registered = False


def writer_for(path: Path) -> LedgerWriter:
    """This process's writer of the ledger at ``path`` (one per file)."""
    global _atexit_registered
    key = path.absolute()
    with _lock:
        w = _writers.get(key)
        if w is None:
            w = _writers[key] = LedgerWriter(Ledger(path))
            register_local_writer(key, w.flush)
        if not _atexit_registered:
            _atexit_registered = True
            atexit.register(flush, EXIT_FLUSH_S)
    return w


def record_async(row: RunRow, environ: Mapping[str, str] | None = None) -> bool:
    """Hand ``row`` to the writer of the configured ledger; never raises, never blocks on I/O.
    False when the ledger is off."""
    try:
        path = ledger_path(environ)
        if path is None:
            return False
        writer_for(path).submit(row)
        return True
    except Exception:
        _log.exception("otel-energy: handing the run to the ledger writer failed")
        return False


def wait_written(timeout_s: float) -> bool:
    """Wait at most ``timeout_s`` (s) in all for every writer of this process to be idle, with no
    I/O on the caller's thread (unlike ``flush``, nothing is queued by the caller). True when
    every row handed over is written or queued; never raises."""
    return _each_writer(LedgerWriter.wait, timeout_s)


def _each_writer(call: Callable[[LedgerWriter, float], bool], timeout_s: float) -> bool:
    """``call(writer, seconds left)`` for every writer of this process, ``timeout_s`` (s) in
    all; True when every call was; a failure is logged, never raised."""
    deadline = time.monotonic() + max(0.0, timeout_s)
    with _lock:
        writers = list(_writers.values())
    ok = True
    for w in writers:
        try:
            ok = call(w, deadline - time.monotonic()) and ok
        except Exception:
            _log.exception("otel-energy: the run ledger's writer failed")
            ok = False
    return ok


def submitted() -> int:
    """Rows this process handed to its writers (any ledger)."""
    with _lock:
        return sum(w.submitted for w in _writers.values())


def flush(timeout_s: float = EXIT_FLUSH_S) -> bool:
    """Flush every writer of this process within ``timeout_s`` in all (see ``LedgerWriter``).
    True when every row handed over is written or queued; never raises."""
    return _each_writer(LedgerWriter.flush, timeout_s)


def record(row: RunRow, environ: Mapping[str, str] | None = None) -> int | None:
    """Append ``row`` to the configured ledger on this thread, waiting at most
    ``WRITE_WAIT_S``, else queue it; never raises. Its id, or None if not written (yet).
    A run ending on a training thread uses ``record_async``."""
    path = ledger_path(environ)
    if path is None:
        return None
    try:
        return row.id if save(Ledger(path), [row]) else None
    except Exception:
        _log.exception("otel-energy: writing the run ledger failed")
    return None
