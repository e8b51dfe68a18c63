#!/usr/bin/env bash
# Classification throughput on a GPU (CUDA execution provider), as one prepared script for a lent
# GPU machine: the shipped model and a five-member ResNet-18 one-vs-rest ensemble (random
# weights, the paper's shapes) at batch 1, 8 and 32, next to the same on the machine's CPU.
#
# Needs PyPI access (onnxruntime-gpu pulls CUDA 13 / cuDNN 9 wheels) and a Rust toolchain, or a
# prepared .venv-gpu and a built cargo bench. Prints Markdown tables.
#   tests/bench/gpu_classify.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-gpu
[ -x $venv/bin/python ] || python3 -m venv $venv
$venv/bin/pip install -q "onnxruntime-gpu[cuda,cudnn]==1.31.1" onnx numpy
export ORT_DYLIB_PATH=$(ls "$PWD"/$venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)
site=$(ls -d "$PWD"/$venv/lib/python3*/site-packages)
export LD_LIBRARY_PATH="$site/nvidia/cu13/lib:$site/nvidia/cudnn/lib:${LD_LIBRARY_PATH:-}"
$venv/bin/python tests/fixtures/models/make_standin.py /tmp/radroute-standin5 --members 5 >/dev/null
nvidia-smi -L || true
for device in cuda cpu; do
  for model in "$PWD/models/bodypart" /tmp/radroute-standin5; do
    echo "## $device: $model"
    BENCH_DEVICE=$device RADROUTE_BENCH_MODEL=$model cargo bench -q -p radroute-classify --bench inference 2>/dev/null
  done
done
