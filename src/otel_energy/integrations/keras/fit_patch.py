"""The ``keras.Model.fit`` wrapper: failures reach the callback, and the zero-code path.

Keras calls no callback when ``fit`` raises, so a run would stay open. The wrapper ends the runs
of our callbacks on that model with the error and re-raises. On the instrumentor's request
(``add_callback_on_fit``) it also gives every ``fit`` without one of our callbacks a new
``KerasEnergyCallback``, first in the list. It is installed once and stays: with neither a
running callback nor the zero-code request it only calls the original.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

import keras

_log = logging.getLogger(__name__)

running: weakref.WeakSet[Any] = weakref.WeakSet()
"""Our callbacks inside a ``fit`` (their run is open)."""

_lock = threading.Lock()
_zero_code: tuple[Any, Any] | None = None  # (tracer provider, meter provider) when requested


def _with_ours(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from otel_energy.integrations.keras.callback import KerasEnergyCallback

    request = _zero_code
    if request is None:
        return args, kwargs
    bound = inspect.signature(original).bind(*args, **kwargs)
    given = bound.arguments.get("callbacks") or []
    callbacks = list(given) if isinstance(given, list | tuple) else [given]
    if not any(isinstance(c, KerasEnergyCallback) for c in callbacks):
        callbacks.insert(0, KerasEnergyCallback(*request))
        bound.arguments["callbacks"] = callbacks
    return bound.args, bound.kwargs


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fit(*args: Any, **kwargs: Any) -> Any:
        try:
            args, kwargs = _with_ours(original, args, kwargs)
        except Exception:  # never break the user's fit: it runs unmeasured
            _log.exception("otel-energy: could not add the Keras callback")
        try:
            return original(*args, **kwargs)
        except BaseException as exc:
            model = args[0] if args else None
            for cb in [c for c in running if c.model is model]:
                cb.on_fit_error(exc)
            raise

    fit._otel_energy = True  # type: ignore[attr-defined]
    return fit


def patch_fit() -> None:
    """Install the ``keras.Model.fit`` wrapper (idempotent)."""
    with _lock:
        if not getattr(keras.Model.fit, "_otel_energy", False):
            keras.Model.fit = _wrap(keras.Model.fit)


def add_callback_on_fit(tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Zero-code: every ``fit`` without one of our callbacks gets a ``KerasEnergyCallback``."""
    global _zero_code
    patch_fit()
    _zero_code = (tracer_provider, meter_provider)


def remove_callback_on_fit() -> None:
    """Undo ``add_callback_on_fit`` (the wrapper stays, for hand-added callbacks)."""
    global _zero_code
    _zero_code = None
