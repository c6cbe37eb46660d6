"""Wrappers around ``Trainer.train``/``evaluate``/``predict`` and the zero-code ``Trainer.__init__``
hook.

The wrappers let an ``EnergyCallback`` see failures and evaluation boundaries, which the callback
events alone do not reveal; they do nothing for trainers without one. Nothing is patched at
import: ``patch_trainer(owner)`` installs the wrappers for an owner (an ``EnergyCallback`` when it
is built, the instrumentor when transformers is imported) and ``unpatch_trainer(owner)`` removes
them once no owner needs them any more.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from transformers import Trainer

from otel_energy.integrations.hooks import patch_init, unpatch_init

if TYPE_CHECKING:
    from otel_energy.integrations.transformers.callback import EnergyCallback


class _ExplicitCall:
    """The owner of ``patch_trainer()`` called without one (the user's own call)."""


_EXPLICIT = _ExplicitCall()
# Weak: an owner that is garbage-collected (a callback whose Trainer is gone) no longer holds
# the wrappers, so the next ``unpatch_trainer`` can remove them.
_owners: weakref.WeakSet[object] = weakref.WeakSet()
_lock = threading.Lock()


def _ours(trainer: Any) -> list[EnergyCallback]:
    from otel_energy.integrations.transformers.callback import EnergyCallback

    handler = getattr(trainer, "callback_handler", None)
    return [cb for cb in getattr(handler, "callbacks", ()) if isinstance(cb, EnergyCallback)]


def _wrap_train(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        ours = _ours(self)
        if ours:
            # Run before the report_to loggers, so that the keys we add in on_log reach them.
            rest = [cb for cb in self.callback_handler.callbacks if cb not in ours]
            self.callback_handler.callbacks[:] = [*ours, *rest]
        try:
            return original(self, *args, **kwargs)
        except BaseException as exc:
            for cb in ours:
                cb._on_train_error(exc)
            raise

    return train


def _wrap_eval(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = [(cb, cb._begin_eval(kind)) for cb in _ours(self)]
            try:
                result = original(self, *args, **kwargs)
            except BaseException as exc:
                for cb, iv in started:
                    cb._end_eval(iv, exc)
                raise
            for cb, iv in started:
                cb._end_eval(iv, None)
            return result

        return run

    return wrap


_WRAPPERS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "train": _wrap_train,
    "evaluate": _wrap_eval("evaluate"),
    "predict": _wrap_eval("predict"),
}


def trainer_patched() -> bool:
    """True while ``Trainer.train``/``evaluate``/``predict`` carry our wrappers."""
    return all(getattr(getattr(Trainer, name), "_otel_energy", False) for name in _WRAPPERS)


def patch_trainer(owner: object | None = None) -> None:
    """Wrap ``Trainer.train``/``evaluate``/``predict`` for ``owner`` (idempotent).

    Args:
        owner: who needs the wrappers (weakly held); None for a direct call by the user.
    """
    with _lock:
        _owners.add(_EXPLICIT if owner is None else owner)
        for name, make in _WRAPPERS.items():
            current = getattr(Trainer, name)
            if not getattr(current, "_otel_energy", False):
                wrapper = make(current)
                wrapper._otel_energy = True  # type: ignore[attr-defined]
                setattr(Trainer, name, wrapper)


def unpatch_trainer(owner: object | None = None) -> None:
    """``owner`` no longer needs the wrappers; restore the original methods when nobody does
    (a hand-added ``EnergyCallback`` still alive keeps them after ``uninstrument()``)."""
    with _lock:
        _owners.discard(_EXPLICIT if owner is None else owner)
        if len(_owners) > 0:
            return
        for name in _WRAPPERS:
            current = getattr(Trainer, name)
            if getattr(current, "_otel_energy", False):
                setattr(Trainer, name, current.__wrapped__)


def add_callback_on_init(
    tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> None:
    """Make every new Trainer (and subclass) carry one ``EnergyCallback`` (zero-code path).

    A trainer that already has one (the user added it by hand) does not get a second. Ours goes
    first in the handler list, ahead of the ``report_to`` loggers.
    """
    from otel_energy.integrations.transformers.callback import EnergyCallback

    def add_ours(trainer: Any) -> None:
        if not _ours(trainer):
            cb = EnergyCallback(tracer_provider=tracer_provider, meter_provider=meter_provider)
            trainer.callback_handler.callbacks.insert(0, cb)

    patch_init(Trainer, add_ours, "EnergyCallback")


def remove_callback_on_init() -> None:
    """Undo ``add_callback_on_init`` (trainers already built keep their callback)."""
    unpatch_init(Trainer)
