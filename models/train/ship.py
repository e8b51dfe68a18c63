"""Compare the trained backbones on the same split, pick one on validation, export it to ONNX and
write models/bodypart/ (manifest.toml, bodypart.onnx, splits.tsv, metrics.json, roc.png, confusion.png).

    python models/train/ship.py --data ../shared/data/radiographs --runs /tmp/radroute-bodypart --out models/bodypart

Also chooses the per-class correction thresholds (manifest `correct_threshold`) on validation and
runs the source-style probe (style_probe.py) on the test split.

Every number is computed on inputs that went through the exact radroute-v1 path (preprocess.py on
the original files, float32). The shipped model's numbers come from ONNX Runtime, not PyTorch.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402
import export as E  # noqa: E402
import metrics as M  # noqa: E402
import preprocess as P  # noqa: E402
import style_probe as SP  # noqa: E402
from train import BodyPartNet  # noqa: E402

log = logging.getLogger("ship")
# class -> (Body Part Examined defined term, SNOMED CT code, code meaning): PS3.16 CID 4031
CLASS_META = {
    "shoulder": ("SHOULDER", "16982005", "Shoulder region structure"),
    "elbow": ("ELBOW", "16953009", "Elbow joint structure"),
    "hand": ("HAND", "85562004", "Hand structure"),
    "pelvis": ("PELVIS", "816092008", "Pelvis structure"),
    "knee": ("KNEE", "72696002", "Knee region structure"),
    "chest": ("CHEST", "816094009", "Chest"),
    "abdomen": ("ABDOMEN", "818981001", "Abdomen"),
    "cspine": ("CSPINE", "122494005", "Cervical spine"),
    "lspine": ("LSPINE", "122496007", "Lumbar spine"),
    "foot": ("FOOT", "56459004", "Foot"),
    "ankle": ("ANKLE", "70258002", "Ankle joint"),
    "wrist": ("WRIST", "74670003", "Wrist joint"),
}


def load_net(run_dir):
    ck = torch.load(os.path.join(run_dir, "model.pt"), map_location="cpu", weights_only=False)
    net = BodyPartNet(ck["arch"], pretrained=False)
    net.load_state_dict(ck["state_dict"])
    return net.eval(), ck


@torch.no_grad()
def torch_predict(net, x1, bs=64):
    out = []
    for i in range(0, len(x1), bs):
        xb = torch.from_numpy(np.stack([P.step4(v) for v in x1[i:i + bs]]))
        out.append(torch.sigmoid(net(xb)).numpy())
    return np.concatenate(out)


def evaluate(p, rows, split, thresholds, boot=True, correct_thresholds=None):
    sel = np.array([r["split"] == split for r in rows])
    truth = M.truth_index([r["label"] for r in rows])[sel]
    pats = np.array([r["patient"] for r in rows])[sel]
    ps = p[sel]
    ct = None if correct_thresholds is None else [2.0 if t is None else t for t in correct_thresholds]
    out = {"n": int(sel.sum()), "point": M.point_metrics(ps, truth, thresholds, ct)}
    if boot:
        out["ci95"] = M.bootstrap(ps, truth, pats, thresholds, correct_thresholds=ct)
    out["n_per_class"] = {c: int((truth == k).sum()) for k, c in enumerate(D.CLASSES)}
    out["n_per_class"]["other"] = int((truth == M.ABSTAIN).sum())
    out["patients_per_class"] = {c: len(set(pats[truth == k])) for k, c in enumerate(D.CLASSES)}
    out["patients_per_class"]["other"] = len(set(pats[truth == M.ABSTAIN]))
    if ct is not None:
        conf = M.decide(ps, ct)
        n_wrong = int(((conf != M.ABSTAIN) & (conf != truth)).sum())
        out["correction"] = {"n_images": int(len(ps)), "n_confident": int((conf != M.ABSTAIN).sum()),
                             "n_wrong": n_wrong,
                             "wrong_per_image_upper95_exact": M.rule_of_three_upper(n_wrong, len(ps)),
                             "wrong_share_upper95_exact": M.rule_of_three_upper(n_wrong, int((conf != M.ABSTAIN).sum())),
                             "per_class_confident": {c: int((conf == k).sum()) for k, c in enumerate(D.CLASSES)},
                             "per_class_wrong": {c: int(((conf == k) & (truth != k)).sum()) for k, c in enumerate(D.CLASSES)}}
    out["confusion"] = M.confusion(ps, truth, thresholds).tolist()
    # per (class, source): share labelled correctly (for `other`: share abstained)
    pred = M.decide(ps, thresholds)
    groups = {}
    srcs = np.array([r["source"] for r in rows])[sel]
    cls = np.array([r["label"] if r["label"] != "other" else "other:" + r["detail"] for r in rows])[sel]
    for c, s in sorted(set(zip(cls, srcs))):
        g = (cls == c) & (srcs == s)
        t = truth[g]
        groups[f"{c}/{s}"] = {"n": int(g.sum()), "correct": float((pred[g] == t).mean()),
                              "abstained": float((pred[g] == M.ABSTAIN).mean()),
                              "top1_no_abstention": float((ps[g].argmax(1) == t).mean()) if not c.startswith("other") else None}
    out["per_source"] = groups
    return out


def roc_plot(curves, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve
    ncol = 4
    nrow = (len(D.CLASSES) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 4.0 * nrow))
    axes = np.asarray(axes).ravel()
    for ax in axes[len(D.CLASSES):]:
        ax.axis("off")
    for k, c in enumerate(D.CLASSES):
        ax = axes[k]
        for label, p, truth, style in curves:
            y = (truth == k).astype(int)
            fpr, tpr, _ = roc_curve(y, p[:, k])
            from sklearn.metrics import auc
            ax.plot(fpr, tpr, style, label=f"{label} AUC {auc(fpr, tpr):.3f}")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_title(f"{c} (n+={int((curves[0][2] == k).sum())})")
        ax.set_xlabel("false positive rate")
        if k % ncol == 0:
            ax.set_ylabel("true positive rate")
        ax.legend(loc="lower right", fontsize=8)
        ax.set_xlim(-0.01, 1)
        ax.set_ylim(0, 1.01)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def confusion_plot(cm, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cm = np.asarray(cm)
    n = len(D.CLASSES) + 1
    fig, ax = plt.subplots(figsize=(0.6 * n + 2.5, 0.55 * n + 2))
    ax.imshow(cm / np.maximum(cm.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    labs = D.CLASSES + ["other"]
    ax.set_xticks(range(n), D.CLASSES + ["(abstain)"], rotation=45, ha="right")
    ax.set_yticks(range(n), labs)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_manifest(path, name, version, onnx_file, thresholds, correct_thresholds=None):
    lines = [f'name = "{name}"', f'version = "{version}"', "", "[input]", 'name = "input"', "size = 224",
             f'preprocessing = "{P.VERSION}"', "",
             f"# one file, shared backbone, {len(D.CLASSES)} one-vs-rest sigmoid heads",
             "[[members]]", f'file = "{onnx_file}"', 'output = "probs"',
             "classes = [" + ", ".join(f'"{c}"' for c in D.CLASSES) + "]", "",
             "# threshold: label if top class and score >= threshold; correct_threshold: replace a",
             "# Body Part Examined naming another region only if score >= correct_threshold (chosen on",
             "# validation: no wrong correction there; see MODEL_CARD.md). No correct_threshold: never.", ""]
    cts = correct_thresholds or [None] * len(D.CLASSES)
    for c, t, ct in zip(D.CLASSES, thresholds, cts):
        bp, code, meaning = CLASS_META[c]
        lines += ["[[classes]]", f'name = "{c}"', f'body_part = "{bp}"', f'snomed = "{code}"',
                  f'meaning = "{meaning}"', f"threshold = {t:.2f}"]
        if ct is not None:
            lines.append(f"correct_threshold = {ct:.2f}")
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--archs", default="mobilenet_v2")
    ap.add_argument("--probe", default="probe")
    ap.add_argument("--version", default="2.0.0")
    ap.add_argument("--split-seed", type=int, default=20190509)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)
    os.makedirs(a.out, exist_ok=True)
    rows = D.assign(D.read_manifest(a.data), a.split_seed)
    D.write_splits_tsv(rows, os.path.join(a.out, "splits.tsv"))
    truth_all = M.truth_index([r["label"] for r in rows])
    is_val = np.array([r["split"] == "val" for r in rows])
    is_test = np.array([r["split"] == "test" for r in rows])
    t0 = time.time()
    x1 = np.stack([P.preprocess_file(os.path.join(a.data, r["path"])) for r in rows])
    log.info("exact preprocessing of %d images: %.0f s", len(rows), time.time() - t0)

    res = {"split_seed": a.split_seed, "split_counts": {}, "archs": {}}
    for sp in ("train", "val", "test"):
        res["split_counts"][sp] = {c: sum(r["split"] == sp and r["label"] == c for r in rows) for c in D.ALL_CLASSES}
        res["split_counts"][sp]["patients"] = len({r["patient"] for r in rows if r["split"] == sp})
    probs, nets = {}, {}
    for arch in a.archs.split(","):
        net, ck = load_net(os.path.join(a.runs, arch))
        hist = json.load(open(os.path.join(a.runs, arch, "history.json")))
        p = torch_predict(net, x1)
        probs[arch], nets[arch] = p, net
        th, _ = M.choose_threshold(p[is_val], truth_all[is_val])
        val_pm = M.point_metrics(p[is_val], truth_all[is_val], [th] * len(D.CLASSES))
        yv = np.eye(len(D.CLASSES) + 1)[truth_all[is_val]][:, :len(D.CLASSES)]
        val_bce = float(-(yv * np.log(np.clip(p[is_val], 1e-7, 1)) + (1 - yv) * np.log(np.clip(1 - p[is_val], 1e-7, 1))).mean())
        res["archs"][arch] = {"pretrained": ck["pretrained"], "train_s": hist["train_s"], "epochs": hist["epochs"],
                              "samples_seen": hist["samples_seen"], "frozen_blocks": hist["frozen_blocks"],
                              "lr": hist["lr"], "threshold": th, "val_bce": val_bce, "val": val_pm,
                              "test": evaluate(p, rows, "test", [th] * len(D.CLASSES))}
        log.info("%s: val bce %.4f threshold %.2f test %s", arch, val_bce, th, res["archs"][arch]["test"]["point"])
    best = min(res["archs"], key=lambda k: res["archs"][k]["val_bce"])
    res["shipped_arch"] = best
    res["selection_rule"] = "lowest mean binary cross-entropy of the heads on the validation split"
    name = "bodypart-" + best.replace("_", "")
    onnx_path = os.path.join(a.out, "bodypart.onnx")
    how = E.export_onnx(nets[best], onnx_path)
    sess = E.ort_session(onnx_path)
    x4 = np.stack([P.step4(v) for v in x1])
    p_ort = E.ort_predict(sess, x4)
    diff = np.abs(p_ort - probs[best])
    th, th_rows = M.choose_threshold(p_ort[is_val], truth_all[is_val])
    ths = [th] * len(D.CLASSES)
    cts, ct_detail = M.choose_correct_thresholds(p_ort[is_val], truth_all[is_val], th)
    res["shipped"] = {
        "name": name, "onnx": "bodypart.onnx", "exporter": how, "onnx_bytes": os.path.getsize(onnx_path),
        "classes": D.CLASSES,
        "threshold": th, "threshold_rule": "one threshold for all classes, chosen on validation: largest share "
        "of `other` abstained with <= 2% of the images of the classes abstained (target 3%); middle of the tied range",
        "threshold_curve_val": [{"t": float(t), "other_abstained": o, "class_abstained": f} for t, o, f in th_rows],
        "correct_thresholds": dict(zip(D.CLASSES, cts)),
        "correct_threshold_rule": "per class, on validation: above every score of the class on a validation image "
        "whose top class it is but whose truth is not (+0.02, rounded up), at least 0.90; None = never correct",
        "correct_threshold_val": ct_detail,
        "ort_vs_torch_max_abs_diff_val": float(diff[is_val].max()),
        "ort_vs_torch_max_abs_diff_all": float(diff.max()),
        "val": M.point_metrics(p_ort[is_val], truth_all[is_val], ths,
                               [2.0 if t is None else t for t in cts]),
        "test": evaluate(p_ort, rows, "test", ths, correct_thresholds=cts),
        "ort_img_per_s_batch1_2threads": E.throughput(sess, x4, 1),
        "ort_img_per_s_batch16_2threads": E.throughput(sess, x4, 16),
    }
    log.info("ORT vs torch max diff (val) %.2e; shipped test %s", res["shipped"]["ort_vs_torch_max_abs_diff_val"],
             res["shipped"]["test"]["point"])
    # dynamic batch check
    for n in (1, 3, 17):
        assert E.ort_predict(sess, x4[:n]).shape == (n, len(D.CLASSES))
    dec = M.decide(p_ort, ths)
    names = D.CLASSES + ["(abstain)"]
    res["shipped"]["test_errors"] = [
        {"path": r["path"], "true": r["label"], "detail": r["detail"], "predicted": names[dec[i]],
         "probs": [round(float(v), 4) for v in p_ort[i]]}
        for i, r in enumerate(rows) if r["split"] == "test" and dec[i] != truth_all[i]]
    write_manifest(os.path.join(a.out, "manifest.toml"), name, a.version, "bodypart.onnx", ths, cts)
    # source-style probe: the test images re-rendered in the look of other sources
    res["style_probe"] = SP.run(lambda x: E.ort_predict(sess, x), rows, a.data, ths)
    log.info("style probe %s", json.dumps(res["style_probe"]["summary"]))

    # source-shortcut probe: minority sources left out of training, evaluated as unseen sources
    probe_dir = os.path.join(a.runs, a.probe)
    if os.path.exists(os.path.join(probe_dir, "model.pt")):
        pnet, _ = load_net(probe_dir)
        ph = json.load(open(os.path.join(probe_dir, "history.json")))
        excl = {tuple(e) for e in ph["excluded"]}
        pp = torch_predict(pnet, x1)
        train_pats = {r["patient"] for r in rows if r["split"] == "train" and (r["label"], r["source"]) not in excl}
        in_val = np.array([r["split"] == "val" and (r["label"], r["source"]) not in excl for r in rows])
        pth, _ = M.choose_threshold(pp[in_val], truth_all[in_val])
        probe = {"excluded": sorted(map(list, excl)), "epochs": ph["epochs"], "train_s": ph["train_s"],
                 "threshold": pth, "groups": {}}
        for c, s in sorted(excl):
            g = np.array([(r["label"], r["source"]) == (c, s) and r["patient"] not in train_pats for r in rows])
            gt = g & is_test
            k = D.CLASSES.index(c)
            pths = [pth] * len(D.CLASSES)
            dec = M.decide(pp[g], pths)
            probe["groups"][f"{c}/{s}"] = {
                "n_unseen_source": int(g.sum()),
                "probe_top1": float((pp[g].argmax(1) == k).mean()),
                "probe_correct_with_abstention": float((dec == k).mean()),
                "probe_abstained": float((dec == M.ABSTAIN).mean()),
                "probe_wrong_label": float(((dec != k) & (dec != M.ABSTAIN)).mean()),
                "n_test": int(gt.sum()),
                "probe_correct_test": float((M.decide(pp[gt], pths) == k).mean()) if gt.any() else None,
                "shipped_correct_test": float((M.decide(p_ort[gt], ths) == k).mean()) if gt.any() else None,
            }
        ind = is_test & np.array([(r["label"], r["source"]) not in excl for r in rows])
        probe["in_source_test"] = M.point_metrics(pp[ind], truth_all[ind], [pth] * len(D.CLASSES))
        res["probe"] = probe
        log.info("probe %s", json.dumps(probe["groups"]))

    tt = truth_all[is_test]
    curves = [(f"{best} (shipped, ONNX)", p_ort[is_test], tt, "-")]
    curves += [(k, probs[k][is_test], tt, "--") for k in probs if k != best]
    roc_plot(curves, os.path.join(a.out, "roc.png"), f"Held-out test split (n={int(is_test.sum())}), one-vs-rest ROC")
    confusion_plot(res["shipped"]["test"]["confusion"], os.path.join(a.out, "confusion.png"),
                   f"{name}, test split, threshold {th:.2f}")
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump(res, f, indent=1)
    log.info("wrote %s", a.out)


if __name__ == "__main__":
    main()
