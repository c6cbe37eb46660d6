"""Misspelt settings: ``OTEL_PYTHON_ENERGY_*`` names that no code reads, each warned about once.

A typo (``OTEL_PYTHON_ENERGY_CONTRY=FR``) would otherwise be ignored in silence and the run
measured under the default (the world-average intensity, 8.6x France's): a warning with the
closest known name turns that into a one-line fix.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Mapping

from otel_energy.config import variables as ev

PREFIX = "OTEL_PYTHON_ENERGY_"
KNOWN: frozenset[str] = frozenset(v for k, v in vars(ev).items() if k.startswith(PREFIX))
"""Every variable otel-energy reads (the constants of ``config/variables.py``)."""

_log = logging.getLogger(__name__)
_warned: set[str] = set()
_lock = threading.Lock()


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``(name, closest known name or None)`` for each ``OTEL_PYTHON_ENERGY_*`` name in
    ``environ`` that is not one of ours, sorted by name. Pure."""
    found = []
    for name in sorted(k for k in environ if k.startswith(PREFIX) and k not in KNOWN):
        # Compared without the shared prefix, which would make every name look close.
        tails = {k.removeprefix(PREFIX): k for k in sorted(KNOWN)}
        close = difflib.get_close_matches(name.removeprefix(PREFIX), tails, n=1, cutoff=0.6)
        found.append((name, tails[close[0]] if close else None))
    return found


def unknown_message(name: str, closest: str | None) -> str:
    """The warning's text for one unknown variable."""
    hint = f"did you mean {closest}?" if closest else "docs/configuration.md lists the variables"
    return f"otel-energy: unknown variable {name} is ignored; {hint}"


def warn_unknown_variables(environ: Mapping[str, str]) -> None:
    """Log a WARNING for each unknown ``OTEL_PYTHON_ENERGY_*`` name, once per name per process
    (every path that reads the configuration calls this; one line each is enough).

    Silent in a command of ``otel-energy run``: the parent has already warned about the same
    environment.
    """
    if environ.get(ev.OTEL_PYTHON_ENERGY_LEDGER_RUN_ID):
        return
    for name, closest in unknown_variables(environ):
        with _lock:
            if name in _warned:
                continue
            _warned.add(name)
        _log.warning("%s", unknown_message(name, closest))
