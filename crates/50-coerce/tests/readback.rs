//! Coerces real CR and DX samples, writes them, and reads the attributes back with DCMTK's
//! dcmdump; dicom3tools' dciodvfy must report no error that the original did not have.
//! Needs ../shared/data/dicom-samples, dcmdump and dciodvfy; says so and passes without them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{FixedOffset, TimeZone};
use dicom_dictionary_std::tags;
use dicom_object::{open_file, DefaultDicomObject};
use radroute_coerce::{
    anatomy, apply_label, should_classify, BodyPart, Classification, CoercionPolicy, ModelInfo,
    Outcome, Overwrite,
};

fn sample(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/dicom-samples/good")
        .join(name);
    p.exists().then_some(p)
}

fn tool(name: &str) -> bool {
    Command::new(name).arg("--help").output().is_ok() || Path::new("/usr/bin").join(name).exists()
}

fn hand() -> Classification {
    Classification {
        label: Some(BodyPart {
            class: "hand".into(),
            body_part: "HAND".into(),
            snomed: "85562004".into(),
            meaning: "Hand structure".into(),
            correct_threshold: Some(0.9),
        }),
        scores: vec![
            ("shoulder".into(), 0.01),
            ("elbow".into(), 0.02),
            ("hand".into(), 0.93),
            ("pelvis".into(), 0.01),
            ("knee".into(), 0.03),
        ],
    }
}

fn model() -> ModelInfo {
    ModelInfo {
        name: "tiny-test".into(),
        version: "0.0.1".into(),
    }
}

fn now() -> chrono::DateTime<FixedOffset> {
    FixedOffset::east_opt(0)
        .and_then(|z| z.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single())
        .expect("valid time")
}

fn dcmdump(path: &Path) -> String {
    let full = Command::new("dcmdump")
        .arg("+L")
        .arg(path)
        .output()
        .expect("dcmdump runs");
    String::from_utf8_lossy(&full.stdout).into_owned()
}

/// dciodvfy's error lines, without the instance-specific values.
fn dciodvfy_errors(path: &Path) -> BTreeSet<String> {
    let out = Command::new("dciodvfy")
        .arg(path)
        .output()
        .expect("dciodvfy runs");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.starts_with("Error"))
        .map(|l| l.to_string())
        .collect()
}

fn coerce_to(
    src: &Path,
    dst: &Path,
    policy: &CoercionPolicy,
    result: &Classification,
) -> (DefaultDicomObject, Outcome) {
    let mut obj = open_file(src).expect("sample opens");
    assert!(should_classify(&obj, policy));
    let report = apply_label(&mut obj, result, &model(), policy, now()).expect("coerces");
    obj.write_to_file(dst).expect("writes");
    (obj, report.outcome)
}

