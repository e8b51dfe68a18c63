//! Writing a classification into a dataset as PS3.3 C.12.1.1.9 allows for instance coercion:
//! the SOP Instance UID stays, replaced values go to the Original Attributes Sequence, and the
//! change is signed with Instance Coercion DateTime and a Contributing Equipment item.

use chrono::{DateTime, FixedOffset};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;

use crate::anatomy::{compare, Relation};
use crate::input::{Classification, ModelInfo};
use crate::policy::{may_write, CoercionPolicy};
use crate::private::{self, element};
use crate::CoerceError;

/// Modifying System written in the Original Attributes Sequence and Contributing Equipment.
pub const MODIFYING_SYSTEM: &str = "radroute";

/// What [`apply_label`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Body Part Examined and Anatomic Region Sequence were written (the attribute was absent
    /// or empty, or named the same region).
    Labelled,
    /// A Body Part Examined naming another region was replaced (its value is in the Original
    /// Attributes Sequence and the private block).
    Corrected,
    /// The existing Body Part Examined names the model's region: left alone, scores only.
    Agreed,
    /// The model abstained: scores only, no label.
    Abstained,
    /// An existing Body Part Examined was kept (policy, overlapping region, or a model not
    /// confident enough to correct): scores only.
    KeptExisting,
}

impl Outcome {
    /// The CS value stored in the private block.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Labelled => "LABELLED",
            Outcome::Corrected => "CORRECTED",
            Outcome::Agreed => "AGREED",
            Outcome::Abstained => "ABSTAINED",
            Outcome::KeptExisting => "KEPT_EXISTING",
        }
    }
}

/// Summary of the edit, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoercionReport {
    /// What happened to the label.
    pub outcome: Outcome,
    /// The Body Part Examined now in the dataset (`None` when absent).
    pub body_part: Option<String>,
    /// The value before (`None` when absent).
    pub previous_body_part: Option<String>,
    /// Attributes replaced or removed and recorded in the Original Attributes Sequence.
    pub replaced: Vec<Tag>,
    /// How the received Body Part Examined relates to the label (`None` without a label or
    /// without a received value).
    pub relation: Option<Relation>,
}

/// DICOM DT with microseconds and offset, e.g. `20260101120000.000000+0000`.
pub fn format_dt(t: &DateTime<FixedOffset>) -> String {
    t.format("%Y%m%d%H%M%S%.6f%z").to_string()
}

/// An attribute's trimmed value; present but not text reads as empty (presence is what the
/// Laterality check asks).
fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    radroute_dataset::attr::raw_text(obj, tag)
        .or_else(|| obj.element_opt(tag).ok().flatten().map(|_| String::new()))
}

/// Body parts of PS3.16 CID 4031 that are paired structures (Laterality applies).
fn is_paired(body_part: &str) -> bool {
    matches!(
        body_part,
        "SHOULDER"
            | "ELBOW"
            | "HAND"
            | "KNEE"
            | "HIP"
            | "WRIST"
            | "FOOT"
            | "ANKLE"
            | "ARM"
            | "FOREARM"
            | "LEG"
            | "THIGH"
            | "CLAVICLE"
            | "FINGER"
            | "TOE"
            | "BREAST"
            | "HEEL"
            | "EXTREMITY"
            | "UPR EXTREMITY"
            | "LWR EXTREMITY"
            | "SCAPULA"
            | "HUMERUS"
            | "FEMUR"
            | "TIBIA"
            | "FIBULA"
            | "RADIUS"
            | "ULNA"
    )
}

fn code_item(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(value)),
        DataElement::new(
            tags::CODING_SCHEME_DESIGNATOR,
            VR::SH,
            PrimitiveValue::from(scheme),
        ),
        DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(meaning)),
    ])
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// Appends `item` to the sequence `tag`, keeping the items already there.
fn append_item(obj: &mut InMemDicomObject, tag: Tag, item: InMemDicomObject) {
    let mut items: Vec<InMemDicomObject> = obj
        .element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.items().map(|i| i.to_vec()))
        .unwrap_or_default();
    items.push(item);
    obj.put(seq(tag, items));
}

