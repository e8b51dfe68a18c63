//! Decoding the stored samples of one frame, whatever the transfer syntax.
//!
//! dicom-pixeldata (with its `openjpeg-sys` and `charls` codecs) decodes everything except 12-bit
//! lossy JPEG, which goes to [`crate::jpeg12`]. Codec panics are caught and reported as
//! [`DecodeError::CorruptPixelData`], so a hostile file cannot bring the daemon down.

use std::panic::{catch_unwind, AssertUnwindSafe};

use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::{FileDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::attrs::{opt_u16, req_u16, string_opt, uid_of};
use crate::{jpeg12, DecodeError};

/// JPEG Extended (Process 2 & 4): 8- or 12-bit lossy JPEG.
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
/// JPEG Lossless, Non-Hierarchical (Process 14) and its Selection Value 1 variant.
const JPEG_LOSSLESS: [&str; 2] = ["1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"];
/// Transfer syntaxes whose fragments hold JPEG, JPEG-LS or JPEG 2000 codestreams, which end with
/// the EOI/EOC marker `FF D9`.
const MARKER_CODECS: &str = "1.2.840.10008.1.2.4.";

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
struct PixelModule {
    uid: String,
    ts: String,
    rows: u32,
    cols: u32,
    spp: u16,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
    photometric: String,
    frames: u32,
}

fn read_module(obj: &FileDicomObject<InMemDicomObject>) -> Result<PixelModule, DecodeError> {
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

/// Decodes frame `frame` (0-based) of the object into stored sample values.
///
/// radroute classifies frame 0 (docs/preprocessing.md step 0.1).
pub fn decode_frame(
    obj: &FileDicomObject<InMemDicomObject>,
    frame: u32,
) -> Result<RawFrame, DecodeError> {
    let m = read_module(obj)?;
    if frame >= m.frames {
        return Err(DecodeError::InvalidAttribute {
            uid: m.uid,
            name: "NumberOfFrames",
            value: format!("{} (frame {frame} requested)", m.frames),
        });
    }
    let supported = TransferSyntaxRegistry
        .get(&m.ts)
        .is_some_and(|ts| ts.can_decode_all());
    if !supported {
        return Err(DecodeError::UnsupportedTransferSyntax {
            uid: m.uid,
            ts: m.ts,
        });
    }
    if m.ts.starts_with(MARKER_CODECS) {
        check_end_marker(obj, &m)?;
    }
    if JPEG_LOSSLESS.contains(&m.ts.as_str()) {
        let stream = jpeg_fragment(obj, &m, frame)?;
        return decode_turbojpeg(&m, &stream);
    }
    if m.ts == JPEG_EXTENDED {
        let stream = jpeg_fragment(obj, &m, frame)?;
        if jpeg12::sof_precision(&stream).is_some_and(|p| p > 8) {
            return decode_turbojpeg(&m, &stream);
        }
    }
    let corrupt = |detail: String| DecodeError::CorruptPixelData {
        uid: m.uid.clone(),
        ts: m.ts.clone(),
        detail,
    };
    let decoded = catch_unwind(AssertUnwindSafe(|| obj.decode_pixel_data_frame(frame)))
        .map_err(|_| corrupt("decoder panicked".into()))?
        .map_err(|e| corrupt(e.to_string()))?;
    let photometric = decoded.photometric_interpretation().as_str().to_string();
    let bytes = decoded.data();
    let samples = samples_from_bytes(bytes, &m).map_err(corrupt)?;
    let samples = if photometric == "YBR_FULL" || photometric == "YBR_FULL_422" {
        // native (uncompressed) YBR: JPEG codecs already give RGB
        if decoded.planar_configuration() as u8 != 0 && photometric == "YBR_FULL_422" {
            return Err(DecodeError::UnsupportedPixelFormat {
                uid: m.uid,
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
    check_plausible(&m, &samples)?;
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

/// Interprets native-endian decoded bytes as samples: masks to Bits Stored, sign-extends,
/// and turns planar colour (Planar Configuration 1) into interleaved.
fn samples_from_bytes(bytes: &[u8], m: &PixelModule) -> Result<Vec<f32>, String> {
    let per_frame = m.rows as usize * m.cols as usize * m.spp as usize;
    let width = (m.bits_allocated / 8) as usize;
    let need = per_frame * width;
    if bytes.len() < need {
        return Err(format!(
            "decoded frame has {} bytes, {need} expected for {}x{}x{} at {} bits",
            bytes.len(),
            m.rows,
            m.cols,
            m.spp,
            m.bits_allocated
        ));
    }
    let conv = |raw: u64| stored_value(raw, m.bits_stored, m.signed);
    let bytes = &bytes[..need];
    let out: Vec<f32> = match width {
        1 => bytes.iter().map(|&b| conv(u64::from(b))).collect(),
        2 => bytes
            .chunks_exact(2)
            .map(|c| conv(u64::from(u16::from_ne_bytes([c[0], c[1]]))))
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| conv(u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))))
            .collect(),
    };
    Ok(out)
}

/// Share of horizontally adjacent sample pairs that may differ by more than a quarter of the
/// value range before a grayscale frame counts as noise. Real images on the shared samples stay
/// below 0.013; a lossless JPEG whose entropy-coded data is damaged (and decodes without a codec
/// error) reaches 0.17.
const NOISE_JUMP_SHARE: f64 = 0.05;

/// Refuses grayscale frames that look like noise: a corrupt entropy-coded stream that the codec
/// decoded without complaint must not be classified as if it were an image.
fn check_plausible(m: &PixelModule, samples: &[f32]) -> Result<(), DecodeError> {
    // too few pairs for a meaningful share (a 2x2 image may legitimately be all edges)
    if m.spp != 1 || m.cols < 2 || (m.rows as usize) * (m.cols as usize) < 64 * 64 {
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
    let (mut jumps, mut pairs) = (0usize, 0usize);
    for row in samples.chunks_exact(m.cols as usize) {
        pairs += row.len() - 1;
        jumps += row
            .windows(2)
            .filter(|d| (d[1] - d[0]).abs() > step)
            .count();
    }
    let share = jumps as f64 / pairs.max(1) as f64;
    if share > NOISE_JUMP_SHARE {
        return Err(DecodeError::CorruptPixelData {
            uid: m.uid.clone(),
            ts: m.ts.clone(),
            detail: format!(
                "decoded frame looks like noise ({:.1}% of neighbouring samples jump by more than a quarter of the range)",
                share * 100.0
            ),
        });
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
fn check_end_marker(
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

fn decode_turbojpeg(m: &PixelModule, stream: &[u8]) -> Result<RawFrame, DecodeError> {
    let corrupt = |detail: String| DecodeError::CorruptPixelData {
        uid: m.uid.clone(),
        ts: m.ts.clone(),
        detail,
    };
    let want = u32::from(m.spp);
    let img = catch_unwind(|| jpeg12::decode_any(stream, want))
        .map_err(|_| corrupt("decoder panicked".into()))?
        .map_err(corrupt)?;
    if img.width != m.cols || img.height != m.rows {
        return Err(corrupt(format!(
            "JPEG stream is {}x{}, header says {}x{}",
            img.width, img.height, m.cols, m.rows
        )));
    }
    let samples: Vec<f32> = img
        .samples
        .iter()
        .map(|&v| stored_value(u64::from(v), m.bits_stored, m.signed))
        .collect();
    check_plausible(m, &samples)?;
    Ok(RawFrame {
        rows: m.rows,
        cols: m.cols,
        samples_per_pixel: m.spp,
        bits_stored: m.bits_stored,
        signed: m.signed,
        photometric: if img.components == 3 {
            "RGB".into()
        } else {
            m.photometric.clone()
        },
        number_of_frames: m.frames,
        samples,
    })
}
