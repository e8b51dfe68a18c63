//! Step 0 of docs/preprocessing.md for DICOM: stored samples to a display-ready [`GrayImage`].
//!
//! Order: Modality LUT (Rescale Slope/Intercept, else the Modality LUT Sequence), VOI (first
//! window, else the first VOI LUT, else min–max), MONOCHROME1 inversion. Colour images become
//! luminance divided by the largest sample value.

use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};

use crate::attrs::{opt_f64_first, uid_of};
#[cfg(doc)]
use crate::frame::decode_frame;
use crate::frame::{decode_samples, RawFrame};
use crate::lut::{first_lut, Lut};
use crate::table::DisplayTable;
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
///
/// Grayscale integer samples of up to 16 bits (nearly every radiograph) go through one lookup
/// table per object (`crate::table`), straight from the decoded (for native pixel data: the
/// object's own) samples; other images through [`decode_frame`] and [`to_display`]. Both give
/// the same image.
pub fn decode_display_with_source(
    obj: &FileDicomObject<InMemDicomObject>,
) -> Result<(GrayImage, VoiSource), DecodeError> {
    let decoded = decode_samples(obj, 0)?;
    match DisplayTable::build(obj, &decoded) {
        Some(table) => {
            let (table, source) = table?;
            Ok((table.image()?, source))
        }
        None => to_display(obj, decoded.into_raw()?),
    }
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
    let modality = Modality::read(obj, raw.signed, &uid)?;
    let voi = Voi::read(obj, &uid)?;
    let mut x = raw.samples;
    if !modality.is_identity() {
        x.iter_mut().for_each(|v| *v = modality.apply(*v));
    }
    let voi = voi.resolve(|| {
        x.iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            })
    });
    let invert = raw.photometric == "MONOCHROME1";
    x.iter_mut().for_each(|v| *v = voi.display(*v, invert));
    let img = GrayImage::new(w, h, x).ok_or_else(bad_size)?;
    Ok((img, voi.source()))
}

/// Step 0.2 as the header gives it: Rescale Slope / Intercept, else the first item of the
/// Modality LUT Sequence, else nothing.
pub(crate) enum Modality {
    /// No rescale (or slope 1, intercept 0) and no LUT.
    Identity,
    /// `x * slope + intercept` in `f64`, rounded to `f32`.
    Rescale {
        /// Rescale Slope.
        slope: f64,
        /// Rescale Intercept.
        intercept: f64,
    },
    /// Modality LUT Sequence, first item.
    Lut(Lut),
}

impl Modality {
    /// Reads the Modality LUT attributes (errors for unparsable values, as before any pixel).
    pub fn read(obj: &InMemDicomObject, signed: bool, uid: &str) -> Result<Self, DecodeError> {
        let slope = opt_f64_first(obj, tags::RESCALE_SLOPE, "RescaleSlope", uid)?;
        let intercept = opt_f64_first(obj, tags::RESCALE_INTERCEPT, "RescaleIntercept", uid)?;
        if slope.is_some() || intercept.is_some() {
            let (slope, intercept) = (slope.unwrap_or(1.0), intercept.unwrap_or(0.0));
            if slope != 1.0 || intercept != 0.0 {
                return Ok(Modality::Rescale { slope, intercept });
            }
            return Ok(Modality::Identity);
        }
        Ok(first_lut(
            obj,
            tags::MODALITY_LUT_SEQUENCE,
            "ModalityLUTSequence",
            signed,
            uid,
        )?
        .map_or(Modality::Identity, Modality::Lut))
    }

    /// True when [`Modality::apply`] returns its input.
    pub fn is_identity(&self) -> bool {
        matches!(self, Modality::Identity)
    }

    /// True when the output never decreases, or never increases, with the input (everything but
    /// a LUT): the extremes of the output are then the outputs of the input's extremes.
    pub fn is_monotone(&self) -> bool {
        !matches!(self, Modality::Lut(_))
    }

    /// The modality value of stored value `v`.
    pub fn apply(&self, v: f32) -> f32 {
        match self {
            Modality::Identity => v,
            Modality::Rescale { slope, intercept } => (f64::from(v) * slope + intercept) as f32,
            Modality::Lut(lut) => lut.apply(v),
        }
    }
}

/// Step 0.3 as the header gives it; min–max still needs the frame's range ([`Voi::resolve`]).
pub(crate) enum Voi {
    /// First Window Center / Width pair (width ≥ 1).
    Window {
        /// Window Center.
        c: f64,
        /// Window Width.
        w: f64,
    },
    /// First VOI LUT Sequence item.
    Lut(Lut),
    /// No VOI in the header.
    MinMax,
}

