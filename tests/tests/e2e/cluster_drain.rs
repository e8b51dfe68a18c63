//! Issue 13, test 5: a node drained with SIGTERM during a stream: no failed store (HAProxy
//! sends new associations to the other node, the drained node finishes its own), nothing
//! lost, and the drained node hands its leases back and is marked `left`.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use radroute_e2e::ports::free_port;
use radroute_e2e::postgres::PgServer;
use radroute_e2e::{dicom, gen_corpus, wait_for};

use super::cluster_support::{balancer, pacs, start_node, RetryingSender};

#[test]
fn sigterm_drains_a_node_without_a_failed_store() {
    let dir = radroute_e2e::test_dir("cluster-drain");
    let pg = PgServer::shared();
    let url = pg.new_database();
    let corpus = gen_corpus(&dir.path().join("corpus"), 60, 64, 64, 1305);
    let files: Vec<_> = corpus.iter().map(|f| f.path.clone()).collect();

    let sink = pacs(&dir.path().join("pacs"), free_port());
    let mut n1 = start_node(&dir.path().join("n1"), &url, "n1", sink.port);
    let n2 = start_node(&dir.path().join("n2"), &url, "n2", sink.port);
    let lb = balancer(&dir.path().join("haproxy"), &[&n1, &n2]);

    let sender = RetryingSender::start(lb.port, files.clone(), 5, Duration::from_secs(60));
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(20),
        || (sender.acked.load(Ordering::SeqCst) >= 15).then_some(()),
        || format!("15 acknowledged: {}", n1.log_tail(20)),
    );
    n1.stop();
    let (acked, refusals) = sender.finish();
    assert_eq!(acked.len(), files.len(), "every store acknowledged");
    assert!(
        refusals.is_empty(),
        "no store failed while a node drained: {refusals:?}"
    );
    let expected: BTreeSet<String> = acked.iter().map(|f| dicom::sop_instance_uid(f)).collect();
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || (sink.received() == expected).then_some(()),
        || {
            format!(
                "PACS has {} of 60\nn2:\n{}",
                sink.received().len(),
                n2.log_tail(20)
            )
        },
    );
    let status = n2.api_json("/api/v1/cluster");
    let n1_row = status["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["node_id"] == "n1"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(n1_row["state"], "left", "{status}");
    assert_eq!(n1_row["leases"], 0, "{status}");
    assert!(
        n1.log().contains("leases handed back"),
        "{}",
        n1.log_tail(20)
    );
    drop(lb);
}
