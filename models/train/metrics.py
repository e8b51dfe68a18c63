"""Evaluation metrics (numpy only): AUC, top-1, abstention, patient bootstrap CIs."""
from __future__ import annotations

import numpy as np

from data import CLASSES, ORIGINAL_CLASSES


def rankdata(s) -> np.ndarray:
    """Ranks 1..n, ties get their average rank (as scipy.stats.rankdata)."""
    _, inv, counts = np.unique(np.asarray(s), return_inverse=True, return_counts=True)
    end = np.cumsum(counts)
    return (end - (counts - 1) / 2.0)[inv.ravel()]


def roc_auc_score(y, s) -> float:
    """Mann-Whitney AUC with average ranks for ties (= sklearn's roc_auc_score, faster)."""
    y = np.asarray(y).astype(bool)
    n1, n0 = y.sum(), (~y).sum()
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))

ABSTAIN = len(CLASSES)  # predicted index for "none of the classes"
N_ORIGINAL = len(ORIGINAL_CLASSES)  # the 1.x classes come first in CLASSES


def truth_index(classes) -> np.ndarray:
    return np.array([CLASSES.index(c) if c in CLASSES else ABSTAIN for c in classes])


def decide(p: np.ndarray, thresholds) -> np.ndarray:
    """radroute's rule: top class if its score clears its own threshold, else abstain."""
    top = p.argmax(1)
    th = np.asarray(thresholds)[top]
    return np.where(p[np.arange(len(p)), top] >= th, top, ABSTAIN)


def _share(num, den) -> float:
    return float(num / den) if den else float("nan")


def point_metrics(p, truth, thresholds, correct_thresholds=None) -> dict:
    """Per-class AUC, recall and precision (with abstention), abstention of `other` and of the
    classes, top-1; with `correct_thresholds` also the header-correction error rates."""
    pred = decide(p, thresholds)
    labelled = truth < ABSTAIN
    five = truth < N_ORIGINAL
    new = labelled & ~five
    m = {}
    for k, c in enumerate(CLASSES):
        y = (truth == k).astype(int)
        m[f"auc_{c}"] = float(roc_auc_score(y, p[:, k])) if 0 < y.sum() < len(y) else float("nan")
    for k, c in enumerate(CLASSES):
        m[f"recall_{c}"] = _share(((pred == k) & (truth == k)).sum(), (truth == k).sum())
        m[f"precision_{c}"] = _share(((pred == k) & (truth == k)).sum(), (pred == k).sum())
    m["auc_macro"] = float(np.nanmean([m[f"auc_{c}"] for c in CLASSES]))
    m["auc_macro_five"] = float(np.nanmean([m[f"auc_{c}"] for c in ORIGINAL_CLASSES]))
    # top-1 of the five 1.x classes among all heads (a five image called `chest` is a miss)
    m["top1_five"] = _share((p[five].argmax(1) == truth[five]).sum(), five.sum())
    m["top1_new"] = _share((p[new].argmax(1) == truth[new]).sum(), new.sum())
    m["top1_classes"] = _share((p[labelled].argmax(1) == truth[labelled]).sum(), labelled.sum())
    m["correct_five_with_abstention"] = _share((pred[five] == truth[five]).sum(), five.sum())
    m["five_abstained"] = _share((pred[five] == ABSTAIN).sum(), five.sum())
    m["five_wrong_label"] = _share(((pred[five] != ABSTAIN) & (pred[five] != truth[five])).sum(), five.sum())
    m["new_abstained"] = _share((pred[new] == ABSTAIN).sum(), new.sum())
    m["class_abstained"] = _share((pred[labelled] == ABSTAIN).sum(), labelled.sum())
    m["class_wrong_label"] = _share(((pred[labelled] != ABSTAIN) & (pred[labelled] != truth[labelled])).sum(),
                                    labelled.sum())
    m["other_abstained"] = _share((pred[~labelled] == ABSTAIN).sum(), (~labelled).sum())
    m["accuracy_all"] = float((pred == truth).mean())
    if correct_thresholds is not None:
        conf = decide(p, correct_thresholds)
        confident = conf != ABSTAIN
        wrong = confident & (conf != truth)
        # an image whose header is right is overwritten wrongly only if the model is confident and wrong
        m["correction_wrong_per_image"] = float(wrong.mean())
        m["correction_wrong_share"] = _share(wrong.sum(), confident.sum())
        m["correction_confident"] = float(confident.mean())
    return m


