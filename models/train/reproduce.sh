#!/usr/bin/env bash
# One command: train both backbones on the same patient-wise split, run the source-shortcut probe,
# pick the better backbone on validation, export it to models/bodypart/ and write its metrics.
#   bash models/train/reproduce.sh ../shared/data/radiographs [WORKDIR]
set -euo pipefail
DATA=${1:?radiographs folder}
WORK=${2:-/tmp/radroute-bodypart}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python}
EPOCHS=${EPOCHS:-30}
# 1.1.0 recipe: UNIFESP positives weigh as much as the other sources of their class together, and
# source-aware style augmentation (crops made to look like full films). RECIPE= gives the 1.0.0 recipe.
RECIPE=${RECIPE---unifesp-share 0.5 --style-aug}
for ARCH in mobilenet_v2 resnet18; do
  "$PY" "$HERE/train.py" --data "$DATA" --arch "$ARCH" --epochs "$EPOCHS" --seed 0 $RECIPE --out "$WORK/$ARCH"
done
# shortcut probe: the minority source of each class is left out of training and used as test
"$PY" "$HERE/train.py" --data "$DATA" --arch mobilenet_v2 --epochs 8 --seed 0 $RECIPE --out "$WORK/probe" \
  --exclude hand:unifesp,knee:unifesp,shoulder:unifesp,pelvis:ddh_paediatric
"$PY" "$HERE/ship.py" --data "$DATA" --runs "$WORK" --out "$HERE/../bodypart" --version "${VERSION:-1.1.0}"
