//! Damaged copies of small shared samples (truncated, bytes flipped in the pixel data) must give
//! a result or a typed error, never a panic: the daemon decodes whatever a modality sends.

use std::path::PathBuf;

use radroute_decode::{decode_display, open_dicom};

const SAMPLES: [&str; 8] = [
    "05_MR_RLE_MONO2_16s.dcm",
    "08_OT_JPEGBaseline_YBRFULL_8u.dcm",
    "09_NM_JPEGExtended_MONO2_12u.dcm",
    "13_NM_JPEGLosslessSV1_MONO2_16s.dcm",
    "25_DX_pedpelvis_J2K_RGB_8u.dcm",
    "26_OT_HTJ2KLossless_RGB_8u.dcm",
    "27_JPEGLSLossless_MONO2_15s.dcm",
    "24_CR_ExplicitLE_MONO1_12u_16x16.dcm",
];

/// Deterministic pseudo-random numbers (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }
}

#[test]
fn damaged_files_never_panic() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/dicom-samples/good");
    if !dir.exists() {
        assert!(
            std::env::var_os("RADROUTE_ALLOW_SKIP").is_some(),
            "shared samples not found (set RADROUTE_ALLOW_SKIP=1 to skip)"
        );
        eprintln!("shared samples not found; skipping");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rng = Lcg(42);
    let (mut ok, mut errors) = (0, 0);
    for name in SAMPLES {
        let bytes = std::fs::read(dir.join(name)).expect("sample");
        // damage the second half (pixel data lives at the end) and truncations anywhere
        for round in 0..12 {
            let mut b = bytes.clone();
            if round % 3 == 0 {
                let cut = 132 + rng.next(b.len() - 132);
                b.truncate(cut);
            } else {
                for _ in 0..(1 + rng.next(16)) {
                    let i = b.len() / 2 + rng.next(b.len() / 2);
                    b[i] ^= 1 << rng.next(8);
                }
            }
            let p = tmp.path().join(format!("{round}_{name}"));
            std::fs::write(&p, &b).expect("write");
            let r = std::panic::catch_unwind(|| open_dicom(&p).and_then(|o| decode_display(&o)));
            match r {
                Ok(Ok(img)) => {
                    assert!(
                        img.data.iter().all(|v| (0.0..=1.0).contains(v)),
                        "{name} round {round}"
                    );
                    ok += 1;
                }
                Ok(Err(_)) => errors += 1,
                Err(_) => panic!("{name} round {round}: panicked"),
            }
        }
    }
    eprintln!("{ok} damaged files decoded, {errors} gave typed errors");
    assert!(errors > 0);
}
