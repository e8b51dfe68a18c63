//! Step 0 of docs/preprocessing.md for DICOM: stored samples to a display-ready [`GrayImage`].
//!
//! Order: Modality LUT (Rescale Slope/Intercept, else the Modality LUT Sequence), VOI (first
//! window, else the first VOI LUT, else min–max), MONOCHROME1 inversion. Colour images become
//! luminance divided by the largest sample value.

use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};

use crate::attrs::{opt_f64_first, uid_of};
use crate::frame::{decode_frame, RawFrame};
use crate::lut::first_lut;
use crate::{DecodeError, GrayImage};

/// Which VOI step 0 applied, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiSource {
    /// First Window Center / Width pair, linear function.
    Window,
    /// First item of the VOI LUT Sequence.
    VoiLutSequence,
    /// Min–max of the frame (no VOI in the header).
    MinMax,
    /// Colour image: luminance, no VOI.
    Colour,
}

/// Decodes frame 0 of a DICOM object into the display-ready image of step 0.
///
/// This is what radroute classifies; a multi-frame object contributes its first frame only.
pub fn decode_display(obj: &FileDicomObject<InMemDicomObject>) -> Result<GrayImage, DecodeError> {
    decode_display_with_source(obj).map(|(img, _)| img)
}

/// As [`decode_display`], also telling which VOI was used.
pub fn decode_display_with_source(
    obj: &FileDicomObject<InMemDicomObject>,
) -> Result<(GrayImage, VoiSource), DecodeError> {
    let raw = decode_frame(obj, 0)?;
    to_display(obj, raw)
}

/// Step 0 on already decoded samples (public so benchmarks can time decode and mapping apart).
pub fn to_display(
    obj: &InMemDicomObject,
    raw: RawFrame,
) -> Result<(GrayImage, VoiSource), DecodeError> {
    let uid = uid_of(obj);
    let (w, h) = (raw.cols, raw.rows);
    let bad_size = || DecodeError::CorruptPixelData {
        uid: uid.clone(),
        ts: String::new(),
        detail: "sample count does not match rows x columns".into(),
    };
    if raw.samples_per_pixel == 3 {
        let max = ((1u64 << raw.bits_stored) - 1) as f64;
        let data = raw
            .samples
            .chunks_exact(3)
            .map(|p| {
                let l = 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
                (l / max).clamp(0.0, 1.0) as f32
            })
            .collect();
        let img = GrayImage::new(w, h, data).ok_or_else(bad_size)?;
        return Ok((img, VoiSource::Colour));
    }
    let mut x = raw.samples;
    modality_lut(obj, &mut x, raw.signed, &uid)?;
    let source = voi(obj, &mut x, &uid)?;
    if raw.photometric == "MONOCHROME1" {
        x.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    let img = GrayImage::new(w, h, x).ok_or_else(bad_size)?;
    Ok((img, source))
}

fn modality_lut(
    obj: &InMemDicomObject,
    x: &mut [f32],
    signed: bool,
    uid: &str,
) -> Result<(), DecodeError> {
    let slope = opt_f64_first(obj, tags::RESCALE_SLOPE, "RescaleSlope", uid)?;
    let intercept = opt_f64_first(obj, tags::RESCALE_INTERCEPT, "RescaleIntercept", uid)?;
    if slope.is_some() || intercept.is_some() {
        let (m, b) = (slope.unwrap_or(1.0), intercept.unwrap_or(0.0));
        if m != 1.0 || b != 0.0 {
            x.iter_mut()
                .for_each(|v| *v = (f64::from(*v) * m + b) as f32);
        }
        return Ok(());
    }
    if let Some(lut) = first_lut(
        obj,
        tags::MODALITY_LUT_SEQUENCE,
        "ModalityLUTSequence",
        signed,
        uid,
    )? {
        x.iter_mut().for_each(|v| *v = lut.apply(*v));
    }
    Ok(())
}

/// Applies the VOI to [0, 1] in place.
fn voi(obj: &InMemDicomObject, x: &mut [f32], uid: &str) -> Result<VoiSource, DecodeError> {
    let center = opt_f64_first(obj, tags::WINDOW_CENTER, "WindowCenter", uid)?;
    let width = opt_f64_first(obj, tags::WINDOW_WIDTH, "WindowWidth", uid)?;
    if let (Some(c), Some(w)) = (center, width) {
        if w >= 1.0 {
            window_linear(x, c, w);
            return Ok(VoiSource::Window);
        }
    }
    if let Some(lut) = first_lut(obj, tags::VOILUT_SEQUENCE, "VOILUTSequence", true, uid)? {
        let max = lut.max_value();
        x.iter_mut()
            .for_each(|v| *v = (lut.apply(*v) / max).clamp(0.0, 1.0));
        return Ok(VoiSource::VoiLutSequence);
    }
    min_max(x);
    Ok(VoiSource::MinMax)
}

/// PS3.3 C.11.2.1.2.1 (LINEAR) with output range [0, 1].
pub(crate) fn window_linear(x: &mut [f32], c: f64, w: f64) {
    let lo = c - 0.5 - (w - 1.0) / 2.0;
    let hi = c - 0.5 + (w - 1.0) / 2.0;
    for v in x.iter_mut() {
        let f = f64::from(*v);
        *v = if f <= lo {
            0.0
        } else if f > hi {
            1.0
        } else {
            (((f - (c - 0.5)) / (w - 1.0)) + 0.5).clamp(0.0, 1.0) as f32
        };
    }
}

fn min_max(x: &mut [f32]) {
    let (lo, hi) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let range = hi - lo;
    if range.is_nan() || range <= 0.0 {
        x.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    x.iter_mut().for_each(|v| *v = (*v - lo) / range);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_linear_matches_the_standard() {
        // c=2048, w=4096: lo=0 (maps to 0), hi=4095 (maps to 1)
        let mut x = vec![-5.0, 0.0, 2047.5, 4095.0, 5000.0];
        window_linear(&mut x, 2048.0, 4096.0);
        assert_eq!(x[0], 0.0);
        assert_eq!(x[1], 0.0);
        assert!((x[2] - 0.5).abs() < 1e-6);
        assert_eq!(x[3], 1.0);
        assert_eq!(x[4], 1.0);
    }

    #[test]
    fn min_max_of_flat_image_is_zero() {
        let mut x = vec![3.0; 4];
        min_max(&mut x);
        assert_eq!(x, vec![0.0; 4]);
        let mut y = vec![1.0, 3.0];
        min_max(&mut y);
        assert_eq!(y, vec![0.0, 1.0]);
    }
}
