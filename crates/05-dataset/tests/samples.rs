//! The walk against real files: every valid sample of `dicom-samples/good` is read as the store
//! step reads a received data set (walk, bounded inflate, parse), and the truncated ones of
//! `malformed/` are refused by the walk itself.
//!
//! The samples live outside the repository (`../shared/data/dicom-samples`, or
//! `$DICOM_SAMPLES`); when they are absent the test fails unless `RADROUTE_ALLOW_SKIP` is set.

use std::path::PathBuf;

use radroute_dataset::{read_part10, ReadError, Refusal};

fn samples_dir() -> Option<PathBuf> {
    let d = std::env::var_os("DICOM_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/dicom-samples")
        });
    if d.is_dir() {
        return Some(d);
    }
    assert!(
        std::env::var_os("RADROUTE_ALLOW_SKIP").is_some(),
        "shared DICOM samples not found (set RADROUTE_ALLOW_SKIP=1 to skip)"
    );
    eprintln!("shared DICOM samples not found; skipping");
    None
}

#[test]
fn every_valid_sample_passes_the_walk_and_parses() {
    let Some(dir) = samples_dir() else { return };
    let mut files: Vec<_> = std::fs::read_dir(dir.join("good"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 30, "{} files", files.len());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let read = read_part10(&bytes, 256 << 20);
        assert!(read.is_ok(), "{}: {:?}", path.display(), read.err());
    }
}

#[test]
fn truncated_samples_are_refused_by_the_walk() {
    let Some(dir) = samples_dir() else { return };
    for (file, cut_in_header) in [
        ("M1_MR_truncated_pixeldata.dcm", false),
        ("M11_derived_cut_mid_fragment.dcm", false),
        ("M10_derived_cut_in_header.dcm", true),
    ] {
        let bytes = std::fs::read(dir.join("malformed").join(file)).unwrap();
        match read_part10(&bytes, 256 << 20) {
            Err(ReadError::Refused(Refusal::TooLong { .. } | Refusal::Unterminated { .. })) => {}
            // Cut inside a header: the parser fails there, reading nothing past it.
            Err(ReadError::Parse(_)) if cut_in_header => {}
            other => panic!("{file}: {other:?}"),
        }
    }
}
