//! The body parts radroute can write, and how a received Body Part Examined compares with one.
//!
//! Each entry pairs a Body Part Examined defined term (PS3.16 Table L-1) with its PS3.16 CID 4031
//! "Common Anatomic Region" code (SNOMED CT, current edition: CHEST is 816094009 and ABDOMEN
//! 818981001, which replaced 51185008 and 113345001). Source: the standard's CID 4031 as
//! generated into pydicom 3.0.1 (`pydicom/sr/_cid_dict.py`, `_concepts_dict.py`), the defined
//! terms from Table L-1. A wrong code is worse than none: `tests/manifest_codes.rs` checks the
//! shipped model's manifest against this table.
//!
//! Modalities write Body Part Examined loosely ("Hand ", "C-SPINE", "THORAX"). [`compare`]
//! normalises a received value (upper-case, without spaces, hyphens, underscores and dots),
//! maps known synonyms to their defined term, and tells a header that names the model's region
//! ([`Relation::Same`]) from one that names a region that overlaps it in a radiograph (a finger
//! on a hand film, a hip on a pelvis film: [`Relation::Overlapping`]) and from one that names
//! something else ([`Relation::Different`]). Only the last may be corrected.

/// One body part radroute can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Body Part Examined defined term (PS3.16 Table L-1), e.g. `CSPINE`.
    pub term: &'static str,
    /// SNOMED CT code of the CID 4031 entry, e.g. `122494005`.
    pub snomed: &'static str,
    /// CID 4031 code meaning, e.g. `Cervical spine`.
    pub meaning: &'static str,
    /// Other spellings modalities write for the same region, normalised (see [`normalise`]).
    pub synonyms: &'static [&'static str],
    /// Defined terms of regions that overlap this one on a radiograph: a header naming one of
    /// them is not treated as wrong.
    pub overlaps: &'static [&'static str],
}

/// The table: the classes a body-part model may name (2.0.0: the first twelve), and a few
/// neighbours so that headers naming them compare correctly.
pub const REGIONS: &[Region] = &[
    Region {
        term: "SHOULDER",
        snomed: "16982005",
        meaning: "Shoulder",
        synonyms: &["SHOULDERS"],
        overlaps: &["CLAVICLE", "SCAPULA", "HUMERUS", "ARM", "EXTREMITY"],
    },
    Region {
        term: "ELBOW",
        snomed: "16953009",
        meaning: "Elbow joint",
        synonyms: &["ELBOWS"],
        overlaps: &["ARM", "FOREARM", "HUMERUS", "EXTREMITY"],
    },
    Region {
        term: "HAND",
        snomed: "85562004",
        meaning: "Hand",
        synonyms: &["HANDS"],
        overlaps: &["FINGER", "THUMB", "WRIST", "EXTREMITY"],
    },
    Region {
        term: "PELVIS",
        snomed: "816092008",
        meaning: "Pelvis",
        synonyms: &["PELVIC"],
        overlaps: &[
            "HIP",
            "SSPINE",
            "COCCYX",
            "ILIUM",
            "ABDOMENPELVIS",
            "LSSPINE",
        ],
    },
    Region {
        term: "KNEE",
        snomed: "72696002",
        meaning: "Knee",
        synonyms: &["KNEES"],
        overlaps: &["PATELLA", "LEG", "FEMUR", "THIGH", "EXTREMITY"],
    },
    Region {
        term: "CHEST",
        snomed: "816094009",
        meaning: "Chest",
        synonyms: &["THORAX", "LUNG", "LUNGS"],
        overlaps: &[
            "RIB",
            "STERNUM",
            "CHESTABDOMEN",
            "NECKCHEST",
            "MEDIASTINUM",
            "HEART",
        ],
    },
    Region {
        term: "ABDOMEN",
        snomed: "818981001",
        meaning: "Abdomen",
        synonyms: &["ABDOMINAL", "ABD", "KUB"],
        overlaps: &["ABDOMENPELVIS", "CHESTABDOMEN"],
    },
    Region {
        term: "CSPINE",
        snomed: "122494005",
        meaning: "Cervical spine",
        synonyms: &["CERVICALSPINE"],
        overlaps: &["CTSPINE", "NECK", "SPINE"],
    },
    Region {
        term: "TSPINE",
        snomed: "122495006",
        meaning: "Thoracic spine",
        synonyms: &["THORACICSPINE", "DORSALSPINE", "DSPINE"],
        overlaps: &["CTSPINE", "TLSPINE", "SPINE"],
    },
    Region {
        term: "LSPINE",
        snomed: "122496007",
        meaning: "Lumbar spine",
        synonyms: &["LUMBARSPINE"],
        overlaps: &["LSSPINE", "TLSPINE", "SSPINE", "SPINE"],
    },
    Region {
        term: "FOOT",
        snomed: "56459004",
        meaning: "Foot",
        synonyms: &["FEET"],
        overlaps: &["TOE", "CALCANEUS", "ANKLE", "EXTREMITY"],
    },
    Region {
        term: "ANKLE",
        snomed: "70258002",
        meaning: "Ankle joint",
        synonyms: &["ANKLES"],
        overlaps: &["FOOT", "LEG", "CALCANEUS", "EXTREMITY"],
    },
    Region {
        term: "WRIST",
        snomed: "74670003",
        meaning: "Wrist joint",
        synonyms: &["WRISTS"],
        overlaps: &["HAND", "FOREARM", "EXTREMITY"],
    },
    Region {
        term: "SKULL",
        snomed: "89546000",
        meaning: "Skull",
        synonyms: &["CRANIUM"],
        overlaps: &["HEAD"],
    },
    Region {
        term: "HIP",
        snomed: "29836001",
        meaning: "Hip",
        synonyms: &["HIPS"],
        overlaps: &["PELVIS", "FEMUR", "EXTREMITY"],
    },
    Region {
        term: "FINGER",
        snomed: "7569003",
        meaning: "Finger",
        synonyms: &["FINGERS"],
        overlaps: &["HAND", "THUMB", "EXTREMITY"],
    },
    Region {
        term: "LEG",
        snomed: "30021000",
        meaning: "Lower leg",
        synonyms: &["LOWERLEG"],
        overlaps: &["KNEE", "ANKLE", "EXTREMITY"],
    },
    Region {
        term: "FOREARM",
        snomed: "14975008",
        meaning: "Forearm",
        synonyms: &[],
        overlaps: &["WRIST", "ELBOW", "EXTREMITY"],
    },
    Region {
        term: "CLAVICLE",
        snomed: "51299004",
        meaning: "Clavicle",
        synonyms: &[],
        overlaps: &["SHOULDER", "CHEST"],
    },
];

