"""Keras 3: ``KerasEnergyCallback`` and the instrumentor's ``fit`` hook.

Importing this package imports keras (``import otel_energy`` never does). Modules: ``callback``
(the callback, a thin adapter on ``otel_energy.tracker.RunTracker``), ``fit_patch`` (the
``keras.Model.fit`` wrapper: failures, zero-code).
"""

from otel_energy.integrations.keras.callback import FRAMEWORK, KerasEnergyCallback
from otel_energy.integrations.keras.fit_patch import add_callback_on_fit, remove_callback_on_fit

__all__ = ["FRAMEWORK", "KerasEnergyCallback", "add_callback_on_fit", "remove_callback_on_fit"]
