//! `radroute classify [--json] [--model DIR] PATH...`: classifies DICOM, PNG and JPEG files and
//! folders with a model directory, outside the daemon (for checks and triage).
//!
//! Thin on purpose: decoding and preprocessing are radroute-decode's, inference is
//! radroute-classify's. With `--json`, one object per line:
//! `{"path", "body_part" (DICOM term or null when abstaining), "scores": {class: p}, "model", "ms"}`;
//! a file that cannot be read (or does not exist) gives `{"path", "error", "kind"}`, and a
//! DICOM object whose Modality is not CR or DX gets a `"warning"` (the daemon would not
//! classify it). Otherwise a table, with a progress bar on a terminal when there are several
//! files; an abstained row shows `abstain` and its highest score apart.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use radroute_classify::{ClassifyError, Device, Model, Prediction, RuntimeOptions};
use radroute_decode::{load_model_input, DecodeError};

mod explain;

/// Where to find the model and ONNX Runtime (shared by `classify` and `eval`).
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model directory (manifest.toml + ONNX files).
    #[arg(long, default_value = "models/bodypart")]
    pub model: PathBuf,
    /// ONNX Runtime library (libonnxruntime.so*); default: ORT_DYLIB_PATH, then .venv.
    #[arg(long, env = "RADROUTE_ORT_LIBRARY")]
    pub ort_library: Option<PathBuf>,
    /// Execution device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Images per inference batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Intra-op threads per ONNX Runtime session (0: ONNX Runtime decides).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// `--device` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceArg {
    /// CUDA when available, else CPU.
    Auto,
    /// CPU only.
    Cpu,
    /// CUDA, falling back to CPU with a warning.
    Cuda,
}

/// Arguments of `radroute classify`.
#[derive(clap::Args, Debug, Clone)]
pub struct ClassifyArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Model and runtime.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Write, per file, the exact model input (`<stem>.input.png`) and an occlusion-sensitivity
    /// map over it (`<stem>.occlusion.png`: 32 px patches every 16 px; red where hiding a region
    /// lowers the label's score) into `--explain-dir`.
    #[arg(long)]
    pub explain: bool,
    /// Folder for the `--explain` pictures (created if missing).
    #[arg(long, default_value = ".", requires = "explain")]
    pub explain_dir: PathBuf,
    /// DICOM, PNG or JPEG files, or folders searched recursively.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Why `classify` or `eval` could not run at all (per-file failures are reported, not fatal).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The model or ONNX Runtime could not be loaded, or inference failed.
    #[error(transparent)]
    Model(#[from] ClassifyError),
    /// A path given on the command line cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No image files were found under the given paths.
    #[error("no DICOM, PNG or JPEG files under {0}")]
    NoInputs(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(String),
    /// The model folder does not exist (typically: run outside the repository).
    #[error(
        "no model folder at {path} (looked up from {cwd}): pass --model DIR, e.g. --model \
         /opt/radroute/models/bodypart, or run from the radroute repository"
    )]
    NoModel {
        /// The path given (or the default).
        path: PathBuf,
        /// The working directory it was resolved against.
        cwd: String,
    },
}

/// One file's outcome.
pub(crate) struct FileResult {
    /// Position of the file in the list handed to [`classify_files`].
    pub index: usize,
    pub path: PathBuf,
    pub outcome: Result<Prediction, DecodeError>,
    pub ms: f64,
}

/// Loads the model as the arguments say.
pub(crate) fn load_model(args: &ModelArgs) -> Result<Model, CommandError> {
    if !args.model.is_dir() {
        return Err(CommandError::NoModel {
            path: args.model.clone(),
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "?".into()),
        });
    }
    let opts = RuntimeOptions {
        library_path: args.ort_library.clone(),
        device: match args.device {
            DeviceArg::Auto => Device::Auto,
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::Cuda,
        },
        intra_threads: args.threads,
    };
    Ok(Model::load(&args.model, &opts)?)
}

