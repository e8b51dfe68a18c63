"""Print the model card's metric tables (markdown) from models/bodypart/metrics.json.

    python models/train/card_tables.py models/bodypart/metrics.json
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402

# issue 12 targets on the patient-wise test split
TARGETS = {"auc_five": 0.995, "top1_five": 0.98, "recall_new": 0.95, "precision_new": 0.97,
           "other_abstained": 0.90, "class_abstained_max": 0.03, "correction_wrong_max": 0.005}


def f(v, pct=False):
    if v is None or v != v:  # None or nan
        return "–"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def ci(r, k, pct=False):
    lo, hi = r["ci95"].get(k, [None, None])
    return f"{f(r['point'][k], pct)} [{f(lo, pct)}, {f(hi, pct)}]"


def met(v, target, higher=True):
    if v is None or v != v:
        return "–"
    return "yes" if (v >= target if higher else v <= target) else "**no**"


def main(path):
    m = json.load(open(path))
    ship = m["shipped"]
    t = ship["test"]
    classes = ship.get("classes", D.CLASSES)
    print(f"Per class, test split, shipped model (ONNX Runtime), threshold {ship['threshold']:.2f}; "
          "95% patient-bootstrap intervals in brackets:\n")
    print("| class | test images (patients) | AUC | recall (labelled right) | precision | target | met |")
    print("|---|---|---|---|---|---|---|")
    for c in classes:
        n, npat = t["n_per_class"][c], t["patients_per_class"][c]
        if c in D.ORIGINAL_CLASSES:
            target, ok = f"AUC ≥ {TARGETS['auc_five']}", met(t["point"][f"auc_{c}"], TARGETS["auc_five"])
        else:
            target = f"recall ≥ {TARGETS['recall_new']:.0%}, precision ≥ {TARGETS['precision_new']:.0%}"
            ok = "yes" if (met(t["point"][f"recall_{c}"], TARGETS["recall_new"]) == "yes"
                           and met(t["point"][f"precision_{c}"], TARGETS["precision_new"]) == "yes") else "**no**"
        print(f"| {c} | {n} ({npat}) | {ci(t, f'auc_{c}')} | {ci(t, f'recall_{c}', True)} | "
              f"{ci(t, f'precision_{c}', True)} | {target} | {ok} |")
    p = t["point"]
    print("\n| metric (test split) | value [95% CI] | target | met |")
    print("|---|---|---|---|")
    rows = [("top1_five", "top-1, five 1.x classes (among all heads, no abstention)", f"≥ {TARGETS['top1_five']:.0%}",
             met(p["top1_five"], TARGETS["top1_five"])),
            ("auc_macro_five", "macro AUC, five 1.x classes", "", ""),
            ("top1_new", "top-1, seven new classes (no abstention)", "", ""),
            ("five_abstained", "five 1.x classes abstained", "", ""),
            ("new_abstained", "new classes abstained", "", ""),
            ("class_abstained", "in-class abstention (all 12 classes)", f"≤ {TARGETS['class_abstained_max']:.0%}",
             met(p["class_abstained"], TARGETS["class_abstained_max"], higher=False)),
            ("class_wrong_label", "images of the classes labelled wrong", "", ""),
            ("other_abstained", "remaining anatomy (`other`) abstained", f"≥ {TARGETS['other_abstained']:.0%}",
             met(p["other_abstained"], TARGETS["other_abstained"])),
            ("accuracy_all", "accuracy, 13-way (abstain = other)", "", ""),
            ("correction_wrong_per_image", "wrong corrections per image (confident and wrong)",
             f"≤ {TARGETS['correction_wrong_max']:.1%}",
             met(p["correction_wrong_per_image"], TARGETS["correction_wrong_max"], higher=False)),
            ("correction_wrong_share", "wrong share among confident (correcting) labels", "", ""),
            ("correction_confident", "images confident enough to correct", "", "")]
    for k, name, target, ok in rows:
        pct = not k.startswith("auc")
        print(f"| {name} | {ci(t, k, pct)} | {target} | {ok} |")
    c = t["correction"]
    print(f"\nCorrections on the test split: {c['n_confident']} of {c['n_images']} images confident enough, "
          f"{c['n_wrong']} wrong; exact one-sided 95% upper bound of the wrong rate per image "
          f"{f(c['wrong_per_image_upper95_exact'], True)}, among corrections {f(c['wrong_share_upper95_exact'], True)}.\n")
    print("| class | correct_threshold | validation: highest score on a wrong top-1 image (n) | test confident | test wrong |")
    print("|---|---|---|---|---|")
    for cl in classes:
        v = ship["correct_threshold_val"][cl]
        print(f"| {cl} | {f(ship['correct_thresholds'][cl])} | {f(v['val_worst_wrong_score'])} ({v['val_n_wrong_top']}) | "
              f"{c['per_class_confident'][cl]} | {c['per_class_wrong'][cl]} |")
    print("\nConfusion matrix, shipped model, test split (rows true, columns predicted):\n")
    print("| true \\ predicted | " + " | ".join(classes) + " | (abstain) |")
    print("|---|" + "---|" * (len(classes) + 1))
    for name, row in zip(classes + ["other"], t["confusion"]):
        print(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    print("\nPer source, test split (correct = right label; for `other:*`: abstained):\n")
    print("| class/source | n | correct | abstained |")
    print("|---|---|---|---|")
    for g, r in t["per_source"].items():
        print(f"| {g} | {r['n']} | {f(r['correct'], True)} | {f(r['abstained'], True)} |")
    if "style_probe" in m:
        sp = m["style_probe"]
        styles = list(sp["styles"])
        print(f"\nSource-style probe (test split, {sp['n']} images re-rendered; share labelled right, "
              "for `other`: abstained):\n")
        print("| class | n | " + " | ".join(styles) + " |")
        print("|---|---|" + "---|" * len(styles))
        for cl in classes + ["other", "_new_classes", "_five_classes"]:
            if cl not in sp["styles"]["original"]:
                continue
            key = "abstained" if cl == "other" else "correct"
            n = sp["styles"]["original"][cl]["n"]
            print(f"| {cl} | {n} | " + " | ".join(f(sp["styles"][s][cl][key], True) for s in styles) + " |")
        print("\nWrong labels (not abstentions) on the new classes per look: "
              + ", ".join(f"{s} {f(sp['styles'][s]['_new_classes']['wrong_label'], True)}" for s in styles) + ".")
    if "probe" in m:
        p = m["probe"]
        print(f"\nLeave-source-out probe (mobilenet_v2, {p['epochs']} epochs, threshold {p['threshold']:.2f}), "
              f"trained without: {', '.join('/'.join(e) for e in p['excluded'])}\n")
        print("| unseen class/source | n (all splits, unseen patients) | probe top-1 | probe correct | probe abstained | "
              "probe wrong label | n test | probe correct (test) | shipped correct (test) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for g, r in p["groups"].items():
            print(f"| {g} | {r['n_unseen_source']} | {f(r['probe_top1'], True)} | {f(r['probe_correct_with_abstention'], True)} | "
                  f"{f(r['probe_abstained'], True)} | {f(r['probe_wrong_label'], True)} | {r['n_test']} | "
                  f"{f(r['probe_correct_test'], True)} | {f(r['shipped_correct_test'], True)} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "models/bodypart/metrics.json")
