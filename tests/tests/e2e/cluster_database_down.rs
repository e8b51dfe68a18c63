//! Issue 13, test 4: PostgreSQL stopped mid-stream: stores are refused with A700 (never
//! acknowledged uncommitted), `/readyz` fails, and after PostgreSQL restarts the node
//! reconnects by itself and every acknowledged instance is delivered.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use radroute_e2e::ports::free_port;
use radroute_e2e::postgres::PgServer;
use radroute_e2e::{dicom, gen_corpus, wait_for};

use super::cluster_support::{pacs, start_node, RetryingSender};

#[test]
fn database_down_refuses_stores_and_loses_nothing() {
    let dir = radroute_e2e::test_dir("cluster-dbdown");
    let pg = PgServer::start();
    let url = pg.new_database();
    let corpus = gen_corpus(&dir.path().join("corpus"), 40, 64, 64, 1304);
    let files: Vec<_> = corpus.iter().map(|f| f.path.clone()).collect();

    let sink = pacs(&dir.path().join("pacs"), free_port());
    let node = start_node(&dir.path().join("n1"), &url, "n1", sink.port);

    let sender = RetryingSender::start(node.dicom_port, files.clone(), 4, Duration::from_secs(90));
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(20),
        || (sender.acked.load(Ordering::SeqCst) >= 10).then_some(()),
        || format!("10 acknowledged: {}", node.log_tail(20)),
    );
    pg.stop();
    let not_ready = wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            node.admin_request("GET", "/readyz")
                .ok()
                .filter(|r| r.status == 503)
        },
        || {
            format!(
                "/readyz still 200 with PostgreSQL stopped: {}",
                node.log_tail(20)
            )
        },
    );
    assert!(not_ready.text().contains("queue") || not_ready.text().contains("spool"));
    std::thread::sleep(Duration::from_secs(3));
    pg.restart();
    let (acked, refusals) = sender.finish();
    assert_eq!(
        acked.len(),
        files.len(),
        "every store acknowledged after the restart"
    );
    assert!(
        refusals
            .iter()
            .any(|r| r.contains("A700") || r.contains("Out of Resources") || r.contains("Refused")),
        "stores were refused while PostgreSQL was down: {refusals:?}"
    );
    let expected: BTreeSet<String> = acked.iter().map(|f| dicom::sop_instance_uid(f)).collect();
    wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || (sink.received() == expected).then_some(()),
        || {
            format!(
                "PACS has {} of 40\n{}",
                sink.received().len(),
                node.log_tail(30)
            )
        },
    );
}
