"""Manifest reading and the patient-wise, stratified, deterministic split (no torch; numpy only
where a split is made, so make_eval_dir.py runs with a bare python3)."""
from __future__ import annotations

import csv
import hashlib
import os
from collections import defaultdict

ORIGINAL_CLASSES = ["shoulder", "elbow", "hand", "pelvis", "knee"]  # 1.x classes (Yi et al. 2019)
# 2.0.0: regions taken out of the radiographs' `other` class by their `detail` (UNIFESP labels)
NEW_CLASSES = ["chest", "abdomen", "cspine", "lspine", "foot", "ankle", "wrist"]
CLASSES = ORIGINAL_CLASSES + NEW_CLASSES  # model outputs, in this order
ALL_CLASSES = CLASSES + ["other"]  # `other`: remaining anatomy, must be abstained
MANIFEST_CLASSES = ORIGINAL_CLASSES + ["other"]  # the `class` column of the radiographs' MANIFEST.tsv


def label_of(row: dict) -> str:
    """The model label of a MANIFEST row (label policy: models/bodypart/MODEL_CARD.md).

    The five 1.x classes keep their folder class (UNIFESP "hand+wrist" films are HAND, "hip" views
    PELVIS); an `other` image becomes a new class when its `detail` names one (a dedicated wrist view
    is WRIST); everything else (t-spine, skull, sinus, finger, ...) stays `other`.
    """
    if row["class"] in ORIGINAL_CLASSES:
        return row["class"]
    detail = row.get("detail", "")
    return detail if detail in NEW_CLASSES else "other"
FRACTIONS = (0.64, 0.12, 0.24)  # train / validation / test, as in Yi et al. 2019


def read_manifest(root: str) -> list[dict]:
    with open(os.path.join(root, "MANIFEST.tsv"), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for r in rows:
        assert r["class"] in MANIFEST_CLASSES, r["class"]
        r["label"] = label_of(r)
    return rows


def _patient_stratum(rows_of_patient: list[dict]) -> str:
    # A patient with several images is stratified by its rarest (class, source) pair, so that thin
    # classes such as elbow get patients in every split.
    keys = sorted({(r.get("label", r["class"]), r["source"]) for r in rows_of_patient})
    return "|".join(keys[0])


def split_counts(n: int, fractions=FRACTIONS) -> tuple[int, int, int]:
    """Patients per split for a stratum of n patients; val and test get >= 1 when n >= 3."""
    n_val = int(round(n * fractions[1]))
    n_test = int(round(n * fractions[2]))
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    n_train = n - n_val - n_test
    if n_train < 1 and n >= 1:
        n_train, n_test = 1, max(0, n - 1 - n_val)
    return n_train, n_val, n_test


def make_split(rows: list[dict], seed: int = 20190509, fractions=FRACTIONS) -> dict[str, str]:
    """patient -> 'train' | 'val' | 'test'. Patient-disjoint by construction, stratified by the
    patient's (class, source) stratum, deterministic for a seed (independent of row order)."""
    import numpy as np

    by_patient = defaultdict(list)
    for r in rows:
        by_patient[r["patient"]].append(r)
    # rarity of each (class, source) pair decides the stratum of multi-image patients
    pair_n = defaultdict(int)
    for r in rows:
        pair_n[(r.get("label", r["class"]), r["source"])] += 1
    strata = defaultdict(list)
    for p, rs in by_patient.items():
        keys = sorted({(r.get("label", r["class"]), r["source"]) for r in rs}, key=lambda k: (pair_n[k], k))
        strata["|".join(keys[0])].append(p)
    out = {}
    for name in sorted(strata):
        pats = sorted(strata[name])
        h = int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(h)
        rng.shuffle(pats)
        n_tr, n_va, n_te = split_counts(len(pats), fractions)
        for i, p in enumerate(pats):
            out[p] = "train" if i < n_tr else ("val" if i < n_tr + n_va else "test")
    return out


def assign(rows: list[dict], seed: int = 20190509) -> list[dict]:
    sp = make_split(rows, seed)
    return [dict(r, split=sp[r["patient"]]) for r in rows]


def write_splits_tsv(rows: list[dict], path: str) -> None:
    """`class` is the model label (label_of); `detail` the radiographs' finer label."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["path", "class", "detail", "source", "patient", "split"])
        for r in sorted(rows, key=lambda r: r["path"]):
            w.writerow([r["path"], r["label"], r.get("detail", ""), r["source"], r["patient"], r["split"]])


def read_splits_tsv(path: str) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def sampling_weights(rows: list[dict], unifesp_share: float | None = None) -> np.ndarray:
    """Source- and class-balanced sampling weights for the training rows.

    Class mass ~ sqrt(n_class) (rare classes up-weighted, not to parity); inside a class each source
    gets mass ~ sqrt(n_source), so a minority source (e.g. UNIFESP hands next to 250 RSNA hands) is
    drawn far more often than its share, without letting 4 DDH images make up half of pelvis.
    """
    import numpy as np

    n_c = defaultdict(int)
    n_cs = defaultdict(int)
    for r in rows:
        n_c[r.get("label", r["class"])] += 1
        n_cs[(r.get("label", r["class"]), r["source"])] += 1
    cls_mass = {c: np.sqrt(n) for c, n in n_c.items()}
    z = sum(cls_mass.values())
    w = np.empty(len(rows))
    for i, r in enumerate(rows):
        c, s = r.get("label", r["class"]), r["source"]
        src_z = sum(np.sqrt(n) for (cc, _), n in n_cs.items() if cc == c)
        share = np.sqrt(n_cs[(c, s)]) / src_z
        others = [(cc, ss) for (cc, ss) in n_cs if cc == c and ss != "unifesp"]
        u_sqrt = np.sqrt(n_cs.get((c, "unifesp"), 0)) / src_z
        if unifesp_share is not None and n_cs.get((c, "unifesp")) and others and u_sqrt < unifesp_share:
            # UNIFESP positives weigh as much as (share) the other sources of the class together,
            # so that within the one hospital that also supplies `other`, anatomy must decide
            oz = sum(np.sqrt(n_cs[k]) for k in others)
            share = unifesp_share if s == "unifesp" else (1 - unifesp_share) * np.sqrt(n_cs[(c, s)]) / oz
        w[i] = cls_mass[c] / z * share / n_cs[(c, s)]
    return w / w.sum()
