#!/usr/bin/env bash
# The main job: measure this machine with otel-energy and print devices, methods, energy, CO2e.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/otel-energy devices
echo
exec .venv/bin/otel-energy demo --seconds "${DEMO_SECONDS:-5}"
