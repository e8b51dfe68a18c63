//! Attribute values as text, with DICOM's padding removed.
//!
//! Values of string VRs are padded to even length with a space (or a NUL for UI), and senders
//! add spaces of their own; every reader of a header value (the store step, routing, coercion,
//! recovery, the console's evidence) wants the value without them. One reader here keeps them
//! from disagreeing on what "the value" is.

use dicom_core::Tag;
use dicom_object::InMemDicomObject;

/// `value` without DICOM padding: NULs and white space at either end.
pub fn trim_padding(value: &str) -> &str {
    value.trim_matches(|c: char| c == '\0' || c.is_whitespace())
}

/// The value of `tag` in `obj` as trimmed text; `None` when the attribute is absent or its value
/// is not text, `Some("")` when it is present and empty.
pub fn raw_text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = obj.element_opt(tag).ok().flatten()?.to_str().ok()?;
    Some(trim_padding(&value).to_string())
}

/// The value of `tag` in `obj` as trimmed text; `None` when absent, not text, or empty.
pub fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    raw_text(obj, tag).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;

    #[test]
    fn padding_is_removed_and_empty_is_told_apart_from_absent() {
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(tags::BODY_PART_EXAMINED, VR::CS, "HAND "));
        obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3\0"));
        obj.put(DataElement::new(
            tags::LATERALITY,
            VR::CS,
            PrimitiveValue::from("  "),
        ));
        assert_eq!(
            text(&obj, tags::BODY_PART_EXAMINED).as_deref(),
            Some("HAND")
        );
        assert_eq!(text(&obj, tags::SOP_INSTANCE_UID).as_deref(), Some("1.2.3"));
        assert_eq!(raw_text(&obj, tags::LATERALITY).as_deref(), Some(""));
        assert_eq!(text(&obj, tags::LATERALITY), None);
        assert_eq!(raw_text(&obj, tags::MODALITY), None);
        assert_eq!(trim_padding("\0 x \0"), "x");
    }
}
