//! Leaving the cluster in order (SIGTERM): the node is marked `draining` while its SCP stops
//! accepting and its associations and workers finish, then it hands its leases back (queued,
//! due now, attempt not counted) and is marked `left`, so the other nodes send its jobs and
//! process what it received without waiting for the takeover. Each step is bounded and
//! best-effort: if PostgreSQL is unreachable the takeover does the same later.

use std::time::Duration;

use deadpool_postgres::Pool;
use radroute_queue::UnixMillis;
use tracing::{info, warn};

use super::Cluster;

/// Upper bound of one drain statement.
const STEP: Duration = Duration::from_secs(5);

/// Sets this node's `nodes.state` (`draining`, `left`).
pub(super) async fn set_state(pool: &Pool, node_id: &str, state: &'static str) {
    let work = async {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        client
            .execute(
                "UPDATE nodes SET state = $2, heartbeat_at = $3 WHERE node_id = $1",
                &[&node_id, &state, &UnixMillis::now().0],
            )
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(STEP, work).await {
        Ok(Ok(_)) => info!(node_id, state, "cluster: node state"),
        Ok(Err(e)) => warn!(node_id, state, error = %e, "cluster: cannot set node state"),
        Err(_) => warn!(node_id, state, "cluster: setting node state timed out"),
    }
}

/// Joins (or rejoins) the cluster at start-up: state `up`, `started_at` now, whatever a
/// previous run left (a crash while draining included). Errors fail start-up.
pub(super) async fn join(pool: &Pool, node_id: &str) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let now = UnixMillis::now().0;
    client
        .execute(
            "INSERT INTO nodes (node_id, started_at, heartbeat_at, state) VALUES ($1, $2, $2, 'up') \
             ON CONFLICT (node_id) DO UPDATE SET started_at = $2, heartbeat_at = $2, state = 'up'",
            &[&node_id, &now],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Hands the leases back, then marks the node `left`.
pub(super) async fn leave(cluster: &Cluster) {
    let queue = cluster.queue.clone();
    let handed = tokio::task::spawn_blocking(move || queue.hand_back(UnixMillis::now())).await;
    match handed {
        Ok(Ok(n)) => info!(node_id = %cluster.node_id, leases = n, "cluster: leases handed back"),
        Ok(Err(e)) => {
            warn!(node_id = %cluster.node_id, error = %e, "cluster: cannot hand leases back (taken over later)")
        }
        Err(e) => warn!(node_id = %cluster.node_id, error = %e, "cluster: hand back failed"),
    }
    set_state(&cluster.pool, &cluster.node_id, "left").await;
}
