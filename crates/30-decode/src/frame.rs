//! Decoding the stored samples of one frame, whatever the transfer syntax.
//!
//! dicom-pixeldata (with its `openjpeg-sys` and `charls` codecs) decodes everything except 12-bit
//! lossy JPEG, which goes to [`crate::jpeg12`]. Codec panics are caught and reported as
//! [`DecodeError::CorruptPixelData`], so a hostile file cannot bring the daemon down.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};

use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::{FileDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::attrs::{opt_u16, req_u16, string_opt, uid_of};
use crate::{j2k_reduced, jpeg12, DecodeError};

/// JPEG Extended (Process 2 & 4): 8- or 12-bit lossy JPEG.
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
/// JPEG Lossless, Non-Hierarchical (Process 14) and its Selection Value 1 variant.
const JPEG_LOSSLESS: [&str; 2] = ["1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"];
/// Transfer syntaxes whose fragments hold JPEG, JPEG-LS or JPEG 2000 codestreams, which end with
/// the EOI/EOC marker `FF D9`.
pub(crate) const MARKER_CODECS: &str = "1.2.840.10008.1.2.4.";

/// Largest frame (rows × columns × samples) decoded; a bigger header is refused before any
/// codec allocates for it (a mammogram is about 14 M samples).
const MAX_SAMPLES: u64 = 1 << 27;

/// The stored samples of one frame, before any Modality LUT or VOI.
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
    /// 1 (grayscale) or 3 (colour, interleaved).
    pub samples_per_pixel: u16,
    /// Bits Stored: the largest sample value is `2^bits_stored - 1` (unsigned).
    pub bits_stored: u16,
    /// Pixel Representation 1 (two's complement).
    pub signed: bool,
    /// Photometric interpretation of `samples` (a codec may have turned YBR into RGB).
    pub photometric: String,
    /// Number of frames in the object; frame 0 is the one decoded for classification.
    pub number_of_frames: u32,
    /// `rows * cols * samples_per_pixel` values, sign-extended, as `f32` (exact up to 24 bits).
    pub samples: Vec<f32>,
}

impl RawFrame {
    /// Smallest and largest sample (for checks and min–max VOI).
    pub fn min_max(&self) -> (f32, f32) {
        self.samples
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }
}

/// Image Pixel module attributes needed to interpret the samples.
pub(crate) struct PixelModule {
    pub uid: String,
    pub ts: String,
    pub rows: u32,
    pub cols: u32,
    pub spp: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub photometric: String,
    pub frames: u32,
}

