//! Transcoding for destinations that accept only uncompressed syntaxes: whole compressed samples
//! come out decompressed; corrupt compressed pixels are refused, never passed off as clean native
//! pixels (issue 10).

use std::path::PathBuf;

use radroute_forward::part10::{to_uncompressed, Part10Error};

fn samples() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/dicom-samples");
    if dir.exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("RADROUTE_ALLOW_SKIP").is_some(),
        "shared samples not found (set RADROUTE_ALLOW_SKIP=1 to skip)"
    );
    eprintln!("shared samples not found; skipping");
    None
}

fn transcode(dir: &std::path::Path, name: &str) -> Result<Vec<u8>, Part10Error> {
    let bytes = std::fs::read(dir.join(name)).expect("sample");
    to_uncompressed(&bytes, false)
}

/// M3's lossless JPEG stream is damaged but decodes without a codec error, to noise; M10 and M11
/// are cut inside their last fragment. Before issue 10 M3 went out as 512x512 clean-looking
/// native pixels.
#[test]
fn corrupt_compressed_pixels_are_not_decompressed() {
    let Some(dir) = samples() else { return };
    for (name, why) in [
        ("malformed/M3_JPEGLossless_bad_stream.dcm", "noise"),
        ("malformed/M10_derived_cut_in_header.dcm", "end-of-image"),
        ("malformed/M11_derived_cut_mid_fragment.dcm", "end-of-image"),
    ] {
        match transcode(&dir, name) {
            Err(e @ Part10Error::CorruptPixels { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains(why) && text.contains("1.2.840.10008.1.2.4."),
                    "{name}: {text}"
                );
            }
            Err(other) => panic!("{name}: refused for another reason: {other}"),
            Ok(bytes) => panic!("{name}: decompressed to {} bytes", bytes.len()),
        }
    }
}

/// Whole compressed samples of every codec still transcode (the checks refuse no real image).
#[test]
fn whole_compressed_samples_still_transcode() {
    let Some(dir) = samples() else { return };
    for name in [
        "good/05_MR_RLE_MONO2_16s.dcm",
        "good/06_MR_RLE_MONO2_12in16_10frames.dcm",
        "good/07_OT_JPEGBaseline_MONO2_8u.dcm",
        "good/08_OT_JPEGBaseline_YBRFULL_8u.dcm",
        "good/12_US_JPEGLosslessSV1_MONO2_8u.dcm",
        "good/13_NM_JPEGLosslessSV1_MONO2_16s.dcm",
        "good/18_CR_tibia_J2K_MONO1_10u.dcm",
        "good/25_DX_pedpelvis_J2K_RGB_8u.dcm",
        "good/26_OT_HTJ2KLossless_RGB_8u.dcm",
        "good/27_JPEGLSLossless_MONO2_15s.dcm",
        "good/31_CR_tibia_JPEGLSNear_MONO1_10u.dcm",
        "malformed/M7_bad_sequence_JPEGLL.dcm",
    ] {
        let out = transcode(&dir, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(out.len() > 1000, "{name}: {} bytes", out.len());
    }
}
