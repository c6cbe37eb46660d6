#!/usr/bin/env bash
# Creates .venv and installs otel-energy with what a job needs:
#   setup.sh main   the main job (scripts/demo.sh): the package with its `hf` extra, a CPU torch
#   setup.sh test   the test suite (scripts/test.sh): that plus the `dev` extra (backends, peers,
#                   linters)
# torch is the CPU build, from PyTorch's CPU index (OTEL_ENERGY_TORCH_INDEX overrides its URL)
# when it answers, else from pip's default index (one line says so).
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
echo "setup: installing .[$extras] into .venv (first run: minutes)" >&2
.venv/bin/python -m pip install -q --upgrade pip
# A CPU torch first (accelerate, in the `hf` extra, needs torch): from PyPI, Linux x86_64 gets
# the CUDA build plus ~17 NVIDIA packages (several GB). PyTorch's own CPU index serves the CPU
# wheel (~190 MB) and torch's dependencies; it is used when a quick, bounded probe reaches it.
# pip's own configuration (a mirror, find-links holding a local wheel) applies either way.
torch_spec="torch==2.13.0"
cpu_index=${OTEL_ENERGY_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
reachable() {  # the index's torch page answers within 10 s (name lookup included)
  timeout 10 .venv/bin/python - "$1" >/dev/null 2>&1 <<'PY'
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=5).close()
PY
}
if reachable "$cpu_index"; then
  .venv/bin/python -m pip install -q --index-url "$cpu_index" "$torch_spec"
else
  echo "setup: $cpu_index is not reachable; installing $torch_spec from the default index" \
    "(from PyPI on Linux x86_64 that is the CUDA build, several GB)" >&2
  .venv/bin/python -m pip install -q "$torch_spec"
fi
.venv/bin/python -m pip install -q -e ".[$extras]"
echo "$want" > ".venv/.otel-energy-setup-$job"
