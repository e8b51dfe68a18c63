#!/usr/bin/env bash
# One command from a fresh clone to a running radroute with the example configuration:
# installs ONNX Runtime, builds a release binary, and serves DICOM on 127.0.0.1:11112 with the
# admin HTTP surface on 127.0.0.1:8080. Spool and queue live in ./.run/spool. Ctrl-C stops it.
#
# Environment (all optional):
#   RADROUTE__NODE__LISTEN, RADROUTE__ADMIN__LISTEN   addresses (defaults above)
#   QUICKSTART_SKIP_SETUP=1    skip deploy/setup.sh (ONNX Runtime already in .venv)
#   QUICKSTART_BIN=PATH        run this binary instead of building target/release/radroute
#   QUICKSTART_RUN_DIR=DIR     spool and queue under DIR/spool instead of ./.run/spool
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ "${QUICKSTART_SKIP_SETUP:-0}" != 1 ]; then
  step "installing ONNX Runtime into .venv (deploy/setup.sh)"
  deploy/setup.sh
fi

bin=${QUICKSTART_BIN:-}
if [ -z "$bin" ]; then
  step "building radroute (release; the first build takes about four minutes on two cores)"
  cargo build --release -p radroute
  bin=target/release/radroute
fi

run_dir=${QUICKSTART_RUN_DIR:-$PWD/.run}
mkdir -p "$run_dir/spool"
export RADROUTE__SPOOL__DIR="$run_dir/spool"
export RADROUTE__NODE__LISTEN="${RADROUTE__NODE__LISTEN:-127.0.0.1:11112}"
export RADROUTE__ADMIN__LISTEN="${RADROUTE__ADMIN__LISTEN:-127.0.0.1:8080}"
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH=$(ls "$PWD"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -n1 || true)
  export ORT_DYLIB_PATH
fi
config=deploy/radroute.example.toml
dicom_host=${RADROUTE__NODE__LISTEN%:*}
dicom_port=${RADROUTE__NODE__LISTEN##*:}
admin="http://$RADROUTE__ADMIN__LISTEN"

step "checking $config"
"$bin" check-config --config "$config"

step "starting radroute: DICOM on $RADROUTE__NODE__LISTEN, admin on $admin, spool in $RADROUTE__SPOOL__DIR"
"$bin" serve --config "$config" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit' INT TERM

# Ready when /readyz answers 200 (spool writable, queue open, model loaded); at most 120 s.
ready=0
for _ in $(seq 1 240); do
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || true
    echo "quickstart: radroute exited before it was ready (see the log above)" >&2
    exit 1
  fi
  if curl -fsS -o /dev/null "$admin/readyz" 2>/dev/null; then ready=1; break; fi
  sleep 0.5
done
if [ $ready != 1 ]; then
  echo "quickstart: radroute is not ready after 120 s ($admin/readyz); still running, see the log above" >&2
else
  cat <<EOF

==> ready: radroute (AE title RADROUTE) serves DICOM on $RADROUTE__NODE__LISTEN
  try:
    echoscu -aec RADROUTE $dicom_host $dicom_port
    storescu -aec RADROUTE -xv $dicom_host $dicom_port image.dcm
        (-xv proposes JPEG 2000 lossless; storescu proposes only uncompressed syntaxes unless told:
         use -xs for JPEG lossless, -xw for JPEG 2000 lossy; README.md "A short tour" explains)
    RADROUTE__SPOOL__DIR=$RADROUTE__SPOOL__DIR $bin queue counts --config $config
    curl $admin/metrics | grep radroute_destination_reachable
  The example destinations (*.example.org) are placeholders: edit $config to name your PACS.
  Ctrl-C stops radroute.
EOF
fi
wait "$pid"
