#!/usr/bin/env bash
# Creates .venv and installs otel-energy with what a job needs:
#   setup.sh main   the main job (scripts/demo.sh): the package with its `hf` extra, a CPU torch
#   setup.sh test   the test suite (scripts/test.sh): that plus the `dev` extra (backends, peers,
#                   linters)
# Idempotent and quick when nothing changed (a stamp of pyproject.toml and this file per job;
# the test install is a superset of the main one, so it satisfies `main` too).
set -euo pipefail
cd "$(dirname "$0")/.."
job=${1:-main}
case "$job" in
  main) extras=hf ;;
  test) extras=dev,hf ;;
  *) echo "setup: unknown job '$job' (expected main or test)" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
stamp() { cat ".venv/.otel-energy-setup-$1" 2>/dev/null || true; }
if [ "$(stamp "$job")" = "$want" ] || { [ "$job" = main ] && [ "$(stamp test)" = "$want" ]; }; then
  exit 0
fi
echo "setup: installing .[$extras] into .venv (first run takes a minute or two)" >&2
.venv/bin/python -m pip install -q --upgrade pip
# Pinned: an unpinned torch pulls several GB of CUDA packages; 2.13.0 has a CPU wheel here.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[$extras]"
echo "$want" > ".venv/.otel-energy-setup-$job"
