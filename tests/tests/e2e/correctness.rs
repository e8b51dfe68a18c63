//! Issue 10, correctness: what radroute does must be what the configuration says.
//!
//! - `check-config` refuses values that would panic or misbehave at start (`inf`/`nan`/negative
//!   retry delays, `max_pdu` outside its range, unreachable ports, a number where a path
//!   belongs), and `serve` refuses the same files with the same message; a route on a label the
//!   model never gives is a warning.
//! - Study-scope routes apply their `set` / `remove` edits to every instance of the study.
//! - Corrupt compressed pixels never leave as clean-looking uncompressed pixels.

use std::path::{Path, PathBuf};
use std::time::Duration;

use radroute_e2e::dcmtk::{dcmdump, storescu};
use radroute_e2e::orthanc::Orthanc;
use radroute_e2e::ports::free_port;
use radroute_e2e::python::{make_instances, raw_store, Instance, RawOutcome};
use radroute_e2e::radroute::{run_cli, Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::wait_for;

use crate::classification::classify_toml;

/// CT Image Storage.
const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
/// JPEG Lossless, Non-Hierarchical (Process 14).
const JPEG_LOSSLESS_P14: &str = "1.2.840.10008.1.2.4.57";

/// A generated configuration for `dir`, changed by `edit`, written to `dir/<name>.toml`.
fn config_file(
    dir: &Path,
    name: &str,
    config: &Config,
    edit: impl Fn(String) -> String,
) -> PathBuf {
    let text = config.to_toml(dir);
    let changed = edit(text.clone());
    assert_ne!(changed, text, "{name}: the edit changed nothing");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, changed).expect("write config");
    path
}

#[test]
fn check_config_and_serve_refuse_values_that_cannot_work() {
    let dir = radroute_e2e::test_dir("check-config");
    let d = dir.path();
    let pacs = free_port();
    let config = Config::default().destination("pacs", "PACS", pacs);
    let pacs_address = format!("address = \"127.0.0.1:{pacs}\"");
    // (name, edit of the generated file, what the refusal must name)
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "backoff-inf",
            Box::new(|t| t.replace("backoff_max_secs = 1.0", "backoff_max_secs = inf")),
            "queue.backoff_max_secs",
        ),
        (
            "backoff-nan",
            Box::new(|t| t.replace("backoff_base_secs = 0.2", "backoff_base_secs = nan")),
            "queue.backoff_base_secs",
        ),
        (
            "backoff-negative",
            Box::new(|t| t.replace("backoff_base_secs = 0.2", "backoff_base_secs = -3.0")),
            "queue.backoff_base_secs",
        ),
        (
            "max-pdu-zero",
            Box::new(|t| t.replace("[node]\n", "[node]\nmax_pdu = 0\n")),
            "node.max_pdu",
        ),
        (
            "max-pdu-tiny",
            Box::new(|t| t.replace("[node]\n", "[node]\nmax_pdu = 100\n")),
            "node.max_pdu",
        ),
        (
            "max-pdu-huge",
            Box::new(|t| t.replace("[node]\n", "[node]\nmax_pdu = 4294967295\n")),
            "node.max_pdu",
        ),
        (
            "port-99999",
            Box::new({
                let a = pacs_address.clone();
                move |t| t.replace(&a, "address = \"127.0.0.1:99999\"")
            }),
            "destinations[0] (pacs)",
        ),
        (
            "port-0",
            Box::new({
                let a = pacs_address.clone();
                move |t| t.replace(&a, "address = \"127.0.0.1:0\"")
            }),
            "destinations[0] (pacs)",
        ),
        (
            "listen-port-0",
            Box::new(|t| {
                let line = t
                    .lines()
                    .find(|l| l.starts_with("listen = \"127.0.0.1:"))
                    .expect("node.listen line")
                    .to_string();
                t.replacen(&line, "listen = \"127.0.0.1:0\"", 1)
            }),
            "node.listen",
        ),
        (
            "spool-dir-number",
            Box::new(|t| {
                let line = t
                    .lines()
                    .find(|l| l.starts_with("dir = "))
                    .expect("spool.dir line")
                    .to_string();
                t.replace(&line, "dir = 5")
            }),
            "spool.dir",
        ),
    ];
    for (name, edit, names) in &cases {
        let file = config_file(d, name, &config, edit);
        let (code, out) = run_cli(&["check-config"], &file);
        assert_eq!(code, Some(1), "check-config accepted {name}:\n{out}");
        let message = out
            .lines()
            .find(|l| l.contains(names))
            .unwrap_or_else(|| panic!("{name}: no line names {names}:\n{out}"))
            .to_string();
        // serve goes through the same validation: same refusal, same words, nothing started.
        let (code, served) = run_cli(&["serve", "--config"], &file);
        assert_eq!(code, Some(1), "serve with {name}:\n{served}");
        assert!(
            served.contains(&message),
            "{name}: serve refused otherwise than check-config ({message:?}):\n{served}"
        );
        assert!(!served.contains("panicked"), "{name}:\n{served}");
    }
    // The generated file itself is fine.
    let ok = d.join("ok.toml");
    std::fs::write(&ok, config.to_toml(d)).expect("write");
    let (code, out) = run_cli(&["check-config"], &ok);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn check_config_warns_about_labels_the_model_never_gives() {
    let dir = radroute_e2e::test_dir("check-config-labels");
    let d = dir.path();
    let routes = r#"
[[routes]]
name = "feet"
when.label = "FOOT"
destinations = ["pacs"]

[[routes]]
name = "hands"
when.label = ["HAND", "none"]
destinations = ["pacs"]

[[routes]]
destinations = ["pacs"]
"#;
    let config = Config {
        extra: classify_toml("if-empty"),
        routes: Some(routes.into()),
        ..Config::default()
    }
    .destination("pacs", "PACS", free_port());
    let file = d.join("labels.toml");
    std::fs::write(&file, config.to_toml(d)).expect("write");
    let (code, out) = run_cli(&["check-config"], &file);
    // A warning, not a refusal: the model may be replaced by one that has the label.
    assert_eq!(code, Some(0), "{out}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains("feet") && warnings[0].contains("\"FOOT\""),
        "{out}"
    );
}

