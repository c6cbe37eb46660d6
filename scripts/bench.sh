#!/usr/bin/env bash
# Every benchmark, full length (about 25 minutes on 2 cores, 15 of them bench_overhead); results in
# benchmarks/results/.
# Run on an otherwise idle machine: the figures are ratios within one run, but noise still counts.
# On a machine with an NVIDIA GPU, also: .venv/bin/python benchmarks/gpu_validate.py
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
for b in bench_startup bench_overhead bench_inplace bench_sampler bench_memory bench_accuracy; do
  echo "== $b" >&2
  .venv/bin/python "benchmarks/$b.py" "$@"
done