/// How a received Body Part Examined relates to the model's body part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The same region (after normalisation and synonyms): nothing to correct.
    Same,
    /// A region that overlaps the model's on a radiograph (sub-region, neighbour or a generic
    /// term): not evidence of a wrong header.
    Overlapping,
    /// Anything else, including values that are no defined term at all.
    Different,
}

impl Relation {
    /// Lower-case name for logs and notes.
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Same => "same",
            Relation::Overlapping => "overlapping",
            Relation::Different => "different",
        }
    }
}

/// Upper-case without spaces, hyphens, underscores, dots or NULs: `"C-Spine "` → `CSPINE`.
pub fn normalise(value: &str) -> String {
    value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.' | '\0') && !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

/// The table entry of a defined term (exact, e.g. a manifest's `body_part`).
pub fn region(term: &str) -> Option<&'static Region> {
    REGIONS.iter().find(|r| r.term == term)
}

/// The defined term a received value stands for: itself when it is a term of the table, the
/// term whose synonym it is, else the normalised value.
pub fn canonical(value: &str) -> String {
    let n = normalise(value);
    REGIONS
        .iter()
        .find(|r| r.term == n || r.synonyms.contains(&n.as_str()))
        .map(|r| r.term.to_string())
        .unwrap_or(n)
}

/// How the received Body Part Examined `header` relates to the defined term `label` the model
/// chose. Overlap is symmetric: either entry may list the other.
pub fn compare(header: &str, label: &str) -> Relation {
    let (h, l) = (canonical(header), canonical(label));
    if h == l {
        return Relation::Same;
    }
    let lists = |a: &str, b: &str| region(a).is_some_and(|r| r.overlaps.contains(&b));
    if lists(&l, &h) || lists(&h, &l) {
        Relation::Overlapping
    } else {
        Relation::Different
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_the_same_region_agree() {
        for (h, l) in [
            ("HAND", "HAND"),
            ("Hand ", "HAND"),
            ("hands", "HAND"),
            ("C-SPINE", "CSPINE"),
            ("c spine", "CSPINE"),
            ("Cervical Spine", "CSPINE"),
            ("THORAX", "CHEST"),
            ("L_SPINE", "LSPINE"),
            ("KNEE\0", "KNEE"),
        ] {
            assert_eq!(compare(h, l), Relation::Same, "{h:?} vs {l}");
        }
    }

    #[test]
    fn neighbouring_regions_overlap_both_ways() {
        for (h, l) in [
            ("FINGER", "HAND"),
            ("WRIST", "HAND"),
            ("HAND", "WRIST"),
            ("HIP", "PELVIS"),
            ("LSSPINE", "LSPINE"),
            ("EXTREMITY", "KNEE"),
            ("ankle", "FOOT"),
        ] {
            assert_eq!(compare(h, l), Relation::Overlapping, "{h:?} vs {l}");
        }
    }

    #[test]
    fn other_regions_and_garbage_differ() {
        for (h, l) in [
            ("CHEST", "HAND"),
            ("KNEE", "SHOULDER"),
            ("EXTREMITY", "CHEST"),
            ("CSPINE", "LSPINE"),
            ("PORTABLE", "CHEST"),
            ("ABDOMEN", "CHEST"),
        ] {
            assert_eq!(compare(h, l), Relation::Different, "{h:?} vs {l}");
        }
    }

    #[test]
    fn table_is_consistent() {
        for r in REGIONS {
            assert_eq!(normalise(r.term), r.term, "{} is not normalised", r.term);
            assert!(r.snomed.bytes().all(|b| b.is_ascii_digit()), "{}", r.term);
            assert!(!r.overlaps.contains(&r.term), "{} overlaps itself", r.term);
            for s in r.synonyms {
                assert_eq!(normalise(s), *s, "synonym {s} is not normalised");
                let owners = REGIONS
                    .iter()
                    .filter(|o| o.term == *s || o.synonyms.contains(s))
                    .count();
                assert_eq!(owners, 1, "synonym {s} is ambiguous");
            }
        }
        let mut codes: Vec<_> = REGIONS.iter().map(|r| r.snomed).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), REGIONS.len(), "a code is listed twice");
    }
}
