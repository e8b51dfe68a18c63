"""Write the int8 CPU variant of a shipped model: static QDQ quantization of its ONNX file,
calibrated on training-split images through the exact radroute-v1 path.

    python models/train/quantize.py --data ../shared/data/radiographs --model-dir models/bodypart

Why: on a CPU, int8 inference of the MobileNetV2 backbone costs about half the CPU time of
float32 (VNNI), and on a small router host classification competes with receiving and sending
for the same cores. The daemon uses the variant only on the CPU execution provider (manifest
`cpu_file`); CUDA keeps the float32 file. Whether the variant may ship is decided by
`radroute eval` on the held-out split against the float32 file (MODEL_CARD.md), not here.

Calibration: `--calib-n` training images (never validation or test), stratified by class, fixed
seed; weights per channel int8, activations uint8, MinMax ranges.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402
import preprocess as P  # noqa: E402


def calibration_rows(rows, n, seed=20261207):
    """`n` training rows, as evenly spread over the classes as they allow, in a fixed order."""
    rng = np.random.default_rng(seed)
    by_class = collections.defaultdict(list)
    for r in rows:
        if r["split"] == "train":
            by_class[r["class"]].append(r)
    for c in by_class:
        rng.shuffle(by_class[c])
    picked, i = [], 0
    while len(picked) < n and any(i < len(v) for v in by_class.values()):
        for c in sorted(by_class):
            if i < len(by_class[c]) and len(picked) < n:
                picked.append(by_class[c][i])
        i += 1
    return picked


def quantize(src, dst, inputs, input_name, method="minmax", keep_float=()):
    """Static QDQ quantization of `src` into `dst`, calibrated on `inputs` ([3, S, S] each);
    the node types in `keep_float` stay float32."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(inputs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {input_name: x[None].astype(np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        exclude = [n.name for n in onnx.load(pre).graph.node if n.op_type in keep_float]
        methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                   "entropy": CalibrationMethod.Entropy}
        quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=methods[method], nodes_to_exclude=exclude)


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(here, "../../../shared/data/radiographs"))
    ap.add_argument("--model-dir", default=os.path.join(here, "../bodypart"))
    ap.add_argument("--src", default="bodypart.onnx")
    ap.add_argument("--out", default="bodypart-int8.onnx")
    ap.add_argument("--input-name", default="input")
    ap.add_argument("--calib-n", type=int, default=240)
    ap.add_argument("--method", choices=["minmax", "percentile", "entropy"], default="minmax")
    ap.add_argument("--keep-float", default="", help="comma-separated node types left float32, e.g. Gemm")
    a = ap.parse_args(argv)
    rows = D.read_splits_tsv(os.path.join(a.model_dir, "splits.tsv"))
    picked = calibration_rows(rows, a.calib_n)
    print(f"calibration: {len(picked)} training images, {dict(collections.Counter(r['class'] for r in picked))}")
    inputs = [P.model_input(os.path.join(a.data, r["path"])) for r in picked]
    dst = os.path.join(a.model_dir, a.out)
    quantize(os.path.join(a.model_dir, a.src), dst, inputs, a.input_name, a.method,
             tuple(t for t in a.keep_float.split(",") if t))
    print(f"wrote {dst} ({os.path.getsize(dst)} bytes)")


if __name__ == "__main__":
    main()
