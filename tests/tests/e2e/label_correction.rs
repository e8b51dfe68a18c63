//! Issue 12 end to end with the shipped model (models/bodypart) and real radiographs from
//! /work/shared/data/radiographs wrapped as CR (tests/scripts/wrap_radiograph.py) with a chosen
//! Body Part Examined: storescu → radroute (default `overwrite`, i.e. "correct") → Orthanc,
//! read back with dcmdump.
//!
//! - A hand radiograph whose header says CHEST: corrected to HAND (CHEST kept in Original
//!   Attributes Sequence, the private block says CORRECTED with both values, Anatomic Region
//!   Sequence is Hand's, the correction counter and the log say so).
//! - A hand radiograph whose header says "Hand ": the model agrees, the header is left alone.
//! - A paranasal sinus radiograph (no class of the model) whose header says HAND: the model
//!   abstains, the (wrong) header is left untouched.
//! - A chest radiograph with an empty header: CHEST with SCT 816094009.
//!
//! Model 2.0.0 has a chest class and correction thresholds. With the five-class 1.1.0 model
//! (no `correct_threshold`, no chest class) the test says so on stderr and checks what that
//! model must do instead: CHEST kept on the hand (KEPT_EXISTING), the chest film abstained.

use std::path::{Path, PathBuf};
use std::time::Duration;

use radroute_e2e::dcmtk::{dcmdump, storescu};
use radroute_e2e::orthanc::Orthanc;
use radroute_e2e::python::wrap_radiographs;
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::{shared_dir, wait_for, workspace_root};

use crate::classification::{has_line, onnxruntime_library, radroute_private_block};

/// Radiographs (relative to the shared radiographs folder) and the region they show (UNIFESP
/// labels). Model 2.0.0 scores the hands 0.998 and 0.9999 (hand's correct_threshold 0.90), the
/// sinus film below every label threshold and the chest film 0.999 chest.
const HAND_A: &str =
    "hand/unifesp/1.2.826.0.1.3680043.8.498.13152276945227290362166825179514255953-c.png";
const HAND_B: &str =
    "hand/unifesp/1.2.826.0.1.3680043.8.498.10999331023067486796176446612402478703-c.png";
const SINUS: &str =
    "other/unifesp/1.2.826.0.1.3680043.8.498.10121269997000927609159070327294073193-c.png";
const CHEST: &str =
    "other/unifesp/1.2.826.0.1.3680043.8.498.10072001800484199846734151421006166369-c.png";

/// One radiograph to wrap: output file, image, Body Part Examined.
struct Wrap<'a> {
    out: PathBuf,
    image: &'a str,
    body_part: &'a str,
}

/// Wraps the radiographs as CR files; returns their SOP Instance UIDs in order.
fn wrap(items: &[Wrap]) -> Vec<String> {
    let root = shared_dir().join("data/radiographs");
    let specs: Vec<_> = items
        .iter()
        .map(|w| {
            let set = serde_json::json!({"BodyPartExamined": w.body_part});
            (w.out.clone(), root.join(w.image), set)
        })
        .collect();
    wrap_radiographs(&specs)
}

/// The `[[classes]]` block of `class` in the shipped manifest (`None` when the model has no
/// such class). Plain text: the e2e crate does not parse TOML.
fn manifest_class(class: &str) -> Option<String> {
    let text = std::fs::read_to_string(workspace_root().join("models/bodypart/manifest.toml"))
        .expect("models/bodypart/manifest.toml");
    text.split("[[classes]]")
        .skip(1)
        .find(|block| {
            block
                .lines()
                .any(|l| l.trim().replace(' ', "") == format!("name=\"{class}\""))
        })
        .map(str::to_string)
}

/// The private block's outcome element (0077,xx05), e.g. `CORRECTED`.
fn outcome(dump: &str) -> String {
    radroute_private_block(dump)
        .iter()
        .find(|l| l[8..10].eq_ignore_ascii_case("05") && l.contains(" CS "))
        .and_then(|l| Some(l[l.find('[')? + 1..l.find(']')?].to_string()))
        .unwrap_or_default()
}

