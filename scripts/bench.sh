#!/usr/bin/env bash
# Every benchmark, full length (about 55 minutes on 2 cores); results in benchmarks/results/, the
# files docs/performance.md quotes. Run on an otherwise idle machine: the figures are ratios within
# one run, but noise still counts. BEFORE_SRC=<a src/ of other code> adds the sampler's
# before/after rows (e.g. git archive <commit> src | tar -x -C /tmp/before; BEFORE_SRC=/tmp/before/src).
# On a machine with an NVIDIA GPU, also: .venv/bin/python benchmarks/gpu_validate.py
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
py=.venv/bin/python
run() { echo "== $*" >&2; "$py" "$@"; }
run benchmarks/bench_startup.py
run benchmarks/bench_overhead.py --steps-ms 5 --modes default,all,off --gpus 8 --pairs 40 --no-drop --no-peers --name overhead_5ms
run benchmarks/bench_overhead.py --steps-ms 1,20,100 --modes default,all --gpus 8 --pairs 16 --no-drop --no-peers --name overhead_steps
run benchmarks/bench_overhead.py --steps-ms 100 --modes default --gpus 8 --pairs 32 --no-drop --no-peers --name overhead_100ms
run benchmarks/bench_overhead.py --steps-ms 5 --modes default --gpus 8 --pairs 20 --no-drop --name overhead_peers
run benchmarks/bench_overhead.py --steps-ms 5 --modes default --gpus 1,64 --pairs 16 --no-drop --no-peers --name overhead_gpus
if [ -n "${BEFORE_SRC:-}" ]; then
  run benchmarks/bench_sampler.py --before "$BEFORE_SRC" --pairs 5 --seconds 10
else
  run benchmarks/bench_sampler.py
fi
run benchmarks/bench_sampler.py --floors --rounds 5
run benchmarks/bench_ranks.py --seconds 10 --reps 3
run benchmarks/bench_wake.py
run benchmarks/bench_completion.py --runs 3
run benchmarks/bench_inplace.py
run benchmarks/bench_memory.py
run benchmarks/bench_accuracy.py
