"""The previous release against the new one on the same images: the five 1.x classes, on the
images that are held out (test) in BOTH releases' splits, each model at its own thresholds.

    python models/train/compare_previous.py --prev-dir /tmp/v110 --data ../shared/data/radiographs

PREV_DIR holds the previous release's manifest.toml, bodypart.onnx and splits.tsv (e.g. from
`git show <commit>:models/bodypart/...`). Prints JSON and adds it to models/bodypart/metrics.json
under `previous_release` (numpy, onnxruntime; no torch).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402
import metrics as M  # noqa: E402
import preprocess as P  # noqa: E402


def load(model_dir):
    import onnxruntime as ort
    with open(os.path.join(model_dir, "manifest.toml"), "rb") as f:
        man = tomllib.load(f)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(os.path.join(model_dir, man["members"][0]["file"]), so,
                                providers=["CPUExecutionProvider"])
    return man, sess


def predict(sess, x, bs=32):
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + bs]})[0] for i in range(0, len(x), bs)])


def five_metrics(probs, classes, thresholds, truth_names):
    """Five 1.x classes only: AUC per class, top-1 among the model's own heads, abstained."""
    idx = [classes.index(c) for c in D.ORIGINAL_CLASSES]
    truth = np.array([D.ORIGINAL_CLASSES.index(t) for t in truth_names])
    top = probs.argmax(1)
    top_name = np.array([classes[k] for k in top])
    clears = probs[np.arange(len(probs)), top] >= np.asarray(thresholds)[top]
    out = {"n": int(len(truth)),
           "top1": float((top_name == np.array(truth_names)).mean()),
           "correct_with_abstention": float(((top_name == np.array(truth_names)) & clears).mean()),
           "abstained": float((~clears).mean())}
    for k, c in enumerate(D.ORIGINAL_CLASSES):
        y = (truth == k).astype(int)
        out[f"auc_{c}"] = M.roc_auc_score(y, probs[:, idx[k]]) if 0 < y.sum() < len(y) else None
    return out


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prev-dir", required=True)
    ap.add_argument("--new-dir", default=os.path.join(here, "..", "bodypart"))
    ap.add_argument("--data", required=True)
    a = ap.parse_args(argv)
    prev_split = {r["path"]: r["split"] for r in D.read_splits_tsv(os.path.join(a.prev_dir, "splits.tsv"))}
    new_rows = D.read_splits_tsv(os.path.join(a.new_dir, "splits.tsv"))
    both = [r for r in new_rows if r["split"] == "test" and prev_split.get(r["path"]) == "test"
            and r["class"] in D.ORIGINAL_CLASSES]
    x = np.stack([P.model_input(os.path.join(a.data, r["path"])) for r in both])
    truth = [r["class"] for r in both]
    res = {"images": "five 1.x classes, test in both releases' splits", "n": len(both)}
    for name, d in (("previous", a.prev_dir), ("new", a.new_dir)):
        man, sess = load(d)
        classes = [c["name"] for c in man["classes"]]
        th = [c["threshold"] for c in man["classes"]]
        res[name] = {"version": man["version"], **five_metrics(predict(sess, x), classes, th, truth)}
    print(json.dumps(res, indent=1))
    mpath = os.path.join(a.new_dir, "metrics.json")
    m = json.load(open(mpath))
    m["previous_release"] = res
    with open(mpath, "w") as f:
        json.dump(m, f, indent=1)


if __name__ == "__main__":
    main()
