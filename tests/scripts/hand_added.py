"""A user who also added EnergyCallback by hand: the instrumentor must not add a second one."""

import tempfile

from otel_energy.hf import EnergyCallback
from otel_energy.testing.tiny import tiny_trainer

with tempfile.TemporaryDirectory() as out:
    trainer = tiny_trainer(out, callbacks=[EnergyCallback()], num_train_epochs=1, n_train=32)
    ours = [c for c in trainer.callback_handler.callbacks if isinstance(c, EnergyCallback)]
    print(f"energy callbacks: {len(ours)}")
    trainer.train()
