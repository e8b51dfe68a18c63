//! The cluster wiring against a real PostgreSQL 15 (radroute-testkit): joining, heartbeats,
//! the status view, takeover of a silent node, and the drain (leases handed back, node `left`).

use std::time::Duration;

use radroute_config::Config;
use radroute_node::cluster;
use radroute_queue::{ForwardQueue, NewInstance, UnixMillis};
use radroute_testkit::postgres::PgServer;

fn config(url: &str, node_id: &str, spool: &std::path::Path) -> Config {
    let text = format!(
        "[spool]\ndir = {:?}\n[cluster]\npostgres = {url:?}\nnode_id = {node_id:?}\n\
         takeover_after_secs = 5\nheartbeat_secs = 1\n\
         [[destinations]]\nname = \"pacs\"\nae_title = \"PACS\"\naddress = \"127.0.0.1:1\"\n\
         [[routes]]\ndestinations = [\"pacs\"]\n",
        spool.display()
    );
    let path = spool.with_extension("toml");
    std::fs::write(&path, text).expect("write config");
    radroute_config::load(Some(&path)).expect("valid config")
}

fn instance(id: &str) -> NewInstance {
    NewInstance {
        id: id.into(),
        sop_instance_uid: format!("1.2.3.{}", id.len()),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
        transfer_syntax: "1.2.840.10008.1.2.1".into(),
        study_instance_uid: Some("1.2.3".into()),
        calling_ae: "MOD".into(),
        called_ae: "RADROUTE".into(),
        peer_addr: "127.0.0.1:5".into(),
        received_at: UnixMillis::now(),
        bytes: 10,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_status_takeover_and_drain() {
    let pg = PgServer::shared();
    let url = pg.new_database();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg1 = config(&url, "n1", &dir.path().join("n1"));
    let cfg2 = config(&url, "n2", &dir.path().join("n2"));
    let c1 = std::sync::Arc::new(
        cluster::open(&cfg1, cfg1.cluster.as_ref().unwrap())
            .await
            .expect("n1"),
    );
    let c2 = std::sync::Arc::new(
        cluster::open(&cfg2, cfg2.cluster.as_ref().unwrap())
            .await
            .expect("n2"),
    );

    let status = c1.status().await.expect("status");
    let states: Vec<(String, String)> = status
        .nodes
        .iter()
        .map(|n| (n.node_id.clone(), n.state.clone()))
        .collect();
    assert_eq!(
        states,
        vec![("n1".into(), "up".into()), ("n2".into(), "up".into())]
    );

    // n1 holds a lease.
    let q1 = c1.queue.clone();
    let leased = tokio::task::spawn_blocking(move || {
        q1.add_instance(&instance("i1")).unwrap();
        q1.route_instance("i1", None, None, &["pacs".to_string()], UnixMillis::now())
            .unwrap();
        q1.lease("pacs", 10, UnixMillis::now()).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(c2.status().await.unwrap().nodes[0].leases, 1);

    // n2 keeps heartbeating, n1 is silent: after takeover_after_secs it is dead.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let beat = tokio::spawn(c2.heartbeat(stop_rx));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let status = c2.status().await.unwrap();
    assert_eq!(status.nodes[0].state, "dead", "{status:?}");
    assert_eq!(status.nodes[1].state, "up", "{status:?}");
    let _ = stop_tx.send(true);
    beat.await.unwrap();

    // n1 drains: its lease goes back to the queue at once and it is marked left.
    c1.draining().await;
    assert_eq!(c2.status().await.unwrap().nodes[0].state, "draining");
    c1.leave().await;
    let status = c2.status().await.unwrap();
    assert_eq!(status.nodes[0].state, "left", "{status:?}");
    assert_eq!(status.nodes[0].leases, 0);
    assert_eq!((status.queued, status.in_flight), (1, 0), "{status:?}");
    let q2 = c2.queue.clone();
    let taken =
        tokio::task::spawn_blocking(move || q2.lease("pacs", 10, UnixMillis::now()).unwrap())
            .await
            .unwrap();
    assert_eq!(taken.len(), 1, "n2 sends n1's job");
    assert!(status.table().contains("n2*"));
}
