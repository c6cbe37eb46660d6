#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then lint, types and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Real backends the tests read data back from: Prometheus from Debian (MLflow comes with .[dev]).
if ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "test: installing Prometheus (apt)" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "test: Prometheus missing; its tests will skip (sudo apt-get install prometheus)" >&2
  fi
fi
# Headless Chromium screenshots the run comparison page (tests/test_ledger.py; required under CI).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "test: installing Chromium (apt)" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "test: Chromium missing; the page screenshot test will skip (sudo apt-get install chromium)" >&2
  fi
fi
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