/// A study-scope route's `set` and `remove` reach the destination in every instance of the study,
/// on top of an instance route's edit, with the prior value kept in the Original Attributes
/// Sequence.
#[test]
fn study_route_edits_are_applied_to_every_instance() {
    let dir = radroute_e2e::test_dir("study-edits");
    let d = dir.path();
    let sink = StoreScp::start(&d.join("sink"), "SINK", free_port());
    let routes = r#"
[routing]
fallback = ["fb"]
study_stable_after_secs = 1

[[routes]]
name = "study-edits"
scope = "study"
stop = false
destinations = ["sink"]
set.InstitutionName = "STUDY ROUTED"
remove = ["PatientComments"]

[[routes]]
name = "station"
set.StationName = "INSTANCE EDIT"
"#;
    let r = Radroute::start(
        d,
        Config {
            routes: Some(routes.into()),
            ..Config::default()
        }
        .destination("sink", "SINK", sink.port)
        .destination("fb", "FB", free_port()),
    );
    let study = "1.2.826.0.1.3680043.8.498.1010.1";
    let spec = Instance {
        study: Some(study),
        set: &[
            ("InstitutionName", "BEFORE STUDY"),
            ("PatientComments", "REMOVE ME"),
        ],
        ..Instance::default()
    };
    let paths: Vec<_> = ["s1", "s2"]
        .iter()
        .map(|n| d.join(format!("in/{n}.dcm")))
        .collect();
    let uids = make_instances(&[(&paths[0], spec.clone()), (&paths[1], spec)]);
    let run = storescu("RADROUTE", r.dicom_port, &[], &paths);
    assert!(run.all_ok(&paths), "{}", r.context(&run.log));
    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || (sink.received().len() == uids.len()).then_some(()),
        || r.context(&format!("sink has {:?}", sink.received())),
    );
    for uid in &uids {
        let dump = dcmdump(&sink.file_for(uid).expect("received file"));
        let top: Vec<&str> = dump.lines().filter(|l| l.starts_with('(')).collect();
        let has = |prefix: &str| top.iter().any(|l| l.starts_with(prefix));
        assert!(
            has("(0008,0080) LO [STUDY ROUTED]"),
            "{}",
            r.context(&format!("study route's set not applied to {uid}:\n{dump}"))
        );
        assert!(
            !has("(0010,4000)"),
            "{}",
            r.context(&format!(
                "study route's remove not applied to {uid}:\n{dump}"
            ))
        );
        assert!(
            has("(0008,1010) SH [INSTANCE EDIT]"),
            "instance route's edit lost in {uid}:\n{dump}"
        );
        // The prior values are kept (nested in the Original Attributes Sequence).
        assert!(
            dump.contains("[BEFORE STUDY]") && dump.contains("[REMOVE ME]"),
            "prior values not recorded in {uid}:\n{dump}"
        );
    }
}