/// Keeps the prior values of attributes radroute changed (`originals`; an attribute that did not
/// exist is recorded empty) in a new Original Attributes Sequence (0400,0561) item with Modifying
/// System, Reason (COERCE) and Attribute Modification DateTime `dt` (PS3.3 C.12.1.1.9). Nothing
/// is written when `originals` is empty. The one place that knows this item's layout: the
/// label coercion here and the routing rules' edits both use it.
pub fn record_original_attributes(
    obj: &mut InMemDicomObject,
    originals: Vec<InMemElement>,
    dt: &str,
) {
    if originals.is_empty() {
        return;
    }
    let item = InMemDicomObject::from_element_iter([
        seq(
            tags::MODIFIED_ATTRIBUTES_SEQUENCE,
            vec![InMemDicomObject::from_element_iter(originals)],
        ),
        DataElement::new(
            tags::ATTRIBUTE_MODIFICATION_DATE_TIME,
            VR::DT,
            PrimitiveValue::from(dt),
        ),
        DataElement::new(
            tags::MODIFYING_SYSTEM,
            VR::LO,
            PrimitiveValue::from(MODIFYING_SYSTEM),
        ),
        DataElement::new(
            tags::SOURCE_OF_PREVIOUS_VALUES,
            VR::LO,
            PrimitiveValue::Empty,
        ),
        DataElement::new(
            tags::REASON_FOR_THE_ATTRIBUTE_MODIFICATION,
            VR::CS,
            PrimitiveValue::from("COERCE"),
        ),
    ]);
    append_item(obj, tags::ORIGINAL_ATTRIBUTES_SEQUENCE, item);
}

/// Writes the classification into `obj`.
///
/// - Always: radroute's private block (model, version, classes, scores, outcome, time),
///   Instance Coercion DateTime (0008,0015) and a Contributing Equipment item (109103, DCM,
///   "Modifying Equipment") naming radroute and the model.
/// - With a label the policy allows ([`crate::Overwrite`]): Body Part Examined (0018,0015) and
///   Anatomic Region Sequence (0008,2218, SCT code), always together so that they agree;
///   replaced values go to a new Original Attributes Sequence (0400,0561) item with Modifying
///   System, Reason (COERCE) and Attribute Modification DateTime.
/// - A received Body Part Examined naming the label's region is left alone ([`Outcome::Agreed`]);
///   with a label and a received value, both go to the private block.
/// - An abstention never writes a label.
///
/// The SOP Instance UID is never touched. Whether an instance should be classified at all is
/// [`crate::should_classify`]'s decision, made by the caller before decoding.
pub fn apply_label(
    obj: &mut InMemDicomObject,
    result: &Classification,
    model: &ModelInfo,
    policy: &CoercionPolicy,
    now: DateTime<FixedOffset>,
) -> Result<CoercionReport, CoerceError> {
    let uid = text(obj, tags::SOP_INSTANCE_UID).unwrap_or_else(|| "?".into());
    if result
        .scores
        .iter()
        .any(|(c, s)| c.is_empty() || !s.is_finite())
    {
        return Err(CoerceError::InvalidInput {
            uid,
            detail: "scores need class names and finite values".into(),
        });
    }
    let dt = format_dt(&now);
    let previous = text(obj, tags::BODY_PART_EXAMINED);
    let mut replaced = Vec::new();

    let score = result.label_score().unwrap_or(0.0);
    let relation = match (&result.label, previous.as_deref()) {
        (Some(label), Some(p)) if !p.is_empty() => Some(compare(p, &label.body_part)),
        _ => None,
    };
    let outcome = match &result.label {
        None => Outcome::Abstained,
        Some(label) if !may_write(policy.overwrite, previous.as_deref(), label, score) => {
            if relation == Some(Relation::Same) {
                Outcome::Agreed
            } else {
                Outcome::KeptExisting
            }
        }
        Some(label) => {
            let mut originals: Vec<InMemElement> = Vec::new();
            for tag in [tags::BODY_PART_EXAMINED, tags::ANATOMIC_REGION_SEQUENCE] {
                if let Some(e) = obj.element_opt(tag).ok().flatten() {
                    originals.push(e.clone());
                    replaced.push(tag);
                }
            }
            // Laterality (0020,0060) is Type 2C: required (possibly empty) for a paired body
            // part, not allowed otherwise. Next to an unpaired part (PELVIS) it is removed and
            // recorded in the Original Attributes Sequence; a side is never guessed.
            if !is_paired(&label.body_part) && text(obj, tags::LATERALITY).is_some() {
                if let Some(e) = obj.element_opt(tags::LATERALITY).ok().flatten() {
                    originals.push(e.clone());
                }
                obj.remove_element(tags::LATERALITY);
                replaced.push(tags::LATERALITY);
            }
            obj.put(DataElement::new(
                tags::BODY_PART_EXAMINED,
                VR::CS,
                PrimitiveValue::from(label.body_part.as_str()),
            ));
            obj.put(seq(
                tags::ANATOMIC_REGION_SEQUENCE,
                vec![code_item(&label.snomed, "SCT", &label.meaning)],
            ));
            record_original_attributes(obj, originals, &dt);
            if relation == Some(Relation::Different) {
                Outcome::Corrected
            } else {
                Outcome::Labelled
            }
        }
    };

    let received = relation.and(previous.as_deref());
    write_private(obj, &uid, result, model, outcome, received, &dt)?;
    obj.put(DataElement::new(
        tags::INSTANCE_COERCION_DATE_TIME,
        VR::DT,
        PrimitiveValue::from(dt.as_str()),
    ));
    append_item(
        obj,
        tags::CONTRIBUTING_EQUIPMENT_SEQUENCE,
        equipment_item(model, result, outcome, previous.as_deref(), &dt),
    );
    Ok(CoercionReport {
        outcome,
        body_part: text(obj, tags::BODY_PART_EXAMINED),
        previous_body_part: previous,
        replaced,
        relation,
    })
}

