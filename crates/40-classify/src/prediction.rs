//! Scores to a label or an abstention (docs/model-format.md: the top class labels only if its
//! score clears its own threshold).

use crate::manifest::ClassSpec;

/// A class the model can name, with what coercion writes for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassInfo {
    /// Class name used in scores (e.g. `shoulder`).
    pub name: String,
    /// DICOM Body Part Examined defined term (e.g. `SHOULDER`).
    pub body_part: String,
    /// SNOMED CT code (e.g. `16982005`).
    pub snomed: String,
    /// SNOMED CT code meaning.
    pub meaning: String,
    /// Minimum score for the label.
    pub threshold: f32,
    /// Minimum score to replace a Body Part Examined naming another region (manifest
    /// `correct_threshold`); `None`: never corrected to this class.
    pub correct_threshold: Option<f32>,
}

impl From<&ClassSpec> for ClassInfo {
    fn from(c: &ClassSpec) -> Self {
        ClassInfo {
            name: c.name.clone(),
            body_part: c.body_part.clone(),
            snomed: c.snomed.clone(),
            meaning: c.meaning.clone(),
            threshold: c.threshold,
            correct_threshold: c.correct_threshold,
        }
    }
}

/// The model's answer for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Score per class, in manifest order.
    pub scores: Vec<(String, f32)>,
    /// Top-scoring class and its score (the first class wins a tie).
    pub top: (String, f32),
    /// The label, or `None` when the top score is below its class threshold (abstention).
    pub label: Option<ClassInfo>,
}

/// Builds the prediction from scores in manifest class order.
pub fn decide(classes: &[ClassInfo], scores: &[f32]) -> Prediction {
    let mut best = 0usize;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
        }
    }
    let top_score = scores.get(best).copied().unwrap_or(0.0);
    let label = classes
        .get(best)
        .filter(|c| top_score >= c.threshold)
        .cloned();
    Prediction {
        scores: classes
            .iter()
            .zip(scores)
            .map(|(c, s)| (c.name.clone(), *s))
            .collect(),
        top: (
            classes
                .get(best)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            top_score,
        ),
        label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, threshold: f32) -> ClassInfo {
        ClassInfo {
            name: name.into(),
            body_part: name.to_uppercase(),
            snomed: "1".into(),
            meaning: name.into(),
            threshold,
            correct_threshold: None,
        }
    }

    #[test]
    fn top_class_over_threshold_labels() {
        let p = decide(&[class("hand", 0.5), class("knee", 0.5)], &[0.2, 0.7]);
        assert_eq!(p.top, ("knee".to_string(), 0.7));
        assert_eq!(p.label.map(|c| c.name), Some("knee".to_string()));
    }

    #[test]
    fn top_class_under_its_threshold_abstains() {
        let p = decide(&[class("hand", 0.5), class("knee", 0.9)], &[0.2, 0.7]);
        assert_eq!(p.top.0, "knee");
        assert!(p.label.is_none());
    }

    #[test]
    fn threshold_is_inclusive_and_ties_go_to_the_first() {
        let p = decide(&[class("hand", 0.5), class("knee", 0.5)], &[0.5, 0.5]);
        assert_eq!(p.label.map(|c| c.name), Some("hand".to_string()));
    }
}
