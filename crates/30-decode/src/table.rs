//! Step 0 through one lookup table, for grayscale integer samples of up to 16 bits (nearly every
//! radiograph).
//!
//! Every stored value the frame can hold maps to its display value by the very same `f32`/`f64`
//! arithmetic as [`crate::to_display`] (Modality LUT, VOI, MONOCHROME1 inversion; masking to Bits
//! Stored and sign extension are folded into the index), so a frame becomes its display image in
//! one pass over the decoded samples, which for native pixel data are the object's own (no
//! copy). The noise check of [`crate::decode_frame`] runs in the same pass, on the same stored
//! values. [`DisplayTable::resized`] goes one step further for the model input: it feeds the
//! display rows band by band into step 1, so the full-size `f32` image never exists.

use std::borrow::Cow;

use dicom_object::InMemDicomObject;
use fast_image_resize::pixels::F32;

use crate::attrs::uid_of;
use crate::display::{Modality, Voi, VoiSource};
use crate::frame::{noise_check_applies, noise_verdict, Decoded, Samples};
use crate::preprocess::{resize_rows, resized_shape};
use crate::{DecodeError, GrayImage};

/// Entries of a table: one per 16-bit raw value, so any `u16` indexes it.
const ENTRIES: usize = 1 << 16;

/// The display value of every stored value of one frame, and that frame's samples.
pub(crate) struct DisplayTable<'d> {
    decoded: &'d Decoded<'d>,
    /// `ENTRIES` display values, indexed by the raw sample masked to Bits Stored.
    table: Vec<f32>,
    /// `2^bits_stored - 1`.
    mask: u16,
    /// A horizontally adjacent pair of stored values is a jump when they differ by more than
    /// this (a quarter of the frame's range); `None` when the noise check does not apply.
    jump_over: Option<u16>,
}

impl<'d> DisplayTable<'d> {
    /// The table for frame `decoded` of `obj`, with the VOI it applies; `None` when the frame is
    /// not grayscale with 8- or 16-bit integer containers (then [`crate::to_display`] applies).
    ///
    /// Errors are those of [`crate::decode_frame`] followed by [`crate::to_display`], in that
    /// order: a frame that looks like noise is refused before a bad VOI attribute is reported.
    pub fn build(
        obj: &InMemDicomObject,
        decoded: &'d Decoded<'d>,
    ) -> Option<Result<(Self, VoiSource), DecodeError>> {
        let m = &decoded.m;
        let grayscale = m.spp == 1
            && matches!(decoded.photometric.as_str(), "MONOCHROME1" | "MONOCHROME2")
            && m.bits_stored <= 16;
        if !grayscale || matches!(decoded.samples, Samples::Ne32(_)) {
            return None;
        }
        Some(Self::build_gray(obj, decoded))
    }

