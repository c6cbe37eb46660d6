"""One rank of the two-node job test: trains the tiny model with DDP (gloo), nothing else.

It is run under ``opentelemetry-instrument`` and ``torchrun``: the ``energy`` instrumentor adds
the callback, so everything this test sees comes through the zero-code path.
"""

from __future__ import annotations

import os
from pathlib import Path

from otel_energy.testing.tiny import tiny_trainer


def main() -> None:
    out = Path(os.environ["OUT_DIR"]) / f"rank-{os.environ['RANK']}"
    tiny_trainer(str(out), num_train_epochs=1, n_train=32).train()


if __name__ == "__main__":
    main()
