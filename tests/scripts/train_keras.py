"""An unmodified Keras 3 training script (torch backend): no otel_energy import.

Fits a tiny model for 2 epochs with validation, then evaluates and predicts; prints the last
epoch's ``History`` entry as JSON (the keys every callback saw in ``logs``).
"""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np

keras.utils.set_random_seed(0)
x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
history = model.fit(x, y, batch_size=16, epochs=2, validation_data=(x[:16], y[:16]), verbose=0)
model.evaluate(x[:16], y[:16], verbose=0)
model.predict(x[:16], verbose=0)
print(json.dumps({k: float(v[-1]) for k, v in history.history.items()}))
