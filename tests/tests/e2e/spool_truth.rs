//! Issue 10, found #4 and "the spool is the source of truth": the queue database only indexes
//! the spool. A lost `queue.sqlite` is rebuilt from the spool files (re-ingested, routed,
//! delivered), a stale header file is never sent in place of the instance, a file that does not
//! read as Part 10 is moved aside (never deleted), and an instance whose file is gone becomes a
//! dead letter with that reason instead of retrying for hours.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use radroute_e2e::dcmtk::storescu;
use radroute_e2e::ports::free_port;
use radroute_e2e::radroute::{metric, Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::{gen_corpus, wait_for};

/// Sends `files` and asserts every one was acknowledged.
fn send_all(r: &Radroute, files: &[PathBuf]) {
    let run = storescu(&r.config.ae_title, r.dicom_port, &[], files);
    assert!(
        run.all_ok(files),
        "{}",
        r.context(&format!("storescu:\n{}", run.log))
    );
}

/// Waits until `n` instances are routed (jobs queued: every destination is down).
fn wait_routed(r: &Radroute, n: usize) {
    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || (r.queue_counts()["instances"]["routed"] == n).then_some(()),
        || r.context(&format!("{n} instances not routed: {}", r.queue_counts())),
    );
}

/// The incoming spool files by the SOP Instance UID in their meta.
fn incoming_by_uid(r: &Radroute) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(r.spool_dir().join("incoming"))
        .expect("list incoming/")
        .flatten()
        .map(|e| e.path())
        .map(|p| (radroute_e2e::dicom::sop_instance_uid(&p), p))
        .collect()
}

/// Study Description of a Part-10 file, trimmed.
fn study_description(path: &Path) -> Option<String> {
    let obj = dicom_object::open_file(path).ok()?;
    let value = obj.element(tags::STUDY_DESCRIPTION).ok()?.to_str().ok()?;
    Some(value.trim_end_matches(['\0', ' ']).trim().to_string())
}

/// Writes what a coerced header file looks like (the data set without Pixel Data, in the same
/// transfer syntax) for `source`, with a Study Description no destination may ever see.
fn write_stale_header(source: &Path, header: &Path) {
    let mut obj = dicom_object::open_file(source).expect("open corpus file");
    obj.put(DataElement::new(
        tags::STUDY_DESCRIPTION,
        VR::LO,
        PrimitiveValue::from("STALE HEADER"),
    ));
    obj.remove_element(tags::PIXEL_DATA);
    obj.write_to_file(header).expect("write stale header");
}

/// Found #4: 12 instances acknowledged while the PACS is down; radroute stopped; queue.sqlite
/// deleted; radroute started; PACS up: all 12 arrive, none with a stale header, and the spool
/// ends empty.
#[test]
fn a_lost_queue_database_is_rebuilt_from_the_spool() {
    const COUNT: usize = 12;
    let dir = radroute_e2e::test_dir("spool-truth");
    let corpus = gen_corpus(&dir.path().join("corpus"), COUNT, 256, 256, 41);
    let files: Vec<PathBuf> = corpus.iter().map(|f| f.path.clone()).collect();
    let uids: BTreeSet<String> = corpus.iter().map(|f| f.sop_instance_uid.clone()).collect();
    let pacs_port = free_port();
    let mut r = Radroute::start(
        dir.path(),
        Config::default().destination("pacs", "PACS", pacs_port),
    );
    send_all(&r, &files);
    wait_routed(&r, COUNT);
    r.stop();

    // The database is lost (an old backup restored, a wrong queue.path ...).
    for name in ["queue.sqlite", "queue.sqlite-wal", "queue.sqlite-shm"] {
        let p = r.spool_dir().join(name);
        if p.exists() {
            std::fs::remove_file(&p).expect("delete queue database");
        }
    }
    // ... and one instance has a stale coerced header left from its earlier processing.
    let on_disk = incoming_by_uid(&r);
    assert_eq!(on_disk.len(), COUNT, "12 acknowledged files in the spool");
    let (stale_uid, stale_incoming) = on_disk.iter().next().expect("a file");
    let stale_source = &corpus
        .iter()
        .find(|f| &f.sop_instance_uid == stale_uid)
        .expect("corpus file")
        .path;
    let header = r
        .spool_dir()
        .join("header")
        .join(stale_incoming.file_name().expect("file name"));
    write_stale_header(stale_source, &header);

    r.restart();
    let pacs = StoreScp::start(&dir.path().join("pacs"), "PACS", pacs_port);
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || uids.is_subset(&pacs.received()).then_some(()),
        || {
            let missing: Vec<_> = uids.difference(&pacs.received()).cloned().collect();
            r.context(&format!(
                "{} of {COUNT} acknowledged instances never arrived after the queue database was lost: {missing:?}",
                missing.len()
            ))
        },
    );
    let arrived = pacs.file_for(stale_uid).expect("received file");
    assert_eq!(
        study_description(&arrived),
        study_description(stale_source),
        "the stale header was sent instead of the instance"
    );
    let metrics = r.metrics();
    assert_eq!(
        metric(
            &metrics,
            "radroute_spool_recovered_total",
            &[("action", "reingested")]
        ),
        Some(COUNT as f64),
        "{metrics}"
    );
    assert_eq!(
        r.log()
            .matches("re-ingested as a received instance")
            .count(),
        COUNT,
        "{}",
        r.context("one log line per re-ingested file")
    );
    // Delivered, so purged (retention 0): nothing left behind.
    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || r.spool_files().is_empty().then_some(()),
        || r.context(&format!("spool not emptied: {:?}", r.spool_files())),
    );
    let c = r.queue_counts();
    assert_eq!(
        (
            &c["instances"]["done"],
            &c["jobs"]["delivered"],
            &c["jobs"]["dead"]
        ),
        (&COUNT.into(), &COUNT.into(), &0.into()),
        "{c}"
    );
}

