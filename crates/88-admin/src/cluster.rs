//! `GET /api/v1/cluster` and the cluster gauges of `/metrics`: the same view as `radroute
//! cluster status` (radroute-node's `cluster::ClusterStatus`), read from PostgreSQL at request
//! time. A single node (no `[cluster]`) answers 404; an unreachable database 503.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use radroute_node::cluster::Cluster;
use radroute_node::telemetry::{CLUSTER_LEASES, CLUSTER_NODES};

use super::api::ApiError;
use super::AdminState;

/// `GET /api/v1/cluster`.
pub async fn status(State(state): State<AdminState>) -> Response {
    let Some(cluster) = state.cluster.as_ref() else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not in cluster mode (no [cluster] section)",
        )
        .into_response();
    };
    match cluster.status().await {
        Ok(status) => Json(status).into_response(),
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cluster database: {e}"),
        )
        .into_response(),
    }
}

/// Sets `radroute_cluster_nodes{state}` and `radroute_cluster_leases{node}` from the database
/// (scrape time); nothing when it does not answer (`radroute_cluster_database_up` says so).
pub async fn record_gauges(cluster: &Cluster) {
    let Ok(status) = cluster.status().await else {
        return;
    };
    for state in ["up", "draining", "left", "dead"] {
        let n = status.nodes.iter().filter(|n| n.state == state).count();
        metrics::gauge!(CLUSTER_NODES, "state" => state).set(n as f64);
    }
    for n in &status.nodes {
        metrics::gauge!(CLUSTER_LEASES, "node" => n.node_id.clone()).set(n.leases as f64);
    }
}