def bootstrap(p, truth, patients, thresholds, n=2000, seed=0, correct_thresholds=None) -> dict:
    """95% percentile intervals, resampling patients (cluster bootstrap) with replacement."""
    rng = np.random.default_rng(seed)
    pats = np.unique(patients)
    idx_of = {q: np.flatnonzero(patients == q) for q in pats}
    samples = []
    for _ in range(n):
        pick = rng.choice(pats, size=len(pats), replace=True)
        ii = np.concatenate([idx_of[q] for q in pick])
        samples.append(point_metrics(p[ii], truth[ii], thresholds, correct_thresholds))
    out = {}
    for k in samples[0]:
        v = np.array([s[k] for s in samples], dtype=float)
        v = v[~np.isnan(v)]
        out[k] = [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if len(v) else [None, None]
    return out


def confusion(p, truth, thresholds) -> np.ndarray:
    pred = decide(p, thresholds)
    cm = np.zeros((ABSTAIN + 1, ABSTAIN + 1), int)
    for t, q in zip(truth, pred):
        cm[t, q] += 1
    return cm


def choose_threshold(p, truth, max_five_abstain=0.02, grid=None):
    """One threshold for all classes, chosen on validation data: the largest share of `other`
    abstained subject to at most `max_five_abstain` of the images of the classes abstained; among
    the thresholds that reach it, the middle one (margin on both sides)."""
    grid = np.round(np.arange(0.10, 0.96, 0.01), 2) if grid is None else grid
    rows = []
    for t in grid:
        m = point_metrics(p, truth, [t] * len(CLASSES))
        rows.append((t, m["other_abstained"], m["class_abstained"]))
    ok = [r for r in rows if r[2] <= max_five_abstain] or [min(rows, key=lambda r: r[2])]
    best = max(r[1] for r in ok)
    ties = [r[0] for r in ok if r[1] == best]
    return float(ties[len(ties) // 2]), rows


def choose_correct_thresholds(p, truth, label_threshold, floor=0.90, margin=0.02, max_t=0.995):
    """Per-class minimum score to REPLACE a differing Body Part Examined, chosen on validation data.

    For class k: above every validation score of k on an image whose top class is k but whose truth
    is not k (an image that would be corrected to k wrongly), plus `margin`, and at least `floor`
    (and the label threshold). So the validation split has no wrong correction at all; a class
    whose wrong scores reach `max_t` gets None (never corrected). Returns ([t or None], details).
    """
    out, det = [], {}
    top = p.argmax(1)
    for k, c in enumerate(CLASSES):
        wrong = p[(top == k) & (truth != k), k]
        worst = float(wrong.max()) if len(wrong) else 0.0
        t = max(floor, label_threshold, np.ceil((worst + margin) * 100) / 100)
        t = None if t > max_t else float(round(t, 2))
        right = p[(top == k) & (truth == k), k]
        det[c] = {"val_worst_wrong_score": worst, "val_n_wrong_top": int(len(wrong)),
                  "threshold": t, "val_recall_at_threshold": _share((right >= (t or 2)).sum(), (truth == k).sum())}
        out.append(t)
    return out, det


def rule_of_three_upper(n_events: int, n: int) -> float | None:
    """One-sided 95% upper bound of a rate with n_events in n trials (exact Clopper-Pearson; for 0
    events about 3/n), used where a bootstrap interval of a zero count collapses to [0, 0]."""
    if n == 0:
        return None
    if n_events >= n:
        return 1.0
    lo, hi = n_events / n, 1.0
    from math import comb
    def cdf(q):  # P(X <= n_events) for rate q
        return sum(comb(n, i) * q ** i * (1 - q) ** (n - i) for i in range(n_events + 1))
    for _ in range(60):
        mid = (lo + hi) / 2
        if cdf(mid) > 0.05:
            lo = mid
        else:
            hi = mid
    return float(hi)
