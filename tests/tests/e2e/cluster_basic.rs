//! Issue 13, test 1: two nodes behind HAProxy on one PostgreSQL; 4 senders, 100 instances:
//! all delivered, none twice, and both nodes took part. Also the operator surface:
//! `/api/v1/cluster` lists both nodes up, `radroute cluster status` prints them, and
//! `radroute queue list` / `counts` show the cluster's jobs from either node's configuration.

use std::collections::BTreeSet;
use std::time::Duration;

use radroute_e2e::ports::free_port;
use radroute_e2e::postgres::PgServer;
use radroute_e2e::{gen_corpus, wait_for};

use super::cluster_support::{
    balancer, pacs, received_by, send_parallel, start_node, stores_received,
};

#[test]
fn two_nodes_behind_haproxy_deliver_everything_once() {
    let dir = radroute_e2e::test_dir("cluster-basic");
    let pg = PgServer::shared();
    let url = pg.new_database();
    let corpus = gen_corpus(&dir.path().join("corpus"), 100, 64, 64, 1301);
    let expected: BTreeSet<String> = corpus.iter().map(|f| f.sop_instance_uid.clone()).collect();
    let files: Vec<_> = corpus.iter().map(|f| f.path.clone()).collect();

    let sink = pacs(&dir.path().join("pacs"), free_port());
    let n1 = start_node(&dir.path().join("n1"), &url, "n1", sink.port);
    let n2 = start_node(&dir.path().join("n2"), &url, "n2", sink.port);
    let lb = balancer(&dir.path().join("haproxy"), &[&n1, &n2]);

    let runs = send_parallel(lb.port, &files, 4);
    for run in &runs {
        let ok = run.succeeded().len();
        assert_eq!(
            ok,
            run.responses.len(),
            "every store acknowledged through HAProxy:\n{}\n{}",
            run.log,
            n1.log_tail(20)
        );
    }
    let acked: usize = runs.iter().map(|r| r.succeeded().len()).sum();
    assert_eq!(acked, 100);

    wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || (sink.received() == expected).then_some(()),
        || {
            format!(
                "PACS has {} of 100\nn1:\n{}\nn2:\n{}",
                sink.received().len(),
                n1.log_tail(20),
                n2.log_tail(20)
            )
        },
    );
    // Late duplicates would arrive within a lease cycle: give them time to show.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stores_received(&sink), 100, "an instance was sent twice");
    let (r1, r2) = (received_by(&n1), received_by(&n2));
    assert!(
        r1 > 0.0 && r2 > 0.0 && r1 + r2 == 100.0,
        "HAProxy spread the associations over both nodes: n1 {r1}, n2 {r2}"
    );

    let status = n1.api_json("/api/v1/cluster");
    let nodes = status["nodes"].as_array().expect("nodes");
    let up: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n["state"] == "up")
        .filter_map(|n| n["node_id"].as_str())
        .collect();
    assert_eq!(up, BTreeSet::from(["n1", "n2"]), "{status}");
    let out = std::process::Command::new(radroute_e2e::radroute::binary())
        .args(["cluster", "status", "--config"])
        .arg(&n2.config_path)
        .output()
        .expect("radroute cluster status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("n1") && text.contains("n2*") && text.contains("up"),
        "{text}"
    );
    // `radroute queue` reads the cluster's queue in PostgreSQL (not a local SQLite file): from
    // either node's configuration it lists the 100 jobs, each delivered.
    for node in [&n1, &n2] {
        let jobs = node.queue_list();
        let delivered: BTreeSet<String> = jobs
            .iter()
            .filter(|j| j["state"] == "delivered")
            .filter_map(|j| j["sop_instance_uid"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(jobs.len(), 100, "radroute queue list: {jobs:?}");
        assert_eq!(delivered, expected, "radroute queue list: {jobs:?}");
        let counts = node.queue_counts();
        assert_eq!(
            counts["jobs"]["delivered"], 100,
            "radroute queue counts: {counts}"
        );
    }
    drop(lb);
}
