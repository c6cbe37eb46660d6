"""PyTorch Lightning integration: the Trainer callback's spans, step histogram and logged keys.

``LightningEnergyCallback`` is a ``lightning.pytorch.Callback`` on the same session as
``otel_energy.hf.EnergyCallback`` (process sampler, ``SpanEnergyRecorder``, step histogram), with
the same span names where the meaning is the same: ``train`` (the ``fit`` call), ``epoch``,
``step`` (one optimizer step with all its accumulated batches) and ``evaluate`` (validation);
``test`` and ``predict`` for ``Trainer.test``/``predict``. Every span carries
``otel_energy.framework=lightning``. Importing this package imports Lightning (``import
otel_energy`` never does); it never imports transformers.

Modules: ``callback`` (fit, epochs, steps, logged keys), ``evaluation`` (validation, test,
predict), ``ranks`` (the trainer's rank), ``zerocode`` (the instrumentor's ``Trainer.__init__``
hook).
"""

from __future__ import annotations

from otel_energy.integrations.lightning.callback import LightningEnergyCallback
from otel_energy.integrations.lightning.evaluation import EVAL_SPANS, FRAMEWORK
from otel_energy.integrations.lightning.ranks import rank_environ
from otel_energy.integrations.lightning.zerocode import (
    add_callback_on_init,
    remove_callback_on_init,
)
from otel_energy.tracker import LOG_KEYS

__all__ = [
    "EVAL_SPANS",
    "FRAMEWORK",
    "LOG_KEYS",
    "LightningEnergyCallback",
    "add_callback_on_init",
    "rank_environ",
    "remove_callback_on_init",
]
