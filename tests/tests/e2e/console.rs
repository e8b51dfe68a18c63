//! Issue 11, the console, in a real browser (tests/browser/console_test.py: Playwright for Python
//! driving Debian's Chromium, headless): radiographs with an empty Body Part Examined go through
//! radroute (the shipped model) to Orthanc and to a second destination that is down; the browser
//! logs in with the token, sees every instance with the label radroute wrote, an instance's model
//! input image and scores, the failing destination flagged, retries its dead letters (after the
//! operator fixed its address) and the rule tester's decision; the retried instances then arrive.
//! A patient name carrying a script tag is shown, never run. Screenshots go to the test dir, or to
//! `$RADROUTE_SCREENSHOTS` (docs/screenshots is made that way).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use radroute_e2e::dcmtk::{run_bounded, storescu_as};
use radroute_e2e::orthanc::Orthanc;
use radroute_e2e::ports::free_port;
use radroute_e2e::python::{python, wrap_radiographs};
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::{shared_dir, wait_for, workspace_root};

const TOKEN: &str = "console-e2e-token";
/// Shown escaped by the console; a dialog in the browser would fail the test.
const HOSTILE_NAME: &str = "Doe^<img src=x onerror=alert(1)>";

/// The radiographs sent: (image under the shared radiographs, accession).
const IMAGES: &[(&str, &str)] = &[
    ("hand/rsna_boneage/10097.png", "CONSOLE-1"),
    ("hand/rsna_boneage/10209.png", "CONSOLE-2"),
    (
        "elbow/unifesp/1.2.826.0.1.3680043.8.498.10096016393614468374034446437413983650-c.png",
        "CONSOLE-3",
    ),
];

/// Wraps the radiographs as CR with no Body Part Examined, the given accession and a hostile
/// patient name: the files and their SOP Instance UIDs, in order.
fn wrap(dir: &std::path::Path) -> (Vec<PathBuf>, Vec<String>) {
    let root = shared_dir().join("data/radiographs");
    let specs: Vec<_> = IMAGES
        .iter()
        .enumerate()
        .map(|(i, (image, accession))| {
            let set = serde_json::json!({
                "BodyPartExamined": null, "AccessionNumber": accession, "PatientName": HOSTILE_NAME,
            });
            (dir.join(format!("in{i}.dcm")), root.join(image), set)
        })
        .collect();
    let uids = wrap_radiographs(&specs);
    (specs.into_iter().map(|(out, _, _)| out).collect(), uids)
}

/// `[classify]` with the shipped model and the wheel's ONNX Runtime.
fn classify_toml() -> String {
    let model = workspace_root().join("models/bodypart");
    let ort = super::classification::onnxruntime_library();
    format!(
        "\n[classify]\nmodel = {:?}\nonnxruntime = {:?}\noverwrite = \"if-empty\"\nthreads = 1\nworkers = 1\n",
        model.to_string_lossy(),
        ort.to_string_lossy()
    )
}

