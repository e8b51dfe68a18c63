"""Evaluation metrics (numpy only): AUC, top-1, abstention, patient bootstrap CIs."""
from __future__ import annotations

import numpy as np

from data import CLASSES


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

ABSTAIN = len(CLASSES)  # predicted index for "none of the five"


def truth_index(classes) -> np.ndarray:
    return np.array([CLASSES.index(c) if c in CLASSES else ABSTAIN for c in classes])


def decide(p: np.ndarray, thresholds) -> np.ndarray:
    """radroute's rule: top class if its score clears its own threshold, else abstain."""
    top = p.argmax(1)
    th = np.asarray(thresholds)[top]
    return np.where(p[np.arange(len(p)), top] >= th, top, ABSTAIN)


def point_metrics(p, truth, thresholds) -> dict:
    pred = decide(p, thresholds)
    five = truth < ABSTAIN
    m = {}
    for k, c in enumerate(CLASSES):
        y = (truth == k).astype(int)
        m[f"auc_{c}"] = float(roc_auc_score(y, p[:, k])) if 0 < y.sum() < len(y) else float("nan")
    m["auc_macro"] = float(np.nanmean([m[f"auc_{c}"] for c in CLASSES]))
    m["top1_five"] = float((p[five].argmax(1) == truth[five]).mean())
    m["correct_five_with_abstention"] = float((pred[five] == truth[five]).mean())
    m["five_abstained"] = float((pred[five] == ABSTAIN).mean())
    m["five_wrong_label"] = float(((pred[five] != ABSTAIN) & (pred[five] != truth[five])).mean())
    m["other_abstained"] = float((pred[~five] == ABSTAIN).mean()) if (~five).any() else float("nan")
    m["accuracy_6way"] = float((pred == truth).mean())
    return m


def bootstrap(p, truth, patients, thresholds, n=2000, seed=0) -> dict:
    """95% percentile intervals, resampling patients (cluster bootstrap) with replacement."""
    rng = np.random.default_rng(seed)
    pats = np.unique(patients)
    idx_of = {q: np.flatnonzero(patients == q) for q in pats}
    samples = []
    for _ in range(n):
        pick = rng.choice(pats, size=len(pats), replace=True)
        ii = np.concatenate([idx_of[q] for q in pick])
        samples.append(point_metrics(p[ii], truth[ii], thresholds))
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
    abstained subject to at most `max_five_abstain` of the five classes abstained; among the
    thresholds that reach it, the middle one (margin on both sides)."""
    grid = np.round(np.arange(0.10, 0.96, 0.01), 2) if grid is None else grid
    rows = []
    for t in grid:
        m = point_metrics(p, truth, [t] * len(CLASSES))
        rows.append((t, m["other_abstained"], m["five_abstained"]))
    ok = [r for r in rows if r[2] <= max_five_abstain] or [min(rows, key=lambda r: r[2])]
    best = max(r[1] for r in ok)
    ties = [r[0] for r in ok if r[1] == best]
    return float(ties[len(ties) // 2]), rows