fn is_candidate(p: &Path) -> bool {
    let ext = p
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    matches!(ext.as_str(), "dcm" | "dicom" | "png" | "jpg" | "jpeg")
        || (ext.is_empty() && radroute_decode::looks_like_dicom(p))
}

/// Files under `paths`: files as given, folders walked recursively (sorted, images only). A
/// path that cannot be read is kept as a file: it becomes an error row, like a file that
/// does not decode, instead of ending the run.
pub(crate) fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CommandError> {
    let mut out = Vec::new();
    for p in paths {
        let Ok(meta) = std::fs::metadata(p) else {
            out.push(p.clone());
            continue;
        };
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CommandError> {
    let io = |source| CommandError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_candidate(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Decodes (in parallel within a batch), preprocesses and classifies `files` in batches;
/// `on_result` sees every file, in order, as its batch finishes.
pub(crate) fn classify_files(
    model: &mut Model,
    files: &[PathBuf],
    batch: usize,
    mut on_result: impl FnMut(FileResult),
) -> Result<(), CommandError> {
    let batch = batch.max(1);
    for (c, chunk) in files.chunks(batch).enumerate() {
        // decode the batch's files in parallel (decoding, not inference, dominates on CPU)
        let decoded: Vec<(Result<Vec<f32>, DecodeError>, f64)> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|path| {
                    s.spawn(move || {
                        let t = Instant::now();
                        let r = load_model_input(path);
                        (r, ms_since(t))
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(chunk)
                .map(|(h, path)| {
                    h.join().unwrap_or_else(|_| {
                        let detail = "decoder panicked".to_string();
                        let e = DecodeError::ImageFile {
                            path: path.clone(),
                            detail,
                        };
                        (Err(e), 0.0)
                    })
                })
                .collect()
        });
        let mut ready: Vec<(usize, Vec<f32>, f64)> = Vec::new();
        let mut results: Vec<FileResult> = Vec::new();
        for (k, (r, ms)) in decoded.into_iter().enumerate() {
            let index = c * batch + k;
            match r {
                Ok(tensor) => ready.push((index, tensor, ms)),
                Err(e) => results.push(FileResult {
                    index,
                    path: files[index].clone(),
                    outcome: Err(e),
                    ms,
                }),
            }
        }
        if !ready.is_empty() {
            let t = Instant::now();
            let inputs: Vec<&[f32]> = ready.iter().map(|r| r.1.as_slice()).collect();
            let preds = model.classify_batch(&inputs)?;
            let share = ms_since(t) / ready.len() as f64;
            for ((index, _, ms), p) in ready.into_iter().zip(preds) {
                results.push(FileResult {
                    index,
                    path: files[index].clone(),
                    outcome: Ok(p),
                    ms: ms + share,
                });
            }
        }
        // report in file order
        results.sort_by_key(|r| r.index);
        results.into_iter().for_each(&mut on_result);
    }
    Ok(())
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// The JSON line of one result, keys in the documented order and scores in class order.
pub(crate) fn json_line(r: &FileResult, model: &str) -> String {
    let js = |v: serde_json::Value| v.to_string();
    let path = js(r.path.display().to_string().into());
    match &r.outcome {
        Ok(p) => {
            let scores: Vec<String> = p
                .scores
                .iter()
                .map(|(c, s)| format!("{}:{}", js(c.as_str().into()), json_f32(*s)))
                .collect();
            let body_part = p
                .label
                .as_ref()
                .map(|c| js(c.body_part.as_str().into()))
                .unwrap_or_else(|| "null".into());
            format!(
                "{{\"path\":{path},\"body_part\":{body_part},\"scores\":{{{}}},\"model\":{},\"ms\":{}}}",
                scores.join(","),
                js(model.into()),
                js(serde_json::json!((r.ms * 10.0).round() / 10.0))
            )
        }
        Err(e) => format!(
            "{{\"path\":{path},\"error\":{},\"kind\":{}}}",
            js(e.to_string().into()),
            js(e.kind().into())
        ),
    }
}

/// Shortest `f32` text that round-trips (`0.45169368`, not its `f64` widening); `null` if not
/// finite.
fn json_f32(v: f32) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// A warning for a DICOM object the daemon would not classify: its Modality is not CR or DX
/// (the default `[classify] modalities`). `None` for other files and for CR/DX.
fn modality_warning(path: &Path) -> Option<String> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if matches!(ext.as_str(), "png" | "jpg" | "jpeg") {
        return None;
    }
    let obj = dicom_object::OpenFileOptions::new()
        .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
        .open_file(path)
        .ok()?;
    let modality = obj
        .element_opt(dicom_dictionary_std::tags::MODALITY)
        .ok()
        .flatten()?
        .to_str()
        .ok()?
        .trim()
        .to_string();
    (!matches!(modality.as_str(), "CR" | "DX")).then(|| {
        format!(
            "modality {modality}, not CR/DX: the daemon's [classify] modalities would not classify it"
        )
    })
}

fn table_row(r: &FileResult) -> String {
    match &r.outcome {
        // An abstention has no top class: say so, and show the highest score apart.
        Ok(p) if p.label.is_none() => format!(
            "{:<12} {:<10} {:>6} {:>8.1}  {}  (highest score: {} {:.3})",
            "-",
            "abstain",
            "",
            r.ms,
            r.path.display(),
            p.top.0,
            p.top.1
        ),
        Ok(p) => format!(
            "{:<12} {:<10} {:>6.3} {:>8.1}  {}",
            p.label
                .as_ref()
                .map(|c| c.body_part.as_str())
                .unwrap_or("-"),
            p.top.0,
            p.top.1,
            r.ms,
            r.path.display()
        ),
        Err(e) => format!(
            "{:<12} {:<10} {:>6} {:>8.1}  {} ({e})",
            "ERROR",
            e.kind(),
            "",
            r.ms,
            r.path.display()
        ),
    }
}

/// Runs `radroute classify`. Exit code 0 when every file was classified, 2 when some could
/// not be read or decoded (each is reported).
pub fn run(args: &ClassifyArgs) -> Result<ExitCode, CommandError> {
    let files = collect_files(&args.paths)?;
    if files.is_empty() {
        let shown: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        return Err(CommandError::NoInputs(shown.join(", ")));
    }
    let mut model = load_model(&args.model)?;
    if args.explain {
        return Ok(explain::run(args, &files, &mut model));
    }
    let info = model.info();
    let model_name = format!("{} {}", info.name, info.version);
    let bar = (!args.json && files.len() > 1).then(|| {
        let b = ProgressBar::new(files.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} eta {eta}")
        {
            b.set_style(style);
        }
        b
    });
    let say = |line: String| match &bar {
        // println() on a hidden bar (not a terminal) prints nothing; suspend() always prints
        Some(b) => b.suspend(|| println!("{line}")),
        None => println!("{line}"),
    };
    if !args.json {
        say(format!(
            "{:<12} {:<10} {:>6} {:>8}  path",
            "body_part", "top", "score", "ms"
        ));
    }
    let (mut failed, mut abstained, mut done) = (0usize, 0usize, 0usize);
    classify_files(&mut model, &files, args.model.batch, |r| {
        done += 1;
        match &r.outcome {
            Err(_) => failed += 1,
            Ok(p) if p.label.is_none() => abstained += 1,
            Ok(_) => {}
        }
        let warning = r
            .outcome
            .is_ok()
            .then(|| modality_warning(&r.path))
            .flatten();
        if args.json {
            let mut line = json_line(&r, &model_name);
            if let Some(w) = &warning {
                line.pop();
                line.push_str(&format!(
                    ",\"warning\":{}}}",
                    serde_json::Value::from(w.as_str())
                ));
            }
            println!("{line}");
        } else {
            let mut row = table_row(&r);
            if let Some(w) = &warning {
                row.push_str(&format!("  [warning: {w}]"));
            }
            say(row);
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if !args.json {
        eprintln!(
            "{done} files, {} labelled, {abstained} abstained, {failed} failed; model {model_name} on {}",
            done - abstained - failed,
            model.execution_provider()
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
