//! Coercion rules on small in-memory datasets.

use chrono::{FixedOffset, TimeZone};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use radroute_coerce::{
    apply_label, should_classify, BodyPart, Classification, CoercionPolicy, ModelInfo, Outcome,
    Overwrite, CR_IMAGE_STORAGE, PRIVATE_CREATOR,
};

fn base(bpe: Option<&str>) -> InMemDicomObject {
    let mut o = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(CR_IMAGE_STORAGE),
        ),
        DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from("1.2.3.4"),
        ),
        DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("CR")),
    ]);
    if let Some(v) = bpe {
        o.put(DataElement::new(
            tags::BODY_PART_EXAMINED,
            VR::CS,
            PrimitiveValue::from(v),
        ));
    }
    o
}

fn knee() -> Classification {
    Classification {
        label: Some(BodyPart {
            class: "knee".into(),
            body_part: "KNEE".into(),
            snomed: "72696002".into(),
            meaning: "Knee region structure".into(),
        }),
        scores: vec![("hand".into(), 0.1), ("knee".into(), 0.8)],
    }
}

fn model() -> ModelInfo {
    ModelInfo {
        name: "m".into(),
        version: "1".into(),
    }
}

fn now() -> chrono::DateTime<FixedOffset> {
    FixedOffset::east_opt(3600)
        .and_then(|z| z.with_ymd_and_hms(2026, 5, 6, 7, 8, 9).single())
        .expect("time")
}

fn str_of(o: &InMemDicomObject, t: Tag) -> Option<String> {
    o.element_opt(t)
        .ok()
        .flatten()
        .map(|e| e.to_str().map(|s| s.trim().to_string()).unwrap_or_default())
}

#[test]
fn if_empty_replaces_an_empty_value_and_records_it() {
    let mut o = base(Some(""));
    let r = apply_label(&mut o, &knee(), &model(), &CoercionPolicy::default(), now()).expect("ok");
    assert_eq!(r.outcome, Outcome::Labelled);
    assert_eq!(r.previous_body_part.as_deref(), Some(""));
    assert_eq!(
        str_of(&o, tags::BODY_PART_EXAMINED).as_deref(),
        Some("KNEE")
    );
    assert_eq!(
        str_of(&o, tags::SOP_INSTANCE_UID).as_deref(),
        Some("1.2.3.4")
    );
    assert_eq!(
        str_of(&o, tags::INSTANCE_COERCION_DATE_TIME).as_deref(),
        Some("20260506070809.000000+0100")
    );
    let oas = o.element(tags::ORIGINAL_ATTRIBUTES_SEQUENCE).expect("OAS");
    let item = &oas.items().expect("items")[0];
    let modified = &item
        .element(tags::MODIFIED_ATTRIBUTES_SEQUENCE)
        .expect("MAS")
        .items()
        .expect("items")[0];
    assert!(modified
        .element_opt(tags::BODY_PART_EXAMINED)
        .expect("ok")
        .is_some());
}

#[test]
fn if_empty_keeps_a_value_and_absent_is_written_without_oas() {
    let mut o = base(Some("CHEST"));
    let r = apply_label(&mut o, &knee(), &model(), &CoercionPolicy::default(), now()).expect("ok");
    assert_eq!(r.outcome, Outcome::KeptExisting);
    assert_eq!(
        str_of(&o, tags::BODY_PART_EXAMINED).as_deref(),
        Some("CHEST")
    );

    let mut o = base(None);
    let r = apply_label(&mut o, &knee(), &model(), &CoercionPolicy::default(), now()).expect("ok");
    assert_eq!(r.outcome, Outcome::Labelled);
    assert!(r.replaced.is_empty());
    assert!(o
        .element_opt(tags::ORIGINAL_ATTRIBUTES_SEQUENCE)
        .expect("ok")
        .is_none());
}

#[test]
fn second_run_reuses_the_private_block_and_appends_history() {
    let mut o = base(Some("HAND"));
    let always = CoercionPolicy {
        overwrite: Overwrite::Always,
        ..CoercionPolicy::default()
    };
    apply_label(&mut o, &knee(), &model(), &always, now()).expect("first");
    apply_label(&mut o, &knee(), &model(), &always, now()).expect("second");
    assert_eq!(
        str_of(&o, Tag(0x0077, 0x0010)).as_deref(),
        Some(PRIVATE_CREATOR)
    );
    assert!(
        o.element_opt(Tag(0x0077, 0x0011)).expect("ok").is_none(),
        "one block only"
    );
    let oas = o.element(tags::ORIGINAL_ATTRIBUTES_SEQUENCE).expect("OAS");
    assert_eq!(oas.items().expect("items").len(), 2);
    let eq = o
        .element(tags::CONTRIBUTING_EQUIPMENT_SEQUENCE)
        .expect("CES");
    assert_eq!(eq.items().expect("items").len(), 2);
}

#[test]
fn taken_creator_slots_are_skipped() {
    let mut o = base(None);
    o.put(DataElement::new(
        Tag(0x0077, 0x0010),
        VR::LO,
        PrimitiveValue::from("OTHER VENDOR"),
    ));
    apply_label(&mut o, &knee(), &model(), &CoercionPolicy::default(), now()).expect("ok");
    assert_eq!(
        str_of(&o, Tag(0x0077, 0x0011)).as_deref(),
        Some(PRIVATE_CREATOR)
    );
    assert_eq!(str_of(&o, Tag(0x0077, 0x1105)).as_deref(), Some("LABELLED"));
}

#[test]
fn policy_selects_modality_and_sop_class() {
    let p = CoercionPolicy::default();
    assert!(should_classify(&base(None), &p));
    let mut ct = base(None);
    ct.put(DataElement::new(
        tags::MODALITY,
        VR::CS,
        PrimitiveValue::from("CT"),
    ));
    assert!(!should_classify(&ct, &p));
    let mut sc = base(None);
    sc.put(DataElement::new(
        tags::SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.7"),
    ));
    assert!(!should_classify(&sc, &p));
}

#[test]
fn non_finite_scores_are_refused() {
    let mut o = base(None);
    let bad = Classification {
        label: None,
        scores: vec![("hand".into(), f32::NAN)],
    };
    assert!(apply_label(&mut o, &bad, &model(), &CoercionPolicy::default(), now()).is_err());
}
