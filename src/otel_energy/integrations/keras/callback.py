"""``KerasEnergyCallback``: Keras 3's callback events mapped onto a ``RunTracker``.

``fit`` is the run (span ``train``), its epochs and batches the epochs and optimizer steps,
``evaluate`` (also the validation inside ``fit``) and ``predict`` the phases. The log keys join
each epoch's ``logs`` (so ``History`` and every later callback see them). Works on any Keras 3
backend; the tests train on the torch backend. Importing this module imports keras.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import keras
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otel_energy.config import EnergyConfig
from otel_energy.integrations.hooks import callback_config, guarded
from otel_energy.integrations.keras.fit_patch import patch_fit, running
from otel_energy.session import Sampler
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.spans import AttrValue
from otel_energy.tracker import RunTracker

FRAMEWORK: dict[str, AttrValue] = {A.FRAMEWORK: "keras"}


_log = logging.getLogger(__name__)

# A failure inside fit ends the run with the error. Installed when this module is imported, not
# when a callback is built: in ``model.fit(x, y, callbacks=[KerasEnergyCallback()])`` Python
# looks ``model.fit`` up before it builds the arguments, so a wrapper installed by the
# constructor would miss the first fit of the process (its run then stayed open on an error).
patch_fit()


class KerasEnergyCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Spans with energy and CO2e for ``fit`` (``train``), epochs, steps, evaluate and predict.

    Args:
        tracer_provider: where spans go (the global provider by default).
        meter_provider: where the step-energy histogram and ``hw.*`` metrics go (global default).
        config: settings (``OTEL_PYTHON_ENERGY_*`` from the environment by default).
        sampler_factory: builds the sampler if none runs yet in this process (tests inject one).
        log_metrics: add the run's keys (``otel_energy/energy_j`` (J), ``otel_energy/co2e_g``
            (g), ``otel_energy/power_w`` (W), the projection once made) to each epoch's logs.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        config: EnergyConfig | None = None,
        sampler_factory: Callable[[Mapping[str, str]], Sampler] | None = None,
        log_metrics: bool = True,
    ) -> None:
        super().__init__()
        self.tracker = RunTracker(
            callback_config(type(self).__name__, config),
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            sampler_factory=sampler_factory,
            attributes=FRAMEWORK,
        )
        self.log_metrics = log_metrics
        self._steps = 0  # optimizer steps of the current fit
        self._failed_hooks: set[str] = set()

    @guarded
    def on_train_begin(self, logs: Any = None) -> None:
        epochs, per_epoch = self.params.get("epochs"), self.params.get("steps")
        attrs: dict[str, AttrValue] = {A.TRAIN_MODEL_TYPE: type(self.model).__name__}
        total = int(epochs or 0) * int(per_epoch or 0)
        if epochs:
            attrs[A.TRAIN_NUM_TRAIN_EPOCHS] = float(epochs)
        if total:
            attrs[A.TRAIN_MAX_STEPS] = total
        self._steps = 0
        self.tracker.begin_run(attrs, total_steps=total)
        running.add(self)

    @guarded
    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.tracker.begin_epoch(int(epoch), self._steps)

    @guarded
    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.tracker.step_begin(self._steps + 1)  # the hot path: one clock reading

    @guarded
    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._steps += 1
        self.tracker.step_end()

    @guarded
    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.tracker.end_epoch(self._steps)
        if self.log_metrics and isinstance(logs, dict):
            logs.update(self.tracker.log_values())

    @guarded
    def on_train_end(self, logs: Any = None) -> None:
        running.discard(self)
        self.tracker.end_run(None, self._steps)

    def on_fit_error(self, error: BaseException) -> None:
        """``fit`` raised ``error`` (from the ``fit`` wrapper): end the run with it."""
        running.discard(self)
        try:
            self.tracker.fail(error)
        except BaseException:  # the user's error is the one they must see, never ours
            _log.exception("otel-energy: ending the Keras run after its error failed")

    # ---- phases: evaluate (and fit's validation), predict ----
    @guarded
    def on_test_begin(self, logs: Any = None) -> None:
        self.tracker.begin_phase("evaluate")

    @guarded
    def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
        self.tracker.phase_step()

    @guarded
    def on_test_end(self, logs: Any = None) -> None:
        self.tracker.end_phase()

    @guarded
    def on_predict_begin(self, logs: Any = None) -> None:
        self.tracker.begin_phase("predict")

    @guarded
    def on_predict_batch_end(self, batch: int, logs: Any = None) -> None:
        self.tracker.phase_step()

    @guarded
    def on_predict_end(self, logs: Any = None) -> None:
        self.tracker.end_phase()
