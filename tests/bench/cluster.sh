#!/usr/bin/env bash
# Cluster mode benchmark (issue 13 "Measure"): builds radroute (release) and runs
# tests/bench/cluster_bench.py with the project's venv; it starts its own PostgreSQL 15 and HAProxy.
#   tests/bench/cluster.sh --quick      # smoke run, < 2 min
#   tests/bench/cluster.sh              # full run: parts a, b, c, 3 repetitions (~15 min on 2 cores)
# BENCH_NO_BUILD=1 skips the build; every other argument goes to cluster_bench.py (see --help).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  cargo build --release -p radroute
fi
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1 || true)
  export ORT_DYLIB_PATH
fi
exec "$PY" tests/bench/cluster_bench.py "$@"