fn equipment_item(
    model: &ModelInfo,
    result: &Classification,
    outcome: Outcome,
    previous: Option<&str>,
    dt: &str,
) -> InMemDicomObject {
    let what = match (&result.label, outcome) {
        (Some(l), Outcome::Labelled) => format!("labelled {}", l.body_part),
        (Some(l), Outcome::Corrected) => format!(
            "corrected {} to {}",
            previous.unwrap_or_default(),
            l.body_part
        ),
        (Some(l), Outcome::Agreed) => format!("agreed with the existing {}", l.body_part),
        (Some(l), _) => format!("suggested {}, existing value kept", l.body_part),
        (None, _) => "abstained".to_string(),
    };
    let versions = PrimitiveValue::Strs(
        [
            format!("radroute {}", env!("CARGO_PKG_VERSION")),
            format!("{} {}", model.name, model.version),
        ]
        .into_iter()
        .collect(),
    );
    InMemDicomObject::from_element_iter([
        seq(
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            vec![code_item("109103", "DCM", "Modifying Equipment")],
        ),
        DataElement::new(
            tags::MANUFACTURER,
            VR::LO,
            PrimitiveValue::from(MODIFYING_SYSTEM),
        ),
        DataElement::new(
            tags::MANUFACTURER_MODEL_NAME,
            VR::LO,
            PrimitiveValue::from(MODIFYING_SYSTEM),
        ),
        DataElement::new(tags::SOFTWARE_VERSIONS, VR::LO, versions),
        DataElement::new(
            tags::CONTRIBUTION_DATE_TIME,
            VR::DT,
            PrimitiveValue::from(dt),
        ),
        DataElement::new(
            tags::CONTRIBUTION_DESCRIPTION,
            VR::ST,
            PrimitiveValue::from(format!(
                "Body part classification by model {} {}: {what}",
                model.name, model.version
            )),
        ),
    ])
}

fn write_private(
    obj: &mut InMemDicomObject,
    uid: &str,
    result: &Classification,
    model: &ModelInfo,
    outcome: Outcome,
    received: Option<&str>,
    dt: &str,
) -> Result<(), CoerceError> {
    let slot = private::reserve_block(obj, uid)?;
    let names: Vec<String> = result.scores.iter().map(|(c, _)| c.clone()).collect();
    let scores: Vec<f32> = result.scores.iter().map(|(_, s)| *s).collect();
    let label = result
        .label
        .as_ref()
        .map(|l| l.class.as_str())
        .unwrap_or("");
    private::put(
        obj,
        slot,
        element::MODEL_NAME,
        VR::LO,
        model.name.as_str().into(),
    );
    private::put(
        obj,
        slot,
        element::MODEL_VERSION,
        VR::LO,
        model.version.as_str().into(),
    );
    private::put(
        obj,
        slot,
        element::CLASS_NAMES,
        VR::LO,
        PrimitiveValue::Strs(names.into_iter().collect()),
    );
    private::put(
        obj,
        slot,
        element::SCORES,
        VR::FL,
        PrimitiveValue::F32(scores.into_iter().collect()),
    );
    private::put(obj, slot, element::OUTCOME, VR::CS, outcome.as_str().into());
    private::put(obj, slot, element::LABEL, VR::LO, label.into());
    private::put(obj, slot, element::DATETIME, VR::DT, dt.into());
    if let (Some(received), Some(l)) = (received, &result.label) {
        private::put(
            obj,
            slot,
            element::RECEIVED_BODY_PART,
            VR::LO,
            received.into(),
        );
        private::put(
            obj,
            slot,
            element::MODEL_BODY_PART,
            VR::CS,
            l.body_part.as_str().into(),
        );
    }
    Ok(())
}
