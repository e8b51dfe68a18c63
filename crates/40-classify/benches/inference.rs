//! Inference time per batch size (not a test). `cargo bench -p radroute-classify` prints a
//! Markdown table.
//!
//! Environment:
//! - `RADROUTE_BENCH_MODEL`: model directory; default models/bodypart when it has a manifest,
//!   else the tiny test model.
//! - `BENCH_DEVICE`: `cpu` (default) or `cuda` (CUDA execution provider; tests/bench/gpu_classify.sh).
//!   With `cuda` the bench exits with status 1 unless every session really got the CUDA provider,
//!   so a silent fallback to the CPU cannot pass as a GPU number.
//! - `BENCH_THREADS`: intra-op threads per session (default 2).
//! - `BENCH_BATCHES`: comma-separated batch sizes; default 1,8,32, plus 64,128 with `cuda`.
//! - `BENCH_SECONDS`: time per batch size after 3 warm-up runs (default 2); at least
//!   `BENCH_MIN_RUNS` (default 3) timed runs each.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use radroute_classify::{Device, Model, RuntimeOptions};

/// Untimed runs per batch size (CUDA: cuDNN algorithm search and arena growth happen here).
const WARM_UPS: usize = 3;

/// Prints radroute's warnings and errors (e.g. why the CUDA provider could not be registered) to
/// stderr; the bench has no tracing-subscriber dependency, so this is the smallest one.
struct StderrWarnings;

/// Formats an event's fields as `message key=value ...`.
struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?} "));
        } else {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }
}

impl tracing::Subscriber for StderrWarnings {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        eprintln!(
            "{} {}: {}",
            event.metadata().level(),
            event.metadata().target(),
            fields.0.trim_end()
        );
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn env_parse<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// GPU memory that `nvidia-smi` attributes to this process, as its CSV line (None when
/// nvidia-smi is missing or does not list the process).
fn gpu_memory_of_this_process() -> Option<String> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-compute-apps=pid,used_memory",
            "--format=csv,noheader",
        ])
        .output()
        .ok()?;
    let pid = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.split(',').next().map(str::trim) == Some(pid.as_str()))
        .map(|l| l.trim().to_string())
}

fn main() -> ExitCode {
    // Only fails when a subscriber is already set, which nothing here does.
    let _ = tracing::subscriber::set_global_default(StderrWarnings);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("RADROUTE_BENCH_MODEL")
        .map(PathBuf::from)
        .or_else(|| {
            let real = root.join("models/bodypart");
            real.join("manifest.toml").exists().then_some(real)
        })
        .unwrap_or_else(|| root.join("tests/fixtures/models/tiny"));
    let threads = env_parse("BENCH_THREADS", 2usize);
    let cuda = match std::env::var("BENCH_DEVICE").as_deref() {
        Ok("cuda") => true,
        Ok("cpu") | Err(_) => false,
        Ok(other) => {
            eprintln!("BENCH_DEVICE={other:?}: expected cpu or cuda");
            return ExitCode::FAILURE;
        }
    };
    let batches: Vec<usize> = match std::env::var("BENCH_BATCHES") {
        Ok(s) => {
            let parsed: Result<Vec<usize>, _> = s.split(',').map(|b| b.trim().parse()).collect();
            match parsed {
                Ok(v) if !v.is_empty() && !v.contains(&0) => v,
                _ => {
                    eprintln!("BENCH_BATCHES={s:?}: expected positive integers, comma-separated");
                    return ExitCode::FAILURE;
                }
            }
        }
        Err(_) if cuda => vec![1, 8, 32, 64, 128],
        Err(_) => vec![1, 8, 32],
    };
    let seconds = env_parse("BENCH_SECONDS", 2.0f64).max(0.0);
    let min_runs = env_parse("BENCH_MIN_RUNS", 3usize).max(1);
    let opts = RuntimeOptions {
        library_path: None,
        device: if cuda { Device::Cuda } else { Device::Cpu },
        intra_threads: threads,
    };
    let t_load = Instant::now();
    let mut model = match Model::load(&dir, &opts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot load {}: {e}", dir.display());
            // Without ONNX Runtime a CPU `cargo bench` has nothing to measure; a GPU run must fail.
            return if cuda {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let load_s = t_load.elapsed().as_secs_f64();
    let info = model.info();
    let provider = model.execution_provider();
    println!(
        "model {} {} ({}), {} threads, {provider}, loaded in {load_s:.1} s",
        info.name,
        info.version,
        dir.display(),
        threads,
    );
    match radroute_classify::find_library(None) {
        Ok(lib) => println!("onnxruntime library: {}", lib.display()),
        Err(e) => println!("onnxruntime library: {e}"),
    }
    println!("onnxruntime: {}", ort::info());
    if cuda && provider != "CUDA" {
        eprintln!(
            "BENCH_DEVICE=cuda but the sessions run on {provider}: the CUDA execution provider \
             could not be registered (libonnxruntime_providers_cuda.so, CUDA 13 / cuDNN 9 \
             libraries, driver); no GPU numbers"
        );
        return ExitCode::FAILURE;
    }
    println!(
        "{WARM_UPS} warm-ups, then at least {seconds} s and {min_runs} runs per batch size; \
         ms per batch: mean (min)"
    );
    println!();
    println!("| batch | runs | ms per batch | min ms | ms per image | images/s |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let len = model.input_len();
    let input: Vec<f32> = (0..len).map(|i| ((i % 997) as f32 / 997.0) - 0.5).collect();
    let mut gpu_memory = None;
    let budget = Duration::from_secs_f64(seconds);
    for &batch in &batches {
        let inputs: Vec<&[f32]> = (0..batch).map(|_| input.as_slice()).collect();
        for _ in 0..WARM_UPS {
            if let Err(e) = model.classify_batch(&inputs) {
                eprintln!("inference failed at batch {batch}: {e}");
                return ExitCode::FAILURE;
            }
        }
        if cuda && gpu_memory.is_none() {
            gpu_memory = gpu_memory_of_this_process();
        }
        let mut runs = 0usize;
        let mut min = f64::INFINITY;
        let t = Instant::now();
        while runs < min_runs || t.elapsed() < budget {
            let t_run = Instant::now();
            if let Err(e) = model.classify_batch(&inputs) {
                eprintln!("inference failed at batch {batch}: {e}");
                return ExitCode::FAILURE;
            }
            min = min.min(t_run.elapsed().as_secs_f64() * 1000.0);
            runs += 1;
        }
        let per_batch = t.elapsed().as_secs_f64() * 1000.0 / runs as f64;
        println!(
            "| {batch} | {runs} | {per_batch:.2} | {min:.2} | {:.3} | {:.1} |",
            per_batch / batch as f64,
            1000.0 * batch as f64 / per_batch
        );
    }
    if cuda {
        println!();
        match gpu_memory {
            Some(line) => println!("nvidia-smi, this process (pid, GPU memory): {line}"),
            None => println!("nvidia-smi does not list this process (or is missing)"),
        }
    }
    ExitCode::SUCCESS
}