/// With the database intact: a file in `incoming/` that is not Part 10 is moved to
/// `quarantine/` (the baseline deleted it); an instance whose incoming file vanished while the
/// node was down becomes a dead letter saying so at once (the baseline retried it for every
/// attempt); the other instance is delivered.
#[test]
fn unreadable_files_are_quarantined_and_missing_ones_are_dead_letters() {
    let dir = radroute_e2e::test_dir("spool-quarantine");
    let corpus = gen_corpus(&dir.path().join("corpus"), 2, 128, 128, 43);
    let files: Vec<PathBuf> = corpus.iter().map(|f| f.path.clone()).collect();
    let pacs_port = free_port();
    let mut r = Radroute::start(
        dir.path(),
        Config::default().destination("pacs", "PACS", pacs_port),
    );
    send_all(&r, &files);
    wait_routed(&r, 2);
    r.stop();
    let on_disk = incoming_by_uid(&r);
    let mut it = on_disk.iter();
    let (lost_uid, lost_path) = it.next().expect("first file");
    let (kept_uid, _) = it.next().expect("second file");
    std::fs::remove_file(lost_path).expect("remove incoming file");
    let junk_name = "20260101T000000.000000Z-000001-deadbeef.dcm";
    let junk = r.spool_dir().join("incoming").join(junk_name);
    std::fs::write(&junk, b"this is not a DICOM file").expect("write junk");

    r.restart();
    let pacs = StoreScp::start(&dir.path().join("pacs"), "PACS", pacs_port);
    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || pacs.received().contains(kept_uid).then_some(()),
        || r.context("the intact instance was not delivered"),
    );
    let quarantined = r
        .spool_dir()
        .join("quarantine")
        .join("20260101T000000.000000Z-000001-deadbeef.incoming.dcm");
    assert_eq!(
        std::fs::read(&quarantined).ok().as_deref(),
        Some(&b"this is not a DICOM file"[..]),
        "{}",
        r.context("the unreadable file must be kept in quarantine/")
    );
    assert!(!junk.exists(), "still in incoming/");
    let lost = wait_for(
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            r.queue_list()
                .into_iter()
                .find(|j| j["sop_instance_uid"] == lost_uid.as_str() && j["state"] == "dead")
        },
        || {
            r.context(&format!(
                "the job of the instance whose file is gone is not a dead letter: {:?}",
                r.queue_list()
            ))
        },
    );
    assert!(
        lost["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("spool file missing"),
        "reason: {lost}"
    );
    assert!(!pacs.received().contains(lost_uid));
    let metrics = r.metrics();
    for (action, n) in [("quarantined", 1.0), ("missing", 1.0)] {
        assert_eq!(
            metric(
                &metrics,
                "radroute_spool_recovered_total",
                &[("action", action)]
            ),
            Some(n),
            "{action}: {metrics}"
        );
    }
}
