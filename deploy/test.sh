#!/usr/bin/env bash
# One command that runs radroute's whole test suite on a fresh machine: installs the real peers
# (dcmtk, Orthanc) and Python test packages, builds, then runs the Rust tests (unit, crate
# integration and end-to-end tests against real peers over loopback) and the training code's
# unit tests. Needs ../shared (sample DICOM files, radiographs) next to the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh --test
# No incremental compilation: a one-off build gains nothing from it, and its caches double target/.
export CARGO_INCREMENTAL=0
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls "$PWD"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)}"
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
if [ -d models/train/tests ]; then
  .venv/bin/python -m pytest -q models/train/tests
fi
