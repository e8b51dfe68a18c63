"""Training augmentation on the step-0 image (numpy + Pillow, no torch).

Every transform acts on the step-0 grayscale image in [0, 1]; the augmented image then goes through
the exact radroute-v1 steps 1-4, so the inference path is the documented function and nothing else.
One call draws one random view; N epochs of online augmentation give every training image N
different views (30 views ~ the paper's 30x offline augmentation).

The transforms are chosen against the source shortcuts of this pool (README of the data):
- random crops from tight (knee-joint-like) to full film, and zoom-out with a border, so that the
  framing / field of view does not identify the source;
- resolution loss (down-up resampling), blur, noise and sharpening/CLAHE-like local contrast, so
  that detector resolution and post-processing (OAI crops are CLAHE'd) do not identify it;
- gamma and window jitter, so that the global contrast curve does not identify it;
- synthetic bright "metal" blobs on any class, so that an implant does not mean "shoulder";
- rotation and horizontal flip (left/right sides and positioning vary).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from preprocess import resize_f


def _resize(x, h, w):
    return resize_f(x, max(1, int(h)), max(1, int(w)))


def random_crop(x, rng, min_area=0.3):
    h, w = x.shape
    for _ in range(10):
        area = rng.uniform(min_area, 1.0) * h * w
        ar = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch, cw = int(round(np.sqrt(area / ar))), int(round(np.sqrt(area * ar)))
        if 8 <= ch <= h and 8 <= cw <= w:
            t, l = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            return x[t:t + ch, l:l + cw]
    return x


def zoom_out(x, rng, max_border=0.25):
    h, w = x.shape
    bt, bb, bl, br = (rng.uniform(0, max_border, 4) * np.array([h, h, w, w])).astype(int)
    val = float(rng.choice([0.0, np.percentile(x, 5)]))
    out = np.full((h + bt + bb, w + bl + br), val, dtype=np.float32)
    out[bt:bt + h, bl:bl + w] = x
    return out


def rotate(x, rng, max_deg=15.0):
    deg = rng.uniform(-max_deg, max_deg)
    im = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32))
    return np.asarray(im.rotate(deg, resample=Image.BILINEAR, expand=False, fillcolor=0.0),
                      dtype=np.float32)


def degrade_resolution(x, rng):
    h, w = x.shape
    f = rng.uniform(0.2, 0.7)
    small = _resize(x, max(8, h * f), max(8, w * f))
    return _resize(small, h, w)


def local_contrast(x, rng):
    """Unsharp mask with a large radius (CLAHE-like look) or a softening (negative amount)."""
    h, w = x.shape
    f = rng.uniform(1 / 16, 1 / 6)
    blur = _resize(_resize(x, max(4, h * f), max(4, w * f)), h, w)
    amount = rng.uniform(-0.5, 1.5)
    return np.clip(x + amount * (x - blur), 0, 1)


def gamma_window(x, rng):
    g = np.exp(rng.uniform(np.log(0.6), np.log(1.7)))
    lo, hi = rng.uniform(0, 0.15), rng.uniform(0.85, 1.0)
    x = np.clip((x - lo) / (hi - lo), 0, 1)
    return np.power(x, g, dtype=np.float32)


def metal_blobs(x, rng):
    h, w = x.shape
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(rng.integers(1, 3)):
        cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
        ry, rx = rng.uniform(0.03, 0.15) * h, rng.uniform(0.03, 0.15) * w
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        x = np.where(m, np.float32(rng.uniform(0.9, 1.0)), x)
    return x


def noise(x, rng):
    s = rng.uniform(0.005, 0.04)
    return np.clip(x + rng.normal(0, s, x.shape).astype(np.float32), 0, 1)


def text_marks(x, rng):
    """Burned-in-text-like marks: short rows of small bright/dark rectangles, usually near a corner."""
    h, w = x.shape
    x = x.copy()
    for _ in range(rng.integers(1, 4)):
        ch = max(2, int(rng.uniform(0.012, 0.035) * h))
        cw = max(2, int(ch * rng.uniform(0.5, 0.9)))
        n = int(rng.integers(2, 10))
        cy = int((rng.uniform(0.0, 0.15) if rng.uniform() < 0.5 else rng.uniform(0.8, 0.97)) * h)
        cx = int((rng.uniform(0.0, 0.2) if rng.uniform() < 0.5 else rng.uniform(0.5, 0.8)) * w)
        v = np.float32(rng.uniform(0.85, 1.0) if rng.uniform() < 0.8 else rng.uniform(0.0, 0.1))
        for i in range(n):
            x0 = cx + i * int(cw * 1.4)
            if x0 + cw >= w or cy + ch >= h:
                break
            if rng.uniform() < 0.85:
                x[cy:cy + ch, x0:x0 + cw] = v
    return x


def film_style(x, rng, min_f=1.15, max_f=1.7, long_side=512):
    """Make a crop look like a full film: paste it on a larger canvas with a noisy, smoothly varying
    background (air / soft-tissue-like), optional collimation bands, then resample to <= long_side."""
    h, w = x.shape
    f = rng.uniform(min_f, max_f)
    ar = np.exp(rng.uniform(np.log(0.75), np.log(1.35)))
    H, W = max(h + 2, int(h * f * np.sqrt(ar))), max(w + 2, int(w * f / np.sqrt(ar)))
    u = rng.uniform()
    lvl = rng.uniform(0.0, 0.12) if u < 0.6 else (rng.uniform(0.15, 0.45) if u < 0.85 else rng.uniform(0.75, 1.0))
    low = _resize(rng.uniform(-1, 1, (4, 4)).astype(np.float32), H, W) * rng.uniform(0.0, 0.12)
    bg = np.clip(lvl + low + rng.normal(0, rng.uniform(0.005, 0.04), (H, W)).astype(np.float32), 0, 1)
    t, l = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    out = bg.astype(np.float32)
    out[t:t + h, l:l + w] = x
    if rng.uniform() < 0.4:  # collimation band(s)
        v = np.float32(rng.uniform(0.8, 1.0) if rng.uniform() < 0.5 else rng.uniform(0.0, 0.1))
        for side in rng.choice(4, size=int(rng.integers(1, 3)), replace=False):
            b = int(rng.uniform(0.02, 0.1) * (H if side < 2 else W))
            if side == 0:
                out[:b] = v
            elif side == 1:
                out[H - b:] = v
            elif side == 2:
                out[:, :b] = v
            else:
                out[:, W - b:] = v
    if max(H, W) > long_side:
        s = long_side / max(H, W)
        out = _resize(out, H * s, W * s)
    return out


def quantise8(x):
    return (np.round(np.clip(x, 0, 1) * 255) / 255).astype(np.float32)


# style augmentation (--style-aug): source -> (probability of film_style, zoom range)
STYLE = {"oai_clahe_crop": (0.7, 1.6, 3.0), "unifesp": (0.15, 1.05, 1.4)}
STYLE_DEFAULT = (0.5, 1.1, 1.8)


def augment(x: np.ndarray, rng: np.random.Generator, source: str | None = None) -> np.ndarray:
    """One random view of a step-0 image (float32 HxW in [0, 1]) -> float32 step-0 image.

    With `source` given (style augmentation), non-UNIFESP images are often made to look like full
    UNIFESP films (film_style, 8-bit quantisation) and every image may get text-like marks; UNIFESP
    images keep the random crops (crop-like framing). Without `source`: the original recipe."""
    x = np.asarray(x, dtype=np.float32)
    styled = False
    if source is not None:
        p, lo, hi = STYLE.get(source, STYLE_DEFAULT)
        if rng.uniform() < p:
            x = film_style(random_crop(x, rng, min_area=0.6) if rng.uniform() < 0.3 else x, rng, lo, hi)
            styled = True
    u = rng.uniform()
    if styled:
        pass
    elif u < 0.75:
        x = random_crop(x, rng, min_area=0.25)
    elif u < 0.9:
        x = zoom_out(x, rng)
    if rng.uniform() < 0.5:
        x = x[:, ::-1]
    if rng.uniform() < 0.6:
        x = rotate(x, rng)
    if rng.uniform() < 0.3:
        x = degrade_resolution(x, rng)
    if rng.uniform() < 0.35:
        x = local_contrast(x, rng)
    if rng.uniform() < 0.8:
        x = gamma_window(x, rng)
    if rng.uniform() < 0.15:
        x = metal_blobs(x, rng)
    if rng.uniform() < 0.3:
        x = noise(x, rng)
    if source is not None:
        if rng.uniform() < 0.3:
            x = text_marks(x, rng)
        if rng.uniform() < 0.5:
            x = quantise8(x)
    return np.ascontiguousarray(x, dtype=np.float32)


def cache_step0(x: np.ndarray, long_side: int = 512) -> np.ndarray:
    """Downscale a step-0 image for the in-memory training cache (long side <= long_side)."""
    h, w = x.shape
    if max(h, w) <= long_side:
        return np.ascontiguousarray(x, dtype=np.float32)
    s = long_side / max(h, w)
    return resize_f(x, max(1, int(round(h * s))), max(1, int(round(w * s))))
