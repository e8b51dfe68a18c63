"""Patient-wise split: disjoint, stratified, deterministic. numpy only."""
import collections
import os

import numpy as np
import pytest

import data as D
from conftest import DATA, MODEL_DIR


def synthetic_rows(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for c, s, n_pat in [("hand", "a", 100), ("hand", "b", 20), ("elbow", "b", 10), ("other", "b", 60)]:
        for p in range(n_pat):
            for k in range(rng.integers(1, 4)):
                rows.append({"path": f"{c}/{s}/{p}_{k}.png", "class": c, "source": s, "patient": f"{s}:{c}{p}"})
    # a patient with images of two classes
    rows.append({"path": "other/b/x.png", "class": "other", "source": "b", "patient": "b:elbow0"})
    return rows


def test_patient_disjoint_and_complete():
    rows = D.assign(synthetic_rows())
    by_p = collections.defaultdict(set)
    for r in rows:
        by_p[r["patient"]].add(r["split"])
    assert all(len(s) == 1 for s in by_p.values())
    assert {r["split"] for r in rows} == {"train", "val", "test"}


def test_deterministic_and_order_independent():
    rows = synthetic_rows()
    a = D.make_split(rows, seed=7)
    b = D.make_split(list(reversed(rows)), seed=7)
    assert a == b
    assert D.make_split(rows, seed=8) != a


def test_stratified_fractions():
    rows = synthetic_rows()
    sp = D.make_split(rows, seed=1)
    strata = collections.defaultdict(collections.Counter)
    for r in rows:
        strata[(r["class"], r["source"])][sp[r["patient"]]] += 0  # ensure keys
    pats = collections.defaultdict(set)
    for r in rows:
        pats[(r["class"], r["source"])].add(r["patient"])
    for key, ps in pats.items():
        c = collections.Counter(sp[p] for p in ps)
        n = len(ps)
        # every stratum with >= 3 patients has val and test patients, roughly 64/12/24
        assert c["val"] >= 1 and c["test"] >= 1, key
        assert abs(c["train"] / n - 0.64) < 0.12, (key, c)


def test_split_counts_small():
    assert D.split_counts(10) == (7, 1, 2)
    assert D.split_counts(3) == (1, 1, 1)
    assert sum(D.split_counts(250)) == 250


def test_sampling_weights_balance_sources():
    rows = [{"class": "hand", "source": "a"}] * 90 + [{"class": "hand", "source": "b"}] * 10 + \
        [{"class": "other", "source": "b"}] * 100
    w = D.sampling_weights(rows)
    assert np.isclose(w.sum(), 1)
    share_b = w[90:100].sum() / w[:100].sum()
    assert 0.2 < share_b < 0.5  # sqrt balancing: 10 of 100 images get ~25% of the class mass


def test_sampling_weights_unifesp_share():
    rows = [{"class": "hand", "source": "rsna"}] * 90 + [{"class": "hand", "source": "unifesp"}] * 10 + \
        [{"class": "pelvis", "source": "unifesp"}] * 40 + [{"class": "pelvis", "source": "ddh"}] * 4 + \
        [{"class": "other", "source": "unifesp"}] * 100
    w0, w = D.sampling_weights(rows), D.sampling_weights(rows, unifesp_share=0.5)
    assert np.isclose(w.sum(), 1)
    assert np.isclose(w[90:100].sum() / w[:100].sum(), 0.5)  # UNIFESP = all other sources together
    assert np.isclose(w[:100].sum(), w0[:100].sum())  # class masses unchanged
    assert np.allclose(w[100:], w0[100:])  # UNIFESP already the majority of pelvis: unchanged


@pytest.mark.skipif(not os.path.exists(os.path.join(MODEL_DIR, "splits.tsv")), reason="no shipped model")
def test_shipped_split_file_is_patient_disjoint_and_reproducible():
    rows = D.read_splits_tsv(os.path.join(MODEL_DIR, "splits.tsv"))
    by_p = collections.defaultdict(set)
    for r in rows:
        by_p[r["patient"]].add(r["split"])
    assert all(len(s) == 1 for s in by_p.values())
    if os.path.exists(os.path.join(DATA, "MANIFEST.tsv")):
        again = {r["path"]: r["split"] for r in D.assign(D.read_manifest(DATA))}
        assert {r["path"]: r["split"] for r in rows} == again


def test_auc_matches_mann_whitney_with_ties():
    import metrics as M
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200), 1)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    ref = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert abs(M.roc_auc_score(y, s) - ref) < 1e-12


def test_label_policy():
    """Where regions touch (MODEL_CARD.md): hand+wrist films are HAND, dedicated wrist views WRIST,
    hip views PELVIS; regions without enough data stay `other` (abstain)."""
    row = lambda c, d: {"class": c, "detail": d}  # noqa: E731
    assert D.label_of(row("hand", "hand+wrist")) == "hand"
    assert D.label_of(row("other", "wrist")) == "wrist"
    assert D.label_of(row("pelvis", "hip")) == "pelvis"
    assert D.label_of(row("other", "chest")) == "chest"
    for thin in ("tspine", "skull", "finger", "sinus", "lowerleg"):
        assert D.label_of(row("other", thin)) == "other"
    assert D.CLASSES[:5] == D.ORIGINAL_CLASSES  # 1.x output columns keep their places
