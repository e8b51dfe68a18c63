"""Print the model card's metric tables (markdown) from models/bodypart/metrics.json.

    python models/train/card_tables.py models/bodypart/metrics.json
"""
import json
import sys

CLASSES = ["shoulder", "elbow", "hand", "pelvis", "knee"]


def f(v, pct=False):
    if v is None:
        return "–"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def ci(r, k, pct=False):
    lo, hi = r["ci95"][k]
    return f"{f(r['point'][k], pct)} [{f(lo, pct)}, {f(hi, pct)}]"


def main(path):
    m = json.load(open(path))
    ship = m["shipped"]
    evals = [(f"**{m['shipped_arch']}** (shipped, ONNX Runtime)", ship["test"], ship["threshold"])]
    evals += [(f"{a} (PyTorch)", r["test"], r["threshold"]) for a, r in m["archs"].items()]
    print("| metric (test split) | " + " | ".join(e[0] for e in evals) + " |")
    print("|---|" + "---|" * len(evals))
    for k in [f"auc_{c}" for c in CLASSES] + ["auc_macro"]:
        print(f"| AUC {k[4:]} | " + " | ".join(ci(e[1], k) for e in evals) + " |")
    for k, name in [("top1_five", "top-1 accuracy, five classes (no abstention)"),
                    ("correct_five_with_abstention", "five classes labelled correctly (with abstention)"),
                    ("five_abstained", "five classes abstained"), ("five_wrong_label", "five classes wrong label"),
                    ("other_abstained", "`other` abstained"), ("accuracy_6way", "accuracy, 6-way (abstain = other)")]:
        print(f"| {name} | " + " | ".join(ci(e[1], k, True) for e in evals) + " |")
    print("| threshold (chosen on validation) | " + " | ".join(f"{e[2]:.2f}" for e in evals) + " |")
    print()
    print("Confusion matrix, shipped model, test split (rows true, columns predicted):\n")
    print("| true \\ predicted | " + " | ".join(CLASSES) + " | (abstain) |")
    print("|---|" + "---|" * 6)
    for name, row in zip(CLASSES + ["other"], ship["test"]["confusion"]):
        print(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    print()
    print("Per source, test split (correct = right label; for `other`: abstained):\n")
    print("| class/source | n | " + " | ".join(f"{e[0]} correct" for e in evals) + " | shipped abstained |")
    print("|---|---|" + "---|" * (len(evals) + 1))
    for g, r in ship["test"]["per_source"].items():
        print(f"| {g} | {r['n']} | " + " | ".join(f(e[1]["per_source"][g]["correct"], True) for e in evals)
              + f" | {f(r['abstained'], True)} |")
    if "probe" in m:
        p = m["probe"]
        print(f"\nSource-shortcut probe (mobilenet_v2, {p['epochs']} epochs, threshold {p['threshold']:.2f}), "
              f"trained without: {', '.join('/'.join(e) for e in p['excluded'])}\n")
        print("| unseen class/source | n (all splits, unseen patients) | probe top-1 | probe correct | probe abstained | "
              "probe wrong label | n test | probe correct (test) | shipped correct (test) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for g, r in p["groups"].items():
            print(f"| {g} | {r['n_unseen_source']} | {f(r['probe_top1'], True)} | {f(r['probe_correct_with_abstention'], True)} | "
                  f"{f(r['probe_abstained'], True)} | {f(r['probe_wrong_label'], True)} | {r['n_test']} | "
                  f"{f(r['probe_correct_test'], True)} | {f(r['shipped_correct_test'], True)} |")
        q = p["in_source_test"]
        print(f"\nProbe on the sources it was trained on (test split): macro AUC {f(q['auc_macro'])}, "
              f"top-1 {f(q['top1_five'], True)}, five abstained {f(q['five_abstained'], True)}, "
              f"other abstained {f(q['other_abstained'], True)}.")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "models/bodypart/metrics.json")
