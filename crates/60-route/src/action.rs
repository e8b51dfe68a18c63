//! What a matching route does to an instance, returned as data for the caller to apply.

use serde::{Deserialize, Serialize};

use crate::tag::Tag;

/// One header edit. The caller applies it and records the previous value in the
/// Original Attributes Sequence (that is the coerce crate's job, not this one's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Set the attribute to this value (DICOM string form; the caller picks the VR from
    /// the dictionary).
    Set {
        /// The attribute.
        tag: Tag,
        /// The new value; multiple values joined with `\`.
        value: String,
    },
    /// Remove the attribute if present.
    Remove {
        /// The attribute.
        tag: Tag,
    },
}

impl Edit {
    /// The attribute this edit touches.
    pub fn tag(&self) -> Tag {
        match self {
            Edit::Set { tag, .. } | Edit::Remove { tag } => *tag,
        }
    }
}

/// C-STORE priority requested for the forward jobs (DIMSE LOW / MEDIUM / HIGH).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// LOW (0002).
    Low,
    /// MEDIUM (0000), the default.
    #[default]
    Medium,
    /// HIGH (0001).
    High,
}
