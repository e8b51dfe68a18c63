#!/usr/bin/env bash
# Installs what radroute needs on a fresh Debian/Ubuntu machine and builds it.
#   deploy/setup.sh          runtime: ONNX Runtime (PyPI wheel) in .venv, release build
#   deploy/setup.sh --test   also the test peers: dcmtk, Orthanc, dicom3tools, PostgreSQL (apt) and the
#                            Python test packages (pydicom, pynetdicom, onnx, pytest) in .venv
# ONNX Runtime is loaded dynamically (ort's load-dynamic): no binary is downloaded at build time.
# On a machine with an NVIDIA GPU (nvidia-smi lists one) the onnxruntime-gpu wheel with the
# CUDA execution provider is installed instead; RADROUTE_GPU=0 or 1 forces the choice.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_pkgs=(python3-venv python3-pip cmake g++ pkg-config)
[ $want_test = 1 ] && apt_pkgs+=(dcmtk orthanc dicom3tools curl)
# cluster tests: PostgreSQL 15 (Debian 12's default), started by the tests themselves
[ $want_test = 1 ] && apt_pkgs+=(postgresql)
# cluster tests: HAProxy in front of the nodes (TCP mode, /readyz health checks)
[ $want_test = 1 ] && apt_pkgs+=(haproxy)
# audit tests: a real syslog receiver (TCP and TLS) and the schema validator (xmllint)
[ $want_test = 1 ] && apt_pkgs+=(rsyslog rsyslog-openssl libxml2-utils)
# the console's browser test (tests/browser): Debian's Chromium, driven by Playwright for Python
[ $want_test = 1 ] && apt_pkgs+=(chromium)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
gpu=${RADROUTE_GPU:-}
if [ -z "$gpu" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then gpu=1; else gpu=0; fi
fi
if [ $want_test = 1 ]; then
  .venv/bin/pip install -q -r deploy/requirements-test.txt
elif [ "$gpu" = 1 ]; then
  echo "setup: NVIDIA GPU found: installing onnxruntime-gpu (CUDA execution provider)"
  .venv/bin/pip install -q "onnxruntime-gpu[cuda,cudnn]==1.31.1"
else
  .venv/bin/pip install -q -r deploy/requirements-runtime.txt
fi
ort_lib=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1)
[ -n "$ort_lib" ] || { echo "setup: ONNX Runtime library not found in .venv" >&2; exit 1; }
echo "setup: ONNX Runtime at $ort_lib"