pub(crate) fn read_module(
    obj: &FileDicomObject<InMemDicomObject>,
) -> Result<PixelModule, DecodeError> {
    let uid = uid_of(obj);
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string();
    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        let float = obj
            .element_opt(tags::FLOAT_PIXEL_DATA)
            .ok()
            .flatten()
            .is_some()
            || obj
                .element_opt(tags::DOUBLE_FLOAT_PIXEL_DATA)
                .ok()
                .flatten()
                .is_some();
        if float {
            return Err(DecodeError::UnsupportedPixelFormat {
                uid,
                detail: "float pixel data".into(),
            });
        }
        return Err(DecodeError::MissingAttribute {
            uid,
            name: "PixelData",
        });
    }
    let rows = req_u16(obj, tags::ROWS, "Rows", &uid)?;
    let cols = req_u16(obj, tags::COLUMNS, "Columns", &uid)?;
    let bits_allocated = req_u16(obj, tags::BITS_ALLOCATED, "BitsAllocated", &uid)?;
    let bits_stored =
        opt_u16(obj, tags::BITS_STORED, "BitsStored", &uid)?.unwrap_or(bits_allocated);
    let spp = opt_u16(obj, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel", &uid)?.unwrap_or(1);
    let pr = opt_u16(obj, tags::PIXEL_REPRESENTATION, "PixelRepresentation", &uid)?.unwrap_or(0);
    let photometric = string_opt(obj, tags::PHOTOMETRIC_INTERPRETATION).ok_or_else(|| {
        DecodeError::MissingAttribute {
            uid: uid.clone(),
            name: "PhotometricInterpretation",
        }
    })?;
    let frames = match string_opt(obj, tags::NUMBER_OF_FRAMES) {
        None => 1,
        Some(s) => s
            .parse::<u32>()
            .map_err(|_| DecodeError::InvalidAttribute {
                uid: uid.clone(),
                name: "NumberOfFrames",
                value: s.clone(),
            })?
            .max(1),
    };
    let invalid = |name: &'static str, value: u16| DecodeError::InvalidAttribute {
        uid: uid.clone(),
        name,
        value: value.to_string(),
    };
    if rows == 0 {
        return Err(invalid("Rows", rows));
    }
    if cols == 0 {
        return Err(invalid("Columns", cols));
    }
    if !matches!(bits_allocated, 8 | 16 | 32) {
        return Err(DecodeError::UnsupportedPixelFormat {
            uid,
            detail: format!("BitsAllocated {bits_allocated}"),
        });
    }
    if u64::from(rows) * u64::from(cols) * u64::from(spp) > MAX_SAMPLES {
        return Err(DecodeError::UnsupportedPixelFormat {
            uid,
            detail: format!("{cols}x{rows}x{spp} samples exceed the {MAX_SAMPLES} limit"),
        });
    }
    if bits_stored == 0 || bits_stored > bits_allocated {
        return Err(invalid("BitsStored", bits_stored));
    }
    if pr > 1 {
        return Err(invalid("PixelRepresentation", pr));
    }
    let pi_ok = match spp {
        1 => matches!(photometric.as_str(), "MONOCHROME1" | "MONOCHROME2"),
        3 => matches!(
            photometric.as_str(),
            "RGB" | "YBR_FULL" | "YBR_FULL_422" | "YBR_RCT" | "YBR_ICT" | "YBR_PARTIAL_420"
        ),
        _ => false,
    };
    if !pi_ok {
        return Err(DecodeError::UnsupportedPixelFormat {
            uid,
            detail: format!("{spp} samples per pixel, {photometric}"),
        });
    }
    Ok(PixelModule {
        uid,
        ts,
        rows: rows.into(),
        cols: cols.into(),
        spp,
        bits_allocated,
        bits_stored,
        signed: pr == 1,
        photometric,
        frames,
    })
}

/// The stored samples of one frame as the decoder left them, before any conversion: borrowed
/// from the object for native (uncompressed) pixel data, owned after a codec. Exactly
/// `rows * cols * samples_per_pixel` values (or bytes of them), in native byte order.
pub(crate) enum Samples<'a> {
    /// 16-bit containers (native pixel data, or TurboJPEG output).
    U16(Cow<'a, [u16]>),
    /// 8-bit containers.
    U8(Cow<'a, [u8]>),
    /// 16-bit containers as native-endian byte pairs (dicom-pixeldata codecs, or native
    /// little-endian pixel data held as bytes).
    Ne16(Cow<'a, [u8]>),
    /// 32-bit containers as native-endian bytes.
    Ne32(Vec<u8>),
}

/// Frame `frame` decoded to [`Samples`], with what is needed to interpret them.
pub(crate) struct Decoded<'a> {
    /// Image Pixel module of the object.
    pub m: PixelModule,
    /// Photometric interpretation of the samples as decoded (a JPEG codec may give RGB; native
    /// YBR is still YBR here).
    pub photometric: String,
    /// Planar Configuration of the decoded samples is 1 (colour planes one after the other).
    pub planar: bool,
    /// The samples.
    pub samples: Samples<'a>,
}

impl PixelModule {
    /// A [`DecodeError::CorruptPixelData`] about this object.
    pub fn corrupt(&self, detail: String) -> DecodeError {
        DecodeError::CorruptPixelData {
            uid: self.uid.clone(),
            ts: self.ts.clone(),
            detail,
        }
    }

    /// Samples in one frame.
    pub fn per_frame(&self) -> usize {
        self.rows as usize * self.cols as usize * self.spp as usize
    }
}

/// Decodes frame `frame` (0-based) of the object into stored sample values.
///
/// radroute classifies frame 0 (docs/preprocessing.md step 0.1).
pub fn decode_frame(
    obj: &FileDicomObject<InMemDicomObject>,
    frame: u32,
) -> Result<RawFrame, DecodeError> {
    decode_samples(obj, frame)?.into_raw()
}

/// Like [`decode_samples`], for an image that will be shrunk until its shorter side is at most
/// `min_side / 2`: a grayscale JPEG 2000 frame far larger than that is decoded at a reduced
/// resolution whose shorter side is still at least `min_side` ([`crate::j2k_reduced`]); the
/// returned module then holds the reduced Rows and Columns. Everything else, and anything the
/// reduced decode cannot do, is decoded in full by [`decode_samples`].
pub(crate) fn decode_samples_for_size(
    obj: &FileDicomObject<InMemDicomObject>,
    frame: u32,
    min_side: u32,
) -> Result<Decoded<'_>, DecodeError> {
    let m = read_module(obj)?;
    let Some(reduce) = j2k_reduced::applies(&m, min_side) else {
        return decode_samples(obj, frame);
    };
    if frame >= m.frames || check_end_marker(obj, &m).is_err() {
        return decode_samples(obj, frame);
    }
    let Ok(stream) = jpeg_fragment(obj, &m, frame) else {
        return decode_samples(obj, frame);
    };
    match j2k_reduced::decode(m, &stream, reduce) {
        Ok(decoded) => Ok(decoded),
        Err(_) => decode_samples(obj, frame),
    }
}

