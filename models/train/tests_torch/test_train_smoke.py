"""Torch-dependent tests: run with the training venv (see models/train/README.md), not in CI.

    python -m pytest models/train/tests_torch
"""
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
DATA = os.environ.get("RADIOGRAPHS", os.path.join(HERE, "..", "..", "..", "..", "shared", "data", "radiographs"))

torch = pytest.importorskip("torch", reason="torch-dependent tests need the training venv")
import data as D  # noqa: E402


@pytest.mark.parametrize("arch", ["mobilenet_v2", "resnet18"])
def test_net_shapes_and_export_parity(arch, tmp_path):
    import export as E
    from train import BodyPartNet
    torch.manual_seed(0)
    net = BodyPartNet(arch, pretrained=(arch == "mobilenet_v2")).eval()
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        p = torch.sigmoid(net(x)).numpy()
    K = len(D.CLASSES)
    assert p.shape == (3, K)
    path = str(tmp_path / "m.onnx")
    E.export_onnx(net, path)
    sess = E.ort_session(path)
    q = E.ort_predict(sess, x.numpy())
    assert q.shape == (3, K) and np.abs(p - q).max() < 1e-4
    assert E.ort_predict(sess, x.numpy()[:1]).shape == (1, K)


def test_mobilenet_weights_checksum():
    import train
    assert os.path.exists(train.find_mobilenet_weights())


@pytest.mark.skipif(not os.path.isdir(DATA), reason="radiographs folder not present")
def test_training_smoke(tmp_path):
    import train
    train.main(["--data", DATA, "--arch", "mobilenet_v2", "--out", str(tmp_path / "run"), "--epochs", "1",
                "--max-steps", "2", "--limit", "48", "--batch", "8", "--cache-dir", str(tmp_path / "cache")])
    z = np.load(tmp_path / "run" / "probs.npz")
    assert z["probs"].shape == (48, len(D.CLASSES)) and (z["probs"] >= 0).all() and (z["probs"] <= 1).all()