#[test]
fn wrong_headers_are_corrected_agreeing_and_unsure_ones_left_alone() {
    let hand_corrects = manifest_class("hand")
        .expect("the shipped model has a hand class")
        .contains("correct_threshold");
    let has_chest = manifest_class("chest").is_some();
    if !(hand_corrects && has_chest) {
        eprintln!(
            "[label-correction] models/bodypart is older than 2.0.0 (correct_threshold for hand: \
             {hand_corrects}, chest class: {has_chest}): checking what it must do instead"
        );
    }
    let dir = radroute_e2e::test_dir("label-correction");
    let d = dir.path();
    let pacs = Orthanc::start(&d.join("orthanc"), "ORTHANC");
    let f = |n: &str| d.join("in").join(n);
    let items = [
        Wrap {
            out: f("wrong.dcm"),
            image: HAND_A,
            body_part: "CHEST",
        },
        Wrap {
            out: f("agree.dcm"),
            image: HAND_B,
            body_part: "Hand ",
        },
        Wrap {
            out: f("unsure.dcm"),
            image: SINUS,
            body_part: "HAND",
        },
        Wrap {
            out: f("chest.dcm"),
            image: CHEST,
            body_part: "",
        },
    ];
    let uids = wrap(&items);

    let model = workspace_root().join("models/bodypart");
    // No `overwrite` key: the daemon's default is under test.
    let classify = format!(
        "\n[classify]\nmodel = {:?}\nonnxruntime = {:?}\nthreads = 1\nworkers = 1\n",
        model.to_string_lossy(),
        onnxruntime_library().to_string_lossy()
    );
    let r = Radroute::start(
        d,
        Config {
            extra: classify,
            ..Config::default()
        }
        .destination("pacs", "ORTHANC", pacs.dicom_port),
    );
    let files: Vec<PathBuf> = items.iter().map(|w| w.out.clone()).collect();
    let run = storescu("RADROUTE", r.dicom_port, &[], &files);
    assert!(run.all_ok(&files), "{}", r.context(&run.log));
    let ids: Vec<String> = wait_for(
        Duration::from_secs(90),
        Duration::from_millis(200),
        || {
            uids.iter()
                .map(|u| pacs.lookup(u))
                .collect::<Option<Vec<_>>>()
        },
        || r.context(&format!("Orthanc has {} of 4", pacs.count_instances())),
    );
    let fetch = |i: usize| -> String {
        let p: &Path = &d.join(format!("out{i}.dcm"));
        std::fs::write(p, pacs.file(&ids[i])).expect("write fetched file");
        dcmdump(p)
    };
    let ctx = |what: &str, dump: &str| r.context(&format!("{what}:\n{dump}"));

    // 1. A hand whose header says CHEST.
    let dump = fetch(0);
    if hand_corrects {
        assert!(
            has_line(&dump, "(0008,0018)", &uids[0]),
            "{}",
            ctx("UID changed", &dump)
        );
        assert_eq!(
            outcome(&dump),
            "CORRECTED",
            "{}",
            ctx("not corrected", &dump)
        );
        assert!(
            has_line(&dump, "(0018,0015)", "[HAND]"),
            "{}",
            ctx("not HAND", &dump)
        );
        assert!(
            has_line(&dump, "(0008,0100)", "[85562004]"),
            "{}",
            ctx("Anatomic Region Sequence is not Hand's", &dump)
        );
        let oas = dump
            .find("(0400,0561)")
            .unwrap_or_else(|| panic!("{}", ctx("no Original Attributes Sequence", &dump)));
        assert!(
            dump[oas..].contains("(0018,0015) CS [CHEST]"),
            "{}",
            ctx("prior CHEST not in Original Attributes Sequence", &dump)
        );
        let block = radroute_private_block(&dump).join("\n");
        assert!(
            block.contains("[CHEST]") && block.contains("[HAND]"),
            "private block lacks both values:\n{block}"
        );
        let metrics = r.metrics();
        assert!(
            metrics.contains("radroute_corrections_total{label=\"HAND\"} 1"),
            "{metrics}"
        );
        let log = r.log();
        assert!(
            log.lines()
                .any(|l| l.contains("corrected") && l.contains("CHEST") && l.contains("HAND")),
            "{}",
            r.context("no log line about the correction")
        );
    } else {
        assert_eq!(outcome(&dump), "KEPT_EXISTING", "{}", ctx("outcome", &dump));
        assert!(
            has_line(&dump, "(0018,0015)", "[CHEST]"),
            "{}",
            ctx("CHEST lost", &dump)
        );
        assert!(!dump.contains("(0400,0561)"), "{}", ctx("coerced", &dump));
    }

    // 2. A hand whose header says "Hand ": agreement, left alone.
    let dump = fetch(1);
    assert_eq!(outcome(&dump), "AGREED", "{}", ctx("not agreed", &dump));
    assert!(
        has_line(&dump, "(0018,0015)", "[Hand"),
        "{}",
        ctx("header changed", &dump)
    );
    assert!(
        !dump.contains("(0400,0561)"),
        "{}",
        ctx("agreement recorded a modification", &dump)
    );

    // 3. A sinus radiograph whose header says HAND: the model abstains, header untouched.
    let dump = fetch(2);
    assert_eq!(
        outcome(&dump),
        "ABSTAINED",
        "{}",
        ctx("not abstained", &dump)
    );
    assert!(
        has_line(&dump, "(0018,0015)", "[HAND]"),
        "{}",
        ctx("header changed", &dump)
    );
    assert!(!dump.contains("(0400,0561)"), "{}", ctx("coerced", &dump));
    assert!(
        !has_line(&dump, "(0008,2218)", ""),
        "{}",
        ctx("region written", &dump)
    );

    // 4. A chest radiograph, empty header.
    let dump = fetch(3);
    if has_chest {
        assert_eq!(
            outcome(&dump),
            "LABELLED",
            "{}",
            ctx("chest not labelled", &dump)
        );
        assert!(
            has_line(&dump, "(0018,0015)", "[CHEST]"),
            "{}",
            ctx("not CHEST", &dump)
        );
        assert!(
            has_line(&dump, "(0008,0100)", "[816094009]"),
            "{}",
            ctx("no SNOMED CT code of Chest", &dump)
        );
        assert!(
            has_line(&dump, "(0008,0102)", "[SCT]"),
            "{}",
            ctx("not SCT", &dump)
        );
    } else {
        assert_eq!(outcome(&dump), "ABSTAINED", "{}", ctx("outcome", &dump));
        assert!(
            !has_line(&dump, "(0018,0015) CS [", ""),
            "{}",
            ctx("labelled", &dump)
        );
    }

    // One correction in all: the agreement and the abstention were not counted.
    let metrics = r.metrics();
    let corrections: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("radroute_corrections_total{"))
        .collect();
    let want: &[&str] = if hand_corrects {
        &["radroute_corrections_total{label=\"HAND\"} 1"]
    } else {
        &[]
    };
    assert_eq!(corrections, want, "{metrics}");
}
