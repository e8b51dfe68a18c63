//! Issue 3 end to end: storescu → radroute with the tiny test model (real ONNX Runtime) →
//! Orthanc. The label, the SNOMED code, the coercion time, the private scores block and the
//! Original Attributes Sequence are read back from Orthanc's stored file with dcmdump; dciodvfy
//! finds no error in the coerced CR that the original did not have. An abstention writes no
//! label but keeps the scores; a CT is not classified; a CR whose pixels do not decode is
//! forwarded unlabelled with the reason in the queue.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use radroute_e2e::dcmtk::{dcmdump, run_bounded, storescu};
use radroute_e2e::orthanc::Orthanc;
use radroute_e2e::python::{make_instances, Instance};
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::{sample, wait_for, workspace_root};

/// The ONNX Runtime library of the wheel in .venv (checked to exist).
pub fn onnxruntime_library() -> PathBuf {
    let ort = workspace_root()
        .join(".venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1");
    assert!(
        ort.is_file(),
        "ONNX Runtime library missing: {}",
        ort.display()
    );
    ort
}

/// `[classify]` with the tiny fixture model and the wheel's ONNX Runtime.
pub fn classify_toml(overwrite: &str) -> String {
    let model = workspace_root().join("tests/fixtures/models/tiny");
    let ort = onnxruntime_library();
    format!(
        "\n[classify]\nmodel = {:?}\nonnxruntime = {:?}\noverwrite = {overwrite:?}\nthreads = 1\nworkers = 1\n",
        model.to_string_lossy(),
        ort.to_string_lossy()
    )
}

/// dciodvfy's "Error - …" lines for a file (stderr and stdout together).
pub fn dciodvfy_errors(file: &Path) -> BTreeSet<String> {
    let mut cmd = Command::new("/usr/bin/dciodvfy");
    cmd.arg(file);
    let (_, out) = run_bounded(cmd, Duration::from_secs(60));
    out.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Error"))
        .map(str::to_string)
        .collect()
}

/// The dcmdump lines of the private group 0077 block reserved by "RADROUTE 1.0" (empty if none).
pub fn radroute_private_block(dump: &str) -> Vec<String> {
    let Some(slot) = dump.lines().find_map(|l| {
        let l = l.trim();
        (l.starts_with("(0077,00") && l.contains("[RADROUTE 1.0]")).then(|| l[8..10].to_string())
    }) else {
        return Vec::new();
    };
    let prefix = format!("(0077,{slot}");
    dump.lines()
        .map(str::trim)
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with(&prefix.to_ascii_lowercase())
        })
        .map(str::to_string)
        .collect()
}

/// `(tag) VR [value]`: a line of the dump starting with `tag` and containing `text`.
pub fn has_line(dump: &str, tag: &str, text: &str) -> bool {
    dump.lines()
        .map(str::trim)
        .any(|l| l.starts_with(tag) && l.contains(text))
}

