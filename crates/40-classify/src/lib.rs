//! Body-part classification with an ONNX model ensemble through ONNX Runtime.
//!
//! A model is a directory with `manifest.toml` and ONNX files (docs/model-format.md). This crate
//! loads the ONNX Runtime library of the PyPI wheel at run time ([`RuntimeOptions`]), builds one
//! session per member with thread spinning off (idle sessions must not burn the CPU the decoder
//! needs), runs batches ([`Model::classify_batch`]) and turns scores into a label or an
//! abstention ([`Prediction`]). [`BatchingClassifier`] lets many blocking tasks share one model
//! and batches their images. Synchronous; no tokio.
#![deny(missing_docs)]

mod batching;
mod error;
pub mod eval;
pub mod manifest;
mod model;
mod prediction;
mod runtime;

pub use batching::{BatchConfig, BatchStats, BatchingClassifier, BATCH_SIZE_METRIC};
pub use error::ClassifyError;
pub use manifest::{Manifest, SUPPORTED_PREPROCESSING};
pub use model::{Model, ModelInfo};
pub use prediction::{decide, ClassInfo, Prediction};
pub use runtime::{find_library, Device, RuntimeOptions};
