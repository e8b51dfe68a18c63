"""radroute-v1 preprocessing (docs/preprocessing.md), Python side.

The Rust implementation (radroute-decode, `preprocess` module) must agree with this one; the golden
tensors in tests/fixtures/preprocess/ are written by make_golden.py from `preprocess_file`.
Dependencies: numpy and Pillow only (no torch), so CI can import it.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

VERSION = "radroute-v1"
SIZE = 224
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def load_step0(path) -> np.ndarray:
    """Step 0 for PNG/JPEG: grayscale float32 in [0, 1] (bright = dense).

    8-bit samples / 255, 16-bit / 65535; colour -> luminance 0.299 R + 0.587 G + 0.114 B in float,
    divided by the largest sample value; alpha ignored.
    """
    with Image.open(path) as im:
        im.load()
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            return (np.asarray(im, dtype=np.float64) / 65535.0).astype(np.float32)
        if mode == "I":  # Pillow opens some 16-bit greyscale PNGs as 32-bit "I"
            return (np.asarray(im, dtype=np.float64) / 65535.0).astype(np.float32)
        if mode in ("L", "LA"):
            a = np.asarray(im.getchannel(0) if mode == "LA" else im, dtype=np.float64)
            return (a / 255.0).astype(np.float32)
        if mode == "1":
            return np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        if mode not in ("RGB", "RGBA"):
            im = im.convert("RGB")  # palette, CMYK, YCbCr (JPEG YCbCr is decoded to RGB already)
        a = np.asarray(im, dtype=np.float64)[..., :3]
        lum = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
        return (lum / 255.0).astype(np.float32)


def resized_shape(h: int, w: int, size: int = SIZE) -> tuple[int, int]:
    """Step 1 geometry: longer side -> size, shorter -> max(1, floor(short * size / long + 0.5))."""
    if h >= w:
        return size, max(1, int(np.floor(w * size / h + 0.5)))
    return max(1, int(np.floor(h * size / w + 0.5))), size


def resize_f(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pillow BILINEAR (antialiased) resize of a mode "F" image."""
    im = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32))
    assert im.mode == "F"
    return np.asarray(im.resize((w, h), Image.BILINEAR), dtype=np.float32)


def step1(x: np.ndarray, size: int = SIZE) -> np.ndarray:
    h, w = resized_shape(*x.shape, size=size)
    return resize_f(x, h, w)


def step2(x: np.ndarray) -> np.ndarray:
    """Robust contrast stretch between the 1st and 99th percentiles (NumPy linear interpolation)."""
    lo, hi = np.percentile(x, [1.0, 99.0])
    if hi - lo < 1e-6:
        return np.zeros_like(x, dtype=np.float32)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def step3(x: np.ndarray, size: int = SIZE) -> np.ndarray:
    h, w = x.shape
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - h) // 2, (size - w) // 2
    out[top:top + h, left:left + w] = x
    return out


def steps123(step0: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Steps 1-3: the 224x224 single-channel tensor the golden files hold."""
    return step3(step2(step1(step0, size)), size)


def step4(x: np.ndarray) -> np.ndarray:
    """Step 4: 3 channels, ImageNet normalisation -> float32 [3, 224, 224]."""
    return ((x[None, :, :] - MEAN[:, None, None]) / STD[:, None, None]).astype(np.float32)


def preprocess_file(path) -> np.ndarray:
    """PNG/JPEG path -> step-3 tensor [224, 224] float32."""
    return steps123(load_step0(path))


def model_input(path) -> np.ndarray:
    """PNG/JPEG path -> model input [3, 224, 224] float32 (steps 0-4)."""
    return step4(preprocess_file(path))
