//! The whole processing path on a real CR sample with the tiny ONNX model: decode → preprocess →
//! classify (ONNX Runtime) → coerce → write → read back. Skips without the shared samples or the
//! ONNX Runtime library (which fails unless RADROUTE_ALLOW_SKIP is set).

use std::path::PathBuf;

use chrono::Utc;
use dicom_dictionary_std::tags;
use radroute_classify::{find_library, Device, Model, RuntimeOptions};
use radroute_coerce::{
    apply_label, should_classify, BodyPart, Classification, CoercionPolicy, ModelInfo, Overwrite,
};
use radroute_decode::{decode_display, open_dicom, preprocess};

#[test]
fn sample_goes_through_decode_classify_and_coerce() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let src = root.join("../shared/data/dicom-samples/good/23_CR_tibia_ExplicitLE_MONO1_10u.dcm");
    if !src.exists() {
        assert!(
            std::env::var_os("RADROUTE_ALLOW_SKIP").is_some(),
            "samples missing (set RADROUTE_ALLOW_SKIP=1 to skip)"
        );
        eprintln!("samples missing; skipping");
        return;
    }
    if let Err(e) = find_library(None) {
        assert!(
            std::env::var_os("RADROUTE_ALLOW_SKIP").is_some(),
            "ONNX Runtime not found (set RADROUTE_ALLOW_SKIP=1 to skip): {e}"
        );
        eprintln!("ONNX Runtime not found; skipping: {e}");
        return;
    }
    let mut obj = open_dicom(&src).expect("opens");
    let policy = CoercionPolicy {
        overwrite: Overwrite::Always,
        ..CoercionPolicy::default()
    };
    assert!(should_classify(&obj, &policy));
    let tensor = preprocess(&decode_display(&obj).expect("decodes"));
    let opts = RuntimeOptions {
        device: Device::Cpu,
        intra_threads: 1,
        ..RuntimeOptions::default()
    };
    let mut model = Model::load(&root.join("tests/fixtures/models/tiny"), &opts).expect("model");
    let pred = model
        .classify_batch(&[&tensor])
        .expect("inference")
        .remove(0);
    let result = Classification {
        label: pred.label.as_ref().map(|l| BodyPart {
            class: l.name.clone(),
            body_part: l.body_part.clone(),
            snomed: l.snomed.clone(),
            meaning: l.meaning.clone(),
            correct_threshold: None,
        }),
        scores: pred.scores.clone(),
    };
    let info = model.info();
    let info = ModelInfo {
        name: info.name,
        version: info.version,
    };
    let uid = obj
        .element(tags::SOP_INSTANCE_UID)
        .expect("uid")
        .to_str()
        .expect("s")
        .into_owned();
    let report =
        apply_label(&mut obj, &result, &info, &policy, Utc::now().fixed_offset()).expect("coerces");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.dcm");
    obj.write_to_file(&out).expect("writes");
    let back = open_dicom(&out).expect("re-opens");
    assert_eq!(
        back.element(tags::SOP_INSTANCE_UID)
            .expect("uid")
            .to_str()
            .expect("s"),
        uid
    );
    let written = back
        .element_opt(tags::BODY_PART_EXAMINED)
        .expect("ok")
        .map(|e| e.to_str().expect("s").trim().to_string());
    match &pred.label {
        Some(l) => assert_eq!(written.as_deref(), Some(l.body_part.as_str())),
        None => assert_eq!(written, report.previous_body_part),
    }
    let scores = back
        .private_element(0x0077, "RADROUTE 1.0", 0x04)
        .expect("private scores")
        .to_multi_float32()
        .expect("floats");
    let want: Vec<f32> = pred.scores.iter().map(|(_, s)| *s).collect();
    assert_eq!(scores, want);
    // the coerced file still decodes to the same image
    let again = preprocess(&decode_display(&back).expect("decodes again"));
    assert_eq!(again, tensor);
}
