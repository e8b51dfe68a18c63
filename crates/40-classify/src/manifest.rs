//! The model directory's `manifest.toml` (docs/model-format.md): parsing and validation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ClassifyError;

/// The preprocessing versions this build implements (radroute-decode's `PREPROCESSING_VERSION`).
pub const SUPPORTED_PREPROCESSING: &[&str] = &["radroute-v1"];

/// The parsed manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Model name, written into the private tags.
    pub name: String,
    /// Model version, written into the private tags.
    pub version: String,
    /// Input tensor description.
    pub input: InputSpec,
    /// ONNX files and which classes each produces.
    pub members: Vec<MemberSpec>,
    /// Classes in output order of the predictions.
    pub classes: Vec<ClassSpec>,
}

/// `[input]`: what the ONNX graphs take.
#[derive(Debug, Clone, Deserialize)]
pub struct InputSpec {
    /// ONNX input name.
    pub name: String,
    /// Square side in pixels.
    pub size: u32,
    /// Preprocessing version the model was trained with.
    pub preprocessing: String,
}

/// `[[members]]`: one ONNX file.
#[derive(Debug, Clone, Deserialize)]
pub struct MemberSpec {
    /// File name relative to the model directory.
    pub file: String,
    /// Output name; shape `[N, classes.len()]` (or `[N]` for one class).
    pub output: String,
    /// Classes of the output columns, in order.
    pub classes: Vec<String>,
}

/// `[[classes]]`: one body part.
#[derive(Debug, Clone, Deserialize)]
pub struct ClassSpec {
    /// Class name used in scores.
    pub name: String,
    /// DICOM Body Part Examined defined term.
    pub body_part: String,
    /// SNOMED CT code for the Anatomic Region Sequence.
    pub snomed: String,
    /// Code meaning.
    pub meaning: String,
    /// Minimum score for this class to become the label.
    pub threshold: f32,
    /// Minimum score for this class to replace a Body Part Examined that names another region
    /// (the `correct` overwrite policy); chosen on validation data, at least `threshold`. Absent:
    /// a header is never corrected to this class.
    #[serde(default)]
    pub correct_threshold: Option<f32>,
}

impl Manifest {
    /// Reads and validates `dir/manifest.toml`.
    pub fn load(dir: &Path) -> Result<Manifest, ClassifyError> {
        let path = dir.join("manifest.toml");
        let err = |detail: String| ClassifyError::Manifest {
            path: path.clone(),
            detail,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
        let m: Manifest = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        m.validate().map_err(err)?;
        Ok(m)
    }

    /// Checks the rules of docs/model-format.md.
    pub fn validate(&self) -> Result<(), String> {
        if !SUPPORTED_PREPROCESSING.contains(&self.input.preprocessing.as_str()) {
            return Err(format!(
                "preprocessing {:?} is not implemented (supported: {SUPPORTED_PREPROCESSING:?})",
                self.input.preprocessing
            ));
        }
        if self.input.size == 0 || self.input.size > 4096 {
            return Err(format!("input size {}", self.input.size));
        }
        if self.classes.is_empty() || self.members.is_empty() {
            return Err("needs at least one class and one member".into());
        }
        let mut produced: HashMap<&str, usize> = HashMap::new();
        for c in &self.classes {
            if produced.insert(c.name.as_str(), 0).is_some() {
                return Err(format!("class {:?} listed twice", c.name));
            }
            if !(0.0..=1.0).contains(&c.threshold) {
                return Err(format!(
                    "class {:?}: threshold {} outside [0, 1]",
                    c.name, c.threshold
                ));
            }
            if let Some(t) = c.correct_threshold {
                if !(c.threshold..=1.0).contains(&t) {
                    return Err(format!(
                        "class {:?}: correct_threshold {t} outside [threshold {}, 1]",
                        c.name, c.threshold
                    ));
                }
            }
        }
        for m in &self.members {
            if m.classes.is_empty() {
                return Err(format!("member {:?} produces no class", m.file));
            }
            for c in &m.classes {
                match produced.get_mut(c.as_str()) {
                    Some(n) => *n += 1,
                    None => return Err(format!("member {:?}: unknown class {c:?}", m.file)),
                }
            }
        }
        if let Some((c, n)) = produced.iter().find(|(_, n)| **n != 1) {
            return Err(format!(
                "class {c:?} is produced by {n} members, must be exactly 1"
            ));
        }
        Ok(())
    }

    /// Absolute paths of the member files.
    pub fn member_paths(&self, dir: &Path) -> Vec<PathBuf> {
        self.members.iter().map(|m| dir.join(&m.file)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Manifest {
        toml::from_str(s).expect("valid toml")
    }

    const BASE: &str = r#"
name = "m"
version = "1"
[input]
name = "input"
size = 224
preprocessing = "radroute-v1"
[[members]]
file = "a.onnx"
output = "p"
classes = ["hand", "knee"]
[[classes]]
name = "hand"
body_part = "HAND"
snomed = "85562004"
meaning = "Hand structure"
threshold = 0.5
[[classes]]
name = "knee"
body_part = "KNEE"
snomed = "72696002"
meaning = "Knee region structure"
threshold = 0.5
"#;

    #[test]
    fn valid_manifest_passes() {
        assert_eq!(parse(BASE).validate(), Ok(()));
    }

    #[test]
    fn correct_threshold_is_optional_and_read() {
        assert_eq!(parse(BASE).classes[0].correct_threshold, None);
        let m = parse(&BASE.replacen(
            "threshold = 0.5",
            "threshold = 0.5\ncorrect_threshold = 0.97",
            1,
        ));
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(m.classes[0].correct_threshold, Some(0.97));
        assert_eq!(m.classes[1].correct_threshold, None);
    }

    #[test]
    fn correct_threshold_below_label_threshold_or_above_one_is_refused() {
        for bad in ["0.4", "1.5", "nan"] {
            let m = parse(&BASE.replacen(
                "threshold = 0.5",
                &format!("threshold = 0.5\ncorrect_threshold = {bad}"),
                1,
            ));
            let e = m.validate().unwrap_err();
            assert!(e.contains("correct_threshold"), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_preprocessing_is_refused() {
        let m = parse(&BASE.replace("radroute-v1", "radroute-v9"));
        assert!(m.validate().unwrap_err().contains("not implemented"));
    }

    #[test]
    fn class_without_member_is_refused() {
        let m = parse(&BASE.replace(r#"classes = ["hand", "knee"]"#, r#"classes = ["hand"]"#));
        assert!(m.validate().unwrap_err().contains("produced by 0"));
    }

    #[test]
    fn unknown_member_class_is_refused() {
        let m = parse(&BASE.replace(
            r#"classes = ["hand", "knee"]"#,
            r#"classes = ["hand", "knee", "foot"]"#,
        ));
        assert!(m.validate().unwrap_err().contains("unknown class"));
    }
}
