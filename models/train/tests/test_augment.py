"""Augmentation on the step-0 image: shapes, ranges, determinism. numpy + Pillow only."""
import numpy as np

import augment as A
import preprocess as P


def img(h=400, w=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((h, w)).astype(np.float32)


def test_augment_range_and_feeds_exact_preprocessing():
    rng = np.random.default_rng(0)
    for i in range(50):
        y = A.augment(img(seed=i), rng)
        assert y.ndim == 2 and y.dtype == np.float32 and min(y.shape) >= 8
        assert np.isfinite(y).all() and y.min() >= 0 and y.max() <= 1.0 + 1e-6
        z = P.steps123(y)
        assert z.shape == (224, 224) and z.dtype == np.float32


def test_augment_deterministic_with_seed():
    x = img()
    a = [A.augment(x, np.random.default_rng(5)) for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    b = A.augment(x, np.random.default_rng(6))
    assert a[0].shape != b.shape or not np.array_equal(a[0], b)


def test_augment_varies_views():
    rng = np.random.default_rng(1)
    x = img()
    views = [P.steps123(A.augment(x, rng)) for _ in range(30)]  # the paper's 30x
    assert len({v.tobytes() for v in views}) == 30


def test_cache_step0_long_side():
    assert A.cache_step0(img(1024, 800)).shape == (512, 400)
    assert A.cache_step0(img(224, 224)).shape == (224, 224)


def test_individual_transforms_keep_range():
    rng = np.random.default_rng(2)
    x = img()
    for f in (A.random_crop, A.zoom_out, A.rotate, A.degrade_resolution, A.local_contrast, A.gamma_window,
              A.metal_blobs, A.noise):
        y = f(x, rng)
        assert y.min() >= -1e-6 and y.max() <= 1 + 1e-6, f.__name__


def test_style_augmentation_keeps_range_and_is_deterministic():
    for src in ("oai_clahe_crop", "unifesp", "rsna_boneage", "uci_implant"):
        rng = np.random.default_rng(3)
        for i in range(20):
            y = A.augment(img(224, 224, seed=i), rng, src)
            assert y.ndim == 2 and y.dtype == np.float32 and min(y.shape) >= 8 and max(y.shape) <= 560
            assert np.isfinite(y).all() and y.min() >= -1e-6 and y.max() <= 1 + 1e-6
            assert P.steps123(y).shape == (224, 224)
        a = [A.augment(img(), np.random.default_rng(9), src) for _ in range(2)]
        assert np.array_equal(a[0], a[1])
    rng = np.random.default_rng(4)
    for f in (A.film_style, A.text_marks, lambda x, _: A.quantise8(x)):
        y = f(img(), rng)
        assert y.min() >= -1e-6 and y.max() <= 1 + 1e-6
    assert max(A.film_style(img(224, 224), rng, 2.5, 3.0).shape) > 224  # a crop becomes a wider field
