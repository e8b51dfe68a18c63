//! Issue 2, test 3: radroute is SIGKILLed in the middle of a stream and restarted with the same
//! configuration and spool. Every instance storescu saw acknowledged must reach the destination
//! (an acknowledgement is a promise), and the queue must end with no queued or in-flight job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use radroute_e2e::dcmtk::{parse_storescu_log, storescu_spawn};
use radroute_e2e::ports::free_port;
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::{gen_corpus, wait_for};

const COUNT: usize = 48;
const KILL_AFTER_ACKS: usize = 10;

#[test]
fn acknowledged_instances_survive_sigkill() {
    let dir = radroute_e2e::test_dir("crash");
    let corpus = gen_corpus(&dir.path().join("corpus"), COUNT, 1024, 1024, 7);
    let uid_of: BTreeMap<PathBuf, String> = corpus
        .iter()
        .map(|f| (f.path.clone(), f.sop_instance_uid.clone()))
        .collect();
    let files: Vec<PathBuf> = corpus.iter().map(|f| f.path.clone()).collect();

    // Two destinations: "sink" is up, so the kill lands while instances are being forwarded;
    // "late" only starts after the restart, so every acknowledged instance is certainly still
    // queued for it when radroute dies.
    let sink = StoreScp::start(&dir.path().join("sink"), "SINK", free_port());
    let late_port = free_port();
    let mut r = Radroute::start(
        dir.path(),
        Config::default()
            .destination("sink", "SINK", sink.port)
            .destination("late", "LATE", late_port),
    );

    let log = dir.path().join("storescu.log");
    let mut scu = storescu_spawn("RADROUTE", r.dicom_port, &[], &files, &log);
    let acks_before_kill = wait_for(
        Duration::from_secs(60),
        Duration::from_millis(5),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let acks = parse_storescu_log(&text)
                .values()
                .filter(|r| r.as_deref() == Some("Success"))
                .count();
            (acks >= KILL_AFTER_ACKS).then_some(acks)
        },
        || {
            r.context(&format!(
                "storescu never reached {KILL_AFTER_ACKS} acknowledgements:\n{}",
                radroute_e2e::file_tail(&log, 20)
            ))
        },
    );
    r.kill9();
    assert!(
        scu.wait_exit(Duration::from_secs(60)).is_some(),
        "storescu did not give up after radroute was killed:\n{}",
        radroute_e2e::file_tail(&log, 20)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let responses = parse_storescu_log(&text);
    let acked: BTreeSet<String> = responses
        .iter()
        .filter(|(_, r)| r.as_deref() == Some("Success"))
        .map(|(p, _)| {
            uid_of
                .get(p)
                .unwrap_or_else(|| panic!("storescu sent unknown file {}", p.display()))
                .clone()
        })
        .collect();
    assert!(
        acked.len() >= acks_before_kill && acked.len() < COUNT,
        "the kill must land mid-stream: {} of {COUNT} acknowledged",
        acked.len()
    );
    eprintln!(
        "[crash] killed after {acks_before_kill} acks; storescu saw {} acknowledged of {COUNT}; sink had {} before restart",
        acked.len(),
        sink.received().len()
    );

    r.restart();
    let late = StoreScp::start(&dir.path().join("late"), "LATE", late_port);
    for dest in [&sink, &late] {
        wait_for(
            Duration::from_secs(90),
            Duration::from_millis(200),
            || acked.is_subset(&dest.received()).then_some(()),
            || {
                let missing: Vec<_> = acked.difference(&dest.received()).cloned().collect();
                r.context(&format!(
                    "{} acknowledged instance(s) never reached {}: {missing:?}",
                    missing.len(),
                    dest.ae_title
                ))
            },
        );
    }
    assert!(
        r.log().contains("queue recovered"),
        "{}",
        r.context("no recovery line after restart")
    );
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let c = r.queue_counts();
            (c["jobs"]["queued"] == 0
                && c["jobs"]["in_flight"] == 0
                && c["instances"]["received"] == 0)
                .then_some(c)
        },
        || r.context(&format!("queue still has work: {}", r.queue_counts())),
    );
    let c = r.queue_counts();
    assert_eq!(c["jobs"]["dead"], 0, "no job may be a dead letter: {c}");
    assert!(
        c["jobs"]["delivered"].as_u64().unwrap_or(0) >= 2 * acked.len() as u64,
        "delivered jobs {} < 2 x acknowledged {}: {c}",
        c["jobs"]["delivered"],
        acked.len()
    );
    // And after a clean stop the queue file still says so (counts read from disk, node down).
    r.stop();
    let c = r.queue_counts();
    assert!(
        c["jobs"]["queued"] == 0 && c["jobs"]["in_flight"] == 0,
        "after stop: {c}"
    );
}
