#!/usr/bin/env bash
# radroute end to end on a GPU machine (issue 14, "The GPU, end to end"): 8 storescu senders ->
# radroute classifying with the five-member ResNet-18 ensemble on ONNX Runtime's CUDA execution
# provider -> a forking storescp, once with spool and sink on a tmpfs (/dev/shm) and once on the
# disk. Path a (storescu -> storescp, the bare wire) runs in the same loop as the baseline.
# Prints bench.py's tables (images/s, MB/s, p50/p99 latency, ratios against the wire), the
# execution provider radroute reported, and where the time goes: the mean of every
# radroute_stage_seconds histogram and the full histograms of the median run.
#
#   tests/bench/gpu_e2e.sh [--cpu] [--count N] [--conc N] [--reps N] [--where tmpfs,disk]
#   tests/bench/gpu_e2e.sh --make-bundle DIR      # on the build machine: what the GPU machine lacks
#
# --cpu       CPU fallback (device = "cpu"): checks the script on a machine without a GPU.
# defaults    --count 400 (10 MB CR, cr-unc corpus of bench.py), --conc 8, --reps 3, both places.
#
# The GPU machine (16 cores, one H100, no network) has python3 with numpy and onnx, CUDA 13 and
# cuDNN 9 as Python nvidia-* wheels, but no dcmtk, no pydicom, no Rust and no onnxruntime-gpu.
# Everything else comes in a bundle carried with the working tree (RADROUTE_GPU_BUNDLE, default
# .gpu/bundle, ignored by git; keep it under the 64 MiB the device tool carries):
#   bin/radroute[.xz]                      the release binary (else target/release/radroute, else
#                                          `cargo build --release -p radroute` where cargo exists)
#   dcmtk.tar.xz: bin/{storescu,storescp,dcmodify}, lib/*.so*, dicom.dic       (--make-bundle)
#   site.tar.xz: pydicom/                  the pure-Python pydicom of .venv (--make-bundle)
#   peers/gen_corpus.py                    bench.py's corpus generator from ../shared/peers, which
#                                          does not travel with the working tree (--make-bundle)
#   onnxruntime/capi/libonnxruntime.so.1.*, libonnxruntime_providers_shared.so,
#   libonnxruntime_providers_cuda.so       (each may be .xz/.zst; the same files as
#                                          tests/bench/gpu_classify.sh's bundle: the lead copies
#                                          them from an `onnxruntime-gpu` wheel, which --make-bundle
#                                          does not download). Sizes (onnxruntime-gpu 1.31.1,
#                                          measured 2026-12-07): the CUDA provider is 284 MB, 186 MB
#                                          after `zstd -19`: over one call's 64 MiB carry. Split it
#                                          (`split -b 60M`) and carry one piece per call on a warm
#                                          machine into a scratch folder outside the work tree, then
#                                          join it there; the machine image's own onnxruntime (1.30,
#                                          KINDS.md) has no CUDA provider.
# Where these exist on the machine itself (dcmtk in /usr/bin, pydicom importable, .venv-gpu with
# onnxruntime-gpu, ORT_DYLIB_PATH set) they are used instead, unless BENCH_USE_BUNDLE=1 (to check
# a bundle on the build machine: `BENCH_USE_BUNDLE=1 PYTHON=python3 RADROUTE_GPU_BUNDLE=DIR
# tests/bench/gpu_e2e.sh --cpu --count 16 --reps 1`).
#
# On a lent GPU machine (device tool), after `tests/bench/gpu_e2e.sh --make-bundle .gpu/bundle` and
# adding the onnxruntime/capi files to it (.gpu/ in .git/info/exclude; under 64 MiB in all):
#   run(command="set -o pipefail; tests/bench/gpu_e2e.sh 2>&1 | tee $OUT/gpu_e2e.log",
#       carry=[".gpu/bundle"], timeout_s=540)
# Expect ~1 min for the corpora and the stand-in, then 2 places x 3 reps x (a, d).
#
# Environment: RADROUTE_GPU_WORK (scratch, default /tmp/radroute-gpu-e2e: unpacked libraries,
# stand-in model, disk runs), BENCH_CLASSIFY_WORKERS (processing steps at once, default: cores
# minus 4, at least 2), BENCH_MAX_BATCH (default 32), BENCH_MODEL (model dir, default the
# five-member stand-in made by tests/fixtures/models/make_standin.py), NVIDIA_SITE
# (site-packages/nvidia holding the CUDA 13 libraries), PYTHON (default: .venv/bin/python if
# present, else python3).
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
die() { echo "gpu_e2e: $*" >&2; exit 1; }

