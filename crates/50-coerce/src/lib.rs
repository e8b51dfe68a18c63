//! Writes the classification result into the dataset, keeping the SOP Instance UID.
//!
//! Pure attribute edits (no I/O): [`should_classify`] decides from Modality and SOP Class
//! whether an instance is classified at all; [`apply_label`] writes Body Part Examined
//! (0018,0015), Anatomic Region Sequence (0008,2218, SNOMED CT), the Original Attributes
//! Sequence (0400,0561) for replaced values, Instance Coercion DateTime (0008,0015), a
//! Contributing Equipment item (0018,A001) and radroute's private block, as PS3.3 C.12.1.1.9
//! allows for coercion without a new SOP Instance UID.
//!
//! # Private tags
//!
//! Private Creator `RADROUTE 1.0` in group `0077`, reserved in the first free slot `xx` of
//! (0077,0010–00FF) (or reused when already present):
//!
//! | tag | VR | VM | content |
//! |---|---|---|---|
//! | (0077,xx01) | LO | 1 | model name |
//! | (0077,xx02) | LO | 1 | model version |
//! | (0077,xx03) | LO | 1-n | class names, score order |
//! | (0077,xx04) | FL | 1-n | class scores (probabilities), same order |
//! | (0077,xx05) | CS | 1 | `LABELLED`, `CORRECTED`, `AGREED`, `KEPT_EXISTING` or `ABSTAINED` |
//! | (0077,xx06) | LO | 1 | class the model chose, empty when abstaining |
//! | (0077,xx07) | DT | 1 | when the result was written |
//! | (0077,xx08) | LO | 1 | Body Part Examined as received (only with a label and a received value) |
//! | (0077,xx09) | CS | 1 | the model's Body Part Examined, next to xx08 (written when `CORRECTED`) |
//!
//! # Correcting a wrong header
//!
//! With `overwrite = "correct"` ([`Overwrite::Correct`], the default) a received Body Part
//! Examined is replaced only when it names another region than the label ([`anatomy::compare`]:
//! defined terms, synonyms, overlapping regions) and the label's score reaches its class's
//! correction threshold ([`BodyPart::correct_threshold`], from the model manifest).
#![deny(missing_docs)]

pub mod anatomy;
mod apply;
mod error;
mod input;
mod policy;
pub mod private;

pub use apply::{
    apply_label, format_dt, record_original_attributes, CoercionReport, Outcome, MODIFYING_SYSTEM,
};
pub use error::CoerceError;
pub use input::{BodyPart, Classification, ModelInfo};
pub use policy::{
    should_classify, CoercionPolicy, Overwrite, CR_IMAGE_STORAGE, DX_FOR_PRESENTATION,
    DX_FOR_PROCESSING,
};
pub use private::{PRIVATE_CREATOR, PRIVATE_GROUP};