    fn build_gray(
        obj: &InMemDicomObject,
        decoded: &'d Decoded<'d>,
    ) -> Result<(Self, VoiSource), DecodeError> {
        let m = &decoded.m;
        let bits = u32::from(m.bits_stored);
        let mask = (((1u32 << bits) - 1) & 0xFFFF) as u16;
        let stored = Stored {
            shift: 16 - bits,
            mask,
            signed: m.signed,
        };
        let (lo, hi) = stored_range(decoded, stored);
        let jump_over = (noise_check_applies(m) && hi > lo).then(|| ((hi - lo) / 4) as u16);
        let mut t = DisplayTable {
            decoded,
            table: Vec::new(),
            mask,
            jump_over,
        };
        let uid = uid_of(obj);
        let maps = Modality::read(obj, m.signed, &uid)
            .and_then(|modality| Ok((modality, Voi::read(obj, &uid)?)));
        let (modality, voi) = match maps {
            Ok(maps) => maps,
            Err(e) => {
                // as before: a noisy frame is corrupt pixel data, whatever its header says
                t.count_jumps()?;
                return Err(e);
            }
        };
        let voi = voi.resolve(|| {
            if modality.is_monotone() {
                let (a, b) = (modality.apply(lo as f32), modality.apply(hi as f32));
                (a.min(b), a.max(b))
            } else {
                let seen = t.seen();
                (lo..=hi)
                    .filter(|&s| seen[usize::from(stored.index(s))])
                    .map(|s| modality.apply(s as f32))
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
                        (a.min(v), b.max(v))
                    })
            }
        });
        let invert = decoded.photometric == "MONOCHROME1";
        let mut table = vec![0.0f32; ENTRIES];
        for s in lo..=hi {
            table[usize::from(stored.index(s))] = voi.display(modality.apply(s as f32), invert);
        }
        t.table = table;
        Ok((t, voi.source()))
    }

    /// Step 0: the full-size display image.
    pub fn image(&self) -> Result<GrayImage, DecodeError> {
        let m = &self.decoded.m;
        let mut data = Vec::with_capacity(m.per_frame());
        let (table, mask) = (&self.table, self.mask);
        let jumps = self.rows(0, m.rows as usize, |_, row| {
            let start = data.len();
            data.resize(start + row.len(), 0.0);
            map_row(table, mask, row, &mut data[start..], |v| v);
        });
        noise_verdict(m, jumps)?;
        GrayImage::new(m.cols, m.rows, data).ok_or_else(|| m.corrupt("empty frame".into()))
    }

    /// Steps 0 and 1: the display image resized so the longer side is `size` (as
    /// [`crate::preprocess::resize`] of [`DisplayTable::image`], bit for bit), without the
    /// full-size image.
    pub fn resized(&self, size: u32) -> Result<GrayImage, DecodeError> {
        let m = &self.decoded.m;
        let (h, w) = resized_shape(m.rows, m.cols, size);
        if (h, w) == (m.rows, m.cols) {
            return self.image();
        }
        let cols = m.cols as usize;
        let mut jumps = 0;
        let (table, mask) = (&self.table, self.mask);
        let data = resize_rows(m.cols, m.rows, w, h, |y0, strip| {
            let n = strip.len() / cols;
            jumps += self.rows(y0, y0 + n, |y, row| {
                let out = &mut strip[(y - y0) * cols..(y - y0 + 1) * cols];
                map_row(table, mask, row, out, F32::new);
            });
        });
        noise_verdict(m, jumps)?;
        let data = data.ok_or_else(|| m.corrupt("empty frame".into()))?;
        Ok(GrayImage {
            width: w,
            height: h,
            data,
        })
    }

    /// Calls `f(y, row)` with the raw samples of rows `y0..y1` as `u16`, and returns the number
    /// of jumps in them (0 when the noise check does not apply).
    fn rows(&self, y0: usize, y1: usize, mut f: impl FnMut(usize, &[u16])) -> usize {
        let cols = self.decoded.m.cols as usize;
        let m = &self.decoded.m;
        let stored = Stored {
            shift: 16 - u32::from(m.bits_stored),
            mask: self.mask,
            signed: m.signed,
        };
        let mut scratch = Vec::new();
        let mut jumps = 0;
        for y in y0..y1 {
            let row = row_u16(&self.decoded.samples, y, cols, &mut scratch);
            if let Some(t) = self.jump_over {
                jumps += stored.jumps(row, t);
            }
            f(y, row);
        }
        jumps
    }

    /// Runs the noise check alone.
    fn count_jumps(&self) -> Result<(), DecodeError> {
        let jumps = self.rows(0, self.decoded.m.rows as usize, |_, _| {});
        noise_verdict(&self.decoded.m, jumps)
    }

    /// Which table entries occur in the frame.
    fn seen(&self) -> Vec<bool> {
        let mut seen = vec![false; ENTRIES];
        let mask = self.mask;
        self.rows(0, self.decoded.m.rows as usize, |_, row| {
            let seen = &mut seen[..ENTRIES];
            row.iter().for_each(|&r| seen[usize::from(r & mask)] = true);
        });
        seen
    }
}

/// Writes the display value of each raw sample of `row` to `out` (as `conv` makes it).
#[inline]
fn map_row<T>(table: &[f32], mask: u16, row: &[u16], out: &mut [T], conv: impl Fn(f32) -> T) {
    // a u16 index is always below ENTRIES: no bounds checks in the loop
    let table = &table[..ENTRIES];
    for (o, &r) in out.iter_mut().zip(row) {
        *o = conv(table[usize::from(r & mask)]);
    }
}