#[test]
fn console_in_a_browser_shows_labels_and_retries_dead_letters() {
    let dir = radroute_e2e::test_dir("console");
    let d = dir.path();
    let pacs = Orthanc::start(&d.join("pacs"), "PACS");
    let archive = Orthanc::start(&d.join("archive"), "ARCHIVE");
    let (files, uids) = wrap(&d.join("in"));

    // "archive" points at a port nobody listens on: its jobs become dead letters.
    let broken = free_port();
    let config = |archive_port: u16| {
        Config {
            admin_token: Some(TOKEN.into()),
            max_attempts: 2,
            extra: classify_toml(),
            ..Config::default()
        }
        .destination("pacs", "PACS", pacs.dicom_port)
        .destination("archive", "ARCHIVE", archive_port)
    };
    let first = config(broken);
    let (port, admin_port) = (first.port, first.admin_port);
    let mut r = Radroute::start(d, first);
    let run = storescu_as("MODALITY", "RADROUTE", r.dicom_port, &[], &files);
    assert!(run.all_ok(&files), "{}", r.context(&run.log));

    let n = files.len() as u64;
    wait_for(
        Duration::from_secs(90),
        Duration::from_millis(300),
        || {
            let c = r.queue_counts();
            let dead = c["destinations"]["archive"]["dead"].as_u64().unwrap_or(0);
            let delivered = c["destinations"]["pacs"]["delivered"].as_u64().unwrap_or(0);
            (dead == n && delivered == n).then_some(())
        },
        || r.context(&format!("counts: {}", r.queue_counts())),
    );
    // What radroute wrote, from the API: the browser must show the same labels.
    let jobs = r.api_json("/api/v1/jobs?destination=pacs");
    let mut expected = Vec::new();
    for job in jobs.as_array().expect("jobs") {
        let id = job["instance_id"].as_str().expect("instance id");
        let inst = r.api_json(&format!("/api/v1/instances/{id}"));
        let sop = job["sop_instance_uid"].as_str().expect("SOP Instance UID");
        let i = uids.iter().position(|u| u == sop).expect("a sent instance");
        let accession = IMAGES[i].1;
        expected.push(serde_json::json!({"accession": accession, "label": inst["label"]}));
    }
    assert_eq!(expected.len(), IMAGES.len(), "{}", r.context("jobs"));
    assert!(
        expected.iter().any(|e| e["label"].is_string()),
        "{}",
        r.context(&format!("the model labelled nothing: {expected:?}"))
    );

    // The operator fixes the address (SIGHUP); the dead letters stay dead until retried.
    let mut fixed = config(archive.dicom_port);
    fixed.port = port;
    fixed.admin_port = admin_port;
    assert!(r.reload(fixed), "{}", r.context("reload refused"));
    assert_eq!(archive.count_instances(), 0);

    let expect_path = d.join("expect.json");
    std::fs::write(
        &expect_path,
        serde_json::json!({"instances": expected, "dead": n}).to_string(),
    )
    .expect("write expect.json");
    let shots = std::env::var_os("RADROUTE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| d.join("screenshots"));
    let mut cmd = Command::new(python());
    cmd.arg(workspace_root().join("tests/browser/console_test.py"))
        .arg("--url")
        .arg(format!("http://127.0.0.1:{admin_port}"))
        .arg("--token")
        .arg(TOKEN)
        .arg("--expect")
        .arg(&expect_path)
        .arg("--retry-destination")
        .arg("archive")
        .arg("--screenshots")
        .arg(&shots);
    let (code, text) = run_bounded(cmd, Duration::from_secs(180));
    assert_eq!(
        code,
        Some(0),
        "browser test failed:\n{text}\n{}",
        r.context("radroute")
    );

    // The retried dead letters arrive.
    wait_for(
        Duration::from_secs(60),
        Duration::from_millis(300),
        || (archive.count_instances() == n).then_some(()),
        || r.context(&format!("archive has {} of {n}", archive.count_instances())),
    );
    let c = r.queue_counts();
    assert_eq!(
        c["destinations"]["archive"]["dead"].as_u64(),
        Some(0),
        "{c}"
    );
}

/// An admin listener beyond loopback without a token (patient data, retries and drops open to
/// the network): check-config and serve refuse it with the fix; a token or loopback is fine.
#[test]
fn exposed_admin_without_token_is_refused() {
    let dir = radroute_e2e::test_dir("console-exposed");
    let d = dir.path();
    let config = Config::default();
    let loopback = format!("listen = \"127.0.0.1:{}\"", config.admin_port);
    let text = config.to_toml(d);
    assert!(text.contains(&loopback), "{text}");
    let run = |name: &str, text: &str, args: &[&str]| {
        let path = d.join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write config");
        let mut cmd = Command::new(radroute_e2e::radroute::binary());
        cmd.args(args).arg(&path);
        run_bounded(cmd, Duration::from_secs(20))
    };
    let exposed = text.replace(
        &loopback,
        &format!("listen = \"0.0.0.0:{}\"", config.admin_port),
    );
    let (code, out) = run("exposed", &exposed, &["check-config"]);
    assert_eq!(
        code,
        Some(1),
        "check-config accepted an open admin listener:\n{out}"
    );
    assert!(
        out.contains("admin.token is not set") && out.contains("127.0.0.1"),
        "the refusal says how to fix it:\n{out}"
    );
    let (code, served) = run("exposed", &exposed, &["serve", "--config"]);
    assert_eq!(
        code,
        Some(1),
        "serve started with an open admin listener:\n{served}"
    );
    assert!(served.contains("admin.token is not set"), "{served}");
    let with_token = exposed.replace("[admin]\n", "[admin]\ntoken = \"a-long-random-secret\"\n");
    let (code, out) = run("token", &with_token, &["check-config"]);
    assert_eq!(code, Some(0), "a token makes it acceptable:\n{out}");
    let (code, out) = run("loopback", &text, &["check-config"]);
    assert_eq!(code, Some(0), "{out}");
}