/// Decodes frame `frame` without converting the samples: native pixel data stays borrowed.
pub(crate) fn decode_samples(
    obj: &FileDicomObject<InMemDicomObject>,
    frame: u32,
) -> Result<Decoded<'_>, DecodeError> {
    let m = read_module(obj)?;
    if frame >= m.frames {
        return Err(DecodeError::InvalidAttribute {
            uid: m.uid,
            name: "NumberOfFrames",
            value: format!("{} (frame {frame} requested)", m.frames),
        });
    }
    let Some(ts) = TransferSyntaxRegistry
        .get(&m.ts)
        .filter(|ts| ts.can_decode_all())
    else {
        return Err(DecodeError::UnsupportedTransferSyntax {
            uid: m.uid,
            ts: m.ts,
        });
    };
    if !ts.is_encapsulated_pixel_data() {
        if let Some(samples) = native_samples(obj, &m, frame)? {
            return Ok(Decoded {
                photometric: m.photometric.clone(),
                planar: false,
                m,
                samples,
            });
        }
    }
    if m.ts.starts_with(MARKER_CODECS) {
        check_end_marker(obj, &m)?;
    }
    if JPEG_LOSSLESS.contains(&m.ts.as_str()) {
        let stream = jpeg_fragment(obj, &m, frame)?;
        return decode_turbojpeg(m, &stream);
    }
    if m.ts == JPEG_EXTENDED {
        let stream = jpeg_fragment(obj, &m, frame)?;
        if jpeg12::sof_precision(&stream).is_some_and(|p| p > 8) {
            return decode_turbojpeg(m, &stream);
        }
    }
    let decoded = catch_unwind(AssertUnwindSafe(|| obj.decode_pixel_data_frame(frame)))
        .map_err(|_| m.corrupt("decoder panicked".into()))?
        .map_err(|e| m.corrupt(e.to_string()))?;
    let photometric = decoded.photometric_interpretation().as_str().to_string();
    let planar = decoded.planar_configuration() as u8 != 0;
    let need = m.per_frame() * (m.bits_allocated / 8) as usize;
    let bytes = decoded.data();
    if bytes.len() < need {
        return Err(m.corrupt(format!(
            "decoded frame has {} bytes, {need} expected for {}x{}x{} at {} bits",
            bytes.len(),
            m.rows,
            m.cols,
            m.spp,
            m.bits_allocated
        )));
    }
    let mut bytes = decoded.into_data();
    bytes.truncate(need);
    let samples = match m.bits_allocated {
        8 => Samples::U8(Cow::Owned(bytes)),
        16 => Samples::Ne16(Cow::Owned(bytes)),
        _ => Samples::Ne32(bytes),
    };
    Ok(Decoded {
        m,
        photometric,
        planar,
        samples,
    })
}

