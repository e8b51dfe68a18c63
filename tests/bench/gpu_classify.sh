#!/usr/bin/env bash
# Classification throughput on a GPU through ONNX Runtime's CUDA execution provider, as one
# prepared script for a lent GPU machine. Models: the shipped models/bodypart (MobileNetV2), the
# five-member ResNet-18 one-vs-rest stand-in (random weights, the paper's shapes; five files) and
# the same five members merged into one graph (make_standin.py --merged: the batch goes to the GPU
# once). Batches 1, 8, 32, 64, 128 on CUDA, then 1, 8, 32 on the machine's CPU for comparison.
# Prints the GPU, driver, ONNX Runtime library and version, the execution provider of every run
# and Markdown tables (per run, then one summary). A run asked for CUDA that ends up on the CPU
# fails (the bench exits 1), so a silent fallback cannot pass as a GPU number.
#
# Two ways to run it, from the repository root:
#
# 1. Where PyPI is reachable (and a Rust toolchain, or BENCH_BIN=built bench binary):
#      tests/bench/gpu_classify.sh
#    makes .venv-gpu with onnxruntime-gpu[cuda,cudnn]==1.31.1 (CUDA 13 / cuDNN 9 wheels), onnx,
#    numpy, and builds the bench with `cargo bench --no-run -p radroute-classify --bench inference`.
#
# 2. Offline, from a prepared bundle (a GPU machine without PyPI or Rust):
#      RADROUTE_GPU_BUNDLE=.gpu/bundle tests/bench/gpu_classify.sh
#    The bundle holds onnxruntime/capi/libonnxruntime.so.1.*, libonnxruntime_providers_shared.so,
#    libonnxruntime_providers_cuda.so (each may be .xz or .zst compressed) and bin/inference[.xz]
#    (the bench binary). CUDA 13 / cuDNN 9 come from the machine's Python `nvidia-*` wheels
#    (e.g. a CUDA 13 PyTorch: site-packages/nvidia/*/lib), found through python3, or NVIDIA_SITE=
#    that site-packages/nvidia dir. python3 needs numpy and onnx (for the stand-ins).
#
# Environment: BENCH_DEVICES (default "cuda cpu"), BENCH_MODELS (default "bodypart standin5
# standin5-merged"), BENCH_CPU_THREADS (default: all cores), BENCH_GPU_THREADS (default 2),
# BENCH_SECONDS (per batch size, default 2), BENCH_BATCHES (override both devices' lists),
# RADROUTE_GPU_WORK (scratch dir, default /tmp/radroute-gpu: unpacked libraries, stand-ins),
# BENCH_LOG (also append everything to this file).
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
work=${RADROUTE_GPU_WORK:-/tmp/radroute-gpu}
mkdir -p "$work"
if [ -n "${BENCH_LOG:-}" ]; then
  exec > >(tee -a "$BENCH_LOG") 2>&1
fi
die() { echo "gpu_classify: $*" >&2; exit 1; }
# Where a GPU is present, CUDA loads each kernel module when it is first used (the default since
# CUDA 12.2; the bundle's sm_90-only CUDA provider relies on it).
export CUDA_MODULE_LOADING=${CUDA_MODULE_LOADING:-LAZY}

unpack() { # FILE.{xz,zst} or FILE -> DEST
  case $1 in
    *.xz) if command -v xz >/dev/null; then xz -dc "$1" >"$2"
          else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi ;;
    *.zst) zstd -qdc "$1" >"$2" ;;
    *) cp "$1" "$2" ;;
  esac
}

