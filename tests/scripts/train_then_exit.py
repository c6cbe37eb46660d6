"""A tiny Trainer run (zero-code: run it under ``opentelemetry-instrument`` or ``otel-energy run``),
then ``TRAINED`` on stdout, then an ordinary exit or, with ``--os-exit``, ``os._exit(0)`` (which
runs no exit handler: whatever is still queued then is lost)."""

from __future__ import annotations

import argparse
import os
import tempfile

from otel_energy.testing.tiny import tiny_trainer

parser = argparse.ArgumentParser()
parser.add_argument("--os-exit", action="store_true")
parser.add_argument("--samples", type=int, default=32)
args = parser.parse_args()

with tempfile.TemporaryDirectory() as out:
    tiny_trainer(out, n_train=args.samples, num_train_epochs=1).train()
print("TRAINED", flush=True)
if args.os_exit:
    os._exit(0)
