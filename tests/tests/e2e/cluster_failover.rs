//! Issue 13, test 2: kill -9 of one node mid-stream while the PACS is down, and its local
//! directory deleted; the senders retry failed stores through HAProxy; when the PACS comes up
//! every acknowledged instance is delivered by the survivor (the dead node's leases and
//! received instances are taken over after `takeover_after_secs`).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use radroute_e2e::ports::free_port;
use radroute_e2e::postgres::PgServer;
use radroute_e2e::{dicom, gen_corpus, wait_for};

use super::cluster_support::{balancer, pacs, start_node, RetryingSender};

#[test]
fn a_killed_node_loses_nothing_it_acknowledged() {
    let dir = radroute_e2e::test_dir("cluster-failover");
    let pg = PgServer::shared();
    let url = pg.new_database();
    let corpus = gen_corpus(&dir.path().join("corpus"), 60, 64, 64, 1302);
    let files: Vec<_> = corpus.iter().map(|f| f.path.clone()).collect();

    let pacs_port = free_port();
    let mut n1 = start_node(&dir.path().join("n1"), &url, "n1", pacs_port);
    let n2 = start_node(&dir.path().join("n2"), &url, "n2", pacs_port);
    let lb = balancer(&dir.path().join("haproxy"), &[&n1, &n2]);

    let sender = RetryingSender::start(lb.port, files.clone(), 5, Duration::from_secs(90));
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(20),
        || (sender.acked.load(Ordering::SeqCst) >= 20).then_some(()),
        || format!("20 acknowledged: {}", n1.log_tail(20)),
    );
    n1.kill9();
    let killed_at = Instant::now();
    std::fs::remove_dir_all(n1.spool_dir()).expect("delete the killed node's spool");
    let (acked, _refusals) = sender.finish();
    assert_eq!(
        acked.len(),
        files.len(),
        "every store acknowledged in the end"
    );
    let expected: BTreeSet<String> = acked.iter().map(|f| dicom::sop_instance_uid(f)).collect();

    // The PACS comes up: the survivor sends everything, the dead node's share included.
    let sink = pacs(&dir.path().join("pacs"), pacs_port);
    wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || (sink.received() == expected).then_some(()),
        || {
            let missing: Vec<_> = expected.difference(&sink.received()).cloned().collect();
            format!(
                "{} acknowledged instances not delivered ({:?} after the kill): {:?}\nn2:\n{}",
                missing.len(),
                killed_at.elapsed(),
                &missing[..missing.len().min(5)],
                n2.log_tail(30)
            )
        },
    );
    // Delivery can finish before the takeover time (jobs n1 had queued are due for any node):
    // the status must show n1 dead once its heartbeat is older than takeover_after_secs (5 s).
    let n1_row = |status: &serde_json::Value| {
        status["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["node_id"] == "n1"))
            .cloned()
            .unwrap_or_default()
    };
    let status = wait_for(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let status = n2.api_json("/api/v1/cluster");
            (n1_row(&status)["state"] == "dead").then_some(status)
        },
        || {
            format!(
                "n1 not reported dead {:?} after the kill: {}",
                killed_at.elapsed(),
                n2.api_json("/api/v1/cluster")
            )
        },
    );
    assert_eq!(n1_row(&status)["leases"], 0, "{status}");
    drop(lb);
}
