//! A loaded model: its manifest and one ONNX Runtime session per member file.

use std::path::{Path, PathBuf};

use ort::ep::{self, ExecutionProvider};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use crate::manifest::Manifest;
use crate::prediction::{decide, ClassInfo, Prediction};
use crate::runtime::{gpu_present, runtime, Device, RuntimeOptions};
use crate::ClassifyError;

/// Name and version of a model, as written into the private tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// `name` of the manifest.
    pub name: String,
    /// `version` of the manifest.
    pub version: String,
}

/// One ONNX file: its session, output name and where its columns go in the class list.
struct Member {
    file: PathBuf,
    session: Session,
    output: String,
    columns: Vec<usize>,
}

/// A model directory loaded into ONNX Runtime sessions.
///
/// `classify_batch` needs `&mut self` (ONNX Runtime sessions run one call at a time); share a
/// model between threads through [`crate::BatchingClassifier`].
pub struct Model {
    manifest: Manifest,
    dir: PathBuf,
    classes: Vec<ClassInfo>,
    members: Vec<Member>,
    execution_provider: &'static str,
    /// The batch tensor's storage, kept between calls: a fresh 20–40 MB allocation per batch
    /// is a fresh mmap, and its page faults cost more than a GPU's inference.
    staging: Vec<f32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("dir", &self.dir)
            .field("execution_provider", &self.execution_provider)
            .finish()
    }
}

impl Model {
    /// Reads `dir/manifest.toml`, loads ONNX Runtime if needed and creates one session per
    /// member (thread spinning off, CUDA or CPU per `opts.device`, logged).
    pub fn load(dir: &Path, opts: &RuntimeOptions) -> Result<Model, ClassifyError> {
        let manifest = Manifest::load(dir)?;
        let rt = runtime(opts.library_path.as_deref())?;
        let want_cuda = match opts.device {
            Device::Cpu => false,
            Device::Cuda => true,
            Device::Auto => {
                let gpu = gpu_present();
                let provider = ep::CUDA::is_available().unwrap_or(false);
                if gpu && !provider {
                    tracing::warn!(library = %rt.library.display(),
                        "GPU present but this ONNX Runtime has no CUDA provider (install onnxruntime-gpu); using CPU");
                }
                gpu && provider
            }
        };
        let classes: Vec<ClassInfo> = manifest.classes.iter().map(ClassInfo::from).collect();
        let mut members = Vec::new();
        let mut provider = if want_cuda { "CUDA" } else { "CPU" };
        for spec in &manifest.members {
            let file = dir.join(&spec.file);
            let (session, used) = build_session(&rt.env, &file, opts, provider == "CUDA")?;
            provider = used;
            let columns = spec
                .classes
                .iter()
                .filter_map(|c| classes.iter().position(|k| &k.name == c))
                .collect();
            members.push(Member {
                file,
                session,
                output: spec.output.clone(),
                columns,
            });
        }
        tracing::info!(model = %manifest.name, version = %manifest.version, dir = %dir.display(),
            execution_provider = provider, members = members.len(), "model loaded");
        Ok(Model {
            manifest,
            dir: dir.to_path_buf(),
            classes,
            members,
            execution_provider: provider,
            staging: Vec::new(),
        })
    }

