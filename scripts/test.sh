#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then lint, types and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# Real programs the tests use: Prometheus (a backend the tests read data back from) and
# Chromium (screenshots of the report pages) from Debian; MLflow comes with .[dev].
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test: installing ${missing[*]} (apt)" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "test: ${missing[*]} missing; their tests skip (sudo apt-get install ${missing[*]})" >&2
  fi
fi
# Headless Chromium screenshots the run comparison page (tests/history/test_ledger.py; required under CI).
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
