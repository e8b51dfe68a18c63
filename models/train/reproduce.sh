#!/usr/bin/env bash
# One command: train the backbone on the patient-wise split, run the source-shortcut probe, export
# the model to models/bodypart/ and write its metrics (2.0.0: twelve classes, see data.py).
#   bash models/train/reproduce.sh ../shared/data/radiographs [WORKDIR]
# ARCHS="mobilenet_v2 resnet18" also trains the from-scratch ResNet-18 and lets ship.py pick the one
# with the lower validation loss (1.x compared both; MobileNetV2 won each time, see MODEL_CARD.md).
set -euo pipefail
DATA=${1:?radiographs folder}
WORK=${2:-/tmp/radroute-bodypart}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python}
EPOCHS=${EPOCHS:-30}
ARCHS=${ARCHS:-mobilenet_v2}
# 1.1.0 recipe: UNIFESP positives weigh as much as the other sources of their class together, and
# source-aware style augmentation (crops made to look like full films). RECIPE= gives the 1.0.0 recipe.
RECIPE=${RECIPE---unifesp-share 0.5 --style-aug}
for ARCH in $ARCHS; do
  "$PY" "$HERE/train.py" --data "$DATA" --arch "$ARCH" --epochs "$EPOCHS" --seed 0 $RECIPE --out "$WORK/$ARCH"
done
# shortcut probe: the minority source of each 1.x class is left out of training and used as test
# (the seven 2.0.0 classes have one source only: ship.py's style probe covers them)
"$PY" "$HERE/train.py" --data "$DATA" --arch mobilenet_v2 --epochs 8 --seed 0 $RECIPE --out "$WORK/probe" \
  --exclude hand:unifesp,knee:unifesp,shoulder:unifesp,pelvis:ddh_paediatric
"$PY" "$HERE/ship.py" --data "$DATA" --runs "$WORK" --out "$HERE/../bodypart" --version "${VERSION:-2.0.1}" \
  --archs "$(echo $ARCHS | tr ' ' ,)"