#[test]
fn labels_abstentions_and_decode_failures_reach_orthanc() {
    let dir = radroute_e2e::test_dir("classify");
    let d = dir.path();
    let pacs = Orthanc::start(&d.join("orthanc"), "ORTHANC");

    let f = |n: &str| d.join("in").join(n);
    let (hand, flat, prior, ct) = (f("hand.dcm"), f("flat.dcm"), f("prior.dcm"), f("ct.dcm"));
    let uids = make_instances(&[
        (&hand, Instance::default()),
        (
            &flat,
            Instance {
                pattern: "flat",
                ..Instance::default()
            },
        ),
        (
            &prior,
            Instance {
                set: &[("BodyPartExamined", "CHEST")],
                ..Instance::default()
            },
        ),
        (
            &ct,
            Instance {
                modality: "CT",
                ..Instance::default()
            },
        ),
    ]);
    let (hand_uid, flat_uid, prior_uid, ct_uid) = (&uids[0], &uids[1], &uids[2], &uids[3]);
    // A CR whose JPEG header disagrees with the stream: parses, but its pixels do not decode.
    let bad = sample("malformed/M9_CR_JPEGExtended_header_vs_stream_mismatch.dcm");
    let bad_uid = "1.3.6.1.4.1.5962.1.1.10.1.5.20040826185059.5457";

    let r = Radroute::start(
        d,
        Config {
            extra: classify_toml("always"),
            ..Config::default()
        }
        .destination("pacs", "ORTHANC", pacs.dicom_port),
    );
    let files: Vec<PathBuf> = vec![hand.clone(), flat.clone(), prior.clone(), ct.clone()];
    let run = storescu("RADROUTE", r.dicom_port, &[], &files);
    assert!(run.all_ok(&files), "{}", r.context(&run.log));
    let run = storescu(
        "RADROUTE",
        r.dicom_port,
        &["-xx"],
        std::slice::from_ref(&bad),
    );
    assert!(
        run.all_ok(std::slice::from_ref(&bad)),
        "{}",
        r.context(&run.log)
    );

    let all: Vec<&str> = vec![hand_uid, flat_uid, prior_uid, ct_uid, bad_uid];
    let ids: Vec<String> = wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            all.iter()
                .map(|u| pacs.lookup(u))
                .collect::<Option<Vec<_>>>()
        },
        || {
            r.context(&format!(
                "Orthanc has {} of 5 instances",
                pacs.count_instances()
            ))
        },
    );
    let fetch = |i: usize| -> (PathBuf, String) {
        let p = d.join(format!("out{i}.dcm"));
        std::fs::write(&p, pacs.file(&ids[i])).unwrap();
        let dump = dcmdump(&p);
        (p, dump)
    };

    // Labelled: HAND, same UID, the SNOMED code (SCT), coercion time, scores, valid IOD.
    let (hand_out, dump) = fetch(0);
    let ctx = |what: &str, dump: &str| r.context(&format!("{what}:\n{dump}"));
    assert!(
        has_line(&dump, "(0008,0018)", hand_uid),
        "{}",
        ctx("SOP Instance UID changed", &dump)
    );
    assert!(
        has_line(&dump, "(0018,0015)", "[HAND]"),
        "{}",
        ctx("no HAND label", &dump)
    );
    assert!(
        has_line(&dump, "(0008,2218) SQ", ""),
        "{}",
        ctx("no Anatomic Region Sequence", &dump)
    );
    assert!(
        has_line(&dump, "(0008,0100)", "[85562004]"),
        "{}",
        ctx("no SNOMED code of Hand", &dump)
    );
    assert!(
        has_line(&dump, "(0008,0102)", "[SCT]"),
        "{}",
        ctx("coding scheme not SCT", &dump)
    );
    assert!(
        has_line(&dump, "(0008,0015) DT", "["),
        "{}",
        ctx("no Instance Coercion DateTime", &dump)
    );
    let block = radroute_private_block(&dump);
    assert!(
        block
            .iter()
            .any(|l| l.contains(" FL ") && l.contains(", 5 ")),
        "{}",
        ctx("no private block with 5 class scores", &dump)
    );
    assert!(
        block
            .iter()
            .any(|l| l.contains("[shoulder\\elbow\\hand\\pelvis\\knee]")),
        "{block:?}"
    );
    let before = dciodvfy_errors(&hand);
    let after = dciodvfy_errors(&hand_out);
    let new: Vec<_> = after.difference(&before).collect();
    assert!(
        new.is_empty(),
        "dciodvfy errors introduced by coercion: {new:?}\n{dump}"
    );

    // Abstained: no label written, the scores are still there.
    let (_, dump) = fetch(1);
    assert!(has_line(&dump, "(0008,0018)", flat_uid));
    assert!(
        !dump
            .lines()
            .any(|l| l.trim().starts_with("(0018,0015) CS [")),
        "{}",
        ctx("abstention wrote a Body Part Examined", &dump)
    );
    assert!(
        !has_line(&dump, "(0008,2218)", ""),
        "{}",
        ctx("abstention wrote a region", &dump)
    );
    let block = radroute_private_block(&dump);
    assert!(
        block
            .iter()
            .any(|l| l.contains(" FL ") && l.contains(", 5 ")),
        "{}",
        ctx("abstention lost its scores", &dump)
    );

    // overwrite = "always": CHEST replaced by HAND and kept in Original Attributes Sequence.
    let (_, dump) = fetch(2);
    assert!(has_line(&dump, "(0008,0018)", prior_uid));
    assert!(
        has_line(&dump, "(0018,0015)", "[HAND]"),
        "{}",
        ctx("prior value not replaced", &dump)
    );
    let oas = dump
        .find("(0400,0561)")
        .unwrap_or_else(|| panic!("{}", ctx("no Original Attributes Sequence", &dump)));
    assert!(
        dump[oas..].contains("(0018,0015) CS [CHEST]"),
        "{}",
        ctx("prior CHEST not in Original Attributes Sequence", &dump)
    );

    // CT: not classified, untouched.
    let (_, dump) = fetch(3);
    assert!(has_line(&dump, "(0008,0018)", ct_uid));
    assert!(
        radroute_private_block(&dump).is_empty(),
        "{}",
        ctx("CT was classified", &dump)
    );
    assert!(
        !has_line(&dump, "(0018,0015) CS [", ""),
        "{}",
        ctx("CT got a label", &dump)
    );

    // Decode failure: forwarded unlabelled, the reason recorded on the instance.
    let (_, dump) = fetch(4);
    assert!(
        radroute_private_block(&dump).is_empty(),
        "{}",
        ctx("undecodable CR got scores", &dump)
    );
    let jobs = r.api_json("/api/v1/jobs?limit=100");
    let instance_of = |uid: &str| -> serde_json::Value {
        let job = jobs
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["sop_instance_uid"] == uid)
            .unwrap_or_else(|| panic!("no job for {uid}: {jobs}"));
        r.api_json(&format!(
            "/api/v1/instances/{}",
            job["instance_id"].as_str().unwrap()
        ))
    };
    let bad_inst = instance_of(bad_uid);
    assert!(bad_inst["label"].is_null(), "{bad_inst}");
    assert!(
        bad_inst["note"]
            .as_str()
            .unwrap_or("")
            .contains("not decodable"),
        "decode failure not noted: {bad_inst}"
    );
    assert_eq!(instance_of(hand_uid)["label"], "HAND");
    let flat_inst = instance_of(flat_uid);
    assert!(flat_inst["label"].is_null(), "{flat_inst}");
    assert!(
        flat_inst["note"]
            .as_str()
            .unwrap_or("")
            .contains("abstained"),
        "{flat_inst}"
    );

    // Counters: two HAND labels, abstentions by reason.
    let metrics = r.metrics();
    assert!(
        metrics.contains("radroute_labels_total{label=\"HAND\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("radroute_abstentions_total{reason=\"decode_error\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("radroute_model_loaded 1"), "{metrics}");
}