/// Uncompressed little-endian transfer syntaxes: Implicit and Explicit VR Little Endian.
const LITTLE_ENDIAN_NATIVE: [&str; 2] = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"];

/// Frame `frame` of native (uncompressed) pixel data, borrowed from the object without a copy,
/// when the element holds 16-bit words (OW) for 16 bits allocated or bytes for 8, and the header
/// is one that dicom-pixeldata would accept too. `None` sends the object down dicom-pixeldata's
/// path, which gives the same samples (or its own error) in every other case.
fn native_samples<'a>(
    obj: &'a FileDicomObject<InMemDicomObject>,
    m: &PixelModule,
    frame: u32,
) -> Result<Option<Samples<'a>>, DecodeError> {
    let Some(elem) = obj.element_opt(tags::PIXEL_DATA).ok().flatten() else {
        return Ok(None);
    };
    let Value::Primitive(p) = elem.value() else {
        return Ok(None);
    };
    // dicom-pixeldata needs these present (read_module defaults them) and refuses values in
    // functional groups whose multiplicities disagree: leave all that to it.
    let present = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .is_some_and(|e| e.to_int::<u16>().is_ok())
    };
    let planar_ok = match obj.element_opt(tags::PLANAR_CONFIGURATION).ok().flatten() {
        None => true,
        Some(e) => matches!(e.to_int::<i16>(), Ok(0 | 1)),
    };
    let groups = [
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
    ]
    .iter()
    .any(|&t| obj.element_opt(t).ok().flatten().is_some());
    let header_ok = [
        tags::SAMPLES_PER_PIXEL,
        tags::BITS_STORED,
        tags::HIGH_BIT,
        tags::PIXEL_REPRESENTATION,
    ]
    .into_iter()
    .all(present);
    if !header_ok || !planar_ok || groups || m.spp != 1 {
        return Ok(None);
    }
    let n = m.per_frame();
    let range = n * frame as usize..n * (frame as usize + 1);
    let out_of_range = || {
        m.corrupt(format!(
            "pixel data holds fewer samples than frame {frame} of {}x{} needs",
            m.cols, m.rows
        ))
    };
    match (p, m.bits_allocated) {
        (PrimitiveValue::U16(v), 16) => {
            let s = v.get(range).ok_or_else(out_of_range)?;
            Ok(Some(Samples::U16(Cow::Borrowed(s))))
        }
        (PrimitiveValue::U8(v), 8) => {
            let s = v.get(range).ok_or_else(out_of_range)?;
            Ok(Some(Samples::U8(Cow::Borrowed(s))))
        }
        // 16-bit samples held as their bytes (radroute's store step hands Pixel Data over this
        // way, uncopied): little-endian on the wire, so native order on a little-endian host.
        (PrimitiveValue::U8(v), 16)
            if cfg!(target_endian = "little")
                && LITTLE_ENDIAN_NATIVE
                    .contains(&obj.meta().transfer_syntax().trim_end_matches(['\0', ' '])) =>
        {
            let s = v
                .get(2 * range.start..2 * range.end)
                .ok_or_else(out_of_range)?;
            Ok(Some(Samples::Ne16(Cow::Borrowed(s))))
        }
        _ => Ok(None),
    }
}

