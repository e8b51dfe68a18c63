"""Source-style probe: does a label survive when the image looks like it came from another source?

Every class added in 2.0.0 comes from one hospital (UNIFESP). A model can learn "UNIFESP look +
coarse shape" instead of the anatomy; then a chest film from another hospital (other detector,
contrast, framing) would be missed. No second source of these regions is available here, so the
probe re-renders the held-out test images in the looks the other sources of this pool have (and a
few a department sees): histogram-equalised (like the OAI CLAHE crops), gamma changes (other
windowing), low resolution, a tight centre crop (framing of the OAI / RSNA sets). It measures, per
class and look, the share still labelled right, abstained, and labelled wrong. numpy + Pillow.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

import data as D
import metrics as M
import preprocess as P


def _equalise(x: np.ndarray) -> np.ndarray:
    im = Image.fromarray(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8))
    return np.asarray(ImageOps.equalize(im), dtype=np.float32) / 255.0


def _low_res(x: np.ndarray, long_side: int = 160) -> np.ndarray:
    h, w = x.shape
    s = long_side / max(h, w)
    if s >= 1:
        return x
    small = P.resize_f(x, max(1, int(round(h * s))), max(1, int(round(w * s))))
    return P.resize_f(small, h, w)


def _tight_crop(x: np.ndarray, side: float = 0.6) -> np.ndarray:
    h, w = x.shape
    ch, cw = max(8, int(h * side)), max(8, int(w * side))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(x[y0:y0 + ch, x0:x0 + cw])


STYLES = {
    "original": lambda x: x,
    "equalised": _equalise,
    "gamma_0.6": lambda x: np.clip(x, 0, 1) ** 0.6,
    "gamma_1.6": lambda x: np.clip(x, 0, 1) ** 1.6,
    "low_res_160": _low_res,
    "tight_crop_60": _tight_crop,
}


def run(predict, rows, data_dir, thresholds, split="test") -> dict:
    """predict: float32 [N, 3, 224, 224] -> probabilities [N, len(CLASSES)]."""
    sel = [r for r in rows if r["split"] == split]
    truth = M.truth_index([r["label"] for r in sel])
    step0 = [P.load_step0(os.path.join(data_dir, r["path"])) for r in sel]
    out = {"split": split, "n": len(sel), "styles": {}}
    for name, f in STYLES.items():
        x = np.stack([P.step4(P.steps123(np.asarray(f(s), dtype=np.float32))) for s in step0])
        pred = M.decide(predict(x), thresholds)
        per = {}
        for k, c in enumerate(D.CLASSES + ["other"]):
            g = truth == k
            if not g.any():
                continue
            per[c] = {"n": int(g.sum()), "correct": float((pred[g] == k).mean()),
                      "abstained": float((pred[g] == M.ABSTAIN).mean()),
                      "wrong_label": float(((pred[g] != k) & (pred[g] != M.ABSTAIN)).mean())}
        new = np.isin(truth, [D.CLASSES.index(c) for c in D.NEW_CLASSES])
        five = truth < M.N_ORIGINAL
        per["_new_classes"] = {"n": int(new.sum()), "correct": float((pred[new] == truth[new]).mean()),
                               "wrong_label": float(((pred[new] != truth[new]) & (pred[new] != M.ABSTAIN)).mean())}
        per["_five_classes"] = {"n": int(five.sum()), "correct": float((pred[five] == truth[five]).mean()),
                                "wrong_label": float(((pred[five] != truth[five]) & (pred[five] != M.ABSTAIN)).mean())}
        out["styles"][name] = per
    out["summary"] = {s: {"new_correct": v["_new_classes"]["correct"], "new_wrong": v["_new_classes"]["wrong_label"],
                          "five_correct": v["_five_classes"]["correct"],
                          "other_abstained": v.get("other", {}).get("abstained")}
                      for s, v in out["styles"].items()}
    return out
