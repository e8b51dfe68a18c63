//! The operator's view of the cluster (`radroute cluster status`, `GET /api/v1/cluster`, the
//! `radroute_cluster_*` gauges): every node with its state and last heartbeat, the leases it
//! holds, and the queue depth.

use std::time::Duration;

use deadpool_postgres::Pool;
use radroute_queue::UnixMillis;
use serde::Serialize;

/// One node of the cluster.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeRow {
    /// Its id.
    pub node_id: String,
    /// `up`, `draining`, `left`, or `dead` (`up`/`draining` but silent past the takeover time).
    pub state: String,
    /// Last heartbeat (unix ms).
    pub heartbeat_at: i64,
    /// Seconds since the last heartbeat.
    pub heartbeat_age_secs: f64,
    /// When it last started (unix ms).
    pub started_at: i64,
    /// Forward jobs it holds leases on.
    pub leases: i64,
    /// Received instances it acknowledged that are not routed yet.
    pub unprocessed: i64,
}

/// The cluster at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// The node that answered.
    pub this_node: String,
    /// A node silent this long is dead (seconds).
    pub takeover_after_secs: u64,
    /// Every node that ever joined, by id.
    pub nodes: Vec<NodeRow>,
    /// Jobs waiting to be sent (`queued`).
    pub queued: i64,
    /// Jobs being sent (`in_flight`).
    pub in_flight: i64,
    /// Jobs given up on (`dead`).
    pub dead_letters: i64,
    /// Instances received and not routed yet.
    pub unprocessed: i64,
}

/// Reads the status in one round of queries, bounded by 10 s.
pub async fn read(
    pool: &Pool,
    this_node: &str,
    takeover_after: Duration,
) -> Result<ClusterStatus, String> {
    let work = async {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        let now = UnixMillis::now().0;
        let dead_before = now - takeover_after.as_millis() as i64;
        let rows = client
            .query(
                "SELECT n.node_id, n.state, n.heartbeat_at, n.started_at, \
                   (SELECT COUNT(*) FROM jobs j WHERE j.state = 'in_flight' AND j.lease_owner = n.node_id), \
                   (SELECT COUNT(*) FROM instances i WHERE i.state = 'received' AND i.received_by = n.node_id) \
                 FROM nodes n ORDER BY n.node_id",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        let nodes = rows
            .iter()
            .map(|r| {
                let state: String = r.get(1);
                let heartbeat_at: i64 = r.get(2);
                let state = if state != "left" && heartbeat_at < dead_before {
                    "dead".to_string()
                } else {
                    state
                };
                NodeRow {
                    node_id: r.get(0),
                    state,
                    heartbeat_at,
                    heartbeat_age_secs: (now - heartbeat_at).max(0) as f64 / 1000.0,
                    started_at: r.get(3),
                    leases: r.get(4),
                    unprocessed: r.get(5),
                }
            })
            .collect();
        let jobs = client
            .query_one(
                "SELECT COUNT(*) FILTER (WHERE state = 'queued'), \
                        COUNT(*) FILTER (WHERE state = 'in_flight'), \
                        COUNT(*) FILTER (WHERE state = 'dead'), \
                        (SELECT COUNT(*) FROM instances WHERE state = 'received') \
                 FROM jobs",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(ClusterStatus {
            this_node: this_node.to_string(),
            takeover_after_secs: takeover_after.as_secs(),
            nodes,
            queued: jobs.get(0),
            in_flight: jobs.get(1),
            dead_letters: jobs.get(2),
            unprocessed: jobs.get(3),
        })
    };
    match tokio::time::timeout(Duration::from_secs(10), work).await {
        Ok(r) => r,
        Err(_) => Err("cluster database did not answer within 10 s".into()),
    }
}

impl ClusterStatus {
    /// A plain-text table for the CLI.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<24} {:<9} {:>14} {:>7} {:>12}\n",
            "NODE", "STATE", "HEARTBEAT_AGE", "LEASES", "UNPROCESSED"
        );
        for n in &self.nodes {
            let mark = if n.node_id == self.this_node { "*" } else { "" };
            out.push_str(&format!(
                "{:<24} {:<9} {:>13.1}s {:>7} {:>12}\n",
                format!("{}{mark}", n.node_id),
                n.state,
                n.heartbeat_age_secs,
                n.leases,
                n.unprocessed
            ));
        }
        out.push_str(&format!(
            "queue: {} queued, {} in flight, {} dead letters; {} instances not routed yet \
             (takeover after {} s)\n",
            self.queued,
            self.in_flight,
            self.dead_letters,
            self.unprocessed,
            self.takeover_after_secs
        ));
        out
    }
}
