"""What every framework callback (transformers, Lightning) shares: the never-raise guard and the
keys it adds to the framework's logs.

A framework calls our hooks inside the user's training loop and does not guard them: one
exception would kill the run. Each hook is therefore wrapped; a failure is logged once per hook
(with its traceback) and training goes on unmeasured by that hook.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

_log = logging.getLogger("otel_energy")

F = TypeVar("F", bound=Callable[..., Any])

LOG_KEYS = ("otel_energy/energy_j", "otel_energy/co2e_g", "otel_energy/power_w")
"""Keys added to the framework's logs: energy (J) and CO2e (g) since the run began, and the
average power (W) since the previous log."""


def guarded(fn: F) -> F:
    """Run the hook ``fn(self, ...)``, never raising and always returning None (a Trainer callback
    that returns something replaces ``control``). ``self`` needs a ``_failed_hooks: set[str]``."""

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            fn(self, *args, **kwargs)
        except Exception:
            if fn.__name__ not in self._failed_hooks:
                self._failed_hooks.add(fn.__name__)
                _log.exception("otel-energy: %s failed; training continues", fn.__name__)

    return wrapper  # type: ignore[return-value]  # same signature, returns None
