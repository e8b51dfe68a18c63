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
            correct_threshold: Some(0.9),
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
    let if_empty = CoercionPolicy {
        overwrite: Overwrite::IfEmpty,
        ..CoercionPolicy::default()
    };
    let mut o = base(Some("CHEST"));
    let confident = Classification {
        scores: vec![("knee".into(), 0.99)],
        ..knee()
    };
    let r = apply_label(&mut o, &confident, &model(), &if_empty, now()).expect("ok");
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

fn private_of(o: &InMemDicomObject, elem: u8) -> Option<String> {
    str_of(o, Tag(0x0077, 0x1000 | u16::from(elem)))
}

/// The knee label scored `score`, correction threshold 0.9.
fn knee_at(score: f32) -> Classification {
    Classification {
        scores: vec![("hand".into(), 0.01), ("knee".into(), score)],
        ..knee()
    }
}

#[test]
fn correct_is_the_default_and_replaces_a_wrong_header_when_confident() {
    assert_eq!(CoercionPolicy::default().overwrite, Overwrite::Correct);
    let mut o = base(Some("CHEST"));
    o.put(DataElement::new(
        tags::ANATOMIC_REGION_SEQUENCE,
        VR::SQ,
        dicom_core::value::DataSetSequence::from(vec![InMemDicomObject::from_element_iter([
            DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from("816094009")),
        ])]),
    ));
    let r = apply_label(
        &mut o,
        &knee_at(0.95),
        &model(),
        &CoercionPolicy::default(),
        now(),
    )
    .expect("ok");
    assert_eq!(r.outcome, Outcome::Corrected);
    assert_eq!(r.previous_body_part.as_deref(), Some("CHEST"));
    assert_eq!(
        str_of(&o, tags::BODY_PART_EXAMINED).as_deref(),
        Some("KNEE")
    );
    // Anatomic Region Sequence follows the written value: one item, the knee's code.
    let ars = o.element(tags::ANATOMIC_REGION_SEQUENCE).expect("ARS");
    let items = ars.items().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(
        str_of(&items[0], tags::CODE_VALUE).as_deref(),
        Some("72696002")
    );
    // The prior values, both of them, in the Original Attributes Sequence.
    let oas = o.element(tags::ORIGINAL_ATTRIBUTES_SEQUENCE).expect("OAS");
    let modified = &oas.items().expect("items")[0]
        .element(tags::MODIFIED_ATTRIBUTES_SEQUENCE)
        .expect("MAS")
        .items()
        .expect("items")[0];
    assert_eq!(
        str_of(modified, tags::BODY_PART_EXAMINED).as_deref(),
        Some("CHEST")
    );
    assert!(modified
        .element_opt(tags::ANATOMIC_REGION_SEQUENCE)
        .expect("ok")
        .is_some());
    assert_eq!(private_of(&o, 0x05).as_deref(), Some("CORRECTED"));
    assert_eq!(private_of(&o, 0x08).as_deref(), Some("CHEST"));
    assert_eq!(private_of(&o, 0x09).as_deref(), Some("KNEE"));
}

#[test]
fn correct_leaves_agreeing_overlapping_and_unsure_headers_alone() {
    let policy = CoercionPolicy::default();
    for (header, score, want) in [
        ("Knee ", 0.99, Outcome::Agreed),
        ("knees", 0.99, Outcome::Agreed),
        ("PATELLA", 0.99, Outcome::KeptExisting),
        ("EXTREMITY", 0.99, Outcome::KeptExisting),
        ("CHEST", 0.89, Outcome::KeptExisting),
    ] {
        let mut o = base(Some(header));
        let r = apply_label(&mut o, &knee_at(score), &model(), &policy, now()).expect("ok");
        assert_eq!(r.outcome, want, "{header:?} at {score}");
        assert_eq!(
            str_of(&o, tags::BODY_PART_EXAMINED).as_deref(),
            Some(header.trim()),
            "{header:?} untouched"
        );
        assert!(o
            .element_opt(tags::ORIGINAL_ATTRIBUTES_SEQUENCE)
            .expect("ok")
            .is_none());
        assert!(o
            .element_opt(tags::ANATOMIC_REGION_SEQUENCE)
            .expect("ok")
            .is_none());
        assert_eq!(private_of(&o, 0x05).as_deref(), Some(want.as_str()));
        assert_eq!(private_of(&o, 0x08).as_deref(), Some(header.trim()));
        assert_eq!(private_of(&o, 0x09).as_deref(), Some("KNEE"));
    }
}

#[test]
fn correct_needs_a_threshold_and_a_label() {
    let policy = CoercionPolicy::default();
    let mut no_threshold = knee_at(1.0);
    if let Some(l) = no_threshold.label.as_mut() {
        l.correct_threshold = None;
    }
    let mut o = base(Some("CHEST"));
    let r = apply_label(&mut o, &no_threshold, &model(), &policy, now()).expect("ok");
    assert_eq!(r.outcome, Outcome::KeptExisting);
    assert_eq!(
        str_of(&o, tags::BODY_PART_EXAMINED).as_deref(),
        Some("CHEST")
    );

    let abstain = Classification {
        label: None,
        ..knee_at(1.0)
    };
    let mut o = base(Some("CHEST"));
    let r = apply_label(&mut o, &abstain, &model(), &policy, now()).expect("ok");
    assert_eq!(r.outcome, Outcome::Abstained);
    assert_eq!(
        str_of(&o, tags::BODY_PART_EXAMINED).as_deref(),
        Some("CHEST")
    );
    assert_eq!(private_of(&o, 0x08), None, "no label: nothing to compare");

    // An empty or absent header is filled as with if-empty, without a correction.
    for header in [Some(""), None] {
        let mut o = base(header);
        let r = apply_label(&mut o, &knee_at(0.6), &model(), &policy, now()).expect("ok");
        assert_eq!(r.outcome, Outcome::Labelled, "{header:?}");
        assert_eq!(
            str_of(&o, tags::BODY_PART_EXAMINED).as_deref(),
            Some("KNEE")
        );
    }
}

#[test]
fn always_reports_a_replaced_other_region_as_a_correction() {
    let always = CoercionPolicy {
        overwrite: Overwrite::Always,
        ..CoercionPolicy::default()
    };
    let mut o = base(Some("CHEST"));
    let r = apply_label(&mut o, &knee_at(0.6), &model(), &always, now()).expect("ok");
    assert_eq!(r.outcome, Outcome::Corrected);
    let mut o = base(Some("Knee"));
    let r = apply_label(&mut o, &knee_at(0.6), &model(), &always, now()).expect("ok");
    assert_eq!(r.outcome, Outcome::Labelled, "same region rewritten");
    assert_eq!(
        str_of(&o, tags::BODY_PART_EXAMINED).as_deref(),
        Some("KNEE")
    );
}
