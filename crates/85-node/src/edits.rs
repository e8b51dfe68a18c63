//! Applying routing-rule edits (set / remove attributes) to a data set, keeping the prior values
//! in the Original Attributes Sequence (0400,0561) as PS3.3 C.12.1.1.9 asks (the item is built by
//! `radroute_coerce::record_original_attributes`, as for the label).

use std::path::Path;

use dicom_core::dictionary::DataDictionary;
use dicom_core::header::Header;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, StandardDataDictionary};
use dicom_object::file::ReadPreamble;
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use radroute_route::Edit;

/// Applies `edits` in order; records each changed attribute's prior value (an attribute that
/// did not exist is recorded empty).
pub fn apply(obj: &mut DefaultDicomObject, edits: &[Edit]) -> Result<(), String> {
    let mut originals: Vec<InMemElement> = Vec::new();
    for edit in edits {
        let (rule_tag, value) = match edit {
            Edit::Set { tag, value } => (*tag, Some(value.clone())),
            Edit::Remove { tag } => (*tag, None),
        };
        if let Some(what) = rule_tag.protected() {
            return Err(format!("rules may not edit {rule_tag} ({what})"));
        }
        let tag = Tag(rule_tag.group, rule_tag.element);
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

/// True when every edit is of an element before Pixel Data: the coerced object can then be
/// written as a header joined to the incoming file's pixels (rules never edit Pixel Data itself).
pub fn before_pixel_data(edits: &[Edit]) -> bool {
    edits
        .iter()
        .all(|e| Tag(e.tag().group, e.tag().element) < tags::PIXEL_DATA)
}

/// Completes a coerced header (which holds nothing from Pixel Data on) with the elements from
/// Pixel Data on of the incoming file at `incoming`, so that edits of elements after Pixel Data
/// can be applied and a whole object written.
pub fn append_tail(header: &mut DefaultDicomObject, incoming: &Path) -> Result<(), String> {
    let whole = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .open_file(incoming)
        .map_err(|e| format!("cannot read {}: {e}", incoming.display()))?;
    for element in whole.into_inner() {
        if element.header().tag >= tags::PIXEL_DATA {
            header.put(element);
        }
    }
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

#[cfg(test)]
mod tests {
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

    use super::*;

    const CR: &str = "1.2.840.10008.5.1.4.1.1.1";
    /// A private element after Pixel Data (private group 7FE1).
    const AFTER_PIXELS: Tag = Tag(0x7FE1, 0x0010);

    fn object(with_tail: bool) -> DefaultDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, CR));
        obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3"));
        obj.put(DataElement::new(tags::INSTITUTION_NAME, VR::LO, "OLD"));
        if with_tail {
            obj.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OW,
                PrimitiveValue::U16(vec![1, 2, 3, 4].into()),
            ));
            obj.put(DataElement::new(AFTER_PIXELS, VR::LO, "TAIL"));
        }
        obj.with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(CR)
                .media_storage_sop_instance_uid("1.2.3")
                .transfer_syntax("1.2.840.10008.1.2.1"),
        )
        .expect("meta")
    }

    /// The edit step refuses what rule validation refuses (one list, `Tag::protected`): an
    /// identity attribute is never changed, even by a rule that bypassed validation.
    #[test]
    fn protected_attributes_are_never_edited() {
        let mut obj = object(false);
        for (group, element) in [(0x0020, 0x000D), (0x0008, 0x0018), (0x0002, 0x0010)] {
            let edit = Edit::Set {
                tag: radroute_route::Tag { group, element },
                value: "9.9.9".into(),
            };
            let err = apply(&mut obj, &[edit]).expect_err("protected attribute edited");
            assert!(err.contains("may not edit"), "{err}");
        }
        assert_eq!(
            obj.element(tags::SOP_INSTANCE_UID)
                .expect("uid")
                .to_str()
                .expect("text"),
            "1.2.3"
        );
    }

    /// A study route's edit of an element after Pixel Data, on an instance spooled as a coerced
    /// header: the header gets the incoming file's tail, then the edit applies to it.
    #[test]
    fn edits_after_pixel_data_get_the_incoming_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let incoming = dir.path().join("incoming.dcm");
        object(true).write_to_file(&incoming).expect("write");
        let edits = [
            Edit::Set {
                tag: radroute_route::Tag {
                    group: 0x0008,
                    element: 0x0080,
                },
                value: "NEW".into(),
            },
            Edit::Set {
                tag: radroute_route::Tag {
                    group: 0x7FE1,
                    element: 0x0010,
                },
                value: "EDITED".into(),
            },
        ];
        assert!(before_pixel_data(&edits[..1]));
        assert!(!before_pixel_data(&edits));
        let mut header = object(false);
        append_tail(&mut header, &incoming).expect("tail joined");
        apply(&mut header, &edits).expect("edits apply");
        let text = |tag| {
            header
                .element(tag)
                .ok()
                .and_then(|e| e.to_str().ok().map(|s| s.trim().to_string()))
        };
        assert_eq!(text(tags::INSTITUTION_NAME).as_deref(), Some("NEW"));
        assert_eq!(text(AFTER_PIXELS).as_deref(), Some("EDITED"));
        let pixels = header.element(tags::PIXEL_DATA).expect("pixel data joined");
        assert_eq!(
            pixels.to_multi_int::<u16>().expect("words"),
            vec![1, 2, 3, 4]
        );
        // The prior values are recorded.
        assert!(header.element(tags::ORIGINAL_ATTRIBUTES_SEQUENCE).is_ok());
    }
}
