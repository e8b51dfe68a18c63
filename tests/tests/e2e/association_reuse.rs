//! Forwarding over kept-open associations: instances that follow each other within a
//! destination's `linger_ms` share one association to it, and another SOP class gets one of its
//! own; a destination that drops an idle association (Orthanc with `DicomScpTimeout` 1 s) gets
//! the next instance over a new association at once, without the instance counting as a failed
//! attempt.

use std::path::{Path, PathBuf};
use std::time::Duration;

use radroute_e2e::dcmtk::storescu;
use radroute_e2e::orthanc::Orthanc;
use radroute_e2e::ports::free_port;
use radroute_e2e::python::{make_instances, Instance};
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::wait_for;

/// A storescp "SINK" (verbose, for [`StoreScp::store_associations`]; without `--fork`, so one
/// association at a time) and a radroute forwarding to it as destination `sink` with
/// `destination_keys` (`associations`, `linger_ms`): the setup this module and
/// forward_single_association share.
pub(crate) fn radroute_to_sink(dir: &Path, destination_keys: &str) -> (StoreScp, Radroute) {
    let sink = StoreScp::start_with_args(&dir.join("sink"), "SINK", free_port(), &["+xa", "-v"]);
    let r = Radroute::start(
        dir,
        Config::default().destination_with("sink", "SINK", sink.port, destination_keys),
    );
    (sink, r)
}

#[test]
fn a_stream_of_instances_shares_one_association() {
    let dir = radroute_e2e::test_dir("reuse");
    let (sink, r) = radroute_to_sink(dir.path(), "associations = 1\nlinger_ms = 10000");
    // Three CRs and a CT (another SOP class), small and Explicit VR Little Endian.
    let files: Vec<PathBuf> = ["ct", "cr1", "cr2", "cr3"]
        .iter()
        .map(|n| dir.path().join("in").join(format!("{n}.dcm")))
        .collect();
    let ct = Instance {
        modality: "CT",
        ..Instance::default()
    };
    make_instances(&[
        (&files[0], ct),
        (&files[1], Instance::default()),
        (&files[2], Instance::default()),
        (&files[3], Instance::default()),
    ]);
    let send = |file: &PathBuf| {
        let run = storescu("RADROUTE", r.dicom_port, &[], std::slice::from_ref(file));
        assert!(
            run.all_ok(std::slice::from_ref(file)),
            "{}",
            r.context(&run.log)
        );
    };
    let wait_received = |n: usize| {
        wait_for(
            Duration::from_secs(20),
            Duration::from_millis(20),
            || (sink.received().len() >= n).then_some(()),
            || {
                r.context(&format!(
                    "sink has {:?}\n{}",
                    sink.received(),
                    sink.log_tail(20)
                ))
            },
        )
    };

    // Each instance once the one before has arrived: one association carries them all (they
    // share a SOP class and its contexts).
    for (i, file) in files[1..4].iter().enumerate() {
        send(file);
        wait_received(i + 1);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        sink.store_associations(),
        1,
        "{}",
        r.context(&format!("expected one association:\n{}", sink.log()))
    );

    // Another SOP class needs other presentation contexts: a new association for it.
    send(&files[0]);
    wait_received(4);
    assert_eq!(
        sink.store_associations(),
        2,
        "{}",
        r.context(&format!("expected a second association:\n{}", sink.log()))
    );
}

#[test]
fn an_association_the_destination_dropped_is_replaced_without_a_failure() {
    let dir = radroute_e2e::test_dir("reuse-idle");
    let pacs = Orthanc::start_with(
        &dir.path().join("orthanc"),
        "ORTHANC",
        serde_json::json!({ "DicomScpTimeout": 1 }),
    );
    let r = Radroute::start(
        dir.path(),
        Config::default().destination_with(
            "pacs",
            "ORTHANC",
            pacs.dicom_port,
            "associations = 1\nlinger_ms = 10000",
        ),
    );
    let files: Vec<PathBuf> = ["cr1", "cr2"]
        .iter()
        .map(|n| dir.path().join("in").join(format!("{n}.dcm")))
        .collect();
    let uids = make_instances(&[
        (&files[0], Instance::default()),
        (&files[1], Instance::default()),
    ]);
    for (file, uid) in files.iter().zip(&uids) {
        let run = storescu("RADROUTE", r.dicom_port, &[], std::slice::from_ref(file));
        assert!(
            run.all_ok(std::slice::from_ref(file)),
            "{}",
            r.context(&run.log)
        );
        wait_for(
            Duration::from_secs(20),
            Duration::from_millis(50),
            || pacs.lookup(uid),
            || r.context(&format!("{uid} not in Orthanc")),
        );
        // Idle past Orthanc's limit while radroute still holds the association open.
        std::thread::sleep(Duration::from_millis(2500));
    }
    let log = r.log();
    assert!(
        log.contains("idle association was closed by the destination"),
        "{}",
        r.context("the dropped association was not noticed and replaced")
    );
    let metrics = r.metrics();
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("radroute_forward_total") && l.contains("outcome=\"retry\"")),
        "a dropped idle association counted as a failed attempt:\n{metrics}"
    );
}
