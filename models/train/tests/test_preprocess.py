"""radroute-v1 preprocessing (docs/preprocessing.md). numpy + Pillow only."""
import os

import numpy as np
import pytest
from PIL import Image

import preprocess as P
from conftest import DATA, FIXTURES


@pytest.mark.parametrize("h,w,exp", [(512, 380, (224, 166)), (420, 512, (184, 224)), (224, 224, (224, 224)),
                                     (1000, 1, (224, 1)), (3, 1000, (1, 224))])
def test_resized_shape(h, w, exp):
    assert P.resized_shape(h, w) == exp


def test_step2_percentiles_and_flat():
    x = np.linspace(0, 1, 10001, dtype=np.float32).reshape(1, -1)
    y = P.step2(x)
    lo, hi = np.percentile(x, [1, 99])
    assert np.allclose(y, np.clip((x - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert y.min() == 0 and y.max() == 1
    assert not P.step2(np.full((5, 7), 0.3, np.float32)).any()


def test_pad_centres_with_integer_division():
    x = np.ones((224, 165), np.float32)
    y = P.step3(x)
    left = (224 - 165) // 2
    assert y.shape == (224, 224)
    assert y[:, :left].sum() == 0 and y[:, left:left + 165].all() and y[:, left + 165:].sum() == 0


def test_step4_normalisation():
    y = P.step4(np.zeros((224, 224), np.float32))
    assert y.shape == (3, 224, 224) and y.dtype == np.float32
    assert np.allclose(y[:, 0, 0], -P.MEAN / P.STD)


def test_resize_is_pillow_bilinear_on_float():
    rng = np.random.default_rng(0)
    x = rng.random((300, 200)).astype(np.float32)
    ref = np.asarray(Image.fromarray(x).resize((149, 224), Image.BILINEAR))
    assert np.array_equal(P.step1(x), ref)


def test_load_step0_modes(tmp_path):
    g = np.array([[0, 128, 255]], np.uint8)
    Image.fromarray(g).save(tmp_path / "g.png")
    assert np.allclose(P.load_step0(tmp_path / "g.png"), g / 255.0)
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert np.allclose(P.load_step0(tmp_path / "c.png"), [[0.299, 0.587, 0.114]], atol=1e-6)
    Image.fromarray(np.dstack([rgb, np.full((1, 3), 7, np.uint8)])).save(tmp_path / "a.png")
    assert np.allclose(P.load_step0(tmp_path / "a.png"), [[0.299, 0.587, 0.114]], atol=1e-6)
    g16 = np.array([[0, 1000, 65535]], np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    assert np.allclose(P.load_step0(tmp_path / "g16.png"), g16 / 65535.0)


def _golden():
    idx = os.path.join(FIXTURES, "index.tsv")
    if not os.path.exists(idx):
        return []
    return [line.split("\t")[:2] for line in open(idx).read().splitlines() if line and not line.startswith("stem\t")]


@pytest.mark.skipif(not os.path.isdir(DATA), reason="radiographs folder not present")
@pytest.mark.parametrize("stem,path", _golden())
def test_golden_tensors_match_training_preprocessing(stem, path):
    g = np.load(os.path.join(FIXTURES, stem + ".npy"))
    assert g.shape == (224, 224) and g.dtype == np.float32
    assert np.array_equal(P.preprocess_file(os.path.join(DATA, path)), g)