device=cuda count=400 conc=8 reps=3 where=tmpfs,disk make_bundle=
while [ $# -gt 0 ]; do
  case $1 in
    --cpu) device=cpu ;;
    --count) count=$2; shift ;;
    --conc) conc=$2; shift ;;
    --reps) reps=$2; shift ;;
    --where) where=$2; shift ;;
    --make-bundle) make_bundle=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

# --------------------------------------------------------------- the bundle (build machine)
if [ -n "$make_bundle" ]; then
  b=$make_bundle
  tmp=$(mktemp -d) || die "mktemp failed"
  mkdir -p "$b/bin" "$tmp/dcmtk/bin" "$tmp/dcmtk/lib" "$tmp/site" || die "cannot make $b"
  bin=${RADROUTE_BIN:-target/release/radroute}
  [ -x "$bin" ] || die "no $bin: cargo build --release -p radroute first"
  xz -T0 -6 -c "$bin" >"$b/bin/radroute.xz" || die "xz failed"
  for t in storescu storescp dcmodify; do
    cp "/usr/bin/$t" "$tmp/dcmtk/bin/" || die "no /usr/bin/$t (apt-get install dcmtk)"
    # the dcmtk and codec libraries; libc and friends are on every Linux
    ldd "/usr/bin/$t" | awk '/=> \// {print $3}' | grep -E 'libdcmtk|libofstd|liboflog|libdcm|libi2d|libxml2|libicu|libpng|libtiff|libjpeg|libopenjp|libwrap|libssl|libcrypto|libjbig|libwebp|libLerc|libdeflate|liblzma|libzstd|libnsl|libtirpc' |
      while read -r l; do cp -L "$l" "$tmp/dcmtk/lib/"; done
  done
  dic=$(ls /usr/share/libdcmtk*/dicom.dic 2>/dev/null | head -n1)
  [ -n "$dic" ] && cp "$dic" "$tmp/dcmtk/" || die "no dicom.dic"
  py=${PYTHON:-.venv/bin/python}
  pyd=$($py -c 'import pydicom, os; print(os.path.dirname(pydicom.__file__))') || die "no pydicom in $py"
  cp -r "$pyd" "$tmp/site/pydicom" && find "$tmp/site" -name __pycache__ -prune -exec rm -rf {} +
  mkdir -p "$b/peers" && cp "${BENCH_PEERS:-$repo/../shared/peers}/gen_corpus.py" "$b/peers/" || die "no gen_corpus.py (BENCH_PEERS=dir)"
  tar -C "$tmp" -cJf "$b/dcmtk.tar.xz" dcmtk && tar -C "$tmp/site" -cJf "$b/site.tar.xz" pydicom || die "tar failed"
  rm -rf "$tmp"
  echo "bundle $b: $(du -sh "$b" | cut -f1) (add onnxruntime/capi/ from an onnxruntime-gpu wheel for CUDA)"
  exit 0
fi

work=${RADROUTE_GPU_WORK:-/tmp/radroute-gpu-e2e}
mkdir -p "$work/bin"
bundle=${RADROUTE_GPU_BUNDLE:-.gpu/bundle}
[ -d "$bundle" ] && bundle=$(cd "$bundle" && pwd) || bundle=
unpack() { # FILE.{xz,zst} or FILE -> DEST
  case $1 in
    *.xz) if command -v xz >/dev/null; then xz -dc "$1" >"$2"
          else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi ;;
    *.zst) zstd -qdc "$1" >"$2" ;;
    *) cp "$1" "$2" ;;
  esac
}

# radroute: the environment's, the bundle's, the tree's, or build it
bin=${RADROUTE_BIN:-}
if [ -z "$bin" ] && [ -n "$bundle" ] && ls "$bundle"/bin/radroute* >/dev/null 2>&1; then
  bin=$work/bin/radroute
  unpack "$(ls "$bundle"/bin/radroute* | head -n1)" "$bin" && chmod +x "$bin" || die "cannot unpack radroute"
fi
if [ -z "$bin" ]; then
  bin=$repo/target/release/radroute
  if [ ! -x "$bin" ]; then
    command -v cargo >/dev/null || die "no radroute binary and no cargo (bundle bin/radroute.xz or RADROUTE_BIN)"
    cargo build --release -p radroute || die "build failed"
  fi
fi

# dcmtk
if [ -z "${BENCH_USE_BUNDLE:-}" ] && [ -x /usr/bin/storescu ] && [ -x /usr/bin/storescp ]; then
  dcm=/usr/bin