impl Voi {
    /// Reads the VOI attributes (the VOI LUT Sequence only when there is no usable window).
    pub fn read(obj: &InMemDicomObject, uid: &str) -> Result<Self, DecodeError> {
        let center = opt_f64_first(obj, tags::WINDOW_CENTER, "WindowCenter", uid)?;
        let width = opt_f64_first(obj, tags::WINDOW_WIDTH, "WindowWidth", uid)?;
        if let (Some(c), Some(w)) = (center, width) {
            if w >= 1.0 {
                return Ok(Voi::Window { c, w });
            }
        }
        if let Some(lut) = first_lut(obj, tags::VOILUT_SEQUENCE, "VOILUTSequence", true, uid)? {
            return Ok(Voi::Lut(lut));
        }
        Ok(Voi::MinMax)
    }

    /// The VOI as a function; `range` gives the smallest and largest modality value of the
    /// frame (as `f32::min` / `f32::max` folds from ±∞ would) and is called for min–max only.
    pub fn resolve(self, range: impl FnOnce() -> (f32, f32)) -> VoiMap {
        match self {
            Voi::Window { c, w } => VoiMap::Window { c, w },
            Voi::Lut(lut) => {
                let max = lut.max_value();
                VoiMap::Lut { lut, max }
            }
            Voi::MinMax => {
                let (lo, hi) = range();
                let range = hi - lo;
                if range.is_nan() || range <= 0.0 {
                    VoiMap::Flat
                } else {
                    VoiMap::MinMax { lo, range }
                }
            }
        }
    }
}

/// Step 0.3 as a function of the modality value, to [0, 1].
pub(crate) enum VoiMap {
    /// PS3.3 C.11.2.1.2.1 (LINEAR).
    Window {
        /// Window Center.
        c: f64,
        /// Window Width.
        w: f64,
    },
    /// VOI LUT output divided by its largest possible value, clamped.
    Lut {
        /// The LUT.
        lut: Lut,
        /// `2^bits - 1`.
        max: f32,
    },
    /// `(x - lo) / range`.
    MinMax {
        /// Smallest modality value of the frame.
        lo: f32,
        /// Largest minus smallest, positive.
        range: f32,
    },
    /// Min–max of a flat frame: everything 0.
    Flat,
}

impl VoiMap {
    /// Which VOI this is, for logs and tests.
    pub fn source(&self) -> VoiSource {
        match self {
            VoiMap::Window { .. } => VoiSource::Window,
            VoiMap::Lut { .. } => VoiSource::VoiLutSequence,
            VoiMap::MinMax { .. } | VoiMap::Flat => VoiSource::MinMax,
        }
    }

    /// The display value of modality value `x`: VOI, then MONOCHROME1 inversion if `invert`.
    pub fn display(&self, x: f32, invert: bool) -> f32 {
        let v = match self {
            VoiMap::Window { c, w } => window_value(x, *c, *w),
            VoiMap::Lut { lut, max } => (lut.apply(x) / max).clamp(0.0, 1.0),
            VoiMap::MinMax { lo, range } => (x - lo) / range,
            VoiMap::Flat => 0.0,
        };
        if invert {
            1.0 - v
        } else {
            v
        }
    }
}

/// PS3.3 C.11.2.1.2.1 (LINEAR) with output range [0, 1], for one value.
fn window_value(x: f32, c: f64, w: f64) -> f32 {
    let lo = c - 0.5 - (w - 1.0) / 2.0;
    let hi = c - 0.5 + (w - 1.0) / 2.0;
    let f = f64::from(x);
    if f <= lo {
        0.0
    } else if f > hi {
        1.0
    } else {
        (((f - (c - 0.5)) / (w - 1.0)) + 0.5).clamp(0.0, 1.0) as f32
    }
}

/// PS3.3 C.11.2.1.2.1 (LINEAR) with output range [0, 1], in place.
#[cfg(test)]
pub(crate) fn window_linear(x: &mut [f32], c: f64, w: f64) {
    x.iter_mut().for_each(|v| *v = window_value(*v, c, w));
}

#[cfg(test)]
fn min_max(x: &mut [f32]) {
    let (lo, hi) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let map = Voi::MinMax.resolve(|| (lo, hi));
    x.iter_mut().for_each(|v| *v = map.display(*v, false));
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
