//! Steps 1–4 of docs/preprocessing.md (version `radroute-v1`): resize keeping the aspect ratio,
//! robust contrast stretch, pad to a square, three channels with ImageNet normalisation.
//!
//! The training code implements the same function in `models/train/preprocess.py`; the parity
//! test `tests/preprocess_parity.rs` compares both on the golden tensors.

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::F32;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};

use crate::GrayImage;

/// The preprocessing version this module implements; a model manifest must name it.
pub const PREPROCESSING_VERSION: &str = "radroute-v1";
/// Side of the square model input.
pub const SIZE: u32 = 224;
/// ImageNet channel means (step 4).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (step 4).
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Step 1 geometry: `(height, width)` after resizing so the longer side is `size`.
pub fn resized_shape(height: u32, width: u32, size: u32) -> (u32, u32) {
    let short = |s: u32, l: u32| {
        ((f64::from(s) * f64::from(size) / f64::from(l) + 0.5).floor() as u32).max(1)
    };
    if height >= width {
        (size, short(width, height))
    } else {
        (short(height, width), size)
    }
}

/// Step 1: bilinear resize with antialiasing (fast_image_resize `Convolution(Bilinear)` on F32,
/// which computes what Pillow's `BILINEAR` does on a mode `F` image).
///
/// An image whose `data` is shorter than `width * height` resizes to zeros.
pub fn resize(img: &GrayImage, size: u32) -> GrayImage {
    let (h, w) = resized_shape(img.height, img.width, size);
    if (h, w) == (img.height, img.width) {
        return img.clone();
    }
    let width = img.width as usize;
    let n = width * img.height as usize;
    let data = match img.data.get(..n) {
        Some(src) => resize_rows(img.width, img.height, w, h, |y0, strip| {
            for (o, &v) in strip.iter_mut().zip(&src[y0 * width..]) {
                *o = F32::new(v);
            }
        }),
        None => None,
    };
    GrayImage {
        width: w,
        height: h,
        data: data.unwrap_or_else(|| vec![0.0; (w * h) as usize]),
    }
}

/// Step 1 on an image that is produced a band of rows at a time, so the full-size image never
/// has to exist: `fill(y0, strip)` writes rows `y0..` of the `src_w`-wide source into `strip`
/// (a whole number of rows). Gives the `dst_w * dst_h` result, `None` only if a size is zero.
///
/// The result is bit for bit that of one `Convolution(Bilinear)` resize of the whole image:
/// fast_image_resize resizes F32 images horizontally first (every source row on its own) into
/// an F32 buffer, then vertically; here the horizontal pass runs per band into the same buffer.
pub(crate) fn resize_rows(
    src_w: u32,
    src_h: u32,
    dst_w: u32,
    dst_h: u32,
    mut fill: impl FnMut(usize, &mut [F32]),
) -> Option<Vec<f32>> {
    if src_w == 0 || src_h == 0 || dst_w == 0 || dst_h == 0 {
        return None;
    }
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    let mut resizer = Resizer::new();
    let (sw, dw, sh) = (src_w as usize, dst_w as usize, src_h as usize);
    // bands of about 1 MiB stay in cache between filling and the horizontal pass, and are few
    // enough that the per-call cost of the resizer (its coefficients) stays small; a multiple
    // of 4 rows suits the 4-row kernels of fast_image_resize
    let band = ((1usize << 18) / sw).clamp(4, 4096) / 4 * 4;
    let band = band.min(sh);
    let mut strip = vec![F32::new(0.0); band * sw];
    let mut mid = TypedImage::<F32>::new(dst_w, src_h);
    let mut y0 = 0;
    while y0 < sh {
        let n = band.min(sh - y0);
        let src_px = &mut strip[..n * sw];
        fill(y0, src_px);
        let src = TypedImageRef::new(src_w, n as u32, &*src_px).ok()?;
        let dst_px = mid.pixels_mut().get_mut(y0 * dw..(y0 + n) * dw)?;
        let mut dst = TypedImage::from_pixels_slice(dst_w, n as u32, dst_px).ok()?;
        resizer.resize_typed(&src, &mut dst, &opts).ok()?;
        y0 += n;
    }
    drop(strip);
    let mut out = TypedImage::<F32>::new(dst_w, dst_h);
    resizer.resize_typed(&mid, &mut out, &opts).ok()?;
    Some(out.pixels().iter().map(|p| p.0).collect())
}

