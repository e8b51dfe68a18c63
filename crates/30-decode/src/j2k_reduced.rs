//! JPEG 2000 frames decoded at a reduced resolution for the model input.
//!
//! A JPEG 2000 codestream is a wavelet pyramid: OpenJPEG can stop `r` levels short of the full
//! image and skip the entropy decoding of every finer level, which is most of the work. A
//! 2048×2500 lossless CR took 0.87 s to decode in full on one core, and at 8 concurrent
//! associations such frames set the latency tail (issue 14: p99 1.06 s on the real samples).
//! The model sees 224×224, so decoding at 1/4 (512×625) loses nothing it could use: the
//! resolution kept is at least twice the model input on the shorter side, and the resize of
//! preprocessing step 1 does the rest, as it does for a full-size frame.
//!
//! Only grayscale frames of the JPEG 2000 transfer syntaxes (Part 1 and High-Throughput) take
//! this path; anything it cannot do (a codestream with fewer decomposition levels, a frame
//! split over fragments, an unexpected size, a codec error or panic) goes back to the full
//! decode, which reports its own error, so a file is refused or accepted exactly as before.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::frame::{Decoded, PixelModule, Samples};

/// JPEG 2000 Lossless, JPEG 2000, and the three High-Throughput JPEG 2000 syntaxes.
const JPEG_2000: [&str; 5] = [
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];

/// At most this many levels are dropped (JPEG 2000 codestreams commonly have 5).
const MAX_REDUCE: u32 = 5;

/// How many resolution levels to drop so that the shorter side stays at least `min_side`
/// (0: decode in full).
pub(crate) fn levels_to_drop(rows: u32, cols: u32, min_side: u32) -> u32 {
    let short = rows.min(cols);
    (1..=MAX_REDUCE)
        .take_while(|r| short.div_ceil(1 << r) >= min_side.max(1))
        .last()
        .unwrap_or(0)
}

/// Whether `m` is a frame this module decodes reduced (grayscale JPEG 2000 far larger than
/// `min_side`); returns the number of levels to drop.
pub(crate) fn applies(m: &PixelModule, min_side: u32) -> Option<u32> {
    let r = levels_to_drop(m.rows, m.cols, min_side);
    (r > 0 && m.spp == 1 && JPEG_2000.contains(&m.ts.as_str())).then_some(r)
}

/// Decodes `stream` (one frame's codestream) `reduce` levels short of full resolution. `Err`
/// says why not; the caller then decodes in full.
pub(crate) fn decode(
    mut m: PixelModule,
    stream: &[u8],
    reduce: u32,
) -> Result<Decoded<'static>, String> {
    let params = jpeg2k::DecodeParameters::new().reduce(reduce);
    let img = catch_unwind(AssertUnwindSafe(|| {
        jpeg2k::Image::from_bytes_with(stream, params)
    }))
    .map_err(|_| "decoder panicked".to_string())?
    .map_err(|e| e.to_string())?;
    let comps = img.components();
    let [c] = comps else {
        return Err(format!("{} components, 1 expected", comps.len()));
    };
    let (w, h) = (c.width(), c.height());
    let (want_w, want_h) = (m.cols.div_ceil(1 << reduce), m.rows.div_ceil(1 << reduce));
    if (w, h) != (want_w, want_h) {
        return Err(format!("{w}x{h} decoded, {want_w}x{want_h} expected"));
    }
    let data = c.data();
    if data.len() != w as usize * h as usize {
        return Err(format!("{} samples for {w}x{h}", data.len()));
    }
    // The same container layout as the full decode (dicom-pixeldata's adapter keeps the low
    // bytes of each sample); the caller interprets them with Bits Stored and the sign.
    let samples = match m.bits_allocated {
        8 => Samples::U8(data.iter().map(|&v| v as u8).collect::<Vec<_>>().into()),
        16 => Samples::Ne16(
            data.iter()
                .flat_map(|&v| (v as u16).to_ne_bytes())
                .collect::<Vec<_>>()
                .into(),
        ),
        _ => Samples::Ne32(data.iter().flat_map(|&v| v.to_ne_bytes()).collect()),
    };
    m.rows = h;
    m.cols = w;
    Ok(Decoded {
        photometric: m.photometric.clone(),
        planar: false,
        m,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::levels_to_drop;

    /// The daemon's case: a 2048×2500 lossless CR (a shared sample) reaches the model input
    /// decoded at 1/4, 512×625.
    #[test]
    fn a_large_jpeg_2000_frame_is_decoded_at_half_resolution() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
            "../../../shared/data/dicom-samples/good/22_CR_hand_J2KLossless_MONO2_12u_SOTquirk.dcm",
        );
        if !path.exists() {
            assert!(
                std::env::var_os("RADROUTE_ALLOW_SKIP").is_some(),
                "shared DICOM samples not found (set RADROUTE_ALLOW_SKIP=1 to skip)"
            );
            eprintln!("shared DICOM samples not found; skipping");
            return;
        }
        let obj = crate::open_dicom(&path).expect("sample opens");
        let d = crate::frame::decode_samples_for_size(&obj, 0, crate::REDUCED_DECODE_MIN_SIDE)
            .expect("decodes");
        assert_eq!((d.m.cols, d.m.rows), (1024, 1250));
        let input = crate::model_input(&obj).expect("model input");
        assert_eq!(input.len(), 3 * 224 * 224);
    }

    #[test]
    fn keeps_at_least_the_asked_side() {
        // 2048×2500 CR, model input 224, keep ≥ 448: 1/4 → 512×625
        assert_eq!(levels_to_drop(2500, 2048, 448), 2);
        // a mammogram 3328×4084: 1/4 → 832, 1/8 → 416 < 448
        assert_eq!(levels_to_drop(4084, 3328, 448), 2);
        assert_eq!(levels_to_drop(896, 1000, 448), 1);
        assert_eq!(levels_to_drop(895, 1000, 448), 1, "ceil(895/2) = 448");
        assert_eq!(levels_to_drop(894, 1000, 448), 0);
        assert_eq!(levels_to_drop(512, 512, 448), 0);
        assert_eq!(
            levels_to_drop(60_000, 60_000, 448),
            5,
            "never more than 5 levels"
        );
    }
}
