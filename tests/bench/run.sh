#!/usr/bin/env bash
# Build radroute (release) and run the benchmark harness with the project's Python venv.
#   tests/bench/run.sh --quick          # smoke run, < 1 min
#   tests/bench/run.sh                  # full run, ~20 min on 2 cores
# BENCH_NO_BUILD=1 skips the build; every other argument goes to bench.py (see --help).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  cargo build --release -p radroute
fi
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" tests/bench/bench.py "$@"
