//! Time of `apply_label` and of writing the coerced file (not a test), on a CR sample.
//! `cargo bench -p radroute-coerce`. Needs ../shared/data/dicom-samples.

use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;
use dicom_object::open_file;
use radroute_coerce::{
    apply_label, BodyPart, Classification, CoercionPolicy, ModelInfo, Overwrite,
};

fn main() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/dicom-samples/good/23_CR_tibia_ExplicitLE_MONO1_10u.dcm");
    let Ok(obj) = open_file(&src) else {
        eprintln!("sample not found");
        return;
    };
    let result = Classification {
        label: Some(BodyPart {
            class: "knee".into(),
            body_part: "KNEE".into(),
            snomed: "72696002".into(),
            meaning: "Knee region structure".into(),
            correct_threshold: None,
        }),
        scores: vec![("shoulder".into(), 0.1), ("knee".into(), 0.9)],
    };
    let model = ModelInfo {
        name: "bench".into(),
        version: "1".into(),
    };
    let policy = CoercionPolicy {
        overwrite: Overwrite::Always,
        ..CoercionPolicy::default()
    };
    let runs = 200;
    let mut copies: Vec<_> = (0..runs).map(|_| obj.clone()).collect();
    let t = Instant::now();
    for o in &mut copies {
        let _ = apply_label(o, &result, &model, &policy, Utc::now().fixed_offset());
    }
    let apply_us = t.elapsed().as_secs_f64() * 1e6 / runs as f64;
    let out = std::env::temp_dir().join("radroute-coerce-bench.dcm");
    let t = Instant::now();
    for o in copies.iter().take(20) {
        let _ = o.write_to_file(&out);
    }
    let write_ms = t.elapsed().as_secs_f64() * 1000.0 / 20.0;
    let _ = std::fs::remove_file(&out);
    println!("| stage | time |");
    println!("|---|---:|");
    println!("| apply_label (1760x1760 CR, in memory) | {apply_us:.0} µs |");
    println!("| write coerced file (6 MB, page cache) | {write_ms:.1} ms |");
}