/// NumPy's default (linear) percentile of sorted data, `q` in [0, 100].
#[cfg(test)]
fn percentile_sorted(sorted: &[f32], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    let rank = q / 100.0 * (n as f64 - 1.0);
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = rank - lo as f64;
    let (a, b) = (f64::from(sorted[lo]), f64::from(sorted[hi]));
    a + (b - a) * frac
}

/// NumPy's default (linear) percentile, `q` in [0, 100], by selection instead of a full sort:
/// the same two order statistics (in `f32::total_cmp` order) as [`percentile_sorted`] uses, so
/// the same value. Reorders `v`.
fn percentile_select(v: &mut [f32], q: f64) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let rank = q / 100.0 * (n as f64 - 1.0);
    let lo = (rank.floor() as usize).min(n - 1);
    let frac = rank - lo as f64;
    let (_, a, above) = v.select_nth_unstable_by(lo, f32::total_cmp);
    let a = *a;
    // every element after position `lo` sorts at or above `a`: the smallest is order statistic
    // lo + 1 (or `a` itself when `lo` is the last index)
    let b = above.iter().copied().min_by(f32::total_cmp).unwrap_or(a);
    let (a, b) = (f64::from(a), f64::from(b));
    a + (b - a) * frac
}

/// Step 2: stretch between the 1st and 99th percentiles, clamp to [0, 1].
pub fn contrast_stretch(img: &mut GrayImage) {
    let mut scratch = img.data.clone();
    let lo = percentile_select(&mut scratch, 1.0);
    let hi = percentile_select(&mut scratch, 99.0);
    drop(scratch);
    if hi - lo < 1e-6 {
        img.data.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    let range = hi - lo;
    img.data
        .iter_mut()
        .for_each(|v| *v = ((f64::from(*v) - lo) / range).clamp(0.0, 1.0) as f32);
}

/// Step 3: centre on a `size`×`size` canvas of zeros.
pub fn pad_square(img: &GrayImage, size: u32) -> GrayImage {
    let (s, w, h) = (size as usize, img.width as usize, img.height as usize);
    let mut out = vec![0.0f32; s * s];
    let top = s.saturating_sub(h) / 2;
    let left = s.saturating_sub(w) / 2;
    for (y, row) in img.data.chunks_exact(w).take(s).enumerate() {
        let start = (top + y) * s + left;
        let n = w.min(s);
        out[start..start + n].copy_from_slice(&row[..n]);
    }
    GrayImage {
        width: size,
        height: size,
        data: out,
    }
}

/// Steps 1–3: the single-channel 224×224 image the golden parity tensors hold.
///
/// An inconsistent image (a zero side, or `data` not `width * height` long; possible since the
/// fields are public) gives an all-zero square instead of a panic.
pub fn preprocess_gray(img: &GrayImage) -> GrayImage {
    let n = img.width as usize * img.height as usize;
    if n == 0 || img.data.len() != n {
        return GrayImage {
            width: SIZE,
            height: SIZE,
            data: vec![0.0; (SIZE * SIZE) as usize],
        };
    }
    finish_gray(resize(img, SIZE))
}

/// Steps 2–3 on the resized image.
pub(crate) fn finish_gray(mut resized: GrayImage) -> GrayImage {
    contrast_stretch(&mut resized);
    pad_square(&resized, SIZE)
}

/// Step 4: three channels, ImageNet normalisation, CHW `f32`.
pub fn normalise(square: &GrayImage) -> Vec<f32> {
    let n = square.data.len();
    let mut out = Vec::with_capacity(3 * n);
    for c in 0..3 {
        out.extend(square.data.iter().map(|&v| (v - MEAN[c]) / STD[c]));
    }
    out
}

/// Steps 1–4: a display image to the model input, `[3, 224, 224]` CHW `f32` (`3*224*224` values).
pub fn preprocess(img: &GrayImage) -> Vec<f32> {
    normalise(&preprocess_gray(img))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_contract() {
        assert_eq!(resized_shape(2500, 2000, 224), (224, 179));
        assert_eq!(resized_shape(100, 400, 224), (56, 224));
        assert_eq!(resized_shape(1, 10000, 224), (1, 224));
        assert_eq!(resized_shape(224, 224, 224), (224, 224));
    }

    #[test]
    fn percentile_by_selection_equals_percentile_of_sorted() {
        let mut seed = 7u64;
        for n in [1usize, 2, 3, 100, 101, 1000, 40_096] {
            let data: Vec<f32> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((seed >> 40) % 997) as f32 / 996.0
                })
                .collect();
            let mut sorted = data.clone();
            sorted.sort_unstable_by(f32::total_cmp);
            let mut scratch = data.clone();
            for q in [0.0, 1.0, 50.0, 99.0, 100.0] {
                assert_eq!(
                    percentile_select(&mut scratch, q).to_bits(),
                    percentile_sorted(&sorted, q).to_bits(),
                    "n={n} q={q}"
                );
            }
        }
    }

    #[test]
    fn banded_resize_equals_one_resize_of_the_whole_image() {
        for (w, h) in [
            (2000u32, 2500u32),
            (333, 1000),
            (1000, 301),
            (224, 500),
            (50, 30),
        ] {
            let data: Vec<f32> = (0..w * h)
                .map(|i| ((i % w) * 7 + (i / w) * 3) as f32 % 101.0 / 100.0)
                .collect();
            let (dh, dw) = resized_shape(h, w, SIZE);
            let src_px: Vec<F32> = data.iter().map(|&v| F32::new(v)).collect();
            let src = TypedImageRef::new(w, h, &src_px).expect("source");
            let mut dst = TypedImage::<F32>::new(dw, dh);
            let opts =
                ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
            Resizer::new()
                .resize_typed(&src, &mut dst, &opts)
                .expect("resize");
            let whole: Vec<u32> = dst.pixels().iter().map(|p| p.0.to_bits()).collect();
            let img = GrayImage::new(w, h, data).expect("image");
            let banded: Vec<u32> = resize(&img, SIZE)
                .data
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(whole, banded, "{w}x{h}");
        }
    }

    #[test]
    fn percentile_is_numpy_linear() {
        let v: Vec<f32> = (0..101).map(|i| i as f32).collect();
        assert!((percentile_sorted(&v, 1.0) - 1.0).abs() < 1e-9);
        let v = [0.0f32, 10.0];
        assert!((percentile_sorted(&v, 99.0) - 9.9).abs() < 1e-6);
    }

    #[test]
    fn output_is_centred_and_normalised() {
        let data: Vec<f32> = (0..400 * 200).map(|i| (i % 400) as f32 / 400.0).collect();
        let img = GrayImage::new(400, 200, data).expect("valid image");
        let sq = preprocess_gray(&img);
        assert_eq!((sq.width, sq.height), (224, 224));
        // 224x112 placed at top 56: row 0 is padding, row 56 holds image
        assert_eq!(sq.data[0], 0.0);
        assert!(sq.data[56 * 224 + 223] > 0.9);
        let t = preprocess(&img);
        assert_eq!(t.len(), 3 * 224 * 224);
        assert!((t[0] - (0.0 - MEAN[0]) / STD[0]).abs() < 1e-6);
    }

    #[test]
    fn inconsistent_image_gives_zeros_not_a_panic() {
        let bad = GrayImage {
            width: 0,
            height: 5,
            data: vec![],
        };
        assert!(preprocess_gray(&bad).data.iter().all(|&v| v == 0.0));
        let short = GrayImage {
            width: 4,
            height: 4,
            data: vec![1.0; 3],
        };
        assert_eq!(preprocess(&short).len(), 3 * 224 * 224);
    }

    #[test]
    fn flat_image_becomes_zero() {
        let img = GrayImage::new(10, 10, vec![0.5; 100]).expect("valid image");
        let sq = preprocess_gray(&img);
        assert!(sq.data.iter().all(|&v| v == 0.0));
    }
}