/// From raw 16-bit container values to stored values: masked to Bits Stored, sign-extended.
#[derive(Clone, Copy)]
struct Stored {
    /// `16 - bits_stored`.
    shift: u32,
    mask: u16,
    signed: bool,
}

impl Stored {
    /// The table index of stored value `s`: its raw bits masked to Bits Stored.
    fn index(self, s: i32) -> u16 {
        (s as u16) & self.mask
    }

    /// Smallest and largest stored value of a row (`(i32::MAX, i32::MIN)` for an empty row).
    fn range(self, row: &[u16]) -> (i32, i32) {
        if self.signed {
            let sh = self.shift;
            let (lo, hi) = row.iter().fold((i16::MAX, i16::MIN), |(a, b), &r| {
                let s = ((r << sh) as i16) >> sh;
                (a.min(s), b.max(s))
            });
            if row.is_empty() {
                (i32::MAX, i32::MIN)
            } else {
                (lo.into(), hi.into())
            }
        } else {
            let mask = self.mask;
            let (lo, hi) = row.iter().fold((u16::MAX, 0u16), |(a, b), &r| {
                let s = r & mask;
                (a.min(s), b.max(s))
            });
            if row.is_empty() {
                (i32::MAX, i32::MIN)
            } else {
                (lo.into(), hi.into())
            }
        }
    }

    /// Horizontally adjacent pairs of a row whose stored values differ by more than `t`.
    fn jumps(self, row: &[u16], t: u16) -> usize {
        let (Some(a), Some(b)) = (row.get(..row.len().wrapping_sub(1)), row.get(1..)) else {
            return 0;
        };
        // counted in u16 lanes, blocks short enough not to overflow them
        const BLOCK: usize = 1 << 15;
        let mut total = 0usize;
        for (a, b) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
            let mut n = 0u16;
            if self.signed {
                let sh = self.shift;
                for (&a, &b) in a.iter().zip(b) {
                    let (a, b) = (((a << sh) as i16) >> sh, ((b << sh) as i16) >> sh);
                    n += u16::from(a.abs_diff(b) > t);
                }
            } else {
                let mask = self.mask;
                for (&a, &b) in a.iter().zip(b) {
                    n += u16::from((a & mask).abs_diff(b & mask) > t);
                }
            }
            total += usize::from(n);
        }
        total
    }
}

/// Smallest and largest stored value of the frame.
fn stored_range(decoded: &Decoded<'_>, stored: Stored) -> (i32, i32) {
    let cols = decoded.m.cols as usize;
    let mut scratch = Vec::new();
    (0..decoded.m.rows as usize)
        .map(|y| stored.range(row_u16(&decoded.samples, y, cols, &mut scratch)))
        .fold((i32::MAX, i32::MIN), |(a, b), (lo, hi)| {
            (a.min(lo), b.max(hi))
        })
}

/// Row `y` of grayscale samples as 16-bit container values: borrowed when they are `u16`
/// already, else widened into `scratch`.
fn row_u16<'a>(
    samples: &'a Samples<'_>,
    y: usize,
    cols: usize,
    scratch: &'a mut Vec<u16>,
) -> &'a [u16] {
    let range = y * cols..(y + 1) * cols;
    match samples {
        Samples::U16(v) => match v {
            Cow::Borrowed(v) => &v[range],
            Cow::Owned(v) => &v[range],
        },
        Samples::U8(v) => {
            scratch.clear();
            scratch.extend(v[range].iter().map(|&b| u16::from(b)));
            scratch
        }
        Samples::Ne16(b) => {
            scratch.clear();
            scratch.extend(
                b[2 * range.start..2 * range.end]
                    .chunks_exact(2)
                    .map(|c| u16::from_ne_bytes([c[0], c[1]])),
            );
            scratch
        }
        Samples::Ne32(_) => {
            scratch.clear();
            scratch
        }
    }
}