elif [ -n "$bundle" ] && [ -f "$bundle/dcmtk.tar.xz" ]; then
  [ -x "$work/dcmtk/bin/storescu" ] || tar -C "$work" -xJf "$bundle/dcmtk.tar.xz" || die "cannot unpack dcmtk"
  dcm=$work/dcmtk/bin
  export LD_LIBRARY_PATH="$work/dcmtk/lib:${LD_LIBRARY_PATH:-}" DCMDICTPATH=$work/dcmtk/dicom.dic
else
  die "no dcmtk: install it or make a bundle (--make-bundle)"
fi
export STORESCU=$dcm/storescu STORESCP=$dcm/storescp DCMODIFY=$dcm/dcmodify

# Python with pydicom (corpus generation, bench.py) and numpy + onnx (the stand-in model)
python=${PYTHON:-}
[ -z "$python" ] && [ -x .venv/bin/python ] && python=$repo/.venv/bin/python
[ -z "$python" ] && python=python3
if [ -n "${BENCH_USE_BUNDLE:-}" ] || ! $python -c 'import pydicom' 2>/dev/null; then
  [ -n "$bundle" ] && [ -f "$bundle/site.tar.xz" ] || die "$python has no pydicom and the bundle has no site.tar.xz"
  mkdir -p "$work/site" && { [ -d "$work/site/pydicom" ] || tar -C "$work/site" -xJf "$bundle/site.tar.xz"; } || die "cannot unpack pydicom"
  export PYTHONPATH="$work/site:${PYTHONPATH:-}"
fi
$python -c 'import pydicom, numpy' || die "$python lacks pydicom or numpy"

# ONNX Runtime: CPU from .venv, CUDA from the bundle or .venv-gpu (as gpu_classify.sh)
if [ "$device" = cuda ]; then
  capi=
  if [ -n "$bundle" ] && [ -d "$bundle/onnxruntime/capi" ]; then
    capi=$work/site/onnxruntime/capi
    mkdir -p "$capi"
    for f in "$bundle"/onnxruntime/capi/*; do
      dest=$capi/$(basename "${f%.xz}"); dest=${dest%.zst}
      [ -s "$dest" ] && [ "$dest" -nt "$f" ] || unpack "$f" "$dest" || die "cannot unpack $f"
    done
  elif [ -d .venv-gpu ]; then
    capi=$(ls -d "$repo"/.venv-gpu/lib/python3*/site-packages/onnxruntime/capi | head -n1)
  fi
  [ -n "$capi" ] || die "no onnxruntime-gpu: bundle onnxruntime/capi or .venv-gpu (tests/bench/gpu_classify.sh makes it)"
  ORT_DYLIB_PATH=$(ls "$capi"/libonnxruntime.so.1* 2>/dev/null | head -n1)
  nvidia=${NVIDIA_SITE:-$(python3 -c 'import nvidia, os; print(os.path.realpath(list(nvidia.__path__)[0]))' 2>/dev/null)}
  [ -n "$nvidia" ] && [ -d "$nvidia" ] || echo "gpu_e2e: no nvidia-* wheels found (set NVIDIA_SITE); CUDA will not load" >&2
  libdirs=$(ls -d "$nvidia"/*/lib 2>/dev/null | tr '\n' ':')
  export LD_LIBRARY_PATH="$capi:${libdirs}${LD_LIBRARY_PATH:-}"
  export CUDA_MODULE_LOADING=${CUDA_MODULE_LOADING:-LAZY}
else
  ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(ls "$repo"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1)}
fi
[ -n "$ORT_DYLIB_PATH" ] || die "no libonnxruntime.so.1*"
export ORT_DYLIB_PATH

# the five-member ResNet-18 ensemble (random weights, the paper's shapes), made once
model=${BENCH_MODEL:-$work/standin5}
if [ ! -f "$model/manifest.toml" ]; then
  t=$SECONDS
  python3 -c 'import onnx, numpy' 2>/dev/null && mk=python3 || mk=$python
  $mk tests/fixtures/models/make_standin.py "$model" --members 5 >/dev/null || die "make_standin.py failed"
  echo "generated $model in $((SECONDS - t)) s"
fi

# bench.py's corpus generator: ../shared/peers here, the bundle's copy on the GPU machine
peers=${BENCH_PEERS:-$repo/../shared/peers}
if [ ! -f "$peers/gen_corpus.py" ] || [ -n "${BENCH_USE_BUNDLE:-}" ]; then
  [ -n "$bundle" ] && [ -f "$bundle/peers/gen_corpus.py" ] || die "no gen_corpus.py (../shared/peers or the bundle's peers/)"
  peers=$bundle/peers
fi

cores=$(nproc)
workers=${BENCH_CLASSIFY_WORKERS:-$(( cores > 6 ? cores - 4 : 2 ))}
export BENCH_CLASSIFY_EXTRA="device = \"$device\"
workers = $workers
max_batch = ${BENCH_MAX_BATCH:-32}"

echo "## Machine"
echo
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: no GPU visible"
echo "CPU: $cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "radroute: $bin; dcmtk: $dcm; ONNX Runtime: $ORT_DYLIB_PATH; model: $model"
echo "[classify] extra: $(echo "$BENCH_CLASSIFY_EXTRA" | tr '\n' ';')"
echo

failed=()
for w in ${where//,/ }; do
  case $w in
    tmpfs) out=/dev/shm/radroute-gpu-e2e ;;
    disk) out=$work/disk ;;
    *) die "--where: tmpfs or disk, not $w" ;;
  esac
  rm -rf "$out/results-"* "$out/latest"
  mkdir -p "$out"
  echo "## $w ($out: $(df -h --output=fstype,size "$out" | tail -n1 | xargs))"
  echo
  # the corpus lives beside the runs: on the tmpfs too, so the senders read from memory there
  $python tests/bench/bench.py --radroute "$bin" --ort-dylib "$ORT_DYLIB_PATH" --model "$model" \
    --peers "$peers" --out "$out" --count "$count" --conc "$conc" --corpora cr-unc --paths a,d --reps "$reps" \
    >"$out/bench.log" 2>&1
  rc=$?
  grep -E '^\[|c=' "$out/bench.log" | tail -n 40
  res=$(readlink -f "$out/latest" 2>/dev/null)
  if [ $rc -ne 0 ] || [ ! -f "$res/results.md" ]; then
    failed+=("$w (bench.py exit $rc, log $out/bench.log)")
    tail -n 30 "$out/bench.log"
    continue
  fi
  cat "$res/results.md"
  # the execution provider really used: a CUDA run that fell back to the CPU must not pass
  prov=$(grep -ho 'execution_provider="\?[A-Za-z]*' "$res"/runs/*-d-*/radroute.log 2>/dev/null | sort -u | sed 's/.*="\{0,1\}//' | tr '\n' ' ')
  echo "execution provider (radroute log): ${prov:-not reported}"
  if [ "$device" = cuda ] && ! echo "$prov" | grep -qi cuda; then
    failed+=("$w (asked for CUDA, radroute reported: ${prov:-nothing})")
  fi
  echo
  echo "### Where the time goes ($w, path d, conc $conc): mean ms per instance and stage, every repetition"
  echo
  $python - "$res" <<'EOF'
