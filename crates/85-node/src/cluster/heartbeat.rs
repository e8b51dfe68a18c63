//! This node's heartbeat: every `[cluster] heartbeat_secs` it writes `nodes.heartbeat_at`
//! (radroute-queue-pg's upsert). A node silent for `takeover_after_secs` is dead to the
//! others: they requeue its leases and process its received instances. A heartbeat that fails
//! (PostgreSQL unreachable) is counted and retried at the next tick; the pool reconnects by
//! itself.

use std::sync::Arc;

use radroute_queue::UnixMillis;
use tokio::sync::watch;
use tracing::warn;

use super::Cluster;
use crate::telemetry;

/// How often scratch copies of instances purged (perhaps by another node) are deleted.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Deletes scratch copies whose instance is gone from PostgreSQL.
async fn sweep_scratch(cluster: &Arc<Cluster>) {
    let store = cluster.store.clone();
    match tokio::task::spawn_blocking(move || store.sweep_scratch()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::debug!(files = n, "cluster: stale scratch copies deleted"),
        Ok(Err(e)) => warn!(error = %e, "cluster: scratch sweep failed"),
        Err(e) => warn!(error = %e, "cluster: scratch sweep panicked"),
    }
}

/// Writes heartbeats until `stop` turns true. A failure is logged once per outage.
pub(super) async fn run(cluster: Arc<Cluster>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(cluster.heartbeat_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut last_sweep = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let queue = cluster.queue.clone();
        let result = tokio::task::spawn_blocking(move || queue.heartbeat(UnixMillis::now()))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match result {
            Ok(()) => {
                metrics::gauge!(telemetry::CLUSTER_DATABASE_UP).set(1.0);
                metrics::gauge!(telemetry::CLUSTER_HEARTBEAT_SECONDS)
                    .set(UnixMillis::now().0 as f64 / 1000.0);
                if failing {
                    warn!(node_id = %cluster.node_id, "cluster heartbeat written again");
                }
                failing = false;
                if last_sweep.elapsed() >= SWEEP_EVERY {
                    last_sweep = std::time::Instant::now();
                    sweep_scratch(&cluster).await;
                }
            }
            Err(e) => {
                metrics::gauge!(telemetry::CLUSTER_DATABASE_UP).set(0.0);
                metrics::counter!(telemetry::CLUSTER_HEARTBEAT_FAILURES).increment(1);
                if !failing {
                    warn!(node_id = %cluster.node_id, error = %e, "cluster heartbeat failed");
                }
                failing = true;
            }
        }
    }
}
