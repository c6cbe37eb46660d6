#!/usr/bin/env bash
# Creates .venv and installs otel-energy with everything the demo and the tests need.
# Idempotent and quick when nothing changed (a stamp of pyproject.toml and this file).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.otel-energy-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing into .venv (first run takes a minute or two)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  # Pinned: an unpinned torch pulls several GB of CUDA packages; 2.13.0 has a CPU wheel here.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[dev,hf]"
  echo "$want" > "$stamp"
fi
