//! The one error type of this crate.

use std::path::PathBuf;

/// Why a model could not be loaded or run.
///
/// The daemon forwards an instance unlabelled on any of these; the variant tells the operator
/// whether the model directory, the ONNX Runtime library or one inference is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// `manifest.toml` is missing, unparsable or inconsistent.
    #[error("model manifest {path}: {detail}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The ONNX Runtime shared library was not found or could not be loaded.
    #[error("ONNX Runtime library{}: {detail}", .library.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Runtime {
        /// The library tried, when one was found.
        library: Option<PathBuf>,
        /// What went wrong, including where it looked.
        detail: String,
    },
    /// An ONNX file could not be turned into a session.
    #[error("model file {file}: {detail}")]
    Session {
        /// The ONNX file.
        file: PathBuf,
        /// ONNX Runtime's message.
        detail: String,
    },
    /// Running a batch failed or produced outputs of the wrong shape.
    #[error("inference with model {model}: {detail}")]
    Inference {
        /// Model name and version.
        model: String,
        /// ONNX Runtime's message or the shape problem.
        detail: String,
    },
    /// An input tensor of the wrong length was handed in.
    #[error("input tensor has {got} values, the model takes {expected} (3 x size x size)")]
    Input {
        /// `3 * size * size`.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// The batching worker thread has stopped (it panicked or was shut down).
    #[error("classifier worker for model {model} has stopped")]
    Stopped {
        /// Model name and version.
        model: String,
    },
}