impl Decoded<'_> {
    /// Converts to [`RawFrame`]: masks to Bits Stored, sign-extends, turns planar colour into
    /// interleaved, native YBR_FULL into RGB, and refuses noise ([`check_plausible`]).
    pub fn into_raw(self) -> Result<RawFrame, DecodeError> {
        let m = &self.m;
        let conv = |raw: u64| stored_value(raw, m.bits_stored, m.signed);
        let samples: Vec<f32> = match &self.samples {
            Samples::U16(v) => v.iter().map(|&x| conv(u64::from(x))).collect(),
            Samples::U8(v) => v.iter().map(|&x| conv(u64::from(x))).collect(),
            Samples::Ne16(b) => b
                .chunks_exact(2)
                .map(|c| conv(u64::from(u16::from_ne_bytes([c[0], c[1]]))))
                .collect(),
            Samples::Ne32(b) => b
                .chunks_exact(4)
                .map(|c| conv(u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))))
                .collect(),
        };
        let photometric = self.photometric;
        let samples = if photometric == "YBR_FULL" || photometric == "YBR_FULL_422" {
            // native (uncompressed) YBR: JPEG codecs already give RGB
            if self.planar && photometric == "YBR_FULL_422" {
                return Err(DecodeError::UnsupportedPixelFormat {
                    uid: self.m.uid,
                    detail: "planar YBR_FULL_422".into(),
                });
            }
            ybr_full_to_rgb(samples, m.bits_stored)
        } else {
            samples
        };
        let photometric = if photometric.starts_with("YBR") {
            "RGB".to_string()
        } else {
            photometric
        };
        check_plausible(m, &samples)?;
        Ok(RawFrame {
            rows: m.rows,
            cols: m.cols,
            samples_per_pixel: m.spp,
            bits_stored: m.bits_stored,
            signed: m.signed,
            photometric,
            number_of_frames: m.frames,
            samples,
        })
    }
}

/// Share of horizontally adjacent sample pairs that may differ by more than a quarter of the
/// value range before a grayscale frame counts as noise. Real images on the shared samples stay
/// below 0.013; a lossless JPEG whose entropy-coded data is damaged (and decodes without a codec
/// error) reaches 0.17.
const NOISE_JUMP_SHARE: f64 = 0.05;

/// Refuses grayscale frames that look like noise: a corrupt entropy-coded stream that the codec
/// decoded without complaint must not be classified as if it were an image.
fn check_plausible(m: &PixelModule, samples: &[f32]) -> Result<(), DecodeError> {
    if !noise_check_applies(m) {
        return Ok(());
    }
    let (lo, hi) = samples
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let step = (hi - lo) / 4.0;
    if step.is_nan() || step <= 0.0 {
        return Ok(());
    }
    let mut jumps = 0usize;
    for row in samples.chunks_exact(m.cols as usize) {
        jumps += row
            .windows(2)
            .filter(|d| (d[1] - d[0]).abs() > step)
            .count();
    }
    noise_verdict(m, jumps)
}

/// Whether [`check_plausible`] looks at a frame of this geometry: grayscale with enough pairs
/// for a meaningful share (a 2x2 image may legitimately be all edges).
pub(crate) fn noise_check_applies(m: &PixelModule) -> bool {
    m.spp == 1 && m.cols >= 2 && (m.rows as usize) * (m.cols as usize) >= 64 * 64
}

/// The noise check's verdict on a grayscale frame in which `jumps` horizontally adjacent pairs
/// differ by more than a quarter of the value range.
pub(crate) fn noise_verdict(m: &PixelModule, jumps: usize) -> Result<(), DecodeError> {
    let pairs = m.rows as usize * (m.cols as usize).saturating_sub(1);
    let share = jumps as f64 / pairs.max(1) as f64;
    if share > NOISE_JUMP_SHARE {
        return Err(m.corrupt(format!(
            "decoded frame looks like noise ({:.1}% of neighbouring samples jump by more than a quarter of the range)",
            share * 100.0
        )));
    }
    Ok(())
}

/// A stored sample from its raw bits: masked to Bits Stored, sign-extended when signed.
fn stored_value(raw: u64, bits_stored: u16, signed: bool) -> f32 {
    let bs = u32::from(bits_stored);
    let v = raw & ((1u64 << bs) - 1);
    if signed && v & (1u64 << (bs - 1)) != 0 {
        (v as i64 - (1i64 << bs)) as f32
    } else {
        v as f32
    }
}

