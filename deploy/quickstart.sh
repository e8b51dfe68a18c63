#!/usr/bin/env bash
# One command from a fresh clone to a running radroute with the example configuration:
# installs ONNX Runtime, builds a release binary, and serves DICOM on 127.0.0.1:11112 with the
# admin HTTP surface on 127.0.0.1:8080. Spool and queue live in ./.run/spool. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
cargo build --release -p radroute
mkdir -p .run/spool
export RADROUTE__SPOOL__DIR="$PWD/.run/spool"
export RADROUTE__NODE__LISTEN="${RADROUTE__NODE__LISTEN:-127.0.0.1:11112}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls "$PWD"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)}"
exec target/release/radroute serve --config deploy/radroute.example.toml