#[test]
fn cr_and_dx_read_back_with_dcmdump_and_stay_valid() {
    let names = [
        "10_CR_hip_JPEGExtended_MONO2_10u.dcm",
        "22_CR_hand_J2KLossless_MONO2_12u_SOTquirk.dcm",
        "20_DX_chest_J2KLossless_MONO1_12u.dcm",
        "23_CR_tibia_ExplicitLE_MONO1_10u.dcm",
    ];
    if !(tool("dcmdump") && tool("dciodvfy")) || sample(names[0]).is_none() {
        assert!(
            std::env::var_os("RADROUTE_ALLOW_SKIP").is_some(),
            "samples, dcmdump or dciodvfy missing (set RADROUTE_ALLOW_SKIP=1 to skip)"
        );
        eprintln!("samples, dcmdump or dciodvfy missing; skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = CoercionPolicy {
        overwrite: Overwrite::Always,
        ..CoercionPolicy::default()
    };
    let pelvis = Classification {
        label: Some(BodyPart {
            class: "pelvis".into(),
            body_part: "PELVIS".into(),
            snomed: "816092008".into(),
            meaning: "Pelvis structure".into(),
            correct_threshold: None,
        }),
        ..hand()
    };
    let abstain = Classification {
        label: None,
        ..hand()
    };
    for (name, result) in names
        .iter()
        .map(|n| (n, hand()))
        .chain(names.iter().map(|n| (n, pelvis.clone())))
        .chain(names.iter().map(|n| (n, abstain.clone())))
    {
        let src = sample(name).expect("sample");
        let dst = dir.path().join(format!(
            "{}_{name}",
            result
                .label
                .as_ref()
                .map(|l| l.class.as_str())
                .unwrap_or("none")
        ));
        let before_uid = open_file(&src)
            .expect("opens")
            .element(tags::SOP_INSTANCE_UID)
            .expect("uid")
            .to_str()
            .expect("str")
            .into_owned();
        let received = open_file(&src)
            .expect("opens")
            .element_opt(tags::BODY_PART_EXAMINED)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok().map(|s| s.trim().to_string()))
            .filter(|s| !s.is_empty());
        let (_, outcome) = coerce_to(&src, &dst, &policy, &result);
        let dump = dcmdump(&dst);
        let has = |needle: &str| dump.lines().any(|l| l.contains(needle));
        if result.label.is_none() {
            assert_eq!(outcome, Outcome::Abstained);
            assert!(has("(0077,1005) CS [ABSTAINED]"), "{name}: outcome");
            assert!(!has("(0400,0561)"), "{name}: nothing replaced");
            let new: Vec<_> = dciodvfy_errors(&dst)
                .difference(&dciodvfy_errors(&src))
                .cloned()
                .collect();
            assert!(
                new.is_empty(),
                "{name} abstained: new dciodvfy errors: {new:#?}"
            );
            continue;
        }
        let bp = result
            .label
            .as_ref()
            .map(|l| l.body_part.clone())
            .unwrap_or_default();
        let differs = received
            .as_deref()
            .is_some_and(|r| anatomy::compare(r, &bp) == anatomy::Relation::Different);
        if differs {
            assert_eq!(outcome, Outcome::Corrected, "{name}: {received:?} -> {bp}");
            assert!(has("(0077,1005) CS [CORRECTED]"), "{name}: outcome\n{dump}");
            assert!(has(&format!("(0077,1009) CS [{bp}]")), "{name}: new value");
        } else {
            assert_eq!(outcome, Outcome::Labelled, "{name}: {received:?} -> {bp}");
        }
        if let Some(r) = &received {
            assert!(
                has(&format!("(0077,1008) LO [{r}]")),
                "{name}: received value in the private block\n{dump}"
            );
        }
        assert!(
            has(&format!("(0018,0015) CS [{bp}]")),
            "{name}: Body Part Examined\n{dump}"
        );
        let code = result
            .label
            .as_ref()
            .map(|l| l.snomed.clone())
            .unwrap_or_default();
        assert!(has(&format!("(0008,0100) SH [{code}]")), "{name}: SCT code");
        assert!(has("(0008,0102) SH [SCT]"), "{name}: scheme");
        assert!(
            has("(0008,0100) SH [109103]"),
            "{name}: Modifying Equipment code"
        );
        assert!(
            has("(0008,0015) DT [20260102030405.000000+0000]"),
            "{name}: coercion DT"
        );
        assert!(has("(0400,0563) LO [radroute]"), "{name}: Modifying System");
        assert!(has("(0400,0565) CS [COERCE]"), "{name}: reason");
        assert!(
            has("(0077,0010) LO [RADROUTE 1.0]"),
            "{name}: private creator"
        );
        let scores: Vec<f32> = dump
            .lines()
            .find_map(|l| l.trim().strip_prefix("(0077,1004) FL "))
            .expect("scores element")
            .split_whitespace()
            .next()
            .expect("values")
            .split('\\')
            .map(|v| v.parse().expect("float"))
            .collect();
        let want = [0.01f32, 0.02, 0.93, 0.01, 0.03];
        assert!(
            scores.len() == 5 && scores.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{name}: scores {scores:?}"
        );
        assert!(
            has(&format!("(0077,1005) CS [{}]", outcome.as_str())),
            "{name}: outcome"
        );
        assert!(
            has(&format!("(0008,0018) UI [{before_uid}]")),
            "{name}: SOP Instance UID kept"
        );
        let before = dciodvfy_errors(&src);
        let after = dciodvfy_errors(&dst);
        let new: Vec<_> = after.difference(&before).collect();
        assert!(
            new.is_empty(),
            "{name} as {bp}: new dciodvfy errors: {new:#?}"
        );
    }
}

#[test]
fn abstention_and_never_policy_write_scores_but_no_label() {
    let Some(src) = sample("22_CR_hand_J2KLossless_MONO2_12u_SOTquirk.dcm") else {
        assert!(
            std::env::var_os("RADROUTE_ALLOW_SKIP").is_some(),
            "samples missing (set RADROUTE_ALLOW_SKIP=1 to skip)"
        );
        eprintln!("samples missing; skipping");
        return;
    };
    let mut obj = open_file(&src).expect("opens");
    let before = obj
        .element(tags::BODY_PART_EXAMINED)
        .expect("bpe")
        .to_str()
        .expect("s")
        .into_owned();
    let abstain = Classification {
        label: None,
        ..hand()
    };
    let policy = CoercionPolicy::default();
    let r = apply_label(&mut obj, &abstain, &model(), &policy, now()).expect("coerces");
    assert_eq!(r.outcome, Outcome::Abstained);
    assert_eq!(r.body_part.as_deref(), Some(before.trim()));
    assert!(obj
        .element_opt(tags::ORIGINAL_ATTRIBUTES_SEQUENCE)
        .expect("ok")
        .is_none());

    let never = CoercionPolicy {
        overwrite: Overwrite::Never,
        ..CoercionPolicy::default()
    };
    let mut obj = open_file(&src).expect("opens");
    let r = apply_label(&mut obj, &hand(), &model(), &never, now()).expect("coerces");
    assert_eq!(before.trim(), "HAND", "the sample's header names the hand");
    assert_eq!(r.outcome, Outcome::Agreed, "same region: agreement");
    assert_eq!(r.body_part.as_deref(), Some(before.trim()));
    let knee = Classification {
        label: Some(BodyPart {
            class: "knee".into(),
            body_part: "KNEE".into(),
            snomed: "72696002".into(),
            meaning: "Knee".into(),
            correct_threshold: Some(0.5),
        }),
        scores: vec![("knee".into(), 0.99)],
    };
    let mut obj = open_file(&src).expect("opens");
    let r = apply_label(&mut obj, &knee, &model(), &never, now()).expect("coerces");
    assert_eq!(r.outcome, Outcome::KeptExisting, "never replaces");
    assert_eq!(r.body_part.as_deref(), Some(before.trim()));
}