/// YBR_FULL to RGB (PS3.3 C.7.6.3.1.2), clamped to the sample range.
fn ybr_full_to_rgb(mut s: Vec<f32>, bits_stored: u16) -> Vec<f32> {
    let max = ((1u32 << bits_stored) - 1) as f32;
    let half = (1u32 << (bits_stored - 1)) as f32;
    for px in s.chunks_exact_mut(3) {
        let (y, cb, cr) = (px[0], px[1] - half, px[2] - half);
        px[0] = (y + 1.402 * cr).clamp(0.0, max);
        px[1] = (y - 0.344_136 * cb - 0.714_136 * cr).clamp(0.0, max);
        px[2] = (y + 1.772 * cb).clamp(0.0, max);
    }
    s
}

/// The compressed stream of one frame of an encapsulated object.
fn jpeg_fragment(
    obj: &FileDicomObject<InMemDicomObject>,
    m: &PixelModule,
    frame: u32,
) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |detail: &str| DecodeError::CorruptPixelData {
        uid: m.uid.clone(),
        ts: m.ts.clone(),
        detail: detail.to_string(),
    };
    let elem = obj
        .element(tags::PIXEL_DATA)
        .map_err(|_| DecodeError::MissingAttribute {
            uid: m.uid.clone(),
            name: "PixelData",
        })?;
    let Value::PixelSequence(seq) = elem.value() else {
        return Err(corrupt("pixel data is not encapsulated"));
    };
    let fragments = seq.fragments();
    if fragments.is_empty() {
        return Err(corrupt("no fragments"));
    }
    if m.frames == 1 {
        Ok(fragments.iter().flat_map(|f| f.iter().copied()).collect())
    } else if fragments.len() == m.frames as usize {
        Ok(fragments[frame as usize].to_vec())
    } else {
        Err(DecodeError::UnsupportedPixelFormat {
            uid: m.uid.clone(),
            detail: "multi-frame 12-bit JPEG with frames split over fragments".into(),
        })
    }
}

/// A truncated encapsulated object (cut inside its last fragment) still parses; its last
/// fragment then lacks the end-of-image/codestream marker `FF D9` (one padding byte allowed).
pub(crate) fn check_end_marker(
    obj: &FileDicomObject<InMemDicomObject>,
    m: &PixelModule,
) -> Result<(), DecodeError> {
    let Ok(elem) = obj.element(tags::PIXEL_DATA) else {
        return Ok(());
    };
    let Value::PixelSequence(seq) = elem.value() else {
        return Ok(());
    };
    let Some(last) = seq.fragments().last() else {
        return Err(DecodeError::CorruptPixelData {
            uid: m.uid.clone(),
            ts: m.ts.clone(),
            detail: "encapsulated pixel data without fragments".into(),
        });
    };
    let tail: &[u8] = last;
    let ends = |t: &[u8]| t.ends_with(&[0xFF, 0xD9]);
    let padded = tail.len() >= 3 && ends(&tail[..tail.len() - 1]);
    if ends(tail) || padded {
        Ok(())
    } else {
        Err(DecodeError::CorruptPixelData {
            uid: m.uid.clone(),
            ts: m.ts.clone(),
            detail: "last fragment has no end-of-image marker (truncated)".into(),
        })
    }
}

fn decode_turbojpeg(m: PixelModule, stream: &[u8]) -> Result<Decoded<'static>, DecodeError> {
    let want = u32::from(m.spp);
    let img = catch_unwind(|| jpeg12::decode_any(stream, want))
        .map_err(|_| m.corrupt("decoder panicked".into()))?
        .map_err(|e| m.corrupt(e))?;
    if img.width != m.cols || img.height != m.rows {
        return Err(m.corrupt(format!(
            "JPEG stream is {}x{}, header says {}x{}",
            img.width, img.height, m.cols, m.rows
        )));
    }
    if img.samples.len() != m.per_frame() {
        return Err(m.corrupt(format!(
            "JPEG stream has {} samples, {} expected",
            img.samples.len(),
            m.per_frame()
        )));
    }
    let photometric = if img.components == 3 {
        "RGB".into()
    } else {
        m.photometric.clone()
    };
    Ok(Decoded {
        m,
        photometric,
        planar: false,
        samples: Samples::U16(Cow::Owned(img.samples)),
    })
}
