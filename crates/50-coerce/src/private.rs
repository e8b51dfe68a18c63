//! radroute's private block: reserving the creator slot and writing the elements.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::InMemDicomObject;

use crate::CoerceError;

/// Private Creator of radroute's block.
pub const PRIVATE_CREATOR: &str = "RADROUTE 1.0";
/// The private group radroute writes to.
pub const PRIVATE_GROUP: u16 = 0x0077;

/// Element offsets inside the block (`(0077,xx01)` … with `xx` the reserved slot).
pub mod element {
    /// LO: model name.
    pub const MODEL_NAME: u8 = 0x01;
    /// LO: model version.
    pub const MODEL_VERSION: u8 = 0x02;
    /// LO, VM 1-n: class names, in score order.
    pub const CLASS_NAMES: u8 = 0x03;
    /// FL, VM 1-n: per-class scores (probabilities), same order.
    pub const SCORES: u8 = 0x04;
    /// CS: outcome, `LABELLED`, `CORRECTED`, `AGREED`, `KEPT_EXISTING` or `ABSTAINED`.
    pub const OUTCOME: u8 = 0x05;
    /// LO: class the model chose (empty when abstaining).
    pub const LABEL: u8 = 0x06;
    /// DT: when the classification was written.
    pub const DATETIME: u8 = 0x07;
    /// LO: Body Part Examined as received (only when it had a value and the model a label).
    pub const RECEIVED_BODY_PART: u8 = 0x08;
    /// CS: the model's Body Part Examined term, next to [`RECEIVED_BODY_PART`]: the value
    /// written when the outcome is `CORRECTED`, the one suggested otherwise.
    pub const MODEL_BODY_PART: u8 = 0x09;
}

/// The `(group, xx)` slot of the creator, reserving the first free one if needed.
pub(crate) fn reserve_block(obj: &mut InMemDicomObject, uid: &str) -> Result<u16, CoerceError> {
    let mut free = None;
    for slot in 0x10u16..=0xFF {
        let tag = Tag(PRIVATE_GROUP, slot);
        match obj.element_opt(tag).ok().flatten() {
            Some(e) => {
                let v = e.to_str().map(|s| s.trim().to_string()).unwrap_or_default();
                if v == PRIVATE_CREATOR {
                    return Ok(slot);
                }
            }
            None => {
                if free.is_none() {
                    free = Some(slot);
                }
            }
        }
    }
    let slot = free.ok_or_else(|| CoerceError::PrivateBlockFull {
        uid: uid.to_string(),
        group: PRIVATE_GROUP,
    })?;
    obj.put(DataElement::new(
        Tag(PRIVATE_GROUP, slot),
        VR::LO,
        PrimitiveValue::from(PRIVATE_CREATOR),
    ));
    Ok(slot)
}

/// Puts one element of the block.
pub(crate) fn put(obj: &mut InMemDicomObject, slot: u16, elem: u8, vr: VR, v: PrimitiveValue) {
    let tag = Tag(PRIVATE_GROUP, (slot << 8) | u16::from(elem));
    obj.put(DataElement::new(tag, vr, v));
}
