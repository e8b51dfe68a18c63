//! Which instances radroute classifies and when it may replace a Body Part Examined.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::Deserialize;

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
    #[default]
    IfEmpty,
    /// Always write (the previous value goes to the Original Attributes Sequence).
    Always,
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
            overwrite: Overwrite::IfEmpty,
            modalities: vec!["CR".into(), "DX".into()],
            sop_classes: vec![
                CR_IMAGE_STORAGE.into(),
                DX_FOR_PRESENTATION.into(),
                DX_FOR_PROCESSING.into(),
            ],
        }
    }
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok().flatten()?;
    let s = e.to_str().ok()?;
    Some(
        s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_string(),
    )
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

/// Whether a label may be written given the current Body Part Examined (`None` = absent).
pub(crate) fn may_write(overwrite: Overwrite, existing: Option<&str>) -> bool {
    match (overwrite, existing) {
        (_, None) => true,
        (Overwrite::Never, Some(_)) => false,
        (Overwrite::IfEmpty, Some(v)) => v.is_empty(),
        (Overwrite::Always, Some(_)) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrite_rules() {
        assert!(may_write(Overwrite::Never, None));
        assert!(!may_write(Overwrite::Never, Some("")));
        assert!(may_write(Overwrite::IfEmpty, Some("")));
        assert!(!may_write(Overwrite::IfEmpty, Some("HAND")));
        assert!(may_write(Overwrite::Always, Some("HAND")));
    }

    #[test]
    fn config_names_parse() {
        #[derive(Deserialize)]
        struct C {
            overwrite: Overwrite,
        }
        let c: C = serde_json_like("if-empty");
        assert_eq!(c.overwrite, Overwrite::IfEmpty);
        fn serde_json_like(v: &str) -> C {
            let de = serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(
                [("overwrite", v)].into_iter(),
            );
            C::deserialize(de).expect("valid")
        }
    }
}