/// A lossless JPEG (process 14, .57) whose entropy-coded data is damaged decodes without a codec
/// error, to noise. To a destination that accepts only uncompressed syntaxes (storescp: even with
/// `+xa` it does not take .57) it must not go as clean-looking native pixels: its job is a dead
/// letter naming the reason. A destination that accepts .57 (Orthanc) gets it unchanged.
#[test]
fn corrupt_compressed_pixels_are_not_forwarded_decompressed() {
    let dir = radroute_e2e::test_dir("corrupt-transcode");
    let d = dir.path();
    let native = StoreScp::start(&d.join("native"), "NATIVE", free_port());
    let orthanc = Orthanc::start(&d.join("orthanc"), "ORTHANC");
    let mut config = Config::default()
        .destination("native", "NATIVE", native.port)
        .destination("orthanc", "ORTHANC", orthanc.dicom_port);
    config.sop_classes = vec![CT.to_string()];
    let r = Radroute::start(d, config);
    // storescu cannot propose .57: send the data set bytes as they are, with the data set's own
    // SOP Instance UID (the file meta's differs).
    let sample = radroute_e2e::sample("malformed/M3_JPEGLossless_bad_stream.dcm");
    let uid = "9.99.999.9999";
    let (outcome, log) = raw_store(
        r.dicom_port,
        "RADROUTE",
        &sample,
        None,
        None,
        Some(uid),
        Duration::from_secs(30),
    );
    assert!(
        matches!(outcome, RawOutcome::Status(0)),
        "{}",
        r.context(&format!("{outcome:?}\n{log}"))
    );
    let dead = wait_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            r.queue_list()
                .into_iter()
                .find(|j| j["destination"] == "native" && j["state"] == "dead")
        },
        || {
            r.context(&format!(
                "no dead letter for the uncompressed-only destination: jobs {:?}, native sink {:?}",
                r.queue_list(),
                native.received()
            ))
        },
    );
    let reason = dead["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("corrupt")
            && reason.contains(JPEG_LOSSLESS_P14)
            && reason.contains("native"),
        "{reason}"
    );
    let id = wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || orthanc.lookup(uid),
        || {
            r.context(&format!(
                "the original never reached Orthanc: {:?}",
                r.queue_list()
            ))
        },
    );
    let copy = d.join("orthanc-copy.dcm");
    std::fs::write(&copy, orthanc.file(&id)).expect("write copy");
    let (original, copy) = (
        radroute_e2e::dicom::pixel_tail(&sample),
        radroute_e2e::dicom::pixel_tail(&copy),
    );
    assert!(
        original.is_some() && original == copy,
        "the accepting destination did not get the original compressed pixels"
    );
    assert!(
        native.received().is_empty(),
        "{}",
        r.context("decompressed noise reached the uncompressed-only destination")
    );
}
