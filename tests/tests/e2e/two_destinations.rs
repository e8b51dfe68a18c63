//! Issue 2, test 2: two destinations, one down during the send. The healthy one receives
//! everything promptly (a dead destination only delays its own jobs); the other receives
//! everything once it comes back on its configured port.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use radroute_e2e::dcmtk::storescu;
use radroute_e2e::ports::{free_port, is_listening};
use radroute_e2e::radroute::{Config, Radroute};
use radroute_e2e::storescp::StoreScp;
use radroute_e2e::{gen_corpus, wait_for};

#[test]
fn down_destination_catches_up_without_delaying_the_other() {
    let dir = radroute_e2e::test_dir("twodest");
    let corpus = gen_corpus(&dir.path().join("corpus"), 8, 256, 256, 21);
    let expected: BTreeSet<String> = corpus.iter().map(|f| f.sop_instance_uid.clone()).collect();
    let files: Vec<_> = corpus.iter().map(|f| f.path.clone()).collect();

    let up = StoreScp::start(&dir.path().join("sink-up"), "SINKUP", free_port());
    let down_port = free_port();
    let r = Radroute::start(
        dir.path(),
        Config::default()
            .destination("up", "SINKUP", up.port)
            .destination("down", "SINKDOWN", down_port),
    );

    let started = Instant::now();
    let run = storescu("RADROUTE", r.dicom_port, &[], &files);
    assert!(
        run.all_ok(&files),
        "{}",
        r.context(&format!("not all acknowledged:\n{}", run.log))
    );

    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || (up.received() == expected).then_some(()),
        || {
            r.context(&format!(
                "healthy destination got {} of {} while the other was down",
                up.received().len(),
                expected.len()
            ))
        },
    );
    let healthy_after = started.elapsed();
    assert!(
        !is_listening(down_port),
        "nothing should listen on the down destination's port yet"
    );

    // The healthy destination's jobs are recorded as delivered (storescp writes the file just
    // before it answers, so this can lag the files by a moment); the down destination's jobs
    // wait in the queue, none delivered.
    let counts = wait_for(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let c = r.queue_counts();
            (c["destinations"]["up"]["delivered"] == expected.len() as u64).then_some(c)
        },
        || {
            r.context(&format!(
                "healthy destination's jobs not all delivered: {}",
                r.queue_counts()
            ))
        },
    );
    let down = &counts["destinations"]["down"];
    assert_eq!(
        down["delivered"], 0,
        "down destination cannot have deliveries: {counts}"
    );
    assert_eq!(
        down["queued"].as_u64().unwrap_or(0) + down["in_flight"].as_u64().unwrap_or(0),
        expected.len() as u64,
        "every instance should wait for the down destination: {counts}"
    );

    // Bring it up on the configured port: it catches up through the retry backoff.
    let back = StoreScp::start(&dir.path().join("sink-down"), "SINKDOWN", down_port);
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || (back.received() == expected).then_some(()),
        || {
            r.context(&format!(
                "destination that came back got {} of {}; its log:\n{}",
                back.received().len(),
                expected.len(),
                back.log_tail(10)
            ))
        },
    );
    wait_for(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let c = r.queue_counts();
            let j = &c["jobs"];
            (j["queued"] == 0 && j["in_flight"] == 0 && j["delivered"] == 2 * expected.len() as u64)
                .then_some(())
        },
        || r.context(&format!("queue not drained: {}", r.queue_counts())),
    );
    eprintln!("[twodest] healthy destination complete after {healthy_after:?}");
}
