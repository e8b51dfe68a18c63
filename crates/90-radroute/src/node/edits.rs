//! Applying routing-rule edits (set / remove attributes) to a data set, keeping the prior values
//! in the Original Attributes Sequence (0400,0561) as PS3.3 C.12.1.1.9 asks (the item is built by
//! `radroute_coerce::record_original_attributes`, as for the label).

use dicom_core::dictionary::DataDictionary;
use dicom_core::header::Header;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, StandardDataDictionary};
use dicom_object::mem::InMemElement;
use dicom_object::DefaultDicomObject;
use radroute_route::Edit;

/// Applies `edits` in order; records each changed attribute's prior value (an attribute that
/// did not exist is recorded empty).
pub fn apply(obj: &mut DefaultDicomObject, edits: &[Edit]) -> Result<(), String> {
    let mut originals: Vec<InMemElement> = Vec::new();
    for edit in edits {
        let (tag, value) = match edit {
            Edit::Set { tag, value } => (Tag(tag.group, tag.element), Some(value.clone())),
            Edit::Remove { tag } => (Tag(tag.group, tag.element), None),
        };
        if tag.group() == 0x0002 || tag == tags::SOP_INSTANCE_UID || tag == tags::PIXEL_DATA {
            return Err(format!("rules may not edit {tag}"));
        }
        let prior = match (obj.element_opt(tag).ok().flatten(), &value) {
            (Some(p), _) => p.clone(),
            (None, Some(_)) => DataElement::new(tag, vr_of(tag), PrimitiveValue::Empty),
            (None, None) => continue,
        };
        // The first prior value of a tag is the original one.
        if !originals.iter().any(|e| e.tag() == tag) {
            originals.push(prior);
        }
        match value {
            Some(v) => {
                obj.put(DataElement::new(tag, vr_of(tag), PrimitiveValue::from(v)));
            }
            None => {
                obj.remove_element(tag);
            }
        }
    }
    let now = radroute_coerce::format_dt(&chrono::Local::now().fixed_offset());
    radroute_coerce::record_original_attributes(obj, originals, &now);
    Ok(())
}

fn vr_of(tag: Tag) -> VR {
    StandardDataDictionary
        .by_tag(tag)
        .and_then(|entry| match entry.vr {
            dicom_core::dictionary::VirtualVr::Exact(vr) => Some(vr),
            _ => None,
        })
        .unwrap_or(VR::LO)
}
