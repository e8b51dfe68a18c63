"""Occlusion-sensitivity maps for the model card: per class, held-out test images the model labels
right and the ones it gets wrong, with the map of where masking the image lowers the score.

    python models/train/occlusion_grid.py --data ../shared/data/radiographs   # -> models/bodypart/occlusion_grid.png

Map: the exact model input (radroute-v1 step 3, 224×224) is masked with a 32×32 patch of 0 (black,
before the ImageNet normalisation of step 4), the patch moved in steps of 16 px (13×13 positions);
each position gets the drop of the score of the class shown (unmasked score − masked score),
averaged over the patches covering a pixel. Red = the label rests on that region. Same rule as
`radroute classify --explain` is asked to document (issue 12). numpy, onnxruntime, matplotlib.
"""
from __future__ import annotations

import argparse
import os
import sys
import tomllib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402
import metrics as M  # noqa: E402
import preprocess as P  # noqa: E402

PATCH, STRIDE = 32, 16


def session(model_dir):
    import onnxruntime as ort
    with open(os.path.join(model_dir, "manifest.toml"), "rb") as f:
        man = tomllib.load(f)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(os.path.join(model_dir, man["members"][0]["file"]), so,
                                providers=["CPUExecutionProvider"])
    return man, sess


def run(sess, x4: np.ndarray, bs: int = 32) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x4[i:i + bs]})[0] for i in range(0, len(x4), bs)])


def occlusion_map(sess, x3: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """x3: step-3 image [224, 224]; returns (map [224, 224] of score drops, unmasked score)."""
    size = x3.shape[0]
    pos = list(range(0, size - PATCH + 1, STRIDE))
    masked = []
    for y in pos:
        for x in pos:
            m = x3.copy()
            m[y:y + PATCH, x:x + PATCH] = 0.0
            masked.append(P.step4(m))
    base = float(run(sess, P.step4(x3)[None])[0, k])
    scores = run(sess, np.stack(masked))[:, k]
    acc = np.zeros((size, size), np.float32)
    cnt = np.zeros((size, size), np.float32)
    i = 0
    for y in pos:
        for x in pos:
            acc[y:y + PATCH, x:x + PATCH] += base - scores[i]
            cnt[y:y + PATCH, x:x + PATCH] += 1
            i += 1
    return acc / np.maximum(cnt, 1), base


def pick(rows, probs, th, per_class_right=2):
    """Per class: the `per_class_right` most confident right labels, and one failure (an image of
    the class not labelled so, or an image wrongly labelled as the class), if any."""
    truth = M.truth_index([r["class"] for r in rows])
    pred = M.decide(probs, th)
    out = []
    for k, c in enumerate(D.CLASSES):
        right = np.flatnonzero((truth == k) & (pred == k))
        right = right[np.argsort(-probs[right, k])][:per_class_right]
        out += [(i, k, "right") for i in right]
        missed = np.flatnonzero((truth == k) & (pred != k))
        false = np.flatnonzero((truth != k) & (pred == k))
        if len(missed):
            out.append((missed[0], k, "missed"))
        elif len(false):
            out.append((false[0], k, "wrongly " + c))
    return out


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default=os.path.join(here, "..", "bodypart"))
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    man, sess = session(a.model)
    th = [c["threshold"] for c in man["classes"]]
    rows = [r for r in D.read_splits_tsv(os.path.join(a.model, "splits.tsv")) if r["split"] == "test"]
    x3 = np.stack([P.preprocess_file(os.path.join(a.data, r["path"])) for r in rows])
    probs = run(sess, np.stack([P.step4(v) for v in x3]))
    chosen = pick(rows, probs, th)
    ncol = 6
    nrow = (len(chosen) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.9 * nrow))
    axes = np.asarray(axes).ravel()
    for ax in axes:
        ax.axis("off")
    names = D.CLASSES + ["(abstain)"]
    for ax, (i, k, kind) in zip(axes, chosen):
        heat, base = occlusion_map(sess, x3[i], k)
        pred = M.decide(probs[i:i + 1], th)[0]
        ax.imshow(x3[i], cmap="gray", vmin=0, vmax=1)
        lim = max(0.05, float(np.abs(heat).max()))
        ax.imshow(heat, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.45)
        ax.set_title(f"{rows[i]['class']}/{rows[i]['detail'] or rows[i]['source']}: {kind}\n"
                     f"→ {names[pred]}; map of {D.CLASSES[k]} {base:.2f}", fontsize=7)
    fig.suptitle(f"{man['name']} {man['version']}: occlusion sensitivity (patch {PATCH}, stride {STRIDE}, "
                 "mask 0; red = score drops when masked), held-out test images", fontsize=9)
    fig.tight_layout()
    out = a.out or os.path.join(a.model, "occlusion_grid.png")
    fig.savefig(out, dpi=72)
    print("wrote", out, len(chosen), "maps")


if __name__ == "__main__":
    main()
