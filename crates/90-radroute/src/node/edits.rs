//! Applying routing-rule edits (set / remove attributes) to a data set, keeping the prior values
//! in the Original Attributes Sequence (0400,0561) as PS3.3 C.12.1.1.9 asks.

use dicom_core::dictionary::DataDictionary;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, StandardDataDictionary};
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use radroute_route::Edit;

/// Applies `edits` in order; records each changed attribute's prior value.
pub fn apply(obj: &mut DefaultDicomObject, edits: &[Edit]) -> Result<(), String> {
    let mut modified = InMemDicomObject::new_empty();
    for edit in edits {
        let (tag, value) = match edit {
            Edit::Set { tag, value } => (Tag(tag.group, tag.element), Some(value.clone())),
            Edit::Remove { tag } => (Tag(tag.group, tag.element), None),
        };
        if tag.group() == 0x0002 || tag == tags::SOP_INSTANCE_UID || tag == tags::PIXEL_DATA {
            return Err(format!("rules may not edit {tag}"));
        }
        let prior = obj.element_opt(tag).ok().flatten().cloned();
        match (&prior, &value) {
            (Some(p), _) => {
                modified.put(p.clone());
            }
            (None, Some(_)) => {
                let vr = vr_of(tag);
                modified.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
            }
            (None, None) => continue,
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
    if modified.iter().next().is_none() {
        return Ok(());
    }
    let now = chrono::Local::now().format("%Y%m%d%H%M%S").to_string();
    let item = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::ATTRIBUTE_MODIFICATION_DATE_TIME,
            VR::DT,
            PrimitiveValue::from(now),
        ),
        DataElement::new(
            tags::MODIFYING_SYSTEM,
            VR::LO,
            PrimitiveValue::from("RADROUTE"),
        ),
        DataElement::new(
            tags::REASON_FOR_THE_ATTRIBUTE_MODIFICATION,
            VR::CS,
            PrimitiveValue::from("COERCE"),
        ),
        DataElement::new(
            tags::MODIFIED_ATTRIBUTES_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![modified]),
        ),
    ]);
    let mut items: Vec<InMemDicomObject> = obj
        .element_opt(tags::ORIGINAL_ATTRIBUTES_SEQUENCE)
        .ok()
        .flatten()
        .and_then(|e| e.items().map(|i| i.to_vec()))
        .unwrap_or_default();
    items.push(item);
    obj.put(DataElement::new(
        tags::ORIGINAL_ATTRIBUTES_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(items),
    ));
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
