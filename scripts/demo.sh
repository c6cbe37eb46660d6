#!/usr/bin/env bash
# The main job: train a small real transformers model under otel-energy, with no collector, and
# show its energy: what this machine can measure, then a summary per device and per epoch, a JSON
# report and a picture of power over time. With OTEL_EXPORTER_OTLP_ENDPOINT set, the same run
# also exports OTLP traces and metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh main
.venv/bin/otel-energy doctor
echo
exec .venv/bin/otel-energy run --progress 5 --report otel-energy-report.json \
  --plot otel-energy-report.html -- python examples/train_tiny.py "$@"
