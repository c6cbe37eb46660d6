"""What every framework callback (transformers, Lightning, Keras) shares: the never-raise guard,
the ``__init__`` patch helpers of the zero-code paths, and its settings checked at construction.

A framework calls our hooks inside the user's training loop and does not guard them: one
exception would kill the run. Each hook is therefore wrapped; a failure is logged once per hook
(with its traceback) and training goes on unmeasured by that hook.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from otel_energy.config import ConfigError, EnergyConfig, load_config

_log = logging.getLogger("otel_energy")

F = TypeVar("F", bound=Callable[..., Any])


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


def patch_init(cls: Any, add_ours: Callable[[Any], None], what: str) -> None:
    """Wrap ``cls.__init__`` so that every new instance gets ``add_ours(instance)`` called after
    the original constructor (idempotent). A failure there is logged, never raised: the user's
    Trainer must be built whatever happens to our callback. ``what`` names it in the log."""
    original = cls.__init__
    if getattr(original, "_otel_energy", False):
        return

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        try:
            add_ours(self)
        except Exception:  # never break the user's Trainer construction
            _log.exception("otel-energy: could not add %s; training is unmeasured", what)

    __init__._otel_energy = True  # type: ignore[attr-defined]
    cls.__init__ = __init__


def unpatch_init(cls: Any) -> None:
    """Undo ``patch_init`` (instances already built keep their callback)."""
    current = cls.__init__
    if getattr(current, "_otel_energy", False):
        cls.__init__ = current.__wrapped__


def callback_config(owner: str, config: EnergyConfig | None) -> EnergyConfig:
    """``config``, else the environment's settings for the callback ``owner`` (its class name).

    A bad ``OTEL_PYTHON_ENERGY_*`` value fails here, at construction (before any training), as one
    ``ConfigError`` naming the callback, the variable and its valid values; the hooks themselves
    never raise. (Under ``opentelemetry-instrument`` the same error is logged and the run is left
    unmeasured instead: there is no user code to raise into.)
    """
    if config is not None:
        return config
    try:
        return load_config()
    except ConfigError as exc:
        raise ConfigError(f"{owner}: {exc}") from None
