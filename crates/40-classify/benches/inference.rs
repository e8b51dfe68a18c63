//! Inference time per batch size (not a test). Uses the model in $RADROUTE_BENCH_MODEL, else
//! models/bodypart when it has a manifest, else the tiny test model; CPU (BENCH_DEVICE=cuda for
//! the CUDA execution provider), BENCH_THREADS intra-op threads (default 2); batches 1, 8, 32.
//! `cargo bench -p radroute-classify` prints a Markdown table.

use std::path::PathBuf;
use std::time::Instant;

use radroute_classify::{Device, Model, RuntimeOptions};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("RADROUTE_BENCH_MODEL")
        .map(PathBuf::from)
        .or_else(|| {
            let real = root.join("models/bodypart");
            real.join("manifest.toml").exists().then_some(real)
        })
        .unwrap_or_else(|| root.join("tests/fixtures/models/tiny"));
    let threads = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    // BENCH_DEVICE=cuda on a machine with onnxruntime-gpu and a GPU (tests/bench/gpu_classify.sh).
    let device = match std::env::var("BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::Cuda,
        _ => Device::Cpu,
    };
    let opts = RuntimeOptions {
        library_path: None,
        device,
        intra_threads: threads,
    };
    let mut model = match Model::load(&dir, &opts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot load {}: {e}", dir.display());
            return;
        }
    };
    let info = model.info();
    println!(
        "model {} {} ({}), {} threads, {}",
        info.name,
        info.version,
        dir.display(),
        threads,
        model.execution_provider()
    );
    println!("| batch | ms per batch | ms per image | images/s |");
    println!("|---:|---:|---:|---:|");
    let len = model.input_len();
    let input: Vec<f32> = (0..len).map(|i| ((i % 997) as f32 / 997.0) - 0.5).collect();
    for batch in [1usize, 8, 32] {
        let inputs: Vec<&[f32]> = (0..batch).map(|_| input.as_slice()).collect();
        let _ = model.classify_batch(&inputs); // warm-up
        let runs = (32 / batch).max(3);
        let t = Instant::now();
        for _ in 0..runs {
            if model.classify_batch(&inputs).is_err() {
                eprintln!("inference failed at batch {batch}");
                return;
            }
        }
        let per_batch = t.elapsed().as_secs_f64() * 1000.0 / runs as f64;
        println!(
            "| {batch} | {per_batch:.1} | {:.1} | {:.1} |",
            per_batch / batch as f64,
            1000.0 * batch as f64 / per_batch
        );
    }
}
