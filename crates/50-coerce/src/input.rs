//! What coercion needs from classification, without depending on ONNX Runtime.
//!
//! The daemon maps `radroute_classify::Prediction` into [`Classification`] (label fields and
//! scores); keeping these plain types here keeps coerce free of the inference stack.

/// A body part chosen by the model.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyPart {
    /// Class name of the model (e.g. `hand`), written in the private block.
    pub class: String,
    /// Body Part Examined defined term (e.g. `HAND`).
    pub body_part: String,
    /// SNOMED CT code (e.g. `85562004`).
    pub snomed: String,
    /// SNOMED CT code meaning (e.g. `Hand structure`).
    pub meaning: String,
    /// Minimum score of this class to replace a Body Part Examined that names another region
    /// (`overwrite = "correct"`; the model manifest's `correct_threshold`). `None`: never.
    pub correct_threshold: Option<f32>,
}

/// The result for one instance: scores always, a label unless the model abstained.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// `None` when the model abstained; then no label is written.
    pub label: Option<BodyPart>,
    /// Score per class, in the model's class order.
    pub scores: Vec<(String, f32)>,
}

impl Classification {
    /// The score of the labelled class (`None` when abstaining or when the scores lack it).
    pub fn label_score(&self) -> Option<f32> {
        let label = self.label.as_ref()?;
        self.scores
            .iter()
            .find(|(c, _)| *c == label.class)
            .map(|(_, s)| *s)
    }
}

/// The model that produced the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Model name from its manifest.
    pub name: String,
    /// Model version from its manifest.
    pub version: String,
}
