//! Which instances radroute classifies and when it may replace a Body Part Examined.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::Deserialize;

use crate::anatomy::{compare, Relation};
use crate::input::BodyPart;
use radroute_dataset::attr::raw_text as text;

/// CR Image Storage.
pub const CR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1";
/// Digital X-Ray Image Storage – For Presentation.
pub const DX_FOR_PRESENTATION: &str = "1.2.840.10008.5.1.4.1.1.1.1";
/// Digital X-Ray Image Storage – For Processing.
pub const DX_FOR_PROCESSING: &str = "1.2.840.10008.5.1.4.1.1.1.1.1";

/// What to do when Body Part Examined is already present (config `overwrite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Write only when the attribute is absent.
    Never,
    /// Write when absent or present with an empty value.
    IfEmpty,
    /// As `IfEmpty`, and replace a value that names another region (see
    /// [`crate::anatomy::compare`]) when the label's score reaches its class's correction
    /// threshold (`correct_threshold` of the model manifest; a class without one never
    /// replaces). A value naming the same or an overlapping region is left alone.
    #[default]
    Correct,
    /// Always write (the previous value goes to the Original Attributes Sequence).
    Always,
}

impl Overwrite {
    /// The configuration name (`never`, `if-empty`, `correct`, `always`).
    pub fn as_str(self) -> &'static str {
        match self {
            Overwrite::Never => "never",
            Overwrite::IfEmpty => "if-empty",
            Overwrite::Correct => "correct",
            Overwrite::Always => "always",
        }
    }
}

/// The configurable part of coercion.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CoercionPolicy {
    /// Existing Body Part Examined handling.
    pub overwrite: Overwrite,
    /// Modalities (0008,0060) to classify; empty means any.
    pub modalities: Vec<String>,
    /// SOP Class UIDs (0008,0016) to classify; empty means any.
    pub sop_classes: Vec<String>,
}

impl Default for CoercionPolicy {
    fn default() -> Self {
        CoercionPolicy {
            overwrite: Overwrite::default(),
            modalities: vec!["CR".into(), "DX".into()],
            sop_classes: vec![
                CR_IMAGE_STORAGE.into(),
                DX_FOR_PRESENTATION.into(),
                DX_FOR_PROCESSING.into(),
            ],
        }
    }
}

/// True when the instance's modality and SOP class are both configured for classification.
pub fn should_classify(obj: &InMemDicomObject, policy: &CoercionPolicy) -> bool {
    let modality_ok = policy.modalities.is_empty()
        || text(obj, tags::MODALITY)
            .is_some_and(|m| policy.modalities.iter().any(|p| p.eq_ignore_ascii_case(&m)));
    let class_ok = policy.sop_classes.is_empty()
        || text(obj, tags::SOP_CLASS_UID).is_some_and(|c| policy.sop_classes.contains(&c));
    modality_ok && class_ok
}

/// Whether `label` (scored `score`) may be written given the current Body Part Examined
/// (`None` = absent).
pub(crate) fn may_write(
    overwrite: Overwrite,
    existing: Option<&str>,
    label: &BodyPart,
    score: f32,
) -> bool {
    match (overwrite, existing) {
        (_, None) => true,
        (Overwrite::Never, Some(_)) => false,
        (_, Some("")) => true,
        (Overwrite::IfEmpty, Some(_)) => false,
        (Overwrite::Always, Some(_)) => true,
        (Overwrite::Correct, Some(v)) => {
            compare(v, &label.body_part) == Relation::Different
                && label.correct_threshold.is_some_and(|t| score >= t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hand(correct_threshold: Option<f32>) -> BodyPart {
        BodyPart {
            class: "hand".into(),
            body_part: "HAND".into(),
            snomed: "85562004".into(),
            meaning: "Hand".into(),
            correct_threshold,
        }
    }

    #[test]
    fn overwrite_rules() {
        let h = hand(Some(0.9));
        let w = |o, v| may_write(o, v, &h, 0.95);
        assert!(w(Overwrite::Never, None));
        assert!(!w(Overwrite::Never, Some("")));
        assert!(w(Overwrite::IfEmpty, Some("")));
        assert!(!w(Overwrite::IfEmpty, Some("HAND")));
        assert!(w(Overwrite::Always, Some("HAND")));
        assert!(w(Overwrite::Correct, None));
        assert!(w(Overwrite::Correct, Some("")));
    }

    #[test]
    fn correct_replaces_only_a_different_region_with_enough_confidence() {
        let h = hand(Some(0.9));
        assert!(may_write(Overwrite::Correct, Some("CHEST"), &h, 0.9));
        assert!(may_write(Overwrite::Correct, Some("PORTABLE"), &h, 0.99));
        assert!(
            !may_write(Overwrite::Correct, Some("CHEST"), &h, 0.89),
            "unsure"
        );
        assert!(
            !may_write(Overwrite::Correct, Some("Hand "), &h, 0.99),
            "agrees"
        );
        assert!(
            !may_write(Overwrite::Correct, Some("FINGER"), &h, 0.99),
            "overlaps"
        );
        let no_threshold = hand(None);
        assert!(!may_write(
            Overwrite::Correct,
            Some("CHEST"),
            &no_threshold,
            1.0
        ));
    }

    #[test]
    fn config_names_parse() {
        #[derive(Deserialize)]
        struct C {
            overwrite: Overwrite,
        }
        for o in [
            Overwrite::Never,
            Overwrite::IfEmpty,
            Overwrite::Correct,
            Overwrite::Always,
        ] {
            assert_eq!(serde_json_like(o.as_str()).overwrite, o);
        }
        assert_eq!(Overwrite::default(), Overwrite::Correct);
        fn serde_json_like(v: &str) -> C {
            let de = serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(
                [("overwrite", v)].into_iter(),
            );
            C::deserialize(de).expect("valid")
        }
    }
}
