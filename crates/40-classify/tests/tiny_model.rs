//! The real ONNX Runtime path on the tiny fixture model (tests/fixtures/models/tiny, built by
//! make_tiny.py with numpy reference scores in expected.json).
//!
//! Needs the onnxruntime wheel's library (found in the repo's .venv or via ORT_DYLIB_PATH); when it
//! is absent the tests fail, unless RADROUTE_ALLOW_SKIP=1 is set (then they say so and pass).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use radroute_classify::{
    find_library, BatchConfig, BatchingClassifier, ClassifyError, Device, Model, RuntimeOptions,
};

const S: usize = 224;

fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/tiny")
}

fn load() -> Option<Model> {
    if let Err(e) = find_library(None) {
        assert!(
            std::env::var_os("RADROUTE_ALLOW_SKIP").is_some(),
            "ONNX Runtime not found (set RADROUTE_ALLOW_SKIP=1 to skip): {e}"
        );
        eprintln!("ONNX Runtime not found, skipping: {e}");
        return None;
    }
    let opts = RuntimeOptions {
        library_path: None,
        device: Device::Cpu,
        intra_threads: 1,
    };
    Some(Model::load(&tiny_dir(), &opts).expect("tiny model loads"))
}

/// Same inputs as make_tiny.py's `synthetic_input`.
fn synthetic_input(k: usize) -> Vec<f32> {
    let mut v = vec![0f32; 3 * S * S];
    if k == 0 {
        return v;
    }
    for c in 0..3 {
        for y in 0..S {
            for x in 0..S {
                let t = if k == 1 { y } else { x } as f32;
                v[c * S * S + y * S + x] = t / S as f32 * 4.0 - 2.0;
            }
        }
    }
    v
}

fn expected() -> Vec<Vec<f32>> {
    let text = std::fs::read_to_string(tiny_dir().join("expected.json")).expect("expected.json");
    // {"classes": [...], "scores": [[...], ...]} — parse the numbers after "scores"
    let scores = text.split("\"scores\"").nth(1).expect("scores key");
    scores
        .split(']')
        .map(|row| {
            row.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
                .filter_map(|t| t.parse::<f32>().ok())
                .collect::<Vec<f32>>()
        })
        .filter(|r| r.len() == 5)
        .collect()
}

#[test]
fn scores_match_the_numpy_reference_and_thresholds_decide() {
    let Some(mut model) = load() else { return };
    assert_eq!(model.execution_provider(), "CPU");
    assert_eq!(model.info().name, "tiny-test");
    let inputs: Vec<Vec<f32>> = (0..3).map(synthetic_input).collect();
    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let preds = model.classify_batch(&refs).expect("batch runs");
    let exp = expected();
    assert_eq!(exp.len(), 3);
    for (p, e) in preds.iter().zip(&exp) {
        let got: Vec<f32> = p.scores.iter().map(|(_, s)| *s).collect();
        for (g, w) in got.iter().zip(e) {
            assert!((g - w).abs() < 1e-5, "scores {got:?} vs {e:?}");
        }
    }
    // input 0 and 1: top class knee (0.56) under its 0.9 threshold -> abstain
    assert_eq!(preds[0].top.0, "knee");
    assert!(preds[0].label.is_none());
    assert!(preds[1].label.is_none());
    // input 2: hand 0.88 >= 0.5 -> HAND
    let label = preds[2].label.as_ref().expect("labelled");
    assert_eq!(
        (label.body_part.as_str(), label.snomed.as_str()),
        ("HAND", "85562004")
    );
}

#[test]
fn batch_and_single_runs_agree() {
    let Some(mut model) = load() else { return };
    let a = synthetic_input(2);
    let b = synthetic_input(1);
    let single = model.classify_batch(&[&a]).expect("single");
    let batch = model.classify_batch(&[&b, &a, &b]).expect("batch");
    assert_eq!(single[0].scores, batch[1].scores);
    assert_ne!(batch[0].scores, batch[1].scores);
}

#[test]
fn wrong_input_length_is_a_typed_error() {
    let Some(mut model) = load() else { return };
    let short = vec![0f32; 10];
    match model.classify_batch(&[&short]) {
        Err(ClassifyError::Input { expected, got }) => assert_eq!((expected, got), (3 * S * S, 10)),
        other => panic!("expected Input error, got {other:?}"),
    }
}

#[test]
fn missing_manifest_is_a_typed_error() {
    let opts = RuntimeOptions::default();
    let err = Model::load(&tiny_dir().join("nope"), &opts).unwrap_err();
    assert!(matches!(err, ClassifyError::Manifest { .. }), "{err}");
}

#[test]
fn batching_classifier_serves_many_threads() {
    let Some(model) = load() else { return };
    let config = BatchConfig {
        max_batch: 4,
        max_wait: Duration::from_millis(20),
        queue_capacity: 16,
    };
    let clf = Arc::new(BatchingClassifier::start(model, config).expect("worker starts"));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let clf = Arc::clone(&clf);
            std::thread::spawn(move || clf.classify(synthetic_input(i % 3)))
        })
        .collect();
    let exp = expected();
    for (i, h) in handles.into_iter().enumerate() {
        let p = h.join().expect("thread").expect("prediction");
        assert!((p.scores[2].1 - exp[i % 3][2]).abs() < 1e-5);
    }
    assert!(matches!(
        clf.classify(vec![0.0; 3]),
        Err(ClassifyError::Input { .. })
    ));
    clf.shutdown();
    assert!(matches!(
        clf.classify(synthetic_input(0)),
        Err(ClassifyError::Stopped { .. })
    ));
}

#[test]
fn supported_preprocessing_is_what_radroute_decode_implements() {
    assert_eq!(
        radroute_classify::SUPPORTED_PREPROCESSING,
        &[radroute_decode::PREPROCESSING_VERSION]
    );
}

#[test]
fn concurrent_requests_are_batched_within_the_wait() {
    let Some(model) = load() else { return };
    let config = BatchConfig {
        max_batch: 8,
        max_wait: Duration::from_millis(300),
        queue_capacity: 16,
    };
    let clf = Arc::new(BatchingClassifier::start(model, config).expect("worker starts"));
    let barrier = Arc::new(std::sync::Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (clf, barrier) = (Arc::clone(&clf), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                clf.classify(synthetic_input(i % 3))
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread").expect("prediction");
    }
    let stats = clf.stats();
    assert_eq!(stats.images, 6);
    assert!(
        stats.batches < 6,
        "requests arriving together share batches: {stats:?}"
    );
}

#[test]
fn cuda_request_without_cuda_falls_back_to_cpu() {
    if find_library(None).is_err() || std::path::Path::new("/dev/nvidia0").exists() {
        return; // only meaningful on a machine without a GPU
    }
    let opts = RuntimeOptions {
        library_path: None,
        device: Device::Cuda,
        intra_threads: 1,
    };
    let mut model = Model::load(&tiny_dir(), &opts).expect("falls back instead of failing");
    assert_eq!(model.execution_provider(), "CPU");
    assert!(model.classify_batch(&[&synthetic_input(1)]).is_ok());
}