python=python3
if [ -n "${RADROUTE_GPU_BUNDLE:-}" ]; then
  bundle=$(cd "$RADROUTE_GPU_BUNDLE" && pwd) || die "no bundle at $RADROUTE_GPU_BUNDLE"
  # No site/nvidia beside it: the CUDA libraries come through LD_LIBRARY_PATH only (radroute-classify
  # would otherwise dlopen every library of a large torch environment's nvidia/*/lib).
  capi=$work/site/onnxruntime/capi
  mkdir -p "$capi" "$work/bin"
  for f in "$bundle"/onnxruntime/capi/*; do
    dest=$capi/$(basename "${f%.xz}"); dest=${dest%.zst}
    [ -s "$dest" ] && [ "$dest" -nt "$f" ] || unpack "$f" "$dest" || die "cannot unpack $f"
  done
  if [ -z "${BENCH_BIN:-}" ]; then
    src=$(ls "$bundle"/bin/inference* 2>/dev/null | head -n1)
    [ -n "$src" ] || die "no bin/inference in $bundle (or set BENCH_BIN)"
    BENCH_BIN=$work/bin/inference
    unpack "$src" "$BENCH_BIN" && chmod +x "$BENCH_BIN" || die "cannot unpack $src"
  fi
  if [ -f "$bundle/SHA256SUMS" ]; then
    echo "bundle: $bundle ($(wc -l <"$bundle/SHA256SUMS") files listed in SHA256SUMS)"
  fi
  [ -f "$bundle/README.txt" ] && sed 's/^/  /' "$bundle/README.txt"
  nvidia=${NVIDIA_SITE:-$($python -c 'import nvidia, os; print(os.path.realpath(list(nvidia.__path__)[0]))' 2>/dev/null)}
  [ -n "$nvidia" ] && [ -d "$nvidia" ] || echo "gpu_classify: no nvidia-* wheels found (set NVIDIA_SITE); CUDA will not load" >&2
else
  venv=.venv-gpu
  [ -x $venv/bin/python ] || python3 -m venv $venv || die "cannot make $venv"
  $venv/bin/pip install -q "onnxruntime-gpu[cuda,cudnn]==1.31.1" onnx numpy || die "pip install failed"
  python=$repo/$venv/bin/python
  capi=$(ls -d "$repo"/$venv/lib/python3*/site-packages/onnxruntime/capi | head -n1)
  nvidia=$(dirname "$capi")/../nvidia
  if [ -z "${BENCH_BIN:-}" ]; then
    BENCH_BIN=$(cargo bench --no-run -p radroute-classify --bench inference 2>&1 |
      sed -n 's/.*Executable benches\/inference.rs (\(.*\))/\1/p' | tail -n1)
    [ -n "$BENCH_BIN" ] || die "cargo bench --no-run failed (or set BENCH_BIN)"
    BENCH_BIN=$repo/$BENCH_BIN
  fi
fi
ORT_DYLIB_PATH=$(ls "$capi"/libonnxruntime.so.1* 2>/dev/null | head -n1)
[ -n "$ORT_DYLIB_PATH" ] || die "no libonnxruntime.so.1* in $capi"
export ORT_DYLIB_PATH
libdirs=
[ -n "${nvidia:-}" ] && libdirs=$(ls -d "$nvidia"/*/lib 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="$capi:${libdirs}${LD_LIBRARY_PATH:-}"

echo "## Machine"
echo
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: no GPU visible"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>/dev/null || true
echo "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "ONNX Runtime: $ORT_DYLIB_PATH (version ${ORT_DYLIB_PATH##*.so.})"
ls "$capi" | sed 's/^/  capi: /'
for l in libcudart.so.13 libcublasLt.so.13 libcudnn.so.9; do
  p=
  [ -n "${nvidia:-}" ] && p=$(ls "$nvidia"/*/lib/$l* 2>/dev/null | head -n1)
  echo "  $l: ${p:-not found}"
done
echo "bench: $BENCH_BIN"
echo

# Stand-ins (~45 MB per member, never in the repository), generated once per scratch dir.
models=${BENCH_MODELS:-bodypart standin5 standin5-merged}
model_dir() {
  case $1 in
    bodypart) echo "$repo/models/bodypart" ;;
    standin5) echo "$work/standin5" ;;
    standin5-merged) echo "$work/standin5-merged" ;;
    *) echo "$1" ;;
  esac
}
for m in $models; do
  d=$(model_dir "$m")
  [ -f "$d/manifest.toml" ] && continue
  case $m in
    standin5) args=(--members 5) ;;
    standin5-merged) args=(--members 5 --merged) ;;
    *) die "no model at $d" ;;
  esac
  t=$SECONDS
  $python tests/fixtures/models/make_standin.py "$d" "${args[@]}" >/dev/null || die "make_standin.py $d failed"
  echo "generated $d in $((SECONDS - t)) s"
done
echo

summary=$work/summary.md
: >"$summary"
failed=()
for device in ${BENCH_DEVICES:-cuda cpu}; do
  if [ "$device" = cuda ]; then threads=${BENCH_GPU_THREADS:-2}; else threads=${BENCH_CPU_THREADS:-$(nproc)}; fi
  for m in $models; do
    d=$(model_dir "$m")
    echo "## $m on $device"
    echo
    out=$(BENCH_DEVICE=$device BENCH_THREADS=$threads RADROUTE_BENCH_MODEL=$d "$BENCH_BIN" 2>&1)
    rc=$?
    echo "$out"
    echo
    if [ $rc -ne 0 ]; then
      failed+=("$m/$device (exit $rc)")
      continue
    fi
    provider=$(echo "$out" | sed -n 's/^model .* threads, \([A-Z]*\), loaded.*/\1/p')
    echo "$out" | awk -v m="$m" -v dev="$device" -v p="$provider" -F'|' \
      '/^\| [0-9]+ \|/ { gsub(/ /, ""); printf "| %s | %s (%s) | %s | %s | %s |\n", m, dev, p, $2, $4, $7 }' >>"$summary"
  done
done

echo "## Summary"
echo
echo "| model | device (provider) | batch | ms per batch | images/s |"
echo "|---|---|---:|---:|---:|"
cat "$summary"
echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