import csv, os, re, sys
res = sys.argv[1]
rows = [r for r in csv.DictReader(open(os.path.join(res, "results.csv"))) if r["path"] == "d"]
stages = sorted({k[6:-3] for r in rows for k in r if k.startswith("stage_") and k.endswith("_ms") and r[k]})
print("| rep | images/s | p50 ms | p99 ms | " + " | ".join(stages) + " |")
print("|---:|---:|---:|---:|" + "---:|" * len(stages))
for r in rows:
    print("| %s | %s | %s | %s | " % (r["rep"], r["images_per_s"], r["p50_ms"], r["p99_ms"])
          + " | ".join(r.get("stage_%s_ms" % s) or "" for s in stages) + " |")
print()
# the histograms of the repetition with the median images/s: per stage the bucket bounds
# that hold the median and the 99th percentile
ok = sorted((r for r in rows if r["images_per_s"]), key=lambda r: float(r["images_per_s"]))
if ok:
    med = ok[len(ok) // 2]
    m = os.path.join(res, "runs", "cr-unc-c%s-d-r%s" % (med["conc"], med["rep"]), "metrics.txt")
    buckets = {}
    for line in open(m) if os.path.exists(m) else []:
        g = re.match(r'radroute_stage_seconds_bucket\{[^}]*stage="([^"]+)"[^}]*le="([^"]+)"[^}]*\} (\S+)', line)
        if g:
            buckets.setdefault(g.group(1), []).append((float(g.group(2)), float(g.group(3))))
    def bound(bs, q):
        n = bs[-1][1]
        return next((le for le, c in bs if c >= q * n), float("inf"))
    print("radroute_stage_seconds of rep %s: count, p50 and p99 at most (bucket bounds, ms)" % med["rep"])
    print()
    print("| stage | count | p50 ≤ ms | p99 ≤ ms |")
    print("|---|---:|---:|---:|")
    for st, bs in sorted(buckets.items()):
        bs.sort()
        print("| %s | %d | %g | %g |" % (st, bs[-1][1], 1000 * bound(bs, 0.5), 1000 * bound(bs, 0.99)))
EOF
  echo
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
