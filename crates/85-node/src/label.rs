//! The labelling slot of the processing step: decode, classify, coerce.
//!
//! The processing step calls a [`Labeler`] when one is configured; the ONNX implementation
//! lives in `classify.rs`. A labeler never fails the instance: it reports what it did.

use dicom_object::DefaultDicomObject;

/// What labelling did to one instance.
#[derive(Debug, Default, Clone)]
pub struct LabelOutcome {
    /// Body Part Examined term written, or `None` (abstained, skipped or failed).
    pub label: Option<String>,
    /// Score of the top class, when the model ran.
    pub confidence: Option<f32>,
    /// Why there is no label, or anything else worth keeping with the instance.
    pub note: Option<String>,
    /// True when the object was changed and must be written as the processed file.
    pub modified: bool,
    /// Score per class, in the model's class order (empty when the model did not run): kept as
    /// evidence for the console.
    pub scores: Vec<(String, f32)>,
    /// Model name and version, when the model ran.
    pub model: Option<String>,
    /// The model input as a grayscale PNG (radroute-evidence), when the model ran.
    pub model_input_png: Option<Vec<u8>>,
}

/// Labels instances in place.
pub trait Labeler: Send + Sync {
    /// Labels `obj`; never panics on bad input.
    fn label(&self, obj: &mut DefaultDicomObject) -> LabelOutcome;
}