    /// Name and version from the manifest.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
        }
    }

    /// The classes, in score order.
    pub fn classes(&self) -> &[ClassInfo] {
        &self.classes
    }

    /// Square input side (224 for radroute-v1 models).
    pub fn input_size(&self) -> u32 {
        self.manifest.input.size
    }

    /// Values per input tensor: `3 * size * size`.
    pub fn input_len(&self) -> usize {
        let s = self.manifest.input.size as usize;
        3 * s * s
    }

    /// `"CUDA"` or `"CPU"`: the execution provider the sessions use (for metrics and logs).
    pub fn execution_provider(&self) -> &'static str {
        self.execution_provider
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs every member on a batch of `[3, size, size]` tensors (radroute-decode's
    /// `preprocess` output) and decides label or abstention per image.
    pub fn classify_batch(&mut self, inputs: &[&[f32]]) -> Result<Vec<Prediction>, ClassifyError> {
        let n = inputs.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let len = self.input_len();
        if let Some(bad) = inputs.iter().find(|i| i.len() != len) {
            return Err(ClassifyError::Input {
                expected: len,
                got: bad.len(),
            });
        }
        let mut batch = std::mem::take(&mut self.staging);
        batch.clear();
        batch.reserve(n * len);
        for i in inputs {
            batch.extend_from_slice(i);
        }
        let result = self.run_batch(&batch, n);
        self.staging = batch;
        result
    }

    /// Runs every member on the `n` inputs laid out in `batch`.
    fn run_batch(&mut self, batch: &[f32], n: usize) -> Result<Vec<Prediction>, ClassifyError> {
        let s = self.manifest.input.size as usize;
        let model = format!("{} {}", self.manifest.name, self.manifest.version);
        let err = |detail: String| ClassifyError::Inference {
            model: model.clone(),
            detail,
        };
        let mut scores = vec![vec![0f32; self.classes.len()]; n];
        let input_name = self.manifest.input.name.clone();
        for m in &mut self.members {
            let tensor = TensorRef::from_array_view(([n, 3, s, s], batch))
                .map_err(|e| err(e.to_string()))?;
            let outputs = m
                .session
                .run(ort::inputs![input_name.as_str() => tensor])
                .map_err(|e| err(format!("{}: {e}", m.file.display())))?;
            let value = outputs
                .get(&m.output)
                .ok_or_else(|| err(format!("{}: no output {:?}", m.file.display(), m.output)))?;
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| err(format!("{}: {e}", m.file.display())))?;
            let k = m.columns.len();
            if data.len() != n * k {
                return Err(err(format!(
                    "{}: output {:?} has shape {shape:?}, expected [{n}, {k}]",
                    m.file.display(),
                    m.output
                )));
            }
            for (row, out) in scores.iter_mut().enumerate() {
                for (j, &col) in m.columns.iter().enumerate() {
                    out[col] = data[row * k + j];
                }
            }
        }
        Ok(scores.iter().map(|s| decide(&self.classes, s)).collect())
    }
}

/// Builds one session; with `cuda`, tries the CUDA provider first and falls back to CPU with a
/// warning. Returns the session and the provider actually used.
fn build_session(
    env: &ort::environment::Environment,
    file: &Path,
    opts: &RuntimeOptions,
    cuda: bool,
) -> Result<(Session, &'static str), ClassifyError> {
    let err = |detail: String| ClassifyError::Session {
        file: file.to_path_buf(),
        detail,
    };
    if !file.is_file() {
        return Err(err("file not found".into()));
    }
    let base = || -> Result<ort::session::builder::SessionBuilder, ort::Error> {
        let mut b = Session::builder(env)?
            .with_optimization_level(GraphOptimizationLevel::Level3)?
            .with_inter_threads(1)?
            .with_config_entry("session.intra_op.allow_spinning", "0")?
            .with_config_entry("session.inter_op.allow_spinning", "0")?;
        if opts.intra_threads > 0 {
            b = b.with_intra_threads(opts.intra_threads)?;
        }
        Ok(b)
    };
    if cuda {
        let attempt = base().and_then(|b| {
            b.with_execution_providers([ep::CUDA::default().build().error_on_failure()])?
                .commit_from_file(file)
        });
        match attempt {
            Ok(s) => return Ok((s, "CUDA")),
            Err(e) => tracing::warn!(file = %file.display(), error = %e,
                "CUDA execution provider unavailable; falling back to CPU"),
        }
    }
    let session = base()
        .and_then(|mut b| b.commit_from_file(file))
        .map_err(|e| err(e.to_string()))?;
    Ok((session, "CPU"))
}
