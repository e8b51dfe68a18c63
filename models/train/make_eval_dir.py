"""Build a folder-per-class tree of symlinks to the held-out test images for `radroute eval DIR`.

    python models/train/make_eval_dir.py --data ../shared/data/radiographs --splits models/bodypart/splits.tsv /tmp/bodypart-eval
    radroute eval /tmp/bodypart-eval ...

DIR/<class>/<source>__<file> -> the original file; classes shoulder elbow hand pelvis knee other
(`other` images should be abstained). Only the rows of the chosen split (default: test).
"""
from __future__ import annotations

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data as D  # noqa: E402


def build(data_dir, splits_tsv, out_dir, split="test"):
    rows = [r for r in D.read_splits_tsv(splits_tsv) if r["split"] == split]
    counts = collections.Counter()
    for c in D.ALL_CLASSES:
        os.makedirs(os.path.join(out_dir, c), exist_ok=True)
    for r in rows:
        src = os.path.abspath(os.path.join(data_dir, r["path"]))
        if not os.path.exists(src):
            raise FileNotFoundError(src)
        dst = os.path.join(out_dir, r["class"], f"{r['source']}__{os.path.basename(r['path'])}")
        if os.path.lexists(dst):
            os.remove(dst)
        os.symlink(src, dst)
        counts[r["class"]] += 1
    return counts


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "..", "shared", "data", "radiographs"))
    ap.add_argument("--splits", default=os.path.join(here, "..", "bodypart", "splits.tsv"))
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    a = ap.parse_args(argv)
    counts = build(a.data, a.splits, a.out_dir, a.split)
    for c in D.ALL_CLASSES:
        print(f"{c}\t{counts[c]}")
    print(f"total\t{sum(counts.values())}\t-> {a.out_dir}")


if __name__ == "__main__":
    main()
