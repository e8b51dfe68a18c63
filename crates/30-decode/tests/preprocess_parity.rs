//! Parity of the Rust preprocessing (steps 0–3) with the training code's Python implementation,
//! on the golden tensors in tests/fixtures/preprocess (written by the Python side for real
//! radiographs). Tolerance: largest absolute difference ≤ 2e-3 (docs/preprocessing.md).

use std::path::{Path, PathBuf};

use radroute_decode::{load_image_file, preprocess_gray};

const TOLERANCE: f32 = 2e-3;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Reads a little-endian float32, C-order, 2-D `.npy` file (format versions 1 to 3).
fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(path).expect("golden file readable");
    assert_eq!(&b[..6], b"\x93NUMPY", "{} is not .npy", path.display());
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).expect("ascii header");
    assert!(
        header.contains("'descr': '<f4'"),
        "float32 expected: {header}"
    );
    assert!(
        header.contains("'fortran_order': False"),
        "C order expected: {header}"
    );
    let shape_txt = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("shape in header");
    let shape: Vec<usize> = shape_txt
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let data: Vec<f32> = b[start + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    (shape, data)
}

#[test]
fn rust_preprocessing_matches_the_training_code() {
    let fixtures = repo().join("tests/fixtures/preprocess");
    let data_dir = repo().join("../shared/data/radiographs");
    let index = fixtures.join("index.tsv");
    let Ok(index) = std::fs::read_to_string(&index) else {
        assert!(std::env::var_os("RADROUTE_ALLOW_SKIP").is_some(), "no golden tensors (tests/fixtures/preprocess/index.tsv) (set RADROUTE_ALLOW_SKIP=1 to skip)");
        eprintln!("no golden tensors (tests/fixtures/preprocess/index.tsv); skipping");
        return;
    };
    if !data_dir.exists() {
        assert!(
            std::env::var_os("RADROUTE_ALLOW_SKIP").is_some(),
            "radiographs not found at {} (set RADROUTE_ALLOW_SKIP=1 to skip)",
            data_dir.display()
        );
        eprintln!("radiographs not found at {}; skipping", data_dir.display());
        return;
    }
    let mut compared = 0;
    let mut worst = Vec::new();
    for line in index.lines().filter(|l| !l.trim().is_empty()) {
        let (stem, rel) = line.split_once('\t').expect("stem<TAB>path");
        let (shape, golden) = read_npy_f32(&fixtures.join(format!("{stem}.npy")));
        let golden = if shape.len() == 3 {
            golden[..shape[1] * shape[2]].to_vec() // [1, 224, 224] also accepted
        } else {
            golden
        };
        let img = load_image_file(&data_dir.join(rel)).expect("radiograph decodes");
        let ours = preprocess_gray(&img);
        assert_eq!(ours.data.len(), golden.len(), "{stem}: size");
        let max_diff = ours
            .data
            .iter()
            .zip(&golden)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{stem}: max |rust - python| = {max_diff:.2e}");
        worst.push((stem.to_string(), max_diff));
        compared += 1;
    }
    assert!(compared > 0, "index.tsv lists no tensors");
    let bad: Vec<_> = worst.iter().filter(|(_, d)| *d > TOLERANCE).collect();
    assert!(bad.is_empty(), "over tolerance {TOLERANCE}: {bad:?}");
}
